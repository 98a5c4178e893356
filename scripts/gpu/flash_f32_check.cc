// Standalone check and timing of the register-tiled f32 flash attention
// kernel (internal/mlx/gpu_flash_f32_source.h) against the one-thread-per-
// query kernel (gpu_flash_source.h), without MLX: this program writes a .cu
// that wraps both sources in kernels with the parameter list MLX's
// fast::cuda_kernel generates (ptr, name_shape, name_strides, name_ndim per
// input, then the output), a correctness test of the new kernel against a
// float64 CPU reference (strided/transposed q, k, v, broadcast mask + pair
// bias, a bias with a non-unit key stride, head sizes 8..64 and odd ones,
// Q and K off the tiles, Q = 1, a row of −inf logits giving NaN) and, with
// `time` as its argument, CUDA-event timings of old and new on triangle-
// attention and attention-pair-bias shapes. On the GPU machine:
//
//   bash scripts/gpu/flash_bench.sh kernel32
//
// It exits 1 when any case is off by more than its tolerance.
#include <cstdio>
#include <string>
#include <vector>

#include "gpu_flash_f32_source.h"
#include "gpu_flash_source.h"

struct Case {
  const char* name;
  int nb, C, D, Q, K;
  std::vector<int> batch;
  std::vector<std::vector<int>> biases;  // storage shapes (numpy broadcast into [batch.., Q, K])
  const char* transpose;                 // of q, k, v, the last bias: "qkvb" letters
  bool inf_row;                          // bias 0's first row all −inf: that row must be NaN
};

struct Timed {
  const char* name;
  int nb, C, D, N, H;
  bool tri;  // batch [N, H], mask [N,1,1,N] + pair bias [1,H,N,N]; else batch [1, H], bias [1,H,N,N]
};

static std::string params(int nb) {
  std::string p;
  auto in = [&](const std::string& n) { p += "const float* " + n + ", const __grid_constant__ Shape " + n + "_shape, const __grid_constant__ Strides " + n + "_strides, int " + n + "_ndim, "; };
  in("q"), in("k"), in("v");
  for (int b = 0; b < nb; ++b) in("b" + std::to_string(b));
  return p + "const float* scale, float* out";
}

static std::string args(int nb) {
  std::string a;
  for (int i = 0; i < 3 + nb; ++i) {
    const std::string s = "A[" + std::to_string(i) + "]";
    a += s + ".dev, " + s + ".sh(), " + s + ".st(), " + s + ".nd(), ";
  }
  return a + "sc, o";
}

static void kernels(const std::string& tag, int nb, int C, int D) {
  std::printf("__global__ void pf_%s(%s) {\n  constexpr int D = %d;\n  constexpr int C = %d;\n  using OutT = float;\n%s\n}\n",
              tag.c_str(), params(nb).c_str(), D, C, mlxs::flash_attention_f32_source(nb, 0, true).c_str());
  std::printf("__global__ void new_%s(%s) {\n  constexpr int D = %d;\n  constexpr int C = %d;\n  using OutT = float;\n%s\n}\n",
              tag.c_str(), params(nb).c_str(), D, C, mlxs::flash_attention_f32_source(nb).c_str());
  std::printf("__global__ void old_%s(%s) {\n  constexpr int D = %d;\n  constexpr int C = %d;\n  using OutT = float;\n%s\n}\n",
              tag.c_str(), params(nb).c_str(), D, C, mlxs::flash_attention_source(nb, true).c_str());
}

static std::string ints(const std::vector<int>& v) {
  std::string s = "{";
  for (int d : v) s += std::to_string(d) + ",";
  return s + "}";
}

