package graph

import "fmt"

// Shape rules for the row-chunked pair ops of docs/ops.md:
// of3c.OuterProductMean and of3c.TriangleMultiplication. The rules check
// what the specification requires and compute the output type; the helpers
// they share with infer_of3c.go (of3cFusedFloat, of3cSameDim,
// of3cCheckChunks) are read-only here.

func init() {
	RegisterOp(OpDef{Domain: FusedDomain, Op: "OuterProductMean", MinInputs: 3, MaxInputs: 4,
		MinOutputs: 1, MaxOutputs: 1, SinceVersion: 1, Infer: of3cInferOuterProductMean})
	RegisterOp(OpDef{Domain: FusedDomain, Op: "TriangleMultiplication", MinInputs: 3, MaxInputs: 3,
		MinOutputs: 1, MaxOutputs: 1, SinceVersion: 1, Infer: of3cInferTriangleMultiplication})
}

// Triangle multiplication directions (attribute "direction").
const (
	TriangleOutgoing = "outgoing"
	TriangleIncoming = "incoming"
)

// of3cChunkTypes checks that every present input is typed T, a fused float
// type, and reports whether all are ranked.
func of3cChunkTypes(n *Node, dt DType) (ranked bool, err error) {
	if !of3cFusedFloat(dt) {
		return false, fmt.Errorf("element type %s unsupported (want f32, f16, bf16 or f64)", dt)
	}
	ranked = true
	for _, in := range n.Inputs {
		if in == nil {
			continue
		}
		if in.Type.DType != dt {
			return false, fmt.Errorf("input %s is %s, want %s: all inputs must share one type", in, in.Type.DType, dt)
		}
		if !in.Type.Ranked {
			ranked = false
		}
	}
	return ranked, nil
}

func of3cUnranked(dt DType) []Type {
	t := TensorType(dt, nil)
	t.Ranked = false
	return []Type{t}
}

// out = of3c.OuterProductMean(a [*, S, I, c], b [*, S, J, e], W_out [c·e, c_out], bias? [c_out])
//
//	→ [*, I, J, c_out]
func of3cInferOuterProductMean(n *Node) ([]Type, []Shape, error) {
	if err := of3cCheckChunks(n, "row_chunk"); err != nil {
		return nil, nil, err
	}
	a, b, w, bias := n.Input(0), n.Input(1), n.Input(2), n.Input(3)
	if a == nil || b == nil || w == nil {
		return nil, nil, fmt.Errorf("inputs a, b and W_out are required")
	}
	dt := a.Type.DType
	ranked, err := of3cChunkTypes(n, dt)
	if err != nil {
		return nil, nil, err
	}
	if !ranked {
		return of3cUnranked(dt), nil, nil
	}
	as, bs, ws := a.Type.Shape, b.Type.Shape, w.Type.Shape
	if len(as) < 3 || len(bs) != len(as) {
		return nil, nil, fmt.Errorf("a %v and b %v must have one rank ≥ 3 ([*, S, N, c])", as, bs)
	}
	r := len(as)
	for i := 0; i < r-2; i++ { // batch dims and S: equal, no broadcasting
		if !of3cSameDim(as[i], bs[i]) {
			return nil, nil, fmt.Errorf("a %v and b %v differ in dim %d", as, bs, i)
		}
	}
	if len(ws) != 2 {
		return nil, nil, fmt.Errorf("W_out has rank %d, want 2 ([c·e, c_out])", len(ws))
	}
	if ce := DimMul(as[r-1], bs[r-1]); !of3cSameDim(CanonDim(ce), ws[0]) {
		return nil, nil, fmt.Errorf("W_out has %v input channels, want c·e = %v·%v", ws[0], as[r-1], bs[r-1])
	}
	if bias != nil {
		if bias.Type.Rank() != 1 || !of3cSameDim(bias.Type.Shape[0], ws[1]) {
			return nil, nil, fmt.Errorf("bias %v must be [%v]", bias.Type.Shape, ws[1])
		}
	}
	out := append(as[:r-3].Clone(), as[r-2], bs[r-2], ws[1])
	return []Type{TensorType(dt, out)}, nil, nil
}

// p = of3c.TriangleMultiplication(x [*, N, N, c], mask? [*, N, N, 1], W [c, 4h]) → [*, N, N, h]
func of3cInferTriangleMultiplication(n *Node) ([]Type, []Shape, error) {
	if err := of3cCheckChunks(n, "row_chunk"); err != nil {
		return nil, nil, err
	}
	if a, ok := n.Attrs["direction"]; ok && a.Kind != AttrString {
		return nil, nil, fmt.Errorf("attribute direction must be a string")
	}
	switch d := n.AttrString("direction", TriangleOutgoing); d {
	case TriangleOutgoing, TriangleIncoming:
	default:
		return nil, nil, fmt.Errorf("unknown direction %q (want %q or %q)", d, TriangleOutgoing, TriangleIncoming)
	}
	x, mask, w := n.Input(0), n.Input(1), n.Input(2)
	if x == nil || w == nil {
		return nil, nil, fmt.Errorf("inputs x and W are required")
	}
	dt := x.Type.DType
	ranked, err := of3cChunkTypes(n, dt)
	if err != nil {
		return nil, nil, err
	}
	if !ranked {
		return of3cUnranked(dt), nil, nil
	}
	xs, ws := x.Type.Shape, w.Type.Shape
	r := len(xs)
	if r < 3 {
		return nil, nil, fmt.Errorf("x %v must have rank ≥ 3 ([*, N, N, c])", xs)
	}
	if !of3cSameDim(xs[r-3], xs[r-2]) {
		return nil, nil, fmt.Errorf("x %v is not square in its two pair axes", xs)
	}
	if len(ws) != 2 || !of3cSameDim(ws[0], xs[r-1]) {
		return nil, nil, fmt.Errorf("W %v must be [%v, 4h]", ws, xs[r-1])
	}
	var h Dim
	if ws[1].IsStatic() {
		if ws[1].Val%4 != 0 {
			return nil, nil, fmt.Errorf("W has %d output channels, want a multiple of 4 ([Wap | Wag | Wbp | Wbg])", ws[1].Val)
		}
		h = D(ws[1].Val / 4)
	} else if q, ok := DimDivExact(ws[1], D(4)); ok {
		h = q
	} else {
		h = Unknown
	}
	if mask != nil {
		ms := mask.Type.Shape
		if len(ms) != r || !ms[r-1].Equal(D(1)) {
			return nil, nil, fmt.Errorf("mask %v must be [*, N, N, 1] like x %v", ms, xs)
		}
		for i := 0; i < r-1; i++ {
			if !(ms[i].IsStatic() && ms[i].Val == 1) && !of3cSameDim(ms[i], xs[i]) {
				return nil, nil, fmt.Errorf("mask %v does not broadcast to x %v", ms, xs)
			}
		}
	}
	out := append(xs[:r-1].Clone(), h)
	return []Type{TensorType(dt, out)}, nil, nil
}
