package graph

import (
	"strings"
	"testing"
)

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, src, want string
	}{
		{"empty", "", "1:1: expected \"graph\""},
		{"no body", "graph g", "1:8: expected \"{\""},
		{"unclosed", "graph g {\n  input %x:f32[2]\n", "3:1: graph \"g\": missing closing }"},
		{"trailing", "graph g {\n}\nx", "3:1: unexpected text after"},
		{"use before def", "graph g {\n  %y = Relu(%x)\n}", "2:13: %x is used before it is defined"},
		{"self use", "graph g {\n  %y = Relu(%y)\n}", "2:13: %y is used before it is defined"},
		{"duplicate", "graph g {\n  input %x:f32[2]\n  input %x:f32[2]\n}", "3:9: %x is defined twice"},
		{"bad dtype", "graph g {\n  input %x:f33[2]\n}", "2:12: unknown dtype \"f33\""},
		{"negative dim", "graph g {\n  input %x:f32[2,-3]\n}", "2:18: negative dim -3"},
		{"unterminated type", "graph g {\n  input %x:f32[2\n}", "2:15: unterminated [ in type"},
		{"count", "graph g {\n  %c:f32[3] = const [1, 2]\n}", "2:21: 2 elements for f32[3], which holds 3"},
		{"too many", "graph g {\n  %c:f32[1] = const [1, 2]\n}", "2:25: more than the 1 elements"},
		{"int range", "graph g {\n  %c:i8[1] = const [300]\n}", "2:20: element 0 (300) is out of range for i8"},
		{"fraction for int", "graph g {\n  %c:i64[1] = const fill(0.5)\n}", "is not an integer"},
		{"symbolic const", "graph g {\n  %c:f32[N] = const fill(1)\n}", "2:3: constant type f32[N] must have a static shape"},
		{"untyped const", "graph g {\n  %c = const [1]\n}", "2:3: constant %c needs a type"},
		{"elided", "graph g {\n  %c:f32[64] = const dense<crc32c:00000000>\n}", "2:22: constant data was elided"},
		{"huge const", "graph g {\n  %c:f32[1099511627776] = const fill(0)\n}", "too large for text"},
		{"attr dup", "graph g {\n  input %x:f32[2]\n  %y = Relu(%x) {a=1, a=2}\n}", "3:23: attribute \"a\" given twice"},
		{"empty list", "graph g {\n  input %x:f32[2]\n  %y = Relu(%x) {a=[]}\n}", "an empty list needs its kind"},
		{"mixed list", "graph g {\n  input %x:f32[2]\n  %y = Relu(%x) {a=[1, \"s\"]}\n}", "list mixes strings and numbers"},
		{"bad string", "graph g {\n  meta k=\"abc\n}", "2:10: unterminated string"},
		{"missing paren", "graph g {\n  input %x:f32[2]\n  %y = Relu(%x\n}", "expected \",\" between operands or \")\""},
		{"two stmts", "graph g {\n  input %x:f32[2] input %y:f32[2]\n}", "2:19: expected end of line"},
		{"int overflow", "graph g {\n  input %x:f32[2]\n  %y = Relu(%x) {a=99999999999999999999}\n}", "out of range"},
		{"random seed", "graph g {\n  %c:f32[2] = const random(-1)\n}", "non-negative integer seed"},
		{"random range", "graph g {\n  %c:f32[2] = const random(1, 2, 1)\n}", "empty or infinite range"},
		{"inner scope", "graph g {\n  input %x:f32[2]\n  %y = Loop(%x) {body=graph b {\n    input %i:f32[2]\n    output %i\n  }}\n  output %i\n}", "7:10: %i is used before it is defined"},
		{"opset twice", "graph g opsets(ai.onnx=1, \"\"=2) {\n}", "opset for domain \"\" given twice"},
		{"unicode column", "graph g {\n  meta é=1\n}", "2:8: expected a meta key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, err := Parse(c.src)
			if err == nil {
				t.Fatalf("parsed without error:\n%s", Format(g))
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q\n  does not contain %q", err, c.want)
			}
			if _, ok := err.(*ParseError); !ok {
				t.Errorf("error is %T, want *ParseError", err)
			}
		})
	}
}

func TestParseConveniences(t *testing.T) {
	// Comments, blank lines, lists over several lines, blanks around ':'
	// and a type-less node output are all accepted.
	g, err := Parse(`
# a comment
graph g {

  input %x : f32[N, 4]   # trailing comment
  %w:f32[4,2] = const [
    1, 2,
    3, 4,
    5, 6,
    7, 8,
  ]
  %y = MatMul(
    %x,
    %w,
  ) {
    transA=0,
  }
  output %y
}
`)
	if err != nil {
		t.Fatal(err)
	}
	vals, _ := g.Consts[0].Const.Float64s()
	if len(vals) != 8 || vals[7] != 8 {
		t.Errorf("const values %v", vals)
	}
	if g.Inputs[0].Type.String() != "f32[N,4]" || g.Nodes[0].AttrInt("transA", -1) != 0 {
		t.Errorf("input type %s attrs %v", g.Inputs[0].Type, g.Nodes[0].Attrs)
	}
}

func TestRandomAndFillAgreeWithBuilder(t *testing.T) {
	g, err := Parse("graph g {\n  %r:f32[3,5] = const random(42)\n  %i:i32[7] = const random(3, -5, 5)\n  %f:bf16[4] = const fill(0.25)\n}")
	if err != nil {
		t.Fatal(err)
	}
	b := NewBuilder("g", 17)
	r := b.Random("r", "f32[3,5]", 42)
	f := b.Fill("f", "bf16[4]", 0.25)
	if string(r.Const.Data) != string(g.Consts[0].Const.Data) || string(f.Const.Data) != string(g.Consts[2].Const.Data) {
		t.Error("builder and text constants differ")
	}
	vals, _ := g.Consts[0].Const.Float64s()
	distinct := map[float64]bool{}
	for _, v := range vals {
		if v < -1 || v >= 1 {
			t.Errorf("random value %v outside [-1, 1)", v)
		}
		distinct[v] = true
	}
	if len(distinct) < 14 {
		t.Errorf("random values repeat: %v", vals)
	}
	ints, _ := g.Consts[1].Const.Int64s()
	for _, v := range ints {
		if v < -5 || v >= 5 {
			t.Errorf("random int %d outside [-5, 5)", v)
		}
	}
	// A different seed gives different data.
	other, _ := RandomTensor(Float32, []int64{3, 5}, 43, -1, 1)
	if string(other.Data) == string(r.Const.Data) {
		t.Error("seeds 42 and 43 gave the same tensor")
	}
}

func TestParseTypeText(t *testing.T) {
	for _, s := range []string{"f32[N,N,128]", "i64[]", "f32[*]", "f32[?,4]", `f32["batch size",4]`, "bf16[2*(floor(s0/2)),N*N+1]"} {
		ty, err := ParseTypeText(s)
		if err != nil {
			t.Errorf("%s: %v", s, err)
			continue
		}
		if got := txtFormatType(ty); got != s {
			t.Errorf("ParseTypeText(%q) prints back as %q", s, got)
		}
	}
	for _, s := range []string{"f32", "f32[", "x[1]", "f32[1]]", "f32[*,1]", "f32[,]"} {
		if _, err := ParseTypeText(s); err == nil {
			t.Errorf("ParseTypeText(%q) succeeded", s)
		}
	}
}
