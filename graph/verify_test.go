package graph

import (
	"fmt"
	"strings"
	"testing"
)

// withVerifyTestOps registers ops of a test-only domain for one test, so
// that these tests do not depend on the real shape rules being written
// alongside, and removes them afterwards: other tests walk every registered
// op, and "Panic" panics on purpose. Tests in this package do not run in
// parallel, so nothing else sees the temporary ops.
func withVerifyTestOps(t *testing.T) {
	t.Helper()
	same := func(n *Node) ([]Type, []Shape, error) {
		in := n.Input(0)
		if in == nil {
			return nil, nil, fmt.Errorf("no input")
		}
		ts := make([]Type, len(n.Outputs))
		for i := range ts {
			ts[i] = in.Type
		}
		return ts, nil, nil
	}
	defs := []OpDef{
		{Domain: "verifytest", Op: "Same", MinInputs: 1, MaxInputs: -1, MinOutputs: 1, MaxOutputs: 2, Infer: same},
		{Domain: "verifytest", Op: "Fail", MinInputs: 0, MaxInputs: -1, MinOutputs: 1, MaxOutputs: 1,
			Infer: func(n *Node) ([]Type, []Shape, error) { return nil, nil, fmt.Errorf("always fails") }},
		{Domain: "verifytest", Op: "Panic", MinInputs: 0, MaxInputs: -1, MinOutputs: 1, MaxOutputs: 1,
			Infer: func(n *Node) ([]Type, []Shape, error) { panic("rule bug") }},
	}
	for _, d := range defs {
		RegisterOp(d)
	}
	t.Cleanup(func() {
		for _, d := range defs {
			delete(opRegistry, opKey(d.Domain, d.Op))
		}
	})
}

const verifyOK = `graph g opsets(ai.onnx=17, verifytest=1) {
  input %x:f32[N,64]
  %c:f32[2] = const [1, 2]
  %a:f32[N,64] = verifytest.Same(%x)
  %b:f32[?,64], %b2:f32[*] = verifytest.Same(%a, %c)
  %d = verifytest.Same(%b, _)
  %l:f32[N,64] = verifytest.Same(%a) {body=graph inner {
    input %i:f32[N,64]
    %j:f32[N,64] = verifytest.Same(%i, %a)
    output %j
  }}
  output %d, %b2, %l
}
`

func TestVerifyAcceptsValidGraphs(t *testing.T) {
	withVerifyTestOps(t)
	g := MustParse(verifyOK)
	if err := Verify(g); err != nil {
		t.Fatal(err)
	}
	if err := Verify(bigGraphVerifiable(t)); err != nil {
		t.Fatal(err)
	}
}

