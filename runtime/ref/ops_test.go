package ref

import (
	"errors"
	"math"
	"math/rand"
	"testing"

	"github.com/of3c/of3c/graph"
)

func TestAddBroadcast(t *testing.T) {
	// [2,3] + [3] and [2,1] + [1,3] broadcast like numpy.
	a := f32(sh(2, 3), 1, 2, 3, 4, 5, 6)
	b := f32(sh(3), 10, 20, 30)
	expect(t, eval(t, node("Add", 1, nil), a, b)[0], graph.Float32, sh(2, 3), fl(11, 22, 33, 14, 25, 36), 0)
	c := f32(sh(2, 1), 1, 2)
	d := f32(sh(1, 3), 10, 20, 30)
	expect(t, eval(t, node("Sub", 1, nil), c, d)[0], graph.Float32, sh(2, 3), fl(-9, -19, -29, -8, -18, -28), 0)
	// A scalar against a 3-D tensor.
	e := f32(sh(), 2)
	x := f32(sh(1, 2, 2), 1, 2, 3, 4)
	expect(t, eval(t, node("Mul", 1, nil), x, e)[0], graph.Float32, sh(1, 2, 2), fl(2, 4, 6, 8), 0)
	if _, err := EvalNode(node("Add", 1, nil), []*graph.Tensor{f32(sh(2), 1, 2), f32(sh(3), 1, 2, 3)}); err == nil {
		t.Fatal("[2]+[3] should not broadcast")
	}
	if _, err := EvalNode(node("Add", 1, nil), []*graph.Tensor{f32(sh(1), 1), i64(sh(1), 1)}); err == nil {
		t.Fatal("f32+i64 should be refused")
	}
}

func TestFloat32Rounding(t *testing.T) {
	// 1 + 2^-30 is not representable in float32: the result must be 1.
	a := f32(sh(1), 1)
	b := f32(sh(1), float32(math.Pow(2, -30)))
	out := eval(t, node("Add", 1, nil), a, b)[0]
	v, _ := out.Float64s()
	if v[0] != 1 {
		t.Fatalf("got %v, want 1 (float32 rounding)", v[0])
	}
}

func TestIntegerArithmetic(t *testing.T) {
	a := tensorOf(t, graph.Int32, sh(4), 7, -7, 7, -7)
	b := tensorOf(t, graph.Int32, sh(4), 2, 2, -2, -2)
	expect(t, eval(t, node("Div", 1, nil), a, b)[0], graph.Int32, sh(4), fl(3, -3, -3, 3), 0)
	expect(t, eval(t, node("Mod", 1, nil), a, b)[0], graph.Int32, sh(4), fl(1, 1, -1, -1), 0)
	expect(t, eval(t, node("Mod", 1, attrs{"fmod": intA(1)}), a, b)[0], graph.Int32, sh(4), fl(1, -1, 1, -1), 0)
	// int8 wraps.
	c := tensorOf(t, graph.Int8, sh(1), 100)
	expect(t, eval(t, node("Add", 1, nil), c, c)[0], graph.Int8, sh(1), fl(-56), 0)
	z := tensorOf(t, graph.Int32, sh(1), 0)
	if _, err := EvalNode(node("Div", 1, nil), []*graph.Tensor{a, z}); err == nil {
		t.Fatal("integer division by zero should fail")
	}
	// uint64 compares as unsigned.
	big := &graph.Tensor{DType: graph.Uint64, Shape: sh(1), Data: []byte{0, 0, 0, 0, 0, 0, 0, 0x80}}
	one := tensorOf(t, graph.Uint64, sh(1), 1)
	expect(t, eval(t, node("Greater", 1, nil), big, one)[0], graph.Bool, sh(1), fl(1), 0)
}

func TestFloatMod(t *testing.T) {
	a := f32(sh(4), 5.5, -5.5, 5.5, -5.5)
	b := f32(sh(4), 2, 2, -2, -2)
	expect(t, eval(t, node("Mod", 1, attrs{"fmod": intA(1)}), a, b)[0], graph.Float32, sh(4), fl(1.5, -1.5, 1.5, -1.5), 0)
}

func TestPowMixedTypes(t *testing.T) {
	a := f32(sh(3), 1, 2, 3)
	e := i64(sh(3), 2, 3, 0)
	expect(t, eval(t, node("Pow", 1, nil), a, e)[0], graph.Float32, sh(3), fl(1, 8, 1), 0)
	ai := i64(sh(2), 3, -2)
	ef := f32(sh(1), 2)
	expect(t, eval(t, node("Pow", 1, nil), ai, ef)[0], graph.Int64, sh(2), fl(9, 4), 0)
}

