package codegen

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/shapes"
	"github.com/of3c/of3c/passes"
)

// Lowering paths. A fused op has several lowerings — MLX's fused kernels on
// the GPU, internal/mlx's CPU kernels, plain MLX ops — and which one runs
// depends on the device, the operands' dtypes on the device and their
// shapes. Each fused op has one decision function (AttentionPath,
// SwiGLUPath, TriangleMultiplicationPath, OuterProductMeanPath,
// LayerNormPath) that names the path; the lowering switches on the name.
// The decisions take no MLX arrays, so they run at compile time (PlanLowerings,
// recorded in the artifact's manifest) and in tests without a GPU, and the
// tracer records the path each node took (Program.Lowerings).

// Path names one lowering of a fused op, as "op/variant".
type Path string

// The paths. PathTable documents each one.
const (
	AttentionGPUFlashMMA    Path = "attention/gpu-flash-mma"
	AttentionGPUFlash       Path = "attention/gpu-flash"
	AttentionGPUSDPA        Path = "attention/gpu-sdpa"
	AttentionCPUFused       Path = "attention/cpu-fused"
	AttentionLMA            Path = "attention/lma"
	AttentionCPUSoftmaxBias Path = "attention/cpu-softmax-bias"
	AttentionGPUSoftmaxBias Path = "attention/gpu-softmax-bias"
	AttentionCPUSoftmax     Path = "attention/cpu-softmax"
	AttentionGPUSoftmax     Path = "attention/gpu-softmax"
	AttentionDeferred       Path = "attention/deferred-division"

	SwiGLUCPUFused Path = "swiglu/cpu-fused"
	SwiGLUMLX      Path = "swiglu/mlx"

	TriMulBlocked  Path = "trimul/blocked"
	TriMulCPUFused Path = "trimul/cpu-fused"
	TriMulMLX      Path = "trimul/mlx"

	OPMWhole   Path = "opm/whole"
	OPMBlocked Path = "opm/row-blocked"

	LayerNormCPUFused Path = "layernorm/cpu-fused"
	LayerNormGPUHalf  Path = "layernorm/gpu-half"
	LayerNormMLX      Path = "layernorm/mlx"

	RegionSequenced Path = "region/sequenced"
	RegionWhole     Path = "region/whole"
)

// PathInfo documents a lowering path.
type PathInfo struct {
	Path    Path
	Op      string // qualified op
	Devices string // "cpu", "gpu" or "cpu, gpu"
	When    string // the decision's condition, in words
	Does    string // what runs
}

