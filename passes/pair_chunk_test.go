package passes

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/units"
	"github.com/of3c/of3c/runtime/ref"
)

// Tests of of3c.OuterProductMean and of3c.TriangleMultiplication: their
// fusion on every models/of3 fixture (the index's expected_fused has no
// entry for them, so the expectations are here), fused-and-chunked vs
// unfused numerics on the reference executor, and what the planner makes of
// them at N = 1024.

// expectedPairOps is how many of each pair op the default pipeline must
// produce per fixture, by name prefix (the exporter suffix is cut).
var expectedPairOps = map[string][2]int{ // {OuterProductMean, TriangleMultiplication}
	"local_msa_module_block_tiny": {1, 2},
	"local_pairformer_block_tiny": {0, 2},
}

// pairOpsWant is {OuterProductMean, TriangleMultiplication} a fixture must
// fuse to: the index's counts (taken by instrumenting the PyTorch module),
// or expectedPairOps for entries that have none.
func pairOpsWant(f fixture) ([2]int, bool) {
	if e := f.Expected; e.OPM != nil && e.TriMul != nil {
		return [2]int{*e.OPM, *e.TriMul}, true
	}
	w, ok := expectedPairOps[fixtureStem(f.Name)]
	return w, ok
}

func fixtureStem(name string) string {
	for _, suf := range []string{"_torchscript", "_dynamo"} {
		name = strings.TrimSuffix(name, suf)
	}
	return name
}

func TestPairOpFusionCounts(t *testing.T) {
	for _, f := range loadFixtures(t) {
		t.Run(f.Name, func(t *testing.T) {
			want, ok := pairOpsWant(f)
			if !ok {
				t.Fatalf("no pair-op expectation for fixture %s: add it to expectedPairOps", f.Name)
			}
			g := loadFixtureGraph(t, f)
			log, err := Run(g, Options{Verify: true, Explain: true})
			if err != nil {
				t.Fatal(err)
			}
			c := g.OpCounts()
			if got := [2]int{c["of3c.OuterProductMean"], c["of3c.TriangleMultiplication"]}; got != want {
				t.Errorf("OuterProductMean, TriangleMultiplication = %v, want %v\n%s", got, want, log.Format())
			}
			// Directions: the pair stacks alternate outgoing, incoming.
			var dirs []string
			for _, n := range g.Nodes {
				if n.QualifiedOp() == "of3c.TriangleMultiplication" {
					dirs = append(dirs, n.AttrString("direction", ""))
				}
			}
			order := []string{graph.TriangleOutgoing, graph.TriangleIncoming}
			if strings.HasPrefix(f.Name, "tri_mul_in") {
				order = order[1:]
			}
			for i, d := range dirs {
				if w := order[i%len(order)]; d != w {
					t.Errorf("triangle multiplication %d is %s, want %s", i, d, w)
				}
			}
		})
	}
}

// setRowChunk sets row_chunk on every pair op.
func setRowChunk(g *graph.Graph, rc int64) {
	for _, n := range g.Nodes {
		switch n.QualifiedOp() {
		case "of3c.OuterProductMean", "of3c.TriangleMultiplication":
			n.SetAttr("row_chunk", graph.Attr{Kind: graph.AttrInt, Int: rc})
		}
	}
}

