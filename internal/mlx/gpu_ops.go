package mlx

import "fmt"

// GPUSoftmaxBias is softmax(logits + b_0 + b_1 + …) over the last axis in one
// custom CUDA kernel (internal/mlx/gpu_kernels.cc): float32 logits of any
// layout and 1–4 float32 biases that broadcast to them (numpy rules), read in
// place through their strides, added left to right in f32, then a
// max-subtracted softmax. It saves the full-size sum and a second pass over
// it, which MLX's own ops need. Only for GPU streams of MLX's CUDA backend:
// elsewhere the error surfaces when the result is evaluated.
func (s *Scope) GPUSoftmaxBias(logits *Array, biases ...*Array) *Array {
	if !s.ok("gpu_softmax_bias", logits) || !s.ok("gpu_softmax_bias", biases...) {
		return nil
	}
	hs := make([]hnd, len(biases))
	for i, b := range biases {
		hs[i] = b.h
	}
	h, err := libGPUSoftmaxBias(logits.h, hs)
	return s.result("gpu_softmax_bias", h, err)
}

// GPUBiasSum is b_0 + b_1 + … (1–4 float32 arrays broadcast to shape, added
// in order in f32) written once as a row-contiguous array of dtype dt
// (Float32, Float16 or BFloat16), in one custom CUDA kernel — the additive
// mask of a fused attention. With clampF16 the sum is first clamped at
// −65504 so an fp16 mask stays finite. CUDA GPU streams only, like
// GPUSoftmaxBias.
func (s *Scope) GPUBiasSum(shape []int, dt Dtype, clampF16 bool, biases ...*Array) *Array {
	if !s.ok("gpu_bias_sum", biases...) {
		return nil
	}
	hs := make([]hnd, len(biases))
	for i, b := range biases {
		hs[i] = b.h
	}
	h, err := libGPUBiasSum(shape, dt, clampF16, hs)
	return s.result("gpu_bias_sum", h, err)
}

// GPULayerNorm is LayerNorm over x's last axis (1–1024 elements; x f32, f16
// or bf16 of any layout) in one custom CUDA kernel: the mean, the variance
// and (x − mean)·rsqrt(var + eps)·weight + bias in f32, rounded once to x's
// dtype — what MLX's layer_norm of an f32 copy of x, cast back, computes,
// without writing the f32 copies. weight and bias (f32 [n]) may be nil.
// CUDA GPU streams only, like GPUSoftmaxBias.
func (s *Scope) GPULayerNorm(x, weight, bias *Array, eps float32) *Array {
	if !s.ok("gpu_layer_norm", x) || !s.okOpt("gpu_layer_norm", weight, bias) {
		return nil
	}
	h, err := libGPULayerNorm(x.h, hOrNil(weight), hOrNil(bias), eps)
	return s.result("gpu_layer_norm", h, err)
}

// GPUFlashAttention is softmax(scale·q·kᵀ + b_0 + b_1 + …)·v in one custom
// CUDA kernel that never writes the [batch.., Q, K] logits: key blocks with
// an online (running max) softmax, f32 accumulation and softmax whatever the
// input dtypes (internal/mlx/gpu_flash_source.h). q, k and v are f32, f16 or
// bf16 of any strides (numpy-broadcast batch axes; head sizes 1–64); the
// 0–4 biases are f32 and broadcast into the logits without enlarging them,
// read in place through their strides. With q and k nil (bias-only mode,
// at least one bias) the weights are softmax(Σ biases). The result,
// [batch.., Q, D] of dtype dt, is row-contiguous. CUDA GPU streams only.
func (s *Scope) GPUFlashAttention(q, k, v *Array, biases []*Array, scale float32, dt Dtype) *Array {
	return s.gpuFlashAttention("gpu_flash_attention", q, k, v, biases, scale, dt, false)
}

// GPUFlashAttentionMMA is GPUFlashAttention on tensor cores
// (internal/mlx/gpu_flash_mma_source.h: mma.sync m16n8k16 for q·kᵀ and P·v,
// f32 accumulation, online softmax and biases in f32, P rounded to the
// input dtype) for q, k and v of one dtype, bf16 or fp16, which is also the
// result's; mode qk only (q and k non-nil).
func (s *Scope) GPUFlashAttentionMMA(q, k, v *Array, biases []*Array, scale float32) *Array {
	const op = "gpu_flash_attention_mma"
	if q == nil || k == nil {
		if s.err == nil {
			s.err = fmt.Errorf("mlx: %s: needs q and k", op)
		}
		return nil
	}
	if !s.ok(op, q) {
		return nil
	}
	return s.gpuFlashAttention(op, q, k, v, biases, scale, q.Dtype(), true)
}

func (s *Scope) gpuFlashAttention(op string, q, k, v *Array, biases []*Array, scale float32, dt Dtype, mma bool) *Array {
	if (q == nil) != (k == nil) {
		if s.err == nil {
			s.err = fmt.Errorf("mlx: %s: q and k go together", op)
		}
		return nil
	}
	if !s.ok(op, v) || !s.ok(op, biases...) {
		return nil
	}
	var qh, kh hnd
	if q != nil {
		if !s.ok(op, q, k) {
			return nil
		}
		qh, kh = q.h, k.h
	}
	hs := make([]hnd, len(biases))
	for i, b := range biases {
		hs[i] = b.h
	}
	h, err := libGPUFlashAttention(qh, kh, v.h, hs, scale, dt, mma)
	return s.result(op, h, err)
}
