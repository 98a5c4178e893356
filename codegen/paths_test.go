package codegen

import (
	"slices"
	"testing"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/passes"
	"github.com/of3c/of3c/runtime/ref"
)

func op(dt graph.DType, shape ...int64) Operand { return Operand{DType: dt, Shape: shape} }

// The decisions need no device: they take the device, the dtypes on it and
// the shapes.
func TestAttentionPaths(t *testing.T) {
	// This table: the decisions without the flash kernel (as before it
	// existed); TestAttentionFlashPaths has the default.
	setAttentionEnv(t, "noflash")
	const N = 384
	bf, f16, f32, f64 := graph.BFloat16, graph.Float16, graph.Float32, graph.Float64
	// OF3 triangle attention: q, k, v [N, H, N, c], a key mask [N, 1, 1, N]
	// and a pair bias [1, H, N, N].
	tri := func(dt graph.DType, c int64) AttentionSpec {
		return AttentionSpec{Mode: graph.AttentionModeQK,
			Q: op(dt, N, 4, N, c), K: op(dt, N, 4, N, c), V: op(dt, N, 4, N, c),
			Biases: []Operand{op(f32, N, 1, 1, N), op(f32, 1, 4, N, N)}}
	}
	with := func(a AttentionSpec, f func(*AttentionSpec)) AttentionSpec { f(&a); return a }
	gpu, cpu := Options{Device: "gpu"}, Options{Device: "cpu"}
	slow := Options{Device: "cpu", NoFastKernels: true}
	for _, c := range []struct {
		name string
		o    Options
		a    AttentionSpec
		want Path
	}{
		// The GPU's fused kernel for bf16/fp16 attention: the path that
		// must not be lost.
		{"gpu bf16 triangle attention", gpu, tri(bf, 32), AttentionGPUSDPA},
		{"gpu fp16", gpu, tri(f16, 32), AttentionGPUSDPA},
		{"gpu bf16 head 128", gpu, tri(bf, 128), AttentionGPUSDPA},
		{"gpu bf16 no bias", gpu, with(tri(bf, 64), func(a *AttentionSpec) { a.Biases = nil }), AttentionGPUSDPA},
		{"gpu bf16 symbolic N", gpu, AttentionSpec{Mode: "qk", Q: op(bf, -2, 4, -2, 32), K: op(bf, -2, 4, -2, 32), V: op(bf, -2, 4, -2, 32),
			Biases: []Operand{op(f32, -2, 1, 1, -2), op(f32, 1, 4, -2, -2)}}, AttentionGPUSDPA},
		{"gpu bf16 head 160: too wide", gpu, tri(bf, 160), AttentionGPUSoftmaxBias},
		{"gpu bf16 head 36: not a multiple of 8", gpu, tri(bf, 36), AttentionGPUSoftmaxBias},
		{"gpu bf16 rank 2", gpu, AttentionSpec{Mode: "qk", Q: op(bf, N, 32), K: op(bf, N, 32), V: op(bf, N, 32)}, AttentionGPUSoftmax},
		{"gpu bf16 mixed dtypes", gpu, with(tri(bf, 32), func(a *AttentionSpec) { a.V.DType = f16 }), AttentionGPUSoftmaxBias},
		{"gpu bf16 chunked", gpu, with(tri(bf, 32), func(a *AttentionSpec) { a.QueryChunk = 64 }), AttentionGPUSoftmaxBias},
		{"gpu bf16 kv chunked", gpu, with(tri(bf, 32), func(a *AttentionSpec) { a.KVChunk = 64 }), AttentionLMA},
		{"gpu bf16 bias larger than the logits", gpu, with(tri(bf, 32), func(a *AttentionSpec) { a.Biases = []Operand{op(f32, 2, N, 4, N, N)} }), AttentionGPUSoftmax},
		{"gpu f32", gpu, tri(f32, 32), AttentionGPUSoftmaxBias},
		{"gpu f32 five biases", gpu, with(tri(f32, 32), func(a *AttentionSpec) {
			a.Biases = slices.Repeat([]Operand{op(f32, 1, 4, N, N)}, 5)
		}), AttentionGPUSoftmax},
		{"gpu f32 fast kernels off", Options{Device: "gpu", NoFastKernels: true}, tri(f32, 32), AttentionGPUSoftmax},
		{"gpu bias_only", gpu, AttentionSpec{Mode: "bias_only", V: op(f32, N, 4, N, 32), Biases: []Operand{op(f32, N, 4, N, N)}}, AttentionGPUSoftmax},

		{"cpu f32", cpu, tri(f32, 32), AttentionCPUFused},
		{"cpu f32 chunked: the fused kernel ignores chunks", cpu, with(tri(f32, 32), func(a *AttentionSpec) { a.KVChunk = 64 }), AttentionCPUFused},
		{"cpu bf16: widened, one-pass biased softmax", cpu, tri(bf, 32), AttentionCPUSoftmaxBias},
		{"cpu bf16 no bias", cpu, with(tri(bf, 32), func(a *AttentionSpec) { a.Biases = nil }), AttentionCPUSoftmax},
		{"cpu bf16 kv chunked", cpu, with(tri(bf, 32), func(a *AttentionSpec) { a.KVChunk = 100 }), AttentionLMA},
		{"cpu bf16 kv chunk covers the keys", cpu, with(tri(bf, 32), func(a *AttentionSpec) { a.KVChunk = N }), AttentionCPUSoftmaxBias},
		{"cpu f64", cpu, tri(f64, 32), AttentionDeferred},
		{"cpu fast kernels off", slow, tri(f32, 32), AttentionDeferred},
		{"cpu bias_only", cpu, AttentionSpec{Mode: "bias_only", V: op(f32, N, 4, N, 32), Biases: []Operand{op(f32, N, 4, N, N)}}, AttentionCPUSoftmax},
	} {
		if got := AttentionPath(c.o, c.a); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

func TestOtherPaths(t *testing.T) {
	gpu, cpu := Options{Device: "gpu"}, Options{Device: "cpu"}
	slow := Options{Device: "cpu", NoFastKernels: true}
	x32, xbf := op(graph.Float32, 256, 256, 128), op(graph.BFloat16, 256, 256, 128)
	w32, wbf := op(graph.Float32, 128, 512), op(graph.BFloat16, 128, 512)
	for _, c := range []struct {
		got, want Path
	}{
		{SwiGLUPath(cpu, x32, w32), SwiGLUCPUFused},
		{SwiGLUPath(cpu, xbf, wbf), SwiGLUMLX},
		{SwiGLUPath(slow, x32, w32), SwiGLUMLX},
		{SwiGLUPath(gpu, x32, w32), SwiGLUMLX},
		{TriangleMultiplicationPath(cpu, x32, 0), TriMulCPUFused},
		{TriangleMultiplicationPath(cpu, xbf, 0), TriMulCPUFused}, // accumulates in f32
		{TriangleMultiplicationPath(cpu, x32, 64), TriMulBlocked},
		{TriangleMultiplicationPath(cpu, x32, 256), TriMulCPUFused}, // one block
		{TriangleMultiplicationPath(gpu, x32, 64), TriMulBlocked},
		{TriangleMultiplicationPath(gpu, x32, 0), TriMulMLX},
		{TriangleMultiplicationPath(slow, x32, 0), TriMulMLX},
		{TriangleMultiplicationPath(cpu, op(graph.Float32, -2, -2, 128), 64), TriMulBlocked},
		{OuterProductMeanPath(cpu, op(graph.Float32, 4, 256, 32), 0), OPMWhole},
		{OuterProductMeanPath(gpu, op(graph.Float32, 4, 256, 32), 64), OPMBlocked},
		{LayerNormPath(cpu, xbf, -1), LayerNormCPUFused},
		{LayerNormPath(cpu, op(graph.Float64, 3, 4), -1), LayerNormMLX},
		{LayerNormPath(gpu, x32, -1), LayerNormMLX},
		{LayerNormPath(gpu, xbf, -1), LayerNormGPUHalf},
		{LayerNormPath(gpu, op(graph.Float16, -1, 384), 1), LayerNormGPUHalf},
		{LayerNormPath(gpu, op(graph.BFloat16, 4, 8, 128), 1), LayerNormGPUHalf}, // 1024 elements
		{LayerNormPath(gpu, op(graph.BFloat16, 4, 16, 128), 1), LayerNormMLX},    // 2048: above the kernel's limit
		{LayerNormPath(gpu, op(graph.BFloat16, 4, -2, 128), 1), LayerNormMLX},    // size unknown at compile time
		{LayerNormPath(gpu, op(graph.BFloat16, 4, 128), 5), LayerNormMLX},        // bad axis: MLX reports it
		{LayerNormPath(Options{Device: "gpu", NoFastKernels: true}, xbf, -1), LayerNormMLX},
	} {
		if c.got != c.want {
			t.Errorf("%s, want %s", c.got, c.want)
		}
	}
}

// Every path a decision returns is documented in PathTable, once.
func TestPathTable(t *testing.T) {
	seen := map[Path]bool{}
	for _, p := range PathTable {
		if seen[p.Path] {
			t.Errorf("%s listed twice", p.Path)
		}
		seen[p.Path] = true
		if p.Op == "" || p.Devices == "" || p.When == "" || p.Does == "" {
			t.Errorf("%s: incomplete entry %+v", p.Path, p)
		}
	}
	dts := []graph.DType{graph.Float32, graph.BFloat16, graph.Float16, graph.Float64}
	for _, o := range []Options{{Device: "cpu"}, {Device: "gpu"}, {Device: "cpu", NoFastKernels: true}, {Device: "gpu", NoFastKernels: true}} {
		for _, dt := range dts {
			for _, c := range []int64{32, 160} {
				for _, nb := range []int{0, 1, 5} {
					for _, kc := range []int64{0, 8} {
						for _, mode := range []string{"qk", "bias_only"} {
							a := AttentionSpec{Mode: mode, Q: op(dt, 2, 4, 16, c), K: op(dt, 2, 4, 16, c), V: op(dt, 2, 4, 16, c), KVChunk: kc,
								Biases: slices.Repeat([]Operand{op(graph.Float32, 1, 4, 16, 16)}, nb)}
							if p := AttentionPath(o, a); !seen[p] {
								t.Errorf("AttentionPath(%+v, %+v) = %q, not in PathTable", o, a, p)
							}
						}
					}
				}
			}
			x := op(dt, 8, 8, 16)
			for _, p := range []Path{SwiGLUPath(o, x, op(dt, 16, 32)), TriangleMultiplicationPath(o, x, 0), TriangleMultiplicationPath(o, x, 2),
				OuterProductMeanPath(o, x, 0), OuterProductMeanPath(o, x, 2), LayerNormPath(o, x, -1)} {
				if !seen[p] {
					t.Errorf("%q is not in PathTable", p)
				}
			}
		}
	}
}

// ofBlock is a small OF3-shaped graph over a symbolic N: a triangle
// attention (heads split out of a projection), a SwiGLU transition and a
// triangle multiplication.
func ofBlock(t *testing.T, triRowChunk int64) *graph.Graph {
	b := graph.NewBuilder("block", 17)
	b.Opset(graph.FusedDomain, 1)
	z := b.Input("z", "f32[N,N,16]")
	mask := b.Input("mask", "f32[N,1,1,N]")
	heads := func(name string, seed uint64) *graph.Value {
		p := b.Op("MatMul", z, b.Random(name, "f32[16,32]", seed))
		p = b.Op("Reshape", p, b.ConstI64(name+"_shape", []int64{4}, 0, 0, 4, 8))
		return b.Op("Transpose", p, graph.AInts("perm", 0, 2, 1, 3)) // [N, 4, N, 8]
	}
	bias := b.Op("Transpose", b.Op("MatMul", z, b.Random("wb", "f32[16,4]", 4)), graph.AInts("perm", 2, 0, 1))
	bias = b.Op("Unsqueeze", bias, b.ConstI64("ax0", []int64{1}, 0)) // [1, 4, N, N]
	o := b.Op("of3c.Attention", heads("wq", 1), heads("wk", 2), heads("wv", 3), mask, bias)
	o = b.Op("Reshape", b.Op("Transpose", o, graph.AInts("perm", 0, 2, 1, 3)), b.ConstI64("merge", []int64{3}, 0, 0, 32))
	z2 := b.Op("Add", z, b.Op("MatMul", o, b.Random("wo", "f32[32,16]", 5)))
	s := b.Op("of3c.SwiGLU", z2, b.Random("w1", "f32[16,64]", 6), b.Random("w2", "f32[32,16]", 7))
	z3 := b.Op("Add", z2, s)
	pm := b.Input("pair_mask", "f32[N,N,1]")
	tm := b.Op("of3c.TriangleMultiplication", z3, pm, b.Random("wt", "f32[16,64]", 8), graph.AInt("row_chunk", triRowChunk))
	b.Output(b.Op("Add", z3, tm))
	return build(t, b)
}

func paths(ls []Lowering) []Path {
	var out []Path
	for _, l := range ls {
		out = append(out, l.Path)
	}
	return out
}

// OF3C_GPU_LAYERNORM=mlx keeps bf16/fp16 LayerNorms on MLX's layer_norm.
func TestLayerNormEnv(t *testing.T) {
	old := gpuLayerNormEnv
	gpuLayerNormEnv = func() string { return "mlx" }
	t.Cleanup(func() { gpuLayerNormEnv = old })
	if p := LayerNormPath(Options{Device: "gpu"}, op(graph.BFloat16, 8, 128), -1); p != LayerNormMLX {
		t.Errorf("OF3C_GPU_LAYERNORM=mlx: %s, want %s", p, LayerNormMLX)
	}
}

// setAttentionEnv stands in for OF3C_GPU_ATTENTION for one test.
func setAttentionEnv(t *testing.T, v string) {
	old := gpuAttentionEnv
	gpuAttentionEnv = func() string { return v }
	t.Cleanup(func() { gpuAttentionEnv = old })
}

// The GPU's flash kernels: taken for every f32 attention they fit (as fast as
// the unfused path, at half its peak: measured); bf16/fp16 keep MLX's
// fused SDPA unless SDPA would write a full-size summed mask and the
// tensor-core kernel fits (any flash kernel under a memory plan); where a
// flash kernel runs for bf16/fp16, the tensor-core one.
func TestAttentionFlashPaths(t *testing.T) {
	setAttentionEnv(t, "")
	const N = 2048
	bf, f16, f32, f64 := graph.BFloat16, graph.Float16, graph.Float32, graph.Float64
	tri := func(dt graph.DType, c int64) AttentionSpec {
		return AttentionSpec{Mode: graph.AttentionModeQK,
			Q: op(dt, N, 4, N, c), K: op(dt, N, 4, N, c), V: op(dt, N, 4, N, c),
			Biases: []Operand{op(f32, N, 1, 1, N), op(f32, 1, 4, N, N)}}
	}
	with := func(a AttentionSpec, f func(*AttentionSpec)) AttentionSpec { f(&a); return a }
	gpu := Options{Device: "gpu"}
	budgeted := Options{Device: "gpu", Budgeted: true}
	// OF3's attention with pair bias: [1, 16, N, 24], pair bias [1, 16, N, N], mask [1, 1, 1, N].
	apb := func(dt graph.DType) AttentionSpec {
		return AttentionSpec{Mode: "qk", Q: op(dt, 1, 16, N, 24), K: op(dt, 1, 16, N, 24), V: op(dt, 1, 16, N, 24),
			Biases: []Operand{op(f32, 1, 1, 1, N), op(f32, 1, 16, N, N)}}
	}
	for _, c := range []struct {
		name string
		env  string
		o    Options
		a    AttentionSpec
		want Path
	}{
		{"f32 triangle attention at long N", "", gpu, tri(f32, 32), AttentionGPUFlash},
		{"f32 symbolic N", "", gpu, AttentionSpec{Mode: "qk", Q: op(f32, -2, 4, -2, 32), K: op(f32, -2, 4, -2, 32), V: op(f32, -2, 4, -2, 32),
			Biases: []Operand{op(f32, -2, 1, 1, -2), op(f32, 1, 4, -2, -2)}}, AttentionGPUFlash},
		{"f32 head 48", "", gpu, tri(f32, 48), AttentionGPUFlash},
		{"f32 head 8", "", gpu, tri(f32, 8), AttentionGPUFlash},
		{"f32 head 72: too wide", "", gpu, tri(f32, 72), AttentionGPUSoftmaxBias},
		{"f32 chunk attributes ignored", "", gpu, with(tri(f32, 32), func(a *AttentionSpec) { a.KVChunk, a.QueryChunk = 64, 64 }), AttentionGPUFlash},
		{"f32 no bias", "", gpu, with(tri(f32, 32), func(a *AttentionSpec) { a.Biases = nil }), AttentionGPUFlash},
		{"f32 five biases", "", gpu, with(tri(f32, 32), func(a *AttentionSpec) { a.Biases = slices.Repeat([]Operand{op(f32, 1, 4, N, N)}, 5) }), AttentionGPUSoftmax},
		{"f32 bias larger than the logits", "", gpu, with(tri(f32, 32), func(a *AttentionSpec) { a.Biases = []Operand{op(f32, 2, N, 4, N, N)} }), AttentionGPUSoftmax},
		{"f64 bias", "", gpu, with(tri(f32, 32), func(a *AttentionSpec) { a.Biases = []Operand{op(f64, 1, 4, N, N)} }), AttentionGPUSoftmax},
		{"f32 head sizes of q and v differ", "", gpu, with(tri(f32, 32), func(a *AttentionSpec) { a.V = op(f32, N, 4, N, 16) }), AttentionGPUFlash},
		{"q and k head sizes differ", "", gpu, with(tri(f32, 32), func(a *AttentionSpec) { a.K = op(f32, N, 4, N, 16) }), AttentionGPUSoftmaxBias},
		{"bf16 triangle attention: SDPA would write a [N,H,N,N] mask", "", gpu, tri(bf, 32), AttentionGPUFlashMMA},
		{"bf16 triangle attention under a budget: SDPA would write a [N,H,N,N] mask", "", budgeted, tri(bf, 32), AttentionGPUFlashMMA},
		{"fp16 triangle attention under a budget", "", budgeted, tri(f16, 32), AttentionGPUFlashMMA},
		{"bf16 attention with pair bias: mask as large as the logits", "", gpu, apb(bf), AttentionGPUFlashMMA},
		{"bf16 attention with pair bias under a budget: mask as large as the logits", "", budgeted, apb(bf), AttentionGPUFlashMMA},
		{"bf16 key mask only under a budget: SDPA", "", budgeted, with(tri(bf, 32), func(a *AttentionSpec) { a.Biases = a.Biases[:1] }), AttentionGPUSDPA},
		{"f32 under a budget", "", budgeted, tri(f32, 32), AttentionGPUFlash},
		{"bf16 key mask only: SDPA", "", gpu, with(tri(bf, 32), func(a *AttentionSpec) { a.Biases = a.Biases[:1] }), AttentionGPUSDPA},
		{"bf16 no bias: SDPA", "", gpu, with(tri(bf, 32), func(a *AttentionSpec) { a.Biases = nil }), AttentionGPUSDPA},
		{"bf16 head 128: SDPA", "", gpu, tri(bf, 128), AttentionGPUSDPA},
		{"bf16 head 36: no SDPA, the mma kernel", "", gpu, tri(bf, 36), AttentionGPUFlashMMA},
		{"bf16 q, k with f32 v: the FFMA kernel", "", budgeted, with(tri(bf, 32), func(a *AttentionSpec) { a.V = op(f32, N, 4, N, 32) }), AttentionGPUFlash},
		{"bias_only (MSA pair-weighted averaging)", "", gpu, AttentionSpec{Mode: "bias_only", V: op(f32, N, 8, N, 8),
			Biases: []Operand{op(f32, 1, 8, N, N), op(f32, N, N)}}, AttentionGPUFlash},
		{"bias_only bias enlarges the batch", "", gpu, AttentionSpec{Mode: "bias_only", V: op(f32, 8, N, 8),
			Biases: []Operand{op(f32, 4, 8, N, N)}}, AttentionGPUSoftmax},
		{"fast kernels off", "", Options{Device: "gpu", NoFastKernels: true}, tri(f32, 32), AttentionGPUSoftmax},
		{"cpu unaffected", "flash", Options{Device: "cpu"}, tri(f32, 32), AttentionCPUFused},
		{"forced on: bf16 key mask only", "flash", gpu, with(tri(bf, 32), func(a *AttentionSpec) { a.Biases = a.Biases[:1] }), AttentionGPUFlashMMA},
		{"forced on: f32", "flash", gpu, tri(f32, 32), AttentionGPUFlash},
		{"forced off", "noflash", gpu, tri(f32, 32), AttentionGPUSoftmaxBias},
		{"forced off bf16", "noflash", gpu, tri(bf, 32), AttentionGPUSDPA},
		{"mma forced: bf16 triangle attention", "flash-mma", gpu, tri(bf, 32), AttentionGPUFlashMMA},
		{"mma forced: fp16 head 8", "flash-mma", gpu, tri(f16, 8), AttentionGPUFlashMMA},
		{"mma forced: f32 keeps the FFMA kernel", "flash-mma", gpu, tri(f32, 32), AttentionGPUFlash},
		{"mma forced: head 72 fits neither", "flash-mma", gpu, tri(bf, 72), AttentionGPUSDPA},
		{"FFMA forced: bf16", "flash-ffma", gpu, tri(bf, 32), AttentionGPUFlash},
	} {
		setAttentionEnv(t, c.env)
		if got := AttentionPath(c.o, c.a); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
	// The two rules of the tensor-core kernel, switched.
	setAttentionEnv(t, "")
	defer func(f, s bool) { flashMMAOverFFMA, flashMMAOverSDPA = f, s }(flashMMAOverFFMA, flashMMAOverSDPA)
	flashMMAOverFFMA, flashMMAOverSDPA = false, false
	if got := AttentionPath(budgeted, tri(bf, 32)); got != AttentionGPUFlash {
		t.Errorf("mma off, budgeted bf16: %s", got)
	}
	flashMMAOverFFMA, flashMMAOverSDPA = true, true
	for _, c := range []struct {
		a    AttentionSpec
		want Path
	}{{tri(bf, 32), AttentionGPUFlashMMA}, {apb(f16), AttentionGPUFlashMMA}, {tri(f32, 32), AttentionGPUFlash}, {tri(bf, 128), AttentionGPUSDPA}} {
		if got := AttentionPath(gpu, c.a); got != c.want {
			t.Errorf("mma over SDPA, %v: %s, want %s", c.a.Q, got, c.want)
		}
	}
}

// At compile time, from the graph's types alone: a GPU bf16 compile plans
// the fused SDPA kernel for the triangle attention.
func TestPlanLowerings(t *testing.T) {
	setAttentionEnv(t, "noflash")
	g := ofBlock(t, 0)
	for _, c := range []struct {
		o    Options
		want []Path
	}{
		{Options{Device: "gpu", Precision: "bf16"}, []Path{AttentionGPUSDPA, SwiGLUMLX, TriMulMLX}},
		{Options{Device: "gpu", Precision: "fp16"}, []Path{AttentionGPUSDPA, SwiGLUMLX, TriMulMLX}},
		{Options{Device: "gpu"}, []Path{AttentionGPUSoftmaxBias, SwiGLUMLX, TriMulMLX}},
		{Options{Device: "cpu"}, []Path{AttentionCPUFused, SwiGLUCPUFused, TriMulCPUFused}},
		{Options{Device: "cpu", Precision: "bf16"}, []Path{AttentionCPUSoftmaxBias, SwiGLUMLX, TriMulCPUFused}},
		{Options{Device: "cpu", NoFastKernels: true}, []Path{AttentionDeferred, SwiGLUMLX, TriMulMLX}},
	} {
		ls, err := PlanLowerings(g, c.o)
		if err != nil {
			t.Fatal(err)
		}
		if got := paths(ls); !slices.Equal(got, c.want) {
			t.Errorf("%+v: %v, want %v", c.o, got, c.want)
		}
	}
	// By default the GPU plans the flash kernels: FFMA in fp32, tensor cores in
	// bf16/fp16 (SDPA would write the triangle attention's summed mask).
	setAttentionEnv(t, "")
	for _, c := range []struct {
		o    Options
		want Path
	}{
		{Options{Device: "gpu"}, AttentionGPUFlash},
		{Options{Device: "gpu", Precision: "bf16"}, AttentionGPUFlashMMA},
		{Options{Device: "gpu", Precision: "fp16"}, AttentionGPUFlashMMA},
		{Options{Device: "gpu", Precision: "bf16", Budgeted: true}, AttentionGPUFlashMMA},
	} {
		ls, err := PlanLowerings(g, c.o)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := paths(ls), []Path{c.want, SwiGLUMLX, TriMulMLX}; !slices.Equal(got, want) {
			t.Errorf("%+v: %v, want %v", c.o, got, want)
		}
	}
	ls, err := PlanLowerings(ofBlock(t, 8), Options{Device: "gpu", Precision: "bf16"})
	if err != nil {
		t.Fatal(err)
	}
	if got := ls[2]; got.Path != TriMulBlocked || got.Op != "of3c.TriangleMultiplication" || got.Node == "" {
		t.Errorf("row-chunked triangle multiplication: %+v", got)
	}
	if _, err := PlanLowerings(g, Options{Device: "tpu"}); err == nil {
		t.Error("PlanLowerings accepted device tpu")
	}
}

// A run records the path each node took, the same as the compile-time plan,
// and the paths compute what the reference executor does.
func TestTracedLowerings(t *testing.T) {
	needMLX(t)
	const n = 12
	in := map[string]*graph.Tensor{
		"z":         randT(t, graph.Float32, []int64{n, n, 16}, 1, -1, 1),
		"mask":      randT(t, graph.Float32, []int64{n, 1, 1, n}, 2, -1, 0),
		"pair_mask": randT(t, graph.Float32, []int64{n, n, 1}, 3, 0, 1),
	}
	for _, rc := range []int64{0, 5} {
		g := ofBlock(t, rc)
		want, err := ref.Run(g, in)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range []Options{{}, {Precision: "bf16"}, {NoFastKernels: true}} {
			plan, err := PlanLowerings(g, o)
			if err != nil {
				t.Fatal(err)
			}
			p, err := NewProgram(g, o)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Lowerings(); len(got) != 0 {
				t.Errorf("lowerings before any run: %v", got)
			}
			outs, _, err := p.Run(in)
			if err != nil {
				t.Fatal(err)
			}
			got := p.Lowerings()
			p.Close()
			tol := 1e-5 // relative to the largest output (~1e6: random weights)
			if o.Precision == "bf16" {
				tol = 5e-2
			}
			for k, w := range want {
				if d := relDiff(t, outs[k], w); d > tol {
					t.Errorf("row_chunk %d, %+v: %s differs from the reference by %g (relative)", rc, o, k, d)
				}
			}
			if !slices.Equal(paths(got), paths(plan)) {
				t.Errorf("row_chunk %d, %+v: traced %v, planned %v", rc, o, paths(got), paths(plan))
			}
			for i := range got {
				if i < len(plan) && got[i].Node != plan[i].Node {
					t.Errorf("node %q traced, %q planned", got[i].Node, plan[i].Node)
				}
			}
		}
	}
}

// relDiff is the largest difference relative to the largest |want|.
func relDiff(t *testing.T, got, want *graph.Tensor) float64 {
	w, err := want.Float64s()
	if err != nil {
		t.Fatal(err)
	}
	scale := 1.0
	for _, x := range w {
		scale = max(scale, x, -x)
	}
	return maxAbsDiff(t, got, want) / scale
}

// The unfused attention paths on the CPU (the fused kernel serves every f32
// attention by default, so TestAttentionChunking alone never reaches them)
// against the reference executor, each asserted to be the one that ran.
func TestAttentionUnfusedPathsOnCPU(t *testing.T) {
	needMLX(t)
	in := attentionInputs(t, 3, 2, 10, 8)
	for _, c := range []struct {
		attrs []graph.NamedAttr
		opts  Options
		want  Path
	}{
		{nil, Options{}, AttentionCPUFused},
		{nil, Options{NoFastKernels: true}, AttentionDeferred},
		{[]graph.NamedAttr{graph.AInt("batch_chunk", 2), graph.AInt("query_chunk", 3)}, Options{NoFastKernels: true}, AttentionDeferred},
		{[]graph.NamedAttr{graph.AInt("kv_chunk", 4)}, Options{NoFastKernels: true}, AttentionLMA},
		{[]graph.NamedAttr{graph.AInt("batch_chunk", 1), graph.AInt("query_chunk", 4), graph.AInt("kv_chunk", 3)}, Options{NoFastKernels: true}, AttentionLMA},
	} {
		g := attentionGraph(t, c.attrs...)
		want := checkVsRef(t, g, in, 2e-6) // the default options
		p, err := NewProgram(g, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := p.Run(in)
		ls := p.Lowerings()
		p.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(ls) != 1 || ls[0].Path != c.want {
			t.Errorf("%v %+v: lowerings %v, want %s", c.attrs, c.opts, ls, c.want)
		}
		for k := range want {
			if d := maxAbsDiff(t, got[k], want[k]); d > 2e-6 {
				t.Errorf("%v %+v: %s differs from the fused path by %g", c.attrs, c.opts, k, d)
			}
		}
	}
}

// The CPU lowering blocks a large SwiGLU by the planner's rule
// (passes.CPUSwiGLUBlock), so the planner's estimate of a CPU compile is
// what runs. (This replaced a test that typed the rule's formula instead of
// asking the lowering.)
func TestSwiGLUBlocksByThePlannersRule(t *testing.T) {
	needMLX(t)
	const rows, c, h2 = 4096, 8, 512
	b := graph.NewBuilder("sw", 17)
	b.Opset(graph.FusedDomain, 1)
	x := b.Input("x", "f32[R,8]")
	b.Output(b.Op("of3c.SwiGLU", x, b.Random("w", "f32[8,512]", 3)))
	g := build(t, b)
	want := passes.CPUSwiGLUBlock(rows, h2)
	if want <= 0 || want >= rows {
		t.Fatalf("CPUSwiGLUBlock(%d, %d) = %d: the test needs a shape that is blocked", rows, h2, want)
	}
	in := map[string]*graph.Tensor{"x": randT(t, graph.Float32, []int64{rows, c}, 5, -1, 1)}
	for _, o := range []Options{{}, {NoFastKernels: true}} {
		p, err := NewProgram(g, o)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = p.Run(in)
		ls := p.Lowerings()
		p.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(ls) != 1 || ls[0].Block != want {
			t.Errorf("%+v: lowerings %+v, want row blocks of %d", o, ls, want)
		}
	}
	// Small enough: whole.
	small := map[string]*graph.Tensor{"x": randT(t, graph.Float32, []int64{64, c}, 5, -1, 1)}
	p, err := NewProgram(g, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, _, err := p.Run(small); err != nil {
		t.Fatal(err)
	}
	if ls := p.Lowerings(); len(ls) != 1 || ls[0].Block != 0 || ls[0].Path != SwiGLUCPUFused {
		t.Errorf("64 rows: %+v, want %s whole", ls, SwiGLUCPUFused)
	}
	checkVsRef(t, g, in, 1e-5)
}
