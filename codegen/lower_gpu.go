package codegen

import (
	"slices"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/mlx"
	"github.com/of3c/of3c/internal/shapes"
	"github.com/of3c/of3c/passes"
)

// gpuWeights is softmax(scale·q·kᵀ + Σ biases) on the GPU through
// internal/mlx's custom CUDA kernel (GPUSoftmaxBias; path
// AttentionGPUSoftmaxBias): the GEMM writes the logits once and one kernel
// reads them with every bias in place through broadcast strides and writes
// the weights. MLX's own ops need a broadcast-add kernel over the full
// [.., Q, K] logits (strided 4-D indexing: 4.5 ms of a 17 ms PairformerBlock
// at N = 384 on an H200) and a softmax pass after it (docs/notes/GPU.md).
// The numerics are the unfused path's: q scaled before the GEMM, the
// −1e9-clamped biases added in order in f32, a max-subtracted softmax.
func (at *attention) gpuWeights() *mlx.Array {
	return at.t.s.GPUSoftmaxBias(at.logits(at.k, nil), at.biases...)
}

// sdpaMask is the additive mask of a fused SDPA call: Σ biases (each read
// with readBias, added in order in f32; clamped at −65504 first for fp16),
// in the attention's dtype, with at most len(batch)+2 axes (ok false
// otherwise: the caller falls back to the unfused lowering). nil without
// biases. When two or more biases broadcast to the full [batch.., Q, K]
// logits — the sum must be materialised anyway, e.g. a [B,1,1,K] key mask
// plus a [1,H,Q,K] pair bias — it is written in one pass by internal/mlx's
// GPUBiasSum kernel; MLX's fused broadcast add over 4-D indices took
// 2 ms per triangle attention at N = 384 (docs/notes/GPU.md).
func (t *tracer) sdpaMask(biases []*val, batch []int64, Q, K int64, dt mlx.Dtype) (*mlx.Array, bool) {
	s := t.s
	var rbs []*mlx.Array
	for _, b := range biases {
		if b != nil {
			rbs = append(rbs, t.readBias(t.arr(b)))
		}
	}
	if len(rbs) == 0 {
		return nil, true
	}
	full := append(append([]int64{}, batch...), Q, K)
	var sum []int64
	for _, rb := range rbs {
		if rb == nil {
			return nil, false
		}
		bs := shapeOf(rb)
		if len(bs) > len(full) {
			return nil, false
		}
		if sum == nil {
			sum = bs
		} else if b, err := shapes.Broadcast(sum, bs); err == nil {
			sum = b
		} else {
			return nil, false
		}
	}
	fp16 := dt == mlx.Float16
	if len(rbs) >= 2 && len(rbs) <= 4 && !t.p.opts.NoFastKernels && len(full) <= 8 && slices.Equal(sum, full) {
		allF32 := true
		for _, rb := range rbs {
			allF32 = allF32 && rb.Dtype() == mlx.Float32
		}
		if allF32 {
			return s.GPUBiasSum(intsOf(full), dt, fp16, rbs...), true
		}
	}
	mask := rbs[0]
	for _, rb := range rbs[1:] {
		mask = s.Add(mask, rb)
	}
	if fp16 {
		mask = s.Maximum(mask, s.Scalar(-f16Max, mlx.Float32))
	}
	return s.AsType(mask, dt), true
}

// fusedSDPA lowers to MLX's fused attention kernel (path AttentionGPUSDPA:
// the GPU with bf16/fp16 inputs, head size a multiple of 8 up to 128, equal
// q/v head sizes, mode qk, no chunking — the fused kernel already avoids the
// logits' memory — heads on axis -3; see sdpaFits). The biases are summed
// into one additive mask in f32 and rounded to the input dtype, as the
// kernel requires. ok false when the mask cannot be built.
func (t *tracer) fusedSDPA(q, k, v *val, biases []*val, scale float64) (*mlx.Array, bool) {
	qa, ka, va := t.arr(q), t.arr(k), t.arr(v)
	if qa == nil || ka == nil || va == nil {
		return nil, false
	}
	c := q.shape[q.rank()-1]
	s := t.s
	batch, err := shapes.Broadcast(q.shape[:q.rank()-2], k.shape[:k.rank()-2])
	if err == nil {
		batch, err = shapes.Broadcast(batch, v.shape[:v.rank()-2])
	}
	if err != nil || len(batch) < 1 {
		return nil, false
	}
	H := batch[len(batch)-1]
	B := int64(1)
	for _, d := range batch[:len(batch)-1] {
		B *= d
	}
	Q, K := q.shape[q.rank()-2], k.shape[k.rank()-2]
	to4 := func(a *mlx.Array, rows, cols int64) *mlx.Array {
		full := append(append([]int64{}, batch...), rows, cols)
		return s.Reshape(s.BroadcastTo(a, intsOf(full)...), int(B), int(H), int(rows), int(cols))
	}
	mask, ok := t.sdpaMask(biases, batch, Q, K, qa.Dtype())
	if !ok {
		return nil, false
	}
	if mask != nil {
		mask = to4(mask, Q, K)
	}
	out := s.ScaledDotProductAttention(to4(qa, Q, c), to4(ka, K, c), to4(va, K, c), float32(scale), mask)
	out = s.Reshape(out, intsOf(append(append([]int64{}, batch...), Q, c))...)
	return out, s.Err() == nil
}

