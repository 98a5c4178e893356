package graph

import (
	"strings"
	"testing"
)

// in describes one node input for the inference tests: a graph input of the
// given type text, optionally with a known ShapeValue, or a constant.
type in struct {
	typ   string
	sv    Shape
	c     *Tensor
	empty bool // an omitted optional input
}

func ty(s string) in            { return in{typ: s} }
func ci(vals ...int64) in       { return in{c: NewTensorI64([]int64{int64(len(vals))}, vals)} }
func cs(v int64) in             { return in{c: NewTensorI64(nil, []int64{v})} }
func sv(typ string, s Shape) in { return in{typ: typ, sv: s} }

var none = in{empty: true}

// inferCase runs shape inference for one node.
type inferCase struct {
	name  string
	op    string
	opset int64
	ins   []in
	attrs map[string]Attr
	nout  int
	want  []string // output types; ignored when err is set
	sv    []string // expected ShapeValue text per output ("" = none)
	err   string   // substring of the expected error
}

func buildNode(t *testing.T, c inferCase) *Node {
	t.Helper()
	opset := c.opset
	if opset == 0 {
		opset = 18
	}
	g := New("t", opset)
	vals := make([]*Value, len(c.ins))
	for i, x := range c.ins {
		switch {
		case x.empty:
		case x.c != nil:
			vals[i] = g.AddConst("", x.c)
		default:
			typ, err := ParseType(x.typ)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			vals[i] = g.AddInput(g.UniqueName("x"), typ)
			vals[i].ShapeValue = x.sv
		}
	}
	nout := c.nout
	if nout == 0 {
		nout = 1
	}
	outs := make([]string, nout)
	for i := range outs {
		outs[i] = "y"
	}
	return g.AddNode("", c.op, vals, outs, c.attrs)
}

func runInferCases(t *testing.T, cases []inferCase) {
	t.Helper()
	for _, c := range cases {
		n := buildNode(t, c)
		types, svs, err := InferNode(n)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error = %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if len(types) != len(c.want) {
			t.Errorf("%s: %d output types, want %d", c.name, len(types), len(c.want))
			continue
		}
		for i, w := range c.want {
			if got := types[i].String(); got != w {
				t.Errorf("%s: output %d = %s, want %s", c.name, i, got, w)
			}
		}
		for i, w := range c.sv {
			got := ""
			if i < len(svs) && svs[i] != nil {
				got = svs[i].String()
			}
			if got != w {
				t.Errorf("%s: shape value %d = %q, want %q", c.name, i, got, w)
			}
		}
	}
}

func ai(v int64) Attr     { return Attr{Kind: AttrInt, Int: v} }
func ais(v ...int64) Attr { return Attr{Kind: AttrInts, Ints: v} }
func af(v float32) Attr   { return Attr{Kind: AttrFloat, Float: v} }
func astr(v string) Attr  { return Attr{Kind: AttrString, Str: v} }
func at(v *Tensor) Attr   { return Attr{Kind: AttrTensor, Tensor: v} }
func attrs(kv ...any) map[string]Attr {
	m := map[string]Attr{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1].(Attr)
	}
	return m
}