// The fused ops, unchunked and with row_chunk sizes that do not divide N
// (and 1, and ≥ N), compute what the unfused export does: both exporters,
// both test sets (1e-5 vs the unfused graph, 1e-4 vs PyTorch), plus
// synthetic inputs with fully masked rows at N = 5 and at N = 1.
func TestPairOpsChunkedMatchUnfused(t *testing.T) {
	for _, f := range loadFixtures(t) {
		if w, _ := pairOpsWant(f); w == [2]int{} {
			continue
		}
		if testing.Short() && f.Preset != "tiny" {
			continue // the of3-width block takes seconds per reference run
		}
		t.Run(f.Name, func(t *testing.T) {
			g := loadFixtureGraph(t, f)
			orig := graph.Clone(g)
			if _, err := Run(g, Options{Verify: true}); err != nil {
				t.Fatal(err)
			}
			type run struct {
				what       string
				ins        map[string]*graph.Tensor
				want, ptor map[string]*graph.Tensor
			}
			var runs []run
			for _, set := range f.Sets {
				dir := filepath.Join(filepath.Dir(fixtureIndex), f.Path, set.Dir)
				ins, torch := readSet(t, orig, dir, set.NInputs, set.NOutputs)
				want, err := ref.Run(orig, ins)
				if err != nil {
					t.Fatal(err)
				}
				runs = append(runs, run{set.Dir, ins, want, torch})
			}
			for _, n := range []int64{5, 1} {
				ins := testInputs(t, orig, map[string]int64{"N": n, "S": 3}, 11)
				want, err := ref.Run(orig, ins)
				if err != nil {
					t.Fatal(err)
				}
				runs = append(runs, run{fmt.Sprintf("synthetic N=%d (row 1 masked)", n), ins, want, nil})
			}
			for _, rc := range []int64{0, 1, 3, 5, 7, 1000} {
				setRowChunk(g, rc)
				if err := graph.Verify(g); err != nil {
					t.Fatal(err)
				}
				for _, r := range runs {
					got, err := ref.Run(g, r.ins)
					if err != nil {
						t.Fatalf("row_chunk=%d, %s: %v", rc, r.what, err)
					}
					if d, err := maxDiff(r.want, got, false); err != nil || d > 1e-5 {
						t.Errorf("row_chunk=%d, %s: vs unfused %g %v", rc, r.what, d, err)
					}
					if r.ptor != nil {
						if d, err := maxDiff(r.ptor, got, false); err != nil || d > 1e-4 {
							t.Errorf("row_chunk=%d, %s: vs PyTorch %g %v", rc, r.what, d, err)
						}
					}
				}
			}
		})
	}
}

// stepTotals is the planner's estimate of the bytes live at every step
// (the same accounting as planner.peak: the worst over its evaluation
// orders), for g at dims on the CPU.
func stepTotals(t *testing.T, g *graph.Graph, dims map[string]int64) ([]int64, *planner) {
	t.Helper()
	p := &planner{g: g, dims: dims, opts: Options{Device: "cpu"}, shapes: map[*graph.Value][]int64{}, bytes: map[*graph.Value]int64{},
		root: map[*graph.Value]*graph.Value{}}
	if err := p.bind(); err != nil {
		t.Fatal(err)
	}
	tot := make([]int64, len(p.steps))
	for _, o := range p.orders {
		p.simulate(o, func(i int, total int64) { tot[i] = max(tot[i], total) })
	}
	return tot, p
}

// maxWhere is the largest step total among steps whose node satisfies in.
func maxWhere(tot []int64, p *planner, in func(*graph.Node) bool) int64 {
	best := int64(0)
	for i, s := range p.steps {
		if in(s.n) && tot[i] > best {
			best = tot[i]
		}
	}
	return best
}

// inTriMul reports whether a node belongs to a triangle multiplication: its
// exported name (ONNX node or value names carry the module path) or the
// fused op.
func inTriMul(n *graph.Node) bool {
	if n.QualifiedOp() == "of3c.TriangleMultiplication" {
		return true
	}
	return strings.Contains(n.Name, "tri_mul") || (len(n.Outputs) > 0 && n.Outputs[0] != nil && strings.Contains(n.Outputs[0].Name, "tri_mul"))
}

