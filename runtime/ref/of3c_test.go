package ref

import (
	"math"
	"math/rand"
	"testing"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/shapes"
)

func randT(rng *rand.Rand, shape ...int64) *graph.Tensor {
	vals := make([]float32, shapes.Prod(shape))
	for k := range vals {
		vals[k] = float32(rng.NormFloat64())
	}
	return f32(shape, vals...)
}

func attn(a attrs) *graph.Node {
	n := node("Attention", 1, a)
	n.Domain = graph.FusedDomain
	return n
}

// unfusedAttention evaluates softmax(scale·q·kᵀ + Σ b)·v with the plain ONNX
// kernels, the graph the fusion replaces.
func unfusedAttention(t *testing.T, scale float32, q, k, v *graph.Tensor, biases ...*graph.Tensor) *graph.Tensor {
	t.Helper()
	rank := int64(len(k.Shape))
	perm := make([]int64, rank)
	for d := range perm {
		perm[d] = int64(d)
	}
	perm[rank-2], perm[rank-1] = rank-1, rank-2
	kt := eval(t, node("Transpose", 1, attrs{"perm": ints(perm...)}), k)[0]
	s := eval(t, node("MatMul", 1, nil), q, kt)[0]
	s = eval(t, node("Mul", 1, nil), s, f32(sh(), scale))[0]
	for _, b := range biases {
		s = eval(t, node("Add", 1, nil), s, b)[0]
	}
	p := eval(t, node("Softmax", 1, nil), s)[0]
	return eval(t, node("MatMul", 1, nil), p, v)[0]
}

func closeTo(t *testing.T, what string, got, want *graph.Tensor, tol float64) {
	t.Helper()
	w, _ := want.Float64s()
	expect(t, got, want.DType, want.Shape, w, tol)
}

func TestAttentionMatchesUnfused(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	q := randT(rng, 2, 3, 5, 4) // [S, H, Q, c]
	k := randT(rng, 2, 3, 6, 4)
	v := randT(rng, 2, 3, 6, 8)
	pair := randT(rng, 1, 3, 5, 6) // shared over S
	mask := randT(rng, 2, 1, 1, 6)
	scale := float32(0.5)
	want := unfusedAttention(t, scale, q, k, v, pair, mask)
	got := eval(t, attn(attrs{"scale": floatA(scale)}), q, k, v, pair, mask)[0]
	closeTo(t, "plain", got, want, 1e-6)
	// Default scale is 1/sqrt(c).
	def := eval(t, attn(nil), q, k, v)[0]
	closeTo(t, "default scale", def, unfusedAttention(t, 0.5, q, k, v), 1e-6)

	// Every chunking, alone and combined, gives the same result; sizes that
	// do not divide the axis leave a short last block.
	for _, a := range []attrs{
		{"batch_chunk": intA(1)},
		{"query_chunk": intA(2)},
		{"kv_chunk": intA(4)},
		{"kv_chunk": intA(1)},
		{"kv_chunk": intA(100)},
		{"batch_chunk": intA(1), "query_chunk": intA(3), "kv_chunk": intA(5)},
	} {
		a["scale"] = floatA(scale)
		got := eval(t, attn(a), q, k, v, pair, mask)[0]
		closeTo(t, "chunked", got, want, 1e-5)
	}
}

func TestAttentionHandComputed(t *testing.T) {
	// One query, two keys: logits (q·k)·scale = [0, ln 3] → P = [1/4, 3/4].
	q := f32(sh(1, 1), 1)
	k := f32(sh(2, 1), 0, float32(math.Log(3)))
	v := f32(sh(2, 2), 4, 0, 0, 8)
	got := eval(t, attn(attrs{"scale": floatA(1)}), q, k, v)[0]
	expect(t, got, graph.Float32, sh(1, 2), fl(1, 6), 1e-6)
}

func TestAttentionFullyMasked(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	q := randT(rng, 1, 3, 2)
	k := randT(rng, 1, 4, 2)
	v := randT(rng, 1, 4, 3)
	inf := float32(math.Inf(-1))
	// Row 0 fully masked with −inf, row 1 partially, row 2 not at all.
	mask := f32(sh(1, 3, 4), inf, inf, inf, inf, 0, inf, 0, inf, 0, 0, 0, 0)
	vv, _ := v.Float64s()
	mean := make([]float64, 3)
	for key := 0; key < 4; key++ {
		for c := 0; c < 3; c++ {
			mean[c] += vv[key*3+c] / 4
		}
	}
	// The same with the finite mask OF3 builds, 1e9·(mask − 1).
	finite := f32(sh(1, 3, 4), -1e9, -1e9, -1e9, -1e9, 0, -1e9, 0, -1e9, 0, 0, 0, 0)
	want := unfusedAttention(t, 1, q, k, v, finite)
	for _, a := range []attrs{{}, {"kv_chunk": intA(1)}, {"kv_chunk": intA(3)}, {"query_chunk": intA(1), "kv_chunk": intA(2)}} {
		a["scale"] = floatA(1)
		got := eval(t, attn(a), q, k, v, mask)[0]
		vals, _ := got.Float64s()
		for c := 0; c < 3; c++ {
			if math.IsNaN(vals[c]) || math.Abs(vals[c]-mean[c]) > 1e-5 {
				t.Fatalf("%v: fully masked row gives %v, want mean of v %v", a, vals[:3], mean)
			}
		}
		closeTo(t, "masked", got, want, 1e-5)
	}
}