// PathTable lists every lowering path in decision order per op (the first
// whose condition holds is taken). docs/architecture.md prints it.
var PathTable = []PathInfo{
	{AttentionGPUFlashMMA, "of3c.Attention", "gpu", "attention/gpu-flash's condition, mode qk, q, k, v bf16/fp16 of one dtype: wherever attention/gpu-flash would be taken, and where MLX's SDPA would have to write a full-size summed mask of the biases (every OpenFold3 attention), budget or not (8.9× faster than the FFMA kernel on an H200, same memory); OF3C_GPU_ATTENTION=flash-mma forces it where it fits, flash-ffma keeps the FFMA kernel",
		"internal/mlx GPUFlashAttentionMMA CUDA kernel: FlashAttention-2 on tensor cores (mma.sync m16n8k16, f32 accumulation), 16 queries per warp, 64-key tiles staged in shared memory and read by ldmatrix, the next tile's k and v loaded while this one computes, biases read in place (f32) before the tile's barriers, online softmax in f32 on base 2, head sizes padded to 16 (q·kᵀ) and 8 (v); the logits are never written"},
	{AttentionGPUFlash, "of3c.Attention", "gpu", "fast kernels on; q, k, v f32/bf16/fp16 (none f64), head sizes 1-64; 0-4 biases (1-4 in bias_only mode) broadcasting into the logits without enlarging them; logits rank ≤ 8; not where MLX's SDPA fits (bf16/fp16), unless the program is memory-planned (a budget, or the lean GPU plan) and SDPA's summed mask would be as large as the logits; OF3C_GPU_ATTENTION=flash/noflash forces it on/off",
		"internal/mlx GPUFlashAttention CUDA kernel: key tiles with an online softmax, biases read in place, f32 accumulation; f32 q/k/v: register-tiled (64 queries x 32-64 keys per block, 4 x 4-8 logits per thread; OF3C_GPU_FLASH_F32=0: the one-thread-per-query kernel); the logits are never written; chunk attributes ignored"},
	{AttentionGPUSDPA, "of3c.Attention", "gpu", "mode qk; q, k, v bf16/fp16 of one dtype; head size a multiple of 8 up to 128, v's the same; rank ≥ 3; no chunk attributes; the biases broadcast into the logits",
		"MLX's fused scaled_dot_product_attention; the biases summed into one additive mask (GPUBiasSum kernel for 2-4 full-size f32 biases)"},
	{AttentionCPUFused, "of3c.Attention", "cpu", "mode qk; q, k, v and the biases f32 on the device; fast kernels on",
		"internal/mlx FastAttention(HeadsInner): logits per thread block, never materialised; chunk attributes ignored"},
	{AttentionLMA, "of3c.Attention", "cpu, gpu", "kv_chunk splits the keys",
		"MLX ops: key blocks with an online (running max) softmax, after any batch/query chunking"},
	{AttentionCPUSoftmaxBias, "of3c.Attention", "cpu", "mode qk; at least one bias; no f64; every bias broadcasts into q·kᵀ without enlarging it; fast kernels on",
		"GEMM, internal/mlx FastSoftmaxBias (biases read in place), GEMM; CPU default batch blocks"},
	{AttentionGPUSoftmaxBias, "of3c.Attention", "gpu", "mode qk; 1-4 biases, each broadcasting into q·kᵀ without enlarging it; logits rank ≤ 8; fast kernels on",
		"GEMM, internal/mlx GPUSoftmaxBias CUDA kernel, GEMM"},
	{AttentionCPUSoftmax, "of3c.Attention", "cpu", "f32 logits; fast kernels on",
		"logits as MLX ops, internal/mlx FastSoftmax, GEMM; CPU default batch blocks"},
	{AttentionGPUSoftmax, "of3c.Attention", "gpu", "otherwise on the GPU", "logits as MLX ops, MLX's softmax, GEMM"},
	{AttentionDeferred, "of3c.Attention", "cpu", "otherwise (f64, or fast kernels off)",
		"MLX ops: exp(L − max) (as expm1 + 1), GEMM, then the division by the row sums; CPU default batch blocks"},

	{SwiGLUCPUFused, "of3c.SwiGLU", "cpu", "the x·W product is f32; fast kernels on", "one GEMM, internal/mlx FastSwiGLU, the W_out GEMM; in CPU default row blocks"},
	{SwiGLUMLX, "of3c.SwiGLU", "cpu, gpu", "otherwise", "one GEMM, sigmoid and products as MLX ops in f32, the W_out GEMM (row blocks on the CPU)"},

	{TriMulBlocked, "of3c.TriangleMultiplication", "cpu, gpu", "row_chunk splits the rows",
		"projections and gates per row block, b gathered once, one channel GEMM per row block (bf16 tensor cores on the GPU under bf16; the memory contract of docs/ops.md)"},
	{TriMulCPUFused, "of3c.TriangleMultiplication", "cpu", "accumulation in f32; fast kernels on",
		"x·W whole, internal/mlx FastSigmoidMul gates, FastContiguous + FastMatMul channel GEMMs"},
	{TriMulMLX, "of3c.TriangleMultiplication", "cpu, gpu", "otherwise", "x·W whole, gates and the batched channel GEMM as MLX ops (bf16 on the GPU under bf16)"},

	{OPMBlocked, "of3c.OuterProductMean", "cpu, gpu", "row_chunk splits the rows", "the outer products and projection per row block"},
	{OPMWhole, "of3c.OuterProductMean", "cpu, gpu", "otherwise", "one batched GEMM for the outer products, one for the projection"},

	{LayerNormCPUFused, "LayerNormalization", "cpu", "x not f64; fast kernels on", "internal/mlx FastLayerNorm over the flattened normalised axes"},
	{LayerNormGPUHalf, "LayerNormalization", "gpu", "x bf16/fp16 on the device; the normalised axes 1-1024 elements, known at compile time; fast kernels on; OF3C_GPU_LAYERNORM=mlx turns it off",
		"internal/mlx GPULayerNorm CUDA kernel: one warp per 1-4 rows (all read before reducing), statistics and affine in f32, one rounding to x's dtype (MLX's layer_norm would need f32 copies of x and of its result)"},
	{LayerNormMLX, "LayerNormalization", "cpu, gpu", "otherwise", "MLX's fast::layer_norm (on an f32 copy of x, cast back, where x is bf16/fp16)"},
	{RegionSequenced, "of3c.ChunkMap", "cpu, gpu", "chunk splits the mapped axis",
		"the body's own lowerings per block of rows on slices of the split inputs, each block's inputs made to depend on the previous block's outputs (so MLX runs them one after the other), outputs concatenated (codegen/lower_region.go)"},
	{RegionWhole, "of3c.ChunkMap", "cpu, gpu", "otherwise", "the body lowered once on the whole inputs: the unchunked graph"},
}

