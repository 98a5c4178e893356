//go:build cgo && !nomlx

// Custom GPU kernels (MLX fast::cuda_kernel, compiled by NVRTC at first use
// and cached by MLX). See gpu_kernels.h.

#include "gpu_kernels.h"
#include "gpu_flash_f32_source.h"
#include "gpu_flash_mma_source.h"
#include "gpu_flash_source.h"
#include "gpu_layer_norm_source.h"

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstdint>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>

namespace mlxs {

namespace {

namespace mx = mlx::core;

// row_prologue is the part the kernels below share: one warp per row of
// the operand called `shape` (the logits L, or b0 when there are none), the
// row's offset into each operand computed once from the strides (`ol` and
// `sl` for L when with_l), and into *sum_terms the statement adding the nb
// biases at column k to x, indented by indent spaces.
std::string row_prologue(int nb, const std::string& shape, bool with_l, int indent, std::string* sum_terms) {
  std::string off_decl, off_acc, last_stride;
  sum_terms->clear();
  for (int i = 0; i < nb; ++i) {
    auto b = "b" + std::to_string(i);
    auto n = std::to_string(i);
    off_decl += "  int64_t o" + n + " = 0;\n";
    off_acc += "      o" + n + " += ix * " + b + "_strides[d];\n";
    last_stride += "  const int64_t s" + n + " = " + b + "_strides[nd - 1];\n";
    *sum_terms += std::string(indent, ' ') + "x += " + b + "[o" + n + " + k * s" + n + "];\n";
  }
  return R"(
  const int nd = )" + shape + R"(_ndim;
  const int K = )" + shape + R"(_shape[nd - 1];
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  int64_t rows = 1;
  for (int d = 0; d < nd - 1; ++d) rows *= )" + shape + R"(_shape[d];
  if (warp >= rows) return;
)" + (with_l ? "  int64_t ol = 0;\n" : "") + off_decl + R"(
  {
    int64_t r = warp;
    for (int d = nd - 2; d >= 0; --d) {
      const int64_t ix = r % )" + shape + R"(_shape[d];
      r /= )" + shape + R"(_shape[d];
)" + (with_l ? "      ol += ix * L_strides[d];\n" : "") + off_acc + R"(
    }
  }
)" + (with_l ? "  const int64_t sl = L_strides[nd - 1];\n" : "") + last_stride;
}

// One warp per row of the logits. Pass 1 keeps an online (max, sum of
// exp) pair per lane over the lane's columns and merges the 32 pairs with
// shuffles; pass 2 recomputes each logit (the row is in L1/L2 by then) and
// writes exp(x - max) / sum. Each logit is L + b_0 + b_1 + ... in f32, added
// left to right as the unfused lowering does. Operands are read through
// their strides, so broadcast biases (stride 0) cost no copy. A row whose
// every logit is -inf (impossible after the -1e9 clamp the lowering applies)
// would give NaN, as softmax does.
std::string softmax_bias_source(int nb) {
  std::string sum_terms;
  const std::string prologue = row_prologue(nb, "L", true, 4, &sum_terms);  // fills sum_terms
  return prologue + R"(
  float m = -INFINITY, sum = 0.0f;
  for (int k = lane; k < K; k += 32) {
    float x = L[ol + k * sl];
)" + sum_terms + R"(
    if (x > m) {
      sum = (m == -INFINITY ? 0.0f : sum * expf(m - x)) + 1.0f;
      m = x;
    } else {
      sum += expf(x - m);
    }
  }
  for (int w = 16; w > 0; w >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, w);
    const float s2 = __shfl_xor_sync(0xffffffffu, sum, w);
    const float mn = fmaxf(m, m2);
    const float a = (m == -INFINITY) ? 0.0f : sum * expf(m - mn);
    const float b = (m2 == -INFINITY) ? 0.0f : s2 * expf(m2 - mn);
    sum = a + b;
    m = mn;
  }
  const float inv = 1.0f / sum;
  float* o = out + warp * static_cast<int64_t>(K);
  for (int k = lane; k < K; k += 32) {
    float x = L[ol + k * sl];
)" + sum_terms + R"(
    o[k] = expf(x - m) * inv;
  }
)";
}

