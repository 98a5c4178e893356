package codegen

import (
	"fmt"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/mlx"
	"github.com/of3c/of3c/internal/shapes"
	"github.com/of3c/of3c/passes"
)

func init() {
	register(lowerLayerNorm, "LayerNormalization")
	register(lowerRMSNorm, "RMSNormalization")
	register(lowerAttention, graph.FusedDomain+".Attention")
	register(lowerSwiGLU, graph.FusedDomain+".SwiGLU")
}

// isHalf reports whether an MLX dtype is 16-bit float.
func isHalf(d mlx.Dtype) bool { return d == mlx.Float16 || d == mlx.BFloat16 }

// toF32 converts half arrays to float32 and leaves others alone.
func (t *tracer) toF32(a *mlx.Array) *mlx.Array {
	if a != nil && isHalf(a.Dtype()) {
		return t.s.AsType(a, mlx.Float32)
	}
	return a
}

// normShapes flattens the normalised trailing axes [axis, rank) of x into one
// so MLX's fast layer_norm/rms_norm (last axis only) apply.
// x is cast to f32 unless keepX.
func normFlatten(t *tracer, x *val, axis int, keepX bool, params ...*val) (xa *mlx.Array, ps []*mlx.Array, lead []int, err error) {
	s := t.s
	inner := 1
	for _, d := range x.shape[axis:] {
		inner *= int(d)
	}
	lead = intsOf(x.shape[:axis])
	xa = t.arr(x)
	if !keepX {
		xa = t.toF32(xa)
	}
	if len(x.shape)-axis != 1 {
		xa = s.Reshape(xa, append(append([]int{}, lead...), inner)...)
	}
	for _, p := range params {
		if p == nil {
			ps = append(ps, nil)
			continue
		}
		pa := t.toF32(t.arr(p))
		// Scale and bias broadcast to the normalised shape.
		pa = s.BroadcastTo(pa, intsOf(x.shape[axis:])...)
		pa = s.Reshape(pa, inner)
		ps = append(ps, pa)
	}
	return xa, ps, lead, s.Err()
}

func lowerLayerNorm(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	s := t.s
	x := in[0]
	axis, err := shapes.NormAxis(n.AttrInt("axis", -1), x.rank())
	if err != nil {
		return nil, err
	}
	eps := n.AttrFloat("epsilon", 1e-5)
	var bias *val
	if len(in) > 2 {
		bias = in[2]
	}
	path := t.choose(n, t.operands(in))
	xa, ps, _, err := normFlatten(t, x, axis, path == LayerNormGPUHalf, in[1], bias)
	if err != nil {
		return nil, err
	}
	orig := t.ddt(x.dt)
	var y *mlx.Array
	switch path {
	case LayerNormCPUFused:
		y = s.FastLayerNorm(xa, ps[0], ps[1], eps)
	case LayerNormGPUHalf:
		y = s.GPULayerNorm(xa, ps[0], ps[1], eps)
	default:
		y = s.LayerNorm(xa, ps[0], ps[1], eps)
	}
	y = s.Reshape(y, intsOf(x.shape)...)
	if y != nil && y.Dtype() != orig {
		y = s.AsType(y, orig)
	}
	outs := []*val{t.dev(y, x.dt)}
	wantStats := false
	for _, o := range n.Outputs[1:] {
		if o != nil {
			wantStats = true
		}
	}
	if wantStats {
		// Mean and 1/σ over the normalised axes, kept as size-1 dims (ONNX
		// gives them the input's rank), in the stash type (f32).
		red := make([]int, 0, x.rank()-axis)
		for i := axis; i < x.rank(); i++ {
			red = append(red, i)
		}
		xf := t.toF32(t.arr(x))
		mean := s.Mean(xf, true, red...)
		variance := s.Mean(s.Square(s.Sub(xf, mean)), true, red...)
		inv := s.Rsqrt(s.Add(variance, s.Scalar(float64(eps), xf.Dtype())))
		outs = append(outs, t.dev(mean, graph.Float32), t.dev(inv, graph.Float32))
	}
	return outs, s.Err()
}

