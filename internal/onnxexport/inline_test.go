package onnxexport

import (
	"testing"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/importer"
	"github.com/of3c/of3c/passes"
)

// A graph with row-chunked regions (both PairFormerBlock exports after the
// default pipeline and form-regions, every region at chunk 3) exports with
// the regions inlined: onnx.checker accepts it and onnxruntime reproduces
// the reference executor running the chunked graph.
func TestExportRegionsRunsInORT(t *testing.T) {
	py := python(t)
	for _, name := range []string{"pairformer_block_tiny_torchscript", "pairformer_block_tiny_dynamo"} {
		t.Run(name, func(t *testing.T) {
			g, err := importer.LoadFile("../../models/of3/testdata/"+name+"/model.onnx", importer.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := passes.Run(g, passes.Options{Verify: true}); err != nil {
				t.Fatal(err)
			}
			if _, err := passes.Run(g, passes.Options{Verify: true, Passes: []string{"form-regions"}}); err != nil {
				t.Fatal(err)
			}
			k := 0
			for _, n := range g.Nodes {
				if n.QualifiedOp() == "of3c.ChunkMap" {
					n.SetAttr("chunk", graph.Attr{Kind: graph.AttrInt, Int: 3})
					k++
				}
			}
			if k == 0 {
				t.Fatal("no region formed")
			}
			in := randomInputs(t, g, map[string]int64{"N": 7})
			checkWithORT(t, py, g, in, 2e-5)
		})
	}
}
