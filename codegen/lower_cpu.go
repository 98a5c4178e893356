package codegen

import (
	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/mlx"
	"github.com/of3c/of3c/passes"
)

// CPU-only lowerings: internal/mlx's SIMD, multi-threaded kernels (the
// "fast" kernels) and the CPU forms of exp and sigmoid.

// fastAttention lowers a CPU f32 attention in mode qk to internal/mlx's
// FastAttention kernel (path AttentionCPUFused): softmax(scale·q·kᵀ +
// Σ biases)·v per batch item and block of query rows, with the logits block
// in a per-thread buffer, q, k, v read in place through their strides (the
// heads split out of the projection and transposed cost no copy), the
// biases added in order in f32 with the −1e9 clamp of readBias. It never
// materialises the [.., Q, K] logits, so the graph's batch/query/kv
// chunking and cpuBlock (which exist to bound that array, and are exact,
// docs/ops.md) are not applied: less memory than any chunking. Numerically
// it differs from the unfused path only in rounding: the scale multiplies
// the f32 logit q·k rather than q, and the dot products accumulate in
// key/channel order instead of OpenBLAS's.
func (t *tracer) fastAttention(q, k, v *val, biases []*val, scale float64, headsInner bool) *mlx.Array {
	var bs []*mlx.Array
	for _, b := range biases {
		if b != nil {
			bs = append(bs, t.arr(b))
		}
	}
	if headsInner {
		return t.s.FastAttentionHeadsInner(t.arr(q), t.arr(k), t.arr(v), float32(scale), bs...)
	}
	return t.s.FastAttention(t.arr(q), t.arr(k), t.arr(v), float32(scale), bs...)
}

// headsInnerUse reports whether every use of n's output is a Transpose that
// swaps axes −3 and −2 (the heads back behind the queries, before they are
// merged): then FastAttentionHeadsInner's layout makes that transpose, and
// the reshape merging the heads, views instead of copies. Either layout
// gives the same values.
func headsInnerUse(g *graph.Graph, n *graph.Node) bool {
	if g == nil || len(n.Outputs) == 0 || n.Outputs[0] == nil || g.IsOutput(n.Outputs[0]) {
		return false
	}
	uses := g.Uses()[n.Outputs[0]]
	if len(uses) == 0 {
		return false
	}
	for _, u := range uses {
		perm, ok := u.AttrInts("perm")
		r := len(perm)
		if u.Op != "Transpose" || !ok || r < 3 {
			return false
		}
		for i, p := range perm {
			want := int64(i)
			switch i {
			case r - 3:
				want = int64(r - 2)
			case r - 2:
				want = int64(r - 3)
			}
			if p != want {
				return false
			}
		}
	}
	return true
}

// fastWeights is softmax(scale·q·kᵀ + Σ biases) through the fused
// FastSoftmaxBias CPU kernel (path AttentionCPUSoftmaxBias), which reads
// every bias in place through its broadcast strides instead of
// materialising one [.., Q, K] sum per bias (MLX's broadcast adds are
// scalar and single-threaded on x86). The numerics are the unfused path's:
// q is scaled before the matmul, the (already −1e9-clamped, see readBias)
// biases are added in order in f32, then a max-subtracted softmax.
func (at *attention) fastWeights() *mlx.Array {
	return at.t.s.FastSoftmaxBias(at.logits(at.k, nil), 1, at.biases...)
}

// expNonPos is exp(x) for x ≤ 0 (softmax after subtracting the row max),
// computed as expm1(x) + 1. MLX's CPU exp on x86 costs ~35 ns per element
// (measured; expm1 ~6 ns), and the softmax exponentials dominate attention.
// For x ≤ 0 the result lies in [0, 1] with an absolute error of ~3e-8 (one
// rounding of a value below 1), which is what the normalised weights need;
// only entries below ~1e-7 lose relative precision, and their weight is
// below the rounding of the row sum anyway.
func (t *tracer) expNonPos(x *mlx.Array) *mlx.Array {
	if t.fast(x) {
		return t.s.FastExp(x)
	}
	if x == nil || x.Dtype() != mlx.Float32 || t.p.opts.Device != "cpu" {
		return t.s.Exp(x)
	}
	return t.s.Add(t.s.Expm1(x), t.s.Scalar(1, mlx.Float32))
}

// sigmoid is 1/(2 + expm1(−x)) on the CPU, for the speed reason above; the
// form keeps full relative precision for every x (expm1(−x) ∈ (−1, 0) for
// x > 0, large and exact for x < 0, +inf → 0).
func (t *tracer) sigmoid(x *mlx.Array) *mlx.Array {
	if t.fast(x) {
		return t.s.FastSigmoid(x)
	}
	if x == nil || t.p.opts.Device != "cpu" || !(x.Dtype() == mlx.Float32 || x.Dtype() == mlx.Float64) {
		return t.s.Sigmoid(x)
	}
	s := t.s
	return s.Div(s.Scalar(1, x.Dtype()), s.Add(s.Scalar(2, x.Dtype()), s.Expm1(s.Neg(x))))
}

// cpuBlock picks a batch_chunk for an unchunked attention on the CPU whose
// logits exceed passes.CPUBlockElems (0: leave it whole). The rule is the
// planner's (passes.CPUAttentionBlock), so its estimate is what runs.
func (t *tracer) cpuBlock(out []int64, keys int64) int64 {
	if t.p.opts.Device != "cpu" {
		return 0
	}
	return passes.CPUAttentionBlock(out, keys)
}

// fast reports whether internal/mlx's SIMD, multi-threaded CPU kernels
// (FastExp, FastSoftmax, FastSigmoid, FastSwiGLU, FastLayerNorm, ...) serve
// x: CPU programs on f32 arrays unless Options.NoFastKernels. MLX's own
// x86 CPU kernels are scalar and single-threaded (docs/notes/BENCHMARKS.md).
func (t *tracer) fast(x *mlx.Array) bool {
	return x != nil && t.p.opts.Device == "cpu" && !t.p.opts.NoFastKernels && x.Dtype() == mlx.Float32
}