int main() {
  std::vector<Case> cases = {
      {"tri C32 mask+pair", 2, 32, 32, 100, 100, {3, 4}, {{3, 1, 1, 100}, {1, 4, 100, 100}}, "", false},
      {"C8 no bias", 0, 8, 8, 70, 33, {2}, {}, "", false},
      {"C16 Q1", 1, 16, 16, 1, 300, {7}, {{7, 1, 300}}, "", false},
      {"C24 pair 16 heads", 1, 24, 24, 130, 130, {1, 16}, {{1, 16, 130, 130}}, "", false},
      {"C48 D16 3 biases", 3, 48, 16, 50, 200, {2, 2}, {{2, 1, 1, 200}, {1, 2, 50, 200}, {50, 200}}, "", false},
      {"C48 mask+pair", 2, 48, 48, 129, 129, {2, 2}, {{2, 1, 1, 129}, {1, 2, 129, 129}}, "", false},
      {"C64 transposed q", 1, 64, 64, 65, 97, {3}, {{3, 1, 97}}, "q", false},
      {"C64 mask+pair K off tile", 2, 64, 64, 70, 77, {2, 2}, {{2, 1, 1, 77}, {1, 2, 70, 77}}, "", false},
      {"C32 transposed k v bias", 2, 32, 32, 90, 75, {2, 3}, {{2, 1, 1, 75}, {1, 3, 90, 75}}, "kvb", false},
      {"C12 D20", 1, 12, 20, 66, 40, {3}, {{3, 66, 40}}, "", false},
      {"C5 D7 transposed q", 1, 5, 7, 33, 65, {2}, {{2, 33, 65}}, "q", false},
      {"C32 -inf row gives NaN", 1, 32, 32, 20, 70, {2}, {{20, 70}}, "", true},
  };
  std::vector<Timed> timed = {
      {"tri N=1024 H=4 C=D=32 mask+pair", 2, 32, 32, 1024, 4, true},
      {"tri N=2048 H=4 C=D=32 mask+pair", 2, 32, 32, 2048, 4, true},
      {"apb N=1024 H=16 C=D=24 pair", 1, 24, 24, 1024, 16, false},
      {"apb N=2048 H=16 C=D=24 pair", 1, 24, 24, 2048, 16, false},
      {"apb N=4096 H=16 C=D=24 pair", 1, 24, 24, 4096, 16, false},
  };
  std::fputs(R"(#include <cuda_runtime.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>
struct Shape { int32_t v[8]; __host__ __device__ int32_t operator[](int i) const { return v[i]; } };
struct Strides { int64_t v[8]; __host__ __device__ int64_t operator[](int i) const { return v[i]; } };
)", stdout);
  for (size_t i = 0; i < cases.size(); ++i) kernels("c" + std::to_string(i), cases[i].nb, cases[i].C, cases[i].D);
  for (size_t i = 0; i < timed.size(); ++i) kernels("t" + std::to_string(i), timed[i].nb, timed[i].C, timed[i].D);
  std::fputs(R"CU(
struct Arr {  // a view [full..] of storage (contiguous, possibly with its last two axes transposed)
  std::vector<int> full; std::vector<int64_t> strides; std::vector<float> data; float* dev = nullptr;
  Shape sh() const { Shape s{}; for (size_t i = 0; i < full.size(); ++i) s.v[i] = full[i]; return s; }
  Strides st() const { Strides s{}; for (size_t i = 0; i < full.size(); ++i) s.v[i] = strides[i]; return s; }
  int nd() const { return (int)full.size(); }
  float at(const std::vector<int>& ix) const { int64_t o = 0; for (size_t i = 0; i < ix.size(); ++i) o += ix[i] * strides[i]; return data[o]; }
};
static std::mt19937 rng(7);
static void place(Arr& a, std::vector<int> storage, bool transpose) {  // strides of storage as a view of a.full
  if (transpose) std::swap(storage[storage.size() - 1], storage[storage.size() - 2]);
  std::vector<int64_t> cs(storage.size()); int64_t s = 1;
  for (int i = (int)storage.size() - 1; i >= 0; --i) { cs[i] = s; s *= storage[i]; }
  if (transpose) { std::swap(cs[cs.size() - 1], cs[cs.size() - 2]); std::swap(storage[storage.size() - 1], storage[storage.size() - 2]); }
  a.strides.assign(a.full.size(), 0);
  int off = (int)a.full.size() - (int)storage.size();
  for (size_t i = 0; i < storage.size(); ++i) a.strides[off + i] = (storage[i] == 1 && a.full[off + i] != 1) ? 0 : cs[i];
}
Arr make(std::vector<int> storage, std::vector<int> full, bool mask, bool transpose, bool inf_row) {
  Arr a; a.full = full;
  size_t n = 1; for (int d : storage) n *= d;
  std::normal_distribution<float> nd(0.f, 1.f);
  a.data.resize(n);
  for (auto& x : a.data) x = mask ? ((rng() % 5 == 0) ? -1e9f : 0.f) : nd(rng);
  place(a, storage, transpose);
  if (inf_row) {  // logits row (batch 0.., query 0) all -inf
    std::vector<int> ix(full.size(), 0);
    for (int j = 0; j < full.back(); ++j) { ix.back() = j; int64_t o = 0; for (size_t i = 0; i < ix.size(); ++i) o += ix[i] * a.strides[i]; a.data[o] = -INFINITY; }
  }
  cudaMalloc(&a.dev, n * 4); cudaMemcpy(a.dev, a.data.data(), n * 4, cudaMemcpyHostToDevice);
  return a;
}
template <typename L>
bool check(const char* name, int C, int D, int Q, int K, std::vector<int> batch, std::vector<std::vector<int>> bsh,
           const char* tr, bool inf_row, L launch) {
  auto with = [&](int a, int b) { auto s = batch; s.push_back(a); s.push_back(b); return s; };
  auto has = [&](char c) { return std::strchr(tr, c) != nullptr; };
  std::vector<Arr> A;
  A.push_back(make(with(Q, C), with(Q, C), false, has('q'), false));
  A.push_back(make(with(K, C), with(K, C), false, has('k'), false));
  A.push_back(make(with(K, D), with(K, D), false, has('v'), false));
  for (size_t i = 0; i < bsh.size(); ++i)
    A.push_back(make(bsh[i], with(Q, K), i == 0 && bsh.size() > 1, has('b') && i + 1 == bsh.size(), inf_row && i == 0));
  const float scale = 1.0f / std::sqrt((float)C);
  float* dscale; cudaMalloc(&dscale, 4); cudaMemcpy(dscale, &scale, 4, cudaMemcpyHostToDevice);
  int64_t rows = 1; for (int d : batch) rows *= d;
  float* dout; cudaMalloc(&dout, rows * Q * D * 4); cudaMemset(dout, 0xff, rows * Q * D * 4);
  launch(A, dscale, dout, (int)(rows * ((Q + 63) / 64)));
  cudaError_t e = cudaDeviceSynchronize();
  if (e != cudaSuccess) { std::printf("FAIL %s: %s\n", name, cudaGetErrorString(e)); return false; }
  std::vector<float> out(rows * Q * D); cudaMemcpy(out.data(), dout, out.size() * 4, cudaMemcpyDeviceToHost);
  double err = 0, ref = 0; int nan_rows = 0, bad_nan = 0;
  std::vector<int> ix(batch.size() + 2);
  std::vector<double> s(K);
  const size_t nbat = batch.size();
  for (int64_t r = 0; r < rows; ++r) {
    int64_t t = r; for (int d = (int)nbat - 1; d >= 0; --d) { ix[d] = t % batch[d]; t /= batch[d]; }
    for (int i = 0; i < Q; ++i) {
      double m = -INFINITY;
      for (int j = 0; j < K; ++j) {
        double x = 0;
        auto qi = ix, ki = ix, bi = ix; qi[nbat] = i; ki[nbat] = j; bi[nbat] = i; bi[nbat + 1] = j;
        for (int c = 0; c < C; ++c) { qi[nbat + 1] = c; ki[nbat + 1] = c; x += (double)(A[0].at(qi) * scale) * A[1].at(ki); }
        for (size_t b = 0; b < bsh.size(); ++b) x += A[3 + b].at(bi);
        s[j] = x; m = std::max(m, x);
      }
      if (m == -INFINITY) {  // softmax of a row of -inf: NaN
        ++nan_rows;
        for (int c = 0; c < D; ++c) if (!std::isnan(out[(r * Q + i) * D + c])) ++bad_nan;
        continue;
      }
      double l = 0; for (int j = 0; j < K; ++j) { s[j] = std::exp(s[j] - m); l += s[j]; }
      for (int c = 0; c < D; ++c) {
        double a = 0;
        auto vi = ix; vi[nbat + 1] = c;
        for (int j = 0; j < K; ++j) { vi[nbat] = j; a += s[j] * A[2].at(vi); }
        a /= l;
        double g = out[(r * Q + i) * D + c];
        err = std::max(err, std::fabs(g - a)); ref = std::max(ref, std::fabs(a));
        if (std::isnan(g)) err = 1e30;
      }
    }
  }
  const double tol = 2e-5;
  bool ok = err <= tol * std::max(1.0, ref) && bad_nan == 0 && (!inf_row || nan_rows > 0);
  std::printf("%s %-32s max abs err %.3e (max |ref| %.3f, tol %.1e)", ok ? "ok  " : "FAIL", name, err, ref, tol);
  if (inf_row) std::printf(", %d -inf rows, %d non-NaN outputs in them", nan_rows, bad_nan);
  std::printf("\n");
  for (auto& a : A) cudaFree(a.dev);
  cudaFree(dscale); cudaFree(dout);
  return ok;
}

// Timing: operands filled on the device (a hash), contiguous [batch.., N, C].
__global__ void fill(float* p, int64_t n, uint32_t seed, int mask) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    uint32_t h = (uint32_t)i * 2654435761u ^ seed; h ^= h >> 15; h *= 2246822519u; h ^= h >> 13; h *= 3266489917u; h ^= h >> 16;
    p[i] = mask ? ((h % 16 == 0) ? -1e9f : 0.0f) : (h * (2.0f / 4294967296.0f) - 1.0f);
  }
}
__global__ void maxdiff(const float* a, const float* b, int64_t n, unsigned* res) {
  float m = 0;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float d = fabsf(a[i] - b[i]); m = (d != d) ? INFINITY : fmaxf(m, d);
  }
  atomicMax(res, __float_as_uint(m));
}
Arr dev(std::vector<int> storage, std::vector<int> full, bool mask, uint32_t seed) {
  Arr a; a.full = full; place(a, storage, false);
  int64_t n = 1; for (int d : storage) n *= d;
  cudaMalloc(&a.dev, n * 4); fill<<<4096, 256>>>(a.dev, n, seed, mask);
  return a;
}
template <typename LO, typename LN>
void time_one(const char* name, int C, int D, int N, int H, bool tri, int nb, LO old_k, LN new_k) {
  std::vector<int> batch = tri ? std::vector<int>{N, H} : std::vector<int>{1, H};
  auto with = [&](int a, int b) { auto s = batch; s.push_back(a); s.push_back(b); return s; };
  std::vector<Arr> A{dev(with(N, C), with(N, C), false, 1), dev(with(N, C), with(N, C), false, 2), dev(with(N, D), with(N, D), false, 3)};
  if (tri) A.push_back(dev({N, 1, 1, N}, with(N, N), true, 4));
  A.push_back(dev({1, H, N, N}, with(N, N), false, 5));
  const float scale = 1.0f / std::sqrt((float)C);
  float* sc; cudaMalloc(&sc, 4); cudaMemcpy(sc, &scale, 4, cudaMemcpyHostToDevice);
  int64_t rows = 1; for (int d : batch) rows *= d;
  const int64_t n_out = rows * N * D;
  float *o1, *o2; cudaMalloc(&o1, n_out * 4); cudaMalloc(&o2, n_out * 4);
  const int blocks = (int)(rows * ((N + 63) / 64));
  const double flop = 2.0 * (C + D) * (double)rows * N * N;
  cudaEvent_t e0, e1; cudaEventCreate(&e0); cudaEventCreate(&e1);
  float ms[2];
  for (int w = 0; w < 2; ++w) {
    float* o = w ? o2 : o1;
    if (w) new_k(A, sc, o, blocks); else old_k(A, sc, o, blocks);  // warm-up
    const int reps = 3;
    cudaEventRecord(e0);
    for (int i = 0; i < reps; ++i) { if (w) new_k(A, sc, o, blocks); else old_k(A, sc, o, blocks); }
    cudaEventRecord(e1); cudaEventSynchronize(e1);
    cudaEventElapsedTime(&ms[w], e0, e1); ms[w] /= reps;
  }
  unsigned* dm; cudaMallocManaged(&dm, 4); *dm = 0;
  maxdiff<<<4096, 256>>>(o1, o2, n_out, dm);
  cudaError_t e = cudaDeviceSynchronize();
  std::printf("%-40s old %9.3f ms %6.2f TFLOP/s | new %9.3f ms %6.2f TFLOP/s | %.2fx | max |old-new| %.2e %s\n", name,
              ms[0], flop / ms[0] * 1e-9, ms[1], flop / ms[1] * 1e-9, ms[0] / ms[1], [&] { float f; std::memcpy(&f, dm, 4); return (double)f; }(),
              e == cudaSuccess ? "" : cudaGetErrorString(e));
  for (auto& a : A) cudaFree(a.dev);
  cudaFree(sc); cudaFree(o1); cudaFree(o2); cudaFree(dm);
}
int main(int argc, char** argv) {
  bool ok = true;
  const bool timing = argc > 1 && std::strcmp(argv[1], "time") == 0;
  if (!timing) {
)CU", stdout);
  for (const char* v : {"new", "pf"})  // pf: loading the next tile during this one
    for (size_t i = 0; i < cases.size(); ++i) {
      const auto& c = cases[i];
      std::printf("  ok &= check(\"%s %s\", %d, %d, %d, %d, %s, {", v, c.name, c.C, c.D, c.Q, c.K, ints(c.batch).c_str());
      for (auto& s : c.biases) std::printf("%s,", ints(s).c_str());
      std::printf("}, \"%s\", %s,\n    [](std::vector<Arr>& A, float* sc, float* o, int blocks) { %s_c%zu<<<blocks, %d>>>(%s); });\n",
                  c.transpose, c.inf_row ? "true" : "false", v, i, mlxs::kFlashF32Threads, args(c.nb).c_str());
    }
  std::printf("  std::printf(ok ? \"flash_f32_check: all ok\\n\" : \"flash_f32_check: FAILED\\n\");\n  } else {\n");
  for (size_t i = 0; i < timed.size(); ++i) {
    const auto& t = timed[i];
      for (const char* v : {"new", "pf"})
      std::printf("  time_one(\"%s %s\", %d, %d, %d, %d, %s, %d,\n"
                  "    [](std::vector<Arr>& A, float* sc, float* o, int blocks) { old_t%zu<<<blocks, %d>>>(%s); },\n"
                  "    [](std::vector<Arr>& A, float* sc, float* o, int blocks) { %s_t%zu<<<blocks, %d>>>(%s); });\n",
                  v, t.name, t.C, t.D, t.N, t.H, t.tri ? "true" : "false", t.nb, i, mlxs::kFlashQT, args(t.nb).c_str(), v, i,
                  mlxs::kFlashF32Threads, args(t.nb).c_str());
  }
  std::printf("  }\n  return ok ? 0 : 1;\n}\n");
  return 0;
}