func TestUnaryMath(t *testing.T) {
	x := f32(sh(4), -1.5, -0.5, 0.5, 2.5)
	expect(t, eval(t, node("Round", 1, nil), x)[0], graph.Float32, sh(4), fl(-2, -0, 0, 2), 0)
	expect(t, eval(t, node("Floor", 1, nil), x)[0], graph.Float32, sh(4), fl(-2, -1, 0, 2), 0)
	expect(t, eval(t, node("Ceil", 1, nil), x)[0], graph.Float32, sh(4), fl(-1, -0, 1, 3), 0)
	expect(t, eval(t, node("Abs", 1, nil), x)[0], graph.Float32, sh(4), fl(1.5, 0.5, 0.5, 2.5), 0)
	expect(t, eval(t, node("Sign", 1, nil), x)[0], graph.Float32, sh(4), fl(-1, -1, 1, 1), 0)
	expect(t, eval(t, node("Relu", 1, nil), x)[0], graph.Float32, sh(4), fl(0, 0, 0.5, 2.5), 0)
	expect(t, eval(t, node("LeakyRelu", 1, attrs{"alpha": floatA(0.1)}), x)[0], graph.Float32, sh(4),
		fl(-0.15, -0.05, 0.5, 2.5), 1e-6)
	g := f32(sh(3), -1, 0, 1)
	expect(t, eval(t, node("Gelu", 1, nil), g)[0], graph.Float32, sh(3), fl(-0.15865525, 0, 0.84134475), 1e-6)
	expect(t, eval(t, node("Gelu", 1, attrs{"approximate": strA("tanh")}), g)[0], graph.Float32, sh(3),
		fl(-0.15880801, 0, 0.84119199), 1e-6)
	expect(t, eval(t, node("Softplus", 1, nil), f32(sh(2), 0, 100))[0], graph.Float32, sh(2), fl(math.Ln2, 100), 1e-6)
	expect(t, eval(t, node("Sigmoid", 1, nil), f32(sh(3), 0, -1000, 1000))[0], graph.Float32, sh(3), fl(0.5, 0, 1), 0)
	// Integer Abs and Neg are defined; Sqrt of ints is not.
	xi := i64(sh(2), -3, 4)
	expect(t, eval(t, node("Abs", 1, nil), xi)[0], graph.Int64, sh(2), fl(3, 4), 0)
	if _, err := EvalNode(node("Sqrt", 1, nil), []*graph.Tensor{xi}); err == nil {
		t.Fatal("Sqrt of int64 should fail")
	}
}

func TestIsNaNIsInfWhereClip(t *testing.T) {
	inf := float32(math.Inf(1))
	nan := float32(math.NaN())
	x := f32(sh(4), 1, inf, -inf, nan)
	expect(t, eval(t, node("IsNaN", 1, nil), x)[0], graph.Bool, sh(4), fl(0, 0, 0, 1), 0)
	expect(t, eval(t, node("IsInf", 1, nil), x)[0], graph.Bool, sh(4), fl(0, 1, 1, 0), 0)
	expect(t, eval(t, node("IsInf", 1, attrs{"detect_negative": intA(0)}), x)[0], graph.Bool, sh(4), fl(0, 1, 0, 0), 0)
	c := boolT(sh(2, 1), true, false)
	a := f32(sh(2), 1, 2)
	b := f32(sh(1), 9)
	expect(t, eval(t, node("Where", 1, nil), c, a, b)[0], graph.Float32, sh(2, 2), fl(1, 2, 9, 9), 0)
	y := f32(sh(4), -2, 0, 2, nan)
	expect(t, eval(t, node("Clip", 1, nil), y, f32(sh(), -1), f32(sh(), 1))[0], graph.Float32, sh(4), fl(-1, 0, 1, math.NaN()), 0)
	expect(t, eval(t, node("Clip", 1, nil), y, nil, f32(sh(), 1))[0], graph.Float32, sh(4), fl(-2, 0, 1, math.NaN()), 0)
	yi := i64(sh(3), -5, 0, 5)
	expect(t, eval(t, node("Clip", 1, nil), yi, i64(sh(), -1))[0], graph.Int64, sh(3), fl(-1, 0, 5), 0)
}

func TestComparisonsAndLogic(t *testing.T) {
	nan := float32(math.NaN())
	a := f32(sh(3), 1, 2, nan)
	b := f32(sh(3), 2, 2, nan)
	expect(t, eval(t, node("Equal", 1, nil), a, b)[0], graph.Bool, sh(3), fl(0, 1, 0), 0)
	expect(t, eval(t, node("Less", 1, nil), a, b)[0], graph.Bool, sh(3), fl(1, 0, 0), 0)
	expect(t, eval(t, node("GreaterOrEqual", 1, nil), a, b)[0], graph.Bool, sh(3), fl(0, 1, 0), 0)
	p := boolT(sh(2), true, false)
	q := boolT(sh(2, 1), true, false)
	expect(t, eval(t, node("And", 1, nil), p, q)[0], graph.Bool, sh(2, 2), fl(1, 0, 0, 0), 0)
	expect(t, eval(t, node("Xor", 1, nil), p, q)[0], graph.Bool, sh(2, 2), fl(0, 1, 1, 0), 0)
	expect(t, eval(t, node("Not", 1, nil), p)[0], graph.Bool, sh(2), fl(0, 1), 0)
}

func TestVariadic(t *testing.T) {
	a := f32(sh(3), 1, 5, 3)
	b := f32(sh(1), 2)
	c := f32(sh(3), 0, 0, 4)
	expect(t, eval(t, node("Max", 1, nil), a, b, c)[0], graph.Float32, sh(3), fl(2, 5, 4), 0)
	expect(t, eval(t, node("Min", 1, nil), a, b, c)[0], graph.Float32, sh(3), fl(0, 0, 2), 0)
	expect(t, eval(t, node("Sum", 1, nil), a, b, c)[0], graph.Float32, sh(3), fl(3, 7, 9), 0)
	expect(t, eval(t, node("Mean", 1, nil), a, b, c)[0], graph.Float32, sh(3), fl(1, 7.0/3, 3), 1e-6)
	expect(t, eval(t, node("Sum", 1, nil), a)[0], graph.Float32, sh(3), fl(1, 5, 3), 0)
}

