// Internal to internal/mlx: the CUDA source of the register-tiled f32 flash
// attention kernel (gpu_kernels.cc compiles it through MLX's
// fast::cuda_kernel for f32 q, k, v and output). Plain C++ with no MLX
// dependency, so that scripts/gpu/flash_f32_check can wrap the same source
// in a standalone nvcc test and time it against gpu_flash_source.h.
#pragma once

#include <string>

namespace mlxs {

// flash_attention_f32_source computes what flash_attention_source(nb, true)
// does, with the same inputs (q, k, v, b0..b{nb-1} broadcast to the full
// batch shape and read through their strides, a one element f32 `scale`),
// the same template constants (C, D, OutT) and nearly the same numerics
// (FFMA only, f32 throughout, each logit's dot product summed over c in
// order, its biases summed left to right, a row whose every logit is −inf
// gives NaN), but tiled for registers and with the softmax on base 2: q is
// staged times scale·log2 e, the bias sum is added times log2 e in one FMA,
// and the exponentials are ex2.approx (relative error about 2^-22, like
// expf's few ulp):
//
//   - a block of kFlashF32Threads = 128 threads (4 warps) takes QT = 64
//     queries and walks the keys in tiles of BK: 64 for head sizes C < 32,
//     32 from C = 32 on (on an H200, C = D = 32 triangle attention at
//     N = 2048 took 240 ms with 32-key tiles, 269 ms with 64; C = D = 24
//     was faster with 64; and from C = D = 48 a 64-key tile's shared memory
//     would pass the 48 KiB of static shared memory);
//   - lane (tq, tk) = (lane / 8, lane % 8) of warp w owns the QR = 4 query
//     rows w·16 + tq·4 + ii and the BK/8 keys tk + 8·jj of the tile: its
//     4 × BK/8 logits are computed in registers from float4 reads of q
//     (scaled once, staged once per block) and k (staged per tile; float4
//     global loads when the strides allow), the row maximum is reduced over
//     the 8 lanes of a row group with three shuffles, and the per-lane sum
//     of exp is reduced once at the end;
//   - the probabilities go through a per-warp slice of shared memory (only
//     __syncwarp between writing and reading), and P·V is accumulated in
//     registers: the same lane owns the same 4 rows and ceil(D/8) output
//     columns, read from V with float4/float2 loads;
//   - each bias is read straight into registers with its row offset hoisted
//     out of the key loop (one pointer per row, advanced per tile; a unit
//     key stride is a separate branch with immediate offsets), issued before
//     the dot products so the loads overlap them.
//
// Every per-thread array is indexed by unrolled constants only, so nothing
// lives in local memory (check with -Xptxas -v: 0 bytes stack frame). The
// grid is rows · ceil(Q/64) blocks of 128 threads.
// bk: the key tile (32 or 64) instead of the rule above (for comparisons).
// prefetch: load the next tile's k and v into registers while this tile
// computes, instead of just before staging each tile. Off by default: on an
// H200 it raised the registers per thread from 168 to 200 (C = D = 32) and
// took 26.98 against 21.00 ms on triangle attention at N = 1024
// (scripts/gpu/flash_f32_check time; flash_f32_check times both).
inline std::string flash_attention_f32_source(int nb, int bk = 0, bool prefetch = false) {
  std::string off_decl = "  int64_t oq = 0, ok = 0;\n";
  std::string off_acc = "      oq += ix * q_strides[d];\n      ok += ix * k_strides[d];\n";
  std::string bias_setup, bias_load, bias_step;
  for (int i = 0; i < nb; ++i) {
    const std::string n = std::to_string(i), b = "b" + n;
    off_decl += "  int64_t o" + n + " = 0;\n";
    off_acc += "      o" + n + " += ix * " + b + "_strides[d];\n";
    bias_setup += "  const int64_t s" + n + "k = " + b + "_strides[nd - 1];\n  const float* p" + n +
                  "[QR];\n#pragma unroll\n  for (int ii = 0; ii < QR; ++ii)\n    p" + n + "[ii] = " + b + " + o" + n +
                  " + static_cast<int64_t>(q0 + qb + ii < Q ? q0 + qb + ii : Q - 1) * " + b + "_strides[nd - 2] + tk * s" + n + "k;\n";
    // x += b[q, k0 + tk + 8 jj] for the lane's logits, in bias order (left to right, as the old kernel).
    bias_load += "    if (s" + n + "k == 1) {\n#pragma unroll\n      for (int ii = 0; ii < QR; ++ii)\n#pragma unroll\n"
                 "        for (int jj = 0; jj < KR; ++jj)\n          if (full || k0 + tk + 8 * jj < K) bsum[ii][jj] += p" + n +
                 "[ii][8 * jj];\n    } else {\n#pragma unroll\n      for (int ii = 0; ii < QR; ++ii)\n#pragma unroll\n"
                 "        for (int jj = 0; jj < KR; ++jj)\n          if (full || k0 + tk + 8 * jj < K) bsum[ii][jj] += p" + n +
                 "[ii][8 * jj * s" + n + "k];\n    }\n";
    bias_step += "#pragma unroll\n    for (int ii = 0; ii < QR; ++ii) p" + n + "[ii] += BK * s" + n + "k;\n";
  }
  return R"(
  constexpr int QT = 64;   // queries per block
  constexpr int NT = 128;  // threads per block
  constexpr int QR = 4;    // query rows per lane
  constexpr int CP = (C + 3) / 4 * 4;                        // q and k rows padded to whole float4s
  constexpr int CS = CP + ((CP / 4) % 2 == 0 ? 4 : 0);       // their shared row stride: an odd number of float4s
  constexpr int DT = (D + 7) / 8;                            // output columns per lane
  constexpr int VW = DT % 4 == 0 ? 4 : (DT % 2 == 0 ? 2 : 1);  // V read width
  constexpr int DP = 8 * DT;                                 // V rows padded
  constexpr int BK = )" + (bk ? std::to_string(bk) : "C < 32 && 4 * (QT * CS + 64 * CS + 64 * DP + QT * 68) <= 48 * 1024 ? 64 : 32") + R"(;  // keys per tile
  constexpr int KR = BK / 8;                                 // keys per lane
  constexpr int PS = BK + 4;                                 // probability row stride
  constexpr int KC4 = CP / 4, VC4 = DP / 4;                  // float4s per staged k and v row
  constexpr int KL = (BK * KC4 + NT - 1) / NT, VL = (BK * VC4 + NT - 1) / NT;  // float4s each thread loads per tile
  constexpr float LOG2E = 1.4426950408889634f;
  auto ex2 = [](float x) {  // 2^x; -inf gives +0
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
  };
  const int nd = v_ndim;
  const int K = v_shape[nd - 2];
  const int Q = q_shape[nd - 2];
  int64_t rows = 1;
  for (int d = 0; d < nd - 2; ++d) rows *= v_shape[d];
  const int qtiles = (Q + QT - 1) / QT;
  const int64_t blk = blockIdx.x;
  const int64_t r = blk / qtiles;
  if (r >= rows) return;  // the whole block: no barrier is skipped by part of it
  const int q0 = static_cast<int>(blk % qtiles) * QT;
  const int tid = threadIdx.x, lane = tid & 31;
  const int tq = lane >> 3, tk = lane & 7;
  const int qb = (tid >> 5) * 16 + tq * QR;  // the lane's first row in the tile
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
  const int64_t sqr = q_strides[nd - 2], sqc = q_strides[nd - 1];
  const int64_t skr = k_strides[nd - 2], skc = k_strides[nd - 1];
  const int64_t svr = v_strides[nd - 2], svc = v_strides[nd - 1];
  const bool kvec = C % 4 == 0 && sizeof(k[0]) == 4 && skc == 1 && skr % 4 == 0 && (reinterpret_cast<unsigned long long>(k + ok) & 15) == 0;
  const bool vvec = D % 4 == 0 && sizeof(v[0]) == 4 && svc == 1 && svr % 4 == 0 && (reinterpret_cast<unsigned long long>(v + ov) & 15) == 0;
  __shared__ __align__(16) float qs[QT * CS];
  __shared__ __align__(16) float ks[BK * CS];
  __shared__ __align__(16) float vs[BK * DP];
  __shared__ __align__(16) float ps[QT * PS];
  {
    const float sc = scale[0] * LOG2E;  // logits on base 2
    for (int e = tid; e < QT * CP; e += NT) {
      const int i = e / CP, c = e % CP;
      qs[i * CS + c] = (q0 + i < Q && c < C) ? static_cast<float>(q[oq + (q0 + i) * sqr + c * sqc]) * sc : 0.0f;
    }
  }
)" + bias_setup + R"(
  float acc[QR][DT];
  float m[QR], l[QR];
#pragma unroll
  for (int ii = 0; ii < QR; ++ii) {
    m[ii] = -INFINITY;
    l[ii] = 0.0f;
#pragma unroll
    for (int cc = 0; cc < DT; ++cc) acc[ii][cc] = 0.0f;
  }
  // This thread's float4s of a key tile (chunk e = tid + i·NT is row
  // e / KC4 (VC4), columns (e % KC4)·4 ..+3), zero past K and past C (D).
  float4 kr[KL], vr[VL];
  auto fetch = [&](int t0) {
#pragma unroll
    for (int i = 0; i < KL; ++i) {
      const int e = tid + i * NT, j = e / KC4, c = (e % KC4) * 4;
      float4 x = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      if (e < BK * KC4 && t0 + j < K) {
        const int64_t row = ok + static_cast<int64_t>(t0 + j) * skr;
        if (kvec) {
          x = *reinterpret_cast<const float4*>(k + row + c);
        } else {
          auto h = [&](int cc) { return cc < C ? static_cast<float>(k[row + cc * skc]) : 0.0f; };
          x = make_float4(h(c), h(c + 1), h(c + 2), h(c + 3));
        }
      }
      kr[i] = x;
    }
#pragma unroll
    for (int i = 0; i < VL; ++i) {
      const int e = tid + i * NT, j = e / VC4, c = (e % VC4) * 4;
      float4 x = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      if (e < BK * VC4 && t0 + j < K) {
        const int64_t row = ov + static_cast<int64_t>(t0 + j) * svr;
        if (vvec) {
          if (c < D) x = *reinterpret_cast<const float4*>(v + row + c);
        } else {
          auto h = [&](int cc) { return cc < D ? static_cast<float>(v[row + cc * svc]) : 0.0f; };
          x = make_float4(h(c), h(c + 1), h(c + 2), h(c + 3));
        }
      }
      vr[i] = x;
    }
  };
)" + (prefetch ? "  fetch(0);\n" : "") + R"(
  for (int k0 = 0; k0 < K; k0 += BK) {
    const bool full = k0 + BK <= K;
    float bsum[QR][KR];  // this tile's biases, loaded before the barriers
#pragma unroll
    for (int ii = 0; ii < QR; ++ii)
#pragma unroll
      for (int jj = 0; jj < KR; ++jj) bsum[ii][jj] = 0.0f;
)" + bias_load + bias_step + (prefetch ? "" : "    fetch(k0);\n") + R"(
    __syncthreads();  // the previous tile's k and v are consumed (and q is staged)
#pragma unroll
    for (int i = 0; i < KL; ++i) {
      const int e = tid + i * NT;
      if (e < BK * KC4) *reinterpret_cast<float4*>(&ks[(e / KC4) * CS + (e % KC4) * 4]) = kr[i];
    }
#pragma unroll
    for (int i = 0; i < VL; ++i) {
      const int e = tid + i * NT;
      if (e < BK * VC4) *reinterpret_cast<float4*>(&vs[(e / VC4) * DP + (e % VC4) * 4]) = vr[i];
    }
    __syncthreads();
)" + (prefetch ? "    if (k0 + BK < K) fetch(k0 + BK);  // in flight while this tile computes\n" : "") + R"(    float s[QR][KR];
#pragma unroll
    for (int ii = 0; ii < QR; ++ii)
#pragma unroll
      for (int jj = 0; jj < KR; ++jj) s[ii][jj] = 0.0f;
#pragma unroll
    for (int c = 0; c < CP; c += 4) {
      float4 qf[QR], kf[KR];
#pragma unroll
      for (int ii = 0; ii < QR; ++ii) qf[ii] = *reinterpret_cast<const float4*>(&qs[(qb + ii) * CS + c]);
#pragma unroll
      for (int jj = 0; jj < KR; ++jj) kf[jj] = *reinterpret_cast<const float4*>(&ks[(tk + 8 * jj) * CS + c]);
#pragma unroll
      for (int ii = 0; ii < QR; ++ii)
#pragma unroll
        for (int jj = 0; jj < KR; ++jj) {
          float x = s[ii][jj];
          x = fmaf(qf[ii].x, kf[jj].x, x);
          x = fmaf(qf[ii].y, kf[jj].y, x);
          x = fmaf(qf[ii].z, kf[jj].z, x);
          x = fmaf(qf[ii].w, kf[jj].w, x);
          s[ii][jj] = x;
        }
    }
#pragma unroll
    for (int ii = 0; ii < QR; ++ii) {
      float mt = -INFINITY;
#pragma unroll
      for (int jj = 0; jj < KR; ++jj) {
        float x = fmaf(bsum[ii][jj], LOG2E, s[ii][jj]);
        if (!full && k0 + tk + 8 * jj >= K) x = -INFINITY;
        s[ii][jj] = x;
        mt = fmaxf(mt, x);
      }
      mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 1));
      mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 2));
      mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 4));
      mt = fmaxf(m[ii], mt);
      // m = -inf (first tile) gives corr 0; a row that is all -inf so far
      // keeps 1 and takes 0 as its offset (its -inf logits give 0).
      const float corr = (mt == -INFINITY) ? 1.0f : ex2(m[ii] - mt);
      const float off = (mt == -INFINITY) ? 0.0f : mt;
      m[ii] = mt;
      float li = l[ii] * corr;