// Operand is a fused op's input as a decision sees it.
type Operand struct {
	// DType is the dtype on the device (after Options.Precision;
	// graph.Undefined: the optional input is absent).
	DType graph.DType
	// Shape holds the dims; a dim unknown at compile time is a negative
	// number, the same one for the same symbol.
	Shape []int64
}

func (o Operand) present() bool { return o.DType != graph.Undefined }

func (o Operand) rank() int { return len(o.Shape) }

// last returns the i-th dim from the end (1: the last), or 0.
func (o Operand) last(i int) int64 {
	if len(o.Shape) < i {
		return 0
	}
	return o.Shape[len(o.Shape)-i]
}

// splits reports whether a chunk c (> 0) cuts a dim d into several blocks;
// an unknown d (< 0) is assumed to be larger.
func splits(c, d int64) bool { return c > 0 && (d < 0 || c < d) }

func (o Options) fastKernels() bool { return !o.NoFastKernels }

// AttentionSpec is an of3c.Attention node as AttentionPath sees it.
type AttentionSpec struct {
	Mode    string // graph.AttentionModeQK or "bias_only"
	Q, K, V Operand
	// Biases are the present biases, in order.
	Biases                          []Operand
	BatchChunk, QueryChunk, KVChunk int64
}

// AttentionPath decides how an of3c.Attention runs. o must be validated
// (Device and Precision set).
func AttentionPath(o Options, a AttentionSpec) Path {
	qk := a.Mode == graph.AttentionModeQK && a.Q.present() && a.K.present()
	if o.Device == "gpu" && o.fastKernels() && flashFits(a) {
		flash := AttentionGPUFlash
		if flashMMAOverFFMA && flashMMAFits(a) {
			flash = AttentionGPUFlashMMA
		}
		switch gpuAttentionEnv() {
		case "flash":
			return flash
		case "flash-mma":
			if flashMMAFits(a) {
				return AttentionGPUFlashMMA
			}
			return AttentionGPUFlash
		case "flash-ffma":
			return AttentionGPUFlash
		case "noflash":
		default:
			// bf16/fp16: MLX's fused SDPA (cuDNN, tensor cores) ran the
			// OF3-width PairFormerBlock 2.2× faster than the FFMA flash
			// kernel at N = 1024 on an H200 (78.6 vs 174.9 ms;
			// docs/notes/2026-12-03-gpu-flash-attention.md). It is kept
			// unless SDPA would have to write a full-size summed mask of the
			// biases and a flash kernel can read them in place instead:
			// under a memory plan (a budget, or the lean GPU plan) for any
			// flash kernel, and everywhere for the tensor-core one: it takes
			// 7.2 ms for a triangle attention at N = 1024 on an H200
			// (scripts/gpu/flash_check), where the [N, 4, N, N] bf16 mask
			// alone is 8 GiB written and read; the unplanned block at bf16
			// N = 1024 ran 55.7 ms / 13.26 GiB with it against SDPA's
			// 62.8 ms / 20.05 GiB (docs/notes/2026-12-03-session6-gpu.md).
			// flashMMAOverSDPA extends that to the attentions SDPA takes
			// with no summed mask (unmeasured: off).
			sdpa := qk && a.BatchChunk <= 0 && a.QueryChunk <= 0 && a.KVChunk <= 0 && sdpaFits(a)
			full := sdpa && sdpaMaskFull(a)
			mma := flash == AttentionGPUFlashMMA
			if !sdpa || (full && (o.Budgeted || mma)) || (flashMMAOverSDPA && mma) {
				return flash
			}
		}
	}
	if qk && o.Device == "gpu" && a.BatchChunk <= 0 && a.QueryChunk <= 0 && a.KVChunk <= 0 && sdpaFits(a) {
		return AttentionGPUSDPA
	}
	if qk && o.Device == "cpu" && o.fastKernels() && passes.CPUFusedAttention(a.Mode, a.dtypes()...) {
		return AttentionCPUFused // the planner's condition, so it models what runs
	}
	return attentionUnfusedPath(o, a)
}

