// Compile check of the GPU kernel sources as MLX's fast::cuda_kernel wraps
// them (its build_kernel: MLX's default header, the kernel header, the
// kernel in namespace mlx::core::cu with __grid_constant__ shapes and
// strides) with NVRTC and MLX's options — no GPU needed. Catches what nvcc
// in flash_check does not: NVRTC's restrictions (no host headers) and the
// wrapping. Needs NVRTC (e.g. the nvidia-cuda-nvrtc 13 wheel), CUDA's
// headers with cccl, and MLX's JIT device headers
// (mlx/backend/cuda/device/{utils.cuh,complex.cuh,config.h} from MLX's
// repository: the wheel embeds them in libmlx):
//
//   N=<site>/nvidia/cu13
//   g++ -std=c++17 -Iinternal/mlx -I$N/include scripts/gpu/nvrtc_check.cc -L$N/lib -l:libnvrtc.so.13
//     -Wl,-rpath,$N/lib -o /tmp/nvrtc_check   (one line)
//   /tmp/nvrtc_check -I<mlx headers> -I$N/include -I$N/include/cccl
//
// It exits 1 when a variant does not compile.
#include <nvrtc.h>

#include <cstdio>
#include <string>
#include <vector>

#include "gpu_flash_mma_source.h"

int main(int argc, char** argv) {
  bool ok = true;
  for (int nb : {0, 1, 2, 4}) {
    for (const char* T : {"__nv_bfloat16", "__half"}) {
      for (int C : {8, 24, 32, 64}) {
        std::string s = "\n#include \"mlx/backend/cuda/device/utils.cuh\"\n\n#include <cooperative_groups.h>\n\n";
        s += mlxs::flash_mma_header();
        s += "namespace mlx::core::cu {\n\nnamespace cg = cooperative_groups;\n\n__global__ void of3c_flash_mma(\n";
        auto in = [&](const std::string& n, const std::string& t) {
          s += "    const " + t + "* " + n + ",\n    const __grid_constant__ Shape " + n +
               "_shape,\n    const __grid_constant__ Strides " + n + "_strides,\n    const __grid_constant__ int " + n +
               "_ndim,\n";
        };
        in("q", T), in("k", T), in("v", T);
        for (int i = 0; i < nb; ++i) in("b" + std::to_string(i), "float");
        s += "    const float* scale,\n    " + std::string(T) + "* out) {\n  using OutT = " + T +
             ";\n  constexpr int D = " + std::to_string(C) + ";\n  constexpr int C = " + std::to_string(C) + ";\n\n";
        s += mlxs::flash_mma_source(nb, mlxs::kFlashMMAWarps);
        s += "\n}\n\n} // namespace mlx::core::cu\n";
        nvrtcProgram prog;
        nvrtcCreateProgram(&prog, s.c_str(), "of3c_flash_mma.cu", 0, nullptr, nullptr);
        std::vector<const char*> args{"--device-as-default-execution-space", "--gpu-architecture=sm_90a"};
        for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
        const nvrtcResult r = nvrtcCompileProgram(prog, (int)args.size(), args.data());
        size_t n = 0;
        nvrtcGetProgramLogSize(prog, &n);
        std::string log(n, '\0');
        nvrtcGetProgramLog(prog, &log[0]);
        std::printf("%s mma nb=%d %s C=%d%s%s\n", r == NVRTC_SUCCESS ? "ok  " : "FAIL", nb, T, C,
                    r == NVRTC_SUCCESS ? "" : ": ", r == NVRTC_SUCCESS ? "" : log.c_str());
        ok &= r == NVRTC_SUCCESS;
        nvrtcDestroyProgram(&prog);
      }
    }
  }
  std::printf(ok ? "nvrtc_check: all ok\n" : "nvrtc_check: FAILED\n");
  return ok ? 0 : 1;
}