// The same for rows of at most 32·VPT logits (VPT a template constant):
// each lane keeps its VPT logits in registers, so the logits and biases are
// read once, exp is taken once per element, and max and sum are two warp
// reductions.
std::string softmax_bias_regs_source(int nb) {
  std::string sum_terms;
  const std::string prologue = row_prologue(nb, "L", true, 6, &sum_terms);  // fills sum_terms
  return prologue + R"(
  float v[VPT];
  float m = -INFINITY;
#pragma unroll
  for (int j = 0; j < VPT; ++j) {
    const int k = lane + 32 * j;
    float x = -INFINITY;
    if (k < K) {
      x = L[ol + k * sl];
)" + sum_terms + R"(
    }
    v[j] = x;
    m = fmaxf(m, x);
  }
  for (int w = 16; w > 0; w >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, w));
  float sum = 0.0f;
#pragma unroll
  for (int j = 0; j < VPT; ++j) {
    const float e = (lane + 32 * j < K) ? expf(v[j] - m) : 0.0f;
    v[j] = e;
    sum += e;
  }
  for (int w = 16; w > 0; w >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, w);
  const float inv = 1.0f / sum;
  float* o = out + warp * static_cast<int64_t>(K);
#pragma unroll
  for (int j = 0; j < VPT; ++j) {
    const int k = lane + 32 * j;
    if (k < K) o[k] = v[j] * inv;
  }
)";
}

// vpt 0: the two-pass kernel for any row length.
const mx::fast::CustomKernelFunction& softmax_bias_kernel(int nb, int vpt) {
  static std::mutex mu;
  static std::map<std::pair<int, int>, mx::fast::CustomKernelFunction> kernels;
  std::lock_guard<std::mutex> l(mu);
  auto key = std::make_pair(nb, vpt);
  auto it = kernels.find(key);
  if (it != kernels.end()) return it->second;
  std::vector<std::string> names{"L"};
  for (int i = 0; i < nb; ++i) names.push_back("b" + std::to_string(i));
  auto name = std::string(vpt ? "of3c_softmax_bias_regs_" : "of3c_softmax_bias_") + std::to_string(nb);
  auto fn = mx::fast::cuda_kernel(name, names, {"out"}, vpt ? softmax_bias_regs_source(nb) : softmax_bias_source(nb),
                                  "", /*ensure_row_contiguous=*/false);
  return kernels.emplace(key, std::move(fn)).first->second;
}

// vptFor rounds ceil(K/32) up to a few sizes (each is its own NVRTC
// compile); 0 beyond 32 per lane, where the two-pass kernel takes over.
int vptFor(int64_t K) {
  const int64_t need = (K + 31) / 32;
  for (int v : {1, 2, 4, 8, 12, 16, 24, 32})
    if (need <= v) return v;
  return 0;
}

// out[row, k] = cast(b_0 + b_1 + ...) over the full logits shape, the sum
// first clamped at -65504 when CLAMP16 (an fp16 result must stay finite):
// the additive mask a fused attention kernel takes, written once. One warp
// per row: the row's operand offsets are computed once, the columns are
// strided over the lanes (MLX's own broadcast kernel recomputes a 4-D index
// per element, several times slower on these shapes).
std::string bias_sum_source(int nb) {
  std::string sum_terms;
  const std::string prologue = row_prologue(nb, "b0", false, 4, &sum_terms);  // fills sum_terms
  return prologue + R"(
  OutT* o = out + warp * static_cast<int64_t>(K);
  for (int k = lane; k < K; k += 32) {
    float x = 0.0f;
)" + sum_terms + R"(
    o[k] = static_cast<OutT>(CLAMP16 ? fmaxf(x, -65504.0f) : x);
  }
)";
}