// attentionUnfusedPath is the decision among the paths that compute the
// logits (the batch and query chunking apply to all of them).
func attentionUnfusedPath(o Options, a AttentionSpec) Path {
	if splits(a.KVChunk, a.V.last(2)) {
		return AttentionLMA
	}
	qk := a.Mode == graph.AttentionModeQK && a.Q.present() && a.K.present()
	// The unfused paths compute in f32 (halves are widened) unless an
	// operand of the logits is f64.
	f64 := a.Q.DType == graph.Float64 || a.K.DType == graph.Float64
	for _, b := range a.Biases {
		f64 = f64 || b.DType == graph.Float64
	}
	L := biasedLogitsShape(a)
	switch {
	case o.Device == "cpu" && o.fastKernels() && qk && len(a.Biases) > 0 && !f64 && L != nil:
		return AttentionCPUSoftmaxBias
	case o.Device == "gpu" && o.fastKernels() && qk && len(a.Biases) >= 1 && len(a.Biases) <= 4 && !f64 && L != nil && len(L) <= 8:
		return AttentionGPUSoftmaxBias
	case o.Device == "cpu" && o.fastKernels() && !f64:
		return AttentionCPUSoftmax
	case o.Device == "gpu":
		return AttentionGPUSoftmax
	}
	return AttentionDeferred
}

// dtypes lists the dtypes of q, k, v and the biases.
func (a AttentionSpec) dtypes() []graph.DType {
	dts := []graph.DType{a.Q.DType, a.K.DType, a.V.DType}
	for _, b := range a.Biases {
		dts = append(dts, b.DType)
	}
	return dts
}

// biasedLogitsShape is the [batch.., Q, K] shape of q·kᵀ when every bias
// broadcasts to it without enlarging it, nil otherwise (or in bias_only
// mode): the condition for the one-pass softmax-with-biases kernels
// (FastSoftmaxBias on the CPU, GPUSoftmaxBias on the GPU).
func biasedLogitsShape(a AttentionSpec) []int64 {
	if a.Mode != graph.AttentionModeQK || a.Q.rank() < 2 || a.K.rank() < 2 {
		return nil
	}
	batch, err := shapes.Broadcast(a.Q.Shape[:a.Q.rank()-2], a.K.Shape[:a.K.rank()-2])
	if err != nil {
		return nil
	}
	L := append(batch, a.Q.last(2), a.K.last(2))
	for _, b := range a.Biases {
		if b.rank() > len(L) {
			return nil
		}
		for i, d := range b.Shape {
			if l := L[len(L)-b.rank()+i]; d != 1 && d != l {
				return nil
			}
		}
	}
	return L
}

// gpuAttentionEnv is passes.GPUAttentionEnv (OF3C_GPU_ATTENTION), through a
// variable of this package so its tests can set it.
var gpuAttentionEnv = func() string { return passes.GPUAttentionEnv() }

// flashFits is the condition of the GPUFlashAttention kernel
// (passes.GPUFlashAttention, which the memory planner models too).
func flashFits(a AttentionSpec) bool {
	dts, shp := a.operands()
	return passes.GPUFlashAttention(a.Mode, dts, shp)
}

// operands are q, k, v and the biases' types and shapes, in that order (what
// the passes' kernel conditions read).
func (a AttentionSpec) operands() ([]graph.DType, [][]int64) {
	dts := []graph.DType{a.Q.DType, a.K.DType, a.V.DType}
	shp := [][]int64{a.Q.Shape, a.K.Shape, a.V.Shape}
	for _, b := range a.Biases {
		dts = append(dts, b.DType)
		shp = append(shp, b.Shape)
	}
	return dts, shp
}

// flashMMAOverFFMA: where a flash kernel runs, bf16/fp16 attention that the
// tensor-core kernel fits takes it rather than the FFMA kernel — measured
// 8.9× faster on an H200 (triangle attention N = 1024, H 4, C 32, mask +
// pair bias: 7.2 vs 63.6 ms; scripts/gpu/flash_check time), same memory.
// flashMMAOverSDPA: it also takes it where MLX's SDPA would run without a
// summed mask (a key mask alone, no bias). Off: not measured against SDPA
// there. (Where SDPA needs a full-size summed mask the tensor-core kernel
// is taken regardless; see AttentionPath.) Variables so that tests can set
// them; docs/notes/2026-12-03-gpu-flash-attention.md and
// docs/notes/2026-12-03-session6-gpu.md have the kernel numbers.
var flashMMAOverFFMA, flashMMAOverSDPA = true, false