func bigGraphVerifiable(t *testing.T) *Graph {
	b := NewBuilder("chain", 17)
	x := b.Input("x", "f32[N,8]")
	for i := 0; i < 1000; i++ {
		x = b.Op("verifytest.Same", x)
	}
	b.Output(x)
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestVerifyFindsEachViolation(t *testing.T) {
	withVerifyTestOps(t)
	cases := []struct {
		name   string
		break_ func(g *Graph)
		want   string
	}{
		{"cycle", func(g *Graph) {
			a, b := g.Nodes[0], g.Nodes[1]
			a.Inputs[0] = b.Outputs[0] // a reads b, b reads a
		}, `cycle: node "b" (verifytest.Same) -> node "a" (verifytest.Same) -> node "b" (verifytest.Same)`},
		{"use before def", func(g *Graph) {
			g.Nodes[0], g.Nodes[1] = g.Nodes[1], g.Nodes[0]
		}, `node "b" (verifytest.Same) input 0 reads %a before node "a" (verifytest.Same) defines it`},
		{"duplicate name", func(g *Graph) { g.Nodes[1].Outputs[0].Name = "a" }, "two values are named %a"},
		{"defined twice", func(g *Graph) { g.Inputs = append(g.Inputs, g.Inputs[0]) }, "%x is defined more than once"},
		{"output of two nodes", func(g *Graph) { g.Nodes[1].Outputs[0] = g.Nodes[0].Outputs[0] }, "%a is defined more than once"},
		{"dangling", func(g *Graph) { g.Nodes[1].Inputs[0] = &Value{Name: "ghost", Type: g.Inputs[0].Type} },
			`node "b" (verifytest.Same) input 0 reads %ghost, which nothing defines (dangling)`},
		{"undefined output", func(g *Graph) { g.Outputs = append(g.Outputs, &Value{Name: "nowhere"}) }, "graph output %nowhere is not defined"},
		{"nil output", func(g *Graph) { g.Outputs = append(g.Outputs, nil) }, "graph output 1 is nil"},
		{"shape mismatch", func(g *Graph) { g.Nodes[1].Outputs[0].Type = TensorType(Float32, Shape{S("N"), D(32)}) },
			`node "b" (verifytest.Same) output %b is recorded as f32[N,32], but the rule gives f32[N,64] (dim 1 differs)`},
		{"symbol vs static", func(g *Graph) { g.Nodes[1].Outputs[0].Type = TensorType(Float32, Shape{D(5), D(64)}) }, "dim 0 differs"},
		{"dtype mismatch", func(g *Graph) { g.Nodes[1].Outputs[0].Type = TensorType(Float16, Shape{S("N"), D(64)}) }, "dtype differs"},
		{"rank mismatch", func(g *Graph) { g.Nodes[1].Outputs[0].Type = TensorType(Float32, Shape{S("N")}) }, "rank differs"},
		{"unsupported op", func(g *Graph) { g.Nodes[1].Op = "NoSuchOp" }, "unsupported op NoSuchOp (domain verifytest"},
		{"arity", func(g *Graph) { g.Nodes[1].Inputs = nil }, "0 inputs, want 1..-1"},
		{"rule error", func(g *Graph) { g.Nodes[1].Op = "Fail" }, `node "b" (verifytest.Fail): always fails`},
		{"rule panic", func(g *Graph) { g.Nodes[1].Op = "Panic" }, `node "b" (verifytest.Panic): shape rule panicked: rule bug`},
		{"const without data", func(g *Graph) { g.Consts[0].Const = nil }, "constant %c has no data"},
		{"const type", func(g *Graph) { g.Consts[0].Type = TensorType(Float32, Shape{D(3)}) }, "constant %c has type f32[3] but its data is f32[2]"},
		{"const bytes", func(g *Graph) { g.Consts[0].Const.Data = g.Consts[0].Const.Data[:3] }, "constant %c: tensor f32[2]: 3 data bytes, want 8"},
		{"const not listed", func(g *Graph) {
			g.Nodes[1].Inputs[0] = &Value{Name: "k", Type: TensorType(Float32, Shape{S("N"), D(64)}), Const: g.Consts[0].Const}
		}, "reads constant %k, which is not in the graph's Consts"},
		{"producer link", func(g *Graph) { g.Nodes[1].Outputs[0].Producer = g.Nodes[0] }, `output 0 %b has Producer`},
		{"duplicate node name", func(g *Graph) { g.Nodes[1].Name = "a" }, `two nodes are named "a"`},
		{"nil node", func(g *Graph) { g.Nodes = append(g.Nodes, nil) }, "node 2 is nil"},
		{"input with data", func(g *Graph) { g.Inputs[0].Const = g.Consts[0].Const }, "graph input %x has constant data"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := MustParse(`graph g opsets(ai.onnx=17, verifytest=1) {
  input %x:f32[N,64]
  %c:f32[2] = const [1, 2]
  %a:f32[N,64] = verifytest.Same(%x) @a
  %b:f32[N,64] = verifytest.Same(%a) @b
  output %b
}`)
			if err := Verify(g); err != nil {
				t.Fatalf("valid before breaking it: %v", err)
			}
			c.break_(g)
			err := Verify(g)
			if err == nil {
				t.Fatalf("Verify accepted the broken graph")
			}
			t.Log(err)
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error:\n%v\nwant it to contain:\n%s", err, c.want)
			}
			// The printer copes with every broken graph.
			_ = Format(g)
			_ = Clone(g)
		})
	}
}

func TestVerifyNestedScopes(t *testing.T) {
	withVerifyTestOps(t)
	g := MustParse(verifyOK)
	inner := g.Nodes[3].Attrs["body"].Graph
	// The nested graph may read %a (defined before its node) but not a value
	// that its node's graph defines after that node.
	later := &Node{Domain: "verifytest", Op: "Same", Inputs: []*Value{g.Inputs[0]}, Opset: 1}
	lv := &Value{Name: "late", Type: g.Inputs[0].Type, Producer: later}
	later.Outputs = []*Value{lv}
	g.Nodes = append(g.Nodes, later)
	inner.Nodes[0].Inputs[1] = lv
	err := Verify(g)
	if err == nil || !strings.Contains(err.Error(), `node "l" (verifytest.Same) attribute body: node "j" (verifytest.Same) input 1 reads %late`) {
		t.Errorf("got %v", err)
	}
}

func TestVerifyListsAtMostMaxProblems(t *testing.T) {
	withVerifyTestOps(t)
	b := NewBuilder("g", 17)
	for i := 0; i < MaxVerifyProblems+7; i++ {
		b.Op("verifytest.Same", &Value{Name: fmt.Sprint("ghost", i)}, Typed("f32[1]"))
	}
	g, _ := b.Build()
	err := Verify(g)
	ve, ok := err.(*VerifyError)
	if !ok {
		t.Fatalf("got %T %v", err, err)
	}
	if len(ve.Problems) != MaxVerifyProblems || ve.Omitted != 7 || !strings.Contains(err.Error(), "27 problems") ||
		!strings.Contains(err.Error(), "... and 7 more") {
		t.Errorf("%d listed, %d omitted:\n%v", len(ve.Problems), ve.Omitted, err)
	}
}

