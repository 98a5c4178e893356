package mlx

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
)

// Without a CUDA toolkit (no CUDA_HOME/CUDA_PATH, no /usr/local/cuda), the
// pip install of mlx-cuda-13 (`make setup MLX=cuda`) still holds every
// header MLX's NVRTC JIT needs, in two places of site-packages: the CUDA
// runtime headers of the nvidia-cuda-runtime wheel (nvidia/cu13/include)
// and CCCL in the mlx-cuda-13 wheel (mlx/include/cccl). MLX 0.32.4 looks
// only at $CUDA_HOME/include, so wheelCUDAHome merges both into one folder
// under the user cache and fixCUDAHome points CUDA_HOME at it. The shared
// libraries need nothing: the wheel's libmlx.so carries an RPATH to the
// nvidia/*/lib folders next to it.

// loadedLibMLX is the path of the libmlx.so this process mapped ("" when
// none is mapped, e.g. without cgo).
func loadedLibMLX() string {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 6 && filepath.Base(fields[len(fields)-1]) == "libmlx.so" {
			return fields[len(fields)-1]
		}
	}
	return ""
}

// wheelIncludes returns the include folders of a pip-installed MLX CUDA
// build whose libmlx.so is at lib: the CUDA runtime headers and CCCL.
func wheelIncludes(lib string) ([]string, bool) {
	if lib == "" {
		return nil, false
	}
	if real, err := filepath.EvalSymlinks(lib); err == nil {
		lib = real
	}
	mlxDir := filepath.Dir(filepath.Dir(lib)) // site-packages/mlx
	site := filepath.Dir(mlxDir)
	cuda := filepath.Join(site, "nvidia", "cu13", "include")
	cccl := filepath.Join(mlxDir, "include", "cccl")
	if !exists(filepath.Join(cuda, "cuda_runtime.h")) || !exists(filepath.Join(cccl, "cuda", "std", "type_traits")) {
		return nil, false
	}
	return []string{cuda, cccl}, true
}

// mergeIncludes makes cacheDir/cudahome-<hash>/include with links to every
// entry of the given folders (the first one wins) and returns the home.
func mergeIncludes(cacheDir string, srcs []string) (string, bool) {
	sum := sha256.Sum256([]byte(strings.Join(srcs, "\x00")))
	dir := filepath.Join(cacheDir, "cudahome-"+hex.EncodeToString(sum[:6]))
	out := filepath.Join(dir, "include")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", false
	}
	for _, src := range srcs {
		entries, err := os.ReadDir(src)
		if err != nil {
			return "", false
		}
		for _, e := range entries {
			link := filepath.Join(out, e.Name())
			if _, err := os.Lstat(link); err == nil {
				continue
			}
			if err := os.Symlink(filepath.Join(src, e.Name()), link); err != nil && !os.IsExist(err) {
				return "", false
			}
		}
	}
	if !exists(filepath.Join(out, "cuda", "std", "type_traits")) || !exists(filepath.Join(out, "cuda_runtime.h")) {
		return "", false
	}
	return dir, true
}

// wheelCUDAHome is the merged CUDA_HOME for a wheel-only installation, when
// this process runs a pip-installed MLX CUDA build.
func wheelCUDAHome(lib, cacheDir string) (string, bool) {
	srcs, ok := wheelIncludes(lib)
	if !ok {
		return "", false
	}
	return mergeIncludes(cacheDir, srcs)
}
