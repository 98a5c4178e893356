package codegen

import (
	"testing"

	"github.com/of3c/of3c/graph"
)

// TestSegmentedProgram: with tiny segments, a graph whose values cross
// segment boundaries in every way — host-folded shape arithmetic, uploaded
// weights, graph inputs read late, an output that is an earlier segment's
// value — gives the reference executor's results, on repeated calls and a
// new shape.
func TestSegmentedProgram(t *testing.T) {
	needMLX(t)
	old := segmentNodes
	segmentNodes = 2
	defer func() { segmentNodes = old }()

	b := graph.NewBuilder("g", 17)
	x := b.Input("x", "f32[N,6]")
	w := b.Random("w", "f32[6,6]", 3)       // inline (≤ weightInline elements)
	big := b.Random("big", "f32[6,300]", 4) // uploaded (a weight argument)
	r := b.Op("Relu", x)
	sh := b.Op("Shape", r)
	n0 := b.Op("Gather", sh, b.ConstI64("zero", []int64{1}, 0), graph.AInt("axis", 0))
	tail := b.ConstI64("tail", []int64{2}, 2, 3)
	newShape := b.Op("Concat", n0, tail, graph.AInt("axis", 0))
	m := b.Op("MatMul", r, w)
	y := b.Op("Reshape", m, newShape)
	z := b.Op("Softmax", y, graph.AInt("axis", -1))
	back := b.Op("Reshape", z, b.Op("Shape", x))
	u := b.Op("Add", back, x) // x read again, many segments later
	v := b.Op("MatMul", u, big)
	e := b.Op("Exp", b.Op("Neg", b.Op("Abs", v)))
	b.Output(e, r)
	g := build(t, b)
	if segs := planSegments(g, nil); len(segs) < 4 {
		t.Fatalf("%d segments, want several", len(segs))
	}
	for _, n := range []int64{5, 5, 7} {
		in := map[string]*graph.Tensor{"x": randT(t, graph.Float32, []int64{n, 6}, uint64(n), -2, 2)}
		checkVsRef(t, g, in, 1e-5)
	}
	p, err := NewProgram(g, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if len(p.segs) < 4 {
		t.Fatalf("program has %d segments", len(p.segs))
	}
	for i, n := range []int64{5, 7, 5} {
		_, info, err := p.Run(map[string]*graph.Tensor{"x": randT(t, graph.Float32, []int64{n, 6}, 2, -1, 1)})
		if err != nil {
			t.Fatal(err)
		}
		if info.FirstCall != (i < 2) {
			t.Errorf("call %d (N=%d): FirstCall = %v", i, n, info.FirstCall)
		}
	}
}

// TestDeepChain: a chain far deeper than what crashed mx::compile
// (SIGSEGV in compile_dfs at 60,000 Relu nodes) compiles and runs.
func TestDeepChain(t *testing.T) {
	needMLX(t)
	const depth = 100_000
	b := graph.NewBuilder("chain", 17)
	x := b.Input("x", "f32[4]")
	for i := 0; i < depth; i++ {
		x = b.Op("Relu", x)
	}
	b.Output(x)
	g := build(t, b)
	p, err := NewProgram(g, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if want := (depth + segmentNodes - 1) / segmentNodes; len(p.segs) != want {
		t.Errorf("%d segments, want %d", len(p.segs), want)
	}
	in := graph.NewTensorF32([]int64{4}, []float32{1, -2, 3, -4})
	out, _, err := p.Run(map[string]*graph.Tensor{"x": in})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := out[g.Outputs[0].Name].Float64s()
	if want := []float64{1, 0, 3, 0}; len(got) != 4 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[3] != want[3] {
		t.Errorf("got %v, want %v", got, want)
	}
}
