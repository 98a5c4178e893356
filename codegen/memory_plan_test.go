package codegen

import (
	"testing"

	"of3c/passes"
)

// The memory planner mirrors the CPU lowering's default blocks
// (passes/memory_cpu.go); the two copies must agree.
func TestCPUBlocksMatchPlanner(t *testing.T) {
	if cpuBlockElems != passes.CPUBlockElems {
		t.Fatalf("cpuBlockElems %d, planner %d", cpuBlockElems, passes.CPUBlockElems)
	}
	tr := &tracer{p: &Program{opts: Options{Device: "cpu"}}}
	for _, c := range []struct {
		out  []int64
		keys int64
	}{
		{[]int64{256, 4, 256, 32}, 256}, {[]int64{384, 4, 384, 32}, 384}, {[]int64{64, 2, 64, 8}, 64},
		{[]int64{4, 4096, 32}, 4096}, {[]int64{1, 16, 1024, 24}, 1024}, {[]int64{16, 1024, 24}, 1024},
		{[]int64{1024, 32}, 1024}, {[]int64{3, 5000, 5000, 8}, 5000},
	} {
		if got, want := passes.CPUAttentionBlock(c.out, c.keys), tr.cpuBlock(c.out, c.keys); got != want {
			t.Errorf("attention %v keys %d: planner %d, lowering %d", c.out, c.keys, got, want)
		}
	}
	// lowerSwiGLU: rows·2h > cpuBlockElems → max(1, cpuBlockElems/2h) rows.
	for _, c := range [][2]int64{{65536, 1024}, {1024, 1024}, {1 << 20, 2}, {7, 1 << 21}, {147456, 1024}} {
		rows, h2 := c[0], c[1]
		want := int64(0)
		if rows*h2 > cpuBlockElems {
			want = max(1, cpuBlockElems/h2)
		}
		if got := passes.CPUSwiGLUBlock(rows, h2); got != want {
			t.Errorf("SwiGLU rows %d, 2h %d: planner %d, lowering %d", rows, h2, got, want)
		}
	}
}