// At N = 1024 the of3-width PairformerBlock's triangle multiplications: in
// the unfused export their steps hold ~3 GiB (the residual stream, LN_in, a,
// and b's gate, projection and product at once); fused, the planner
// row-chunks them into the budget, but they cannot go below ≈ 3.2 GiB: the
// blocked lowering keeps b whole, the finished row blocks (until they are
// concatenated) and the output — three [N, N, h] tensors — besides the
// residual stream, LN_in and the gate, whatever the chunk. (That is more
// than the unfused export's 3.02 GiB; see docs/notes/PERFORMANCE.md, "Memory
// planner".)
func TestPlanPairformerOf3At1024(t *testing.T) {
	fx := generatedFixture(t, "pairformer_block_of3_torchscript")
	dims := map[string]int64{"N": 1024}
	unfused := loadFixtureGraph(t, *fx)
	names := mustSelect(t)
	var without []string
	for _, n := range names {
		if n != "fuse-outer-product" && n != "fuse-triangle-mul" {
			without = append(without, n)
		}
	}
	if _, err := Run(unfused, Options{Passes: without, Verify: true}); err != nil {
		t.Fatal(err)
	}
	fused := loadFixtureGraph(t, *fx)
	if _, err := Run(fused, Options{Verify: true}); err != nil {
		t.Fatal(err)
	}
	const budget = 3_700 << 20 // above the fused block's floor (the triangle multiplications, above)
	var triBefore, triAfter int64
	for i, g := range []*graph.Graph{unfused, fused} {
		plan, err := PlanMemory(g, dims, budget, Options{Device: "cpu"})
		if err != nil {
			t.Fatal(err)
		}
		if err := plan.Apply(g); err != nil {
			t.Fatal(err)
		}
		tot, p := stepTotals(t, g, dims)
		tri := maxWhere(tot, p, inTriMul)
		t.Logf("%s: whole block peak %s → %s (at %s); triangle-multiplication steps after planning: %s",
			[]string{"without pair-op fusion", "with pair-op fusion"}[i], units.FormatBytes(plan.PeakBefore), units.FormatBytes(plan.PeakAfter), plan.PeakNode, units.FormatBytes(tri))
		if i == 0 {
			triBefore = tri
		} else {
			triAfter = tri
			for _, c := range plan.Chunks {
				t.Logf("  %s %s %v workspace %s → %s", c.Op, c.Node, c.Attrs, units.FormatBytes(c.WorkspaceBefore), units.FormatBytes(c.WorkspaceAfter))
			}
		}
	}
	if triBefore < 3<<30 || triAfter > budget {
		t.Errorf("triangle-multiplication peak %s → %s, want ≥ 3 GiB → ≤ the budget", units.FormatBytes(triBefore), units.FormatBytes(triAfter))
	}
	// Triangle attention needs 3.06 GiB in order on the CPU (the [N, N, 388] merged
	// q/k/v/bias projection, the residual stream, LN of it and the attention
	// output live at once; the fused attention kernel needs nothing more,
	// elsewhere the unfused attention's blocks add their results, 0.5 GiB),
	// which no chunk attribute can lower; the planner says so.
	_, err := PlanMemory(fused, dims, 3<<30, Options{Device: "cpu"})
	if err == nil || !strings.Contains(err.Error(), "of3c.Attention") {
		t.Errorf("at 3 GiB: %v, want a refusal at the triangle attention", err)
	} else {
		t.Logf("at 3 GiB: %v", err)
	}
}