// flashMMAFits is the condition of the tensor-core flash kernel
// (passes.GPUFlashAttentionMMA).
func flashMMAFits(a AttentionSpec) bool {
	dts, shp := a.operands()
	return passes.GPUFlashAttentionMMA(a.Mode, dts, shp)
}

// sdpaMaskFull reports whether the biases sum to a mask as large as the
// logits (e.g. a triangle attention's [B,1,1,K] mask plus its [1,H,Q,K] pair
// bias): the fused SDPA path would then materialise a [B,H,Q,K] tensor,
// which is what the flash kernel avoids.
func sdpaMaskFull(a AttentionSpec) bool {
	L := biasedLogitsShape(a)
	if L == nil || len(a.Biases) == 0 {
		return false
	}
	var sum []int64
	for _, b := range a.Biases {
		if sum == nil {
			sum = b.Shape
		} else if m, err := shapes.Broadcast(sum, b.Shape); err == nil {
			sum = m
		} else {
			return false
		}
	}
	if len(sum) > len(L) {
		return false
	}
	pad := append(slices.Repeat([]int64{1}, len(L)-len(sum)), sum...)
	return slices.Equal(pad, L)
}

// sdpaFits is the condition of MLX's fused SDPA kernel: bf16/fp16 q, k, v
// of one dtype, head size a multiple of 8 up to 128 and equal for q and v,
// rank ≥ 3 (heads on axis −3), and biases that sum to a mask broadcasting
// into the [batch.., Q, K] logits.
func sdpaFits(a AttentionSpec) bool {
	dt := a.Q.DType
	if dt != graph.BFloat16 && dt != graph.Float16 || a.K.DType != dt || a.V.DType != dt {
		return false
	}
	c := a.Q.last(1)
	if c <= 0 || c%8 != 0 || c > 128 || a.V.last(1) != c || a.Q.rank() < 3 || a.K.rank() < 3 || a.V.rank() < 3 {
		return false
	}
	batch, err := shapes.Broadcast(a.Q.Shape[:a.Q.rank()-2], a.K.Shape[:a.K.rank()-2], a.V.Shape[:a.V.rank()-2])
	if err != nil {
		return false
	}
	full := append(batch, a.Q.last(2), a.K.last(2))
	var sum []int64
	for _, b := range a.Biases {
		if b.rank() > len(full) {
			return false
		}
		if sum == nil {
			sum = b.Shape
		} else if sum, err = shapes.Broadcast(sum, b.Shape); err != nil {
			return false
		}
	}
	if sum != nil {
		if f, err := shapes.Broadcast(full, sum); err != nil || !slices.Equal(f, full) {
			return false
		}
	}
	return true
}

// promote is the dtype MLX gives a binary op of a and b (floats only).
func promote(a, b graph.DType) graph.DType {
	switch {
	case a == b:
		return a
	case a == graph.Float64 || b == graph.Float64:
		return graph.Float64
	}
	return graph.Float32 // f32 with anything, or f16 with bf16
}

// SwiGLUPath decides how an of3c.SwiGLU over x and W runs.
func SwiGLUPath(o Options, x, w Operand) Path {
	if o.Device == "cpu" && o.fastKernels() && promote(x.DType, w.DType) == graph.Float32 {
		return SwiGLUCPUFused
	}
	return SwiGLUMLX
}

// accDType is the dtype a pair op accumulates in: f64 for f64, else f32.
func accDType(dt graph.DType) graph.DType {
	if dt == graph.Float64 {
		return graph.Float64
	}
	return graph.Float32
}

// TriangleMultiplicationPath decides how an of3c.TriangleMultiplication
// over x [*, N, N, c] with row_chunk rc runs.
func TriangleMultiplicationPath(o Options, x Operand, rc int64) Path {
	if splits(rc, x.last(2)) {
		return TriMulBlocked
	}
	if o.Device == "cpu" && o.fastKernels() && accDType(x.DType) == graph.Float32 {
		return TriMulCPUFused
	}
	return TriMulMLX
}

