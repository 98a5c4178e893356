package passes

import (
	"strings"
	"testing"

	"github.com/of3c/of3c/graph"
)

func TestGPUFlashAttentionCondition(t *testing.T) {
	f32, bf, f64, none := graph.Float32, graph.BFloat16, graph.Float64, graph.Undefined
	const N = 2048
	tri := [][]int64{{N, 4, N, 32}, {N, 4, N, 32}, {N, 4, N, 32}, {N, 1, 1, N}, {1, 4, N, N}}
	for _, c := range []struct {
		name string
		mode string
		dts  []graph.DType
		shp  [][]int64
		want bool
	}{
		{"triangle attention f32", "qk", []graph.DType{f32, f32, f32, f32, f32}, tri, true},
		{"triangle attention bf16, f32 biases", "qk", []graph.DType{bf, bf, bf, f32, f32}, tri, true},
		{"f64 bias", "qk", []graph.DType{f32, f32, f32, f64, f32}, tri, false},
		{"f64 q", "qk", []graph.DType{f64, f32, f32, f32, f32}, tri, false},
		{"head 72", "qk", []graph.DType{f32, f32, f32}, [][]int64{{8, N, 72}, {8, N, 72}, {8, N, 72}}, false},
		{"head 64, v head 8", "qk", []graph.DType{f32, f32, f32}, [][]int64{{8, N, 64}, {8, N, 64}, {8, N, 8}}, true},
		{"k's head differs", "qk", []graph.DType{f32, f32, f32}, [][]int64{{8, N, 16}, {8, N, 32}, {8, N, 16}}, false},
		{"key counts differ", "qk", []graph.DType{f32, f32, f32}, [][]int64{{8, N, 16}, {8, N, 16}, {8, 7, 16}}, false},
		{"five biases", "qk", []graph.DType{f32, f32, f32, f32, f32, f32, f32, f32},
			[][]int64{{8, N, 16}, {8, N, 16}, {8, N, 16}, {N}, {N}, {N}, {N}, {N}}, false},
		{"bias enlarges the batch", "qk", []graph.DType{f32, f32, f32, f32}, [][]int64{{8, N, 16}, {8, N, 16}, {8, N, 16}, {2, 8, N, N}}, false},
		{"bias with more queries", "qk", []graph.DType{f32, f32, f32, f32}, [][]int64{{8, 1, 16}, {8, N, 16}, {8, N, 16}, {8, 4, N}}, false},
		{"symbolic dims", "qk", []graph.DType{f32, f32, f32, f32}, [][]int64{{-2, 4, -2, 32}, {-2, 4, -2, 32}, {-2, 4, -2, 32}, {-2, 1, 1, -2}}, true},
		{"bias_only", "bias_only", []graph.DType{none, none, f32, f32, f32}, [][]int64{nil, nil, {N, 8, N, 8}, {1, 8, N, N}, {N, N}}, true},
		{"bias_only without a bias", "bias_only", []graph.DType{none, none, f32}, [][]int64{nil, nil, {N, 8, N, 8}}, false},
		{"qk without q", "qk", []graph.DType{none, none, f32, f32}, [][]int64{nil, nil, {N, 8, N, 8}, {N, N}}, false},
	} {
		if got := GPUFlashAttention(c.mode, c.dts, c.shp); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestGPUFlashAttentionMMACondition(t *testing.T) {
	f32, bf, f16, none := graph.Float32, graph.BFloat16, graph.Float16, graph.Undefined
	const N = 2048
	tri := func(c int64) [][]int64 {
		return [][]int64{{N, 4, N, c}, {N, 4, N, c}, {N, 4, N, c}, {N, 1, 1, N}, {1, 4, N, N}}
	}
	for _, c := range []struct {
		name string
		mode string
		dts  []graph.DType
		shp  [][]int64
		want bool
	}{
		{"triangle attention bf16", "qk", []graph.DType{bf, bf, bf, f32, f32}, tri(32), true},
		{"triangle attention fp16 head 8", "qk", []graph.DType{f16, f16, f16, f32, f32}, tri(8), true},
		{"head 64", "qk", []graph.DType{bf, bf, bf, f32, f32}, tri(64), true},
		{"head 72", "qk", []graph.DType{bf, bf, bf, f32, f32}, tri(72), false},
		{"f32", "qk", []graph.DType{f32, f32, f32, f32, f32}, tri(32), false},
		{"mixed bf16 and fp16", "qk", []graph.DType{bf, bf, f16, f32, f32}, tri(32), false},
		{"bf16 q, f32 v", "qk", []graph.DType{bf, bf, f32, f32, f32}, tri(32), false},
		{"bias_only", "bias_only", []graph.DType{none, none, bf, f32}, [][]int64{nil, nil, {N, 8, N, 8}, {1, 8, N, N}}, false},
	} {
		if got := GPUFlashAttentionMMA(c.mode, c.dts, c.shp); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// On the GPU the planner models the flash kernel: a triangle attention at
// N = 2048, whose generic lowering writes [N,H,N,N] logits (hundreds of
// GiB), needs no chunking and peaks at its operands; a budget then chunks
// only what the GPU lowering honours. Without a device, the generic model.
func TestPlanMemoryGPU(t *testing.T) {
	g := buildTriAttention(t, "of3")
	if _, err := Run(g, Options{Verify: true}); err != nil {
		t.Fatal(err)
	}
	dims := map[string]int64{"N": 2048}
	generic, err := PlanMemory(g, dims, NoBudget, Options{})
	if err != nil {
		t.Fatal(err)
	}
	gpu, err := PlanMemory(g, dims, NoBudget, Options{Device: "gpu"})
	if err != nil {
		t.Fatal(err)
	}
	if generic.PeakBefore < 128<<30 {
		t.Errorf("generic peak %d, want ≥ 128 GiB (the logits)", generic.PeakBefore)
	}
	if gpu.PeakBefore > 8<<30 || gpu.PeakBefore*16 > generic.PeakBefore {
		t.Errorf("gpu peak %d (generic %d): want the flash kernel's, ≤ 8 GiB", gpu.PeakBefore, generic.PeakBefore)
	}
	if !strings.Contains(gpu.Format(), "budget none") || strings.Contains(gpu.Format(), "inside of3c.Attention") {
		t.Errorf("gpu plan:\n%s", gpu.Format())
	}
	// A budget below the flash attention's own need: refused, with the
	// estimate and the reason, and without chunking the attention.
	_, err = PlanMemory(g, dims, gpu.PeakBefore/4, Options{Device: "gpu"})
	if err == nil || !strings.Contains(err.Error(), "does not fit") {
		t.Fatalf("budget %d: %v, want a refusal", gpu.PeakBefore/4, err)
	}
	// A budget the generic lowering meets only by chunking (or not at all)
	// fits the GPU plan as it is.
	plan, err := PlanMemory(g, dims, gpu.PeakBefore+1<<20, Options{Device: "gpu"})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Chunks) != 0 {
		t.Errorf("gpu plan chunks %+v, want none", plan.Chunks)
	}
	// OF3C_GPU_ATTENTION=noflash: the GPU runs the logits, and the plan says so.
	old := GPUAttentionEnv
	GPUAttentionEnv = func() string { return "noflash" }
	defer func() { GPUAttentionEnv = old }()
	if p, err := PlanMemory(g, dims, NoBudget, Options{Device: "gpu"}); err != nil {
		t.Error(err)
	} else if p.PeakBefore != generic.PeakBefore {
		t.Errorf("noflash gpu plan peak %d, want the generic %d", p.PeakBefore, generic.PeakBefore)
	}
	if p, err := PlanMemory(g, dims, gpu.PeakBefore+1<<20, Options{}); err == nil && len(p.Chunks) == 0 {
		t.Errorf("generic plan fits %d unchunked: the two models do not differ", gpu.PeakBefore)
	}
}