func TestInferBroadcast(t *testing.T) {
	runInferCases(t, []inferCase{
		{name: "same", op: "Add", ins: []in{ty("f32[2,3]"), ty("f32[2,3]")}, want: []string{"f32[2,3]"}},
		{name: "numpy", op: "Add", ins: []in{ty("f32[4,1,3]"), ty("f32[5,1]")}, want: []string{"f32[4,5,3]"}},
		{name: "scalar", op: "Mul", ins: []in{ty("f32[N,N,128]"), ty("f32[]")}, want: []string{"f32[N,N,128]"}},
		{name: "symbols equal", op: "Sub", ins: []in{ty("f32[N,1,4]"), ty("f32[1,N,4]")}, want: []string{"f32[N,N,4]"}},
		{name: "symbol vs 1", op: "Div", ins: []in{ty("f32[N,S]"), ty("f32[1,S]")}, want: []string{"f32[N,S]"}},
		{name: "symbol vs static", op: "Add", ins: []in{ty("f32[N]"), ty("f32[4]")}, want: []string{"f32[4]"}},
		{name: "symbol vs unknown", op: "Add", ins: []in{ty("f32[N]"), ty("f32[?]")}, want: []string{"f32[N]"}},
		{name: "unknown vs 1", op: "Add", ins: []in{ty("f32[?]"), ty("f32[1]")}, want: []string{"f32[?]"}},
		{name: "different symbols", op: "Add", ins: []in{ty("f32[N]"), ty("f32[S]")}, want: []string{"f32[?]"}},
		{name: "derived symbols", op: "Add", ins: []in{ty("f32[N*N]"), ty("f32[N*N]")}, want: []string{"f32[N*N]"}},
		{name: "unranked", op: "Add", ins: []in{ty("f32[*]"), ty("f32[3]")}, want: []string{"f32[*]"}},
		{name: "static mismatch", op: "Add", ins: []in{ty("f32[2,3]"), ty("f32[4]")}, err: "cannot broadcast 3 against 4"},
		{name: "dtype mismatch", op: "Add", ins: []in{ty("f32[2]"), ty("f16[2]")}, err: "input 1 is f16 but input 0 is f32"},
		{name: "pow mixed types", op: "Pow", ins: []in{ty("f32[2,N]"), ty("i64[]")}, want: []string{"f32[2,N]"}},
		{name: "compare", op: "Less", ins: []in{ty("f32[N,1]"), ty("f32[1,S]")}, want: []string{"bool[N,S]"}},
		{name: "and wants bool", op: "And", ins: []in{ty("f32[2]"), ty("f32[2]")}, err: "want bool"},
		{name: "xor", op: "Xor", ins: []in{ty("bool[2,1]"), ty("bool[3]")}, want: []string{"bool[2,3]"}},
		{name: "where", op: "Where", ins: []in{ty("bool[N,1,1]"), ty("f32[1,4,1]"), ty("f32[5]")}, want: []string{"f32[N,4,5]"}},
		{name: "where cond dtype", op: "Where", ins: []in{ty("f32[1]"), ty("f32[1]"), ty("f32[1]")}, err: "condition is f32"},
		{name: "max variadic", op: "Max", ins: []in{ty("f32[3,1]"), ty("f32[1,4]"), ty("f32[4]")}, want: []string{"f32[3,4]"}},
		{name: "sum one", op: "Sum", ins: []in{ty("f16[N]")}, want: []string{"f16[N]"}},
		{name: "mean mismatch", op: "Mean", ins: []in{ty("f32[3]"), ty("f32[2]")}, err: "cannot broadcast"},
		{name: "prelu", op: "PRelu", ins: []in{ty("f32[N,8,4]"), ty("f32[8,1]")}, want: []string{"f32[N,8,4]"}},
		{name: "prelu bad slope", op: "PRelu", ins: []in{ty("f32[N,8,4]"), ty("f32[3]")}, err: "does not broadcast"},
	})
}

