//go:build cgo && !nomlx

// Fast CPU kernels for the ops MLX's generic x86-64 wheel runs slowly
// (single-threaded, scalar transcendental functions): exp, sigmoid, the
// sigmoid gate a*sigmoid(g), SwiGLU's silu(a)*b, softmax and LayerNorm over
// the last axis. Each is an MLX custom Primitive, so it is an ordinary
// (opaque, unfused) node inside mx::compile graphs.
//
// Speed comes from
//   - SIMD: fastcpu_kernels.h compiled three times (AVX-512, AVX2+FMA,
//     portable), chosen once at run time with __builtin_cpu_supports;
//   - a vectorized exp (Cody-Waite range reduction + degree-7 polynomial,
//     see vexp), max relative error 7.9e-8 with FMA (exhaustively measured,
//     fastcpu_test.go), ~1.0e-7 for the portable variant;
//   - a small persistent thread pool for arrays above a size threshold.
//
// Evaluation follows MLX's CPU primitives: eval_cpu (on the thread that
// calls eval) allocates the output and hands the kernel to the stream's
// command encoder, which runs it on MLX's scheduler thread for the stream.

#include "fastcpu.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <sys/mman.h>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <typeinfo>
#include <vector>

#include "mlx_required.h"  // first: a clear error when MLX is missing
#include "mlx/backend/cpu/encoder.h"
#include "mlx/primitives.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FC_X86 1
#endif

namespace mx = mlx::core;

namespace {

struct Kernels {
  void (*exp)(const float*, float*, size_t);
  void (*sigmoid)(const float*, float*, size_t);
  void (*sigmoid_mul)(const float*, const float*, float*, size_t);
  void (*silu_mul)(const float*, const float*, float*, size_t);
  void (*swiglu_rows)(const float*, float*, size_t rows, size_t h);
  void (*softmax_rows)(const float*, float*, size_t rows, size_t n);
  void (*layernorm_rows)(const float*, const float*, const float*, float*, size_t rows,
                         size_t n, float eps);
  void (*softmax_bias_row)(const float*, float*, size_t n, float scale, const float* const*,
                           const unsigned char*, int nb);
  // c[m, np] = a[m, kd] (strided) * b[kd, np] (packed, row stride ldb);
  // np a multiple of lanes.
  void (*gemm)(size_t m, size_t np, size_t kd, const float* a, ptrdiff_t ars, ptrdiff_t acs,
               const float* b, size_t ldb, float* c, size_t ldc);
  int lanes;
};

}  // namespace

// ---- the three variants of the kernels ----

namespace fc_generic {
#define FC_W 4
#define FC_FMA(a, b, c) ((a) * (b) + (c))
#include "fastcpu_kernels.h"
#undef FC_W
#undef FC_FMA
}  // namespace fc_generic

#ifdef FC_X86
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace fc_avx2 {
static inline float hsum8(__m256 v) {
  __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  a = _mm_add_ps(a, _mm_movehl_ps(a, a));
  a = _mm_add_ss(a, _mm_movehdup_ps(a));
  return _mm_cvtss_f32(a);
}
static inline float hmax8(__m256 v) {
  __m128 a = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  a = _mm_max_ps(a, _mm_movehl_ps(a, a));
  a = _mm_max_ss(a, _mm_movehdup_ps(a));
  return _mm_cvtss_f32(a);
}
#define FC_W 8
#define FC_FMA(a, b, c) ((V)_mm256_fmadd_ps((__m256)(a), (__m256)(b), (__m256)(c)))
#define FC_HSUM(v) hsum8((__m256)(v))
#define FC_HMAX(v) hmax8((__m256)(v))
#include "fastcpu_kernels.h"
#undef FC_W
#undef FC_FMA
#undef FC_HSUM
#undef FC_HMAX
}  // namespace fc_avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512vl,avx512bw,avx2,fma")
namespace fc_avx512 {
#define FC_W 16
#define FC_FMA(a, b, c) ((V)_mm512_fmadd_ps((__m512)(a), (__m512)(b), (__m512)(c)))
#define FC_HSUM(v) _mm512_reduce_add_ps((__m512)(v))
#define FC_HMAX(v) _mm512_reduce_max_ps((__m512)(v))
#include "fastcpu_kernels.h"
#undef FC_W
#undef FC_FMA
#undef FC_HSUM
#undef FC_HMAX
}  // namespace fc_avx512
#pragma GCC pop_options
#endif

namespace {

thread_local std::string g_fast_err;

enum Isa { ISA_BEST = 0, ISA_AVX512 = 1, ISA_AVX2 = 2, ISA_GENERIC = 3 };

bool isa_supported(int isa) {
  switch (isa) {
    case ISA_GENERIC: return true;
#ifdef FC_X86
    case ISA_AVX2:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case ISA_AVX512:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    default: return false;
  }
}

const Kernels* table_for(int isa) {
  switch (isa) {
#ifdef FC_X86
    case ISA_AVX512: return &fc_avx512::kTable;
    case ISA_AVX2: return &fc_avx2::kTable;
#endif
    default: return &fc_generic::kTable;
  }
}

int best_isa() {
  // OF3C_FASTCPU_ISA=avx512|avx2|generic caps the choice (debugging).
  const char* env = std::getenv("OF3C_FASTCPU_ISA");
  int first = ISA_AVX512;
  if (env && std::strcmp(env, "avx2") == 0) first = ISA_AVX2;
  if (env && std::strcmp(env, "generic") == 0) first = ISA_GENERIC;
  for (int i = first; i <= ISA_GENERIC; i++)
    if (isa_supported(i)) return i;
  return ISA_GENERIC;
}

std::atomic<int> g_isa{-1};

int current_isa() {
  int v = g_isa.load(std::memory_order_acquire);
  if (v < 0) {
    v = best_isa();
    g_isa.store(v, std::memory_order_release);
  }
  return v;
}

const Kernels& K() { return *table_for(current_isa()); }

const char* isa_name(int isa) {
  switch (isa) {
    case ISA_AVX512: return "avx512";
    case ISA_AVX2: return "avx2";
    default: return "generic";
  }
}

// ---- thread pool ----
//
// Persistent workers (hardware_concurrency - 1, or OF3C_FASTCPU_THREADS - 1)
// plus the calling thread split a job into chunks claimed from an atomic
// counter, so a worker that the OS deschedules only delays its current chunk.
// One job at a time: a caller that finds the pool busy (another MLX stream's
// scheduler thread) runs its job inline instead of waiting, so no caller ever
// blocks on another's job and nothing can deadlock. Kernels never call the
// pool recursively. The pool is never destroyed (workers sleep on a
// condition variable until process exit).
class Pool {
 public:
  explicit Pool(int nthreads) {
    for (int i = 0; i + 1 < nthreads; i++) workers_.emplace_back([this] { loop(); });
    for (auto& t : workers_) t.detach();
  }

  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls f(begin, end) over [0, n) in chunks of `grain` items.
  void run(size_t n, size_t grain, const std::function<void(size_t, size_t)>& f) {
    if (grain == 0) grain = 1;
    size_t nchunks = (n + grain - 1) / grain;
    if (workers_.empty() || nchunks < 2 || !job_mu_.try_lock()) {
      f(0, n);
      return;
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      fn_ = &f;
      n_ = n;
      grain_ = grain;
      nchunks_ = nchunks;
      next_.store(0, std::memory_order_relaxed);
      active_ = static_cast<int>(workers_.size());
      gen_++;
    }
    cv_.notify_all();
    work();
    {
      std::unique_lock<std::mutex> l(mu_);
      done_cv_.wait(l, [this] { return active_ == 0; });
      fn_ = nullptr;
    }
    job_mu_.unlock();
  }

