package mlx

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMergedCUDAHome(t *testing.T) {
	home := t.TempDir()
	cache := t.TempDir()
	write := func(p string) {
		t.Helper()
		p = filepath.Join(home, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A pre-13 layout (nothing under cccl) is left alone.
	write("include/cuda_runtime.h")
	if _, ok := mergedCUDAHome(home, cache); ok {
		t.Fatal("merged a layout without cccl/")
	}
	// CUDA 13: libcu++ only under include/cccl.
	write("include/cccl/cuda/std/type_traits")
	write("include/cccl/thrust/version.h")
	dir, ok := mergedCUDAHome(home, cache)
	if !ok {
		t.Fatal("CUDA 13 layout not merged")
	}
	for _, p := range []string{"cuda_runtime.h", "cuda/std/type_traits", "thrust/version.h"} {
		if !exists(filepath.Join(dir, "include", p)) {
			t.Errorf("merged include lacks %s", p)
		}
	}
	// Idempotent: a second call reuses the folder.
	if dir2, ok := mergedCUDAHome(home, cache); !ok || dir2 != dir {
		t.Errorf("second call: %q %v, want %q", dir2, ok, dir)
	}
	// A home that already has cuda/std under include/ is left alone.
	write("include/cuda/std/type_traits")
	if _, ok := mergedCUDAHome(home, cache); ok {
		t.Error("merged a layout that already works")
	}
}
