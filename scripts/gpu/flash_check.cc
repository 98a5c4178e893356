// Standalone check of the flash attention kernel's CUDA source
// (internal/mlx/gpu_flash_source.h) without MLX: this program, built on any
// machine, writes a .cu file that wraps the same source in kernels with the
// parameter list MLX's fast::cuda_kernel generates (ptr, name_shape,
// name_strides, name_ndim per input, then the output) and a host test that
// compares them with a float64 CPU reference on strided, broadcast, masked
// operands (f32, bf16, fp16; head sizes 8..64; 0-3 biases; bias-only mode;
// a transposed q). On the GPU machine:
//
//   g++ -std=c++17 -Iinternal/mlx scripts/gpu/flash_check.cc -o /tmp/flash_gen && /tmp/flash_gen > /tmp/fc.cu
//   nvcc -std=c++17 -arch=sm_90 -O2 /tmp/fc.cu -o /tmp/fc && /tmp/fc
//
// It exits 1 when any case is off by more than its tolerance.
#include <cstdio>
#include <string>
#include <vector>

#include "gpu_flash_mma_source.h"
#include "gpu_flash_source.h"

struct Case {
  const char* name;
  bool mma;  // gpu_flash_mma_source.h (tensor cores, bf16/fp16 q, k, v) instead of the FFMA kernel
  bool qk;
  int nb;
  const char* type;  // q, k, v and out: float, __nv_bfloat16, __half
  int C, D, Q, K;
  std::vector<int> batch;
  std::vector<std::vector<int>> biases;  // storage shapes (numpy broadcast into [batch.., Q, K])
  bool transpose_q;
  double tol;
};