 private:
  void work() {
    for (;;) {
      size_t c = next_.fetch_add(1, std::memory_order_relaxed);
      if (c >= nchunks_) return;
      size_t b = c * grain_;
      size_t e = std::min(n_, b + grain_);
      (*fn_)(b, e);
    }
  }

  void loop() {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return gen_ != seen; });
        seen = gen_;
      }
      work();
      {
        std::lock_guard<std::mutex> l(mu_);
        if (--active_ == 0) done_cv_.notify_one();
      }
    }
  }

  std::vector<std::thread> workers_;
  std::mutex job_mu_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(size_t, size_t)>* fn_ = nullptr;
  size_t n_ = 0, grain_ = 1, nchunks_ = 0;
  std::atomic<size_t> next_{0};
  int active_ = 0;
  uint64_t gen_ = 0;
};

Pool& pool() {
  static Pool* p = [] {
    int n = static_cast<int>(std::thread::hardware_concurrency());
    if (const char* env = std::getenv("OF3C_FASTCPU_THREADS")) n = std::atoi(env);
    n = std::max(1, std::min(n, 64));
    return new Pool(n);
  }();
  return *p;
}

// Elementwise work is split in chunks of this many floats (256 KiB in + out
// per chunk, a multiple of every vector width); arrays below 2 chunks run
// on the calling thread.
constexpr size_t kGrain = 32768;

void par_elems(size_t n, const std::function<void(size_t, size_t)>& f) {
  pool().run(n, kGrain, f);
}

void par_rows(size_t rows, size_t row_len, const std::function<void(size_t, size_t)>& f) {
  size_t g = std::max<size_t>(1, kGrain / std::max<size_t>(row_len, 1));
  pool().run(rows, g, f);
}

// ---- transparent huge pages for fresh output buffers ----
//
// MLX's CPU allocator caches at most 32 MiB of freed buffers (its default
// cache limit here), so every larger intermediate of a run is a fresh mmap
// whose first touch faults in and zeroes 4 KiB pages one by one (~70k faults
// and ~20% of the CPU time of a TriangleAttention N=256 run, measured with
// perf). THP is "madvise" on Debian by default: advising the whole 2 MiB
// pages inside a buffer that is about to be written for the first time
// makes those faults 512x fewer. Advice only (no effect on contents or on
// memory outside the buffer); OF3C_HUGEPAGES=0 turns it off.
bool huge_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("OF3C_HUGEPAGES");
    return !(e && std::strcmp(e, "0") == 0);
  }();
  return on;
}

void advise_huge(void* p, size_t nbytes) {
  constexpr uintptr_t kHuge = 2u << 20;
  if (nbytes < 2 * kHuge || !huge_enabled()) return;
  uintptr_t b = (reinterpret_cast<uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
  uintptr_t e = (reinterpret_cast<uintptr_t>(p) + nbytes) & ~(kHuge - 1);
  if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_HUGEPAGE);
}

// A fresh output buffer for out (row-contiguous), advised as above.
void alloc_out(mx::array& out) {
  out.set_data(mx::allocator::malloc(out.nbytes()));
  advise_huge(out.data<void>(), out.nbytes());
}

// ---- the primitives ----

// CPUPrimitive is what every fast CPU kernel's MLX primitive shares: the
// dtype/layout check of its inputs, the output buffer (fresh, or the
// donated input's), the hand-off of the work to the stream's command
// encoder, a refusal to run on the GPU, and equivalence by type (kernels
// with parameters extend is_equivalent). A kernel implements eval_cpu with
// these and output_shapes; its work is a static run(...) taking the weak
// copies.
class CPUPrimitive : public mx::Primitive {
 public:
  using mx::Primitive::Primitive;

  void eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) override {
    throw std::runtime_error(std::string(name()) + ": a fast CPU kernel cannot run on the GPU");
  }

  bool is_equivalent(const mx::Primitive& other) const override {
    return typeid(other) == typeid(*this);
  }

 protected:
  // require_f32 throws unless inputs[from:] are float32 and, with dense,
  // row-contiguous without gaps (what the kernels read as flat arrays).
  void require_f32(const std::vector<mx::array>& inputs, bool dense, size_t from = 0,
                   const char* what = "inputs") const {
    for (size_t i = from; i < inputs.size(); i++) {
      const auto& in = inputs[i];
      if (in.dtype() != mx::float32)
        throw std::runtime_error(std::string(name()) + ": " + what + " must be float32");
      if (dense && (!in.flags().row_contiguous || in.data_size() != in.size()))
        throw std::runtime_error(std::string(name()) + ": " + what + " must be row-contiguous");
    }
  }

  // out_like_or_donate gives out x's buffer when x is donatable and of the
  // same size (elementwise kernels write in place), else a fresh one.
  static void out_like_or_donate(const mx::array& x, mx::array& out) {
    if (x.is_donatable() && x.nbytes() == out.nbytes()) {
      out.copy_shared_buffer(x);
    } else {
      alloc_out(out);
    }
  }

  // dispatch registers the inputs and the output with the stream's command
  // encoder and queues task(ins, out). Like MLX's own CPU primitives, the
  // task holds weak copies: cpu::eval keeps the input buffers alive until
  // the stream has run the task, and the output belongs to the array being
  // evaluated.
  template <class Task>
  void dispatch(const std::vector<mx::array>& inputs, mx::array& out, Task task) {
    auto& enc = mx::cpu::get_command_encoder(stream());
    std::vector<mx::array> ins;
    ins.reserve(inputs.size());
    for (const auto& in : inputs) {
      enc.set_input_array(in);
      ins.push_back(mx::array::unsafe_weak_copy(in));
    }
    enc.set_output_array(out);
    enc.dispatch([ins = std::move(ins), out = mx::array::unsafe_weak_copy(out),
                  task = std::move(task)]() mutable { task(ins, out); });
  }
};

enum class Op { Exp, Sigmoid, SigmoidMul, SiluMul, SwiGLU, Softmax, LayerNorm };

