package codegen

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/importer"
	"github.com/of3c/of3c/internal/mlx"
	"github.com/of3c/of3c/passes"
	"github.com/of3c/of3c/runtime/ref"
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
	got, _ := runMLX(t, g, Options{}, in)
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

// withLowering runs f with op lowered by fn instead of its registered
// lowering.
func withLowering(op string, fn lowerFn, f func()) {
	prev := lowerings[op]
	lowerings[op] = fn
	defer func() { lowerings[op] = prev }()
	f()
}

// The blocked triangle-multiplication lowering (lower_chunk.go) matches the
// reference executor: both directions, with and without a mask, a leading
// batch dim with a broadcast mask, row_chunk 0, 1, 3 (not dividing 7) and
// ≥ N; and the pair fixtures on MLX.
func TestBlockedTriangleMultiplication(t *testing.T) {
	needMLX(t)
	withLowering(graph.FusedDomain+".TriangleMultiplication", lowerTriangleMultiplicationBlocked, func() {
		for _, dir := range []string{graph.TriangleOutgoing, graph.TriangleIncoming} {
			for _, rc := range []int64{0, 1, 3, 9} {
				for _, shape := range [][]int64{{7, 7, 6}, {2, 7, 7, 6}} {
					t.Run(fmt.Sprintf("%s/row_chunk=%d/%v", dir, rc, shape), func(t *testing.T) {
						b := graph.NewBuilder("tm", 17)
						b.Opset(graph.FusedDomain, 1)
						xs := fmt.Sprintf("f32%v", shape)
						xs = strings.ReplaceAll(xs, " ", ",")
						ms := "f32[7,7,1]"
						mshape := []int64{7, 7, 1}
						if len(shape) == 4 {
							ms, mshape = "f32[1,7,7,1]", []int64{1, 7, 7, 1}
						}
						x := b.Input("x", xs)
						m := b.Input("m", ms)
						w := b.Random("w", "f32[6,16]", 7)
						b.Output(b.Op("of3c.TriangleMultiplication", x, m, w, graph.AString("direction", dir), graph.AInt("row_chunk", rc)),
							b.Op("of3c.TriangleMultiplication", x, nil, w, graph.AString("direction", dir), graph.AInt("row_chunk", rc)))
						mv := make([]float32, 49)
						for i := range mv {
							if i%5 != 2 && i/7 != 1 { // row 1 fully masked
								mv[i] = 1
							}
						}
						in := map[string]*graph.Tensor{"x": randT(t, graph.Float32, shape, 3, -1, 1), "m": graph.NewTensorF32(mshape, mv)}
						checkVsRef(t, build(t, b), in, 2e-6)
					})
				}
			}
		}
		t.Run("fixtures", TestPairOpFixturesOnMLX)
	})
}

