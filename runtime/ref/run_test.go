package ref

import (
	"errors"
	"strings"
	"testing"

	"github.com/of3c/of3c/graph"
)

// buildMLP is y = relu(x·W + b) with x: f32[N,2].
func buildMLP() *graph.Graph {
	g := graph.New("mlp", 17)
	x := g.AddInput("x", graph.TensorType(graph.Float32, graph.Shape{graph.S("N"), graph.D(2)}))
	w := g.AddConst("w", f32(sh(2, 2), 1, 2, 3, 4))
	b := g.AddConst("b", f32(sh(2), -10, 0))
	mm := g.AddNode("", "MatMul", []*graph.Value{x, w}, []string{"mm"}, nil)
	add := g.AddNode("", "Add", []*graph.Value{mm.Outputs[0], b}, []string{"pre"}, nil)
	relu := g.AddNode("", "Relu", []*graph.Value{add.Outputs[0]}, []string{"y"}, nil)
	g.Outputs = []*graph.Value{relu.Outputs[0], mm.Outputs[0]}
	return g
}

func TestRun(t *testing.T) {
	g := buildMLP()
	out, err := Run(g, map[string]*graph.Tensor{"x": f32(sh(2, 2), 1, 1, 2, 3)})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, out["y"], graph.Float32, sh(2, 2), fl(0, 6, 1, 16), 0)
	expect(t, out["mm"], graph.Float32, sh(2, 2), fl(4, 6, 11, 16), 0)
}

func TestRunChecksInputs(t *testing.T) {
	g := buildMLP()
	cases := map[string]map[string]*graph.Tensor{
		"missing graph input": {},
		"want f32":            {"x": i64(sh(1, 2), 1, 2)},
		"dim 1 is 3":          {"x": f32(sh(1, 3), 1, 2, 3)},
		"not a graph input":   {"x": f32(sh(1, 2), 1, 2), "z": f32(sh(1), 1)},
		"data bytes":          {"x": {DType: graph.Float32, Shape: sh(1, 2), Data: []byte{1, 2}}},
	}
	for want, ins := range cases {
		_, err := Run(g, ins)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want an error containing %q", err, want)
		}
	}
	// A symbolic dim must be consistent across inputs.
	g2 := graph.New("sym", 17)
	a := g2.AddInput("a", graph.TensorType(graph.Float32, graph.Shape{graph.S("N")}))
	b := g2.AddInput("b", graph.TensorType(graph.Float32, graph.Shape{graph.S("N")}))
	n := g2.AddNode("", "Add", []*graph.Value{a, b}, []string{"c"}, nil)
	g2.Outputs = n.Outputs
	if _, err := Run(g2, map[string]*graph.Tensor{"a": f32(sh(2), 1, 2), "b": f32(sh(3), 1, 2, 3)}); err == nil {
		t.Fatal("inconsistent N should fail")
	}
}

func TestRunErrorNamesNode(t *testing.T) {
	g := graph.New("bad", 17)
	x := g.AddInput("x", graph.TensorType(graph.Float32, graph.Shape{graph.D(2)}))
	n := g.AddNode("", "Reshape", []*graph.Value{x, g.AddConst("s", i64(sh(1), 3))}, []string{"r"}, nil)
	n.Name = "my_reshape"
	g.Outputs = n.Outputs
	_, err := Run(g, map[string]*graph.Tensor{"x": f32(sh(2), 1, 2)})
	if err == nil || !strings.Contains(err.Error(), "my_reshape") {
		t.Fatalf("got %v, want an error naming my_reshape", err)
	}
}

func TestRunTypeCheck(t *testing.T) {
	// Shape inference claims [N,3] for the MatMul; with N=2 the result is
	// [2,2]: Run must refuse, RunWith(NoTypeCheck) must not.
	g := buildMLP()
	mm := g.Nodes[0].Outputs[0]
	mm.Type = graph.TensorType(graph.Float32, graph.Shape{graph.S("N"), graph.D(3)})
	in := map[string]*graph.Tensor{"x": f32(sh(2, 2), 1, 1, 2, 3)}
	if _, err := Run(g, in); err == nil || !strings.Contains(err.Error(), "declared type") {
		t.Fatalf("got %v, want a declared-type mismatch", err)
	}
	if _, err := RunWith(g, in, Options{NoTypeCheck: true}); err != nil {
		t.Fatal(err)
	}
	// A symbol bound by the inputs must keep its size: N is 2 here, so a
	// value declared [N,N] that comes out [2,2] is fine, [N] with 4 is not.
	mm.Type = graph.TensorType(graph.Float32, graph.Shape{graph.S("N"), graph.S("N")})
	if _, err := Run(g, in); err != nil {
		t.Fatal(err)
	}
	mm.Type = graph.TensorType(graph.Int64, graph.Shape{graph.S("N"), graph.D(2)})
	if _, err := Run(g, in); err == nil {
		t.Fatal("dtype mismatch not caught")
	}
}

func TestRunObserve(t *testing.T) {
	g := buildMLP()
	var seen []string
	_, err := RunWith(g, map[string]*graph.Tensor{"x": f32(sh(1, 2), 1, 1)}, Options{
		Observe: func(n *graph.Node, outs []*graph.Tensor) error {
			seen = append(seen, n.Op+":"+outs[0].Type().String())
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(seen, " ") != "MatMul:f32[1,2] Add:f32[1,2] Relu:f32[1,2]" {
		t.Fatalf("observed %v", seen)
	}
	stop := RunWith
	if _, err := stop(g, map[string]*graph.Tensor{"x": f32(sh(1, 2), 1, 1)}, Options{
		Observe: func(*graph.Node, []*graph.Tensor) error { return errStop }}); err != errStop {
		t.Fatalf("got %v, want the observer's error", err)
	}
}

var errStop = errors.New("stop")

func TestRunStats(t *testing.T) {
	// x: f32[1,2] (8 bytes) → mm (8) → pre (8) → y (8). mm is a graph output
	// and stays alive; at Add, x is gone (last read by MatMul), so live is
	// mm + pre = 16; at Relu, pre + y + mm = 24 before pre is released.
	g := buildMLP()
	var st Stats
	if _, err := RunWith(g, map[string]*graph.Tensor{"x": f32(sh(1, 2), 1, 1)}, Options{Stats: &st}); err != nil {
		t.Fatal(err)
	}
	if st.PeakBytes != 24 || st.Nodes != 3 || !strings.Contains(st.PeakNode, "Relu") {
		t.Fatalf("stats %+v, want peak 24 bytes at Relu over 3 nodes", st)
	}
}