const char* op_name(Op op) {
  switch (op) {
    case Op::Exp: return "FastCPUExp";
    case Op::Sigmoid: return "FastCPUSigmoid";
    case Op::SigmoidMul: return "FastCPUSigmoidMul";
    case Op::SiluMul: return "FastCPUSiLUMul";
    case Op::SwiGLU: return "FastCPUSwiGLU";
    case Op::Softmax: return "FastCPUSoftmax";
    case Op::LayerNorm: return "FastCPULayerNorm";
  }
  return "FastCPU";
}

class FastCPU : public CPUPrimitive {
 public:
  // For LayerNorm: has_w/has_b say which of inputs[1], inputs[2] are the
  // weight and bias (a missing one is simply not an input).
  FastCPU(mx::Stream s, Op op, float eps = 0, bool has_w = false, bool has_b = false)
      : CPUPrimitive(s), op_(op), eps_(eps), has_w_(has_w), has_b_(has_b) {}

  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override {
    auto& out = outputs[0];
    require_f32(inputs, true);
    if (op_ != Op::SwiGLU) {  // elementwise: may write over x
      out_like_or_donate(inputs[0], out);
    } else {
      alloc_out(out);
    }
    if (out.size() == 0) return;
    dispatch(inputs, out, [op = op_, eps = eps_, has_w = has_w_, has_b = has_b_](
                              std::vector<mx::array>& ins, mx::array& out) {
      run(op, ins, out, eps, has_w, has_b);
    });
  }

  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    mx::Shape s = inputs[0].shape();
    if (op_ == Op::SwiGLU) s.back() /= 2;
    return {s};
  }

  bool is_equivalent(const mx::Primitive& other) const override {
    if (!CPUPrimitive::is_equivalent(other)) return false;
    const auto& o = static_cast<const FastCPU&>(other);
    return o.op_ == op_ && o.eps_ == eps_ && o.has_w_ == has_w_ && o.has_b_ == has_b_;
  }

  const char* name() const override { return op_name(op_); }

 private:
  static void run(Op op, std::vector<mx::array>& ins, mx::array& out, float eps, bool has_w,
                  bool has_b) {
    const Kernels& k = K();
    const float* x = ins[0].data<float>();
    float* y = out.data<float>();
    size_t n = out.size();
    switch (op) {
      case Op::Exp:
        par_elems(n, [&](size_t b, size_t e) { k.exp(x + b, y + b, e - b); });
        break;
      case Op::Sigmoid:
        par_elems(n, [&](size_t b, size_t e) { k.sigmoid(x + b, y + b, e - b); });
        break;
      case Op::SigmoidMul: {
        const float* g = ins[1].data<float>();
        par_elems(n, [&](size_t b, size_t e) { k.sigmoid_mul(x + b, g + b, y + b, e - b); });
        break;
      }
      case Op::SiluMul: {
        const float* g = ins[1].data<float>();
        par_elems(n, [&](size_t b, size_t e) { k.silu_mul(x + b, g + b, y + b, e - b); });
        break;
      }
      case Op::SwiGLU: {
        size_t h = out.shape().back();
        size_t rows = n / h;
        par_rows(rows, 3 * h, [&](size_t b, size_t e) {
          k.swiglu_rows(x + b * 2 * h, y + b * h, e - b, h);
        });
        break;
      }
      case Op::Softmax: {
        size_t len = out.shape().back();
        par_rows(n / len, len, [&](size_t b, size_t e) {
          k.softmax_rows(x + b * len, y + b * len, e - b, len);
        });
        break;
      }
      case Op::LayerNorm: {
        size_t len = out.shape().back();
        int i = 1;
        const float* w = has_w ? ins[i++].data<float>() : nullptr;
        const float* bb = has_b ? ins[i++].data<float>() : nullptr;
        par_rows(n / len, len, [&](size_t b, size_t e) {
          k.layernorm_rows(x + b * len, w, bb, y + b * len, e - b, len, eps);
        });
        break;
      }
    }
  }

  Op op_;
  float eps_;
  bool has_w_, has_b_;
};

// ---- softmax(scale * logits + biases) ----
//
// inputs[0] is the row-contiguous f32 logits of shape S (rank r), inputs[1..]
// the biases, each row-contiguous f32 of rank r whose every axis is S's or 1
// (numpy broadcast, made explicit by the builder). A bias is read in place:
// its element for logits index (i_0..i_{r-1}) is at sum_d i_d * st_d with
// st_d = 0 on its size-1 axes, so no broadcast is materialized; a bias whose
// last axis is 1 is one scalar per row.
class FastSoftmaxBias : public CPUPrimitive {
 public:
  FastSoftmaxBias(mx::Stream s, float scale) : CPUPrimitive(s), scale_(scale) {}

  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override {
    auto& out = outputs[0];
    require_f32(inputs, true);
    out_like_or_donate(inputs[0], out);
    if (out.size() == 0) return;
    dispatch(inputs, out, [scale = scale_](std::vector<mx::array>& ins, mx::array& out) {
      run(ins, out, scale);
    });
  }

  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    return {inputs[0].shape()};
  }

  bool is_equivalent(const mx::Primitive& other) const override {
    return CPUPrimitive::is_equivalent(other) &&
           static_cast<const FastSoftmaxBias&>(other).scale_ == scale_;
  }

  const char* name() const override { return "FastCPUSoftmaxBias"; }

 private:
  static void run(std::vector<mx::array>& ins, mx::array& out, float scale) {
    const Kernels& k = K();
    const auto& shape = out.shape();
    const int r = static_cast<int>(shape.size());
    const size_t len = shape.back();
    const size_t rows = out.size() / len;
    const int nb = static_cast<int>(ins.size()) - 1;
    // Per bias: base pointer, element strides over the r-1 leading axes
    // (0 where the bias has size 1), and whether its last axis is 1.
    std::vector<const float*> base(nb);
    std::vector<int64_t> st(static_cast<size_t>(nb) * r);
    std::vector<unsigned char> sc(nb);
    for (int j = 0; j < nb; j++) {
      const auto& b = ins[j + 1];
      base[j] = b.data<float>();
      int64_t acc = 1;
      for (int d = r - 1; d >= 0; d--) {
        st[j * r + d] = b.shape(d) == 1 ? 0 : acc;
        acc *= b.shape(d);
      }
      sc[j] = b.shape(r - 1) == 1 && len != 1;
    }
    const float* x = ins[0].data<float>();
    float* y = out.data<float>();
    par_rows(rows, len, [&](size_t rb, size_t re) {
      std::vector<const float*> p(nb);
      for (size_t row = rb; row < re; row++) {
        for (int j = 0; j < nb; j++) {
          size_t rem = row;
          int64_t off = 0;
          for (int d = r - 2; d >= 0; d--) {
            size_t i = rem % shape[d];
            rem /= shape[d];
            off += static_cast<int64_t>(i) * st[j * r + d];
          }
          p[j] = base[j] + off;
        }
        k.softmax_bias_row(x + row * len, y + row * len, len, scale, p.data(), sc.data(), nb);
      }
    });
  }

  float scale_;
};