func TestInferUnary(t *testing.T) {
	runInferCases(t, []inferCase{
		{name: "relu", op: "Relu", ins: []in{ty("f32[N,S,4]")}, want: []string{"f32[N,S,4]"}},
		{name: "gelu", op: "Gelu", opset: 20, ins: []in{ty("bf16[N]")}, attrs: attrs("approximate", astr("tanh")), want: []string{"bf16[N]"}},
		{name: "gelu bad", op: "Gelu", opset: 20, ins: []in{ty("bf16[N]")}, attrs: attrs("approximate", astr("erf")), err: "approximate"},
		{name: "gelu old opset", op: "Gelu", opset: 18, ins: []in{ty("f32[N]")}, err: "older than the supported 20"},
		{name: "isnan", op: "IsNaN", ins: []in{ty("f32[2,N]")}, want: []string{"bool[2,N]"}},
		{name: "not", op: "Not", ins: []in{ty("bool[*]")}, want: []string{"bool[*]"}},
		{name: "not int", op: "Not", ins: []in{ty("i32[2]")}, err: "want bool"},
		{name: "cast", op: "Cast", ins: []in{ty("f32[N,3]")}, attrs: attrs("to", ai(int64(Float16))), want: []string{"f16[N,3]"}},
		{name: "cast missing to", op: "Cast", ins: []in{ty("f32[N,3]")}, err: "attribute to"},
		{name: "cast bad to", op: "Cast", ins: []in{ty("f32[N,3]")}, attrs: attrs("to", ai(99)), err: "to=99"},
		{name: "castlike", op: "CastLike", ins: []in{ty("f32[N]"), ty("bf16[]")}, want: []string{"bf16[N]"}},
		{name: "clip inputs", op: "Clip", ins: []in{ty("f32[N]"), ty("f32[]"), none}, want: []string{"f32[N]"}},
		{name: "clip non-scalar", op: "Clip", ins: []in{ty("f32[N]"), ty("f32[2]")}, err: "want a scalar"},
		{name: "clip attrs opset 6", op: "Clip", opset: 6, ins: []in{ty("f32[N]")}, attrs: attrs("min", af(0)), want: []string{"f32[N]"}},
		{name: "clip inputs at opset 10", op: "Clip", opset: 10, ins: []in{ty("f32[N]"), ty("f32[]")}, err: "attributes, not inputs"},
		{name: "too many inputs", op: "Relu", ins: []in{ty("f32[1]"), ty("f32[1]")}, err: "2 inputs, want 1..1"},
	})
}

func TestInferMatMul(t *testing.T) {
	runInferCases(t, []inferCase{
		{name: "2d", op: "MatMul", ins: []in{ty("f32[N,64]"), ty("f32[64,128]")}, want: []string{"f32[N,128]"}},
		{name: "batched", op: "MatMul", ins: []in{ty("f32[B,H,N,32]"), ty("f32[B,H,32,N]")}, want: []string{"f32[B,H,N,N]"}},
		{name: "broadcast batch", op: "MatMul", ins: []in{ty("f32[N,N,16,8]"), ty("f32[8,4]")}, want: []string{"f32[N,N,16,4]"}},
		{name: "vec left", op: "MatMul", ins: []in{ty("f32[8]"), ty("f32[3,8,4]")}, want: []string{"f32[3,4]"}},
		{name: "vec right", op: "MatMul", ins: []in{ty("f32[3,5,8]"), ty("f32[8]")}, want: []string{"f32[3,5]"}},
		{name: "vec vec", op: "MatMul", ins: []in{ty("f32[8]"), ty("f32[8]")}, want: []string{"f32[]"}},
		{name: "inner mismatch", op: "MatMul", ins: []in{ty("f32[N,64]"), ty("f32[32,8]")}, err: "64 does not match 32"},
		{name: "scalar", op: "MatMul", ins: []in{ty("f32[]"), ty("f32[3]")}, err: "scalar"},
		{name: "unranked", op: "MatMul", ins: []in{ty("f32[*]"), ty("f32[3,4]")}, want: []string{"f32[*]"}},
		{name: "gemm", op: "Gemm", ins: []in{ty("f32[N,64]"), ty("f32[128,64]"), ty("f32[128]")}, attrs: attrs("transB", ai(1)), want: []string{"f32[N,128]"}},
		{name: "gemm transA", op: "Gemm", ins: []in{ty("f32[64,N]"), ty("f32[64,3]")}, attrs: attrs("transA", ai(1)), want: []string{"f32[N,3]"}},
		{name: "gemm bad C", op: "Gemm", ins: []in{ty("f32[4,8]"), ty("f32[8,3]"), ty("f32[2]")}, err: "does not broadcast"},
		{name: "gemm rank", op: "Gemm", ins: []in{ty("f32[4,8,1]"), ty("f32[8,3]")}, err: "must be matrices"},
		{name: "einsum", op: "Einsum", ins: []in{ty("f32[N,N,H,C]"), ty("f32[N,N,H,C]")}, attrs: attrs("equation", astr("ijhc,ikhc->hjk")), want: []string{"f32[H,N,N]"}},
		{name: "einsum implicit", op: "Einsum", ins: []in{ty("f32[3,4]"), ty("f32[4,5]")}, attrs: attrs("equation", astr("ij,jk")), want: []string{"f32[3,5]"}},
		{name: "einsum ellipsis", op: "Einsum", ins: []in{ty("f32[B,N,Q,C]"), ty("f32[N,K,C]")}, attrs: attrs("equation", astr("...qc,...kc->...qk")), want: []string{"f32[B,N,Q,K]"}},
		{name: "einsum trace", op: "Einsum", ins: []in{ty("f32[5,5]")}, attrs: attrs("equation", astr("ii")), want: []string{"f32[]"}},
		{name: "einsum implicit ellipsis", op: "Einsum", ins: []in{ty("f32[2,3,4]")}, attrs: attrs("equation", astr("...ij")), want: []string{"f32[2,3,4]"}},
		{name: "einsum mismatch", op: "Einsum", ins: []in{ty("f32[3,4]"), ty("f32[5,6]")}, attrs: attrs("equation", astr("ij,jk->ik")), err: "label j"},
		{name: "einsum rank", op: "Einsum", ins: []in{ty("f32[3,4,5]")}, attrs: attrs("equation", astr("ij->j")), err: "rank 3"},
		{name: "einsum bad output", op: "Einsum", ins: []in{ty("f32[3,4]")}, attrs: attrs("equation", astr("ij->z")), err: "output label z"},
	})
}