func lowerRMSNorm(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	s := t.s
	x := in[0]
	axis, err := shapes.NormAxis(n.AttrInt("axis", -1), x.rank())
	if err != nil {
		return nil, err
	}
	xa, ps, _, err := normFlatten(t, x, axis, false, in[1])
	if err != nil {
		return nil, err
	}
	y := s.RMSNorm(xa, ps[0], n.AttrFloat("epsilon", 1e-5))
	y = s.Reshape(y, intsOf(x.shape)...)
	if orig := t.ddt(x.dt); y != nil && y.Dtype() != orig {
		y = s.AsType(y, orig)
	}
	return t.one(y, x.dt)
}

func lowerSwiGLU(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	s := t.s
	x, w := in[0], in[1]
	var wout *val
	if len(in) > 2 {
		wout = in[2]
	}
	dt := x.dt
	if x.rank() < 1 || w.rank() != 2 {
		return nil, fmt.Errorf("SwiGLU needs x [*, c] and W [c, 2h]")
	}
	cin := x.shape[x.rank()-1]
	h2 := w.shape[1]
	if w.shape[0] != cin || h2%2 != 0 {
		return nil, fmt.Errorf("W %v does not fit x %v", w.shape, x.shape)
	}
	h := h2 / 2
	wa := t.arr(w)
	var wo *mlx.Array
	cout := h
	if wout != nil {
		wo = t.arr(wout)
		if wout.rank() != 2 || wout.shape[0] != h {
			return nil, fmt.Errorf("W_out %v does not fit hidden size %d", wout.shape, h)
		}
		cout = wout.shape[1]
	}
	rows := int64(1)
	for _, d := range x.shape[:x.rank()-1] {
		rows *= d
	}
	xa := s.Reshape(t.arr(x), int(rows), int(cin))
	path := t.choose(n, t.operands(in))
	block := func(xb *mlx.Array) *mlx.Array {
		y := t.matmul(xb, wa, dt) // one GEMM for both halves
		if path == SwiGLUCPUFused {
			act := s.FastSwiGLU(y)
			if wo != nil {
				act = t.matmul(act, wo, dt)
			}
			return act
		}
		yr := int64sOf(y.Shape())
		a := t.sliceAxis(y, yr, 1, 0, h)
		b := t.sliceAxis(y, yr, 1, h, h2)
		orig := y.Dtype()
		a, b = t.toF32(a), t.toF32(b)
		act := s.Mul(s.Mul(a, t.sigmoid(a)), b)
		if act != nil && act.Dtype() != orig {
			act = s.AsType(act, orig)
		}
		if wo != nil {
			act = t.matmul(act, wo, dt)
		}
		return act
	}
	rc := n.AttrInt("row_chunk", 0)
	if rc == 0 && t.p.opts.Device == "cpu" {
		// [rows, 2h] blocks of ~passes.CPUBlockElems stay in cache.
		if rc = passes.CPUSwiGLUBlock(rows, h2); rc > 0 {
			t.record(n, path, rc)
		}
	}
	var out *mlx.Array
	if rc <= 0 || rc >= rows {
		out = block(xa)
	} else {
		var parts []*mlx.Array
		for lo := int64(0); lo < rows; lo += rc {
			hi := min(lo+rc, rows)
			xb := t.sliceAxis(xa, []int64{rows, cin}, 0, lo, hi)
			if len(parts) > 0 {
				xb = t.after(xb, parts[len(parts)-1])
			}
			parts = append(parts, block(xb))
		}
		out = s.Concatenate(0, parts...)
	}
	shape := append(intsOf(x.shape[:x.rank()-1]), int(cout))
	return t.one(s.Reshape(out, shape...), dt)
}

// after returns x made to depend on prev, so MLX evaluates the block that
// produced prev before anything computed from x. MLX evaluates a lazy graph
// without ordering independent branches, so the blocks of a chunked op
// would otherwise all be in flight at once and chunking would save little
// memory. The dependency is MLX's depends: the result shares x's buffer, so
// no data moves (it used to be where(false, prev[0], x), one copy of x per
// block: 1.8 ms of a 44 ms bf16 PairFormerBlock at N = 1024 on an H200).
func (t *tracer) after(x, prev *mlx.Array) *mlx.Array {
	if x == nil || prev == nil {
		return x
	}
	return t.s.Depends(x, prev)
}