// ---- fused attention: softmax(scale * q k^T + biases) v ----
//
// inputs: q [.., M, D], k [.., K, D], v [.., K, Dv] as they are (f32, any
// strides: transposed or sliced views of a projection are read in place, no
// copy), then the biases, f32 row-contiguous of the output's rank r, each
// axis the logits' ([batch.., M, K]) or 1. Batch axes broadcast (numpy,
// right-aligned). The output [batch.., M, Dv] is row-contiguous.
//
// Work is split over (batch item, block of query rows) and spread over the
// pool. Per item, k^T and v are packed once into per-thread buffers
// (zero-padded to whole vectors); per block of rows, the logits block
// q_blk k^T (k_gemm) stays in a per-thread buffer of <= 64 KiB, gets the
// biases and the softmax in place (k_softmax_bias_row, as FastSoftmaxBias),
// and is multiplied by v (k_gemm). Nothing of size [.., M, K] is ever
// allocated, so there is no chunking to do, no page faults on fresh logits
// buffers, and no BLAS call (whose per-call cost and idle threads dominate at
// these sizes: 256x32x256 GEMMs).
class FastAttention : public CPUPrimitive {
 public:
  // heads_inner: store the output with axes -3 and -2 swapped in memory
  // ([.., H, M, Dv] laid out as [.., M, H, Dv]), so that the usual
  // transpose back to [.., M, H, Dv] and the merge of the heads are views.
  FastAttention(mx::Stream s, float scale, bool heads_inner)
      : CPUPrimitive(s), scale_(scale), heads_inner_(heads_inner) {}

  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override {
    auto& out = outputs[0];
    require_f32(inputs, false);  // q, k, v: read through their strides
    require_f32(inputs, true, 3, "biases");
    if (heads_inner_ && out.ndim() >= 3) {
      // Row-major strides of the shape with axes r-3, r-2 swapped, then
      // swapped back; flags as MLX defines them (size-1 axes ignored).
      const int r = out.ndim();
      mx::Shape ms = out.shape();
      std::swap(ms[r - 3], ms[r - 2]);
      mx::Strides st(r);
      int64_t acc = 1;
      for (int d = r - 1; d >= 0; d--) {
        st[d] = acc;
        acc *= ms[d];
      }
      std::swap(st[r - 3], st[r - 2]);
      mx::array::Flags fl{};
      fl.contiguous = true;
      bool row = true, col = true;
      int64_t rs = 1, cs = 1;
      for (int d = r - 1; d >= 0; d--) {
        if (out.shape(d) != 1 && st[d] != rs) row = false;
        rs *= out.shape(d);
      }
      for (int d = 0; d < r; d++) {
        if (out.shape(d) != 1 && st[d] != cs) col = false;
        cs *= out.shape(d);
      }
      fl.row_contiguous = row;
      fl.col_contiguous = col;
      out.set_data(mx::allocator::malloc(out.nbytes()), out.size(), st, fl);
      advise_huge(out.data<void>(), out.nbytes());
    } else {
      alloc_out(out);
    }
    if (out.size() == 0) return;
    dispatch(inputs, out, [scale = scale_](std::vector<mx::array>& ins, mx::array& out) {
      run(ins, out, scale);
    });
  }

  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    return {out_shape(inputs)};
  }

  bool is_equivalent(const mx::Primitive& other) const override {
    if (!CPUPrimitive::is_equivalent(other)) return false;
    const auto& o = static_cast<const FastAttention&>(other);
    return o.scale_ == scale_ && o.heads_inner_ == heads_inner_;
  }

  const char* name() const override { return "FastCPUAttention"; }

  // [batch.., M, Dv]: the broadcast of every input's batch axes (all but
  // the last two), then q's M and v's Dv. Throws if they do not broadcast.
  static mx::Shape out_shape(const std::vector<mx::array>& in) {
    int r = 2;
    for (const auto& a : in) r = std::max(r, static_cast<int>(a.ndim()));
    mx::Shape sh(r - 2, 1);
    for (const auto& a : in) {
      int nb = static_cast<int>(a.ndim()) - 2;
      for (int dx = 0; dx < nb; dx++) {
        int d = dx + (r - 2 - nb);
        int n = a.shape(dx);
        if (n == 1) continue;
        if (sh[d] != 1 && sh[d] != n)
          throw std::invalid_argument("attention: batch axes do not broadcast");
        sh[d] = n;
      }
    }
    sh.push_back(in[0].shape(-2));
    sh.push_back(in[2].shape(-1));
    return sh;
  }

 private:
  static size_t round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }

  static void run(std::vector<mx::array>& ins, mx::array& out, float scale) {
    const Kernels& kk = K();
    const auto& os = out.shape();
    const int r = static_cast<int>(os.size());
    const int nbd = r - 2;
    const auto &q = ins[0], &k = ins[1], &v = ins[2];
    const size_t M = q.shape(-2), D = q.shape(-1), Kn = k.shape(-2), Dv = v.shape(-1);
    const size_t batch = out.size() / (M * Dv);
    float* y = out.data<float>();
    // Output row (batch index, query i) starts at sum_d idx_d * ys[d] +
    // i * yrs; each row's Dv values are contiguous.
    std::vector<int64_t> ys(out.strides().begin(), out.strides().begin() + nbd);
    const int64_t yrs = out.strides()[r - 2];
    if (Kn == 0) {  // empty softmax: the weights-times-values sum is 0
      std::memset(y, 0, out.nbytes());
      return;
    }
    // Batch strides of q, k, v aligned to the output's batch axes (0 where
    // the operand lacks the axis or has size 1), and their matrix strides.
    auto bstrides = [&](const mx::array& a) {
      std::vector<int64_t> st(nbd, 0);
      int off = r - static_cast<int>(a.ndim());
      for (int d = 0; d < nbd; d++) {
        int dx = d - off;
        if (dx >= 0 && a.shape(dx) != 1) st[d] = a.strides()[dx];
      }
      return st;
    };
    const auto qb = bstrides(q), kb = bstrides(k), vb = bstrides(v);
    const int64_t qrs = q.strides()[q.ndim() - 2], qcs = q.strides()[q.ndim() - 1];
    const int64_t krs = k.strides()[k.ndim() - 2], kcs = k.strides()[k.ndim() - 1];
    const int64_t vrs = v.strides()[v.ndim() - 2], vcs = v.strides()[v.ndim() - 1];
    const float *qd = q.data<float>(), *kd = k.data<float>(), *vd = v.data<float>();
    // Biases, as in FastSoftmaxBias: element strides over all r axes (0 on
    // size-1 axes), a last axis of 1 read as one scalar per row.
    const int nb = static_cast<int>(ins.size()) - 3;
    std::vector<const float*> base(nb);
    std::vector<int64_t> bst(static_cast<size_t>(nb) * r);
    std::vector<unsigned char> sc(nb);
    for (int j = 0; j < nb; j++) {
      const auto& b = ins[j + 3];
      base[j] = b.data<float>();
      int64_t acc = 1;
      for (int d = r - 1; d >= 0; d--) {
        bst[j * r + d] = b.shape(d) == 1 ? 0 : acc;
        acc *= b.shape(d);
      }
      sc[j] = b.shape(r - 1) == 1 && Kn != 1;
    }
    const size_t W = kk.lanes;
    const size_t Kp = round_up(Kn, W), Dvp = round_up(Dv, W);
    // Query rows per block: a logits block of <= 16 Ki floats (64 KiB).
    const size_t Mt = std::max<size_t>(1, std::min<size_t>(M, std::max<size_t>(8, 16384 / Kp)));
    const size_t nblk = (M + Mt - 1) / Mt;
    // Whole items per work unit when there are enough to share; otherwise
    // each block of rows is a unit (k and v repacked per unit).
    const size_t G = batch >= 4 * static_cast<size_t>(pool().threads()) ? 1 : nblk;
    pool().run(batch * G, 1, [&](size_t ub, size_t ue) {
      thread_local std::vector<float> buf;
      buf.resize(D * Kp + Kn * Dvp + Mt * Kp + Mt * Dvp);
      float* kp = buf.data();
      float* vp = kp + D * Kp;
      float* sb = vp + Kn * Dvp;
      float* ob = sb + Mt * Kp;
      std::vector<const float*> bp(nb);
      std::vector<int64_t> boff(nb);
      size_t packed = SIZE_MAX;
      for (size_t u = ub; u < ue; u++) {
        const size_t item = u / G;
        int64_t qo = 0, ko = 0, vo = 0, yo = 0;
        std::fill(boff.begin(), boff.end(), 0);
        size_t rem = item;
        for (int d = nbd - 1; d >= 0; d--) {
          int64_t i = static_cast<int64_t>(rem % os[d]);
          rem /= os[d];
          qo += i * qb[d];
          ko += i * kb[d];
          vo += i * vb[d];
          yo += i * ys[d];
          for (int j = 0; j < nb; j++) boff[j] += i * bst[j * r + d];
        }
        if (packed != item) {
          const float* kr = kd + ko;
          for (size_t j = 0; j < Kn; j++)
            for (size_t d = 0; d < D; d++) kp[d * Kp + j] = kr[j * krs + d * kcs];
          for (size_t d = 0; d < D; d++)
            for (size_t j = Kn; j < Kp; j++) kp[d * Kp + j] = 0;
          const float* vr = vd + vo;
          for (size_t j = 0; j < Kn; j++) {
            for (size_t c = 0; c < Dv; c++) vp[j * Dvp + c] = vr[j * vrs + c * vcs];
            for (size_t c = Dv; c < Dvp; c++) vp[j * Dvp + c] = 0;
          }
          packed = item;
        }
        size_t b0 = G == 1 ? 0 : u % G, b1 = G == 1 ? nblk : b0 + 1;
        for (size_t blk = b0; blk < b1; blk++) {
          const size_t i0 = blk * Mt, mt = std::min(Mt, M - i0);
          kk.gemm(mt, Kp, D, qd + qo + static_cast<int64_t>(i0) * qrs, qrs, qcs, kp, Kp, sb, Kp);
          for (size_t i = 0; i < mt; i++) {
            for (int j = 0; j < nb; j++)
              bp[j] = base[j] + boff[j] + static_cast<int64_t>(i0 + i) * bst[j * r + r - 2];
            float* row = sb + i * Kp;
            kk.softmax_bias_row(row, row, Kn, scale, bp.data(), sc.data(), nb);
          }
          kk.gemm(mt, Dvp, Kn, sb, Kp, 1, vp, Dvp, ob, Dvp);
          float* yb = y + yo + static_cast<int64_t>(i0) * yrs;
          for (size_t i = 0; i < mt; i++) std::memcpy(yb + i * yrs, ob + i * Dvp, Dv * 4);
        }
      }
    });
  }

  float scale_;
  bool heads_inner_;
};

