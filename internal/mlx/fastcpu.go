package mlx

// Fast CPU kernels (fastcpu.cc): MLX custom primitives for the ops the
// generic x86-64 mlx-cpu wheel runs slowly (single-threaded scalar exp,
// sigmoid, softmax, layer norm). They are SIMD (AVX-512 / AVX2+FMA /
// portable, chosen at run time) and multi-threaded above 32 Ki elements.
//
// Common rules:
//   - CPU only: on a Scope whose default device is not the CPU they fail
//     with "fast CPU kernel needs the CPU device" (check with
//     s.DefaultDevice() before choosing them).
//   - Inputs of any layout (transposed, broadcast, sliced) are made
//     row-contiguous first (a no-op for arrays already so).
//   - float32, float16 and bfloat16 inputs; half inputs are computed in
//     float32 and the result is cast back. Results have the input dtype
//     (binary ops: the promoted dtype). Other dtypes fail.
//   - They are ordinary graph nodes: lazy, usable inside Compile (opaque,
//     not fused with neighbouring elementwise ops), but not exportable with
//     Export (MLX cannot serialize custom primitives).
//   - exp's relative error is at most 7.9e-8 (AVX-512/AVX2, measured on
//     every float32 with a normal result; ~1.0e-7 for the portable variant):
//     Cody-Waite reduction + degree-7 polynomial with FMA; overflow gives
//     +Inf (x > ~88.72), underflow gives subnormals then 0 (x < ~-103.3),
//     NaN propagates. sigmoid/softmax/silu inherit that plus one division.

const (
	fastExp = iota
	fastSigmoid
	fastSwiGLU
	fastSoftmax
	fastUnaryEnd
)

const (
	fastSigmoidMul = iota
	fastSiLUMul
	fastBinaryEnd
)

func (s *Scope) fastUnary(op int, name string, a *Array) *Array {
	if !s.ok(name, a) {
		return nil
	}
	h, err := libFastUnary(op, a.h)
	return s.result(name, h, err)
}

func (s *Scope) fastBinary(op int, name string, a, b *Array) *Array {
	if !s.ok(name, a, b) {
		return nil
	}
	h, err := libFastBinary(op, a.h, b.h)
	return s.result(name, h, err)
}

// FastExp is exp(x), elementwise.
func (s *Scope) FastExp(x *Array) *Array { return s.fastUnary(fastExp, "fast_exp", x) }

// FastSigmoid is 1/(1+exp(-x)), elementwise.
func (s *Scope) FastSigmoid(x *Array) *Array { return s.fastUnary(fastSigmoid, "fast_sigmoid", x) }

// FastSoftmax is the softmax over the last axis, max-subtracted, with f32
// sums. A row containing NaN, or only -Inf, or +Inf gives NaN (as
// softmax's formula does); a row of equal finite values (e.g. all -1e9)
// gives 1/n.
func (s *Scope) FastSoftmax(x *Array) *Array { return s.fastUnary(fastSoftmax, "fast_softmax", x) }

// FastSoftmaxBias is the softmax over the last axis of scale·logits + b_0 +
// b_1 + … (of3c.Attention's logits-to-weights step in one pass): the biases
// are added in order in f32 after the scale, each broadcast (numpy rules,
// right-aligned) to logits' shape, which they must not enlarge. Biases are
// read in place through their broadcast strides (a [N,1,1,N] mask or a
// [1,H,N,N] pair bias is never expanded to [N,H,N,N]). A bias value below
// −1e9 (so −Inf) is read as −1e9, so a fully masked row is uniform; NaN
// propagates. Max-subtracted, f32 sums, like FastSoftmax. The result has the
// promoted dtype of logits and biases.
func (s *Scope) FastSoftmaxBias(logits *Array, scale float32, biases ...*Array) *Array {
	if !s.ok("fast_softmax_bias", logits) || !s.ok("fast_softmax_bias", biases...) {
		return nil
	}
	hs := make([]hnd, len(biases))
	for i, b := range biases {
		hs[i] = b.h
	}
	h, err := libFastSoftmaxBias(logits.h, scale, hs)
	return s.result("fast_softmax_bias", h, err)
}

// FastAttention is softmax(scale·q·kᵀ + b_0 + b_1 + …)·v over the last two
// axes, in one kernel: q [.., M, D], k [.., K, D], v [.., K, Dv], batch axes
// broadcast (numpy, right-aligned). q, k and v are read in place through
// their strides (transposed or sliced views cost no copy); each bias
// broadcasts to the logits [batch.., M, K] with FastSoftmaxBias's rules
// (added in order in f32 after the scale, values below −1e9 read as −1e9).
// Per batch item and block of query rows the logits live in a per-thread
// buffer of at most 64 KiB, so no [.., M, K] array is ever allocated; the
// two products accumulate in f32 in key/channel order with FMA. The result
// [batch.., M, Dv] is row-contiguous, of the promoted dtype.
func (s *Scope) FastAttention(q, k, v *Array, scale float32, biases ...*Array) *Array {
	return s.fastAttention(q, k, v, scale, biases, false)
}

