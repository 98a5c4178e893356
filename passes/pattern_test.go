package passes

import (
	"os"
	"strings"
	"testing"

	"github.com/of3c/of3c/graph"
)

func mustParse(t *testing.T, text string) *graph.Graph {
	t.Helper()
	g, err := graph.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func valueNamed(g *graph.Graph, name string) *graph.Value {
	for _, v := range g.AllValues() {
		if v.Name == name {
			return v
		}
	}
	return nil
}

const matcherGraph = `graph m opsets(ai.onnx=17) {
  input %x:f32[N,4]
  input %y:f32[N,4]
  %w:f32[4,4] = const fill(0.5)
  %two:f32[] = const [2]
  %a:f32[N,4] = MatMul(%x, %w)
  %s:f32[N,4] = Sigmoid(%a)
  %silu:f32[N,4] = Mul(%s, %a)
  %scaled:f32[N,4] = Mul(%two, %x)
  %c:f32[N,4] = Cast(%scaled) {to=1}
  %shared:f32[N,4] = Add(%x, %y)
  %u1:f32[N,4] = Neg(%shared)
  %u2:f32[N,4] = Abs(%shared)
  %notsilu:f32[N,4] = Mul(%s, %y)
  output %silu, %c, %u1, %u2, %notsilu
}`

func TestMatcher(t *testing.T) {
	g := mustParse(t, matcherGraph)
	m := NewMatcher(g)
	silu := Op("Mul", Any("a"), Op("Sigmoid", Any("a")))
	cases := []struct {
		name    string
		pat     *Pattern
		at      string
		ok      bool
		capture string // capture that must bind…
		want    string // …to this value
		reason  string // for failures: part of the explanation
	}{
		{"commutative operands", silu, "silu", true, "a", "a", ""},
		{"same capture must bind one value", silu, "notsilu", false, "", "", "differs from the a bound earlier"},
		{"constant with predicate", Op("Mul", ScalarConst("k"), Any("v")), "scaled", true, "k", "two", ""},
		{"constant predicate fails", Op("Mul", ConstNear("k", 3, 0), Any("v")), "scaled", false, "", "", "constant is not the constant 3"},
		{"optional node present", Op("Cast", Op("Mul", ScalarConst(""), Any("v"))).Optional(), "c", true, "v", "x", ""},
		{"optional node absent", Op("Cast", Op("Mul", ScalarConst(""), Any("v"))).Optional(), "scaled", true, "v", "x", ""},
		{"single use", Op("Neg", Op("Add", Any("p"), Any("q")).OneUse()), "u1", false, "", "", "has 2 readers"},
		{"alternatives", Op("Neg|Abs", Any("in")), "u2", true, "in", "shared", ""},
		{"one of", OneOf(Op("Neg", Any("in")), Op("Mul", Any("in"), Op("Sigmoid", Any("")))), "silu", true, "in", "a", ""},
		{"where", Op("Cast", Any("")).Where("casts to f16", func(n *graph.Node) bool { return n.AttrInt("to", 0) == 10 }), "c", false, "", "", "casts to f16 does not hold"},
		{"op mismatch", Op("MatMul", Any(""), Any("")), "silu", false, "", "", ""},
	}
	for _, c := range cases {
		v := valueNamed(g, c.at)
		mt, ok := m.Match(c.pat, v)
		if ok != c.ok {
			t.Errorf("%s: match = %v, want %v", c.name, ok, c.ok)
			continue
		}
		if ok && c.capture != "" {
			if got := mt.Value(c.capture); got == nil || got.Name != c.want {
				t.Errorf("%s: %s bound to %v, want %%%s", c.name, c.capture, got, c.want)
			}
		}
		if !ok && c.reason != "" {
			f, _ := m.LastFailure()
			if !strings.Contains(f.Reason, c.reason) {
				t.Errorf("%s: failure %q, want it to mention %q", c.name, f, c.reason)
			}
		}
	}
	// The match covers the Mul and the Sigmoid (Any does not take in a's
	// producer); the Sigmoid is also read by notsilu, so replacing the match
	// as a whole would lose it.
	mt, ok := m.Match(silu, valueNamed(g, "silu"))
	if !ok {
		t.Fatal("silu did not match")
	}
	if len(mt.All) != 2 || mt.All[0].Outputs[0].Name != "silu" {
		t.Errorf("matched nodes %v, want the Mul first, then the Sigmoid", mt.All)
	}
	if esc, closed := m.Closed(mt); closed || esc.Name != "s" {
		t.Errorf("Closed = %v, %v; want %%s escaping", esc, closed)
	}
	mt, ok = m.Match(Op("Cast", Op("Mul", ScalarConst(""), Any(""))), valueNamed(g, "c"))
	if !ok {
		t.Fatal("cast did not match")
	}
	if _, closed := m.Closed(mt); !closed {
		t.Error("Cast(Mul) match should be closed")
	}
}

func TestSelectAndTable(t *testing.T) {
	names := Names()
	if len(names) == 0 || names[0] != "infer-shapes" {
		t.Fatalf("Names() = %v", names)
	}
	if _, err := Select(Options{Passes: []string{"no-such-pass"}}); err == nil || !strings.Contains(err.Error(), "unknown pass") {
		t.Errorf("unknown pass: %v", err)
	}
	if _, err := Select(Options{Passes: []string{"fuse-attention", "canonicalize"}}); err == nil || !strings.Contains(err.Error(), "must run after") {
		t.Errorf("order: %v", err)
	}
	def, err := Select(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range def {
		if n == "plan-memory" {
			t.Error("plan-memory runs by default without a budget")
		}
	}
	withBudget, _ := Select(Options{MemoryBudget: 1 << 30})
	if withBudget[len(withBudget)-1] != "plan-memory" {
		t.Errorf("with a budget: %v", withBudget)
	}
}

func TestRunLogAndDump(t *testing.T) {
	g := mustParse(t, matcherGraph)
	dir := t.TempDir()
	log, err := Run(g, Options{Passes: []string{"remove-noops", "dce"}, Verify: true, DumpDir: dir, DumpDOT: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(log.Passes) != 2 || log.Passes[0].Name != "remove-noops" || log.Passes[0].Rewrites["cast-same-type"] != 1 {
		t.Errorf("log: %+v", log.Passes)
	}
	js, err := log.JSON()
	if err != nil || !strings.Contains(string(js), `"nodes_before"`) {
		t.Errorf("JSON: %s %v", js, err)
	}
	for _, f := range []string{"00-input.txt", "01-remove-noops.txt", "02-dce.txt", "02-dce.dot"} {
		if _, err := graph.Parse(readFile(t, dir+"/"+f)); err != nil && strings.HasSuffix(f, ".txt") {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Explain says why an attention that almost matches did not fuse.
func TestExplainAttentionNearMiss(t *testing.T) {
	g := mustParse(t, `graph near opsets(ai.onnx=17) {
  input %q:f32[2,N,4]
  input %k:f32[2,N,4]
  input %v:f32[2,N,4]
  %kt:f32[2,4,N] = Transpose(%k) {perm=[0, 2, 1]}
  %s:f32[2,N,N] = MatMul(%q, %kt)
  %p:f32[2,N,N] = Softmax(%s) {axis=-1}
  %o:f32[2,N,4] = MatMul(%p, %v)
  output %o, %p
}`)
	ex, log, err := Explain(g, Options{Passes: []string{"fuse-attention"}, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(ex) != 1 || !strings.Contains(ex[0].Reason, "probabilities have") || ex[0].Rule != "attention" {
		t.Errorf("explanations %v", ex)
	}
	if !strings.Contains(log.Format(), "explain: fuse-attention") {
		t.Errorf("log does not show the explanation:\n%s", log.Format())
	}
	if c := g.OpCounts(); c["Softmax"] != 1 {
		t.Errorf("fused although the probabilities are an output: %v", c)
	}
}

// A value read only inside an If branch must survive dead-code removal, and
// a rewrite of it must reach the branch.
func TestNestedGraphReadsSurvive(t *testing.T) {
	g := mustParse(t, `graph nested opsets(ai.onnx=17) {
  input %x:f32[4]
  input %cond:bool[]
  %one:f32[] = const [1]
  %y:f32[4] = Add(%x, %one)
  %yy:f32[4] = Identity(%y)
  %r:f32[4] = If(%cond) {else_branch=graph e {
    %e:f32[4] = Neg(%x)
    output %e
  }, then_branch=graph th {
    %t:f32[4] = Abs(%yy)
    output %t
  }}
  output %r
}`)
	// If has no shape rule, so the full verifier would refuse the graph;
	// the structural one applies.
	if _, err := Run(g, Options{Passes: []string{"remove-noops", "cse", "dce"}}); err != nil {
		t.Fatal(err)
	}
	if err := graph.VerifyStructure(g); err != nil {
		t.Fatal(err)
	}
	text := graph.Format(g)
	if !strings.Contains(text, "Add(%x, %one)") || !strings.Contains(text, "Abs(%y)") {
		t.Errorf("the branch's read of %%y was lost or not redirected:\n%s", text)
	}
}

// Scaled peels scalar factors (both Mul operand orders and Div) and binds
// their product; AddTree binds the leaves but the special one, in order.
func TestScaledAndAddTree(t *testing.T) {
	g := mustParse(t, `graph s opsets(ai.onnx=17) {
  input %a:f32[2,3]
  input %b:f32[2,3]
  input %c:f32[2,3]
  %two:f32[] = const [2]
  %four:f32[] = const [4]
  %ab:f32[2,3] = MatMul(%a, %b)
  %s1:f32[2,3] = Mul(%two, %ab)
  %s2:f32[2,3] = Div(%s1, %four)
  %t1:f32[2,3] = Add(%c, %s2)
  %t2:f32[2,3] = Add(%t1, %a)
  output %t2
}`)
	m := NewMatcher(g)
	p := AddTree("rest", Scaled("f", Op("MatMul", Any("x"), Any("y")).As("mm")))
	mt, ok := m.Match(p, g.Outputs[0])
	if !ok {
		t.Fatal("no match")
	}
	if f := mt.Scalar("f"); f != 0.5 {
		t.Errorf("scale %g, want 0.5", f)
	}
	rest := mt.List("rest")
	if len(rest) != 2 || rest[0].Name != "c" || rest[1].Name != "a" {
		t.Errorf("other leaves %v, want [c a]", rest)
	}
	if mt.Value("x").Name != "a" || mt.Value("y").Name != "b" {
		t.Errorf("x, y = %v, %v", mt.Value("x"), mt.Value("y"))
	}
	// The Adds, the scaling nodes and the MatMul are covered (5 nodes).
	if len(mt.All) != 5 {
		t.Errorf("covered %d nodes, want 5", len(mt.All))
	}
	// No leaf matches the special pattern: all three are bound.
	mt, ok = m.Match(AddTree("rest", Op("Relu", Any(""))), g.Outputs[0])
	if !ok || len(mt.List("rest")) != 3 {
		t.Errorf("without a special leaf: ok %v, rest %v", ok, mt.List("rest"))
	}
	// NotConst refuses a constant.
	if _, ok := m.Match(Any("k").NotConst(), g.Consts[0]); ok {
		t.Error("NotConst matched a constant")
	}
}
