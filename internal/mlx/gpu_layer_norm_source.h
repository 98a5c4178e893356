// Internal to internal/mlx: the CUDA source of the LayerNorm kernel
// (gpu_kernels.cc compiles it through MLX's fast::cuda_kernel for bf16/fp16
// x on the GPU). Plain C++ with no MLX dependency, so that
// scripts/gpu/norm_check wraps the same source in a standalone nvcc test.
#pragma once

#include <string>

namespace mlxs {

// layer_norm_header: two adjacent elements of T read into / written from
// f32 (one 4- or 8-byte access).
inline const char* layer_norm_header() {
  return R"(
__device__ __forceinline__ void of3c_ld2(const float* p, float& a, float& b) {
  const float2 t = *reinterpret_cast<const float2*>(p);
  a = t.x, b = t.y;
}
__device__ __forceinline__ void of3c_ld2(const __nv_bfloat16* p, float& a, float& b) {
  const __nv_bfloat162 t = *reinterpret_cast<const __nv_bfloat162*>(p);
  a = __low2float(t), b = __high2float(t);
}
__device__ __forceinline__ void of3c_ld2(const __half* p, float& a, float& b) {
  const __half2 t = *reinterpret_cast<const __half2*>(p);
  a = __low2float(t), b = __high2float(t);
}
__device__ __forceinline__ void of3c_st2(float* p, float a, float b) { *reinterpret_cast<float2*>(p) = make_float2(a, b); }
__device__ __forceinline__ void of3c_st2(__nv_bfloat16* p, float a, float b) {
  *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(a, b);
}
__device__ __forceinline__ void of3c_st2(__half* p, float a, float b) { *reinterpret_cast<__half2*>(p) = __floats2half2_rn(a, b); }
)";
}

// One warp per ROWS rows of x's last axis (n = x_shape[nd - 1] <= 32·VPT,
// VPT even): the rows are read once into registers, all of them before any
// reduction so that more bytes are in flight (pairs of adjacent elements
// when PAIR and x and out are aligned for it); per row, the mean and then
// the variance (of the deviations, both divided by n) are two warp
// reductions in f32, and y = (x − mean)·rsqrt(var + eps)·weight + bias is
// computed in f32 and rounded once to T, x's type. weight and bias are f32
// [n] (each optional).
inline std::string layer_norm_source(bool has_w, bool has_b) {
  const std::string affine = std::string(has_w ? "          y0 *= weight[k], y1 *= weight[k1];\n" : "") +
                             (has_b ? "          y0 += bias[k], y1 += bias[k1];\n" : "");
  const std::string affine_one = std::string(has_w ? "          y0 *= weight[k];\n" : "") + (has_b ? "          y0 += bias[k];\n" : "");
  const std::string affine_two = std::string(has_w ? "          y1 *= weight[k1];\n" : "") + (has_b ? "          y1 += bias[k1];\n" : "");
  return R"(
  const int nd = x_ndim;
  const int n = x_shape[nd - 1];
  int64_t rows = 1;
  for (int d = 0; d < nd - 1; ++d) rows *= x_shape[d];
  const int64_t row0 = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32 * ROWS;
  const int lane = threadIdx.x % 32;
  if (row0 >= rows) return;  // the whole warp
  // Element j of the lane: pairs (j, j+1) are adjacent when pair, else 32
  // apart. n even keeps every row as aligned as the first.
  const bool pair = PAIR && ((reinterpret_cast<unsigned long long>(x) | reinterpret_cast<unsigned long long>(out)) &
                             (2 * sizeof(T) - 1)) == 0;
  float v[ROWS][VPT];
#pragma unroll
  for (int r = 0; r < ROWS; ++r) {
    const bool live = row0 + r < rows;
    const T* xr = x + (row0 + r) * n;
#pragma unroll
    for (int j = 0; j < VPT; j += 2) {
      const int k = pair ? ((j / 2) * 32 + lane) * 2 : lane + 32 * j;
      const int k1 = pair ? k + 1 : k + 32;
      float a = 0.0f, b = 0.0f;
      if (live && pair) {
        if (k < n) of3c_ld2(xr + k, a, b);
      } else if (live) {
        if (k < n) a = static_cast<float>(xr[k]);
        if (k1 < n) b = static_cast<float>(xr[k1]);
      }
      v[r][j] = a, v[r][j + 1] = b;
    }
  }
#pragma unroll
  for (int r = 0; r < ROWS; ++r) {
    if (row0 + r >= rows) break;  // warp-uniform
    T* yr = out + (row0 + r) * n;
    float sum = 0.0f;
#pragma unroll
    for (int j = 0; j < VPT; ++j) sum += v[r][j];
    for (int w = 16; w > 0; w >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, w);
    const float mean = sum / static_cast<float>(n);
    float sq = 0.0f;
#pragma unroll
    for (int j = 0; j < VPT; j += 2) {
      const int k = pair ? ((j / 2) * 32 + lane) * 2 : lane + 32 * j;
      const int k1 = pair ? k + 1 : k + 32;
      const float d0 = k < n ? v[r][j] - mean : 0.0f, d1 = k1 < n ? v[r][j + 1] - mean : 0.0f;
      sq += d0 * d0 + d1 * d1;
    }
    for (int w = 16; w > 0; w >>= 1) sq += __shfl_xor_sync(0xffffffffu, sq, w);
    const float rstd = rsqrtf(sq / static_cast<float>(n) + eps[0]);
#pragma unroll
    for (int j = 0; j < VPT; j += 2) {
      const int k = pair ? ((j / 2) * 32 + lane) * 2 : lane + 32 * j;
      const int k1 = pair ? k + 1 : k + 32;
      float y0 = (v[r][j] - mean) * rstd, y1 = (v[r][j + 1] - mean) * rstd;
      if (pair) {
        if (k < n) {
)" + affine + R"(          of3c_st2(yr + k, y0, y1);
        }
      } else {
        if (k < n) {
)" + affine_one + R"(          yr[k] = static_cast<T>(y0);
        }
        if (k1 < n) {
)" + affine_two + R"(          yr[k1] = static_cast<T>(y1);
        }
      }
    }
  }
)";
}

// layer_norm_rows is the rows per warp for VPT elements per lane: more
// rows in flight where a row is short, within a few dozen registers.
inline int layer_norm_rows(int vpt) { return vpt <= 4 ? 4 : vpt <= 8 ? 2 : 1; }

}  // namespace mlxs