func TestVerifyStructureIgnoresOps(t *testing.T) {
	g := MustParse("graph g {\n  input %x:f32[2]\n  %y:i64[7] = Unknown.Op(%x)\n  output %y\n}")
	if err := VerifyStructure(g); err != nil {
		t.Errorf("VerifyStructure: %v", err)
	}
	if err := Verify(g); err == nil || !strings.Contains(err.Error(), "unsupported op Op (domain Unknown") {
		t.Errorf("Verify: %v", err)
	}
}

func TestCloneIsDeepAndSharesData(t *testing.T) {
	withVerifyTestOps(t)
	g := MustParse(verifyOK)
	g.Meta = map[string]string{"k": "v"}
	g.Nodes[0].Outputs[0].ShapeValue = Shape{S("N")}
	c := Clone(g)
	if Format(c) != Format(g) {
		t.Fatalf("clone prints differently:\n%s", lineDiff(Format(g), Format(c)))
	}
	if err := Verify(c); err != nil {
		t.Fatal(err)
	}
	// No pointer is shared except constant data bytes.
	orig := map[any]bool{}
	for _, v := range g.AllValues() {
		orig[v] = true
	}
	for _, n := range g.Nodes {
		orig[n] = true
	}
	for _, v := range c.AllValues() {
		if orig[v] {
			t.Errorf("value %s shared", v)
		}
	}
	for i, n := range c.Nodes {
		if orig[n] {
			t.Errorf("node %s shared", n)
		}
		for _, in := range n.Inputs {
			if in != nil && orig[in] {
				t.Errorf("node %d reads an original value %s", i, in)
			}
		}
		for _, o := range n.Outputs {
			if o.Producer != n {
				t.Errorf("output %s of clone node %d has producer %v", o, i, o.Producer)
			}
		}
	}
	inner := c.Nodes[3].Attrs["body"].Graph
	if inner == g.Nodes[3].Attrs["body"].Graph || inner.Nodes[0].Inputs[1] != c.Nodes[0].Outputs[0] {
		t.Error("nested graph not cloned or its outer read not remapped")
	}
	if &c.Consts[0].Const.Data[0] != &g.Consts[0].Const.Data[0] || c.Consts[0].Const == g.Consts[0].Const {
		t.Error("constant bytes should be shared, tensor headers not")
	}
	// Changing the clone leaves the original alone.
	before := Format(g)
	c.Nodes[0].Outputs[0].Type.Shape[1] = D(7)
	c.Nodes[1].Attrs = map[string]Attr{"x": IntAttr(1)}
	c.Meta["k"] = "changed"
	c.Opsets[""] = 99
	c.Nodes[0].Outputs[0].ShapeValue[0] = D(1)
	c.Nodes = c.Nodes[:1]
	if Format(g) != before || g.Nodes[0].Outputs[0].ShapeValue[0] != S("N") {
		t.Error("mutating the clone changed the original")
	}
	if Clone(nil) != nil {
		t.Error("Clone(nil) != nil")
	}
}

// A large graph stored in reverse order has a use before definition at every
// node; Verify must stay linear (one cycle search), list MaxVerifyProblems of
// them and report no cycle.
func TestVerifyReversedLargeGraph(t *testing.T) {
	withVerifyTestOps(t)
	g := bigGraphVerifiable(t)
	for i, j := 0, len(g.Nodes)-1; i < j; i, j = i+1, j-1 {
		g.Nodes[i], g.Nodes[j] = g.Nodes[j], g.Nodes[i]
	}
	err := Verify(g)
	ve, ok := err.(*VerifyError)
	if !ok || len(ve.Problems) != MaxVerifyProblems || ve.Omitted != 999-MaxVerifyProblems ||
		strings.Contains(err.Error(), "cycle") || !strings.Contains(ve.Problems[0], "before") {
		t.Errorf("%v", err)
	}
}

// With the real shape rules: a graph whose types the rules produced passes,
// and a recorded type the MatMul rule contradicts is reported.
func TestVerifyWithRegisteredRules(t *testing.T) {
	for _, op := range []string{"MatMul", "Add", "Relu"} {
		if LookupOp("", op) == nil {
			t.Skipf("no shape rule for %s registered yet", op)
		}
	}
	b := NewBuilder("g", 17)
	x := b.Input("x", "f32[N,64]")
	w := b.Random("w", "f32[64,32]", 1)
	bias := b.Fill("bias", "f32[32]", 0.5)
	y := b.Op("Relu", b.Op("Add", b.Op("MatMul", x, w), bias))
	b.Output(y)
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if y.Type.String() != "f32[N,32]" {
		t.Fatalf("rules gave %s", y.Type)
	}
	if err := Verify(g); err != nil {
		t.Fatal(err)
	}
	g.Nodes[0].Outputs[0].Type = TensorType(Float32, Shape{S("N"), D(64)})
	if err := Verify(g); err == nil || !strings.Contains(err.Error(), `output %matmul is recorded as f32[N,64], but the rule gives f32[N,32]`) {
		t.Errorf("got %v", err)
	}
}
