package codegen

import (
	"math"
	"testing"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/mlx"
	"github.com/of3c/of3c/runtime/ref"
)

func needMLX(t *testing.T) {
	t.Helper()
	if !mlx.Available() {
		t.Skip("MLX not linked")
	}
}

func randT(t *testing.T, dt graph.DType, shape []int64, seed uint64, lo, hi float64) *graph.Tensor {
	t.Helper()
	x, err := graph.RandomTensor(dt, shape, seed, lo, hi)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// maxAbsDiff compares two tensors elementwise as float64 (NaN == NaN).
func maxAbsDiff(t *testing.T, a, b *graph.Tensor) float64 {
	t.Helper()
	if len(a.Shape) != len(b.Shape) {
		t.Fatalf("shapes %v and %v differ", a.Shape, b.Shape)
	}
	for i := range a.Shape {
		if a.Shape[i] != b.Shape[i] {
			t.Fatalf("shapes %v and %v differ", a.Shape, b.Shape)
		}
	}
	av, err := a.Float64s()
	if err != nil {
		t.Fatal(err)
	}
	bv, err := b.Float64s()
	if err != nil {
		t.Fatal(err)
	}
	d := 0.0
	for i := range av {
		if math.IsNaN(av[i]) && math.IsNaN(bv[i]) || av[i] == bv[i] {
			continue
		}
		d = math.Max(d, math.Abs(av[i]-bv[i]))
		if math.IsNaN(av[i]) != math.IsNaN(bv[i]) {
			return math.Inf(1)
		}
	}
	return d
}

// checkVsRef runs g on MLX (cpu, fp32) and on the reference executor and
// compares every output.
func checkVsRef(t *testing.T, g *graph.Graph, in map[string]*graph.Tensor, tol float64) map[string]*graph.Tensor {
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
		if gv.DType != w.DType {
			t.Fatalf("output %q: dtype %s, want %s", name, gv.DType, w.DType)
		}
		if d := maxAbsDiff(t, gv, w); d > tol {
			t.Errorf("output %q: max abs diff %g > %g", name, d, tol)
		}
	}
	return got
}

// runMLX runs g once on MLX with options o and returns its outputs and the
// lowering paths it took.
func runMLX(t *testing.T, g *graph.Graph, o Options, in map[string]*graph.Tensor) (map[string]*graph.Tensor, []Lowering) {
	t.Helper()
	p, err := NewProgram(g, o)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	got, _, err := p.Run(in)
	if err != nil {
		t.Fatal(err)
	}
	return got, p.Lowerings()
}