const mx::fast::CustomKernelFunction& bias_sum_kernel(int nb) {
  static std::mutex mu;
  static std::map<int, mx::fast::CustomKernelFunction> kernels;
  std::lock_guard<std::mutex> l(mu);
  auto it = kernels.find(nb);
  if (it != kernels.end()) return it->second;
  std::vector<std::string> names;
  for (int i = 0; i < nb; ++i) names.push_back("b" + std::to_string(i));
  auto fn = mx::fast::cuda_kernel("of3c_bias_sum_" + std::to_string(nb), names, {"out"}, bias_sum_source(nb), "",
                                  /*ensure_row_contiguous=*/false);
  return kernels.emplace(nb, std::move(fn)).first->second;
}

// f32: the register-tiled kernel of gpu_flash_f32_source.h (q, k, v and
// the result all f32; prefetch: its next-tile loads during this tile);
// else the one-thread-per-query kernel.
const mx::fast::CustomKernelFunction& flash_kernel(int nb, bool qk, bool f32, bool prefetch) {
  static std::mutex mu;
  static std::map<std::tuple<int, bool, bool, bool>, mx::fast::CustomKernelFunction> kernels;
  std::lock_guard<std::mutex> l(mu);
  auto key = std::make_tuple(nb, qk, f32, f32 && prefetch);
  auto it = kernels.find(key);
  if (it != kernels.end()) return it->second;
  std::vector<std::string> names;
  if (qk) names = {"q", "k"};
  names.push_back("v");
  for (int i = 0; i < nb; ++i) names.push_back("b" + std::to_string(i));
  if (qk) names.push_back("scale");
  auto name = std::string(f32 ? (prefetch ? "of3c_flash_f32_pf_" : "of3c_flash_f32_") : qk ? "of3c_flash_qk_" : "of3c_flash_bias_") +
              std::to_string(nb);
  auto fn = mx::fast::cuda_kernel(name, names, {"out"},
                                  f32 ? flash_attention_f32_source(nb, 0, prefetch) : flash_attention_source(nb, qk), "",
                                  /*ensure_row_contiguous=*/false);
  return kernels.emplace(key, std::move(fn)).first->second;
}

// The tensor-core kernel (gpu_flash_mma_source.h), mode qk only.
const mx::fast::CustomKernelFunction& flash_mma_kernel(int nb) {
  static std::mutex mu;
  static std::map<int, mx::fast::CustomKernelFunction> kernels;
  std::lock_guard<std::mutex> l(mu);
  auto it = kernels.find(nb);
  if (it != kernels.end()) return it->second;
  std::vector<std::string> names{"q", "k", "v"};
  for (int i = 0; i < nb; ++i) names.push_back("b" + std::to_string(i));
  names.push_back("scale");
  auto fn = mx::fast::cuda_kernel("of3c_flash_mma_" + std::to_string(nb), names, {"out"}, flash_mma_source(nb, kFlashMMAWarps),
                                  flash_mma_header(), /*ensure_row_contiguous=*/false);
  return kernels.emplace(nb, std::move(fn)).first->second;
}

const mx::fast::CustomKernelFunction& layer_norm_kernel(bool has_w, bool has_b) {
  static std::mutex mu;
  static std::map<std::pair<bool, bool>, mx::fast::CustomKernelFunction> kernels;
  std::lock_guard<std::mutex> l(mu);
  auto key = std::make_pair(has_w, has_b);
  auto it = kernels.find(key);
  if (it != kernels.end()) return it->second;
  std::vector<std::string> names{"x"};
  if (has_w) names.push_back("weight");
  if (has_b) names.push_back("bias");
  names.push_back("eps");
  auto name = std::string("of3c_layer_norm_") + (has_w ? "w" : "") + (has_b ? "b" : "");
  auto fn = mx::fast::cuda_kernel(name, names, {"out"}, layer_norm_source(has_w, has_b), layer_norm_header(),
                                  /*ensure_row_contiguous=*/true);
  return kernels.emplace(key, std::move(fn)).first->second;
}

