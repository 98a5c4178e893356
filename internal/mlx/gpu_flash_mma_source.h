// Internal to internal/mlx: the CUDA source of the tensor-core (mma.sync)
// flash attention kernel for bf16/fp16 q, k, v (gpu_kernels.cc compiles it
// through MLX's fast::cuda_kernel). Plain C++ with no MLX dependency, like
// gpu_flash_source.h, so that scripts/gpu/flash_check wraps the same source.
#pragma once

#include <string>

namespace mlxs {

// flash_mma_header is the kernel's header (cuda_kernel's `header`
// argument, placed before the kernel): the mma.sync.m16n8k16 wrapper
// (bf16 or fp16 inputs chosen by a tag pointer, f32 accumulators) and the
// packing of two halves into one 32-bit register. MLX's default header
// already includes cuda_bf16.h and cuda_fp16.h.
inline std::string flash_mma_header() {
  return R"(
__device__ __forceinline__ unsigned of3c_bits(__nv_bfloat16 x) { return __bfloat16_as_ushort(x); }
__device__ __forceinline__ unsigned of3c_bits(__half x) { return __half_as_ushort(x); }
template <typename T>
__device__ __forceinline__ unsigned of3c_pack(T lo, T hi) { return of3c_bits(lo) | (of3c_bits(hi) << 16); }
__device__ __forceinline__ unsigned of3c_packf(float lo, float hi, const __nv_bfloat16*) {
  return of3c_pack(__float2bfloat16_rn(lo), __float2bfloat16_rn(hi));
}
__device__ __forceinline__ unsigned of3c_packf(float lo, float hi, const __half*) {
  return of3c_pack(__float2half_rn(lo), __float2half_rn(hi));
}
// c[0..3] += a (16x16, row) * b (16x8, col): the m16n8k16 fragments of PTX's
// mma.sync (g = lane / 4, t = lane % 4): a = {(g, 2t..), (g+8, 2t..),
// (g, 2t+8..), (g+8, 2t+8..)}, b = {(k 2t.., n g), (k 2t+8.., n g)},
// c = {(g, 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1)}.
__device__ __forceinline__ void of3c_mma(float* c, const unsigned* a, unsigned b0, unsigned b1, const __nv_bfloat16*) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ void of3c_mma(float* c, const unsigned* a, unsigned b0, unsigned b1, const __half*) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
)";
}

