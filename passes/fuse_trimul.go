package passes

import (
	"fmt"

	"github.com/of3c/of3c/graph"
)

// triangleMulRule: the gated projections and the triangle product of
// OpenFold3's TriangleMultiplicativeUpdate → of3c.TriangleMultiplication
// (docs/ops.md). The anchor is the product, which both exporters write as a
// batched MatMul over channels between transposed operands, transposed back
// (an einsum product becomes that form in canonicalize):
//
//	a = mask·σ(x Wag)·(x Wap)      b = mask·σ(x Wbg)·(x Wbp)     (mask optional)
//	p = Transpose(MatMul(Transpose(a, pa), Transpose(b, pb)), po)  [N, N, h]
//
// The perms decide the direction: outgoing p_ij = Σ_k a_ik b_jk, incoming
// p_ij = Σ_k a_ki b_kj (the operands may come in either order). What is left
// outside — LN_out, the output projection and the gate σ(x Wg) — is per pair
// element and costs a few [N, N, c] tensors; the fused part is what holds
// a, b, their four projections and the transposed copies at once.
var triangleMulRule = &FusionRule{Name: "triangle-multiplication", Anchors: []string{"MatMul"}, Match: matchTriangleMultiplication}

// gatedProjection matches mask·σ(x Wg)·(x Wp) as OpenFold3 writes it
// ((mask·σ)·p, operands of each Mul in either order), or σ(x Wg)·(x Wp)
// without a mask.
func gatedProjection() *Pattern {
	proj := func(name string) *Pattern { return Op("MatMul", Any("x"), weight2D(name)).OneUse() }
	return OneOf(
		Op("Mul", Op("Mul", Any("mask"), Op("Sigmoid", proj("wg")).OneUse()).OneUse(), proj("wp")),
		Op("Mul", Op("Sigmoid", proj("wg")).OneUse(), proj("wp")),
	)
}

var gatedProjectionPattern = gatedProjection()

// triLabel names an axis of one of the two rank-3 product operands.
type triLabel struct {
	operand int // 0: MatMul's left operand's source, 1: the right's
	axis    int
}