// flashAttention lowers to internal/mlx's GPUFlashAttention kernel (path
// AttentionGPUFlash): softmax(scale·q·kᵀ + Σ biases)·v with key tiles and an
// online softmax, so the [.., Q, K] logits are never written — the memory
// of a triangle attention is its inputs and output, at any N. q, k and v
// are read in their device dtype and widened in the kernel; the biases are
// read as the unfused path reads them (readBias: f32, −inf → −1e9),
// row-contiguous, through their broadcast strides; accumulation and softmax
// are f32. The chunk attributes are ignored (there is nothing left to
// chunk). q and k are nil in bias_only mode. ok false when an operand is
// missing. mma: the tensor-core kernel (path AttentionGPUFlashMMA;
// flashMMAOperands holds), whose result, in q's dtype, is cast to the device
// dtype of dt if that differs.
func (t *tracer) flashAttention(q, k, v *val, biases []*val, scale float64, dt graph.DType, mma bool) (*mlx.Array, bool) {
	var qa, ka *mlx.Array
	if q != nil {
		if qa, ka = t.arr(q), t.arr(k); qa == nil || ka == nil {
			return nil, false
		}
	}
	va := t.arr(v)
	if va == nil {
		return nil, false
	}
	var bs []*mlx.Array
	for _, b := range biases {
		if b == nil {
			continue
		}
		rb := t.readBias(t.arr(b))
		if rb == nil {
			return nil, false
		}
		// readBias's elementwise result keeps its input's strides when that
		// input is a dense permutation — OpenFold3's triangle bias is
		// linear(z) [.., Q, K, H] moved to [.., H, Q, K], so its keys lie H
		// apart — and the kernels read keys with one scalar load each
		// unless they are contiguous. Row-contiguous it is read in pairs;
		// the copy is of a [H, Q, K] tensor made once per attention (a
		// no-op when the bias is row-contiguous already).
		bs = append(bs, t.contiguousBias(rb))
	}
	var out *mlx.Array
	if mma {
		if out = t.s.GPUFlashAttentionMMA(qa, ka, va, bs, float32(scale)); out != nil && out.Dtype() != t.ddt(dt) {
			out = t.s.AsType(out, t.ddt(dt))
		}
	} else {
		out = t.s.GPUFlashAttention(qa, ka, va, bs, float32(scale), t.ddt(dt))
	}
	return out, out != nil && t.s.Err() == nil
}

// flashMMAOperands reports whether q, k and v are, on the device, of the
// one dtype (bf16 or fp16) the tensor-core flash kernel takes.
func (t *tracer) flashMMAOperands(q, k, v *val) bool {
	if q == nil || k == nil {
		return false
	}
	qa, ka, va := t.arr(q), t.arr(k), t.arr(v)
	if qa == nil || ka == nil || va == nil {
		return false
	}
	dt := qa.Dtype()
	return (dt == mlx.BFloat16 || dt == mlx.Float16) && ka.Dtype() == dt && va.Dtype() == dt
}

// contiguousBias is the flash kernels' bias b ([.., Q, K]) row-contiguous
// (see flashAttention), copied in blocks of query rows where one tiled copy
// of all of it would exceed the kernel's grid (transposed2D).
func (t *tracer) contiguousBias(b *mlx.Array) *mlx.Array {
	sh := b.Shape()
	if len(sh) < 2 {
		return b
	}
	q, k := int64(sh[len(sh)-2]), int64(sh[len(sh)-1])
	per := t.tiledCopyCols(b)
	if per <= 0 || q*k <= per || k > per {
		return t.transposed2D(b, q*k)
	}
	rows := per / k
	var parts []*mlx.Array
	for lo := int64(0); lo < q; lo += rows {
		hi := min(lo+rows, q)
		parts = append(parts, t.transposed2D(t.sliceAxis(b, int64sOf(sh), len(sh)-2, lo, hi), (hi-lo)*k))
	}
	return t.s.Concatenate(len(sh)-2, parts...)
}

// tiledCopyCols is the most columns MLX's tiled column-to-row copy of x
// takes on the GPU (0: no limit, off the GPU).
func (t *tracer) tiledCopyCols(x *mlx.Array) int64 {
	if t.p.opts.Device != "gpu" {
		return 0
	}
	return passes.GPUTiledCopyCols(x.Dtype().Size())
}

// transposed2D returns x, a 2-D transpose of a contiguous array viewed as
// [rows, cols] → [cols, rows] (a transposed matrix, or an axis moved across
// the others), made row-contiguous: MLX copies that with its tiled
// column-to-row kernel, several times faster than the strided copy an
// operation that needs it contiguous would make. That kernel takes at most
// passes.GPUTiledCopyCols columns (an f32 [4, N, N] triangle bias has more
// from N = 2048 on), so past it x is left as it is for the consumer to read
// or copy.
func (t *tracer) transposed2D(x *mlx.Array, cols int64) *mlx.Array {
	if x == nil {
		return x
	}
	if most := t.tiledCopyCols(x); most > 0 && cols > most {
		return x
	}
	return t.s.Contiguous(x)
}
