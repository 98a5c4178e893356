package codegen

import (
	"fmt"
	"math"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/mlx"
	"github.com/of3c/of3c/internal/shapes"
)

func init() {
	register(lowerBatchNorm, "BatchNormalization")
	register(lowerHardmax, "Hardmax")
	register(lowerONNXAttention, "Attention")
}

func unsupported(n *graph.Node, reason string) error {
	return &graph.UnsupportedOpError{Domain: n.Domain, Op: n.Op, Opset: n.Opset, Node: nodeName(n), Reason: reason}
}

// lowerBatchNorm: inference uses the given statistics; training_mode
// normalises with the batch statistics and returns the updated running
// mean and variance (momentum-weighted), as the reference executor does.
func lowerBatchNorm(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	s := t.s
	x := in[0]
	if x.rank() < 2 || !x.dt.IsFloat() {
		return nil, fmt.Errorf("BatchNormalization takes a float tensor of rank ≥ 2")
	}
	if n.AttrInt("spatial", 1) == 0 {
		return nil, unsupported(n, "spatial=0 (per-activation statistics)")
	}
	for k := 1; k <= 4; k++ {
		if len(in) <= k || in[k] == nil {
			return nil, fmt.Errorf("input %d is missing", k)
		}
	}
	c := x.shape[1]
	shape := ones(x.rank())
	shape[1] = int(c)
	param := func(v *val) *mlx.Array {
		return s.Reshape(t.toF32(t.arr(v)), shape...)
	}
	xf := t.toF32(t.arr(x))
	eps := float64(n.AttrFloat("epsilon", 1e-5))
	mean, variance := param(in[3]), param(in[4])
	training := n.AttrInt("training_mode", 0) != 0
	var runMean, runVar *mlx.Array
	if training {
		axes := []int{0}
		for i := 2; i < x.rank(); i++ {
			axes = append(axes, i)
		}
		bm := s.Mean(xf, true, axes...)
		bv := s.Mean(s.Square(s.Sub(xf, bm)), true, axes...)
		mom := s.Scalar(float64(n.AttrFloat("momentum", 0.9)), xf.Dtype())
		one := s.Scalar(1, xf.Dtype())
		runMean = s.Add(s.Mul(mean, mom), s.Mul(bm, s.Sub(one, mom)))
		runVar = s.Add(s.Mul(variance, mom), s.Mul(bv, s.Sub(one, mom)))
		runMean = s.AsType(s.Reshape(runMean, int(c)), t.ddt(in[3].dt))
		runVar = s.AsType(s.Reshape(runVar, int(c)), t.ddt(in[4].dt))
		mean, variance = bm, bv
	}
	inv := s.Rsqrt(s.Add(variance, s.Scalar(eps, xf.Dtype())))
	y := s.Add(s.Mul(s.Mul(s.Sub(xf, mean), inv), param(in[1])), param(in[2]))
	y = s.AsType(y, t.ddt(x.dt))
	outs := []*val{t.dev(y, x.dt)}
	if training {
		outs = append(outs, t.dev(runMean, in[3].dt), t.dev(runVar, in[4].dt))
	}
	return outs, s.Err()
}

// lowerHardmax is the one-hot of the first maximum along the axis (the
// input viewed as 2-D at axis before opset 13).
func lowerHardmax(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	s := t.s
	x := in[0]
	r := x.rank()
	old := n.Opset > 0 && n.Opset < 13
	def := int64(-1)
	if old {
		def = 1
	}
	axis, err := shapes.NormAxis(n.AttrInt("axis", def), max(r, 1))
	if err != nil {
		return nil, err
	}
	a := t.arr(x)
	shape := intsOf(x.shape)
	if old {
		p, q := 1, 1
		for i, d := range shape {
			if i < axis {
				p *= d
			} else {
				q *= d
			}
		}
		a = s.Reshape(a, p, q)
		axis = 1
	}
	idx := s.ArgMax(a, axis, true)
	as := a.Shape()
	rs := ones(len(as))
	rs[axis] = as[axis]
	rng := s.Reshape(s.Arange(0, float64(as[axis]), 1, mlx.Uint32), rs...)
	y := s.AsType(s.Equal(s.AsType(idx, mlx.Uint32), rng), a.Dtype())
	if old {
		y = s.Reshape(y, shape...)
	}
	return t.one(y, x.dt)
}

