package safefile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "f")
	if err := os.WriteFile(reg, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFile(reg, 5, ""); err != nil || string(b) != "hello" {
		t.Fatalf("regular file: %q %v", b, err)
	}
	var tl *TooLargeError
	if _, err := ReadFile(reg, 4, "the test's limit"); !errors.As(err, &tl) || !strings.Contains(err.Error(), "the test's limit") {
		t.Errorf("over the limit: %v", err)
	}
	// A FIFO with no writer would block a plain open forever.
	for _, p := range []string{fifo, dir, "/dev/zero"} {
		if _, err := ReadFile(p, 0, ""); !errors.Is(err, ErrNotRegular) {
			t.Errorf("%s: %v, want ErrNotRegular", p, err)
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if _, _, err := OpenIn(root, "fifo"); !errors.Is(err, ErrNotRegular) {
		t.Errorf("OpenIn fifo: %v", err)
	}
}

func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	TrackTemp(a)
	forget := TrackTemp(b)
	forget()
	RemoveTemps()
	defer func() { interrupted = false; tempMu.Unlock() }() // RemoveTemps keeps it for the exit
	if _, err := os.Stat(a); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("tracked file kept: %v", err)
	}
	if _, err := os.Stat(b); err != nil {
		t.Errorf("forgotten file removed: %v", err)
	}
}