// ---- row-contiguous copy of a strided f32 array ----
//
// What mx::contiguous does (no copy when the input is already
// row-contiguous), multi-threaded and cache-blocked: MLX's CPU copy of a
// transposed or sliced array is one scalar N-d loop on one thread. Axes are
// first merged where the input is contiguous across them; then rows whose
// input is contiguous are memcpy'd, a transpose (an input axis of stride 1
// that is not the last) is copied in 32x32 tiles, and anything else
// (broadcasts, stepped slices) is gathered row by row.
class FastContiguous : public CPUPrimitive {
 public:
  explicit FastContiguous(mx::Stream s) : CPUPrimitive(s) {}

  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override {
    const auto& in = inputs[0];
    auto& out = outputs[0];
    require_f32(inputs, false, 0, "input");
    if (in.flags().row_contiguous) {
      out.copy_shared_buffer(in);
      return;
    }
    alloc_out(out);
    if (out.size() == 0) return;
    dispatch(inputs, out, [](std::vector<mx::array>& ins, mx::array& out) { run(ins[0], out); });
  }

  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    return {inputs[0].shape()};
  }

  const char* name() const override { return "FastCPUContiguous"; }

 private:
  static void run(const mx::array& in, mx::array& out) {
    // Merged axes (size > 1 only), outermost first.
    std::vector<int64_t> sh, is;
    for (int d = 0; d < static_cast<int>(in.ndim()); d++) {
      int64_t n = in.shape(d), st = in.strides()[d];
      if (n == 1) continue;
      if (!sh.empty() && is.back() == st * n) {
        sh.back() *= n;
        is.back() = st;
        continue;
      }
      sh.push_back(n);
      is.push_back(st);
    }
    const float* x = in.data<float>();
    float* y = out.data<float>();
    const int n = static_cast<int>(sh.size());
    if (n == 0) {
      y[0] = x[0];
      return;
    }
    std::vector<int64_t> os(n);
    int64_t acc = 1;
    for (int d = n - 1; d >= 0; d--) {
      os[d] = acc;
      acc *= sh[d];
    }
    const int64_t L = sh[n - 1], sl = is[n - 1];
    int p = -1;
    if (sl != 1)
      for (int d = 0; d < n - 1; d++)
        if (is[d] == 1) p = d;
    if (p < 0) {
      // Rows of the last axis: memcpy when the input is contiguous along
      // it, else a strided gather.
      const size_t rows = out.size() / L;
      par_rows(rows, 2 * L, [&](size_t rb, size_t re) {
        for (size_t r = rb; r < re; r++) {
          int64_t off = 0;
          size_t rem = r;
          for (int d = n - 2; d >= 0; d--) {
            off += static_cast<int64_t>(rem % sh[d]) * is[d];
            rem /= sh[d];
          }
          const float* src = x + off;
          float* dst = y + r * L;
          if (sl == 1) {
            std::memcpy(dst, src, L * 4);
          } else {
            for (int64_t a = 0; a < L; a++) dst[a] = src[a * sl];
          }
        }
      });
      return;
    }
    // Transpose between axis p (input stride 1) and the last axis (output
    // stride 1), in T x T tiles; one unit = one index of the other axes and
    // one band of T along p.
    constexpr int64_t T = 32;
    const int64_t Lp = sh[p], bands = (Lp + T - 1) / T;
    std::vector<int> outer;
    for (int d = 0; d < n - 1; d++)
      if (d != p) outer.push_back(d);
    const size_t units = out.size() / (L * Lp) * bands;
    const int64_t op = os[p];
    pool().run(units, std::max<size_t>(1, kGrain / (T * L)), [&](size_t ub, size_t ue) {
      for (size_t u = ub; u < ue; u++) {
        size_t rem = u / bands;
        const int64_t b0 = static_cast<int64_t>(u % bands) * T, b1 = std::min(Lp, b0 + T);
        int64_t io = 0, oo = 0;
        for (int k = static_cast<int>(outer.size()) - 1; k >= 0; k--) {
          int d = outer[k];
          int64_t i = static_cast<int64_t>(rem % sh[d]);
          rem /= sh[d];
          io += i * is[d];
          oo += i * os[d];
        }
        for (int64_t a0 = 0; a0 < L; a0 += T) {
          const int64_t a1 = std::min(L, a0 + T);
          for (int64_t b = b0; b < b1; b++) {
            const float* src = x + io + b + a0 * sl;
            float* dst = y + oo + b * op + a0;
            for (int64_t a = 0; a < a1 - a0; a++) dst[a] = src[a * sl];
          }
        }
      }
    });
  }
};

