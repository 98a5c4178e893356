package codegen

import (
	"fmt"
	"math"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/mlx"
	"github.com/of3c/of3c/internal/shapes"
)

// The of3c.Attention lowering: the decision (AttentionPath) picks a path;
// the unfused paths, which compute the logits, share the code below (batch,
// query and key chunking, the softmax variants). The fused CPU and GPU
// kernels are in lower_cpu.go and lower_gpu.go.

// attention holds one of3c.Attention evaluation: f32 operands (q, k nil in
// bias_only mode), biases already read with −inf → −1e9.
type attention struct {
	t      *tracer
	path   Path // one of the unfused paths (attentionUnfusedPath)
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

	ops := t.operands(in)
	path := t.choose(n, ops)
	switch path {
	case AttentionGPUFlash, AttentionGPUFlashMMA:
		mma := path == AttentionGPUFlashMMA && t.flashMMAOperands(q, k, v)
		if path == AttentionGPUFlashMMA && !mma {
			t.record(n, AttentionGPUFlash, 0) // device dtypes other than planned: the FFMA kernel
		}
		if out, ok := t.flashAttention(q, k, v, biases, scale, dt, mma); ok {
			return t.one(out, dt)
		}
		if err := s.Err(); err != nil {
			return nil, err
		}
		path = attentionUnfusedPath(t.p.opts, attentionSpecOf(n, ops))
		t.record(n, path, 0)
	case AttentionGPUSDPA:
		if out, ok := t.fusedSDPA(q, k, v, biases, scale); ok {
			return t.one(out, dt)
		}
		// The mask could not be built after all: the unfused path.
		path = attentionUnfusedPath(t.p.opts, attentionSpecOf(n, ops))
		t.record(n, path, 0)
	case AttentionCPUFused:
		out := t.fastAttention(q, k, v, biases, scale, headsInnerUse(t.p.g, n))
		if md := t.ddt(dt); out != nil && out.Dtype() != md {
			out = s.AsType(out, md)
		}
		return t.one(out, dt)
	}

	at := &attention{t: t, path: path, scale: scale, v: t.toF32(t.arr(v))}
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
		if bc = t.cpuBlock(outShape, at.keys()); bc > 0 {
			t.record(n, path, bc)
		}
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
	sub := &attention{t: at.t, path: at.path, scale: at.scale}
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
		sub := &attention{t: at.t, path: at.path, scale: at.scale, k: at.k, v: at.v}
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
		switch at.path {
		case AttentionCPUSoftmaxBias:
			return s.MatMul(at.fastWeights(), at.v)
		case AttentionGPUSoftmaxBias:
			return s.MatMul(at.gpuWeights(), at.v)
		}
		L := at.logits(at.k, at.biases)
		switch at.path {
		case AttentionCPUSoftmax:
			return s.MatMul(s.FastSoftmax(L), at.v)
		case AttentionGPUSoftmax:
			// MLX's CUDA softmax is one kernel (one read, one write of the
			// logits); the deferred-division form below costs a max, an
			// exp and a sum pass over them, separate kernels there.
			return s.MatMul(s.Softmax(L, -1), at.v)
		}
		// AttentionDeferred.
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

// keys is the key count of the attention.
func (at *attention) keys() int64 {
	vs := shapeOf(at.v)
	return vs[len(vs)-2]
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
