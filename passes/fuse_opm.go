package passes

import (
	"fmt"

	"of3c/graph"
)

// fuseOuterProductMean: the outer product and projection of OpenFold3's
// OuterProductMean → of3c.OuterProductMean (docs/OPS.md). Both exporters
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

func fuseOuterProductMean(c *Context) error {
	g := c.G
	m := NewMatcher(g)
	for _, n := range append([]*graph.Node(nil), g.Nodes...) {
		if n.Op != "MatMul" || n.Domain != graph.DefaultDomain || len(n.Outputs) != 1 || !n.Input(1).IsConst() {
			continue
		}
		if !containsNode(g, n) {
			continue
		}
		mt, ok := m.MatchNode(opmPattern, n)
		if !ok {
			f, failed := m.LastFailure()
			out, why, err := tryOPMEinsum(g, m, n)
			if err != nil {
				return err
			}
			if out != nil {
				c.Count("outer-product-mean:einsum")
				c.Notef("%s ← Σ_s %s⊗%s · %s (einsum)", out.Name, out.Producer.Inputs[0].Name, out.Producer.Inputs[1].Name, n.Input(1).Name)
				if _, err := removeDead(g); err != nil {
					return err
				}
				m.Refresh()
				continue
			}
			if why != "" {
				c.Explain("outer-product-mean", n, why, nil)
			} else if failed && f.Matched >= 3 {
				c.Explain("outer-product-mean", n, "pattern did not match", &f)
			}
			continue
		}
		if esc, ok := m.Closed(mt); !ok {
			c.Explain("outer-product-mean", n, fmt.Sprintf("%s is read outside the pattern", esc), nil)
			continue
		}
		if why := opmShapesOK(mt); why != "" {
			c.Explain("outer-product-mean", n, why, nil)
			continue
		}
		a, b, w := mt.Value("a"), mt.Value("b"), mt.Value("w")
		inputs := []*graph.Value{a, b, w}
		replaced := n.Outputs[0]
		// Absorb "+ bias" with a constant [c_out] bias (either operand order).
		if m.SingleUse(replaced) {
			if u := m.Uses(replaced)[0]; u.Op == "Add" && u.Domain == graph.DefaultDomain && len(u.Inputs) == 2 {
				other := u.Inputs[0]
				if other == replaced {
					other = u.Inputs[1]
				}
				if other != replaced && other.IsConst() && len(other.Const.Shape) == 1 &&
					other.Const.DType == w.Const.DType && other.Const.Shape[0] == w.Const.Shape[1] {
					inputs = append(inputs, other)
					replaced = u.Outputs[0]
				}
			}
		}
		out, err := addOp(g, graph.FusedDomain+".OuterProductMean", nil, inputs...)
		if err != nil {
			c.Explain("outer-product-mean", n, fmt.Sprintf("fused op would be ill-typed: %v", err), nil)
			continue
		}
		if !out.Type.Equal(replaced.Type) {
			removeNode(g, out.Producer)
			c.Explain("outer-product-mean", n, fmt.Sprintf("fused op would give %s where the graph has %s", out.Type, replaced.Type), nil)
			continue
		}
		replaceValue(g, replaced, out)
		c.Count("outer-product-mean")
		if len(inputs) == 4 {
			c.Count("outer-product-mean+bias")
		}
		c.Notef("%s ← Σ_s %s⊗%s · %s", out.Name, a.Name, b.Name, w.Name)
		if _, err := removeDead(g); err != nil {
			return err
		}
		m.Refresh()
	}
	return nil
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

// containsNode reports whether n is still in g (an earlier rewrite in the
// same sweep may have removed it).
func containsNode(g *graph.Graph, n *graph.Node) bool {
	for _, x := range g.Nodes {
		if x == n {
			return true
		}
	}
	return false
}
