package ref

import (
	"strings"
	"testing"

	"of3c/graph"
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
