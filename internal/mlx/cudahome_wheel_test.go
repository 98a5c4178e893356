package mlx

import (
	"os"
	"path/filepath"
	"testing"
)

// A pip layout like mlx-cuda-13 + nvidia-cuda-runtime's: the merged home has
// the runtime headers and CCCL under one include/.
func TestWheelCUDAHome(t *testing.T) {
	site := t.TempDir()
	write := func(p string) {
		t.Helper()
		p = filepath.Join(site, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("mlx/lib/libmlx.so")
	lib := filepath.Join(site, "mlx", "lib", "libmlx.so")
	cache := t.TempDir()
	if _, ok := wheelCUDAHome(lib, cache); ok {
		t.Fatal("merged without headers")
	}
	write("nvidia/cu13/include/cuda_runtime.h")
	if _, ok := wheelCUDAHome(lib, cache); ok {
		t.Fatal("merged without CCCL")
	}
	write("mlx/include/cccl/cuda/std/type_traits")
	write("mlx/include/cccl/thrust/version.h")
	dir, ok := wheelCUDAHome(lib, cache)
	if !ok {
		t.Fatal("wheel layout not merged")
	}
	for _, p := range []string{"cuda_runtime.h", "cuda/std/type_traits", "thrust/version.h"} {
		if !exists(filepath.Join(dir, "include", p)) {
			t.Errorf("merged include lacks %s", p)
		}
	}
	// Through a symlinked folder (the repository's .mlx link) too.
	link := filepath.Join(t.TempDir(), "mlxlink")
	if err := os.Symlink(filepath.Join(site, "mlx"), link); err != nil {
		t.Fatal(err)
	}
	if dir2, ok := wheelCUDAHome(filepath.Join(link, "lib", "libmlx.so"), cache); !ok || dir2 != dir {
		t.Errorf("through a link: %q %v, want %q", dir2, ok, dir)
	}
	if _, ok := wheelCUDAHome("", cache); ok {
		t.Error("no library, merged anyway")
	}
}

func TestLoadedLibMLX(t *testing.T) {
	if !Available() {
		t.Skip("no MLX")
	}
	if p := loadedLibMLX(); filepath.Base(p) != "libmlx.so" {
		t.Errorf("loadedLibMLX() = %q", p)
	}
}