// An OuterProductMean at OpenFold3's MSA-module widths (c_m 64, hidden 32,
// c_z 128) at N = 1024, S = 1024: unfused, the [N, N, 32·32] outer products
// and the [N·32, N·32] GEMM result are 4 GiB each; fused and row-chunked the
// op fits a 1.75 GiB budget (its input, output and the normalised output:
// ≈ 1.1 GiB, plus the row blocks, which live until they are concatenated:
// 0.5 GiB).
func TestPlanOuterProductMeanOf3Widths(t *testing.T) {
	g := mustParse(t, opmOf3Graph)
	unfused := graph.Clone(g)
	if _, err := Run(g, Options{Verify: true}); err != nil {
		t.Fatal(err)
	}
	if findOp(g, "of3c.OuterProductMean") == nil {
		t.Fatalf("no fused op:\n%s", graph.Format(g))
	}
	dims := map[string]int64{"N": 1024, "S": 1024}
	var without []string
	for _, n := range mustSelect(t) {
		if n != "fuse-outer-product" {
			without = append(without, n)
		}
	}
	if _, err := Run(unfused, Options{Passes: without}); err != nil {
		t.Fatal(err)
	}
	before, err := PlanMemory(unfused, dims, 1<<40, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const budget = 1792 << 20
	plan, err := PlanMemory(g, dims, budget, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("unfused peak %s; fused %s → %s with %v", units.FormatBytes(before.PeakAfter), units.FormatBytes(plan.PeakBefore), units.FormatBytes(plan.PeakAfter), plan.Chunks)
	if before.PeakAfter < 6<<30 || plan.PeakAfter > budget || len(plan.Chunks) != 1 || plan.Chunks[0].Attrs["row_chunk"] == 0 {
		t.Errorf("plan %+v (unfused peak %s)", plan, units.FormatBytes(before.PeakAfter))
	}
	// The planned graph still computes the unfused result (small dims).
	if err := plan.Apply(g); err != nil {
		t.Fatal(err)
	}
	small := map[string]int64{"N": 6, "S": 3}
	ins := testInputs(t, unfused, small, 2)
	want, err := ref.Run(unfused, ins)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ref.Run(g, ins)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := maxDiff(want, got, false); err != nil || d > 1e-5 {
		t.Errorf("planned vs unfused: %g %v", d, err)
	}
}

// OpenFold3's OuterProductMean at of3 widths, written as the torchscript
// exporter writes it (flatten, GEMM over S, unflatten, channels last).
const opmOf3Graph = `graph opm opsets(ai.onnx=17) {
  input %m:f32[S,N,64]
  input %msa_mask:f32[S,N]
  %w1:f32[64,32] = const random(1, -0.1, 0.1)
  %w2:f32[64,32] = const random(2, -0.1, 0.1)
  %wo:f32[1024,128] = const random(3, -0.05, 0.05)
  %bo:f32[128] = const random(4, -0.1, 0.1)
  %ax:i64[1] = const [-1]
  %flat2:i64[2] = const [0, -1]
  %t4:i64[4] = const [-1, 32, 0, 32]
  %t3:i64[3] = const [0, 0, 1024]
  %eps:f32[] = const [0.001]
  %c32:i64[1] = const [32]
  %mu:f32[S,N,1] = Unsqueeze(%msa_mask, %ax)
  %pa:f32[S,N,32] = MatMul(%m, %w1)
  %a:f32[S,N,32] = Mul(%pa, %mu)
  %pb:f32[S,N,32] = MatMul(%m, %w2)
  %b:f32[S,N,32] = Mul(%pb, %mu)
  %ra:f32[S,32*N] = Reshape(%a, %flat2)
  %ta:f32[32*N,S] = Transpose(%ra) {perm=[1, 0]}
  %rb:f32[S,32*N] = Reshape(%b, %flat2)
  %outer:f32[32*N,32*N] = MatMul(%ta, %rb)
  %nn:i64[1] = Shape(%m) {start=1, end=2}
  %tgt:i64[4] = Concat(%nn, %c32, %nn, %c32) {axis=0}
  %r4:f32[N,32,N,32] = Reshape(%outer, %tgt)
  %p4:f32[N,N,32,32] = Transpose(%r4) {perm=[0, 2, 1, 3]}
  %flat:f32[N,N,1024] = Reshape(%p4, %t3)
  %proj:f32[N,N,128] = MatMul(%flat, %wo)
  %biased:f32[N,N,128] = Add(%proj, %bo)
  %mt:f32[N,S] = Transpose(%msa_mask) {perm=[1, 0]}
  %norm:f32[N,N] = MatMul(%mt, %msa_mask)
  %norme:f32[N,N] = Add(%norm, %eps)
  %normu:f32[N,N,1] = Unsqueeze(%norme, %ax)
  %z:f32[N,N,128] = Div(%biased, %normu)
  output %z
}`