// ---- batched matmul for many small GEMMs ----
//
// out[.., M, N] = a[.., M, K] @ b[.., K, N] (f32, batch axes broadcast,
// operands read in place through their strides). MLX's CPU matmul makes
// each operand contiguous (one-thread copy) and calls sgemm once per batch
// item, each call threaded by OpenBLAS with a zeroing pass over C and a
// thread hand-off; for the triangle multiplication (128 products of
// 256x256x256 per op at N=256) that overhead dominates. Here each work unit
// (a batch item, or a block of its rows when there are few items) packs its
// b (and a, when a's rows are not contiguous) into per-thread buffers and
// runs k_gemm; the pool spreads the units.
class FastMatMul : public CPUPrimitive {
 public:
  explicit FastMatMul(mx::Stream s) : CPUPrimitive(s) {}

  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override {
    auto& out = outputs[0];
    require_f32(inputs, false);
    alloc_out(out);
    if (out.size() == 0) return;
    dispatch(inputs, out,
             [](std::vector<mx::array>& ins, mx::array& out) { run(ins[0], ins[1], out); });
  }

  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override {
    return {out_shape(inputs[0], inputs[1])};
  }

  const char* name() const override { return "FastCPUMatMul"; }

  static mx::Shape out_shape(const mx::array& a, const mx::array& b) {
    if (a.ndim() < 2 || b.ndim() < 2)
      throw std::invalid_argument("matmul: operands need rank >= 2");
    if (a.shape(-1) != b.shape(-2))
      throw std::invalid_argument("matmul: inner sizes differ: " + std::to_string(a.shape(-1)) +
                                  " vs " + std::to_string(b.shape(-2)));
    const int r = std::max(a.ndim(), b.ndim());
    mx::Shape sh(r - 2, 1);
    for (const mx::array* x : {&a, &b}) {
      const int nb = static_cast<int>(x->ndim()) - 2;
      for (int dx = 0; dx < nb; dx++) {
        int d = dx + (r - 2 - nb), n = x->shape(dx);
        if (n == 1) continue;
        if (sh[d] != 1 && sh[d] != n)
          throw std::invalid_argument("matmul: batch axes do not broadcast");
        sh[d] = n;
      }
    }
    sh.push_back(a.shape(-2));
    sh.push_back(b.shape(-1));
    return sh;
  }

 private:
  static void run(const mx::array& a, const mx::array& b, mx::array& out) {
    const Kernels& kk = K();
    const auto& os = out.shape();
    const int r = static_cast<int>(os.size()), nbd = r - 2;
    const size_t M = a.shape(-2), Kd = a.shape(-1), N = b.shape(-1);
    float* y = out.data<float>();
    if (Kd == 0) {
      std::memset(y, 0, out.nbytes());
      return;
    }
    const size_t batch = out.size() / (M * N);
    auto bstrides = [&](const mx::array& x) {
      std::vector<int64_t> st(nbd, 0);
      int off = r - static_cast<int>(x.ndim());
      for (int d = 0; d < nbd; d++) {
        int dx = d - off;
        if (dx >= 0 && x.shape(dx) != 1) st[d] = x.strides()[dx];
      }
      return st;
    };
    const auto ab = bstrides(a), bb = bstrides(b);
    const int64_t ars = a.strides()[a.ndim() - 2], acs = a.strides()[a.ndim() - 1];
    const int64_t brs = b.strides()[b.ndim() - 2], bcs = b.strides()[b.ndim() - 1];
    const float *ad = a.data<float>(), *bd = b.data<float>();
    const size_t W = kk.lanes, Np = (N + W - 1) / W * W;
    const bool direct = Np == N;  // k_gemm may write out's rows in place
    const bool pack_a = acs != 1;
    // Row blocks per item when items are too few to share.
    const size_t nthr = static_cast<size_t>(pool().threads());
    size_t G = batch >= 2 * nthr ? 1 : std::min<size_t>(M, (2 * nthr + batch - 1) / batch);
    G = std::max<size_t>(1, G);
    const size_t Mb = (M + G - 1) / G;
    pool().run(batch * G, 1, [&](size_t ub, size_t ue) {
      thread_local std::vector<float> buf;
      buf.resize(Kd * Np + (pack_a ? Mb * Kd : 0) + (direct ? 0 : Mb * Np));
      float* bp = buf.data();
      float* ap = bp + Kd * Np;
      float* cp = ap + (pack_a ? Mb * Kd : 0);
      size_t packed = SIZE_MAX;
      for (size_t u = ub; u < ue; u++) {
        const size_t item = u / G, i0 = (u % G) * Mb;
        if (i0 >= M) continue;
        const size_t mt = std::min(Mb, M - i0);
        int64_t ao = 0, bo = 0;
        size_t rem = item;
        for (int d = nbd - 1; d >= 0; d--) {
          int64_t i = static_cast<int64_t>(rem % os[d]);
          rem /= os[d];
          ao += i * ab[d];
          bo += i * bb[d];
        }
        if (packed != item) {
          const float* br = bd + bo;
          for (size_t p = 0; p < Kd; p++) {
            float* dst = bp + p * Np;
            const float* src = br + static_cast<int64_t>(p) * brs;
            if (bcs == 1) {
              std::memcpy(dst, src, N * 4);
            } else {
              for (size_t j = 0; j < N; j++) dst[j] = src[static_cast<int64_t>(j) * bcs];
            }
            for (size_t j = N; j < Np; j++) dst[j] = 0;
          }
          packed = item;
        }
        const float* ar = ad + ao + static_cast<int64_t>(i0) * ars;
        int64_t lrs = ars, lcs = acs;
        if (pack_a) {
          // Gather a's rows: a transposed operand is read along its
          // contiguous axis (i inner) to stay within cache lines.
          if (ars == 1) {
            for (size_t p = 0; p < Kd; p++) {
              const float* src = ar + static_cast<int64_t>(p) * acs;
              for (size_t i = 0; i < mt; i++) ap[i * Kd + p] = src[i];
            }
          } else {
            for (size_t i = 0; i < mt; i++)
              for (size_t p = 0; p < Kd; p++)
                ap[i * Kd + p] = ar[static_cast<int64_t>(i) * ars + static_cast<int64_t>(p) * acs];
          }
          ar = ap;
          lrs = Kd;
          lcs = 1;
        }
        float* yo = y + (item * M + i0) * N;
        if (direct) {
          kk.gemm(mt, Np, Kd, ar, lrs, lcs, bp, Np, yo, N);
        } else {
          kk.gemm(mt, Np, Kd, ar, lrs, lcs, bp, Np, cp, Np);
          for (size_t i = 0; i < mt; i++) std::memcpy(yo + i * N, cp + i * Np, N * 4);
        }
      }
    });
  }
};

