package mlx

import (
	"os"
	"path/filepath"
)

// CUDA 13 moved CCCL (libcu++: <cuda/std/type_traits>, …) from
// $CUDA_HOME/include to $CUDA_HOME/include/cccl, while MLX 0.32.4's NVRTC JIT
// adds only $CUDA_HOME/include to the include path: every JIT kernel then
// fails to compile ("cannot open source file cuda/std/type_traits",
// docs/notes/GPU.md). fixCUDAHome detects that layout and points CUDA_HOME and
// CUDA_PATH at a folder in the user cache whose include/ holds links to
// both, before MLX starts. It never changes a layout that already works.

// cudaHomeFix is what fixCUDAHome did, for `of3c version` ("" when nothing).
var cudaHomeFix string

func fixCUDAHome() {
	home := os.Getenv("CUDA_HOME")
	if home == "" {
		home = os.Getenv("CUDA_PATH")
	}
	explicit := home != ""
	if home == "" {
		home = "/usr/local/cuda"
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	// No toolkit: the headers of the pip wheels, when this is one
	// (cudahome_wheel.go).
	if !explicit && !exists(filepath.Join(home, "include")) {
		if dir, ok := wheelCUDAHome(loadedLibMLX(), filepath.Join(cache, "of3c")); ok {
			os.Setenv("CUDA_HOME", dir)
			os.Setenv("CUDA_PATH", dir)
			cudaHomeFix = "CUDA_HOME=" + dir + " (no CUDA toolkit: the CUDA runtime headers and CCCL of the pip-installed wheels)"
		}
		return
	}
	if dir, ok := mergedCUDAHome(home, filepath.Join(cache, "of3c")); ok {
		os.Setenv("CUDA_HOME", dir)
		os.Setenv("CUDA_PATH", dir)
		cudaHomeFix = "CUDA_HOME=" + dir + " (merges " + home + "/include and its cccl/ for MLX's NVRTC JIT)"
	}
}

// mergedCUDAHome returns a folder under cacheDir whose include/ links every
// entry of home/include and home/include/cccl, when home needs it (CCCL only
// under include/cccl) and the folder could be made.
func mergedCUDAHome(home, cacheDir string) (string, bool) {
	inc := filepath.Join(home, "include")
	if exists(filepath.Join(inc, "cuda", "std", "type_traits")) ||
		!exists(filepath.Join(inc, "cccl", "cuda", "std", "type_traits")) {
		return "", false
	}
	return mergeIncludes(cacheDir, []string{inc, filepath.Join(inc, "cccl")})
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// CUDAHomeFix says how of3c adjusted CUDA_HOME for MLX's JIT in this
// process, or "" when it did not need to.
func CUDAHomeFix() string { return cudaHomeFix }
