//go:build cgo && !nomlx

// Routes MLX's fp32 GEMM to an optimized BLAS.
//
// The mlx-cpu wheel links libmlx against a bundled reference BLAS
// (mlx_cpu.libs/libblas-*.so), tens of times slower than OpenBLAS. libmlx
// calls cblas_sgemm through the dynamic linker's global scope, in which the
// executable comes first; defining cblas_sgemm here (ld exports it because
// libmlx references it) makes every MLX fp32 GEMM land in this forwarder.
// It picks, once:
//   OF3C_BLAS unset or "openblas": Debian's libopenblas.so.0 if loadable;
//   OF3C_BLAS=bundled: the wheel's reference BLAS (next definition in scope);
//   OF3C_BLAS=<path to a .so>: that library's cblas_sgemm;
// and falls back to the bundled one when the choice cannot be loaded.
//
// Debian 12's OpenBLAS 0.3.21 does not recognize recent Xeons and falls back
// to its SSE3 "Prescott" kernels; unless OPENBLAS_CORETYPE is set, it is set
// from the CPU's features before OpenBLAS is loaded.

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "fastcpu.h"
#include "shim.h"

namespace {

using sgemm_fn = void (*)(int, int, int, int, int, int, float, const float*,
                          int, const float*, int, float, float*, int);

sgemm_fn g_sgemm = nullptr;
std::string g_desc;
std::once_flag g_once;

const char* coretype_for_cpu() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return "Haswell";
  if (__builtin_cpu_supports("avx")) return "Sandybridge";
  return nullptr;
}

std::string lib_of(void* fn) {
  Dl_info info;
  if (fn && dladdr(fn, &info) && info.dli_fname) return info.dli_fname;
  return "";
}

void choose() {
  const char* want = std::getenv("OF3C_BLAS");
  std::string w = want ? want : "openblas";
  if (w != "bundled") {
    std::string path = (w == "openblas") ? "libopenblas.so.0" : w;
    if (w == "openblas" && !std::getenv("OPENBLAS_CORETYPE")) {
      if (const char* ct = coretype_for_cpu()) setenv("OPENBLAS_CORETYPE", ct, 0);
    }
    // RTLD_LOCAL: only this forwarder should see the library's symbols.
    if (void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL)) {
      if (auto f = reinterpret_cast<sgemm_fn>(dlsym(h, "cblas_sgemm"))) {
        g_sgemm = f;
        g_desc = lib_of(reinterpret_cast<void*>(f));
        using core_fn = char* (*)();
        if (auto core = reinterpret_cast<core_fn>(dlsym(h, "openblas_get_corename")))
          g_desc += std::string(" (OpenBLAS core ") + core() + ")";
        return;
      }
    }
  }
  g_sgemm = reinterpret_cast<sgemm_fn>(dlsym(RTLD_NEXT, "cblas_sgemm"));
  g_desc = lib_of(reinterpret_cast<void*>(g_sgemm));
}

}  // namespace

extern "C" {

void cblas_sgemm(int order, int ta, int tb, int m, int n, int k, float alpha,
                 const float* a, int lda, const float* b, int ldb, float beta,
                 float* c, int ldc) {
  std::call_once(g_once, choose);
  if (!g_sgemm) std::abort();  // no BLAS at all: libmlx could not have loaded
  // With beta = 0, C is MLX's fresh output buffer (or a reused one): huge
  // pages for its first touch (fastcpu.cc, advise_huge).
  if (beta == 0 && m > 0 && n > 0)
    mlxs_fast_advise_huge(c, (static_cast<size_t>(order == 101 ? m : n) - 1) * ldc * 4 +
                                 static_cast<size_t>(order == 101 ? n : m) * 4);
  g_sgemm(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

int mlxs_blas_library(char* buf, size_t cap) {
  try {
    std::call_once(g_once, choose);
    if (cap > 0) {
      size_t n = std::min(cap - 1, g_desc.size());
      std::memcpy(buf, g_desc.data(), n);
      buf[n] = 0;
    }
    return 0;
  } catch (...) {
    return 1;
  }
}

}  // extern "C"
