package codegen

import (
	"fmt"
	"math"

	"of3c/graph"
	"of3c/internal/shapes"
	"of3c/passes"
	"of3c/runtime/mlx"
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
func normFlatten(t *tracer, x *val, axis int, params ...*val) (xa *mlx.Array, ps []*mlx.Array, lead []int, err error) {
	s := t.s
	inner := 1
	for _, d := range x.shape[axis:] {
		inner *= int(d)
	}
	lead = intsOf(x.shape[:axis])
	xa = t.toF32(t.arr(x))
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
	xa, ps, _, err := normFlatten(t, x, axis, in[1], bias)
	if err != nil {
		return nil, err
	}
	orig := t.ddt(x.dt)
	var y *mlx.Array
	if t.fast(xa) {
		y = s.FastLayerNorm(xa, ps[0], ps[1], eps)
	} else {
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
	xa, ps, _, err := normFlatten(t, x, axis, in[1])
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

// attention holds one of3c.Attention evaluation: f32 operands (q, k nil in
// bias_only mode), biases already read with −inf → −1e9.
type attention struct {
	t      *tracer
	q, k   *mlx.Array
	v      *mlx.Array
	biases []*mlx.Array
	scale  float64
}

func lowerAttention(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	s := t.s
	mode := n.AttrString("mode", "qk")
	if mode != "qk" && mode != "bias_only" {
		return nil, fmt.Errorf("unknown mode %q", mode)
	}
	if len(in) < 3 || in[2] == nil {
		return nil, fmt.Errorf("v is missing")
	}
	v := in[2]
	dt := v.dt
	var q, k *val
	if mode == "qk" {
		q, k = in[0], in[1]
		if q == nil || k == nil {
			return nil, fmt.Errorf("q and k are required in mode qk")
		}
	} else if len(in) < 4 {
		return nil, fmt.Errorf("bias_only mode needs at least one bias")
	}
	scale := 1.0
	if q != nil {
		c := q.shape[len(q.shape)-1]
		scale = float64(n.AttrFloat("scale", float32(1/math.Sqrt(float64(c)))))
	}
	biases := in[3:]
	bc, qc, kc := n.AttrInt("batch_chunk", 0), n.AttrInt("query_chunk", 0), n.AttrInt("kv_chunk", 0)

	if out, ok := t.fusedSDPA(q, k, v, biases, scale, bc, qc, kc); ok {
		return t.one(out, dt)
	}

	if out := t.fastAttention(q, k, v, biases, scale, headsInnerUse(t.p.g, n)); out != nil {
		if md := t.ddt(dt); out.Dtype() != md {
			out = s.AsType(out, md)
		}
		return t.one(out, dt)
	}

	at := &attention{t: t, scale: scale, v: t.toF32(t.arr(v))}
	if q != nil {
		at.q, at.k = t.toF32(t.arr(q)), t.toF32(t.arr(k))
	}
	for _, b := range biases {
		if b == nil {
			continue
		}
		at.biases = append(at.biases, t.readBias(t.arr(b)))
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	outShape, err := at.outShape()
	if err != nil {
		return nil, err
	}
	if bc == 0 && qc == 0 && kc == 0 {
		bc = t.cpuBlock(outShape, at.keys())
	}
	var out *mlx.Array
	if bc > 0 && bc < outShape[0] {
		if len(outShape) <= 2 {
			return nil, fmt.Errorf("batch_chunk needs an output of rank > 2, got %v", outShape)
		}
		var parts []*mlx.Array
		for lo := int64(0); lo < outShape[0]; lo += bc {
			hi := min(lo+bc, outShape[0])
			sub := at.sliceBatch(len(outShape), lo, hi)
			if len(parts) > 0 {
				sub.sequenceAfter(parts[len(parts)-1])
			}
			parts = append(parts, sub.queryChunked(qc, kc))
		}
		out = s.Concatenate(0, parts...)
	} else {
		out = at.queryChunked(qc, kc)
	}
	if md := t.ddt(dt); out != nil && out.Dtype() != md {
		out = s.AsType(out, md)
	}
	return t.one(out, dt)
}

// fastAttention lowers a CPU f32 attention in mode qk to runtime/mlx's
// FastAttention kernel: softmax(scale·q·kᵀ + Σ biases)·v per batch item and
// block of query rows, with the logits block in a per-thread buffer, q, k,
// v read in place through their strides (the heads split out of the
// projection and transposed cost no copy), the biases added in order in
// f32 with the −1e9 clamp of readBias. It never materialises the
// [.., Q, K] logits, so the graph's batch/query/kv chunking and cpuBlock
// (which exist to bound that array, and are exact, docs/OPS.md) are not
// applied: less memory than any chunking. Numerically it differs from the
// unfused path only in rounding: the scale multiplies the f32 logit q·k
// rather than q, and the dot products accumulate in key/channel order
// instead of OpenBLAS's. nil when the
// kernel does not serve the attention (not CPU/f32, bias_only mode,
// Options.NoFastKernels); the caller then takes the unfused path.
func (t *tracer) fastAttention(q, k, v *val, biases []*val, scale float64, headsInner bool) *mlx.Array {
	if q == nil || k == nil || v == nil {
		return nil
	}
	qa, ka, va := t.arr(q), t.arr(k), t.arr(v)
	if !t.fast(qa) || !t.fast(ka) || !t.fast(va) {
		return nil
	}
	var bs []*mlx.Array
	for _, b := range biases {
		if b == nil {
			continue
		}
		ba := t.arr(b)
		if !t.fast(ba) {
			return nil
		}
		bs = append(bs, ba)
	}
	if headsInner {
		return t.s.FastAttentionHeadsInner(qa, ka, va, float32(scale), bs...)
	}
	return t.s.FastAttention(qa, ka, va, float32(scale), bs...)
}

// headsInnerUse reports whether every use of n's output is a Transpose that
// swaps axes −3 and −2 (the heads back behind the queries, before they are
// merged): then FastAttentionHeadsInner's layout makes that transpose, and
// the reshape merging the heads, views instead of copies. Either layout
// gives the same values.
func headsInnerUse(g *graph.Graph, n *graph.Node) bool {
	if g == nil || len(n.Outputs) == 0 || n.Outputs[0] == nil || g.IsOutput(n.Outputs[0]) {
		return false
	}
	uses := g.Uses()[n.Outputs[0]]
	if len(uses) == 0 {
		return false
	}
	for _, u := range uses {
		perm, ok := u.AttrInts("perm")
		r := len(perm)
		if u.Op != "Transpose" || !ok || r < 3 {
			return false
		}
		for i, p := range perm {
			want := int64(i)
			switch i {
			case r - 3:
				want = int64(r - 2)
			case r - 2:
				want = int64(r - 3)
			}
			if p != want {
				return false
			}
		}
	}
	return true
}

// readBias converts a bias to f32 and applies the −inf → −1e9 rule. In fp16
// precision any value at or below −32768 is a clamped mask (see the package
// doc) and is read as −1e9 as well.
func (t *tracer) readBias(b *mlx.Array) *mlx.Array {
	s := t.s
	fp16 := t.p.opts.Precision == "fp16" && b != nil && b.Dtype() == mlx.Float16
	b = t.toF32(b)
	if b == nil {
		return nil
	}
	if b.Dtype() == mlx.Float64 {
		return s.Maximum(b, s.Scalar(-1e9, mlx.Float64))
	}
	if fp16 {
		return s.Where(s.LessEqual(b, s.Scalar(-32768, mlx.Float32)), s.Scalar(-1e9, mlx.Float32), b)
	}
	return s.Maximum(b, s.Scalar(-1e9, mlx.Float32))
}

func shapeOf(a *mlx.Array) []int64 { return int64sOf(a.Shape()) }

// outShape is broadcast(L[:-2], v[:-2]) ++ [Q, cv].
func (at *attention) outShape() ([]int64, error) {
	var L []int64
	var err error
	if at.q != nil {
		qs, ks := shapeOf(at.q), shapeOf(at.k)
		if len(qs) < 2 || len(ks) < 2 {
			return nil, fmt.Errorf("q and k need rank ≥ 2")
		}
		if qs[len(qs)-1] != ks[len(ks)-1] {
			return nil, fmt.Errorf("q and k head sizes differ: %v, %v", qs, ks)
		}
		batch, err := shapes.Broadcast(qs[:len(qs)-2], ks[:len(ks)-2])
		if err != nil {
			return nil, err
		}
		L = append(batch, qs[len(qs)-2], ks[len(ks)-2])
	}
	for _, b := range at.biases {
		if L == nil {
			L = shapeOf(b)
			continue
		}
		if L, err = shapes.Broadcast(L, shapeOf(b)); err != nil {
			return nil, err
		}
	}
	if len(L) < 2 {
		return nil, fmt.Errorf("logits need rank ≥ 2, got %v", L)
	}
	vs := shapeOf(at.v)
	if len(vs) < 2 || vs[len(vs)-2] != L[len(L)-1] {
		return nil, fmt.Errorf("v %v does not match %d keys", vs, L[len(L)-1])
	}
	batch, err := shapes.Broadcast(L[:len(L)-2], vs[:len(vs)-2])
	if err != nil {
		return nil, err
	}
	return append(batch, L[len(L)-2], vs[len(vs)-1]), nil
}

// sliceAt slices a along the axis that is right-aligned with axis ax of a
// rank-r result, when a has that axis with size > 1; otherwise a is whole.
func (at *attention) sliceAt(a *mlx.Array, r, ax int, lo, hi int64) *mlx.Array {
	if a == nil {
		return nil
	}
	sh := shapeOf(a)
	j := len(sh) - r + ax
	if j < 0 || sh[j] <= 1 {
		return a
	}
	return at.t.sliceAxis(a, sh, j, lo, hi)
}

// sliceBatch restricts every operand to output rows [lo, hi) of axis 0.
func (at *attention) sliceBatch(r int, lo, hi int64) *attention {
	sub := &attention{t: at.t, scale: at.scale}
	sub.q = at.sliceAt(at.q, r, 0, lo, hi)
	sub.k = at.sliceAt(at.k, r, 0, lo, hi)
	sub.v = at.sliceAt(at.v, r, 0, lo, hi)
	for _, b := range at.biases {
		sub.biases = append(sub.biases, at.sliceAt(b, r, 0, lo, hi))
	}
	return sub
}

// queryChunked evaluates query blocks of qc rows (all at once when qc is 0).
func (at *attention) queryChunked(qc, kc int64) *mlx.Array {
	s := at.t.s
	var Q int64
	if at.q != nil {
		qs := shapeOf(at.q)
		Q = qs[len(qs)-2]
	} else {
		for _, b := range at.biases {
			bs := shapeOf(b)
			if len(bs) >= 2 && bs[len(bs)-2] > Q {
				Q = bs[len(bs)-2]
			}
		}
	}
	if qc <= 0 || qc >= Q {
		return at.kvChunked(kc)
	}
	var parts []*mlx.Array
	for lo := int64(0); lo < Q; lo += qc {
		hi := min(lo+qc, Q)
		sub := &attention{t: at.t, scale: at.scale, k: at.k, v: at.v}
		if at.q != nil {
			sub.q = at.t.sliceAxis(at.q, shapeOf(at.q), len(shapeOf(at.q))-2, lo, hi)
		}
		for _, b := range at.biases {
			bs := shapeOf(b)
			if len(bs) >= 2 && bs[len(bs)-2] > 1 {
				b = at.t.sliceAxis(b, bs, len(bs)-2, lo, hi)
			}
			sub.biases = append(sub.biases, b)
		}
		if len(parts) > 0 {
			sub.sequenceAfter(parts[len(parts)-1])
		}
		parts = append(parts, sub.kvChunked(kc))
	}
	// The output's query axis is -2.
	out := parts[0]
	if len(parts) > 1 {
		out = s.Concatenate(out.Ndim()-2, parts...)
	}
	return out
}

// logits is scale·q·kᵀ + Σ biases (in order) for the given k block and
// bias blocks.
func (at *attention) logits(k *mlx.Array, biases []*mlx.Array) *mlx.Array {
	s := at.t.s
	var L *mlx.Array
	if at.q != nil {
		q := at.q
		if at.scale != 1 {
			q = s.Mul(q, s.Scalar(at.scale, q.Dtype()))
		}
		L = s.MatMul(q, s.Transpose(k, swapLast(k.Ndim())...))
	}
	for _, b := range biases {
		if L == nil {
			L = b
		} else {
			L = s.Add(L, b)
		}
	}
	return L
}

// fastWeights is softmax(scale·q·kᵀ + Σ biases) through the fused
// FastSoftmaxBias CPU kernel, which reads every bias in place through its
// broadcast strides instead of materialising one [.., Q, K] sum per bias
// (MLX's broadcast adds are scalar and single-threaded on x86). The numerics
// are the unfused path's: q is scaled before the matmul, the (already
// −1e9-clamped, see readBias) biases are added in order in f32, then a
// max-subtracted softmax. nil when the fast kernels do not serve this
// attention (not CPU/f32, bias_only mode, no bias, or a bias that would
// enlarge the logits); the caller then takes the unfused path.
func (at *attention) fastWeights() *mlx.Array {
	t := at.t
	if at.q == nil || len(at.biases) == 0 || !t.fast(at.q) || !t.fast(at.k) {
		return nil
	}
	for _, b := range at.biases {
		if !t.fast(b) {
			return nil
		}
	}
	if at.biasedLogitsShape() == nil {
		return nil
	}
	return t.s.FastSoftmaxBias(at.logits(at.k, nil), 1, at.biases...)
}

// biasedLogitsShape is the [batch.., Q, K] shape of q·kᵀ when every bias
// broadcasts to it without enlarging it, nil otherwise (or in bias_only
// mode): the condition for the one-pass softmax-with-biases kernels
// (FastSoftmaxBias on the CPU, GPUSoftmaxBias on the GPU).
func (at *attention) biasedLogitsShape() []int64 {
	if at.q == nil || at.k == nil {
		return nil
	}
	qs, ks := shapeOf(at.q), shapeOf(at.k)
	batch, err := shapes.Broadcast(qs[:len(qs)-2], ks[:len(ks)-2])
	if err != nil {
		return nil
	}
	L := append(batch, qs[len(qs)-2], ks[len(ks)-2])
	for _, b := range at.biases {
		if b == nil {
			return nil
		}
		bs := shapeOf(b)
		if len(bs) > len(L) {
			return nil
		}
		for i, d := range bs {
			if l := L[len(L)-len(bs)+i]; d != 1 && d != l {
				return nil
			}
		}
	}
	return L
}

func swapLast(r int) []int {
	p := make([]int, r)
	for i := range p {
		p[i] = i
	}
	p[r-1], p[r-2] = p[r-2], p[r-1]
	return p
}

// kvChunked is plain attention (kc == 0) or LMA over key blocks of kc.
func (at *attention) kvChunked(kc int64) *mlx.Array {
	s := at.t.s
	vs := shapeOf(at.v)
	K := vs[len(vs)-2]
	if kc <= 0 || kc >= K {
		if w := at.fastWeights(); w != nil {
			return s.MatMul(w, at.v)
		}
		if w := at.gpuWeights(); w != nil {
			return s.MatMul(w, at.v)
		}
		L := at.logits(at.k, at.biases)
		if at.t.fast(L) {
			return s.MatMul(s.FastSoftmax(L), at.v)
		}
		if at.t.p.opts.Device == "gpu" {
			// MLX's CUDA softmax is one kernel (one read, one write of the
			// logits); the deferred-division form below costs a max, an
			// exp and a sum pass over them, separate kernels there.
			return s.MatMul(s.Softmax(L, -1), at.v)
		}
		m := s.Max(L, true, -1)
		e := at.t.expNonPos(s.Sub(L, m))
		return s.Div(s.MatMul(e, at.v), s.Sum(e, true, -1))
	}
	var m, l, acc *mlx.Array
	for lo := int64(0); lo < K; lo += kc {
		hi := min(lo+kc, K)
		var kj *mlx.Array
		if at.k != nil {
			kj = at.t.sliceAxis(at.k, shapeOf(at.k), at.k.Ndim()-2, lo, hi)
		}
		vj := at.t.sliceAxis(at.v, vs, len(vs)-2, lo, hi)
		var bj []*mlx.Array
		for _, b := range at.biases {
			bs := shapeOf(b)
			if bs[len(bs)-1] > 1 {
				b = at.t.sliceAxis(b, bs, len(bs)-1, lo, hi)
			}
			bj = append(bj, b)
		}
		Lj := at.logits(kj, bj)
		mj := s.Max(Lj, true, -1)
		if m == nil {
			e := at.t.expNonPos(s.Sub(Lj, mj))
			m, l, acc = mj, s.Sum(e, true, -1), s.MatMul(e, vj)
			continue
		}
		mNew := s.Maximum(m, mj)
		alpha := at.t.expNonPos(s.Sub(m, mNew))
		e := at.t.expNonPos(s.Sub(Lj, mNew))
		l = s.Add(s.Mul(alpha, l), s.Sum(e, true, -1))
		acc = s.Add(s.Mul(alpha, acc), s.MatMul(e, vj))
		m = mNew
	}
	return s.Div(acc, l)
}

// fusedSDPA lowers to MLX's fused attention where MLX has a fused kernel:
// the GPU with bf16/fp16 inputs, head size a multiple of 8 up to 128, equal
// q/v head sizes, mode qk, no chunking (the fused kernel already avoids the
// logits' memory), heads on axis -3. The biases are summed into one additive
// mask in f32 and rounded to the input dtype, as the kernel requires.
func (t *tracer) fusedSDPA(q, k, v *val, biases []*val, scale float64, bc, qc, kc int64) (*mlx.Array, bool) {
	if t.p.opts.Device != "gpu" || q == nil || bc > 0 || qc > 0 || kc > 0 {
		return nil, false
	}
	qa, ka, va := t.arr(q), t.arr(k), t.arr(v)
	if qa == nil || ka == nil || va == nil || !isHalf(qa.Dtype()) || ka.Dtype() != qa.Dtype() || va.Dtype() != qa.Dtype() {
		return nil, false
	}
	c := q.shape[q.rank()-1]
	if c%8 != 0 || c > 128 || v.shape[v.rank()-1] != c || q.rank() < 3 || k.rank() < 3 || v.rank() < 3 {
		return nil, false
	}
	s := t.s
	batch, err := shapes.Broadcast(q.shape[:q.rank()-2], k.shape[:k.rank()-2])
	if err == nil {
		batch, err = shapes.Broadcast(batch, v.shape[:v.rank()-2])
	}
	if err != nil || len(batch) < 1 {
		return nil, false
	}
	H := batch[len(batch)-1]
	B := int64(1)
	for _, d := range batch[:len(batch)-1] {
		B *= d
	}
	Q, K := q.shape[q.rank()-2], k.shape[k.rank()-2]
	to4 := func(a *mlx.Array, rows, cols int64) *mlx.Array {
		full := append(append([]int64{}, batch...), rows, cols)
		return s.Reshape(s.BroadcastTo(a, intsOf(full)...), int(B), int(H), int(rows), int(cols))
	}
	mask, ok := t.sdpaMask(biases, batch, Q, K, qa.Dtype())
	if !ok {
		return nil, false
	}
	if mask != nil {
		mask = to4(mask, Q, K)
	}
	out := s.ScaledDotProductAttention(to4(qa, Q, c), to4(ka, K, c), to4(va, K, c), float32(scale), mask)
	out = s.Reshape(out, intsOf(append(append([]int64{}, batch...), Q, c))...)
	return out, s.Err() == nil
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
	block := func(xb *mlx.Array) *mlx.Array {
		y := t.matmul(xb, wa, dt) // one GEMM for both halves
		if t.fast(y) && y.Dtype() == mlx.Float32 {
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
		rc = passes.CPUSwiGLUBlock(rows, h2)
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

// expNonPos is exp(x) for x ≤ 0 (softmax after subtracting the row max),
// computed as expm1(x) + 1. MLX's CPU exp on x86 costs ~35 ns per element
// (measured; expm1 ~6 ns), and the softmax exponentials dominate attention.
// For x ≤ 0 the result lies in [0, 1] with an absolute error of ~3e-8 (one
// rounding of a value below 1), which is what the normalised weights need;
// only entries below ~1e-7 lose relative precision, and their weight is
// below the rounding of the row sum anyway.
func (t *tracer) expNonPos(x *mlx.Array) *mlx.Array {
	if t.fast(x) {
		return t.s.FastExp(x)
	}
	if x == nil || x.Dtype() != mlx.Float32 || t.p.opts.Device != "cpu" {
		return t.s.Exp(x)
	}
	return t.s.Add(t.s.Expm1(x), t.s.Scalar(1, mlx.Float32))
}

// sigmoid is 1/(2 + expm1(−x)) on the CPU, for the speed reason above; the
// form keeps full relative precision for every x (expm1(−x) ∈ (−1, 0) for
// x > 0, large and exact for x < 0, +inf → 0).
func (t *tracer) sigmoid(x *mlx.Array) *mlx.Array {
	if t.fast(x) {
		return t.s.FastSigmoid(x)
	}
	if x == nil || t.p.opts.Device != "cpu" || !(x.Dtype() == mlx.Float32 || x.Dtype() == mlx.Float64) {
		return t.s.Sigmoid(x)
	}
	s := t.s
	return s.Div(s.Scalar(1, x.Dtype()), s.Add(s.Scalar(2, x.Dtype()), s.Expm1(s.Neg(x))))
}

// keys is the key count of the attention.
func (at *attention) keys() int64 {
	vs := shapeOf(at.v)
	return vs[len(vs)-2]
}

// cpuBlock picks a batch_chunk for an unchunked attention on the CPU whose
// logits exceed passes.CPUBlockElems (0: leave it whole). The rule is the
// planner's (passes.CPUAttentionBlock), so its estimate is what runs.
func (t *tracer) cpuBlock(out []int64, keys int64) int64 {
	if t.p.opts.Device != "cpu" {
		return 0
	}
	return passes.CPUAttentionBlock(out, keys)
}

// fast reports whether runtime/mlx's SIMD, multi-threaded CPU kernels
// (FastExp, FastSoftmax, FastSigmoid, FastSwiGLU, FastLayerNorm, ...) serve
// x: CPU programs on f32 arrays unless Options.NoFastKernels. MLX's own
// x86 CPU kernels are scalar and single-threaded (docs/BENCHMARKS.md).
func (t *tracer) fast(x *mlx.Array) bool {
	return x != nil && t.p.opts.Device == "cpu" && !t.p.opts.NoFastKernels && x.Dtype() == mlx.Float32
}

// after returns x unchanged but made to depend on prev, so MLX evaluates
// the block that produced prev before anything computed from x. MLX
// evaluates a lazy graph without ordering independent branches, so the
// blocks of a chunked op would otherwise all be in flight at once and
// chunking would save little memory. The dependency is where(false,
// prev[0], x): one pass over x, which is a block's small input (q rows, x
// rows), not its large intermediate.
func (t *tracer) after(x, prev *mlx.Array) *mlx.Array {
	s := t.s
	if x == nil || prev == nil {
		return x
	}
	ps := prev.Shape()
	zero := make([]int, len(ps))
	one := ones(len(ps))
	for _, d := range ps {
		if d == 0 {
			return x
		}
	}
	p := s.Reshape(s.Slice(prev, zero, one, nil), []int{}...)
	if p != nil && p.Dtype() != x.Dtype() {
		p = s.AsType(p, x.Dtype())
	}
	return s.Where(s.Full(0, mlx.Bool), p, x)
}

// sequenceAfter makes this block's queries (or, in bias_only mode, its
// values) depend on the previous block's output; see tracer.after.
func (at *attention) sequenceAfter(prev *mlx.Array) {
	if at.q != nil {
		at.q = at.t.after(at.q, prev)
	} else {
		at.v = at.t.after(at.v, prev)
	}
}
