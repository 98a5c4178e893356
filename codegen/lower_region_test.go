package codegen

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/importer"
	"github.com/of3c/of3c/internal/mlx"
	"github.com/of3c/of3c/passes"
	"github.com/of3c/of3c/runtime/ref"
)

// loadWithRegions imports path, runs the default pipeline and, when
// regions, form-regions with every of3c.ChunkMap at chunk.
func loadWithRegions(t *testing.T, path string, regions bool, chunk int64) *graph.Graph {
	t.Helper()
	g, err := importer.LoadFile(path, importer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := passes.Run(g, passes.Options{Verify: true}); err != nil {
		t.Fatal(err)
	}
	if !regions {
		return g
	}
	if _, err := passes.Run(g, passes.Options{Verify: true, Passes: []string{"form-regions"}}); err != nil {
		t.Fatal(err)
	}
	k := 0
	for _, n := range g.Nodes {
		if n.QualifiedOp() == "of3c.ChunkMap" {
			n.SetAttr("chunk", graph.Attr{Kind: graph.AttrInt, Int: chunk})
			k++
		}
	}
	if k == 0 {
		t.Fatalf("%s: no region formed", path)
	}
	return g
}

// Regions on MLX: both PairFormerBlock exports with every region chunked
// (1, 5 rows: blocks that do not divide N; 0: one block) match the
// reference executor running the same graph, which matches the unchunked
// graph exactly (passes' TestRegionsMatchUnchunked); and the trace took
// region/sequenced when the chunk splits the rows.
func TestChunkMapOnMLX(t *testing.T) {
	needMLX(t)
	for _, name := range []string{"pairformer_block_tiny_torchscript", "pairformer_block_tiny_dynamo", "tri_att_start_of3_dynamo"} {
		dir := filepath.Join("../models/of3/testdata", name)
		for _, chunk := range []int64{0, 1, 5} {
			t.Run(fmt.Sprintf("%s/chunk=%d", name, chunk), func(t *testing.T) {
				g := loadWithRegions(t, filepath.Join(dir, "model.onnx"), true, chunk)
				in := map[string]*graph.Tensor{}
				for i := range g.Inputs {
					_, tt, err := importer.ReadTensorFile(filepath.Join(dir, "test_data_set_0", fmt.Sprintf("input_%d.pb", i)))
					if err != nil {
						t.Fatal(err)
					}
					in[g.Inputs[i].Name] = tt
				}
				checkVsRefRel(t, g, in, 1e-5)
				p, err := NewProgram(g, Options{})
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				if _, _, err := p.Run(in); err != nil {
					t.Fatal(err)
				}
				want := RegionWhole
				if chunk > 0 {
					want = RegionSequenced
				}
				for _, l := range p.Lowerings() {
					if l.Op == "of3c.ChunkMap" && l.Path != want {
						t.Errorf("%s took %s, want %s", l.Node, l.Path, want)
					}
				}
			})
		}
	}
}

// realPairformer is the real-width (c_z = 128) PairFormerBlock export,
// generated on demand (models/of3/README.md); tests skip without it.
func realPairformer(t *testing.T) string {
	const p = "../models/of3/generated/testdata/pairformer_block_of3_torchscript/model.onnx"
	if _, err := os.Stat(p); err == nil {
		return p
	}
	t.Skip("the real-width PairFormerBlock export is generated on demand (models/of3/README.md)")
	return ""
}

// mlxPeak runs g once to trace and compile, then again with MLX's peak
// reset, and returns that peak in MiB.
func mlxPeak(t *testing.T, g *graph.Graph, in map[string]*graph.Tensor) float64 {
	t.Helper()
	// Budgeted: the run gets the planner's MLX memory limit, which holds
	// MLX's run-ahead to the plan (memory_limit.go); without it MLX's
	// allocation runs ahead of the evaluation and the peak says little
	// about the program's memory.
	p, err := NewProgram(g, Options{Device: "cpu", Budgeted: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, _, err := p.Run(in); err != nil {
		t.Fatal(err)
	}
	if err := mlx.ResetPeakMemory(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.Run(in); err != nil {
		t.Fatal(err)
	}
	st, err := mlx.Memory()
	if err != nil {
		t.Fatal(err)
	}
	return float64(st.Peak) / (1 << 20)
}

// The measured saving: MLX CPU's peak for the real PairFormerBlock
// (c_z = 128, f32) at N = 256 without regions and with every region at
// chunk 32 (8 blocks), under the planner's run limit. The regions must
// lower the peak; the numbers are quoted in lower_region.go (N = 384 by
// editing n). Not under -short (~40 s).
func TestChunkMapPeak(t *testing.T) {
	needMLX(t)
	if testing.Short() {
		t.Skip("a memory measurement of the real-width block: not under -short")
	}
	path := realPairformer(t)
	const n = 256
	base := loadWithRegions(t, path, false, 0)
	in := map[string]*graph.Tensor{}
	for i, v := range base.Inputs {
		shape := make([]int64, len(v.Type.Shape))
		for k, d := range v.Type.Shape {
			shape[k] = d.Val
			if d.IsSymbolic() {
				shape[k] = n
			}
		}
		lo, hi := -1.0, 1.0
		if v.Name == "mask" || v.Name == "pair_mask" {
			lo, hi = 0.999, 1
		}
		in[v.Name] = randT(t, graph.Float32, shape, uint64(i+1), lo, hi)
	}
	// The triangle multiplications are chunked alike in both (row_chunk
	// 32): unchunked, their workspace is the peak whatever the regions do.
	rowChunk := func(g *graph.Graph) *graph.Graph {
		for _, m := range g.Nodes {
			if m.QualifiedOp() == "of3c.TriangleMultiplication" {
				m.SetAttr("row_chunk", graph.Attr{Kind: graph.AttrInt, Int: 32})
			}
		}
		return g
	}
	without := mlxPeak(t, rowChunk(base), in)
	withR := mlxPeak(t, rowChunk(loadWithRegions(t, path, true, 32)), in)
	t.Logf("MLX CPU peak, real PairFormerBlock N=%d (triangle multiplications at row_chunk 32): without regions %.0f MiB, regions at chunk 32 %.0f MiB", n, without, withR)
	if withR >= without {
		t.Errorf("regions peak at %.0f MiB, not below %.0f MiB without", withR, without)
	}
	_ = ref.Run
}