func TestAttentionBiasOnly(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	v := randT(rng, 4, 2, 5, 3) // [S, H, K, c]
	w := randT(rng, 1, 2, 6, 5) // [1, H, Q, K] shared by all S rows
	m := randT(rng, 1, 1, 1, 5)
	s := eval(t, node("Add", 1, nil), w, m)[0]
	p := eval(t, node("Softmax", 1, nil), s)[0]
	want := eval(t, node("MatMul", 1, nil), p, v)[0]
	for _, a := range []attrs{{}, {"batch_chunk": intA(3)}, {"query_chunk": intA(4)}, {"kv_chunk": intA(2)},
		{"batch_chunk": intA(2), "query_chunk": intA(5), "kv_chunk": intA(3)}} {
		a["mode"] = strA(graph.AttentionModeBiasOnly)
		got := eval(t, attn(a), nil, nil, v, w, m)[0]
		closeTo(t, "bias_only", got, want, 1e-5)
	}
	if _, err := EvalNode(attn(attrs{"mode": strA(graph.AttentionModeBiasOnly)}), []*graph.Tensor{nil, nil, v}); err == nil {
		t.Fatal("bias_only without a bias should fail")
	}
}

func TestAttentionErrors(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	q, k, v := randT(rng, 2, 4), randT(rng, 3, 4), randT(rng, 3, 2)
	bad := []struct {
		a   attrs
		ins []*graph.Tensor
	}{
		{nil, []*graph.Tensor{q, randT(rng, 3, 5), v}},                // head dims differ
		{nil, []*graph.Tensor{q, k, randT(rng, 4, 2)}},                // v keys differ
		{nil, []*graph.Tensor{q, k, v, randT(rng, 2, 4)}},             // bias widens keys
		{attrs{"mode": strA("nope")}, []*graph.Tensor{q, k, v}},       // unknown mode
		{attrs{"batch_chunk": intA(1)}, []*graph.Tensor{q, k, v}},     // rank-2 output
		{attrs{"kv_chunk": intA(-1)}, []*graph.Tensor{q, k, v}},       // negative chunk
		{nil, []*graph.Tensor{q, k, i64(sh(3, 2), 1, 2, 3, 4, 5, 6)}}, // dtype mix
		{attrs{"kv_chunk": intA(2)}, []*graph.Tensor{q, k, randT(rng, 4, 2)}},
	}
	for i, c := range bad {
		if _, err := EvalNode(attn(c.a), c.ins); err == nil {
			t.Errorf("case %d: want an error", i)
		}
	}
}

func TestAttentionFloat16(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	cast := func(x *graph.Tensor) *graph.Tensor {
		return eval(t, node("Cast", 1, attrs{"to": intA(int64(graph.Float16))}), x)[0]
	}
	q, k, v := cast(randT(rng, 2, 3, 4)), cast(randT(rng, 2, 5, 4)), cast(randT(rng, 2, 5, 4))
	inf := float32(math.Inf(-1))
	mask := cast(f32(sh(2, 1, 5), inf, inf, inf, inf, inf, 0, 0, inf, 0, 0))
	got := eval(t, attn(attrs{"scale": floatA(0.5)}), q, k, v, mask)[0]
	if got.DType != graph.Float16 {
		t.Fatalf("output %s, want f16", got.DType)
	}
	vals, _ := got.Float64s()
	for _, x := range vals {
		if math.IsNaN(x) {
			t.Fatalf("f16 attention with a −inf mask gave NaN: %v", vals)
		}
	}
	lma := eval(t, attn(attrs{"scale": floatA(0.5), "kv_chunk": intA(2)}), q, k, v, mask)[0]
	w, _ := got.Float64s()
	expect(t, lma, graph.Float16, got.Shape, w, 2e-3)
}

func swiglu(a attrs) *graph.Node {
	n := node("SwiGLU", 1, a)
	n.Domain = graph.FusedDomain
	return n
}

func TestSwiGLU(t *testing.T) {
	// Hand-computed: x=[1,2], Wa=[[1],[0]], Wb=[[0],[1]] → a=1, b=2, silu(1)·2.
	x := f32(sh(1, 2), 1, 2)
	w := f32(sh(2, 2), 1, 0, 0, 1)
	s := 1 / (1 + math.Exp(-1))
	expect(t, eval(t, swiglu(nil), x, w)[0], graph.Float32, sh(1, 1), fl(2*s), 1e-6)

	rng := rand.New(rand.NewSource(6))
	xs := randT(rng, 3, 5, 4)
	ws := randT(rng, 4, 6)
	wo := randT(rng, 3, 2)
	ab := eval(t, node("MatMul", 1, nil), xs, ws)[0]
	parts := eval(t, node("Split", 2, attrs{"axis": intA(-1)}), ab)
	sig := eval(t, node("Sigmoid", 1, nil), parts[0])[0]
	silu := eval(t, node("Mul", 1, nil), parts[0], sig)[0]
	want := eval(t, node("Mul", 1, nil), silu, parts[1])[0]
	wantOut := eval(t, node("MatMul", 1, nil), want, wo)[0]
	for _, chunk := range []int64{0, 1, 4, 15, 100} {
		a := attrs{"row_chunk": intA(chunk)}
		closeTo(t, "swiglu", eval(t, swiglu(a), xs, ws)[0], want, 1e-6)
		closeTo(t, "swiglu+out", eval(t, swiglu(a), xs, ws, wo)[0], wantOut, 1e-6)
	}
	if _, err := EvalNode(swiglu(nil), []*graph.Tensor{xs, randT(rng, 4, 5)}); err == nil {
		t.Fatal("odd W width should fail")
	}
	if _, err := EvalNode(swiglu(nil), []*graph.Tensor{xs, ws, randT(rng, 2, 2)}); err == nil {
		t.Fatal("W_out with the wrong rows should fail")
	}
}