// flash_mma_source is the body of the same attention as
// flash_attention_source(nb, true) — out[r, i, :] = Σ_j softmax_j(scale·
// q[r, i, :]·k[r, j, :] + Σ_b b[r, i, j]) · v[r, j, :], with the same inputs
// (q, k, v, b0..b{nb-1} broadcast to the full batch shape and read through
// their strides, a one element f32 `scale`) and template constants (C, D,
// OutT) — for q, k, v of dtype OutT, bf16 or fp16, on tensor cores, in the
// FlashAttention-2 arrangement: `warps` warps per block, each owning
// 16 queries (their q fragments in registers, the head size padded with
// zeros to a multiple of 16); keys in tiles of 64 staged in shared memory
// (k row-major, v transposed, both padded by 8 halves so that the fragment
// loads are free of bank conflicts; 16-byte loads when the rows are
// contiguous and aligned); S = q·kᵀ by mma.sync m16n8k16 with f32
// accumulation; scale and the biases added in f32 at the accumulator's
// positions, read from global memory through their strides (never
// materialised); an online softmax in f32 (running max per row, the sum
// kept per thread and reduced over the row's 4 threads at the end); P
// rounded to OutT and multiplied by v on tensor cores (v's D padded to a
// multiple of 8). Result row-contiguous [batch.., Q, D] in OutT.
// warps: the block's warps (kFlashMMAWarps in gpu_kernels.cc; flash_check
// times others).
inline std::string flash_mma_source(int nb, int warps = 4) {
  std::string off_decl, off_acc, row_decl, bias_a, bias_b;
  for (int i = 0; i < nb; ++i) {
    const std::string n = std::to_string(i), b = "b" + n;
    off_decl += "  int64_t o" + n + " = 0;\n";
    off_acc += "      o" + n + " += ix * " + b + "_strides[d];\n";
    row_decl += "  const int64_t ra" + n + " = o" + n + " + static_cast<int64_t>(qa) * " + b +
                "_strides[nd - 2], rb" + n + " = o" + n + " + static_cast<int64_t>(qb) * " + b +
                "_strides[nd - 2], sk" + n + " = " + b + "_strides[nd - 1];\n";
    bias_a += "          x0 += " + b + "[ra" + n + " + col * sk" + n + "];\n";
    bias_a += "          if (c1) x1 += " + b + "[ra" + n + " + (col + 1) * sk" + n + "];\n";
    bias_b += "          x2 += " + b + "[rb" + n + " + col * sk" + n + "];\n";
    bias_b += "          if (c1) x3 += " + b + "[rb" + n + " + (col + 1) * sk" + n + "];\n";
  }
  return "\n  constexpr int NW = " + std::to_string(warps) + R"(;  // warps per block, 16 queries each
  constexpr int QB = 16 * NW;    // queries per block
  constexpr int KT = 64;         // keys per tile
  constexpr int CP = (C + 15) / 16 * 16;  // q·kᵀ's k-dim, padded
  constexpr int DP = (D + 7) / 8 * 8;     // v's head size, padded
  constexpr int KS = CP + 8;     // ks row stride (halves): conflict-free b loads
  constexpr int VS = KT + 8;     // vt row stride (halves)
  using T = OutT;
  const T* tag = nullptr;
  const int nd = v_ndim;
  const int K = v_shape[nd - 2];
  const int Q = q_shape[nd - 2];
  int64_t rows = 1;
  for (int d = 0; d < nd - 2; ++d) rows *= v_shape[d];
  const int qtiles = (Q + QB - 1) / QB;
  const int64_t blk = blockIdx.x;
  const int64_t r = blk / qtiles;
  if (r >= rows) return;  // the whole block
  const int q0 = static_cast<int>(blk % qtiles) * QB;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t4 = lane % 4;
  int64_t oq = 0, ok = 0, ov = 0;
)" + off_decl + R"(
  {
    int64_t t = r;
    for (int d = nd - 3; d >= 0; --d) {
      const int64_t ix = t % v_shape[d];
      t /= v_shape[d];
      oq += ix * q_strides[d];
      ok += ix * k_strides[d];
      ov += ix * v_strides[d];
)" + off_acc + R"(
    }
  }
  const int qa = q0 + warp * 16 + g, qb = qa + 8;  // this thread's two rows
  const bool la = qa < Q, lb = qb < Q;
)" + row_decl + R"(
  const int64_t skr = k_strides[nd - 2], skc = k_strides[nd - 1];
  const int64_t svr = v_strides[nd - 2], svc = v_strides[nd - 1];
  // 16-byte staging when rows are contiguous runs of 8 aligned halves.
  const bool kvec = C % 8 == 0 && skc == 1 && skr % 8 == 0 && ok % 8 == 0 &&
                    (reinterpret_cast<unsigned long long>(k) & 15) == 0;
  const bool vvec = D % 8 == 0 && svc == 1 && svr % 8 == 0 && ov % 8 == 0 &&
                    (reinterpret_cast<unsigned long long>(v) & 15) == 0;
  __shared__ __align__(16) T ks[KT * KS];
  __shared__ __align__(16) T vt[DP * VS];
  const T zero = static_cast<T>(0.0f);
  unsigned qf[CP / 16][4];
  {
    const int64_t sqr = q_strides[nd - 2], sqc = q_strides[nd - 1];
#pragma unroll
    for (int kk = 0; kk < CP / 16; ++kk) {
      const int c = kk * 16 + 2 * t4;
      auto ld = [&](bool live, int row, int cc) {
        return (live && cc < C) ? q[oq + row * sqr + cc * sqc] : zero;
      };
      qf[kk][0] = of3c_pack(ld(la, qa, c), ld(la, qa, c + 1));
      qf[kk][1] = of3c_pack(ld(lb, qb, c), ld(lb, qb, c + 1));
      qf[kk][2] = of3c_pack(ld(la, qa, c + 8), ld(la, qa, c + 9));
      qf[kk][3] = of3c_pack(ld(lb, qb, c + 8), ld(lb, qb, c + 9));
    }
  }
  const float sc = scale[0];
  float o[DP / 8][4];
#pragma unroll
  for (int i = 0; i < DP / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  float ma = -INFINITY, mb = -INFINITY, lsa = 0.0f, lsb = 0.0f;
  for (int k0 = 0; k0 < K; k0 += KT) {
    __syncthreads();  // the previous tile is consumed
    if (kvec) {
      for (int e = tid; e < KT * (CP / 8); e += 32 * NW) {
        const int j = e / (CP / 8), c = (e % (CP / 8)) * 8;
        uint4 x = make_uint4(0, 0, 0, 0);
        if (k0 + j < K && c < C) x = *reinterpret_cast<const uint4*>(k + ok + (k0 + j) * skr + c);
        *reinterpret_cast<uint4*>(&ks[j * KS + c]) = x;
      }
    } else {
      for (int e = tid; e < KT * CP; e += 32 * NW) {
        const int j = e / CP, c = e % CP;
        ks[j * KS + c] = (k0 + j < K && c < C) ? k[ok + (k0 + j) * skr + c * skc] : zero;
      }
    }
    if (vvec) {
      for (int e = tid; e < KT * (DP / 8); e += 32 * NW) {
        const int j = e / (DP / 8), c = (e % (DP / 8)) * 8;
        uint4 x = make_uint4(0, 0, 0, 0);
        if (k0 + j < K) x = *reinterpret_cast<const uint4*>(v + ov + (k0 + j) * svr + c);
        const T* h = reinterpret_cast<const T*>(&x);
#pragma unroll
        for (int i = 0; i < 8; ++i) vt[(c + i) * VS + j] = h[i];
      }
    } else {
      for (int e = tid; e < KT * DP; e += 32 * NW) {
        const int j = e % KT, c = e / KT;
        vt[c * VS + j] = (k0 + j < K && c < D) ? v[ov + (k0 + j) * svr + c * svc] : zero;
      }
    }
    __syncthreads();
    float s[KT / 8][4];
#pragma unroll
    for (int nt = 0; nt < KT / 8; ++nt) {
      s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < CP / 16; ++kk) {
        const T* p = &ks[(nt * 8 + g) * KS + kk * 16 + 2 * t4];
        of3c_mma(s[nt], qf[kk], *reinterpret_cast<const unsigned*>(p), *reinterpret_cast<const unsigned*>(p + 8), tag);
      }
    }
    float mta = ma, mtb = mb;
#pragma unroll
    for (int nt = 0; nt < KT / 8; ++nt) {
      const int col = k0 + nt * 8 + 2 * t4;
      const bool c0 = col < K, c1 = col + 1 < K;
      float x0 = s[nt][0] * sc, x1 = s[nt][1] * sc, x2 = s[nt][2] * sc, x3 = s[nt][3] * sc;
      if (c0) {
        if (la) {
)" + bias_a + R"(
        }
        if (lb) {
)" + bias_b + R"(
        }
      }
      if (!c0) x0 = x2 = -INFINITY;
      if (!c1) x1 = x3 = -INFINITY;
      s[nt][0] = x0, s[nt][1] = x1, s[nt][2] = x2, s[nt][3] = x3;
      mta = fmaxf(mta, fmaxf(x0, x1));
      mtb = fmaxf(mtb, fmaxf(x2, x3));
    }
    // The row's max over its 4 threads (lanes 4g..4g+3).
    mta = fmaxf(mta, __shfl_xor_sync(0xffffffffu, mta, 1));
    mta = fmaxf(mta, __shfl_xor_sync(0xffffffffu, mta, 2));
    mtb = fmaxf(mtb, __shfl_xor_sync(0xffffffffu, mtb, 1));
    mtb = fmaxf(mtb, __shfl_xor_sync(0xffffffffu, mtb, 2));
    // m = -inf (first tile) gives corr 0; a row that is all -inf so far keeps 1.
    const float ca = (mta == -INFINITY) ? 1.0f : expf(ma - mta);
    const float cb = (mtb == -INFINITY) ? 1.0f : expf(mb - mtb);
    ma = mta, mb = mtb;
    lsa *= ca, lsb *= cb;
#pragma unroll
    for (int i = 0; i < DP / 8; ++i) o[i][0] *= ca, o[i][1] *= ca, o[i][2] *= cb, o[i][3] *= cb;
#pragma unroll
    for (int nt = 0; nt < KT / 8; ++nt) {
      s[nt][0] = (s[nt][0] == -INFINITY) ? 0.0f : expf(s[nt][0] - ma);
      s[nt][1] = (s[nt][1] == -INFINITY) ? 0.0f : expf(s[nt][1] - ma);
      s[nt][2] = (s[nt][2] == -INFINITY) ? 0.0f : expf(s[nt][2] - mb);
      s[nt][3] = (s[nt][3] == -INFINITY) ? 0.0f : expf(s[nt][3] - mb);
      lsa += s[nt][0] + s[nt][1];
      lsb += s[nt][2] + s[nt][3];
    }
    // O += P·V: the accumulator layout of two adjacent n8 tiles of S is the
    // a fragment of one k16 step of P.
#pragma unroll
    for (int kk = 0; kk < KT / 16; ++kk) {
      unsigned pa[4];
      pa[0] = of3c_packf(s[2 * kk][0], s[2 * kk][1], tag);
      pa[1] = of3c_packf(s[2 * kk][2], s[2 * kk][3], tag);
      pa[2] = of3c_packf(s[2 * kk + 1][0], s[2 * kk + 1][1], tag);
      pa[3] = of3c_packf(s[2 * kk + 1][2], s[2 * kk + 1][3], tag);
#pragma unroll
      for (int dt = 0; dt < DP / 8; ++dt) {
        const T* p = &vt[(dt * 8 + g) * VS + kk * 16 + 2 * t4];
        of3c_mma(o[dt], pa, *reinterpret_cast<const unsigned*>(p), *reinterpret_cast<const unsigned*>(p + 8), tag);
      }
    }
  }
  lsa += __shfl_xor_sync(0xffffffffu, lsa, 1);
  lsa += __shfl_xor_sync(0xffffffffu, lsa, 2);
  lsb += __shfl_xor_sync(0xffffffffu, lsb, 1);
  lsb += __shfl_xor_sync(0xffffffffu, lsb, 2);
  const float ia = 1.0f / lsa, ib = 1.0f / lsb;
  OutT* oa = out + (r * Q + qa) * static_cast<int64_t>(D);
  OutT* ob = out + (r * Q + qb) * static_cast<int64_t>(D);
#pragma unroll
  for (int dt = 0; dt < DP / 8; ++dt) {
    const int c = dt * 8 + 2 * t4;
    if (la && c < D) oa[c] = static_cast<OutT>(o[dt][0] * ia);
    if (la && c + 1 < D) oa[c + 1] = static_cast<OutT>(o[dt][1] * ia);
    if (lb && c < D) ob[c] = static_cast<OutT>(o[dt][2] * ib);
    if (lb && c + 1 < D) ob[c + 1] = static_cast<OutT>(o[dt][3] * ib);
  }
)";
}

// The mma kernel's block as gpu_kernels.cc launches it: kFlashMMAWarps
// warps of 16 queries.
constexpr int kFlashMMAWarps = 4;
constexpr int kFlashMMAQT = 16 * kFlashMMAWarps;
constexpr int kFlashMMAThreads = 32 * kFlashMMAWarps;

}  // namespace mlxs
