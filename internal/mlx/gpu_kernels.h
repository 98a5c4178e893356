// Internal to internal/mlx: custom GPU kernels through MLX's
// fast::cuda_kernel (CUDA backend only; on other backends MLX refuses them
// when they are evaluated, and the Go side never asks for them there).
#pragma once

#include <cstdint>
#include <vector>

#include "mlx_required.h"

namespace mlxs {

// gpu_softmax_bias is softmax(L + b_0 + ... + b_{n-1}) over the last axis in
// one kernel: f32 logits of any strides, 1-4 f32 biases broadcastable to
// them (read in place, no [.., K] sum materialised). Row-contiguous result.
mlx::core::array gpu_softmax_bias(const mlx::core::array& L, const std::vector<mlx::core::array>& biases);

// gpu_bias_sum writes b_0 + ... + b_{n-1} (1-4 f32 biases broadcast to
// shape, summed in order in f32; clamped at -65504 first when clamp_f16) as
// a row-contiguous array of dtype dt (f32, f16 or bf16) in one kernel.
mlx::core::array gpu_bias_sum(const mlx::core::Shape& shape, mlx::core::Dtype dt, bool clamp_f16,
                              const std::vector<mlx::core::array>& biases);

// gpu_flash_attention is softmax(scale·q·kᵀ + Σ biases)·v without the
// logits (gpu_flash_source.h): q, k (both null in bias-only mode) and v
// f32/f16/bf16 of any strides with head sizes 1..64, 0-4 f32 biases (1-4
// without q and k) broadcasting into the [batch.., Q, K] logits without
// enlarging them; f32 accumulation and softmax; the result [batch.., Q, D]
// in out_dt, row-contiguous. mma: the tensor-core kernel
// (gpu_flash_mma_source.h) instead of the FFMA one, for q, k, v and out_dt of
// one dtype, bf16 or f16, in mode qk (invalid_argument otherwise).
mlx::core::array gpu_flash_attention(const mlx::core::array* q, const mlx::core::array* k, const mlx::core::array& v,
                                     const std::vector<mlx::core::array>& biases, float scale,
                                     mlx::core::Dtype out_dt, bool mma);

// gpu_layer_norm normalises x (f32, f16 or bf16, any layout: copied to
// row-contiguous first if it is not) over its last axis of 1..1024
// elements: one warp per row, mean and variance in f32, y = (x − mean)·
// rsqrt(var + eps)·weight + bias in f32 rounded once to x's dtype (weight
// and bias f32 [n], each optional). The same numerics as MLX's layer_norm on
// an f32 copy of x followed by a cast back, without the copies.
constexpr int64_t kGPULayerNormMax = 1024;
mlx::core::array gpu_layer_norm(const mlx::core::array& x, const mlx::core::array* weight, const mlx::core::array* bias,
                                float eps);

}  // namespace mlxs