// FastAttentionHeadsInner is FastAttention with the result's axes −3 and −2
// swapped in memory (for rank ≥ 3): the values of [.., H, M, Dv] are stored
// as [.., M, H, Dv], so transposing it back to [.., M, H, Dv] and merging
// the heads (what attention's consumers do) cost no copy. The values are
// FastAttention's.
func (s *Scope) FastAttentionHeadsInner(q, k, v *Array, scale float32, biases ...*Array) *Array {
	return s.fastAttention(q, k, v, scale, biases, true)
}

func (s *Scope) fastAttention(q, k, v *Array, scale float32, biases []*Array, headsInner bool) *Array {
	if !s.ok("fast_attention", q, k, v) || !s.ok("fast_attention", biases...) {
		return nil
	}
	hs := make([]hnd, len(biases))
	for i, b := range biases {
		hs[i] = b.h
	}
	h, err := libFastAttention(q.h, k.h, v.h, scale, hs, headsInner)
	return s.result("fast_attention", h, err)
}

// FastContiguous is x made row-contiguous, like MLX's contiguous (no copy
// when x already is), but for float32 multi-threaded and cache-blocked:
// rows contiguous in x are memcpy'd, transposes are copied in 32×32 tiles
// (MLX's CPU copy of a strided array is a scalar loop on one thread).
// Other dtypes go through MLX's copy. The fast kernels' inputs are made
// contiguous this way.
func (s *Scope) FastContiguous(x *Array) *Array {
	if !s.ok("fast_contiguous", x) {
		return nil
	}
	h, err := libFastContiguous(x.h)
	return s.result("fast_contiguous", h, err)
}

// FastMatMul is a @ b over the last two axes (a [.., M, K], b [.., K, N],
// batch axes broadcast; rank ≥ 2 each), for many small products such as
// the triangle multiplication's per-channel N×N GEMMs: operands are read in
// place through their strides (no contiguous copies), the batch items (or
// blocks of rows when there are few) are spread over the thread pool, each
// a single-thread AVX-512/AVX2/generic register-blocked GEMM accumulating in
// f32 in K order with FMA. Large single GEMMs are better left to MatMul
// (OpenBLAS). Float inputs; the result has the promoted dtype.
func (s *Scope) FastMatMul(a, b *Array) *Array {
	if !s.ok("fast_matmul", a, b) {
		return nil
	}
	h, err := libFastMatMul(a.h, b.h)
	return s.result("fast_matmul", h, err)
}

// FastSwiGLU takes x of shape [..., 2h] and returns silu(x[..., :h]) *
// x[..., h:] of shape [..., h] without materializing the halves (the merged
// projection of of3c.SwiGLU).
func (s *Scope) FastSwiGLU(x *Array) *Array { return s.fastUnary(fastSwiGLU, "fast_swiglu", x) }

// FastSigmoidMul is a * sigmoid(g) (the attention / triangle gate); a and g
// broadcast.
func (s *Scope) FastSigmoidMul(a, g *Array) *Array {
	return s.fastBinary(fastSigmoidMul, "fast_sigmoid_mul", a, g)
}

// FastSiLUMul is silu(a) * b = a * sigmoid(a) * b (SwiGLU's elementwise
// part); a and b broadcast.
func (s *Scope) FastSiLUMul(a, b *Array) *Array {
	return s.fastBinary(fastSiLUMul, "fast_silu_mul", a, b)
}

// FastLayerNorm normalizes over the last axis: (x - mean) / sqrt(var + eps)
// * weight + bias, with a two-pass f32 mean and (biased) variance. weight
// and bias may be nil; if given they must have as many elements as the last
// axis (any shape, e.g. [C] or [1, C]).
func (s *Scope) FastLayerNorm(x, weight, bias *Array, eps float32) *Array {
	if !s.ok("fast_layer_norm", x) || !s.okOpt("fast_layer_norm", weight, bias) {
		return nil
	}
	h, err := libFastLayerNorm(x.h, hOrNil(weight), hOrNil(bias), eps)
	return s.result("fast_layer_norm", h, err)
}

// FastCPUInfo describes the fast CPU kernels in use: the SIMD variant
// ("avx512", "avx2" or "generic") and the number of threads they use for
// large arrays. Empty without MLX.
func FastCPUInfo() (isa string, threads int) {
	if !available {
		return "", 0
	}
	return libFastISA(), libFastThreads()
}
