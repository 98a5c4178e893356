package graph

import (
	"fmt"
)

// Shape rules for of3c's fused ops. docs/ops.md is the specification; the
// rules below check what it requires and compute the output type.
//
// Identifiers here carry an of3c prefix: this package's other infer files
// are written in parallel and must not collide with these helpers.

func init() {
	RegisterOp(OpDef{Domain: FusedDomain, Op: "Attention", MinInputs: 3, MaxInputs: -1,
		MinOutputs: 1, MaxOutputs: 1, SinceVersion: 1, Infer: of3cInferAttention})
	RegisterOp(OpDef{Domain: FusedDomain, Op: "SwiGLU", MinInputs: 2, MaxInputs: 3,
		MinOutputs: 1, MaxOutputs: 1, SinceVersion: 1, Infer: of3cInferSwiGLU})
}

// Attention modes (attribute "mode").
const (
	AttentionModeQK       = "qk"
	AttentionModeBiasOnly = "bias_only"
)

func of3cFusedFloat(dt DType) bool {
	return dt == Float32 || dt == Float16 || dt == BFloat16 || dt == Float64
}

// of3cBroadcastDim merges two dims under multidirectional broadcasting. A
// symbolic dim against a different symbol gives Unknown: either could be 1,
// and only run time can tell.
func of3cBroadcastDim(a, b Dim) (Dim, error) {
	switch {
	case a.IsStatic() && a.Val == 1:
		return b, nil
	case b.IsStatic() && b.Val == 1:
		return a, nil
	case a.Equal(b):
		return a, nil
	case a.IsStatic() && b.IsStatic():
		return Unknown, fmt.Errorf("dims %d and %d do not broadcast", a.Val, b.Val)
	case a.IsStatic():
		return a, nil // b is 1 or equal to a
	case b.IsStatic():
		return b, nil
	}
	return Unknown, nil
}

// of3cBroadcast broadcasts shapes right-aligned.
func of3cBroadcast(shapes ...Shape) (Shape, error) {
	rank := 0
	for _, s := range shapes {
		rank = max(rank, len(s))
	}
	out := make(Shape, rank)
	for i := range out {
		out[i] = D(1)
	}
	for _, s := range shapes {
		off := rank - len(s)
		for i, d := range s {
			m, err := of3cBroadcastDim(out[off+i], d)
			if err != nil {
				return nil, fmt.Errorf("shapes %v do not broadcast: %w", shapes, err)
			}
			out[off+i] = m
		}
	}
	return out, nil
}

// of3cSameDim reports whether two dims can be the same size (false only when
// they provably differ).
func of3cSameDim(a, b Dim) bool {
	if a.IsStatic() && b.IsStatic() {
		return a.Val == b.Val
	}
	return true
}

func of3cCheckChunks(n *Node, names ...string) error {
	for _, name := range names {
		if a, ok := n.Attrs[name]; ok {
			if a.Kind != AttrInt {
				return fmt.Errorf("attribute %s must be an int, got %s", name, a.Kind)
			}
			if a.Int < 0 {
				return fmt.Errorf("attribute %s = %d, want ≥ 0", name, a.Int)
			}
		}
	}
	return nil
}