// OuterProductMeanPath decides how an of3c.OuterProductMean over
// a [*, S, I, c] with row_chunk rc runs.
func OuterProductMeanPath(o Options, a Operand, rc int64) Path {
	if splits(rc, a.last(2)) {
		return OPMBlocked
	}
	return OPMWhole
}

// LayerNormPath decides how a LayerNormalization over x's axes [axis, rank)
// runs.
func LayerNormPath(o Options, x Operand, axis int64) Path {
	if o.Device == "cpu" && o.fastKernels() && x.DType != graph.Float64 {
		return LayerNormCPUFused
	}
	if o.Device == "gpu" && o.fastKernels() && (x.DType == graph.BFloat16 || x.DType == graph.Float16) &&
		gpuLayerNormEnv() != "mlx" {
		if a, err := shapes.NormAxis(axis, x.rank()); err == nil {
			inner := int64(1)
			for _, d := range x.Shape[a:] {
				if d <= 0 || inner > gpuLayerNormMax { // unknown at compile time, or already too many
					inner = -1
					break
				}
				inner *= d
			}
			if inner >= 1 && inner <= gpuLayerNormMax {
				return LayerNormGPUHalf
			}
		}
	}
	return LayerNormMLX
}

// gpuLayerNormMax is internal/mlx's GPULayerNorm limit on the normalised
// axes' size (kGPULayerNormMax in gpu_kernels.h).
const gpuLayerNormMax = 1024

// gpuLayerNormEnv reads OF3C_GPU_LAYERNORM ("mlx": MLX's layer_norm on f32
// copies, for comparisons); a variable so tests can stand in for it.
var gpuLayerNormEnv = func() string { return os.Getenv("OF3C_GPU_LAYERNORM") }

// attentionSpecOf describes an of3c.Attention node with operands in.
func attentionSpecOf(n *graph.Node, in []Operand) AttentionSpec {
	at := func(i int) Operand {
		if i < len(in) {
			return in[i]
		}
		return Operand{}
	}
	a := AttentionSpec{
		Mode: n.AttrString("mode", graph.AttentionModeQK),
		Q:    at(0), K: at(1), V: at(2),
		BatchChunk: n.AttrInt("batch_chunk", 0), QueryChunk: n.AttrInt("query_chunk", 0), KVChunk: n.AttrInt("kv_chunk", 0),
	}
	if a.Mode != graph.AttentionModeQK {
		a.Q, a.K = Operand{}, Operand{}
	}
	for i := 3; i < len(in); i++ {
		if in[i].present() {
			a.Biases = append(a.Biases, in[i])
		}
	}
	return a
}

// decide applies the decision function of n's op to its operands (nil
// entries: absent inputs); "" for ops without lowering paths.
func decide(o Options, n *graph.Node, in []Operand) Path {
	at := func(i int) Operand {
		if i < len(in) {
			return in[i]
		}
		return Operand{}
	}
	switch n.QualifiedOp() {
	case graph.FusedDomain + ".Attention":
		return AttentionPath(o, attentionSpecOf(n, in))
	case graph.FusedDomain + ".SwiGLU":
		return SwiGLUPath(o, at(0), at(1))
	case graph.FusedDomain + ".TriangleMultiplication":
		return TriangleMultiplicationPath(o, at(0), n.AttrInt("row_chunk", 0))
	case graph.FusedDomain + ".OuterProductMean":
		return OuterProductMeanPath(o, at(0), n.AttrInt("row_chunk", 0))
	case "LayerNormalization":
		return LayerNormPath(o, at(0), n.AttrInt("axis", -1))
	case graph.FusedDomain + ".ChunkMap":
		_, inAxes, _, err := graph.ChunkMapBody(n)
		if err != nil {
			return ""
		}
		return ChunkMapPath(o, chunkMapRows(in, inAxes), n.AttrInt("chunk", 0))
	}
	return ""
}

// ChunkMapPath decides how an of3c.ChunkMap over rows rows with chunk c
// runs: blocks sequenced one after the other when c splits the rows.
func ChunkMapPath(o Options, rows, c int64) Path {
	if splits(c, rows) {
		return RegionSequenced
	}
	return RegionWhole
}

// Lowering is the path one fused node takes.
type Lowering struct {
	Node string `json:"node"`
	Op   string `json:"op"`
	Path Path   `json:"path"`
	// Block is the chunk a CPU lowering chose by itself for the traced
	// shapes (attention's batch_chunk, SwiGLU's row_chunk under
	// passes.CPUAttentionBlock and CPUSwiGLUBlock; 0: none). Set only in
	// Program.Lowerings.
	Block int64 `json:"block,omitempty"`
}

