// Internal to internal/mlx: the CUDA source of the tensor-core (mma.sync)
// flash attention kernel for bf16/fp16 q, k, v (gpu_kernels.cc compiles it
// through MLX's fast::cuda_kernel). Plain C++ with no MLX dependency, like
// gpu_flash_source.h, so that scripts/gpu/flash_check wraps the same source.
#pragma once

#include <string>

namespace mlxs {

// flash_mma_header is the kernel's header (cuda_kernel's `header`
// argument, placed before the kernel): the mma.sync.m16n8k16 wrapper
// (bf16 or fp16 inputs chosen by a tag pointer, f32 accumulators), the
// packing of two halves into one 32-bit register, ldmatrix (plain and
// transposed) and ex2.approx. MLX's default header already includes
// cuda_bf16.h and cuda_fp16.h.
inline std::string flash_mma_header() {
  return R"(
__device__ __forceinline__ unsigned of3c_bits(__nv_bfloat16 x) { return __bfloat16_as_ushort(x); }
__device__ __forceinline__ unsigned of3c_bits(__half x) { return __half_as_ushort(x); }
template <typename T>
__device__ __forceinline__ unsigned of3c_pack(T lo, T hi) { return of3c_bits(lo) | (of3c_bits(hi) << 16); }
// Two f32 rounded to the tag's type in one cvt, lo in the low half.
__device__ __forceinline__ unsigned of3c_packf(float lo, float hi, const __nv_bfloat16*) {
  __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<unsigned*>(&h);
}
__device__ __forceinline__ unsigned of3c_packf(float lo, float hi, const __half*) {
  __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<unsigned*>(&h);
}
// 2^x on the special function unit (max relative error about 2^-22; -inf
// gives +0).
__device__ __forceinline__ float of3c_ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
__device__ __forceinline__ unsigned of3c_smem(const void* p) {
  unsigned long long a;
  asm("cvta.to.shared.u64 %0, %1;" : "=l"(a) : "l"(p));
  return static_cast<unsigned>(a);
}
// ldmatrix: lanes 8m..8m+7 give the row addresses of 8x8 matrix m (16
// bytes each); thread T receives row T/4, columns 2(T%4) and 2(T%4)+1 of
// each matrix (.trans: row 2(T%4) and 2(T%4)+1 of column T/4).
__device__ __forceinline__ void of3c_ldsm4(unsigned* r, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(of3c_smem(p)) : "memory");
}
__device__ __forceinline__ void of3c_ldsm2(unsigned* r, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(of3c_smem(p)) : "memory");
}
__device__ __forceinline__ void of3c_ldsm4t(unsigned* r, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(of3c_smem(p)) : "memory");
}
__device__ __forceinline__ void of3c_ldsm2t(unsigned* r, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(of3c_smem(p)) : "memory");
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
// FlashAttention-2 arrangement:
//
//   - `warps` warps per block, each owning 16 queries (their q fragments in
//     registers, the head size padded with zeros to a multiple of 16);
//   - keys in tiles of 64, k and v both staged row-major in shared memory
//     (rows padded to an odd number of 16-byte units, so ldmatrix is free of
//     bank conflicts) and read as mma fragments by ldmatrix (v transposed by
//     ldmatrix.trans); the next tile's k and v are loaded from global
//     memory into registers while this tile computes (16-byte loads when
//     the rows are contiguous and aligned);
//   - S = q·kᵀ by mma.sync m16n8k16 with f32 accumulation; the biases of
//     the tile are summed in f32 at the accumulator's positions, read from
//     global memory through their strides (8-byte loads when a bias is
//     contiguous along the keys; never materialised), issued before the
//     tile's barriers so that their latency overlaps the staging; then
//     x = scale·s + Σb in one FMA;
//   - an online softmax in f32 on base 2 (ex2.approx of x·log2 e − m·log2 e,
//     one FMA and one special-function op per logit; the running max per row
//     over its 4 threads, the sum kept per thread and reduced at the end);
//     keys past K are −inf only in the last, partial tile;
//   - P rounded to OutT (one cvt per pair) and multiplied by v on tensor
//     cores (v's D padded to a multiple of 8). Result row-contiguous
//     [batch.., Q, D] in OutT.
//
// A row whose every logit is −inf gives NaN, as softmax does.
// warps: the block's warps (kFlashMMAWarps in gpu_kernels.cc; flash_check
// times others). late_bias: read the tile's biases after q·kᵀ instead of
// before the barriers (fewer live registers, the loads' latency exposed;
// flash_check times both).
inline std::string flash_mma_source(int nb, int warps = 4, bool late_bias = false) {
  std::string off_decl, off_acc, row_decl, bias_load;
  for (int i = 0; i < nb; ++i) {
    const std::string n = std::to_string(i), b = "b" + n;
    const std::string op = i == 0 ? " = " : " += ";
    off_decl += "  int64_t o" + n + " = 0;\n";
    off_acc += "      o" + n + " += ix * " + b + "_strides[d];\n";
    // The thread's two rows of the bias (rows past Q read row Q-1, never used), at column 2·t4.
    row_decl += "  const int64_t sk" + n + " = " + b + "_strides[nd - 1];\n  const float* pa" + n + " = " + b + " + o" + n +
                " + static_cast<int64_t>(la ? qa : Q - 1) * " + b + "_strides[nd - 2] + 2 * t4 * sk" + n + ";\n  const float* pb" +
                n + " = " + b + " + o" + n + " + static_cast<int64_t>(lb ? qb : Q - 1) * " + b + "_strides[nd - 2] + 2 * t4 * sk" + n +
                ";\n  const bool bv" + n + " = sk" + n + " == 1 && ((reinterpret_cast<unsigned long long>(pa" + n +
                ") | reinterpret_cast<unsigned long long>(pb" + n + ")) & 7) == 0;\n";
    bias_load += "    {\n      const float* ra = pa" + n + " + k0 * sk" + n + ";\n      const float* rb = pb" + n + " + k0 * sk" + n +
                 ";\n      if (full && bv" + n + ") {\n#pragma unroll\n        for (int nt = 0; nt < KT / 8; ++nt) {\n"
                 "          const float2 xa = *reinterpret_cast<const float2*>(ra + nt * 8);\n"
                 "          const float2 xb = *reinterpret_cast<const float2*>(rb + nt * 8);\n"
                 "          bs[nt][0]" + op + "xa.x; bs[nt][1]" + op + "xa.y; bs[nt][2]" + op + "xb.x; bs[nt][3]" + op + "xb.y;\n"
                 "        }\n      } else {\n#pragma unroll\n        for (int nt = 0; nt < KT / 8; ++nt) {\n"
                 "          const int c = nt * 8, col = k0 + c + 2 * t4;\n"
                 "          bs[nt][0]" + op + "(col < K) ? ra[c * sk" + n + "] : 0.0f;\n"
                 "          bs[nt][2]" + op + "(col < K) ? rb[c * sk" + n + "] : 0.0f;\n"
                 "          bs[nt][1]" + op + "(col + 1 < K) ? ra[(c + 1) * sk" + n + "] : 0.0f;\n"
                 "          bs[nt][3]" + op + "(col + 1 < K) ? rb[(c + 1) * sk" + n + "] : 0.0f;\n"
                 "        }\n      }\n    }\n";
  }
  const std::string logit = nb > 0 ? "fmaf(s[nt][X], sc, bs[nt][X])" : "s[nt][X] * sc";
  auto lg = [&](int x) {
    std::string l = logit;
    for (size_t p; (p = l.find('X')) != std::string::npos;) l.replace(p, 1, std::to_string(x));
    return l;
  };
  return "\n  constexpr int NW = " + std::to_string(warps) + R"(;  // warps per block, 16 queries each
  constexpr int NT = 32 * NW;    // threads per block
  constexpr int QB = 16 * NW;    // queries per block
  constexpr int KT = 64;         // keys per tile
  constexpr int CP = (C + 15) / 16 * 16;  // q·kᵀ's k-dim, padded
  constexpr int DP = (D + 7) / 8 * 8;     // v's head size, padded
  // Shared row strides (halves): an odd number of 16-byte units, so the 8
  // rows of one ldmatrix phase fall in 8 different bank groups.
  constexpr int KS = CP + 8;
  constexpr int VS = DP + ((DP / 8) % 2 == 0 ? 8 : 16);
  constexpr int KC = CP / 8, VC = DP / 8;  // 16-byte chunks per staged row
  constexpr int KL = (KT * KC + NT - 1) / NT, VL = (KT * VC + NT - 1) / NT;  // chunks per thread
  constexpr float LOG2E = 1.4426950408889634f;
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
  // 16-byte loads when rows are contiguous runs of 8 aligned halves.
  const bool kvec = C % 8 == 0 && skc == 1 && skr % 8 == 0 && ok % 8 == 0 &&
                    (reinterpret_cast<unsigned long long>(k) & 15) == 0;
  const bool vvec = D % 8 == 0 && svc == 1 && svr % 8 == 0 && ov % 8 == 0 &&
                    (reinterpret_cast<unsigned long long>(v) & 15) == 0;
  __shared__ __align__(16) T ks[KT * KS];
  __shared__ __align__(16) T vs[KT * VS];
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
  // The 16-byte chunks of a key tile this thread loads (chunk e = tid + i·NT
  // is row e / KC (VC), columns (e % KC)·8 ..+7), zero past K and past C (D).
  uint4 kr[KL], vr[VL];
  auto fetch = [&](int t0) {
#pragma unroll
    for (int i = 0; i < KL; ++i) {
      const int e = tid + i * NT, j = e / KC, c = (e % KC) * 8;
      uint4 x = make_uint4(0, 0, 0, 0);
      if (e < KT * KC && t0 + j < K) {
        const T* p = k + ok + static_cast<int64_t>(t0 + j) * skr;
        if (kvec) {
          if (c < C) x = *reinterpret_cast<const uint4*>(p + c);
        } else {
          auto h = [&](int cc) { return cc < C ? p[cc * skc] : zero; };
          x = make_uint4(of3c_pack(h(c), h(c + 1)), of3c_pack(h(c + 2), h(c + 3)), of3c_pack(h(c + 4), h(c + 5)),
                         of3c_pack(h(c + 6), h(c + 7)));
        }
      }
      kr[i] = x;
    }
#pragma unroll
    for (int i = 0; i < VL; ++i) {
      const int e = tid + i * NT, j = e / VC, c = (e % VC) * 8;
      uint4 x = make_uint4(0, 0, 0, 0);
      if (e < KT * VC && t0 + j < K) {
        const T* p = v + ov + static_cast<int64_t>(t0 + j) * svr;
        if (vvec) {
          x = *reinterpret_cast<const uint4*>(p + c);
        } else {
          auto h = [&](int cc) { return cc < D ? p[cc * svc] : zero; };
          x = make_uint4(of3c_pack(h(c), h(c + 1)), of3c_pack(h(c + 2), h(c + 3)), of3c_pack(h(c + 4), h(c + 5)),
                         of3c_pack(h(c + 6), h(c + 7)));
        }
      }
      vr[i] = x;
    }
  };
  const float sc = scale[0];
  float o[DP / 8][4];
#pragma unroll
  for (int i = 0; i < DP / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  float ma = -INFINITY, mb = -INFINITY, lsa = 0.0f, lsb = 0.0f;
  fetch(0);
  for (int k0 = 0; k0 < K; k0 += KT) {
    const bool full = k0 + KT <= K;
)" + (nb > 0 ? "    float bs[KT / 8][4];\n" : "") + (late_bias ? "" : bias_load) + R"(
    __syncthreads();  // the previous tile is consumed
#pragma unroll
    for (int i = 0; i < KL; ++i) {
      const int e = tid + i * NT;
      if (e < KT * KC) *reinterpret_cast<uint4*>(&ks[(e / KC) * KS + (e % KC) * 8]) = kr[i];
    }
#pragma unroll
    for (int i = 0; i < VL; ++i) {
      const int e = tid + i * NT;
      if (e < KT * VC) *reinterpret_cast<uint4*>(&vs[(e / VC) * VS + (e % VC) * 8]) = vr[i];
    }
    __syncthreads();
    if (k0 + KT < K) fetch(k0 + KT);  // in flight while this tile computes
    float s[KT / 8][4];
#pragma unroll
    for (int nt = 0; nt < KT / 8; ++nt) {
      s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
      const T* kp = &ks[(nt * 8 + (lane & 7)) * KS];
#pragma unroll
      for (int kk = 0; kk < CP / 16; kk += 2) {
        if (kk + 1 < CP / 16) {  // matrices: c 0-7, 8-15 of step kk, then of step kk+1
          unsigned b[4];
          of3c_ldsm4(b, kp + kk * 16 + (lane >> 3) * 8);
          of3c_mma(s[nt], qf[kk], b[0], b[1], tag);
          of3c_mma(s[nt], qf[kk + 1], b[2], b[3], tag);
        } else {
          unsigned b[2];
          of3c_ldsm2(b, kp + kk * 16 + ((lane >> 3) & 1) * 8);
          of3c_mma(s[nt], qf[kk], b[0], b[1], tag);
        }
      }
    }
)" + (late_bias ? bias_load : "") + R"(
    float mta = ma, mtb = mb;
#pragma unroll
    for (int nt = 0; nt < KT / 8; ++nt) {
      float x0 = )" + lg(0) + ", x1 = " + lg(1) + ", x2 = " + lg(2) + ", x3 = " + lg(3) + R"(;
      if (!full) {
        const int col = k0 + nt * 8 + 2 * t4;
        if (col >= K) x0 = x2 = -INFINITY;
        if (col + 1 >= K) x1 = x3 = -INFINITY;
      }
      s[nt][0] = x0, s[nt][1] = x1, s[nt][2] = x2, s[nt][3] = x3;
      mta = fmaxf(mta, fmaxf(x0, x1));
      mtb = fmaxf(mtb, fmaxf(x2, x3));
    }
    // The row's max over its 4 threads (lanes 4g..4g+3).
    mta = fmaxf(mta, __shfl_xor_sync(0xffffffffu, mta, 1));
    mta = fmaxf(mta, __shfl_xor_sync(0xffffffffu, mta, 2));
    mtb = fmaxf(mtb, __shfl_xor_sync(0xffffffffu, mtb, 1));
    mtb = fmaxf(mtb, __shfl_xor_sync(0xffffffffu, mtb, 2));
    // m = -inf (first tile) gives corr 0; a row that is all -inf so far keeps
    // 1 and takes 0 as its exponent offset (its -inf logits give 0).
    const float ca = (mta == -INFINITY) ? 1.0f : of3c_ex2((ma - mta) * LOG2E);
    const float cb = (mtb == -INFINITY) ? 1.0f : of3c_ex2((mb - mtb) * LOG2E);
    const float na = (mta == -INFINITY) ? 0.0f : -mta * LOG2E;
    const float nb2 = (mtb == -INFINITY) ? 0.0f : -mtb * LOG2E;
    ma = mta, mb = mtb;
    lsa *= ca, lsb *= cb;
#pragma unroll
    for (int i = 0; i < DP / 8; ++i) o[i][0] *= ca, o[i][1] *= ca, o[i][2] *= cb, o[i][3] *= cb;
#pragma unroll
    for (int nt = 0; nt < KT / 8; ++nt) {
      s[nt][0] = of3c_ex2(fmaf(s[nt][0], LOG2E, na));
      s[nt][1] = of3c_ex2(fmaf(s[nt][1], LOG2E, na));
      s[nt][2] = of3c_ex2(fmaf(s[nt][2], LOG2E, nb2));
      s[nt][3] = of3c_ex2(fmaf(s[nt][3], LOG2E, nb2));
      lsa += s[nt][0] + s[nt][1];
      lsb += s[nt][2] + s[nt][3];
    }
    // O += P·V: the accumulator layout of two adjacent n8 tiles of S is the
    // a fragment of one k16 step of P; v's fragments come transposed from
    // its row-major tile (matrices: keys 0-7, 8-15 of d-tile dt, then of dt+1).
#pragma unroll
    for (int kk = 0; kk < KT / 16; ++kk) {
      unsigned pa[4];
      pa[0] = of3c_packf(s[2 * kk][0], s[2 * kk][1], tag);
      pa[1] = of3c_packf(s[2 * kk][2], s[2 * kk][3], tag);
      pa[2] = of3c_packf(s[2 * kk + 1][0], s[2 * kk + 1][1], tag);
      pa[3] = of3c_packf(s[2 * kk + 1][2], s[2 * kk + 1][3], tag);
      const T* vp = &vs[(kk * 16 + (lane & 15)) * VS];
#pragma unroll
      for (int dt = 0; dt < DP / 8; dt += 2) {
        if (dt + 1 < DP / 8) {
          unsigned b[4];
          of3c_ldsm4t(b, vp + (dt + (lane >> 4)) * 8);
          of3c_mma(o[dt], pa, b[0], b[1], tag);
          of3c_mma(o[dt + 1], pa, b[2], b[3], tag);
        } else {
          unsigned b[2];
          of3c_ldsm2t(b, vp + dt * 8);
          of3c_mma(o[dt], pa, b[0], b[1], tag);
        }
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
    if (D % 2 == 0) {  // c is even: c < D means c + 1 < D, and the pair is 4-byte aligned
      if (la && c < D) *reinterpret_cast<unsigned*>(oa + c) = of3c_packf(o[dt][0] * ia, o[dt][1] * ia, tag);
      if (lb && c < D) *reinterpret_cast<unsigned*>(ob + c) = of3c_packf(o[dt][2] * ib, o[dt][3] * ib, tag);
    } else {
      if (la && c < D) oa[c] = static_cast<OutT>(o[dt][0] * ia);
      if (la && c + 1 < D) oa[c + 1] = static_cast<OutT>(o[dt][1] * ia);
      if (lb && c < D) ob[c] = static_cast<OutT>(o[dt][2] * ib);
      if (lb && c + 1 < D) ob[c + 1] = static_cast<OutT>(o[dt][3] * ib);
    }
  }
)";
}

// The mma kernel's block as gpu_kernels.cc launches it: kFlashMMAWarps
// warps of 16 queries.
constexpr int kFlashMMAWarps = 4;
constexpr int kFlashMMAQT = 16 * kFlashMMAWarps;
constexpr int kFlashMMAThreads = 32 * kFlashMMAWarps;

}  // namespace mlxs