#pragma unroll
      for (int cc = 0; cc < DT; ++cc) acc[ii][cc] *= corr;
#pragma unroll
      for (int jj = 0; jj < KR; ++jj) {
        const float p = ex2(s[ii][jj] - off);
        li += p;
        ps[(qb + ii) * PS + tk + 8 * jj] = p;
      }
      l[ii] = li;
    }
    __syncwarp();  // a warp reads only its own 16 rows of ps
#pragma unroll
    for (int j = 0; j < BK; j += 4) {
      float pf[QR][4];
#pragma unroll
      for (int ii = 0; ii < QR; ++ii) {
        const float4 t = *reinterpret_cast<const float4*>(&ps[(qb + ii) * PS + j]);
        pf[ii][0] = t.x, pf[ii][1] = t.y, pf[ii][2] = t.z, pf[ii][3] = t.w;
      }
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float vv[DT];
        const float* vr = &vs[(j + e) * DP + tk * VW];
#pragma unroll
        for (int g = 0; g < DT / VW; ++g) {
          if (VW == 4) {
            const float4 t = *reinterpret_cast<const float4*>(vr + g * 32);
            vv[g * VW] = t.x, vv[g * VW + (VW > 1)] = t.y, vv[g * VW + 2 * (VW > 2)] = t.z, vv[g * VW + 3 * (VW > 3)] = t.w;
          } else if (VW == 2) {
            const float2 t = *reinterpret_cast<const float2*>(vr + g * 16);
            vv[g * VW] = t.x, vv[g * VW + (VW > 1)] = t.y;
          } else {
            vv[g] = vr[g * 8];
          }
        }
#pragma unroll
        for (int ii = 0; ii < QR; ++ii)
#pragma unroll
          for (int cc = 0; cc < DT; ++cc) acc[ii][cc] = fmaf(pf[ii][e], vv[cc], acc[ii][cc]);
      }
    }
    __syncwarp();  // ps is rewritten by the next tile
  }
#pragma unroll
  for (int ii = 0; ii < QR; ++ii) {
    float li = l[ii];
    li += __shfl_xor_sync(0xffffffffu, li, 1);
    li += __shfl_xor_sync(0xffffffffu, li, 2);
    li += __shfl_xor_sync(0xffffffffu, li, 4);
    const int qi = q0 + qb + ii;
    if (qi < Q) {
      const float inv = 1.0f / li;
      OutT* o = out + (r * Q + qi) * static_cast<int64_t>(D);
#pragma unroll
      for (int cc = 0; cc < DT; ++cc) {
        const int col = (cc / VW) * 8 * VW + tk * VW + cc % VW;
        if (col < D) o[col] = static_cast<OutT>(acc[ii][cc] * inv);
      }
    }
  }
)";
}

// kFlashF32Threads is the f32 kernel's block size (it takes kFlashF32QT
// queries per block).
constexpr int kFlashF32Threads = 128;
constexpr int kFlashF32QT = 64;

}  // namespace mlxs
