package codegen

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"of3c/graph"
	"of3c/importer"
	"of3c/passes"
	"of3c/runtime/ref"
)

// The row-chunked pair ops (of3c.OuterProductMean, of3c.TriangleMultiplication)
// on the real exports: each fixture that contains them is optimized by the
// default pipeline, its pair ops get row_chunk values that do not divide N
// (and 1, and none), and MLX (cpu, fp32) must match the reference executor
// on both test sets.
func TestPairOpFixturesOnMLX(t *testing.T) {
	needMLX(t)
	const index = "../models/of3/fixtures.json"
	data, err := os.ReadFile(index)
	if err != nil {
		t.Skipf("no fixture index: %v", err)
	}
	var idx struct {
		Fixtures []struct {
			Name   string `json:"name"`
			Path   string `json:"path"`
			Preset string `json:"preset"`
			Sets   []struct {
				Dir     string `json:"dir"`
				NInputs int    `json:"n_inputs"`
			} `json:"test_data_sets"`
		} `json:"fixtures"`
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		t.Fatal(err)
	}
	for _, f := range idx.Fixtures {
		if !strings.HasPrefix(f.Name, "outer_product_mean") && !strings.HasPrefix(f.Name, "tri_mul") &&
			!strings.HasPrefix(f.Name, "msa_module_block") && !strings.HasPrefix(f.Name, "pairformer_block") {
			continue
		}
		if testing.Short() && f.Preset != "tiny" {
			continue
		}
		t.Run(f.Name, func(t *testing.T) {
			dir := filepath.Join(filepath.Dir(index), f.Path)
			g, err := importer.LoadFile(filepath.Join(dir, "model.onnx"), importer.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := passes.Run(g, passes.Options{Verify: true}); err != nil {
				t.Fatal(err)
			}
			c := g.OpCounts()
			if c["of3c.OuterProductMean"]+c["of3c.TriangleMultiplication"] == 0 {
				t.Fatalf("no pair op fused:\n%s", graph.Format(g))
			}
			for _, rc := range []int64{0, 1, 5} {
				for _, n := range g.Nodes {
					switch n.QualifiedOp() {
					case "of3c.OuterProductMean", "of3c.TriangleMultiplication":
						n.SetAttr("row_chunk", graph.Attr{Kind: graph.AttrInt, Int: rc})
					}
				}
				for _, set := range f.Sets {
					in := map[string]*graph.Tensor{}
					for i := 0; i < set.NInputs; i++ {
						_, tt, err := importer.ReadTensorFile(filepath.Join(dir, set.Dir, fmt.Sprintf("input_%d.pb", i)))
						if err != nil {
							t.Fatal(err)
						}
						in[g.Inputs[i].Name] = tt
					}
					t.Run(fmt.Sprintf("row_chunk=%d/%s", rc, set.Dir), func(t *testing.T) {
						checkVsRefRel(t, g, in, 1e-4)
					})
				}
			}
		})
	}
}

// checkVsRefRel is checkVsRef with a tolerance relative to max(1, |ref|):
// the blocks' outputs are O(10) after a pair stack's residual adds.
func checkVsRefRel(t *testing.T, g *graph.Graph, in map[string]*graph.Tensor, tol float64) {
	t.Helper()
	want, err := ref.Run(g, in)
	if err != nil {
		t.Fatalf("ref: %v", err)
	}
	p, err := NewProgram(g, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	got, _, err := p.Run(in)
	if err != nil {
		t.Fatal(err)
	}
	for name, w := range want {
		gv := got[name]
		if gv == nil {
			t.Fatalf("output %q missing", name)
		}
		wv, err := w.Float64s()
		if err != nil {
			t.Fatal(err)
		}
		gf, err := gv.Float64s()
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for i := range wv {
			d := wv[i] - gf[i]
			if d < 0 {
				d = -d
			}
			scale := 1.0
			if a := wv[i]; a > 1 || a < -1 {
				scale = max(a, -a)
			}
			if d/scale > worst || d != d {
				worst = d / scale
			}
		}
		if worst > tol || worst != worst {
			t.Errorf("output %q: max rel diff %g > %g", name, worst, tol)
		}
	}
}
