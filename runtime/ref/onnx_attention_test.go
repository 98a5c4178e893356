package ref

import (
	"math"
	"testing"

	"github.com/of3c/of3c/graph"
)

// Expected values below come from the ONNX reference implementation
// (onnx.reference.ops.op_attention) on the same inputs.

func TestONNXAttentionCacheCausalGQA(t *testing.T) {
	q := make([]float32, 8)
	for i := range q {
		q[i] = float32(i)/7 - 0.5
	}
	k := make([]float32, 4)
	for i := range k {
		k[i] = float32(i)/5 - 0.3
	}
	v := make([]float32, 6)
	for i := range v {
		v[i] = float32(i) / 3
	}
	n := node("Attention", 4, attrs{"is_causal": intA(1), "q_num_heads": intA(2), "kv_num_heads": intA(1),
		"qk_matmul_output_mode": intA(3)})
	n.Opset = 23
	outs := eval(t, n, f32(sh(1, 2, 4), q...), f32(sh(1, 2, 2), k...), f32(sh(1, 2, 3), v...),
		boolT(sh(2, 3), true, false, true, true, true, true),
		f32(sh(1, 1, 1, 2), 0.1, -0.2), f32(sh(1, 1, 1, 3), 1, 2, 3))
	expect(t, outs[0], graph.Float32, sh(1, 2, 6), fl(1, 2, 3, 1, 2, 3,
		0.6762948632240295, 1.2265244722366333, 1.7767539024353027, 0.7007972002029419, 1.2471357583999634, 1.7934743165969849), 1e-6)
	expect(t, outs[1], graph.Float32, sh(1, 1, 3, 2), fl(0.1, -0.2, -0.3, -0.1, 0.1, 0.3), 1e-6)
	expect(t, outs[2], graph.Float32, sh(1, 1, 3, 3), fl(1, 2, 3, 0, 1.0/3, 2.0/3, 1, 4.0/3, 5.0/3), 1e-6)
	expect(t, outs[3], graph.Float32, sh(1, 2, 2, 3), fl(1, 0, 0, 0.3253442943096161, 0.32370516657829285, 0.35095056891441345,
		1, 0, 0, 0.3195078372955322, 0.2992028594017029, 0.3812893331050873), 1e-6)
}

func TestONNXAttentionFullyMaskedSoftcap(t *testing.T) {
	inf := float32(math.Inf(1))
	mask := f32(sh(2, 2), -inf, -inf, 0, -inf)
	n := node("Attention", 1, attrs{"softcap": floatA(0.5), "scale": floatA(0.3)})
	n.Opset = 23
	ones := f32(sh(1, 1, 2, 2), 1, 1, 1, 1)
	out := eval(t, n, ones, ones, f32(sh(1, 1, 2, 2), 0, 1, 2, 3), mask)[0]
	// Row 0 has no attendable key: zeros, not NaN.
	expect(t, out, graph.Float32, sh(1, 1, 2, 2), fl(0, 0, 0, 1), 0)
}

func TestONNXAttentionMatchesFused(t *testing.T) {
	// Without masks or caches ONNX Attention is the of3c op with one head layout.
	q := f32(sh(1, 2, 3, 2), 1, 0, 0, 1, 1, 1, 2, 0, 0, 2, -1, 1)
	k := f32(sh(1, 2, 2, 2), 1, 2, 3, 4, -1, 0, 0, 1)
	v := f32(sh(1, 2, 2, 3), 1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 0, 1)
	n := node("Attention", 1, nil)
	n.Opset = 23
	got := eval(t, n, q, k, v)[0]
	want := eval(t, attn(nil), q, k, v)[0]
	closeTo(t, "onnx vs fused", got, want, 1e-6)
}
