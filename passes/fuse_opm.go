package passes

import (
	"fmt"

	"github.com/of3c/of3c/graph"
)

// outerProductRule: the outer product and projection of OpenFold3's
// OuterProductMean → of3c.OuterProductMean (docs/ops.md). Both exporters
// write Σ_s a[s,i,c]·b[s,j,e] as one GEMM over flattened (row, channel)
// axes and unflatten it:
//
//	outer = MatMul(Transpose(Reshape(a, [S, I·c])), Reshape(b, [S, J·e]))   [I·c, J·e]
//	flat  = Reshape(Transpose(Reshape(outer, [I, c, J, e]), [0,2,1,3]), [I, J, c·e])
//	out   = MatMul(flat, W_out) [+ bias]
//
// The [I, J, c·e] tensor (4 GiB for c = e = 32 at N = 1024, f32) is what the
// fused op never materialises whole: it is evaluated in blocks of rows i
// (row_chunk, set by the planner). The mask normalisation (÷ (Σ_s m_si m_sj +
// ε)) stays outside: it is elementwise on the [I, J, c_out] output.
var opmPattern = Op("MatMul",
	Op("Reshape",
		Op("Transpose",
			Op("Reshape",
				Op("MatMul",
					Op("Transpose", Op("Reshape", Any("a"), Any("")).OneUse().As("ra")).OneUse().As("ta"),
					Op("Reshape", Any("b"), Any("")).OneUse().As("rb"),
				).OneUse().As("outer"),
				Any(""),
			).OneUse().As("r4"),
		).OneUse().As("t4"),
		Any(""),
	).OneUse().As("flat"),
	weight2D("w"),
)

// outerProductRule anchors on the projection MatMul by W_out and tries the
// GEMM form (opmPattern) first, then the einsum form (fuse_opm_einsum.go).
var outerProductRule = &FusionRule{Name: "outer-product-mean", Anchors: []string{"MatMul"}, Match: matchOuterProduct}

func matchOuterProduct(m *Matcher, n *graph.Node) (*Fusion, *Miss) {
	if len(n.Outputs) != 1 || n.Input(1) == nil || !n.Input(1).IsConst() {
		return nil, nil
	}
	mt, ok := m.MatchNode(opmPattern, n)
	if !ok {
		f, failed := m.LastFailure()
		if fu, miss := matchOPMEinsum(m, n); fu != nil || miss != nil {
			return fu, miss
		}
		if failed && f.Matched >= 3 {
			return nil, &Miss{Reason: "pattern did not match", Detail: &f}
		}
		return nil, nil
	}
	if why := opmShapesOK(mt); why != "" {
		return nil, missf("%s", why)
	}
	a, b, w := mt.Value("a"), mt.Value("b"), mt.Value("w")
	inputs := []*graph.Value{a, b, w}
	replaced := n.Outputs[0]
	counts := []string{"outer-product-mean"}
	if bias := biasOf(m, replaced, w.Const); bias != nil {
		inputs = append(inputs, bias)
		replaced = m.Uses(replaced)[0].Outputs[0]
		counts = append(counts, "outer-product-mean+bias")
	}
	return &Fusion{
		Replace: replaced,
		Closed:  []*Match{mt},
		Build: func(g *graph.Graph) (*graph.Value, error) {
			return addOp(g, graph.FusedDomain+".OuterProductMean", nil, inputs...)
		},
		Counts: counts,
		Note: func(o *graph.Value) string {
			return fmt.Sprintf("%s ← Σ_s %s⊗%s · %s", o.Name, a.Name, b.Name, w.Name)
		},
	}, nil
}

// opmShapesOK checks that the reshapes and transposes of a match are the
// ones that make it an outer product: a, b [S, N, c] of one type with static
// channels, flattened per MSA row, unflattened to [I, c, J, e], channels
// moved last, flattened to [I, J, c·e] and projected by W_out [c·e, c_out].
func opmShapesOK(mt *Match) string {
	a, b, w := mt.Value("a"), mt.Value("b"), mt.Value("w")
	ra, rb, r4, flat := mt.Value("ra"), mt.Value("rb"), mt.Value("r4"), mt.Value("flat")
	for _, v := range []*graph.Value{a, b, ra, rb, r4, flat} {
		if !v.Type.Ranked {
			return fmt.Sprintf("%s has unknown rank", v)
		}
	}
	if a.Type.Rank() != 3 || b.Type.Rank() != 3 {
		return fmt.Sprintf("a %s and b %s are not [S, N, c]", a.Type, b.Type)
	}
	if a.Type.DType != b.Type.DType || a.Type.DType != w.Const.DType {
		return "a, b and W_out differ in type"
	}
	as, bs := a.Type.Shape, b.Type.Shape
	ch, e := as[2], bs[2]
	if !ch.IsStatic() || !e.IsStatic() {
		return "channel dims are not static"
	}
	if ra.Type.Rank() != 2 || rb.Type.Rank() != 2 || !ra.Type.Shape[0].Equal(as[0]) || !rb.Type.Shape[0].Equal(bs[0]) ||
		!as[0].Equal(bs[0]) {
		return fmt.Sprintf("a, b are not flattened per MSA row (%s, %s)", ra.Type, rb.Type)
	}
	if p, ok := permOf(mt.Node("ta")); !ok || len(p) != 2 || p[0] != 1 || p[1] != 0 {
		return "the left operand is not Reshape(a)ᵀ"
	}
	rs := r4.Type.Shape
	if len(rs) != 4 || !rs[1].Equal(ch) || !rs[3].Equal(e) {
		return fmt.Sprintf("the product is unflattened to %s, not [I, c, J, e]", r4.Type)
	}
	if p, ok := permOf(mt.Node("t4")); !ok || fmt.Sprint(p) != "[0 2 1 3]" {
		return "the channels are not moved last by perm [0, 2, 1, 3]"
	}
	fs := flat.Type.Shape
	if len(fs) != 3 || !fs[0].Equal(rs[0]) || !fs[1].Equal(rs[2]) || !fs[2].Equal(graph.D(ch.Val*e.Val)) {
		return fmt.Sprintf("the outer products are flattened to %s, not [I, J, c·e]", flat.Type)
	}
	if w.Const.Shape[0] != ch.Val*e.Val {
		return fmt.Sprintf("W_out %v does not take c·e = %d channels", w.Const.Shape, ch.Val*e.Val)
	}
	return ""
}