func matchTriangleMultiplication(m *Matcher, mm *graph.Node) (*Fusion, *Miss) {
	if len(mm.Outputs) != 1 {
		return nil, nil
	}
	ta, tb := mm.Input(0).Producer, mm.Input(1).Producer
	if ta == nil || tb == nil || ta.Op != "Transpose" || tb.Op != "Transpose" ||
		ta.Domain != graph.DefaultDomain || tb.Domain != graph.DefaultDomain {
		return nil, nil // not a candidate: stay quiet
	}
	src := [2]*graph.Value{ta.Inputs[0], tb.Inputs[0]}
	// [N, N, c] operands, or [1, …, 1, N, N, c] (OpenFold3's batch axis):
	// lead unit axes that every transpose keeps in place.
	if !mm.Outputs[0].Type.Ranked || mm.Outputs[0].Type.Rank() < 3 {
		return nil, nil
	}
	lead := mm.Outputs[0].Type.Rank() - 3
	for _, v := range append(src[:], mm.Outputs[0], mm.Input(0), mm.Input(1)) {
		if !v.Type.Ranked || v.Type.Rank() != 3+lead {
			return nil, nil
		}
	}
	if !unitLead(lead, append(src[:], mm.Outputs[0])...) {
		return nil, nil
	}
	if !m.SingleUse(mm.Input(0)) || !m.SingleUse(mm.Input(1)) || !m.SingleUse(mm.Outputs[0]) {
		return nil, missf("the product's transposes or result have other readers")
	}
	to := m.Uses(mm.Outputs[0])[0]
	if to.Op != "Transpose" || to.Domain != graph.DefaultDomain {
		return nil, missf("the product is not transposed back to [N, N, h]")
	}
	pa, ok1 := permOf(ta)
	pb, ok2 := permOf(tb)
	po, ok3 := permOf(to)
	if !ok1 || !ok2 || !ok3 {
		return nil, missf("malformed Transpose")
	}
	var ok4, ok5, ok6 bool
	pa, ok4 = dropLeadPerm(pa, lead)
	pb, ok5 = dropLeadPerm(pb, lead)
	po, ok6 = dropLeadPerm(po, lead)
	if !ok4 || !ok5 || !ok6 || len(pa) != 3 || len(pb) != 3 || len(po) != 3 {
		return nil, missf("a transpose moves the leading unit (batch) axes")
	}
	A := [3]triLabel{{0, int(pa[0])}, {0, int(pa[1])}, {0, int(pa[2])}}
	B := [3]triLabel{{1, int(pb[0])}, {1, int(pb[1])}, {1, int(pb[2])}}
	// The MatMul batches over channels (axis 2 of both sources) and
	// contracts A's last axis with B's middle one.
	if A[0].axis != 2 || B[0].axis != 2 {
		return nil, missf("the product does not batch over channels")
	}
	prod := [3]triLabel{A[0], A[1], B[2]}
	out := [3]triLabel{prod[po[0]], prod[po[1]], prod[po[2]]}
	if out[2].axis != 2 {
		return nil, missf("the channels do not end up last")
	}
	ki := [2]int{A[2].axis, B[1].axis} // contracted axis of each source
	// Roles: "a" provides output rows i, "b" columns j.
	ai, bi := out[0].operand, out[1].operand
	if ai == bi {
		return nil, missf("rows and columns come from one operand")
	}
	var dir string
	switch {
	case out[0].axis == 0 && out[1].axis == 0 && ki[ai] == 1 && ki[bi] == 1:
		dir = graph.TriangleOutgoing
	case out[0].axis == 1 && out[1].axis == 1 && ki[ai] == 0 && ki[bi] == 0:
		dir = graph.TriangleIncoming
	default:
		return nil, missf("the contraction is neither Σ_k a_ik b_jk nor Σ_k a_ki b_kj")
	}
	aVal, bVal := src[ai], src[bi]
	if !m.SingleUse(aVal) || !m.SingleUse(bVal) {
		return nil, missf("a or b has readers besides the product")
	}
	ma, ok := m.Match(gatedProjectionPattern, aVal)
	if !ok {
		f, _ := m.LastFailure()
		return nil, &Miss{Reason: "a is not mask·σ(x Wag)·(x Wap)", Detail: &f}
	}
	mb, ok := m.Match(gatedProjectionPattern, bVal)
	if !ok {
		f, _ := m.LastFailure()
		return nil, &Miss{Reason: "b is not mask·σ(x Wbg)·(x Wbp)", Detail: &f}
	}
	x, mask := ma.Value("x"), ma.Value("mask")
	if mb.Value("x") != x || mb.Value("mask") != mask {
		return nil, missf("a and b read different inputs or masks")
	}
	if !x.Type.Ranked || x.Type.Rank() != 3+lead || !unitLead(lead, x) {
		return nil, missf("x is not [N, N, c] (after leading unit axes)")
	}
	if mask != nil && (!mask.Type.Ranked || mask.Type.Rank() != 3+lead || !unitLead(lead, mask) ||
		!mask.Type.Shape[2+lead].Equal(graph.D(1))) {
		return nil, missf("mask %s is not [N, N, 1] (after leading unit axes)", mask)
	}
	ws := []*graph.Tensor{ma.Value("wp").Const, ma.Value("wg").Const, mb.Value("wp").Const, mb.Value("wg").Const}
	for _, w := range ws[1:] {
		if w.DType != ws[0].DType || fmt.Sprint(w.Shape) != fmt.Sprint(ws[0].Shape) {
			return nil, missf("the four projections differ in shape or type")
		}
	}
	return &Fusion{
		Replace: to.Outputs[0],
		Closed:  []*Match{ma, mb},
		Build: func(g *graph.Graph) (*graph.Value, error) {
			w, err := concatLastAxis(ws)
			if err != nil {
				return nil, err
			}
			wv := g.AddConst(g.UniqueName(ma.Value("wp").Name+"_trimul"), w)
			attrs := map[string]graph.Attr{"direction": {Kind: graph.AttrString, Str: dir}}
			x3, err := squeezeLead(g, x, lead)
			if err != nil {
				return nil, fmt.Errorf("squeezing the batch axes: %v", err)
			}
			mask3, err := squeezeLead(g, mask, lead)
			if err != nil {
				return nil, fmt.Errorf("squeezing the batch axes: %v", err)
			}
			fused, err := addOp(g, graph.FusedDomain+".TriangleMultiplication", attrs, x3, mask3, wv)
			if err != nil {
				return nil, err
			}
			return unsqueezeLead(g, fused, lead)
		},
		Counts: []string{"triangle-multiplication:" + dir},
		Note: func(o *graph.Value) string {
			return fmt.Sprintf("%s ← triangle product (%s) of %s", o.Name, dir, x.Name)
		},
	}, nil
}