// ---- builders ----

mx::Stream cpu_stream() {
  auto d = mx::default_device();
  if (d.type != mx::Device::cpu)
    throw std::invalid_argument(
        "fast CPU kernel needs the CPU device (the default device is the GPU)");
  return mx::default_stream(d);
}

void check_float(const mx::array& a, const char* what) {
  auto d = a.dtype();
  if (d != mx::float32 && d != mx::float16 && d != mx::bfloat16)
    throw std::invalid_argument(std::string(what) + ": needs float32, float16 or bfloat16 input");
}

// Row-contiguous f32 through FastContiguous (no copy when already so).
mx::array fast_contiguous(const mx::array& a, mx::Stream s) {
  return mx::array(a.shape(), mx::float32, std::make_shared<FastContiguous>(s), {a});
}

// f32, row-contiguous (a no-op node for arrays already so).
mx::array prep(const mx::array& a, mx::Stream s) {
  if (a.dtype() != mx::float32) return mx::contiguous(mx::astype(a, mx::float32, s), false, s);
  return fast_contiguous(a, s);
}

mx::array finish(mx::array y, mx::Dtype dt, mx::Stream s) {
  return dt == mx::float32 ? y : mx::astype(y, dt, s);
}

mx::array build(Op op, const mx::array& x, const char* what, float eps = 0) {
  auto s = cpu_stream();
  check_float(x, what);
  if (x.ndim() == 0 && (op == Op::Softmax || op == Op::SwiGLU || op == Op::LayerNorm))
    throw std::invalid_argument(std::string(what) + ": needs rank >= 1");
  mx::Shape shape = x.shape();
  if (op == Op::SwiGLU) {
    if (shape.back() % 2 != 0)
      throw std::invalid_argument("swiglu: last axis must be even, got " +
                                  std::to_string(shape.back()));
    shape.back() /= 2;
  }
  auto in = prep(x, s);
  mx::array y(shape, mx::float32, std::make_shared<FastCPU>(s, op, eps), {in});
  return finish(y, x.dtype(), s);
}

mx::array build2(Op op, const mx::array& a, const mx::array& b, const char* what) {
  auto s = cpu_stream();
  check_float(a, what);
  check_float(b, what);
  auto dt = mx::promote_types(a.dtype(), b.dtype());
  auto ab = mx::broadcast_arrays({a, b}, s);
  auto pa = prep(ab[0], s), pb = prep(ab[1], s);
  mx::array y(pa.shape(), mx::float32, std::make_shared<FastCPU>(s, op), {pa, pb});
  return finish(y, dt, s);
}

mx::array build_ln(const mx::array& x, const std::optional<mx::array>& w,
                   const std::optional<mx::array>& b, float eps) {
  auto s = cpu_stream();
  check_float(x, "layer_norm");
  if (x.ndim() == 0) throw std::invalid_argument("layer_norm: needs rank >= 1");
  int c = x.shape().back();
  std::vector<mx::array> ins{prep(x, s)};
  auto param = [&](const mx::array& p, const char* what) {
    check_float(p, "layer_norm");
    if (static_cast<int64_t>(p.size()) != c)
      throw std::invalid_argument(std::string("layer_norm: ") + what + " has " +
                                  std::to_string(p.size()) + " elements, the last axis " +
                                  std::to_string(c));
    ins.push_back(prep(mx::reshape(p, {c}, s), s));
  };
  if (w) param(*w, "weight");
  if (b) param(*b, "bias");
  mx::array y(x.shape(), mx::float32,
              std::make_shared<FastCPU>(s, Op::LayerNorm, eps, w.has_value(), b.has_value()),
              std::move(ins));
  return finish(y, x.dtype(), s);
}

mx::array build_softmax_bias(const mx::array& x, float scale, const std::vector<mx::array>& bs) {
  auto s = cpu_stream();
  check_float(x, "softmax_bias");
  if (x.ndim() == 0) throw std::invalid_argument("softmax_bias: needs rank >= 1");
  const mx::Shape& shape = x.shape();
  const int r = static_cast<int>(shape.size());
  auto dt = x.dtype();
  std::vector<mx::array> ins{prep(x, s)};
  for (const auto& b : bs) {
    check_float(b, "softmax_bias");
    dt = mx::promote_types(dt, b.dtype());
    auto shape_str = [&] {
      std::string o = "[";
      for (size_t i = 0; i < b.shape().size(); i++) o += (i ? "," : "") + std::to_string(b.shape(i));
      o += "] vs logits [";
      for (int i = 0; i < r; i++) o += (i ? "," : "") + std::to_string(shape[i]);
      return o + "]";
    };
    if (static_cast<int>(b.ndim()) > r)
      throw std::invalid_argument("softmax_bias: bias has higher rank than the logits: " +
                                  shape_str());
    mx::Shape bsh(r - b.ndim(), 1);
    for (int d : b.shape()) bsh.push_back(d);
    for (int d = 0; d < r; d++)
      if (bsh[d] != 1 && bsh[d] != shape[d])
        throw std::invalid_argument("softmax_bias: bias does not broadcast to the logits: " +
                                    shape_str());
    ins.push_back(prep(mx::reshape(b, bsh, s), s));
  }
  mx::array y(shape, mx::float32, std::make_shared<FastSoftmaxBias>(s, scale), std::move(ins));
  return finish(y, dt, s);
}