bool is_float(mx::Dtype dt) { return dt == mx::float32 || dt == mx::float16 || dt == mx::bfloat16; }

}  // namespace

mx::array gpu_flash_attention(const mx::array* q, const mx::array* k, const mx::array& v,
                              const std::vector<mx::array>& biases, float scale, mx::Dtype out_dt, bool mma) {
  const bool qk = q != nullptr;
  if (qk != (k != nullptr)) throw std::invalid_argument("gpu_flash_attention: q and k go together");
  if (mma && (!qk || (out_dt != mx::bfloat16 && out_dt != mx::float16) || q->dtype() != out_dt ||
              k->dtype() != out_dt || v.dtype() != out_dt))
    throw std::invalid_argument("gpu_flash_attention: the mma kernel takes q, k, v and the result of one dtype, bf16 or f16");
  if (!is_float(out_dt)) throw std::invalid_argument("gpu_flash_attention: the result must be f32, f16 or bf16");
  if (biases.size() > 4 || (!qk && biases.empty()))
    throw std::invalid_argument("gpu_flash_attention: 0 to 4 biases (1 to 4 without q and k)");
  if (v.ndim() < 2 || !is_float(v.dtype())) throw std::invalid_argument("gpu_flash_attention: v must be float, rank >= 2");
  const int K = v.shape(-2), D = v.shape(-1);
  int C = 0, Q = 0;
  mx::Shape batch(v.shape().begin(), v.shape().end() - 2);
  if (qk) {
    if (q->ndim() < 2 || k->ndim() < 2 || !is_float(q->dtype()) || !is_float(k->dtype()))
      throw std::invalid_argument("gpu_flash_attention: q and k must be float, rank >= 2");
    C = q->shape(-1);
    Q = q->shape(-2);
    if (k->shape(-1) != C) throw std::invalid_argument("gpu_flash_attention: q and k head sizes differ");
    if (k->shape(-2) != K) throw std::invalid_argument("gpu_flash_attention: k and v key counts differ");
    batch = mx::broadcast_shapes(batch, mx::Shape(q->shape().begin(), q->shape().end() - 2));
    batch = mx::broadcast_shapes(batch, mx::Shape(k->shape().begin(), k->shape().end() - 2));
    if (C < 1 || C > 64) throw std::invalid_argument("gpu_flash_attention: head size must be 1..64");
  }
  if (D < 1 || D > 64) throw std::invalid_argument("gpu_flash_attention: v's head size must be 1..64");
  // The logits' shape: [batch.., Q, K]; in bias-only mode Q comes from the biases.
  mx::Shape full = batch;
  full.push_back(qk ? Q : 1);
  full.push_back(K);
  for (const auto& b : biases) {
    if (b.dtype() != mx::float32) throw std::invalid_argument("gpu_flash_attention: biases must be float32");
    full = mx::broadcast_shapes(full, b.shape());
  }
  if (full.size() != batch.size() + 2 || !std::equal(batch.begin(), batch.end(), full.begin()) || full.back() != K ||
      (qk && full[full.size() - 2] != Q))
    throw std::invalid_argument("gpu_flash_attention: a bias enlarges the logits");
  Q = full[full.size() - 2];
  if (full.size() > 8) throw std::invalid_argument("gpu_flash_attention: logits rank above 8");
  auto with = [&](int a, int b) {
    mx::Shape s = batch;
    s.push_back(a);
    s.push_back(b);
    return s;
  };
  std::vector<mx::array> ins;
  if (qk) {
    ins.push_back(mx::broadcast_to(*q, with(Q, C)));
    ins.push_back(mx::broadcast_to(*k, with(K, C)));
  }
  ins.push_back(mx::broadcast_to(v, with(K, D)));
  for (const auto& b : biases) ins.push_back(mx::broadcast_to(b, full));
  if (qk) ins.push_back(mx::array(scale, mx::float32));
  const mx::Shape oshape = with(Q, D);
  int64_t rows = 1;
  for (auto d : batch) rows *= d;
  if (rows == 0 || Q == 0) return mx::zeros(oshape, out_dt);  // nothing to launch
  if (K == 0) throw std::invalid_argument("gpu_flash_attention: no keys");
  std::vector<std::pair<std::string, mx::fast::TemplateArg>> targs{{"OutT", out_dt}, {"D", D}};
  if (qk) targs.emplace_back("C", C);
  if (mma) {  // QT queries per block of kFlashMMAThreads threads; MLX's grid counts threads
    const int64_t blocks = rows * ((Q + kFlashMMAQT - 1) / kFlashMMAQT);
    if (blocks * kFlashMMAThreads > INT32_MAX)
      throw std::invalid_argument("gpu_flash_attention: too many rows for one launch");
    return flash_mma_kernel(static_cast<int>(biases.size()))(
        ins, {oshape}, {out_dt}, {static_cast<int>(blocks * kFlashMMAThreads), 1, 1}, {kFlashMMAThreads, 1, 1}, targs,
        std::nullopt, false, {})[0];
  }
  // OF3C_GPU_FLASH_F32=0 keeps f32 on the one-thread-per-query kernel,
  // =prefetch takes the register-tiled one with its next-tile loads (both
  // for comparisons).
  static const std::string f32_env = [] { const char* e = std::getenv("OF3C_GPU_FLASH_F32"); return std::string(e ? e : ""); }();
  const bool f32_off = f32_env == "0", prefetch = f32_env == "prefetch";
  const bool f32 = qk && !f32_off && q->dtype() == mx::float32 && k->dtype() == mx::float32 && v.dtype() == mx::float32 &&
                   out_dt == mx::float32;
  const int threads = f32 ? kFlashF32Threads : kFlashQT;  // both take 64 queries per block
  const int64_t blocks = rows * ((Q + kFlashQT - 1) / kFlashQT);
  if (blocks * threads > INT32_MAX) throw std::invalid_argument("gpu_flash_attention: too many rows for one launch");
  auto outs = flash_kernel(static_cast<int>(biases.size()), qk, f32, prefetch)(
      ins, {oshape}, {out_dt}, {static_cast<int>(blocks * threads), 1, 1}, {threads, 1, 1}, targs, std::nullopt, false,
      {});
  return outs[0];
}