// MLX's measured peak for one of3-width triangle multiplication (c = h =
// 128, f32, CPU): the registered lowering unchunked (x·W, a and b whole) and
// at row_chunk 64, where it must route to the blocked lowering (path
// trimul/blocked) and need less memory; and the blocked lowering forced at
// row_chunk 0, which must not need more than the whole one. At N = 512
// (~20 s; not under -short; the numbers are quoted in lower_chunk.go): at
// smaller N the saving of row_chunk 64 shrinks and turns into a cost
// (N = 384: 865 → 805 MiB; N = 256: 384 → 512 MiB).
func TestTriangleMultiplicationChunkedPeak(t *testing.T) {
	needMLX(t)
	if testing.Short() {
		t.Skip("a memory measurement at N = 512 (~20 s): not under -short")
	}
	const n = 512
	in := map[string]*graph.Tensor{
		"x": randT(t, graph.Float32, []int64{n, n, 128}, 1, -1, 1),
		"m": randT(t, graph.Float32, []int64{n, n, 1}, 2, 0.99, 1),
	}
	peak := func(rc int64, wantPath Path) float64 {
		b := graph.NewBuilder("tm", 17)
		b.Opset(graph.FusedDomain, 1)
		x := b.Input("x", "f32[N,N,128]")
		m := b.Input("m", "f32[N,N,1]")
		w := b.Random("w", "f32[128,512]", 7)
		b.Output(b.Op("of3c.TriangleMultiplication", x, m, w, graph.AInt("row_chunk", rc)))
		p, err := NewProgram(build(t, b), Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if _, _, err := p.Run(in); err != nil { // trace and compile
			t.Fatal(err)
		}
		if ls := p.Lowerings(); wantPath != "" && (len(ls) != 1 || ls[0].Path != wantPath) {
			t.Errorf("row_chunk %d: lowerings %v, want %s", rc, ls, wantPath)
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
	whole, chunked := peak(0, TriMulCPUFused), peak(64, TriMulBlocked)
	var blkWhole float64
	withLowering(graph.FusedDomain+".TriangleMultiplication", lowerTriangleMultiplicationBlocked, func() {
		blkWhole = peak(0, "")
	})
	t.Logf("MLX peak at N=%d: unchunked %.0f MiB, row_chunk=64 %.0f MiB; blocked lowering at row_chunk 0 %.0f MiB",
		n, whole, chunked, blkWhole)
	// MLX evaluates the lazy graph without sequencing the blocks by itself
	// (the lowering orders them), so the saving is modest; it must exist.
	if chunked >= whole {
		t.Errorf("row_chunk 64 peaks at %.0f MiB, not below the unchunked %.0f MiB", chunked, whole)
	}
	if blkWhole > whole {
		t.Errorf("the blocked lowering at row_chunk 0 peaks at %.0f MiB, above the whole lowering's %.0f MiB", blkWhole, whole)
	}
}

// The triangle multiplication's channel GEMM in bf16 (pairGEMMDtype), as
// the GPU runs it under bf16 compute, exercised here on the CPU: both
// directions, the unblocked MLX lowering (row_chunk 0) and the blocked one
// (row_chunk 4 of 9). Within bf16 rounding of the f32 reference, and not
// the same numbers as the f32 contraction (so the bf16 GEMM really ran).
func TestTriangleMultiplicationBF16Contraction(t *testing.T) {
	needMLX(t)
	defer func(prev func(string) bool) { halfPairGEMM = prev }(halfPairGEMM)
	for _, dir := range []string{graph.TriangleOutgoing, graph.TriangleIncoming} {
		for _, rc := range []int64{0, 4} {
			t.Run(fmt.Sprintf("%s/row_chunk=%d", dir, rc), func(t *testing.T) {
				b := graph.NewBuilder("tm", 17)
				b.Opset(graph.FusedDomain, 1)
				x := b.Input("x", "f32[9,9,8]")
				m := b.Input("m", "f32[9,9,1]")
				w := b.Random("w", "f32[8,32]", 5)
				b.Output(b.Op("of3c.TriangleMultiplication", x, m, w, graph.AString("direction", dir), graph.AInt("row_chunk", rc)))
				g := build(t, b)
				in := map[string]*graph.Tensor{"x": randT(t, graph.Float32, []int64{9, 9, 8}, 3, -1, 1),
					"m": randT(t, graph.Float32, []int64{9, 9, 1}, 4, 0.5, 1)}
				want, err := ref.Run(g, in)
				if err != nil {
					t.Fatal(err)
				}
				run := func(half bool) *graph.Tensor {
					halfPairGEMM = func(string) bool { return half }
					got, ls := runMLX(t, g, Options{Precision: "bf16", NoFastKernels: true}, in)
					wantPath := TriMulMLX
					if rc > 0 {
						wantPath = TriMulBlocked
					}
					if len(ls) != 1 || ls[0].Path != wantPath {
						t.Fatalf("lowerings %v, want %s", ls, wantPath)
					}
					return got[g.Outputs[0].Name]
				}
				half, full := run(true), run(false)
				w0 := want[g.Outputs[0].Name]
				if d := maxAbsDiff(t, half, w0); d > 0.08 {
					t.Errorf("bf16 contraction: max abs diff %g from the f32 reference", d)
				}
				if d := maxAbsDiff(t, full, w0); d > 0.08 {
					t.Errorf("f32 contraction: max abs diff %g from the f32 reference", d)
				}
				if maxAbsDiff(t, half, full) == 0 {
					t.Error("the bf16 and f32 contractions gave identical outputs: the bf16 GEMM did not run")
				}
			})
		}
	}
}