func TestInferReshapeFamily(t *testing.T) {
	runInferCases(t, []inferCase{
		{name: "reshape const", op: "Reshape", ins: []in{ty("f32[2,3,4]"), ci(6, -1)}, want: []string{"f32[6,4]"}},
		{name: "reshape copy 0", op: "Reshape", ins: []in{ty("f32[N,3,4]"), ci(0, -1)}, want: []string{"f32[N,12]"}},
		{name: "reshape allowzero", op: "Reshape", ins: []in{ty("f32[0,3]"), ci(3, 0)}, attrs: attrs("allowzero", ai(1)), want: []string{"f32[3,0]"}},
		{name: "reshape allowzero with -1", op: "Reshape", ins: []in{ty("f32[0,3]"), ci(0, -1)}, attrs: attrs("allowzero", ai(1)), err: "both -1 and 0"},
		{name: "reshape symbolic merge", op: "Reshape", ins: []in{ty("f32[N,N,4,32]"), sv("i64[2]", Shape{S("N*N"), D(128)})}, want: []string{"f32[N*N,128]"}},
		{name: "reshape -1 symbolic", op: "Reshape", ins: []in{ty("f32[N,N,4,32]"), ci(-1, 128)}, want: []string{"f32[N*N,128]"}},
		{name: "reshape split back", op: "Reshape", ins: []in{ty("f32[N*N,128]"), sv("i64[4]", Shape{S("N"), IntDim(-1), D(4), D(32)})}, want: []string{"f32[N,N,4,32]"}},
		{name: "reshape symbolic heads", op: "Reshape", ins: []in{ty("f32[N,N,H,C]"), sv("i64[2]", Shape{IntDim(-1), S("H*C")})}, want: []string{"f32[N*N,C*H]"}},
		{name: "reshape symbolic heads back", op: "Reshape", ins: []in{ty("f32[N*N,C*H]"), sv("i64[4]", Shape{S("N"), S("N"), S("H"), IntDim(-1)})}, want: []string{"f32[N,N,H,C]"}},
		{name: "reshape two -1", op: "Reshape", ins: []in{ty("f32[4]"), ci(-1, -1)}, err: "more than one -1"},
		{name: "reshape count", op: "Reshape", ins: []in{ty("f32[2,3]"), ci(4, 2)}, err: "cannot reshape"},
		{name: "reshape not divisible", op: "Reshape", ins: []in{ty("f32[2,3]"), ci(4, -1)}, err: "cannot reshape"},
		{name: "reshape unknown target", op: "Reshape", ins: []in{ty("f32[2,3]"), ty("i64[3]")}, want: []string{"f32[?,?,?]"}},
		{name: "reshape unknown target rank", op: "Reshape", ins: []in{ty("f32[2,3]"), ty("i64[?]")}, want: []string{"f32[*]"}},
		{name: "reshape absurd rank", op: "Reshape", ins: []in{ty("f32[2,3]"), ty("i64[1099511627776]")}, err: "rank 1099511627776"},
		{name: "reshape absurd dims", op: "Reshape", ins: []in{ty("f32[?]"), ci(1<<40, 1<<40)}, want: []string{"f32[1099511627776,1099511627776]"}},
		{name: "reshape sv", op: "Reshape", ins: []in{sv("i64[1]", Shape{S("N")}), ci()}, want: []string{"i64[]"}, sv: []string{"[N]"}},

		{name: "transpose", op: "Transpose", ins: []in{ty("f32[N,S,4]")}, attrs: attrs("perm", ais(2, 0, 1)), want: []string{"f32[4,N,S]"}},
		{name: "transpose default", op: "Transpose", ins: []in{ty("f32[N,S,4]")}, want: []string{"f32[4,S,N]"}},
		{name: "transpose bad perm", op: "Transpose", ins: []in{ty("f32[N,S,4]")}, attrs: attrs("perm", ais(0, 0, 1)), err: "not a permutation"},

		{name: "unsqueeze input", op: "Unsqueeze", opset: 13, ins: []in{ty("f32[N,4]"), ci(0, -1)}, want: []string{"f32[1,N,4,1]"}},
		{name: "unsqueeze attr", op: "Unsqueeze", opset: 11, ins: []in{ty("f32[N,4]")}, attrs: attrs("axes", ais(1)), want: []string{"f32[N,1,4]"}},
		{name: "unsqueeze missing axes", op: "Unsqueeze", opset: 13, ins: []in{ty("f32[N,4]")}, err: "axes are required"},
		{name: "unsqueeze dup", op: "Unsqueeze", opset: 13, ins: []in{ty("f32[N]"), ci(0, -3)}, err: "repeated"},
		{name: "unsqueeze scalar sv", op: "Unsqueeze", opset: 13, ins: []in{sv("i64[]", Shape{S("N")}), ci(0)}, want: []string{"i64[1]"}, sv: []string{"[N]"}},
		{name: "squeeze input at opset 11", op: "Squeeze", opset: 11, ins: []in{ty("f32[1,N,1]"), ci(-1)}, err: "attributes before opset 13"},
		{name: "squeeze input", op: "Squeeze", opset: 13, ins: []in{ty("f32[1,N,1]"), ci(-1)}, want: []string{"f32[1,N]"}},
		{name: "squeeze attr", op: "Squeeze", opset: 11, ins: []in{ty("f32[1,N,1]")}, attrs: attrs("axes", ais(0, 2)), want: []string{"f32[N]"}},
		{name: "squeeze all static", op: "Squeeze", opset: 13, ins: []in{ty("f32[1,3,1]")}, want: []string{"f32[3]"}},
		{name: "squeeze all symbolic", op: "Squeeze", opset: 13, ins: []in{ty("f32[1,N,1]")}, want: []string{"f32[*]"}},
		{name: "squeeze non-1", op: "Squeeze", opset: 13, ins: []in{ty("f32[2,N]"), ci(0)}, err: "size 2"},
		{name: "squeeze sv", op: "Squeeze", opset: 13, ins: []in{sv("i64[1]", Shape{S("N")}), ci(0)}, want: []string{"i64[]"}, sv: []string{"[N]"}},

		{name: "expand", op: "Expand", ins: []in{ty("f32[N,1,4]"), ci(3, 1, 5, 1)}, want: []string{"f32[3,N,5,4]"}},
		{name: "expand symbolic", op: "Expand", ins: []in{ty("f32[1,4]"), sv("i64[2]", Shape{S("N"), D(4)})}, want: []string{"f32[N,4]"}},
		{name: "expand bad", op: "Expand", ins: []in{ty("f32[3]"), ci(4)}, err: "cannot broadcast"},
		{name: "expand negative", op: "Expand", ins: []in{ty("f32[3]"), ci(-2)}, err: "negative"},
		{name: "expand unknown", op: "Expand", ins: []in{ty("f32[1,4]"), ty("i64[3]")}, want: []string{"f32[?,?,4]"}},

		{name: "concat", op: "Concat", ins: []in{ty("f32[N,4]"), ty("f32[N,8]"), ty("f32[?,2]")}, attrs: attrs("axis", ai(-1)), want: []string{"f32[N,14]"}},
		{name: "concat symbolic axis", op: "Concat", ins: []in{ty("f32[N,4]"), ty("f32[1,4]")}, attrs: attrs("axis", ai(0)), want: []string{"f32[N+1,4]"}},
		{name: "concat mismatch", op: "Concat", ins: []in{ty("f32[2,4]"), ty("f32[3,4]")}, attrs: attrs("axis", ai(1)), err: "2 does not match 3"},
		{name: "concat rank", op: "Concat", ins: []in{ty("f32[2,4]"), ty("f32[4]")}, attrs: attrs("axis", ai(0)), err: "rank"},
		{name: "concat no axis", op: "Concat", ins: []in{ty("f32[2,4]")}, err: "axis"},

		{name: "flatten", op: "Flatten", ins: []in{ty("f32[N,3,4]")}, want: []string{"f32[N,12]"}},
		{name: "flatten 0", op: "Flatten", ins: []in{ty("f32[N,3,4]")}, attrs: attrs("axis", ai(0)), want: []string{"f32[1,12*N]"}},
		{name: "flatten neg", op: "Flatten", ins: []in{ty("f32[N,3,4]")}, attrs: attrs("axis", ai(-1)), want: []string{"f32[3*N,4]"}},
		{name: "flatten out of range", op: "Flatten", ins: []in{ty("f32[N,3,4]")}, attrs: attrs("axis", ai(4)), err: "out of range"},

		{name: "identity", op: "Identity", ins: []in{ty("f32[N]")}, want: []string{"f32[N]"}},
	})
}