mx::array gpu_layer_norm(const mx::array& x, const mx::array* weight, const mx::array* bias, float eps) {
  if (!is_float(x.dtype())) throw std::invalid_argument("gpu_layer_norm: x must be f32, f16 or bf16");
  if (x.ndim() < 1 || x.ndim() > 8) throw std::invalid_argument("gpu_layer_norm: x needs rank 1..8");
  const int64_t n = x.shape(-1);
  if (n < 1 || n > kGPULayerNormMax) throw std::invalid_argument("gpu_layer_norm: the normalised axis must hold 1..1024 elements");
  for (const mx::array* p : {weight, bias})
    if (p && (p->dtype() != mx::float32 || p->ndim() != 1 || p->shape(0) != n))
      throw std::invalid_argument("gpu_layer_norm: weight and bias must be f32 of the normalised axis' size");
  if (x.size() == 0) return mx::zeros(x.shape(), x.dtype());  // nothing to launch
  const int64_t rows = x.size() / n;
  if (rows * 32 > INT32_MAX) throw std::invalid_argument("gpu_layer_norm: too many rows for one launch");
  int vpt = 32;
  for (int v : {2, 4, 8, 12, 16, 24, 32})
    if (32 * v >= n) {
      vpt = v;
      break;
    }
  std::vector<mx::array> ins{x};
  if (weight) ins.push_back(*weight);
  if (bias) ins.push_back(*bias);
  ins.push_back(mx::array(eps, mx::float32));
  const int per_warp = layer_norm_rows(vpt);
  const int64_t warps = (rows + per_warp - 1) / per_warp;
  std::vector<std::pair<std::string, mx::fast::TemplateArg>> targs{
      {"T", x.dtype()}, {"VPT", vpt}, {"PAIR", n % 2 == 0}, {"ROWS", per_warp}};
  return layer_norm_kernel(weight != nullptr, bias != nullptr)(
      ins, {x.shape()}, {x.dtype()}, {static_cast<int>(warps * 32), 1, 1}, {256, 1, 1}, targs, std::nullopt, false, {})[0];
}