int main() {
  std::vector<Case> cases = {
      {"tri f32 C32 mask+pair", false, true, 2, "float", 32, 32, 100, 100, {3, 4}, {{3, 1, 1, 100}, {1, 4, 100, 100}}, false, 2e-5},
      {"f32 C8 no bias", false, true, 0, "float", 8, 8, 70, 33, {2}, {}, false, 2e-5},
      {"bf16 C24 pair", false, true, 1, "__nv_bfloat16", 24, 24, 130, 130, {1, 16}, {{1, 16, 130, 130}}, false, 3e-2},
      {"bias-only f32 D8", false, false, 2, "float", 0, 8, 40, 40, {5, 8}, {{1, 8, 40, 40}, {40, 40}}, false, 2e-5},
      {"f16 C48 D16 3 biases", false, true, 3, "__half", 48, 16, 50, 200, {2, 2}, {{2, 1, 1, 200}, {1, 2, 50, 200}, {50, 200}}, false, 3e-3},
      {"f32 C64 transposed q", false, true, 1, "float", 64, 64, 65, 97, {3}, {{3, 1, 97}}, true, 2e-5},
      {"f32 C16 Q1", false, true, 1, "float", 16, 16, 1, 300, {7}, {{7, 1, 300}}, false, 2e-5},
      // The tensor-core kernel: bf16 and fp16, C 8..64 (k-dim padded to 16), D ≠ C, Q and K not multiples of 16.
      {"mma tri bf16 C32 mask+pair", true, true, 2, "__nv_bfloat16", 32, 32, 100, 100, {3, 4}, {{3, 1, 1, 100}, {1, 4, 100, 100}}, false, 3e-2},
      {"mma tri f16 C32 mask+pair", true, true, 2, "__half", 32, 32, 77, 77, {2, 4}, {{2, 1, 1, 77}, {1, 4, 77, 77}}, false, 3e-3},
      {"mma bf16 C16 mask+pair", true, true, 2, "__nv_bfloat16", 16, 16, 93, 131, {2, 4}, {{2, 1, 1, 131}, {1, 4, 93, 131}}, false, 3e-2},
      {"mma f16 C16 mask+pair", true, true, 2, "__half", 16, 16, 33, 65, {3, 2}, {{3, 1, 1, 65}, {1, 2, 33, 65}}, false, 3e-3},
      {"mma bf16 C48 mask+pair", true, true, 2, "__nv_bfloat16", 48, 48, 130, 67, {2, 3}, {{2, 1, 1, 67}, {1, 3, 130, 67}}, false, 3e-2},
      {"mma f16 C48 D16 3 biases", true, true, 3, "__half", 48, 16, 50, 200, {2, 2}, {{2, 1, 1, 200}, {1, 2, 50, 200}, {50, 200}}, false, 3e-3},
      {"mma bf16 C64 mask+pair", true, true, 2, "__nv_bfloat16", 64, 64, 71, 150, {2, 2}, {{2, 1, 1, 150}, {1, 2, 71, 150}}, false, 3e-2},
      {"mma f16 C64 no bias", true, true, 0, "__half", 64, 64, 129, 129, {2}, {}, false, 3e-3},
      {"mma bf16 C24 pair", true, true, 1, "__nv_bfloat16", 24, 24, 130, 130, {1, 16}, {{1, 16, 130, 130}}, false, 3e-2},
      {"mma f16 C8 mask", true, true, 1, "__half", 8, 8, 45, 300, {4, 8}, {{4, 1, 1, 300}}, false, 3e-3},
      {"mma bf16 C32 transposed q", true, true, 1, "__nv_bfloat16", 32, 32, 65, 97, {3}, {{3, 1, 97}}, true, 3e-2},
      {"mma f16 C16 Q1", true, true, 1, "__half", 16, 16, 1, 300, {7}, {{7, 1, 300}}, false, 3e-3},
      {"mma bf16 C40 D24 odd", true, true, 2, "__nv_bfloat16", 40, 24, 17, 1, {5}, {{5, 1, 1}, {5, 17, 1}}, false, 3e-2},
  };
  // Timing (`flash_check time`): both kernels on the same data, OF3's attention shapes at N tokens.
  struct Timing {
    const char* name;
    const char* type;
    int C, Q, K;
    std::vector<int> batch;
    std::vector<std::vector<int>> biases;
    int warps = mlxs::kFlashMMAWarps;  // the mma kernel's block
    bool late_bias = false;            // flash_mma_source's variant
  };
  std::vector<Timing> timings = {
      {"tri-att N=1024 H4 C32 bf16", "__nv_bfloat16", 32, 1024, 1024, {1024, 4}, {{1024, 1, 1, 1024}, {1, 4, 1024, 1024}}},
      {"tri-att N=1024 H4 C32 f16", "__half", 32, 1024, 1024, {1024, 4}, {{1024, 1, 1, 1024}, {1, 4, 1024, 1024}}},
      {"tri-att N=512 H4 C32 bf16", "__nv_bfloat16", 32, 512, 512, {512, 4}, {{512, 1, 1, 512}, {1, 4, 512, 512}}},
      {"tmpl tri-att N=1024 H4 C16 bf16", "__nv_bfloat16", 16, 1024, 1024, {1024, 4}, {{1024, 1, 1, 1024}, {1, 4, 1024, 1024}}},
      {"pair-bias att N=1024 H16 C24 bf16", "__nv_bfloat16", 24, 1024, 1024, {1, 16}, {{1, 1, 1, 1024}, {1, 16, 1024, 1024}}},
      {"tri-att N=1024 H4 C32 bf16, mma 8 warps", "__nv_bfloat16", 32, 1024, 1024, {1024, 4}, {{1024, 1, 1, 1024}, {1, 4, 1024, 1024}}, 8},
      {"tri-att N=1024 H4 C32 bf16, mma 2 warps", "__nv_bfloat16", 32, 1024, 1024, {1024, 4}, {{1024, 1, 1, 1024}, {1, 4, 1024, 1024}}, 2},
      {"tri-att N=1024 H4 C32 bf16, late bias", "__nv_bfloat16", 32, 1024, 1024, {1024, 4}, {{1024, 1, 1, 1024}, {1, 4, 1024, 1024}}, 4, true},
      {"tri-att N=1024 H4 C32 bf16, late bias 8 w", "__nv_bfloat16", 32, 1024, 1024, {1024, 4}, {{1024, 1, 1, 1024}, {1, 4, 1024, 1024}}, 8, true},
      {"tri-att N=2048 H4 C32 bf16", "__nv_bfloat16", 32, 2048, 2048, {2048, 4}, {{2048, 1, 1, 2048}, {1, 4, 2048, 2048}}},
  };
  std::fputs(R"(#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>
struct Shape { int32_t v[8]; __host__ __device__ int32_t operator[](int i) const { return v[i]; } };
struct Strides { int64_t v[8]; __host__ __device__ int64_t operator[](int i) const { return v[i]; } };
)", stdout);
  std::fputs(mlxs::flash_mma_header().c_str(), stdout);
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    std::string params;
    auto in = [&](const std::string& n, const std::string& t) {
      params += "const " + t + "* " + n + ", const __grid_constant__ Shape " + n + "_shape, const __grid_constant__ Strides " + n +
                "_strides, const __grid_constant__ int " + n + "_ndim, ";
    };
    if (c.qk) in("q", c.type), in("k", c.type);
    in("v", c.type);
    for (int b = 0; b < c.nb; ++b) in("b" + std::to_string(b), "float");
    if (c.qk) params += "const float* scale, ";
    params += std::string(c.type) + "* out";
    std::printf("__global__ void kern%zu(%s) {\n  constexpr int D = %d;\n  constexpr int C = %d;\n  using OutT = %s;\n%s\n}\n",
                i, params.c_str(), c.D, c.C > 0 ? c.C : 1, c.type, c.mma ? mlxs::flash_mma_source(c.nb).c_str() : mlxs::flash_attention_source(c.nb, c.qk).c_str());
  }
  auto params_for = [](const char* type, int nb) {
    std::string params;
    auto in = [&](const std::string& n, const std::string& t) {
      params += "const " + t + "* " + n + ", const __grid_constant__ Shape " + n + "_shape, const __grid_constant__ Strides " + n +
                "_strides, const __grid_constant__ int " + n + "_ndim, ";
    };
    in("q", type), in("k", type), in("v", type);
    for (int b = 0; b < nb; ++b) in("b" + std::to_string(b), "float");
    return params + "const float* scale, " + type + "* out";
  };
  for (size_t i = 0; i < timings.size(); ++i) {
    const auto& t = timings[i];
    const int nb = (int)t.biases.size();
    std::printf("__global__ void tffma%zu(%s) {\n  constexpr int D = %d;\n  constexpr int C = %d;\n  using OutT = %s;\n%s\n}\n", i,
                params_for(t.type, nb).c_str(), t.C, t.C, t.type, mlxs::flash_attention_source(nb, true).c_str());
    std::printf("__global__ void tmma%zu(%s) {\n  constexpr int D = %d;\n  constexpr int C = %d;\n  using OutT = %s;\n%s\n}\n", i,
                params_for(t.type, nb).c_str(), t.C, t.C, t.type, mlxs::flash_mma_source(nb, t.warps, t.late_bias).c_str());
  }
  std::fputs(R"(
struct Arr {  // a view [full..] of storage of shape st_shape (contiguous), rounded to the input dtype
  std::vector<int> full; std::vector<int64_t> strides; std::vector<float> data; void* dev = nullptr;
  Shape sh() const { Shape s{}; for (size_t i = 0; i < full.size(); ++i) s.v[i] = full[i]; return s; }
  Strides st() const { Strides s{}; for (size_t i = 0; i < full.size(); ++i) s.v[i] = strides[i]; return s; }
  int nd() const { return (int)full.size(); }
  float at(const std::vector<int>& ix) const { int64_t o = 0; for (size_t i = 0; i < ix.size(); ++i) o += ix[i] * strides[i]; return data[o]; }
};
static std::mt19937 rng(7);
static bool fast_fill = false;  // timing: a cheap hash in [-2, 2) instead of normal samples (hundreds of millions of them)
template <typename T> float rnd(float x) { return (float)(T)x; }
template <> float rnd<float>(float x) { return x; }
template <> float rnd<__nv_bfloat16>(float x) { return __bfloat162float(__float2bfloat16(x)); }
template <> float rnd<__half>(float x) { return __half2float(__float2half(x)); }
template <typename T>
Arr make(std::vector<int> storage, std::vector<int> full, bool mask, bool transpose = false) {
  Arr a; a.full = full;
  size_t n = 1; for (int d : storage) n *= d;
  std::normal_distribution<float> nd(0.f, 1.f);
  a.data.resize(n);
  if (fast_fill) {
    uint32_t h = rng();
    for (auto& x : a.data) {
      h = h * 1664525u + 1013904223u;
      x = mask ? ((h >> 28) < 3 ? -1e9f : 0.f) : rnd<T>((float)(h >> 8) * (4.0f / 16777216.0f) - 2.0f);
    }
  } else {
    for (auto& x : a.data) x = mask ? ((rng() % 5 == 0) ? -1e9f : 0.f) : rnd<T>(nd(rng));
  }
  if (transpose) std::swap(storage[storage.size() - 1], storage[storage.size() - 2]);
  std::vector<int64_t> cs(storage.size()); int64_t s = 1;
  for (int i = (int)storage.size() - 1; i >= 0; --i) { cs[i] = s; s *= storage[i]; }
  if (transpose) { std::swap(cs[cs.size() - 1], cs[cs.size() - 2]); std::swap(storage[storage.size() - 1], storage[storage.size() - 2]); }
  a.strides.assign(full.size(), 0);
  int off = (int)full.size() - (int)storage.size();
  for (size_t i = 0; i < storage.size(); ++i) a.strides[off + i] = (storage[i] == 1 && full[off + i] != 1) ? 0 : cs[i];
  std::vector<T> h(n); for (size_t i = 0; i < n; ++i) h[i] = (T)a.data[i];
  cudaMalloc(&a.dev, n * sizeof(T)); cudaMemcpy(a.dev, h.data(), n * sizeof(T), cudaMemcpyHostToDevice);
  return a;
}
template <typename T> float tof(T x) { return (float)x; }
template <> float tof<__nv_bfloat16>(__nv_bfloat16 x) { return __bfloat162float(x); }
template <> float tof<__half>(__half x) { return __half2float(x); }
template <typename T, typename L>
bool check(const char* name, bool qk, int C, int D, int Q, int K, std::vector<int> batch, std::vector<std::vector<int>> bsh, bool tq, double tol, L launch) {
  auto with = [&](int a, int b) { auto s = batch; s.push_back(a); s.push_back(b); return s; };
  std::vector<Arr> A;
  if (qk) {
    A.push_back(make<T>(tq ? with(C, Q) : with(Q, C), with(Q, C), false, tq));
    A.push_back(make<T>(with(K, C), with(K, C), false));
  }
  A.push_back(make<T>(with(K, D), with(K, D), false));
  for (size_t i = 0; i < bsh.size(); ++i) A.push_back(make<float>(bsh[i], with(Q, K), i == 0 && bsh.size() > 1));
  const float scale = qk ? 1.0f / std::sqrt((float)C) : 1.0f;
  float* dscale; cudaMalloc(&dscale, 4); cudaMemcpy(dscale, &scale, 4, cudaMemcpyHostToDevice);
  int64_t rows = 1; for (int d : batch) rows *= d;
  T* dout; cudaMalloc(&dout, rows * Q * D * sizeof(T));
  const int blocks = (int)(rows * ((Q + 63) / 64));
  launch(A, dscale, (void*)dout, blocks);
  cudaError_t e = cudaDeviceSynchronize();
  if (e != cudaSuccess) { std::printf("FAIL %s: %s\n", name, cudaGetErrorString(e)); return false; }
  std::vector<T> out(rows * Q * D); cudaMemcpy(out.data(), dout, out.size() * sizeof(T), cudaMemcpyDeviceToHost);
  double err = 0, ref = 0;
  std::vector<int> ix(batch.size() + 2);
  std::vector<double> s(K), acc(D);
  int nq = qk ? 2 : 0;
  for (int64_t r = 0; r < rows; ++r) {
    int64_t t = r; for (int d = (int)batch.size() - 1; d >= 0; --d) { ix[d] = t % batch[d]; t /= batch[d]; }
    for (int i = 0; i < Q; ++i) {
      double m = -1e300;
      for (int j = 0; j < K; ++j) {
        double x = 0;
        if (qk) for (int c = 0; c < C; ++c) {
          auto qi = ix; qi[batch.size()] = i; qi[batch.size() + 1] = c;
          auto ki = ix; ki[batch.size()] = j; ki[batch.size() + 1] = c;
          x += (double)(A[0].at(qi) * scale) * A[1].at(ki);
        }
        for (size_t b = 0; b < bsh.size(); ++b) { auto bi = ix; bi[batch.size()] = i; bi[batch.size() + 1] = j; x += A[nq + 1 + b].at(bi); }
        s[j] = x; m = std::max(m, x);
      }
      double l = 0; for (int j = 0; j < K; ++j) { s[j] = std::exp(s[j] - m); l += s[j]; }
      for (int c = 0; c < D; ++c) {
        double a = 0;
        for (int j = 0; j < K; ++j) { auto vi = ix; vi[batch.size()] = j; vi[batch.size() + 1] = c; a += s[j] * A[nq].at(vi); }
        a /= l;
        double g = tof<T>(out[(r * Q + i) * D + c]);
        err = std::max(err, std::fabs(g - a)); ref = std::max(ref, std::fabs(a));
        if (std::isnan(g)) err = 1e30;
      }
    }
  }
  bool ok = err <= tol * std::max(1.0, ref);
  std::printf("%s %-28s max abs err %.3e (max |ref| %.3f, tol %.1e)\n", ok ? "ok  " : "FAIL", name, err, ref, tol);
  return ok;
}
// timeit runs the FFMA kernel (ffma) and the mma kernel (mma) on the same operands: median of 5 launches after
// one warm-up (CUDA events), and the largest difference between their outputs.
template <typename T, typename F, typename M>
void timeit(const char* name, int C, int Q, int K, std::vector<int> batch, std::vector<std::vector<int>> bsh, int mma_qt, F ffma, M mma) {
  auto with = [&](int a, int b) { auto s = batch; s.push_back(a); s.push_back(b); return s; };
  std::vector<Arr> A;
  A.push_back(make<T>(with(Q, C), with(Q, C), false));
  A.push_back(make<T>(with(K, C), with(K, C), false));
  A.push_back(make<T>(with(K, C), with(K, C), false));
  for (size_t i = 0; i < bsh.size(); ++i) A.push_back(make<float>(bsh[i], with(Q, K), i == 0 && bsh.size() > 1));
  const float scale = 1.0f / std::sqrt((float)C);
  float* dscale; cudaMalloc(&dscale, 4); cudaMemcpy(dscale, &scale, 4, cudaMemcpyHostToDevice);
  int64_t rows = 1; for (int d : batch) rows *= d;
  const size_t n = rows * Q * C;
  T *o1, *o2; cudaMalloc(&o1, n * sizeof(T)); cudaMalloc(&o2, n * sizeof(T));
  cudaEvent_t e0, e1; cudaEventCreate(&e0); cudaEventCreate(&e1);
  auto med = [&](auto launch, T* o, int qt) {
    const int blocks = (int)(rows * ((Q + qt - 1) / qt));
    launch(A, dscale, (void*)o, blocks);
    std::vector<float> ms;
    for (int i = 0; i < 5; ++i) {
      cudaEventRecord(e0); launch(A, dscale, (void*)o, blocks); cudaEventRecord(e1); cudaEventSynchronize(e1);
      float t = 0; cudaEventElapsedTime(&t, e0, e1); ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    return ms[2];
  };
  const float tf = med(ffma, o1, 64), tm = med(mma, o2, mma_qt);
  cudaError_t e = cudaDeviceSynchronize();
  if (e != cudaSuccess) { std::printf("FAIL %s: %s\n", name, cudaGetErrorString(e)); std::exit(1); }
  std::vector<T> h1(n), h2(n);
  cudaMemcpy(h1.data(), o1, n * sizeof(T), cudaMemcpyDeviceToHost); cudaMemcpy(h2.data(), o2, n * sizeof(T), cudaMemcpyDeviceToHost);
  double diff = 0, ref = 0;
  for (size_t i = 0; i < n; ++i) {
    const double a = tof<T>(h1[i]), b = tof<T>(h2[i]);
    diff = std::max(diff, std::isnan(b) ? 1e30 : std::fabs(a - b)); ref = std::max(ref, std::fabs(a));
  }
  std::printf("time %-34s ffma %8.3f ms  mma %8.3f ms  (%.2fx)  max |ffma - mma| %.3e (max |ffma| %.3f)\n", name, tf, tm, tf / tm, diff, ref);
  for (auto& a : A) cudaFree(a.dev);
  cudaFree(dscale); cudaFree(o1); cudaFree(o2); cudaEventDestroy(e0); cudaEventDestroy(e1);
}
int main(int argc, char** argv) {
  bool ok = true;
  if (argc > 1 && std::string(argv[1]) == "time") {
    fast_fill = true;
)", stdout);
  for (size_t i = 0; i < timings.size(); ++i) {
    const auto& t = timings[i];
    std::string args = "(const " + std::string(t.type) + "*)A[0].dev, A[0].sh(), A[0].st(), A[0].nd(), ";
    for (int a = 1; a < 3 + (int)t.biases.size(); ++a) {
      const std::string ty = a < 3 ? t.type : "float", ix = std::to_string(a);
      args += "(const " + ty + "*)A[" + ix + "].dev, A[" + ix + "].sh(), A[" + ix + "].st(), A[" + ix + "].nd(), ";
    }
    args += "sc, (" + std::string(t.type) + "*)o";
    std::string batch = "{", bsh = "{";
    for (int d : t.batch) batch += std::to_string(d) + ",";
    batch += "}";
    for (auto& s : t.biases) {
      bsh += "{";
      for (int d : s) bsh += std::to_string(d) + ",";
      bsh += "},";
    }
    bsh += "}";
    std::printf("    timeit<%s>(\"%s\", %d, %d, %d, %s, %s, %d,\n"
                "      [](std::vector<Arr>& A, float* sc, void* o, int blocks) { tffma%zu<<<blocks, %d>>>(%s); },\n"
                "      [](std::vector<Arr>& A, float* sc, void* o, int blocks) { tmma%zu<<<blocks, %d>>>(%s); });\n",
                t.type, t.name, t.C, t.Q, t.K, batch.c_str(), bsh.c_str(), 16 * t.warps, i, mlxs::kFlashQT, args.c_str(), i,
                32 * t.warps, args.c_str());
  }
  std::printf("    return 0;\n  }\n");
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    std::string args;
    int a = 0;
    auto arg = [&](const std::string& t) {
      args += "(const " + t + "*)A[" + std::to_string(a) + "].dev, A[" + std::to_string(a) + "].sh(), A[" +
              std::to_string(a) + "].st(), A[" + std::to_string(a) + "].nd(), ";
      ++a;
    };
    if (c.qk) arg(c.type), arg(c.type);
    arg(c.type);
    for (int b = 0; b < c.nb; ++b) arg("float");
    if (c.qk) args += "sc, ";
    args += "(" + std::string(c.type) + "*)o";
    std::string batch = "{", bsh = "{";
    for (int d : c.batch) batch += std::to_string(d) + ",";
    batch += "}";
    for (auto& s : c.biases) {
      bsh += "{";
      for (int d : s) bsh += std::to_string(d) + ",";
      bsh += "},";
    }
    bsh += "}";
    std::printf("  ok &= check<%s>(\"%s\", %s, %d, %d, %d, %d, %s, %s, %s, %g,\n"
                "    [](std::vector<Arr>& A, float* sc, void* o, int blocks) { kern%zu<<<blocks, %d>>>(%s); });\n",
                c.type, c.name, c.qk ? "true" : "false", c.C, c.D, c.Q, c.K, batch.c_str(), bsh.c_str(),
                c.transpose_q ? "true" : "false", c.tol, i, c.mma ? mlxs::kFlashMMAThreads : mlxs::kFlashQT, args.c_str());
  }
  std::printf("  std::printf(ok ? \"flash_check: all ok\\n\" : \"flash_check: FAILED\\n\");\n  return ok ? 0 : 1;\n}\n");
  return 0;
}
