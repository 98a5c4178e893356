package mlx

import (
	"strings"
	"testing"
)

// The staged transfer pipeline (cuda_io.cc: staged_h2d, staged_d2h, the copy
// pool, piece_bytes) runs on host memory with a fake DMA engine that copies
// as late as the stream semantics allow, so reusing a staging buffer before
// its event, or reading one before its copy, moves the wrong bytes here.
func TestGPUIOStagedPipeline(t *testing.T) {
	if !available {
		t.Skip("MLX unavailable")
	}
	const mib = 1 << 20
	for _, c := range []struct {
		n, buf, nbufs, threads, pieces int
	}{
		{0, mib, 2, 2, 0},
		{1, 4096, 2, 1, 1},
		{5*4096 + 17, 4096, 2, 3, 6},    // last piece short
		{5*4096 + 17, 4096, 1, 2, 6},    // one buffer: no overlap, still right
		{3*mib + 123, mib, 4, 4, 4},     // pieces capped at the buffer
		{10*mib + 1, 16 * mib, 2, 4, 4}, // about n/4, whole MiB: 3 MiB pieces
		{40*mib + 5, 4 * mib, 3, 4, 11}, // more pieces than buffers; threads split each piece
		{64 * mib, 16 * mib, 4, 8, 4},   // the production shape for a 64 MiB array
	} {
		got, err := libGPUIOSelfTest(c.n, c.buf, c.nbufs, c.threads)
		if err != nil {
			t.Errorf("n=%d buf=%d nbufs=%d threads=%d: %v", c.n, c.buf, c.nbufs, c.threads, err)
			continue
		}
		if got != c.pieces {
			t.Errorf("n=%d buf=%d: %d pieces, want %d", c.n, c.buf, got, c.pieces)
		}
	}
	if _, err := libGPUIOSelfTest(10, 0, 2, 1); err == nil {
		t.Error("empty staging buffers accepted")
	}
}

func TestSetGPUTransfers(t *testing.T) {
	if !available {
		t.Skip("MLX unavailable")
	}
	defer SetGPUTransfers("staged")
	for _, m := range GPUTransferModes {
		if err := SetGPUTransfers(m); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		// Off (CPU build, OF3C_GPU_DIRECT_IO=0) stays off; otherwise the
		// status names the mode, or direct after a driver error.
		if s := GPUTransfers(); !strings.HasPrefix(s, "off") && !strings.HasPrefix(s, m) && !strings.HasPrefix(s, "direct") {
			t.Errorf("mode %s: status %q", m, s)
		}
	}
	for _, bad := range []string{"", "Staged", "pinned", "staged "} {
		if err := SetGPUTransfers(bad); err == nil || !strings.Contains(err.Error(), "unknown GPU transfer mode") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