func TestInferNonCanonicalSymbols(t *testing.T) {
	runInferCases(t, []inferCase{
		{name: "broadcast", op: "Add", ins: []in{ty("f32[s0 + 1]"), ty("f32[1+s0]")}, want: []string{"f32[s0 + 1]"}},
		{name: "onehot negative depth", op: "OneHot", ins: []in{ty("i64[N]"), sv("i64[]", Shape{IntDim(-3)}), ty("f32[2]")}, err: "negative"},
	})
}

func TestBroadcastShapesExported(t *testing.T) {
	s, err := BroadcastShapes(Shape{S("N"), D(1), D(4)}, Shape{S("H"), D(1)}, Shape{})
	if err != nil || s.String() != "[N,H,4]" {
		t.Errorf("BroadcastShapes = %s, %v", s, err)
	}
	if _, err := BroadcastShapes(StaticShape(3), StaticShape(2)); err == nil {
		t.Error("3 against 2 broadcast")
	}
}

func TestInferAttrKinds(t *testing.T) {
	runInferCases(t, []inferCase{
		{name: "float axis", op: "Concat", ins: []in{ty("f32[2]")}, attrs: attrs("axis", af(0)), err: "attribute axis is float, want int"},
		{name: "int perm", op: "Transpose", ins: []in{ty("f32[2,3]")}, attrs: attrs("perm", ai(1)), err: "attribute perm is int, want ints"},
		{name: "pad value float", op: "Pad", opset: 2, ins: []in{ty("f32[3]")}, attrs: attrs("pads", ais(1, 1), "value", af(0)), want: []string{"f32[5]"}},
		{name: "constant value float", op: "Constant", attrs: attrs("value", af(0)), err: "attribute value is float, want tensor"},
		{name: "unknown attrs pass", op: "Relu", ins: []in{ty("f32[2]")}, attrs: attrs("whatever", af(0)), want: []string{"f32[2]"}},
	})
}