mx::array build_attention(const mx::array& q, const mx::array& k, const mx::array& v, float scale,
                          const std::vector<mx::array>& bs, bool heads_inner) {
  auto s = cpu_stream();
  check_float(q, "attention");
  check_float(k, "attention");
  check_float(v, "attention");
  if (q.ndim() < 2 || k.ndim() < 2 || v.ndim() < 2)
    throw std::invalid_argument("attention: q, k and v need rank >= 2");
  if (q.shape(-1) != k.shape(-1))
    throw std::invalid_argument("attention: q and k head sizes differ");
  if (k.shape(-2) != v.shape(-2))
    throw std::invalid_argument("attention: k and v key counts differ");
  const int M = q.shape(-2), Kn = k.shape(-2);
  int r = std::max({2, static_cast<int>(q.ndim()), static_cast<int>(k.ndim()),
                    static_cast<int>(v.ndim())});
  for (const auto& b : bs) r = std::max(r, static_cast<int>(b.ndim()));
  auto dt = mx::promote_types(mx::promote_types(q.dtype(), k.dtype()), v.dtype());
  auto f32 = [&](const mx::array& a) {
    return a.dtype() == mx::float32 ? a : mx::astype(a, mx::float32, s);
  };
  std::vector<mx::array> ins{f32(q), f32(k), f32(v)};
  for (const auto& b : bs) {
    check_float(b, "attention");
    dt = mx::promote_types(dt, b.dtype());
    mx::Shape bsh(r - b.ndim(), 1);
    for (int d : b.shape()) bsh.push_back(d);
    if ((bsh[r - 2] != 1 && bsh[r - 2] != M) || (bsh[r - 1] != 1 && bsh[r - 1] != Kn))
      throw std::invalid_argument("attention: a bias does not broadcast to the logits [.., " +
                                  std::to_string(M) + ", " + std::to_string(Kn) + "]");
    ins.push_back(prep(mx::reshape(b, bsh, s), s));
  }
  mx::Shape shape = FastAttention::out_shape(ins);  // checks the batch axes
  mx::array y(shape, mx::float32, std::make_shared<FastAttention>(s, scale, heads_inner),
              std::move(ins));
  return finish(y, dt, s);
}

mx::array& A(mlxs_array h) {
  if (h.ctx == nullptr) throw std::invalid_argument("null array handle");
  return *static_cast<mx::array*>(h.ctx);
}

void put(mlxs_array* out, mx::array a) { out->ctx = new mx::array(std::move(a)); }

}  // namespace

#define FTRY try {
#define FCATCH                                  \
  return 0;                                     \
  }                                             \
  catch (const std::exception& e) {             \
    g_fast_err = e.what();                      \
    return 1;                                   \
  }                                             \
  catch (...) {                                 \
    g_fast_err = "unknown C++ exception";       \
    return 1;                                   \
  }

extern "C" {

const char* mlxs_fast_last_error(void) { return g_fast_err.c_str(); }

int mlxs_fast_unary(int op, mlxs_array* out, mlxs_array h) {
  FTRY auto& x = A(h);
  switch (op) {
    case MLXS_FAST_EXP: put(out, build(Op::Exp, x, "exp")); break;
    case MLXS_FAST_SIGMOID: put(out, build(Op::Sigmoid, x, "sigmoid")); break;
    case MLXS_FAST_SWIGLU: put(out, build(Op::SwiGLU, x, "swiglu")); break;
    case MLXS_FAST_SOFTMAX: put(out, build(Op::Softmax, x, "softmax")); break;
    default: throw std::invalid_argument("unknown fast unary op " + std::to_string(op));
  }
  FCATCH
}

int mlxs_fast_binary(int op, mlxs_array* out, mlxs_array a, mlxs_array b) {
  FTRY switch (op) {
    case MLXS_FAST_SIGMOID_MUL: put(out, build2(Op::SigmoidMul, A(a), A(b), "sigmoid_mul")); break;
    case MLXS_FAST_SILU_MUL: put(out, build2(Op::SiluMul, A(a), A(b), "silu_mul")); break;
    default: throw std::invalid_argument("unknown fast binary op " + std::to_string(op));
  }
  FCATCH
}

int mlxs_fast_layer_norm(mlxs_array* out, mlxs_array x, const mlxs_array* weight,
                         const mlxs_array* bias, float eps) {
  FTRY std::optional<mx::array> w, b;
  if (weight) w = A(*weight);
  if (bias) b = A(*bias);
  put(out, build_ln(A(x), w, b, eps));
  FCATCH
}

int mlxs_fast_softmax_bias(mlxs_array* out, mlxs_array x, float scale, const mlxs_array* biases,
                           int nb) {
  FTRY if (nb < 0) throw std::invalid_argument("softmax_bias: negative bias count");
  std::vector<mx::array> bs;
  for (int i = 0; i < nb; i++) bs.push_back(A(biases[i]));
  put(out, build_softmax_bias(A(x), scale, bs));
  FCATCH
}

int mlxs_fast_attention(mlxs_array* out, mlxs_array q, mlxs_array k, mlxs_array v, float scale,
                        const mlxs_array* biases, int nb, int heads_inner) {
  FTRY if (nb < 0) throw std::invalid_argument("attention: negative bias count");
  std::vector<mx::array> bs;
  for (int i = 0; i < nb; i++) bs.push_back(A(biases[i]));
  put(out, build_attention(A(q), A(k), A(v), scale, bs, heads_inner != 0));
  FCATCH
}

int mlxs_fast_contiguous(mlxs_array* out, mlxs_array x) {
  FTRY auto s = cpu_stream();
  auto& a = A(x);
  if (a.dtype() == mx::float32) {
    put(out, fast_contiguous(a, s));
  } else {
    put(out, mx::contiguous(a, false, s));
  }
  FCATCH
}

void mlxs_fast_advise_huge(void* p, size_t nbytes) { advise_huge(p, nbytes); }

int mlxs_fast_matmul(mlxs_array* out, mlxs_array a, mlxs_array b) {
  FTRY auto s = cpu_stream();
  auto& x = A(a);
  auto& y = A(b);
  check_float(x, "matmul");
  check_float(y, "matmul");
  auto dt = mx::promote_types(x.dtype(), y.dtype());
  auto f32 = [&](const mx::array& v) {
    return v.dtype() == mx::float32 ? v : mx::astype(v, mx::float32, s);
  };
  std::vector<mx::array> ins{f32(x), f32(y)};
  mx::Shape shape = FastMatMul::out_shape(ins[0], ins[1]);
  mx::array o(shape, mx::float32, std::make_shared<FastMatMul>(s), std::move(ins));
  put(out, finish(o, dt, s));
  FCATCH
}

int mlxs_fast_check_device(int type) {
  FTRY if (type != 0)
    throw std::invalid_argument(
        "fast CPU kernel needs the CPU device (the default device is the GPU)");
  FCATCH
}

int mlxs_fast_isa(const char** out) {
  FTRY *out = isa_name(current_isa());
  FCATCH
}

int mlxs_fast_set_isa(int isa) {
  FTRY if (isa == ISA_BEST) {
    g_isa.store(best_isa());
    return 0;
  }
  if (!isa_supported(isa))
    throw std::invalid_argument("this CPU cannot run fast-kernel variant " + std::to_string(isa));
  g_isa.store(isa);
  FCATCH
}

int mlxs_fast_threads(int* out) {
  FTRY *out = pool().threads();
  FCATCH
}

}  // extern "C"