func of3cInferAttention(n *Node) ([]Type, []Shape, error) {
	mode := n.AttrString("mode", AttentionModeQK)
	if a, ok := n.Attrs["mode"]; ok && a.Kind != AttrString {
		return nil, nil, fmt.Errorf("attribute mode must be a string")
	}
	if a, ok := n.Attrs["scale"]; ok && a.Kind != AttrFloat {
		return nil, nil, fmt.Errorf("attribute scale must be a float")
	}
	if err := of3cCheckChunks(n, "batch_chunk", "query_chunk", "kv_chunk"); err != nil {
		return nil, nil, err
	}
	q, k, v := n.Input(0), n.Input(1), n.Input(2)
	biases := n.Inputs[3:]
	if v == nil {
		return nil, nil, fmt.Errorf("input v is required")
	}
	for i, b := range biases {
		if b == nil {
			return nil, nil, fmt.Errorf("bias %d is omitted; biases cannot be", i)
		}
	}
	switch mode {
	case AttentionModeQK:
		if q == nil || k == nil {
			return nil, nil, fmt.Errorf("mode %q needs q and k", mode)
		}
	case AttentionModeBiasOnly:
		if q != nil || k != nil {
			return nil, nil, fmt.Errorf("mode %q takes no q or k (inputs 0 and 1 must be omitted)", mode)
		}
		if len(biases) == 0 {
			return nil, nil, fmt.Errorf("mode %q needs at least one bias", mode)
		}
	default:
		return nil, nil, fmt.Errorf("unknown mode %q (want %q or %q)", mode, AttentionModeQK, AttentionModeBiasOnly)
	}

	dt := v.Type.DType
	for _, in := range n.Inputs {
		if in != nil && in.Type.DType != dt {
			return nil, nil, fmt.Errorf("input %s is %s, v is %s: all inputs must share one type", in, in.Type.DType, dt)
		}
	}
	if !of3cFusedFloat(dt) {
		return nil, nil, fmt.Errorf("element type %s unsupported (want f32, f16, bf16 or f64)", dt)
	}
	unranked := TensorType(dt, nil)
	unranked.Ranked = false
	for _, in := range n.Inputs {
		if in != nil && !in.Type.Ranked {
			return []Type{unranked}, nil, nil
		}
	}
	if v.Type.Rank() < 2 {
		return nil, nil, fmt.Errorf("v has rank %d, want ≥ 2", v.Type.Rank())
	}

	var logits Shape
	var parts []Shape
	if mode == AttentionModeQK {
		if q.Type.Rank() < 2 || k.Type.Rank() < 2 {
			return nil, nil, fmt.Errorf("q and k need rank ≥ 2, have %d and %d", q.Type.Rank(), k.Type.Rank())
		}
		qs, ks := q.Type.Shape, k.Type.Shape
		if !of3cSameDim(qs[len(qs)-1], ks[len(ks)-1]) {
			return nil, nil, fmt.Errorf("q head dim %v differs from k head dim %v", qs[len(qs)-1], ks[len(ks)-1])
		}
		batch, err := of3cBroadcast(qs[:len(qs)-2], ks[:len(ks)-2])
		if err != nil {
			return nil, nil, fmt.Errorf("q·kᵀ batch dims: %w", err)
		}
		parts = append(parts, append(batch, qs[len(qs)-2], ks[len(ks)-2]))
	}
	for _, b := range biases {
		if b.Type.Rank() < 1 {
			return nil, nil, fmt.Errorf("bias %s is a scalar; fold it away or give it rank ≥ 1", b)
		}
		parts = append(parts, b.Type.Shape)
	}
	logits, err := of3cBroadcast(parts...)
	if err != nil {
		return nil, nil, fmt.Errorf("logits: %w", err)
	}
	if len(logits) < 2 {
		return nil, nil, fmt.Errorf("logits have rank %d, want ≥ 2", len(logits))
	}
	keyDim := logits[len(logits)-1]
	if mode == AttentionModeQK {
		kk := k.Type.Shape[len(k.Type.Shape)-2]
		if !of3cSameDim(kk, keyDim) {
			return nil, nil, fmt.Errorf("a bias widens the key axis from %v to %v", kk, keyDim)
		}
		keyDim = kk
	}
	vs := v.Type.Shape
	if !of3cSameDim(vs[len(vs)-2], keyDim) {
		return nil, nil, fmt.Errorf("v has %v keys, the logits %v", vs[len(vs)-2], keyDim)
	}
	outBatch, err := of3cBroadcast(logits[:len(logits)-2], vs[:len(vs)-2])
	if err != nil {
		return nil, nil, fmt.Errorf("softmax·v batch dims: %w", err)
	}
	out := append(outBatch, logits[len(logits)-2], vs[len(vs)-1])
	if n.AttrInt("batch_chunk", 0) > 0 && len(out) <= 2 {
		return nil, nil, fmt.Errorf("batch_chunk needs an output of rank > 2, have %v", out)
	}
	return []Type{TensorType(dt, out)}, nil, nil
}

func of3cInferSwiGLU(n *Node) ([]Type, []Shape, error) {
	if err := of3cCheckChunks(n, "row_chunk"); err != nil {
		return nil, nil, err
	}
	x, w, wOut := n.Input(0), n.Input(1), n.Input(2)
	if x == nil || w == nil {
		return nil, nil, fmt.Errorf("inputs x and W are required")
	}
	dt := x.Type.DType
	if !of3cFusedFloat(dt) {
		return nil, nil, fmt.Errorf("element type %s unsupported (want f32, f16, bf16 or f64)", dt)
	}
	for _, in := range n.Inputs[1:] {
		if in != nil && in.Type.DType != dt {
			return nil, nil, fmt.Errorf("input %s is %s, x is %s: all inputs must share one type", in, in.Type.DType, dt)
		}
	}
	if !x.Type.Ranked || !w.Type.Ranked || (wOut != nil && !wOut.Type.Ranked) {
		t := TensorType(dt, nil)
		t.Ranked = false
		return []Type{t}, nil, nil
	}
	if x.Type.Rank() < 1 {
		return nil, nil, fmt.Errorf("x is a scalar")
	}
	if w.Type.Rank() != 2 {
		return nil, nil, fmt.Errorf("W has rank %d, want 2 ([c_in, 2h])", w.Type.Rank())
	}
	xs, ws := x.Type.Shape, w.Type.Shape
	if !of3cSameDim(xs[len(xs)-1], ws[0]) {
		return nil, nil, fmt.Errorf("x has %v input channels, W %v", xs[len(xs)-1], ws[0])
	}
	var hidden Dim
	switch {
	case ws[1].IsStatic():
		if ws[1].Val%2 != 0 {
			return nil, nil, fmt.Errorf("W has %d output channels, want an even number ([Wa | Wb])", ws[1].Val)
		}
		hidden = D(ws[1].Val / 2)
	default:
		h, ok := DimDivExact(ws[1], D(2))
		if !ok {
			h = Unknown
		}
		hidden = h
	}
	out := append(xs[:len(xs)-1].Clone(), hidden)
	if wOut != nil {
		if wOut.Type.Rank() != 2 {
			return nil, nil, fmt.Errorf("W_out has rank %d, want 2 ([h, c_out])", wOut.Type.Rank())
		}
		os := wOut.Type.Shape
		if !of3cSameDim(os[0], hidden) {
			return nil, nil, fmt.Errorf("W_out has %v input channels, the SwiGLU gives %v", os[0], hidden)
		}
		out[len(out)-1] = os[1]
	}
	return []Type{TensorType(dt, out)}, nil, nil
}