func build(t *testing.T, b *graph.Builder) *graph.Graph {
	t.Helper()
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestShapeArithmeticOnHost(t *testing.T) {
	needMLX(t)
	// x [N, 6] → reshape to [N, 2, 3] through Shape/Gather/Concat, the
	// pattern torch exporters leave behind.
	b := graph.NewBuilder("g", 17)
	x := b.Input("x", "f32[N,6]")
	sh := b.Op("Shape", x)
	n0 := b.Op("Gather", sh, b.ConstI64("zero", []int64{1}, 0), graph.AInt("axis", 0))
	tail := b.ConstI64("tail", []int64{2}, 2, 3)
	newShape := b.Op("Concat", n0, tail, graph.AInt("axis", 0))
	y := b.Op("Reshape", x, newShape)
	z := b.Op("Softmax", y, graph.AInt("axis", -1))
	b.Output(z)
	g := build(t, b)
	in := map[string]*graph.Tensor{"x": randT(t, graph.Float32, []int64{5, 6}, 1, -2, 2)}
	checkVsRef(t, g, in, 1e-6)

	// The same program serves a second shape with a fresh trace.
	p, err := NewProgram(g, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
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

func TestElementwiseOps(t *testing.T) {
	needMLX(t)
	unaries := []string{"Sqrt", "Exp", "Log", "Tanh", "Erf", "Sigmoid", "Neg", "Abs", "Reciprocal", "Floor",
		"Ceil", "Round", "Sign", "Sin", "Cos", "Tan", "Relu", "Softplus", "Softsign", "Asin", "Acos", "Atan",
		"Sinh", "Cosh", "Asinh", "Atanh", "HardSigmoid", "HardSwish", "LeakyRelu", "Elu", "Selu", "Celu",
		"Mish", "ThresholdedRelu", "Gelu", "Shrink"}
	for _, op := range unaries {
		t.Run(op, func(t *testing.T) {
			b := graph.NewBuilder("g", 20)
			x := b.Input("x", "f32[3,4]")
			b.Output(b.Op(op, x))
			lo, hi := -0.9, 0.9
			if op == "Sqrt" || op == "Log" {
				lo, hi = 0.1, 3
			}
			checkVsRef(t, build(t, b), map[string]*graph.Tensor{"x": randT(t, graph.Float32, []int64{3, 4}, 3, lo, hi)}, 2e-6)
		})
	}
	t.Run("Acosh", func(t *testing.T) {
		b := graph.NewBuilder("g", 17)
		x := b.Input("x", "f32[5]")
		b.Output(b.Op("Acosh", x))
		checkVsRef(t, build(t, b), map[string]*graph.Tensor{"x": randT(t, graph.Float32, []int64{5}, 3, 1.1, 4)}, 2e-6)
	})
	binaries := []string{"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "PRelu"}
	for _, op := range binaries {
		t.Run(op, func(t *testing.T) {
			b := graph.NewBuilder("g", 17)
			x := b.Input("x", "f32[2,3,4]")
			yt := "f32[3,1]"
			if op == "PRelu" {
				yt = "f32[4]"
			}
			y := b.Input("y", yt)
			b.Output(b.Op(op, x, y))
			ys := []int64{3, 1}
			if op == "PRelu" {
				ys = []int64{4}
			}
			in := map[string]*graph.Tensor{
				"x": randT(t, graph.Float32, []int64{2, 3, 4}, 4, 0.5, 2),
				"y": randT(t, graph.Float32, ys, 5, 0.5, 2),
			}
			checkVsRef(t, build(t, b), in, 1e-5)
		})
	}
	t.Run("IntArith", func(t *testing.T) {
		b := graph.NewBuilder("g", 17)
		x := b.Input("x", "i64[6]")
		y := b.Input("y", "i64[6]")
		b.Output(b.Op("Div", x, y), b.Op("Mod", x, y), b.Op("Mod", x, y, graph.AInt("fmod", 1)),
			b.Op("Less", x, y), b.Op("Where", b.Op("Greater", x, y), x, y), b.Op("MatMul", x, y))
		in := map[string]*graph.Tensor{
			"x": graph.NewTensorI64([]int64{6}, []int64{7, -7, 7, -7, 0, 9}),
			"y": graph.NewTensorI64([]int64{6}, []int64{2, 2, -2, -2, 3, 4}),
		}
		checkVsRef(t, build(t, b), in, 0)
	})
	t.Run("Cast", func(t *testing.T) {
		b := graph.NewBuilder("g", 17)
		x := b.Input("x", "f32[6]")
		b.Output(b.Op("Cast", x, graph.AInt("to", int64(graph.Int32))), b.Op("Cast", x, graph.AInt("to", int64(graph.Bool))),
			b.Op("Cast", x, graph.AInt("to", int64(graph.Float16))))
		in := map[string]*graph.Tensor{"x": graph.NewTensorF32([]int64{6}, []float32{-1.7, 0, 2.5, 3.9, -0.2, 1e5})}
		checkVsRef(t, build(t, b), in, 0)
	})
}

func TestShapeOps(t *testing.T) {
	needMLX(t)
	b := graph.NewBuilder("g", 17)
	x := b.Input("x", "f32[2,3,4]")
	tr := b.Op("Transpose", x, graph.AInts("perm", 2, 0, 1))
	sl := b.Op("Slice", tr, b.ConstI64("st", []int64{2}, 3, 0), b.ConstI64("en", []int64{2}, 0, 100),
		b.ConstI64("ax", []int64{2}, 0, 2), b.ConstI64("sp", []int64{2}, -2, 1))
	un := b.Op("Unsqueeze", sl, b.ConstI64("ua", []int64{1}, 1))
	sq := b.Op("Squeeze", un, b.ConstI64("sa", []int64{1}, 1))
	parts := b.OpN("Split", 2, x, b.ConstI64("sz", []int64{2}, 1, 2), graph.AInt("axis", 1))
	cc := b.Op("Concat", parts[1], parts[0], graph.AInt("axis", 1))
	ex := b.Op("Expand", b.Op("ReduceSum", x, b.ConstI64("rs", []int64{1}, 2)), b.ConstI64("es", []int64{3}, 2, 3, 5))
	pd := b.Op("Pad", x, b.ConstI64("pads", []int64{6}, 0, 1, 2, 0, 2, 1), graph.AString("mode", "reflect"))
	pe := b.Op("Pad", x, b.ConstI64("pads2", []int64{6}, 0, -1, 1, 0, 0, 2))
	ti := b.Op("Tile", x, b.ConstI64("rep", []int64{3}, 1, 2, 1))
	fl := b.Op("Flatten", x, graph.AInt("axis", 2))
	gi := b.Op("Gather", x, b.ConstI64("gi", []int64{2, 2}, 0, -1, 2, 1), graph.AInt("axis", 2))
	b.Output(sq, cc, ex, pd, pe, ti, fl, gi)
	checkVsRef(t, build(t, b), map[string]*graph.Tensor{"x": randT(t, graph.Float32, []int64{2, 3, 4}, 7, -1, 1)}, 1e-6)
}

func TestReductionsAndNorms(t *testing.T) {
	needMLX(t)
	b := graph.NewBuilder("g", 18)
	x := b.Input("x", "f32[2,3,8]")
	ax := b.ConstI64("ax", []int64{1}, -1)
	var outs []*graph.Value
	for _, op := range []string{"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
		"ReduceL2", "ReduceLogSumExp", "ReduceSumSquare"} {
		outs = append(outs, b.Op(op, x, ax, graph.AInt("keepdims", 0)))
	}
	outs = append(outs, b.Op("ArgMax", x, graph.AInt("axis", 1)), b.Op("ArgMin", x, graph.AInt("axis", 2), graph.AInt("select_last_index", 1)))
	outs = append(outs, b.Op("Softmax", x, graph.AInt("axis", 1)), b.Op("LogSoftmax", x))
	g8 := b.Random("gamma", "f32[8]", 9)
	b8 := b.Random("beta", "f32[8]", 10)
	outs = append(outs, b.Op("LayerNormalization", x, g8, b8, graph.AFloat("epsilon", 1e-5)))
	outs = append(outs, b.Op("CumSum", x, b.ConstI64("cax", nil, 2), graph.AInt("reverse", 1)))
	outs = append(outs, b.Op("Trilu", x, b.ConstI64("k", []int64{}, 1), graph.AInt("upper", 0)))
	b.Output(outs...)
	checkVsRef(t, build(t, b), map[string]*graph.Tensor{"x": randT(t, graph.Float32, []int64{2, 3, 8}, 8, -1, 1)}, 2e-5)
}

// attentionGraph is q, k, v [B, H, L, c] with a mask bias [B, 1, 1, L] and a
// pair bias [1, H, L, L], with the given chunking attributes.
func attentionGraph(t *testing.T, attrs ...graph.NamedAttr) *graph.Graph {
	b := graph.NewBuilder("att", 17)
	b.Opset(graph.FusedDomain, 1)
	q := b.Input("q", "f32[B,H,L,C]")
	k := b.Input("k", "f32[B,H,L,C]")
	v := b.Input("v", "f32[B,H,L,C]")
	m := b.Input("mask", "f32[B,1,1,L]")
	z := b.Input("z", "f32[1,H,L,L]")
	args := []any{q, k, v, m, z, graph.AFloat("scale", 0.3)}
	for _, a := range attrs {
		args = append(args, a)
	}
	b.Output(b.Op("of3c.Attention", args...))
	return build(t, b)
}

func attentionInputs(t *testing.T, B, H, L, C int64) map[string]*graph.Tensor {
	mask := make([]float32, B*L)
	for i := range mask {
		if i%3 == 1 {
			mask[i] = -1e9
		}
	}
	// Row 0 fully masked: uniform weights.
	for j := int64(0); j < L; j++ {
		mask[j] = float32(math.Inf(-1))
	}
	return map[string]*graph.Tensor{
		"q":    randT(t, graph.Float32, []int64{B, H, L, C}, 11, -1, 1),
		"k":    randT(t, graph.Float32, []int64{B, H, L, C}, 12, -1, 1),
		"v":    randT(t, graph.Float32, []int64{B, H, L, C}, 13, -1, 1),
		"mask": graph.NewTensorF32([]int64{B, 1, 1, L}, mask),
		"z":    randT(t, graph.Float32, []int64{1, H, L, L}, 14, -1, 1),
	}
}

func TestAttentionChunking(t *testing.T) {
	needMLX(t)
	in := attentionInputs(t, 3, 2, 10, 8)
	for _, tc := range []struct {
		name  string
		attrs []graph.NamedAttr
	}{
		{"plain", nil},
		{"batch", []graph.NamedAttr{graph.AInt("batch_chunk", 2)}},
		{"query", []graph.NamedAttr{graph.AInt("query_chunk", 3)}},
		{"lma", []graph.NamedAttr{graph.AInt("kv_chunk", 4)}},
		{"all", []graph.NamedAttr{graph.AInt("batch_chunk", 1), graph.AInt("query_chunk", 4), graph.AInt("kv_chunk", 3)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkVsRef(t, attentionGraph(t, tc.attrs...), in, 2e-6)
		})
	}
}

func TestSwiGLU(t *testing.T) {
	needMLX(t)
	for _, rc := range []int64{0, 4} {
		b := graph.NewBuilder("sw", 17)
		b.Opset(graph.FusedDomain, 1)
		x := b.Input("x", "f32[3,5,8]")
		w := b.Random("w", "f32[8,32]", 3)
		wo := b.Random("wo", "f32[16,8]", 4)
		b.Output(b.Op("of3c.SwiGLU", x, w, graph.AInt("row_chunk", rc)), b.Op("of3c.SwiGLU", x, w, wo, graph.AInt("row_chunk", rc)))
		checkVsRef(t, build(t, b), map[string]*graph.Tensor{"x": randT(t, graph.Float32, []int64{3, 5, 8}, 5, -1, 1)}, 1e-5)
	}
}

func TestPrecisionBF16AndFP16(t *testing.T) {
	needMLX(t)
	// A masked attention with a 1e9 mask constant, as OF3 builds it.
	b := graph.NewBuilder("att", 17)
	b.Opset(graph.FusedDomain, 1)
	q := b.Input("q", "f32[2,16,4]")
	mask := b.Input("mask", "f32[2,16]")
	one := b.ConstF32("one", nil, 1)
	big := b.ConstF32("big", nil, 1e9)
	mb := b.Op("Mul", b.Op("Sub", mask, one), big)
	mb = b.Op("Unsqueeze", mb, b.ConstI64("ax", []int64{1}, 1)) // [2,1,16]
	o := b.Op("of3c.Attention", q, q, q, mb, graph.AFloat("scale", 0.25))
	ln := b.Op("LayerNormalization", o, b.Fill("g", "f32[4]", 1), b.Fill("bb", "f32[4]", 0))
	b.Output(ln)
	g := build(t, b)
	mv := make([]float32, 32)
	for i := range mv {
		mv[i] = 1
		if i%4 == 3 || i >= 16 { // second batch fully masked
			mv[i] = 0
		}
	}
	in := map[string]*graph.Tensor{"q": randT(t, graph.Float32, []int64{2, 16, 4}, 21, -1, 1), "mask": graph.NewTensorF32([]int64{2, 16}, mv)}
	want, err := ref.Run(g, in)
	if err != nil {
		t.Fatal(err)
	}
	for _, prec := range []string{"bf16", "fp16"} {
		p, err := NewProgram(g, Options{Precision: prec})
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := p.Run(in)
		p.Close()
		if err != nil {
			t.Fatal(err)
		}
		for name, w := range want {
			if got[name].DType != graph.Float32 {
				t.Errorf("%s: output dtype %s", prec, got[name].DType)
			}
			if d := maxAbsDiff(t, got[name], w); d > 0.1 {
				t.Errorf("%s: max abs diff %g", prec, d)
			}
		}
	}
}