// deviceDType is the graph dtype a value of dtype dt has on o's device.
func deviceDType(o Options, dt graph.DType) graph.DType {
	switch dt {
	case graph.Float32:
		return o.computeDType()
	case graph.Float64:
		if o.Device == "gpu" {
			return graph.Float32
		}
	}
	return dt
}

// PlanLowerings decides, from the graph's types, the path of every node
// that has lowering paths, in graph order: what a run on o's device takes
// (a dim that is symbolic in the graph is taken to be larger than any
// chunk). A run decides again for its concrete shapes and records what it
// took (Program.Lowerings); the two agree unless a chunk attribute turns
// out to cover a whole symbolic dim.
func PlanLowerings(g *graph.Graph, o Options) ([]Lowering, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("codegen: %w", err)
	}
	syms, fresh := map[string]int64{}, int64(-1)
	operand := func(v *graph.Value) Operand {
		if v == nil || !v.Type.Ranked {
			return Operand{}
		}
		op := Operand{DType: deviceDType(o, v.Type.DType), Shape: make([]int64, len(v.Type.Shape))}
		for i, d := range v.Type.Shape {
			switch {
			case d.IsStatic():
				op.Shape[i] = d.Val
			case d.IsUnknown(): // equal to nothing else
				fresh--
				op.Shape[i] = fresh
			default: // the same symbol (or expression) gets the same number
				k := d.String()
				if _, ok := syms[k]; !ok {
					fresh--
					syms[k] = fresh
				}
				op.Shape[i] = syms[k]
			}
		}
		return op
	}
	var out []Lowering
	var walk func(nodes []*graph.Node)
	walk = func(nodes []*graph.Node) {
		for _, n := range nodes {
			in := make([]Operand, len(n.Inputs))
			for i, v := range n.Inputs {
				in[i] = operand(v)
			}
			if p := decide(o, n, in); p != "" {
				out = append(out, Lowering{Node: nodeName(n), Op: n.QualifiedOp(), Path: p})
			}
			// A region's body is lowered with the same decisions (its
			// split axis is the symbol chunk_rows).
			if body, _, _, err := graph.ChunkMapBody(n); err == nil && n.QualifiedOp() == graph.FusedDomain+".ChunkMap" {
				walk(body.Nodes)
			}
		}
	}
	walk(g.Nodes)
	return out, nil
}

// loweringLog records what a program's traces chose, by node.
type loweringLog struct {
	mu    sync.Mutex
	order []*graph.Node
	by    map[*graph.Node]Lowering
}

// operands describes traced values for the decisions.
func (t *tracer) operands(in []*val) []Operand {
	ops := make([]Operand, len(in))
	for i, v := range in {
		if v != nil {
			ops[i] = Operand{DType: t.p.devDType(v.dt), Shape: v.shape}
		}
	}
	return ops
}

// choose decides n's path for the traced operands and records it.
func (t *tracer) choose(n *graph.Node, ops []Operand) Path {
	p := decide(t.p.opts, n, ops)
	t.record(n, p, 0)
	return p
}

// record notes that n took path p (with a self-chosen block).
func (t *tracer) record(n *graph.Node, p Path, block int64) {
	l := &t.p.lowered
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.by == nil {
		l.by = map[*graph.Node]Lowering{}
	}
	if _, ok := l.by[n]; !ok {
		l.order = append(l.order, n)
	}
	l.by[n] = Lowering{Node: nodeName(n), Op: n.QualifiedOp(), Path: p, Block: block}
}

// Lowerings returns the path each fused node took in the latest trace
// (graph order; empty before the first Run).
func (p *Program) Lowerings() []Lowering {
	l := &p.lowered
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Lowering, 0, len(l.order))
	for _, n := range l.order {
		out = append(out, l.by[n])
	}
	return out
}

// FormatLowerings renders lowerings as "path×count" per path, sorted, e.g.
// "attention/cpu-fused×4 swiglu/cpu-fused×2".
func FormatLowerings(ls []Lowering) string {
	count := map[Path]int{}
	for _, l := range ls {
		count[l.Path]++
	}
	keys := make([]string, 0, len(count))
	for p := range count {
		keys = append(keys, string(p))
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s×%d", k, count[Path(k)])
	}
	return b.String()
}