mx::array gpu_bias_sum(const mx::Shape& shape, mx::Dtype dt, bool clamp_f16, const std::vector<mx::array>& biases) {
  if (dt != mx::float32 && dt != mx::float16 && dt != mx::bfloat16)
    throw std::invalid_argument("gpu_bias_sum: the result must be float32, float16 or bfloat16");
  if (shape.empty() || shape.size() > 8) throw std::invalid_argument("gpu_bias_sum: the shape needs rank 1..8");
  if (biases.empty() || biases.size() > 4) throw std::invalid_argument("gpu_bias_sum: 1 to 4 biases");
  std::vector<mx::array> ins;
  for (const auto& b : biases) {
    if (b.dtype() != mx::float32) throw std::invalid_argument("gpu_bias_sum: biases must be float32");
    if (b.ndim() > shape.size()) throw std::invalid_argument("gpu_bias_sum: a bias has more axes than the result");
    ins.push_back(mx::broadcast_to(b, shape));
  }
  int64_t total = 1;
  for (auto d : shape) total *= d;
  if (total == 0) return mx::zeros(shape, dt);  // nothing to launch
  int64_t rows = 1;
  for (size_t d = 0; d + 1 < shape.size(); ++d) rows *= shape[d];
  if (rows * 32 > INT32_MAX) throw std::invalid_argument("gpu_bias_sum: too many rows for one launch");
  std::vector<std::pair<std::string, mx::fast::TemplateArg>> targs{{"OutT", dt}, {"CLAMP16", clamp_f16}};
  auto outs = bias_sum_kernel(static_cast<int>(biases.size()))(
      ins, {shape}, {dt}, {static_cast<int>(rows * 32), 1, 1}, {256, 1, 1}, targs, std::nullopt, false, {});
  return outs[0];
}

mx::array gpu_softmax_bias(const mx::array& L, const std::vector<mx::array>& biases) {
  if (L.dtype() != mx::float32) throw std::invalid_argument("gpu_softmax_bias: logits must be float32");
  if (L.ndim() < 1 || L.ndim() > 8) throw std::invalid_argument("gpu_softmax_bias: logits need rank 1..8");
  if (biases.empty() || biases.size() > 4) throw std::invalid_argument("gpu_softmax_bias: 1 to 4 biases");
  std::vector<mx::array> ins{L};
  for (const auto& b : biases) {
    if (b.dtype() != mx::float32) throw std::invalid_argument("gpu_softmax_bias: biases must be float32");
    if (b.ndim() > L.ndim()) throw std::invalid_argument("gpu_softmax_bias: a bias has more axes than the logits");
    // A stride-0 view with the logits' shape (throws unless broadcastable).
    ins.push_back(mx::broadcast_to(b, L.shape()));
  }
  if (L.size() == 0) return mx::zeros(L.shape(), mx::float32);  // nothing to launch
  int64_t rows = 1;
  for (int d = 0; d + 1 < static_cast<int>(L.ndim()); ++d) rows *= L.shape(d);
  if (rows * 32 > INT32_MAX) throw std::invalid_argument("gpu_softmax_bias: too many rows for one launch");
  const int threads = 256;
  const int vpt = L.ndim() > 0 ? vptFor(L.shape(-1)) : 1;
  std::vector<std::pair<std::string, mx::fast::TemplateArg>> targs;
  if (vpt) targs.emplace_back("VPT", vpt);
  auto outs = softmax_bias_kernel(static_cast<int>(biases.size()), vpt)(
      ins, {L.shape()}, {mx::float32}, {static_cast<int>(rows * 32), 1, 1}, {threads, 1, 1}, targs, std::nullopt,
      false, {});
  return outs[0];
}

}  // namespace mlxs
