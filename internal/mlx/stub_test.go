//go:build !cgo || nomlx

package mlx

import (
	"errors"
	"testing"
)

func TestUnavailable(t *testing.T) {
	if Available() {
		t.Fatal("stub build claims MLX")
	}
	ran := false
	if err := Do(func(*Scope) error { ran = true; return nil }); !errors.Is(err, ErrUnavailable) || ran {
		t.Fatalf("Do: %v ran=%v", err, ran)
	}
	if Version() != "unavailable" || Devices() != nil {
		t.Fatalf("version %q devices %v", Version(), Devices())
	}
	if _, err := Memory(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Memory: %v", err)
	}
}
