// Internal to internal/mlx: the CUDA source of the flash-style attention
// kernel (gpu_kernels.cc compiles it through MLX's fast::cuda_kernel).
// Plain C++ with no MLX dependency, so that scripts/gpu/flash_check can
// wrap the same source in a standalone nvcc test against a CPU reference.
#pragma once

#include <string>

namespace mlxs {

// flash_attention_source is the body of
//
//   out[r, i, :] = Σ_j softmax_j(scale·q[r, i, :]·k[r, j, :] + Σ_b b[r, i, j]) · v[r, j, :]
//
// over the batch rows r of the full [batch.., Q, K] logits, which are never
// written: one thread per query (QT queries per block), keys in tiles of KT
// staged in shared memory with the tile of the summed biases, and an online
// softmax (running max m and sum l per query; the accumulator is rescaled
// once per tile). Inputs: q, k (only when qk), v, b0..b{nb-1} — all already
// broadcast to the full batch shape (q [batch.., Q, C], k [batch.., K, C],
// v [batch.., K, D], biases [batch.., Q, K]) and read through their strides,
// so a broadcast operand (stride 0) costs no copy — and, when qk, a one
// element f32 `scale`. Template constants from the caller: C, D (head
// sizes), OutT. Everything is computed in f32 whatever the input dtypes.
// The output is row-contiguous [batch.., Q, D]. A row whose every logit is
// −inf gives NaN, as softmax does (the lowering clamps masks at −1e9).
inline std::string flash_attention_source(int nb, bool qk) {
  std::string off_decl, off_acc, bias_sum;
  if (qk) {
    off_decl += "  int64_t oq = 0, ok = 0;\n";
    off_acc += "      oq += ix * q_strides[d];\n      ok += ix * k_strides[d];\n";
  }
  for (int i = 0; i < nb; ++i) {
    const std::string n = std::to_string(i), b = "b" + n;
    off_decl += "  int64_t o" + n + " = 0;\n";
    off_acc += "      o" + n + " += ix * " + b + "_strides[d];\n";
    bias_sum += "        x += " + b + "[o" + n + " + qq * " + b + "_strides[nd - 2] + kk * " + b + "_strides[nd - 1]];\n";
  }
  const std::string qref = qk ? "q" : "b0";
  std::string s = R"(
  constexpr int QT = 64;  // queries per block, one per thread
  constexpr int KT = 32;  // keys per tile
  const int nd = v_ndim;
  const int K = v_shape[nd - 2];
  const int Q = )" + qref + R"(_shape[nd - 2];
  int64_t rows = 1;
  for (int d = 0; d < nd - 2; ++d) rows *= v_shape[d];
  const int qtiles = (Q + QT - 1) / QT;
  const int64_t blk = blockIdx.x;
  const int64_t r = blk / qtiles;
  if (r >= rows) return;  // the whole block: no barrier is skipped by part of it
  const int q0 = static_cast<int>(blk % qtiles) * QT;
  const int tid = threadIdx.x;
  int64_t ov = 0;
)" + off_decl + R"(
  {
    int64_t t = r;
    for (int d = nd - 3; d >= 0; --d) {
      const int64_t ix = t % v_shape[d];
      t /= v_shape[d];
      ov += ix * v_strides[d];
)" + off_acc + R"(
    }
  }
  const int64_t svr = v_strides[nd - 2], svc = v_strides[nd - 1];
  __shared__ float vs[KT][D];
  __shared__ float bs[QT][KT + 1];  // +1: thread i reads row i without bank conflicts
  const int qi = q0 + tid;
  const bool live = qi < Q;
)";
  if (qk) {
    s += R"(
  __shared__ float ks[KT][C];
  const int64_t skr = k_strides[nd - 2], skc = k_strides[nd - 1];
  float qr[C];
  {
    const float sc = scale[0];
    const int64_t sqr = q_strides[nd - 2], sqc = q_strides[nd - 1];
#pragma unroll
    for (int c = 0; c < C; ++c) qr[c] = live ? static_cast<float>(q[oq + qi * sqr + c * sqc]) * sc : 0.0f;
  }
)";
  }
  s += R"(
  float acc[D];
#pragma unroll
  for (int c = 0; c < D; ++c) acc[c] = 0.0f;
  float m = -INFINITY, l = 0.0f;
  for (int k0 = 0; k0 < K; k0 += KT) {
    __syncthreads();  // the previous tile is consumed
    for (int e = tid; e < KT * D; e += QT) {
      const int j = e / D, c = e % D;
      vs[j][c] = (k0 + j < K) ? static_cast<float>(v[ov + (k0 + j) * svr + c * svc]) : 0.0f;
    }
)";
  if (qk) {
    s += R"(
    for (int e = tid; e < KT * C; e += QT) {
      const int j = e / C, c = e % C;
      ks[j][c] = (k0 + j < K) ? static_cast<float>(k[ok + (k0 + j) * skr + c * skc]) : 0.0f;
    }
)";
  }
  s += R"(
    for (int e = tid; e < QT * KT; e += QT) {
      const int i = e / KT, j = e % KT;
      float x = 0.0f;
      if (q0 + i < Q && k0 + j < K) {
        const int64_t qq = q0 + i, kk = k0 + j;
)" + bias_sum + R"(
      }
      bs[i][j] = x;
    }
    __syncthreads();
    float sj[KT];
    float mt = m;
#pragma unroll
    for (int j = 0; j < KT; ++j) {
      float x = bs[tid][j];
)";
  if (qk) {
    s += R"(
      float dot = 0.0f;
#pragma unroll
      for (int c = 0; c < C; ++c) dot = fmaf(qr[c], ks[j][c], dot);
      x = dot + x;
)";
  }
  s += R"(
      if (k0 + j >= K) x = -INFINITY;
      sj[j] = x;
      mt = fmaxf(mt, x);
    }
    // m = -inf (first tile) gives corr 0; a tile that is all -inf so far keeps 1.
    const float corr = (mt == -INFINITY) ? 1.0f : expf(m - mt);
    l *= corr;
#pragma unroll
    for (int c = 0; c < D; ++c) acc[c] *= corr;
#pragma unroll
    for (int j = 0; j < KT; ++j) {
      const float p = (sj[j] == -INFINITY) ? 0.0f : expf(sj[j] - mt);
      l += p;
#pragma unroll
      for (int c = 0; c < D; ++c) acc[c] = fmaf(p, vs[j][c], acc[c]);
    }
    m = mt;
  }
  if (live) {
    const float inv = 1.0f / l;
    OutT* o = out + (r * Q + qi) * static_cast<int64_t>(D);
#pragma unroll
    for (int c = 0; c < D; ++c) o[c] = static_cast<OutT>(acc[c] * inv);
  }
)";
  return s;
}

// FlashQT is the kernel's block size (queries per block).
constexpr int kFlashQT = 64;

}  // namespace mlxs
