package mlx

import (
	"crypto/sha256"
	"encoding/hex"
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
	if home == "" {
		home = "/usr/local/cuda"
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
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
	sum := sha256.Sum256([]byte(home))
	dir := filepath.Join(cacheDir, "cudahome-"+hex.EncodeToString(sum[:6]))
	out := filepath.Join(dir, "include")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", false
	}
	for _, src := range []string{inc, filepath.Join(inc, "cccl")} {
		entries, err := os.ReadDir(src)
		if err != nil {
			return "", false
		}
		for _, e := range entries {
			link := filepath.Join(out, e.Name())
			if _, err := os.Lstat(link); err == nil {
				continue // first one wins: include/ before include/cccl
			}
			if err := os.Symlink(filepath.Join(src, e.Name()), link); err != nil && !os.IsExist(err) {
				return "", false
			}
		}
	}
	if !exists(filepath.Join(out, "cuda", "std", "type_traits")) {
		return "", false
	}
	return dir, true
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// CUDAHomeFix says how of3c adjusted CUDA_HOME for MLX's JIT in this
// process, or "" when it did not need to.
func CUDAHomeFix() string { return cudaHomeFix }