// lowerONNXAttention follows the ONNX Attention operator (opset 23+) as the
// reference executor implements it: 3-D inputs split into heads, KV cache
// concatenation, grouped-query heads repeated in place, scale and softcap on
// the product, an additive bias from the mask (bool: attend where true;
// shorter masks padded with −inf), bottom-right-aligned causal and window
// masks, nonpad_kv_seqlen, and zero weights for rows with nothing to attend.
// Everything is computed in f32; the weights are rounded to T before the
// second product, like the reference.
func lowerONNXAttention(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	s := t.s
	for k := 0; k < 3; k++ {
		if len(in) <= k || in[k] == nil {
			return nil, fmt.Errorf("Q, K and V are required")
		}
	}
	dt := in[0].dt
	opt := func(i int) *val {
		if i < len(in) {
			return in[i]
		}
		return nil
	}
	mask, pastK, pastV, nonpad := opt(3), opt(4), opt(5), opt(6)
	if (pastK == nil) != (pastV == nil) {
		return nil, fmt.Errorf("past_key and past_value must come together")
	}
	if nonpad != nil && pastK != nil {
		return nil, fmt.Errorf("nonpad_kv_seqlen cannot be combined with a past cache")
	}
	rank := in[0].rank()
	if (rank != 3 && rank != 4) || in[1].rank() != rank || in[2].rank() != rank {
		return nil, fmt.Errorf("Q, K, V must all be 3-D or all 4-D")
	}
	f32 := func(v *val) *mlx.Array { return s.AsType(t.arr(v), t.accDType(dt)) }
	q, k, v := f32(in[0]), f32(in[1]), f32(in[2])
	heads := func(a *mlx.Array, h int64, what string) (*mlx.Array, error) {
		sh := a.Shape()
		if h <= 0 || int64(sh[2])%h != 0 {
			return nil, fmt.Errorf("%s hidden size %d is not a multiple of %d heads", what, sh[2], h)
		}
		return s.Transpose(s.Reshape(a, sh[0], sh[1], int(h), sh[2]/int(h)), 0, 2, 1, 3), nil
	}
	var err error
	if rank == 3 {
		if q, err = heads(q, n.AttrInt("q_num_heads", 0), "Q"); err != nil {
			return nil, err
		}
		if k, err = heads(k, n.AttrInt("kv_num_heads", 0), "K"); err != nil {
			return nil, err
		}
		if v, err = heads(v, n.AttrInt("kv_num_heads", 0), "V"); err != nil {
			return nil, err
		}
	}
	qs, ks := q.Shape(), k.Shape()
	batch, hq, qLen, head := qs[0], qs[1], qs[2], qs[3]
	if pastK != nil {
		k = s.Concatenate(2, f32(pastK), k)
		v = s.Concatenate(2, f32(pastV), v)
		ks = k.Shape()
	}
	presentK, presentV := k, v
	kvLen := ks[2]

	acc := t.accDType(dt)
	negInf := s.Scalar(math.Inf(-1), acc)
	zero := s.Scalar(0, acc)
	var bias *mlx.Array
	addBias := func(b *mlx.Array) {
		if bias == nil {
			bias = b
		} else {
			bias = s.Add(bias, b)
		}
	}
	if mask != nil {
		ma := t.arr(mask)
		var mb *mlx.Array
		if mask.dt == graph.Bool {
			mb = s.Where(ma, zero, negInf)
		} else {
			mb = s.AsType(ma, acc)
		}
		ms := mb.Shape()
		if len(ms) < 1 {
			return nil, fmt.Errorf("attn_mask must have rank ≥ 1")
		}
		if last := ms[len(ms)-1]; last < kvLen {
			low := make([]int, len(ms))
			high := make([]int, len(ms))
			high[len(ms)-1] = kvLen - last
			mb = s.Pad(mb, low, high, math.Inf(-1))
		}
		addBias(mb)
	}
	// Offsets place query i at position i + offset among the keys.
	var offset *mlx.Array // scalar or [B,1,1,1]
	switch {
	case pastK != nil:
		offset = s.Scalar(float64(pastK.shape[2]), mlx.Int64)
	case nonpad != nil:
		if nonpad.numel() != int64(batch) {
			return nil, fmt.Errorf("nonpad_kv_seqlen has %d entries for batch %d", nonpad.numel(), batch)
		}
		offset = s.Sub(s.Reshape(s.AsType(t.arr(nonpad), mlx.Int64), batch, 1, 1, 1), s.Scalar(float64(qLen), mlx.Int64))
	default:
		offset = s.Scalar(0, mlx.Int64)
	}
	ii := s.Reshape(s.Arange(0, float64(qLen), 1, mlx.Int64), qLen, 1)
	jj := s.Reshape(s.Arange(0, float64(kvLen), 1, mlx.Int64), 1, kvLen)
	pos := s.Add(ii, offset)
	frontier := func(allowed *mlx.Array) { addBias(s.Where(allowed, zero, negInf)) }
	if n.AttrInt("is_causal", 0) != 0 {
		frontier(s.LessEqual(jj, pos))
	}
	left, right := n.AttrInt("left_window_size", -1), n.AttrInt("right_window_size", -1)
	if left < -1 || right < -1 {
		return nil, fmt.Errorf("window sizes must be -1 or ≥ 0, got %d and %d", left, right)
	}
	if left >= 0 || right >= 0 {
		ok := s.Full(1, mlx.Bool, 1, 1)
		if left >= 0 {
			ok = s.LogicalAnd(ok, s.LessEqual(s.Sub(pos, jj), s.Scalar(float64(left), mlx.Int64)))
		}
		if right >= 0 {
			ok = s.LogicalAnd(ok, s.LessEqual(s.Sub(jj, pos), s.Scalar(float64(right), mlx.Int64)))
		}
		frontier(ok)
	}
	if nonpad != nil {
		lens := s.Reshape(s.AsType(t.arr(nonpad), mlx.Int64), batch, 1, 1, 1)
		addBias(s.Where(s.GreaterEqual(jj, lens), negInf, zero))
	}
	if bias == nil {
		bias = s.Zeros(acc, qLen, kvLen)
	}

	if hk := ks[1]; hk != hq {
		if hk == 0 || hq%hk != 0 {
			return nil, fmt.Errorf("%d query heads are not a multiple of %d key/value heads", hq, hk)
		}
		rep := func(a *mlx.Array) *mlx.Array {
			sh := a.Shape()
			e := s.ExpandDims(a, 2)
			e = s.BroadcastTo(e, sh[0], sh[1], hq/hk, sh[2], sh[3])
			return s.Reshape(e, sh[0], hq, sh[2], sh[3])
		}
		k, v = rep(k), rep(v)
	}
	scale := 1 / math.Sqrt(float64(head))
	if _, ok := n.Attrs["scale"]; ok {
		scale = float64(n.AttrFloat("scale", 0))
	}
	qk := s.Mul(s.MatMul(q, s.Transpose(k, 0, 1, 3, 2)), s.Scalar(scale, acc))
	if sc := float64(n.AttrFloat("softcap", 0)); sc > 0 {
		qk = s.Mul(s.Tanh(s.Div(qk, s.Scalar(sc, acc))), s.Scalar(sc, acc))
	}
	mode := n.AttrInt("qk_matmul_output_mode", 0)
	qkOut := qk
	logits := s.Add(qk, bias)
	if mode == 2 {
		qkOut = logits
	}
	// Rows with no attendable key (all −inf in the logits or in the bias)
	// get zero weights instead of NaN.
	dead := s.LogicalOr(s.IsInf(s.Max(logits, true, -1)), s.IsInf(s.Max(bias, true, -1)))
	p := s.Where(dead, zero, s.Softmax(logits, -1))
	if mode == 3 {
		qkOut = p
	}
	if td := t.ddt(dt); td != acc {
		p = s.AsType(s.AsType(p, td), acc)
	}
	y := s.MatMul(p, v)
	if rank == 3 {
		y = s.Transpose(y, 0, 2, 1, 3)
		ys := y.Shape()
		y = s.Reshape(y, ys[0], ys[1], ys[2]*ys[3])
	}
	out := t.ddt(dt)
	outs := []*val{t.dev(s.AsType(y, out), dt)}
	for _, a := range []*mlx.Array{presentK, presentV, qkOut} {
		outs = append(outs, t.dev(s.AsType(a, out), dt))
	}
	return outs[:min(len(outs), max(1, len(n.Outputs)))], s.Err()
}

// accDType is the accumulation dtype for float inputs of graph dtype dt:
// f64 stays f64 where MLX has it, everything else is f32.
func (t *tracer) accDType(dt graph.DType) mlx.Dtype {
	if t.ddt(dt) == mlx.Float64 {
		return mlx.Float64
	}
	return mlx.Float32
}