func TestMatMul(t *testing.T) {
	a := f32(sh(2, 3), 1, 2, 3, 4, 5, 6)
	b := f32(sh(3, 2), 7, 8, 9, 10, 11, 12)
	expect(t, eval(t, node("MatMul", 1, nil), a, b)[0], graph.Float32, sh(2, 2), fl(58, 64, 139, 154), 0)
	// 1-D on either side.
	v := f32(sh(3), 1, 0, -1)
	expect(t, eval(t, node("MatMul", 1, nil), a, v)[0], graph.Float32, sh(2), fl(-2, -2), 0)
	expect(t, eval(t, node("MatMul", 1, nil), v, b)[0], graph.Float32, sh(2), fl(-4, -4), 0)
	// Batch broadcast: [2,1,2,2] × [3,2,2] → [2,3,2,2].
	x := f32(sh(2, 1, 2, 2), 1, 0, 0, 1, 2, 0, 0, 2)
	y := f32(sh(3, 2, 2), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
	want := fl(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24)
	expect(t, eval(t, node("MatMul", 1, nil), x, y)[0], graph.Float32, sh(2, 3, 2, 2), want, 0)
	if _, err := EvalNode(node("MatMul", 1, nil), []*graph.Tensor{a, a}); err == nil {
		t.Fatal("[2,3]×[2,3] should fail")
	}
	// 0 · Inf is NaN, not skipped.
	inf := float32(math.Inf(1))
	expect(t, eval(t, node("MatMul", 1, nil), f32(sh(1, 1), 0), f32(sh(1, 1), inf))[0], graph.Float32, sh(1, 1), fl(math.NaN()), 0)
}

func TestGemm(t *testing.T) {
	a := f32(sh(3, 2), 1, 4, 2, 5, 3, 6) // transposed [2,3]
	b := f32(sh(3, 2), 7, 8, 9, 10, 11, 12)
	c := f32(sh(2), 1, -1)
	n := node("Gemm", 1, attrs{"transA": intA(1), "alpha": floatA(2), "beta": floatA(3)})
	expect(t, eval(t, n, a, b, c)[0], graph.Float32, sh(2, 2), fl(119, 125, 281, 305), 0)
	expect(t, eval(t, node("Gemm", 1, attrs{"transB": intA(1)}), f32(sh(1, 2), 1, 1), f32(sh(2, 2), 1, 2, 3, 4))[0],
		graph.Float32, sh(1, 2), fl(3, 7), 0)
}

func TestEinsum(t *testing.T) {
	a := f32(sh(2, 3), 1, 2, 3, 4, 5, 6)
	b := f32(sh(3, 2), 7, 8, 9, 10, 11, 12)
	ein := func(eq string, ins ...*graph.Tensor) *graph.Tensor {
		return eval(t, node("Einsum", 1, attrs{"equation": strA(eq)}), ins...)[0]
	}
	expect(t, ein("ij,jk->ik", a, b), graph.Float32, sh(2, 2), fl(58, 64, 139, 154), 0)
	// Implicit output: labels used once, sorted → "ik".
	expect(t, ein("ij,jk", a, b), graph.Float32, sh(2, 2), fl(58, 64, 139, 154), 0)
	expect(t, ein("ij->ji", a), graph.Float32, sh(3, 2), fl(1, 4, 2, 5, 3, 6), 0)
	expect(t, ein("ij->", a), graph.Float32, sh(), fl(21), 0)
	sq := f32(sh(3, 3), 1, 2, 3, 4, 5, 6, 7, 8, 9)
	expect(t, ein("ii->i", sq), graph.Float32, sh(3), fl(1, 5, 9), 0)
	expect(t, ein("ii", sq), graph.Float32, sh(), fl(15), 0)
	// Ellipsis with broadcasting: [2,1,2] and [3,2] batch-multiply row-wise.
	x := f32(sh(2, 1, 2), 1, 2, 3, 4)
	y := f32(sh(3, 2), 1, 0, 0, 1, 1, 1)
	expect(t, ein("...i,...i->...", x, y), graph.Float32, sh(2, 3), fl(1, 2, 3, 3, 4, 7), 0)
	// Outer product and batched matmul.
	u := f32(sh(2), 1, 2)
	v := f32(sh(3), 1, 10, 100)
	expect(t, ein("i,j->ij", u, v), graph.Float32, sh(2, 3), fl(1, 10, 100, 2, 20, 200), 0)
	bm := ein("bij,bjk->bik", f32(sh(1, 2, 3), 1, 2, 3, 4, 5, 6), f32(sh(1, 3, 2), 7, 8, 9, 10, 11, 12))
	expect(t, bm, graph.Float32, sh(1, 2, 2), fl(58, 64, 139, 154), 0)
	big := i64(sh(2), 1<<40, 3)
	got, _ := ein("i,i->", big, big).Int64s()
	if got[0] != 9 { // 2^80 wraps to 0 in int64
		t.Fatalf("int einsum %d, want 9", got[0])
	}
	if _, err := EvalNode(node("Einsum", 1, attrs{"equation": strA("ij,jk->ik")}), []*graph.Tensor{a, a}); err == nil {
		t.Fatal("mismatched contraction dims should fail")
	}
}

func TestSoftmaxFamily(t *testing.T) {
	x := f32(sh(2, 3), 1, 2, 3, 1, 1, 1)
	e1, e2, e3 := math.Exp(1), math.Exp(2), math.Exp(3)
	s := e1 + e2 + e3
	want := fl(e1/s, e2/s, e3/s, 1.0/3, 1.0/3, 1.0/3)
	expect(t, eval(t, node("Softmax", 1, nil), x)[0], graph.Float32, sh(2, 3), want, 1e-6)
	lw := make([]float64, 6)
	for k := range want {
		lw[k] = math.Log(want[k])
	}
	expect(t, eval(t, node("LogSoftmax", 1, nil), x)[0], graph.Float32, sh(2, 3), lw, 1e-6)
	// axis=0 in opset 13 normalizes columns.
	col := eval(t, node("Softmax", 1, attrs{"axis": intA(0)}), x)[0]
	c0 := 1 / (1 + math.Exp(0)) // columns (1,1): 0.5 each
	vals, _ := col.Float64s()
	if math.Abs(vals[0]-c0) > 1e-6 || math.Abs(vals[0]+vals[3]-1) > 1e-6 {
		t.Fatalf("axis-0 softmax %v", vals)
	}
	// Opset 11: axis=0 coerces to one row of 6.
	legacy := node("Softmax", 1, attrs{"axis": intA(0)})
	legacy.Opset = 11
	vals, _ = eval(t, legacy, x)[0].Float64s()
	var sum float64
	for _, v := range vals {
		sum += v
	}
	if math.Abs(sum-1) > 1e-6 {
		t.Fatalf("legacy softmax sums to %v", sum)
	}
	// Large values stay finite.
	expect(t, eval(t, node("Softmax", 1, nil), f32(sh(2), 1000, 1000))[0], graph.Float32, sh(2), fl(0.5, 0.5), 0)
	expect(t, eval(t, node("Hardmax", 1, nil), f32(sh(2, 3), 1, 3, 3, 0, -1, -2))[0], graph.Float32, sh(2, 3), fl(0, 1, 0, 1, 0, 0), 0)
}

func TestLayerNorm(t *testing.T) {
	x := f32(sh(2, 2), 1, 3, 2, 6)
	scale := f32(sh(2), 2, 1)
	bias := f32(sh(2), 0, 1)
	outs := eval(t, node("LayerNormalization", 3, attrs{"epsilon": floatA(0)}), x, scale, bias)
	expect(t, outs[0], graph.Float32, sh(2, 2), fl(-2, 2, -2, 2), 1e-6)
	expect(t, outs[1], graph.Float32, sh(2, 1), fl(2, 4), 0)
	expect(t, outs[2], graph.Float32, sh(2, 1), fl(1, 0.5), 0)
	// A constant row with eps > 0 normalizes to the bias.
	outs = eval(t, node("LayerNormalization", 1, nil), f32(sh(1, 2), 5, 5), scale, bias)
	expect(t, outs[0], graph.Float32, sh(1, 2), fl(0, 1), 0)
	// axis=0 normalizes everything: mean 3, variance 3.5.
	outs = eval(t, node("LayerNormalization", 1, attrs{"axis": intA(0), "epsilon": floatA(0)}), x, f32(sh(2, 2), 1, 1, 1, 1))
	sd := math.Sqrt(3.5)
	expect(t, outs[0], graph.Float32, sh(2, 2), fl(-2/sd, 0, -1/sd, 3/sd), 1e-6)
	rms := eval(t, node("RMSNormalization", 1, attrs{"epsilon": floatA(0)}), f32(sh(2), 3, 4), f32(sh(2), 1, 2))
	r := math.Sqrt(12.5)
	expect(t, rms[0], graph.Float32, sh(2), fl(3/r, 8/r), 1e-6)
}

func TestBatchNorm(t *testing.T) {
	x := f32(sh(1, 2, 2), 1, 3, 10, 10)
	outs := eval(t, node("BatchNormalization", 1, attrs{"epsilon": floatA(0)}), x,
		f32(sh(2), 1, 2), f32(sh(2), 0, 1), f32(sh(2), 2, 10), f32(sh(2), 1, 4))
	expect(t, outs[0], graph.Float32, sh(1, 2, 2), fl(-1, 1, 1, 1), 1e-6)
}

func TestReduce(t *testing.T) {
	x := f32(sh(2, 3), 1, 2, 3, 4, 5, 6)
	red := func(op string, a attrs, ins ...*graph.Tensor) *graph.Tensor {
		return eval(t, node(op, 1, a), ins...)[0]
	}
	expect(t, red("ReduceSum", nil, x, i64(sh(1), 1)), graph.Float32, sh(2, 1), fl(6, 15), 0)
	expect(t, red("ReduceSum", attrs{"keepdims": intA(0)}, x, i64(sh(1), 0)), graph.Float32, sh(3), fl(5, 7, 9), 0)
	expect(t, red("ReduceSum", nil, x), graph.Float32, sh(1, 1), fl(21), 0)
	expect(t, red("ReduceSum", attrs{"noop_with_empty_axes": intA(1)}, x, i64(sh(0))), graph.Float32, sh(2, 3), fl(1, 2, 3, 4, 5, 6), 0)
	// Opset-13 style axes attribute for ReduceMean/Max/Min.
	expect(t, red("ReduceMean", attrs{"axes": ints(-1)}, x), graph.Float32, sh(2, 1), fl(2, 5), 0)
	expect(t, red("ReduceMax", attrs{"axes": ints(0), "keepdims": intA(0)}, x), graph.Float32, sh(3), fl(4, 5, 6), 0)
	expect(t, red("ReduceMin", attrs{"axes": ints(0, 1), "keepdims": intA(0)}, x), graph.Float32, sh(), fl(1), 0)
	expect(t, red("ReduceProd", attrs{"axes": ints(1)}, x), graph.Float32, sh(2, 1), fl(6, 120), 0)
	expect(t, red("ReduceL2", attrs{"axes": ints(1)}, x), graph.Float32, sh(2, 1), fl(math.Sqrt(14), math.Sqrt(77)), 1e-6)
	expect(t, red("ReduceSumSquare", attrs{"axes": ints(1)}, x), graph.Float32, sh(2, 1), fl(14, 77), 0)
	expect(t, red("ReduceLogSumExp", attrs{"axes": ints(1)}, f32(sh(1, 2), 1000, 1000)), graph.Float32, sh(1, 1), fl(1000+math.Ln2), 1e-6)
	// Integer sums stay exact beyond 2^53.
	big := i64(sh(2), 1<<60, 1)
	expect(t, red("ReduceSum", attrs{"keepdims": intA(0)}, big), graph.Int64, sh(), fl(float64(1<<60)+1), 0)
	got, _ := red("ReduceSum", attrs{"keepdims": intA(0)}, big).Int64s()
	if got[0] != 1<<60+1 {
		t.Fatalf("int64 sum %d", got[0])
	}
	// Bool max/min are any/all (opset 20).
	bl := boolT(sh(2, 2), true, false, false, false)
	expect(t, red("ReduceMax", attrs{"keepdims": intA(0)}, bl, i64(sh(1), 1)), graph.Bool, sh(2), fl(1, 0), 0)
	expect(t, red("ReduceMin", attrs{"keepdims": intA(0)}, bl, i64(sh(1), 1)), graph.Bool, sh(2), fl(0, 0), 0)
	expect(t, red("ReduceMin", attrs{"keepdims": intA(0)}, boolT(sh(0, 2)), i64(sh(1), 0)), graph.Bool, sh(2), fl(1, 1), 0)
	// Empty reductions.
	empty := f32(sh(0, 2))
	expect(t, red("ReduceSum", attrs{"keepdims": intA(0)}, empty, i64(sh(1), 0)), graph.Float32, sh(2), fl(0, 0), 0)
	expect(t, red("ReduceMax", attrs{"axes": ints(0), "keepdims": intA(0)}, empty), graph.Float32, sh(2), fl(math.Inf(-1), math.Inf(-1)), 0)
}

func TestArgMaxCumSumTopK(t *testing.T) {
	x := f32(sh(2, 3), 1, 3, 3, 2, 0, 2)
	expect(t, eval(t, node("ArgMax", 1, attrs{"axis": intA(1)}), x)[0], graph.Int64, sh(2, 1), fl(1, 0), 0)
	expect(t, eval(t, node("ArgMax", 1, attrs{"axis": intA(1), "select_last_index": intA(1), "keepdims": intA(0)}), x)[0],
		graph.Int64, sh(2), fl(2, 2), 0)
	expect(t, eval(t, node("ArgMin", 1, attrs{"axis": intA(0)}), x)[0], graph.Int64, sh(1, 3), fl(0, 1, 1), 0)
	v := f32(sh(4), 1, 2, 3, 4)
	ax := i64(sh(), 0)
	expect(t, eval(t, node("CumSum", 1, nil), v, ax)[0], graph.Float32, sh(4), fl(1, 3, 6, 10), 0)
	expect(t, eval(t, node("CumSum", 1, attrs{"exclusive": intA(1)}), v, ax)[0], graph.Float32, sh(4), fl(0, 1, 3, 6), 0)
	expect(t, eval(t, node("CumSum", 1, attrs{"reverse": intA(1)}), v, ax)[0], graph.Float32, sh(4), fl(10, 9, 7, 4), 0)
	expect(t, eval(t, node("CumSum", 1, attrs{"reverse": intA(1), "exclusive": intA(1)}), v, ax)[0], graph.Float32, sh(4), fl(9, 7, 4, 0), 0)
	outs := eval(t, node("TopK", 2, nil), f32(sh(5), 3, 1, 3, 5, 0), i64(sh(1), 3))
	expect(t, outs[0], graph.Float32, sh(3), fl(5, 3, 3), 0)
	expect(t, outs[1], graph.Int64, sh(3), fl(3, 0, 2), 0)
	outs = eval(t, node("TopK", 2, attrs{"largest": intA(0)}), f32(sh(5), 3, 1, 3, 5, 0), i64(sh(1), 2))
	expect(t, outs[1], graph.Int64, sh(2), fl(4, 1), 0)
}

func TestCast(t *testing.T) {
	x := f32(sh(5), 1.9, -1.9, 0, 65520, float32(math.NaN()))
	to := func(dt graph.DType) *graph.Node { return node("Cast", 1, attrs{"to": intA(int64(dt))}) }
	expect(t, eval(t, to(graph.Int32), x)[0], graph.Int32, sh(5), fl(1, -1, 0, 65520, 0), 0)
	expect(t, eval(t, to(graph.Bool), x)[0], graph.Bool, sh(5), fl(1, 1, 0, 1, 1), 0)
	// 65520 rounds to +Inf in float16; 1.9 to the nearest half.
	h := eval(t, to(graph.Float16), x)[0]
	expect(t, h, graph.Float16, sh(5), fl(1.900390625, -1.900390625, 0, math.Inf(1), math.NaN()), 0)
	bf := eval(t, to(graph.BFloat16), f32(sh(1), 1.00390625))[0] // halfway: ties to even → 1
	expect(t, bf, graph.BFloat16, sh(1), fl(1), 0)
	like := eval(t, node("CastLike", 1, nil), i64(sh(2), 3, -4), f32(sh(0)))[0]
	expect(t, like, graph.Float32, sh(2), fl(3, -4), 0)
	bits := eval(t, to(graph.Uint8), i64(sh(2), 256+7, -1))[0]
	expect(t, bits, graph.Uint8, sh(2), fl(7, 255), 0)
	var uerr *graph.UnsupportedOpError
	if _, err := EvalNode(to(graph.String), []*graph.Tensor{x}); !errors.As(err, &uerr) {
		t.Fatalf("cast to string: %v, want UnsupportedOpError", err)
	}
}

func TestReshapeFamily(t *testing.T) {
	x := f32(sh(2, 3), 1, 2, 3, 4, 5, 6)
	expect(t, eval(t, node("Reshape", 1, nil), x, i64(sh(2), 3, -1))[0], graph.Float32, sh(3, 2), fl(1, 2, 3, 4, 5, 6), 0)
	expect(t, eval(t, node("Reshape", 1, nil), x, i64(sh(3), 0, 3, 1))[0], graph.Float32, sh(2, 3, 1), fl(1, 2, 3, 4, 5, 6), 0)
	if _, err := EvalNode(node("Reshape", 1, nil), []*graph.Tensor{x, i64(sh(1), 5)}); err == nil {
		t.Fatal("reshape to 5 elements should fail")
	}
	expect(t, eval(t, node("Transpose", 1, nil), x)[0], graph.Float32, sh(3, 2), fl(1, 4, 2, 5, 3, 6), 0)
	y := f32(sh(1, 2, 3), 1, 2, 3, 4, 5, 6)
	expect(t, eval(t, node("Transpose", 1, attrs{"perm": ints(2, 0, 1)}), y)[0], graph.Float32, sh(3, 1, 2), fl(1, 4, 2, 5, 3, 6), 0)
	expect(t, eval(t, node("Unsqueeze", 1, nil), x, i64(sh(2), 0, -1))[0], graph.Float32, sh(1, 2, 3, 1), fl(1, 2, 3, 4, 5, 6), 0)
	expect(t, eval(t, node("Unsqueeze", 1, attrs{"axes": ints(1)}), x)[0], graph.Float32, sh(2, 1, 3), fl(1, 2, 3, 4, 5, 6), 0)
	expect(t, eval(t, node("Squeeze", 1, nil), y)[0], graph.Float32, sh(2, 3), fl(1, 2, 3, 4, 5, 6), 0)
	if _, err := EvalNode(node("Squeeze", 1, nil), []*graph.Tensor{y, i64(sh(1), 1)}); err == nil {
		t.Fatal("squeezing a dim of 2 should fail")
	}
	expect(t, eval(t, node("Flatten", 1, attrs{"axis": intA(2)}), y)[0], graph.Float32, sh(2, 3), fl(1, 2, 3, 4, 5, 6), 0)
	expect(t, eval(t, node("Flatten", 1, attrs{"axis": intA(0)}), y)[0], graph.Float32, sh(1, 6), fl(1, 2, 3, 4, 5, 6), 0)
	expect(t, eval(t, node("Expand", 1, nil), f32(sh(2, 1), 1, 2), i64(sh(3), 2, 1, 3))[0], graph.Float32, sh(2, 2, 3),
		fl(1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2), 0)
	// Expand's shape may be smaller than the input's: bidirectional.
	expect(t, eval(t, node("Expand", 1, nil), f32(sh(2, 1), 1, 2), i64(sh(1), 1))[0], graph.Float32, sh(2, 1), fl(1, 2), 0)
	expect(t, eval(t, node("Tile", 1, nil), f32(sh(1, 2), 1, 2), i64(sh(2), 2, 2))[0], graph.Float32, sh(2, 4),
		fl(1, 2, 1, 2, 1, 2, 1, 2), 0)
}

func TestConcatSplit(t *testing.T) {
	a := f32(sh(2, 1), 1, 2)
	b := f32(sh(2, 2), 3, 4, 5, 6)
	e := f32(sh(2, 0))
	expect(t, eval(t, node("Concat", 1, attrs{"axis": intA(-1)}), a, e, b)[0], graph.Float32, sh(2, 3), fl(1, 3, 4, 2, 5, 6), 0)
	x := f32(sh(5), 1, 2, 3, 4, 5)
	outs := eval(t, node("Split", 2, nil), x, i64(sh(2), 2, 3))
	expect(t, outs[0], graph.Float32, sh(2), fl(1, 2), 0)
	expect(t, outs[1], graph.Float32, sh(3), fl(3, 4, 5), 0)
	n := node("Split", 3, attrs{"num_outputs": intA(3)})
	n.Opset = 18
	outs = eval(t, n, x)
	expect(t, outs[2], graph.Float32, sh(1), fl(5), 0)
	expect(t, outs[0], graph.Float32, sh(2), fl(1, 2), 0)
	outs = eval(t, node("Split", 2, attrs{"axis": intA(1)}), b)
	expect(t, outs[1], graph.Float32, sh(2, 1), fl(4, 6), 0)
}

func TestSlice(t *testing.T) {
	x := f32(sh(2, 4), 0, 1, 2, 3, 4, 5, 6, 7)
	sl := func(ins ...*graph.Tensor) *graph.Tensor { return eval(t, node("Slice", 1, nil), ins...)[0] }
	expect(t, sl(x, i64(sh(2), 0, 1), i64(sh(2), 1, 3)), graph.Float32, sh(1, 2), fl(1, 2), 0)
	// Negative step from the end, with clamped huge bounds.
	expect(t, sl(x, i64(sh(1), -1), i64(sh(1), math.MinInt64), i64(sh(1), 1), i64(sh(1), -1)), graph.Float32, sh(2, 4),
		fl(3, 2, 1, 0, 7, 6, 5, 4), 0)
	expect(t, sl(x, i64(sh(1), 0), i64(sh(1), math.MaxInt64), i64(sh(1), 1), i64(sh(1), 2)), graph.Float32, sh(2, 2),
		fl(0, 2, 4, 6), 0)
	expect(t, sl(x, i64(sh(1), 3), i64(sh(1), 1), i64(sh(1), 1)), graph.Float32, sh(2, 0), fl(), 0)
	expect(t, sl(x, i64(sh(1), 10), i64(sh(1), -10), i64(sh(1), 1), i64(sh(1), -3)), graph.Float32, sh(2, 2), fl(3, 0, 7, 4), 0)
	old := node("Slice", 1, attrs{"starts": ints(1), "ends": ints(2), "axes": ints(0)})
	old.Opset = 9
	expect(t, eval(t, old, x)[0], graph.Float32, sh(1, 4), fl(4, 5, 6, 7), 0)
}

func TestPad(t *testing.T) {
	x := f32(sh(1, 3), 1, 2, 3)
	pads := i64(sh(4), 0, 2, 0, 1)
	pad := func(mode string, ins ...*graph.Tensor) *graph.Tensor {
		return eval(t, node("Pad", 1, attrs{"mode": strA(mode)}), ins...)[0]
	}
	expect(t, pad("constant", x, pads, f32(sh(), 9)), graph.Float32, sh(1, 6), fl(9, 9, 1, 2, 3, 9), 0)
	expect(t, pad("reflect", x, pads), graph.Float32, sh(1, 6), fl(3, 2, 1, 2, 3, 2), 0)
	expect(t, pad("edge", x, pads), graph.Float32, sh(1, 6), fl(1, 1, 1, 2, 3, 3), 0)
	expect(t, pad("wrap", x, pads), graph.Float32, sh(1, 6), fl(2, 3, 1, 2, 3, 1), 0)
	// axes input and negative (cropping) pads.
	expect(t, pad("constant", x, i64(sh(2), -1, 1), nil, i64(sh(1), -1)), graph.Float32, sh(1, 3), fl(2, 3, 0), 0)
}

func TestGatherScatter(t *testing.T) {
	x := f32(sh(3, 2), 1, 2, 3, 4, 5, 6)
	expect(t, eval(t, node("Gather", 1, nil), x, i64(sh(2), 2, -3))[0], graph.Float32, sh(2, 2), fl(5, 6, 1, 2), 0)
	expect(t, eval(t, node("Gather", 1, attrs{"axis": intA(1)}), x, i64(sh(), 1))[0], graph.Float32, sh(3), fl(2, 4, 6), 0)
	if _, err := EvalNode(node("Gather", 1, nil), []*graph.Tensor{x, i64(sh(1), 3)}); err == nil {
		t.Fatal("out-of-range gather should fail")
	}
	expect(t, eval(t, node("GatherElements", 1, attrs{"axis": intA(1)}), x, i64(sh(3, 1), 1, 0, -1))[0], graph.Float32, sh(3, 1), fl(2, 3, 6), 0)
	expect(t, eval(t, node("GatherND", 1, nil), x, i64(sh(2, 2), 0, 1, 2, 0))[0], graph.Float32, sh(2), fl(2, 5), 0)
	expect(t, eval(t, node("GatherND", 1, nil), x, i64(sh(1, 1), 1))[0], graph.Float32, sh(1, 2), fl(3, 4), 0)
	b := f32(sh(2, 2, 2), 0, 1, 2, 3, 4, 5, 6, 7)
	expect(t, eval(t, node("GatherND", 1, attrs{"batch_dims": intA(1)}), b, i64(sh(2, 1), 1, 0))[0], graph.Float32, sh(2, 2), fl(2, 3, 4, 5), 0)

	upd := f32(sh(2, 2), 10, 20, 30, 40)
	expect(t, eval(t, node("ScatterND", 1, nil), x, i64(sh(2, 1), 2, 0), upd)[0], graph.Float32, sh(3, 2), fl(30, 40, 3, 4, 10, 20), 0)
	expect(t, eval(t, node("ScatterND", 1, attrs{"reduction": strA("add")}), x, i64(sh(2, 1), 0, 0), upd)[0], graph.Float32, sh(3, 2),
		fl(41, 62, 3, 4, 5, 6), 0)
	se := eval(t, node("ScatterElements", 1, attrs{"axis": intA(1)}), x, i64(sh(3, 1), 1, 0, -2), f32(sh(3, 1), 7, 8, 9))[0]
	expect(t, se, graph.Float32, sh(3, 2), fl(1, 7, 8, 4, 9, 6), 0)
	se = eval(t, node("ScatterElements", 1, attrs{"reduction": strA("max")}), x, i64(sh(1, 2), 0, 0), f32(sh(1, 2), 0, 9))[0]
	expect(t, se, graph.Float32, sh(3, 2), fl(1, 9, 3, 4, 5, 6), 0)
}

func TestOneHotNonZeroTrilu(t *testing.T) {
	oh := eval(t, node("OneHot", 1, nil), i64(sh(3), 0, -1, 5), i64(sh(), 3), f32(sh(2), 0, 1))[0]
	expect(t, oh, graph.Float32, sh(3, 3), fl(1, 0, 0, 0, 0, 1, 0, 0, 0), 0)
	oh = eval(t, node("OneHot", 1, attrs{"axis": intA(0)}), i64(sh(2), 0, 2), f32(sh(1), 3), i64(sh(2), -1, 7))[0]
	expect(t, oh, graph.Int64, sh(3, 2), fl(7, -1, -1, -1, -1, 7), 0)
	nz := eval(t, node("NonZero", 1, nil), f32(sh(2, 2), 1, 0, 0, 3))[0]
	expect(t, nz, graph.Int64, sh(2, 2), fl(0, 1, 0, 1), 0)
	x := f32(sh(3, 3), 1, 2, 3, 4, 5, 6, 7, 8, 9)
	expect(t, eval(t, node("Trilu", 1, nil), x)[0], graph.Float32, sh(3, 3), fl(1, 2, 3, 0, 5, 6, 0, 0, 9), 0)
	expect(t, eval(t, node("Trilu", 1, attrs{"upper": intA(0)}), x, i64(sh(), -1))[0], graph.Float32, sh(3, 3), fl(0, 0, 0, 4, 0, 0, 7, 8, 0), 0)
	expect(t, eval(t, node("Trilu", 1, nil), x, i64(sh(), 1))[0], graph.Float32, sh(3, 3), fl(0, 2, 3, 0, 0, 6, 0, 0, 0), 0)
}

func TestGenerators(t *testing.T) {
	expect(t, eval(t, node("Range", 1, nil), f32(sh(), 1), f32(sh(), 2), f32(sh(), 0.25))[0], graph.Float32, sh(4), fl(1, 1.25, 1.5, 1.75), 0)
	expect(t, eval(t, node("Range", 1, nil), i64(sh(), 10), i64(sh(), 4), i64(sh(), -3))[0], graph.Int64, sh(2), fl(10, 7), 0)
	expect(t, eval(t, node("Range", 1, nil), i64(sh(), 0), i64(sh(), -4), i64(sh(), 1))[0], graph.Int64, sh(0), fl(), 0)
	cs := eval(t, node("ConstantOfShape", 1, attrs{"value": tensorA(i64(sh(1), 7))}), i64(sh(2), 2, 1))[0]
	expect(t, cs, graph.Int64, sh(2, 1), fl(7, 7), 0)
	expect(t, eval(t, node("ConstantOfShape", 1, nil), i64(sh(1), 2))[0], graph.Float32, sh(2), fl(0, 0), 0)
	expect(t, eval(t, node("Constant", 1, attrs{"value_ints": ints(1, 2)}))[0], graph.Int64, sh(2), fl(1, 2), 0)
	expect(t, eval(t, node("Shape", 1, attrs{"start": intA(-2)}), zeros(24, 2, 3, 4))[0], graph.Int64, sh(2), fl(3, 4), 0)
	expect(t, eval(t, node("Size", 1, nil), zeros(24, 2, 3, 4))[0], graph.Int64, sh(), fl(24), 0)
	outs := eval(t, node("Dropout", 2, nil), f32(sh(2), 1, 2))
	expect(t, outs[0], graph.Float32, sh(2), fl(1, 2), 0)
	expect(t, outs[1], graph.Bool, sh(2), fl(1, 1), 0)
}

func TestErrorsNotPanics(t *testing.T) {
	// Every kernel gets no inputs, then a scalar per input: errors are fine,
	// panics are not.
	scalar := f32(sh(), 1)
	for _, op := range Ops() {
		for _, ins := range [][]*graph.Tensor{nil, {scalar}, {scalar, scalar}, {scalar, scalar, scalar},
			{i64(sh(0)), i64(sh(0)), i64(sh(0))}, {f32(sh(0, 3)), i64(sh(1), 5), f32(sh(0))}} {
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("%s panicked on %d inputs: %v", op, len(ins), r)
					}
				}()
				n := node(op, 1, nil)
				if d, o, ok := splitQualified(op); ok {
					n.Domain, n.Op = d, o
				}
				EvalNode(n, ins)
			}()
		}
	}
}

