// Standalone check of the LayerNorm kernel's CUDA source
// (internal/mlx/gpu_layer_norm_source.h) without MLX, like flash_check.cc:
// this program writes a .cu file that wraps the same source in kernels with
// the parameter list MLX's fast::cuda_kernel generates (x with its shape and
// ndim, then weight, bias, eps and the output) and a host test against a
// float64 reference of LayerNorm on the input as rounded to its dtype; with
// `time` it times the kernel on the OpenFold3 pair and single shapes and
// prints the bandwidth it reaches. On the GPU machine:
//
//   g++ -std=c++17 -Iinternal/mlx scripts/gpu/norm_check.cc -o /tmp/norm_gen && /tmp/norm_gen > /tmp/nc.cu
//   nvcc -std=c++17 -arch=sm_90 -O2 /tmp/nc.cu -o /tmp/nc && /tmp/nc && /tmp/nc time
//
// It exits 1 when any case is off by more than its tolerance (half an ulp of
// the output type plus f32 rounding).
#include <cstdio>
#include <string>
#include <vector>

#include "gpu_layer_norm_source.h"

struct Variant {
  const char* type;  // x and out
  bool w, b;
  int vpt;
  bool pair;
  int rows;  // per warp
};

int main() {
  // Kernels by (type, weight, bias, VPT, PAIR, ROWS): the host picks VPT and ROWS as gpu_kernels.cc does;
  // `time` also runs other ROWS on the pair shapes.
  std::vector<Variant> vs;
  for (const char* t : {"__nv_bfloat16", "__half", "float"})
    for (int v : {2, 4, 8, 12, 16, 24, 32})
      for (int pair = 0; pair < 2; ++pair) {
        const int r = mlxs::layer_norm_rows(v);
        vs.push_back({t, true, true, v, pair == 1, r});
        if (v == 4) vs.push_back({t, true, false, v, pair == 1, r}), vs.push_back({t, false, false, v, pair == 1, r});
      }
  for (const char* t : {"__nv_bfloat16", "float"})
    for (int r : {1, 2}) vs.push_back({t, true, true, 4, true, r});
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
)", stdout);
  std::fputs(mlxs::layer_norm_header(), stdout);
  for (size_t i = 0; i < vs.size(); ++i) {
    const auto& v = vs[i];
    std::printf("__global__ void ln%zu(const %s* x, const __grid_constant__ Shape x_shape, const __grid_constant__ int x_ndim, %s%s"
                "const float* eps, %s* out) {\n  using T = %s;\n  constexpr int VPT = %d;\n  constexpr bool PAIR = %s;\n"
                "  constexpr int ROWS = %d;\n%s\n}\n",
                i, v.type, v.w ? "const float* weight, " : "", v.b ? "const float* bias, " : "", v.type, v.type, v.vpt,
                v.pair ? "true" : "false", v.rows, mlxs::layer_norm_source(v.w, v.b).c_str());
  }
  std::fputs(R"(
template <typename T> T cvt(float x) { return (T)x; }
template <> __nv_bfloat16 cvt(float x) { return __float2bfloat16(x); }
template <> __half cvt(float x) { return __float2half(x); }
template <typename T> float tof(T x) { return (float)x; }
template <> float tof(__nv_bfloat16 x) { return __bfloat162float(x); }
template <> float tof(__half x) { return __half2float(x); }
template <typename T> double ulp() { return 1.0 / 128; }  // bf16: 8 significant bits
template <> double ulp<__half>() { return 1.0 / 1024; }
template <> double ulp<float>() { return 1.0 / 8388608; }
using Launch = void (*)(const void*, Shape, int, const float*, const float*, const float*, void*, int);
int vptFor(int n) { for (int v : {2, 4, 8, 12, 16, 24, 32}) if (32 * v >= n) return v; return 0; }
int rowsFor(int vpt) { return vpt <= 4 ? 4 : vpt <= 8 ? 2 : 1; }  // mlxs::layer_norm_rows
// check runs the kernel on rows × n values (x offset by `shift` elements from an aligned base, so odd shifts
// take the unpaired path) and compares with the float64 reference.
template <typename T>
bool check(const char* name, Launch f, int per_warp, long rows, int n, bool w, bool b, int shift, bool timing) {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<T> hx(rows * n + shift);
  for (auto& e : hx) e = cvt<T>(nd(rng) * 3.0f + 0.5f);
  std::vector<float> hw(n), hb(n);
  for (auto& e : hw) e = 1.0f + 0.2f * nd(rng);
  for (auto& e : hb) e = 0.1f * nd(rng);
  T *dx, *dy; float *dw, *db, *de; const float eps = 1e-5f;
  cudaMalloc(&dx, hx.size() * sizeof(T)); cudaMalloc(&dy, (rows * n + shift) * sizeof(T));
  cudaMalloc(&dw, n * 4); cudaMalloc(&db, n * 4); cudaMalloc(&de, 4);
  cudaMemcpy(dx, hx.data(), hx.size() * sizeof(T), cudaMemcpyHostToDevice);
  cudaMemcpy(dw, hw.data(), n * 4, cudaMemcpyHostToDevice); cudaMemcpy(db, hb.data(), n * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(de, &eps, 4, cudaMemcpyHostToDevice);
  Shape s{}; s.v[0] = (int)rows; s.v[1] = n;
  const int blocks = (int)(((rows + per_warp - 1) / per_warp * 32 + 255) / 256);
  f(dx + shift, s, 2, w ? dw : nullptr, b ? db : nullptr, de, dy + shift, blocks);
  cudaError_t e = cudaDeviceSynchronize();
  if (e != cudaSuccess) { std::printf("FAIL %s: %s\n", name, cudaGetErrorString(e)); std::exit(1); }
  if (timing) {
    cudaEvent_t e0, e1; cudaEventCreate(&e0); cudaEventCreate(&e1);
    std::vector<float> ms;
    for (int i = 0; i < 7; ++i) {
      cudaEventRecord(e0); f(dx + shift, s, 2, w ? dw : nullptr, b ? db : nullptr, de, dy + shift, blocks); cudaEventRecord(e1);
      cudaEventSynchronize(e1); float t = 0; cudaEventElapsedTime(&t, e0, e1); ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    const double bytes = 2.0 * rows * n * sizeof(T);
    std::printf("time %-36s %8.3f ms  %7.1f GB/s (read x + write y)\n", name, ms[3], bytes / ms[3] / 1e6);
  }
  std::vector<T> hy(rows * n + shift);
  cudaMemcpy(hy.data(), dy, hy.size() * sizeof(T), cudaMemcpyDeviceToHost);
  double err = 0;
  const long checked = std::min(rows, 4096L);
  for (long r = 0; r < checked; ++r) {
    const long rr = r * (rows / checked);
    double mean = 0, var = 0;
    for (int k = 0; k < n; ++k) mean += tof(hx[shift + rr * n + k]);
    mean /= n;
    for (int k = 0; k < n; ++k) { const double d = tof(hx[shift + rr * n + k]) - mean; var += d * d; }
    var /= n;
    for (int k = 0; k < n; ++k) {
      double y = (tof(hx[shift + rr * n + k]) - mean) / std::sqrt(var + eps);
      if (w) y *= hw[k];
      if (b) y += hb[k];
      const double g = tof(hy[shift + rr * n + k]);
      const double d = std::isnan(g) ? 1e30 : std::fabs(g - y) / std::max(1.0, std::fabs(y));
      err = std::max(err, d);
    }
  }
  const double tol = ulp<T>() * 0.5 + 1e-5;
  const bool ok = err <= tol;
  if (!timing) std::printf("%s %-36s max rel err %.3e (tol %.1e)\n", ok ? "ok  " : "FAIL", name, err, tol);
  cudaFree(dx); cudaFree(dy); cudaFree(dw); cudaFree(db); cudaFree(de);
  return ok;
}
)", stdout);
  // One launcher per variant, then a table to find them by (type, w, b, vpt, pair).
  for (size_t i = 0; i < vs.size(); ++i) {
    const auto& v = vs[i];
    std::printf("void launch%zu(const void* x, Shape s, int nd, const float* w, const float* b, const float* e, void* y, int blocks) {\n"
                "  ln%zu<<<blocks, 256>>>((const %s*)x, s, nd, %s%se, (%s*)y);\n}\n",
                i, i, v.type, v.w ? "w, " : "", v.b ? "b, " : "", v.type);
  }
  std::printf("struct Entry { const char* type; bool w, b; int vpt; bool pair; int rows; Launch f; };\nstatic const Entry table[] = {\n");
  for (size_t i = 0; i < vs.size(); ++i)
    std::printf("  {\"%s\", %s, %s, %d, %s, %d, launch%zu},\n", vs[i].type, vs[i].w ? "true" : "false", vs[i].b ? "true" : "false",
                vs[i].vpt, vs[i].pair ? "true" : "false", vs[i].rows, i);
  std::fputs(R"(};
Launch find(const char* type, bool w, bool b, int n, int per_warp) {
  for (const auto& e : table)
    if (std::string(e.type) == type && e.w == w && e.b == b && e.vpt == vptFor(n) && e.pair == (n % 2 == 0) && e.rows == per_warp)
      return e.f;
  std::printf("no kernel for %s n=%d rows/warp %d\n", type, n, per_warp); std::exit(1);
}
// per_warp 0: the rows per warp gpu_kernels.cc picks.
template <typename T>
bool run(const char* type, const char* tname, long rows, int n, bool w, bool b, int shift, bool timing = false, int per_warp = 0) {
  if (per_warp == 0) per_warp = rowsFor(vptFor(n));
  char name[128];
  std::snprintf(name, sizeof name, "%s rows %ld n %d%s%s%s, %d/warp", tname, rows, n, w ? " w" : "", b ? " b" : "", shift ? " unaligned" : "",
                per_warp);
  return check<T>(name, find(type, w, b, n, per_warp), per_warp, rows, n, w, b, shift, timing);
}
int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "time") {
    // OpenFold3's pair (c_z 128) at N = 1024 and 2048, the single (c_s 384) and MSA (c_m 64) rows.
    run<__nv_bfloat16>("__nv_bfloat16", "bf16", 1024L * 1024, 128, true, true, 0, true);
    run<__nv_bfloat16>("__nv_bfloat16", "bf16", 1024L * 1024, 128, true, true, 0, true, 1);
    run<__nv_bfloat16>("__nv_bfloat16", "bf16", 1024L * 1024, 128, true, true, 0, true, 2);
    run<__nv_bfloat16>("__nv_bfloat16", "bf16", 2048L * 2048, 128, true, true, 0, true);
    run<__nv_bfloat16>("__nv_bfloat16", "bf16", 2048L * 2048, 128, true, true, 0, true, 1);
    run<float>("float", "f32", 1024L * 1024, 128, true, true, 0, true, 1);
    run<__half>("__half", "f16", 1024L * 1024, 128, true, true, 0, true);
    run<float>("float", "f32", 1024L * 1024, 128, true, true, 0, true);
    run<__nv_bfloat16>("__nv_bfloat16", "bf16", 1024L * 4096, 64, true, true, 0, true);
    run<__nv_bfloat16>("__nv_bfloat16", "bf16", 4096, 384, true, true, 0, true);
    return 0;
  }
  bool ok = true;
  for (int n : {128, 384, 64, 2, 1, 33, 127, 250, 1000, 1024}) {
    ok &= run<__nv_bfloat16>("__nv_bfloat16", "bf16", 301, n, true, true, 0);
    ok &= run<__half>("__half", "f16", 67, n, true, true, 0);
    ok &= run<float>("float", "f32", 45, n, true, true, 0);
  }
  ok &= run<__nv_bfloat16>("__nv_bfloat16", "bf16", 301, 128, true, false, 0);
  ok &= run<__half>("__half", "f16", 301, 128, false, false, 0);
  ok &= run<__nv_bfloat16>("__nv_bfloat16", "bf16", 17, 128, true, true, 1);  // misaligned rows: unpaired loads
  ok &= run<__nv_bfloat16>("__nv_bfloat16", "bf16", 301, 128, true, true, 0, false, 1);  // other rows per warp
  ok &= run<float>("float", "f32", 45, 128, true, true, 0, false, 2);
  ok &= run<float>("float", "f32", 17, 64, true, true, 1);
  std::printf(ok ? "all ok\n" : "SOME FAILED\n");
  return ok ? 0 : 1;
}
)", stdout);
}
