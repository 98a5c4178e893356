//go:build cgo && !nomlx && linux

package mlx

import (
	"debug/elf"
	"os"
	"strings"
	"testing"
)

// Every binary that links MLX (this test binary included: it has the same
// #cgo flags) finds libmlx relative to itself, never through an absolute
// path of the machine it was built on (issue 13: a moved checkout or an
// installed copy must keep working).
func TestRunpathIsRelative(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var paths []string
	for _, tag := range []elf.DynTag{elf.DT_RUNPATH, elf.DT_RPATH} {
		vals, err := f.DynString(tag)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			paths = append(paths, strings.Split(v, ":")...)
		}
	}
	if len(paths) == 0 {
		t.Fatal("no RUNPATH: bin/of3c would not find libmlx without LD_LIBRARY_PATH")
	}
	want := "$ORIGIN/../.mlx/lib"
	found := false
	for _, p := range paths {
		if !strings.HasPrefix(p, "$ORIGIN/") {
			t.Errorf("library path %q is not relative to the binary ($ORIGIN)", p)
		}
		found = found || p == want
	}
	if !found {
		t.Errorf("RUNPATH %q lacks %s (the checkout's MLX beside bin/)", paths, want)
	}
}