func TestUnknownOp(t *testing.T) {
	_, err := EvalNode(node("NoSuchOp", 1, nil), nil)
	var uerr *graph.UnsupportedOpError
	if !errors.As(err, &uerr) {
		t.Fatalf("got %v, want UnsupportedOpError", err)
	}
}

func TestHalfRounding(t *testing.T) {
	// Agree with graph's float32→16-bit conversions on float32 inputs.
	rng := rand.New(rand.NewSource(9))
	for k := 0; k < 20000; k++ {
		f := float32(rng.NormFloat64() * math.Pow(2, float64(rng.Intn(40)-20)))
		if k%7 == 0 {
			f = math.Float32frombits(rng.Uint32()) // any bit pattern, subnormals and NaN too
		}
		if h := float64(graph.HalfToFloat32(graph.Float32ToHalf(f))); !sameFloat(roundFloat(float64(f), 11, -14, 65504), h) {
			t.Fatalf("f16(%v): %v, graph gives %v", f, roundFloat(float64(f), 11, -14, 65504), h)
		}
		if b := float64(graph.BF16ToFloat32(graph.Float32ToBF16(f))); !sameFloat(roundFloat(float64(f), 8, -126, maxBF16), b) {
			t.Fatalf("bf16(%v): %v, graph gives %v", f, roundFloat(float64(f), 8, -126, maxBF16), b)
		}
	}
	// From float64 directly: 1 + 2^-11 + 2^-40 is just above the f16 tie
	// between 1 and 1+2^-10, so it rounds up; via float32 the 2^-40 would be
	// lost and the tie would round to even (down).
	v := 1 + math.Pow(2, -11) + math.Pow(2, -40)
	if got := roundFloat(v, 11, -14, 65504); got != 1+math.Pow(2, -10) {
		t.Fatalf("got %v", got)
	}
	if roundFloat(65519.99, 11, -14, 65504) != 65504 || !math.IsInf(roundFloat(65520, 11, -14, 65504), 1) {
		t.Fatal("f16 overflow threshold")
	}
}

func sameFloat(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }

func TestClipLegacyAttributes(t *testing.T) {
	n := node("Clip", 1, attrs{"min": floatA(-1), "max": floatA(1)})
	n.Opset = 6
	expect(t, eval(t, n, f32(sh(3), -5, 0.5, 5))[0], graph.Float32, sh(3), fl(-1, 0.5, 1), 0)
	n = node("Clip", 1, attrs{"max": floatA(0)})
	n.Opset = 10
	expect(t, eval(t, n, f32(sh(2), -5, 5))[0], graph.Float32, sh(2), fl(-5, 0), 0)
	u := tensorOf(t, graph.Uint64, sh(2), 1, 9)
	expect(t, eval(t, node("Clip", 1, nil), u, nil, tensorOf(t, graph.Uint64, sh(), 4))[0], graph.Uint64, sh(2), fl(1, 4), 0)
}
