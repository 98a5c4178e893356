package passes

import (
	"os"
	"slices"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/shapes"
)

// The GPU model. On Options.Device "gpu" the planner models what the GPU
// lowering runs: an of3c.Attention that GPUFlashAttention accepts runs as
// internal/mlx's flash kernel (codegen path attention/gpu-flash, or its
// tensor-core sibling attention/gpu-flash-mma for bf16/fp16), which
// never writes the logits and ignores the chunk attributes — its memory is
// its output plus two copies of each bias (the lowering reads each bias as
// f32 with −inf clamped to −1e9, then makes that row-contiguous; three where
// the contiguous copy is made in pieces and concatenated).
// The other fused ops run as MLX ops on the GPU as on the CPU, without the
// CPU's default blocks, and their chunk attributes (row_chunk of
// TriangleMultiplication, OuterProductMean and SwiGLU) are honoured there,
// so the chunking the planner chooses is the GPU's. The planner counts
// values in the graph's dtypes (f32), so a bf16/fp16 program is planned
// with twice its values' sizes.

// GPUTiledCopyCols is the most columns MLX's CUDA tiled column-to-row copy
// (copy_col_row, which makes a 2-D transpose contiguous) takes for elements
// of itemsize bytes: its grid has ⌈cols / (16 · min(16 / itemsize, 8))⌉
// blocks along y, which CUDA caps at 65535. The GPU lowering makes the flash
// kernels' biases and the blocked triangle multiplication's operands
// contiguous with it, in pieces or not at all past this.
func GPUTiledCopyCols(itemsize int) int64 {
	return gpuGridYMax * int64(16*min(16/max(itemsize, 1), 8))
}

// gpuGridYMax is CUDA's limit on a grid's y dimension (a variable so that
// the tests can lower it).
var gpuGridYMax int64 = 65535

// SetGPUGridYMaxForTest sets the grid limit GPUTiledCopyCols assumes and
// returns a function that restores it (for tests of the pieces).
func SetGPUGridYMaxForTest(v int64) (restore func()) {
	old := gpuGridYMax
	gpuGridYMax = v
	return func() { gpuGridYMax = old }
}

// FlashMaxHead is the largest head size (q's and v's last axis) the GPU
// flash attention kernel takes.
const FlashMaxHead = 64

// GPUFlashAttention is the condition of the GPU flash attention kernel, the
// one copy of the rule (codegen's AttentionPath takes attention/gpu-flash
// under it, except where it prefers MLX's fused SDPA for bf16/fp16): mode
// qk with q and k, or bias_only with at least one bias; q, k and v f32,
// bf16 or fp16 with head sizes 1..FlashMaxHead, k's equal to q's, k's and
// v's key counts equal; 0-4 biases (1-4 in bias_only mode), none f64, that
// broadcast into the [batch.., Q, K] logits (batch: q's, k's and v's
// broadcast) without enlarging them; logits rank ≤ 8. dts and shp hold q, k,
// v and then the present biases (q and k Undefined/nil in bias_only mode);
// a dim < 0 is unknown, the same symbol the same number.
func GPUFlashAttention(mode string, dts []graph.DType, shp [][]int64) bool {
	if len(dts) < 3 || len(shp) != len(dts) {
		return false
	}
	qk := mode == graph.AttentionModeQK
	nb := len(dts) - 3
	if (!qk && mode != graph.AttentionModeBiasOnly) || nb > 4 || (!qk && nb == 0) {
		return false
	}
	float := func(dt graph.DType) bool { return dt == graph.Float32 || dt == graph.BFloat16 || dt == graph.Float16 }
	last := func(s []int64, i int) int64 { return s[len(s)-i] }
	head := func(c int64) bool { return c >= 1 && c <= FlashMaxHead }
	v := shp[2]
	if !float(dts[2]) || len(v) < 2 || !head(last(v, 1)) {
		return false
	}
	batch := slices.Clone(v[:len(v)-2])
	K, Q := last(v, 2), int64(1)
	if qk {
		q, k := shp[0], shp[1]
		if !float(dts[0]) || !float(dts[1]) || len(q) < 2 || len(k) < 2 || !head(last(q, 1)) ||
			last(k, 1) != last(q, 1) || last(k, 2) != K {
			return false
		}
		var err error
		if batch, err = shapes.Broadcast(batch, q[:len(q)-2], k[:len(k)-2]); err != nil {
			return false
		}
		Q = last(q, 2)
	}
	full := append(slices.Clone(batch), Q, K)
	for i, b := range shp[3:] {
		if dts[3+i] == graph.Float64 || len(b) > len(full) {
			return false
		}
		f, err := shapes.Broadcast(full, b)
		if err != nil {
			return false
		}
		full = f
	}
	return len(full) <= 8 && slices.Equal(full[:len(batch)], batch) && full[len(full)-1] == K &&
		(!qk || full[len(full)-2] == Q)
}

// GPUFlashAttentionMMA is the condition of the tensor-core (mma.sync) flash
// kernel, the one copy of its rule: GPUFlashAttention's in mode qk, with q,
// k and v of one dtype, bf16 or fp16. Its memory is the FFMA kernel's (the
// logits are never written), so the planner models both alike.
func GPUFlashAttentionMMA(mode string, dts []graph.DType, shp [][]int64) bool {
	if mode != graph.AttentionModeQK || len(dts) < 3 || (dts[0] != graph.BFloat16 && dts[0] != graph.Float16) ||
		dts[1] != dts[0] || dts[2] != dts[0] {
		return false
	}
	return GPUFlashAttention(mode, dts, shp)
}

// GPUAttentionEnv reads OF3C_GPU_ATTENTION: "flash" takes a GPU flash
// kernel wherever one fits, "flash-mma" the tensor-core one where it fits
// (the FFMA one elsewhere), "flash-ffma" the FFMA one; "noflash" never (the
// paths before them, for comparisons); anything else leaves the choice to
// codegen's AttentionPath.
// The planner follows it too, so a noflash run is planned with its logits.
// A variable, so tests can replace it.
var GPUAttentionEnv = func() string { return os.Getenv("OF3C_GPU_ATTENTION") }

// gpuFlashAttention reports whether the GPU lowering runs attention step s
// as the flash kernel.
func (p *planner) gpuFlashAttention(s *planNode) bool {
	n := s.n
	if p.opts.Device != "gpu" || n.Op != "Attention" || len(n.Inputs) < 3 || GPUAttentionEnv() == "noflash" {
		return false
	}
	mode := n.AttrString("mode", graph.AttentionModeQK)
	var dts []graph.DType
	var shp [][]int64
	for i, x := range n.Inputs {
		switch {
		case x != nil && (i >= 2 || mode == graph.AttentionModeQK):
			dts = append(dts, x.Type.DType)
			shp = append(shp, p.shapes[x])
		case i < 2 && mode != graph.AttentionModeQK:
			dts = append(dts, graph.Undefined)
			shp = append(shp, nil)
		case i < 3:
			return false
		}
	}
	return GPUFlashAttention(mode, dts, shp)
}

// fusedAttention reports whether attention step s runs as a kernel that
// never materialises the logits (the CPU's FastAttention or the GPU's flash
// kernel): its memory is its output and its biases' copies, whatever the
// chunking.
func (p *planner) fusedAttention(s *planNode) bool {
	return p.cpuFusedAttention(s) || p.gpuFlashAttention(s)
}
