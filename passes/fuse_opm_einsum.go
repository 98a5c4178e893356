package passes

import (
	"fmt"
	"strings"

	"github.com/of3c/of3c/graph"
)

// The outer product mean as an Einsum. OpenFold3 (openfold3 0.5.0,
// OuterProductMean._opm) and other einsum-minded implementations write
//
//	outer = Einsum("...bac,...dae->...bdce", aᵀ, bᵀ)   [*, I, J, c, e]
//	out   = Reshape(outer, [*, I, J, c·e]) · W_out [+ bias]
//
// This matcher reads the equation rather than one spelling of it: two
// operands sharing exactly one summed label s; each operand keeps one token
// label and one channel label; the output is [batch…, i, j, c, e] with i, c
// from one operand and j, e from the other (channels c-major, as the
// flattening and W_out's rows expect); batch labels are leading unit axes.
// The operands are brought to the fused op's [S, N, c] with transposes that
// cancel against the exporter's own (transposeOf composes them).

// matchOPMEinsum matches MatMul(Reshape(Einsum(X, Y)), W) at mm. It returns
// nil, nil when mm is not a candidate (its left operand is not a Reshape of
// an Einsum), and a Miss when it is one but does not fit.
func matchOPMEinsum(m *Matcher, mm *graph.Node) (*Fusion, *Miss) {
	flat := mm.Input(0)
	w := mm.Input(1)
	rs := flat.Producer
	if rs == nil || rs.Op != "Reshape" || rs.Domain != graph.DefaultDomain || !w.IsConst() || len(w.Const.Shape) != 2 {
		return nil, nil
	}
	ein := rs.Input(0).Producer
	if ein == nil || ein.Op != "Einsum" || ein.Domain != graph.DefaultDomain || len(ein.Inputs) != 2 {
		return nil, nil
	}
	if !m.SingleUse(flat) || !m.SingleUse(rs.Input(0)) {
		return nil, missf("the outer product or its flattening has other readers")
	}
	x, y, outer := ein.Inputs[0], ein.Inputs[1], ein.Outputs[0]
	for _, v := range []*graph.Value{x, y, outer, flat} {
		if v == nil || !v.Type.Ranked {
			return nil, missf("an operand has unknown rank")
		}
	}
	eq := strings.ReplaceAll(ein.AttrString("equation", ""), " ", "")
	lhs, lo, ok := strings.Cut(eq, "->")
	ops := strings.Split(lhs, ",")
	if !ok || len(ops) != 2 {
		return nil, missf("einsum %q is not a two-operand equation with an output", eq)
	}
	la, lb, lo, ok := expandEllipsis(ops[0], ops[1], lo, x.Type.Rank(), y.Type.Rank())
	if !ok || len(la) != x.Type.Rank() || len(lb) != y.Type.Rank() || hasRepeat(la) || hasRepeat(lb) || hasRepeat(lo) {
		return nil, missf("einsum %q: labels do not match the operand ranks", eq)
	}
	in := func(s string, l byte) bool { return strings.IndexByte(s, l) >= 0 }
	var batch, sum []byte
	for i := 0; i < len(la); i++ {
		l := la[i]
		switch {
		case in(lb, l) && in(lo, l):
			batch = append(batch, l)
		case in(lb, l):
			sum = append(sum, l)
		}
	}
	lead := len(batch)
	if len(sum) != 1 || len(la) != lead+3 || len(lb) != lead+3 || len(lo) != lead+4 || lo[:lead] != string(batch) {
		return nil, missf("einsum %q is not Σ_s over one label of two [*, N, S, c] operands into [*, I, J, c, e]", eq)
	}
	// Output [batch…, i, j, c, e]: i, c from one operand, j, e from the other.
	oi, oj, oc, oe := lo[lead], lo[lead+1], lo[lead+2], lo[lead+3]
	if in(lb, oi) {
		x, y, la, lb = y, x, lb, la
	}
	if !in(la, oi) || !in(la, oc) || !in(lb, oj) || !in(lb, oe) {
		return nil, missf("einsum %q: rows and channels of the output do not come from one operand each", eq)
	}
	if !unitLead(lead, x, y, outer, flat, mm.Outputs[0]) {
		return nil, missf("the batch axes are not leading axes of size 1")
	}
	// [batch…, I, J, c, e] → [batch…, I, J, c·e], projected by W [c·e, c_out].
	os := outer.Type.Shape
	ch, e := os[lead+2], os[lead+3]
	if !ch.IsStatic() || !e.IsStatic() {
		return nil, missf("channel dims are not static")
	}
	fs := flat.Type.Shape
	if len(fs) != lead+3 || !fs[lead].Equal(os[lead]) || !fs[lead+1].Equal(os[lead+1]) || !fs[lead+2].Equal(graph.D(ch.Val*e.Val)) {
		return nil, missf("the outer products are flattened to %s, not [*, I, J, c·e]", flat.Type)
	}
	if w.Const.Shape[0] != ch.Val*e.Val || x.Type.DType != y.Type.DType || x.Type.DType != w.Const.DType {
		return nil, missf("W_out %v does not take c·e = %d channels of the operands' type", w.Const.Shape, ch.Val*e.Val)
	}
	// Each operand is brought to [batch…, S, N, c], then the batch axes go.
	perm := func(labels string, want ...byte) []int64 {
		p := make([]int64, 0, len(want)+lead)
		for _, l := range append(append([]byte{}, batch...), want...) {
			p = append(p, int64(strings.IndexByte(labels, l)))
		}
		return p
	}
	s := sum[0]
	pa, pb := perm(la, s, oi, oc), perm(lb, s, oj, oe)
	replaced := mm.Outputs[0]
	bias := biasOf(m, replaced, w.Const)
	counts := []string{"outer-product-mean:einsum"}
	if bias != nil {
		replaced = m.Uses(replaced)[0].Outputs[0]
		counts = append(counts, "outer-product-mean+bias")
	}
	return &Fusion{
		Replace: replaced,
		Build: func(g *graph.Graph) (*graph.Value, error) {
			var ab [2]*graph.Value
			for k, op := range []struct {
				v    *graph.Value
				perm []int64
			}{{x, pa}, {y, pb}} {
				t, err := transposeOf(g, op.v, op.perm)
				if err == nil {
					t, err = squeezeLead(g, t, lead)
				}
				if err != nil {
					return nil, fmt.Errorf("arranging the operands as [S, N, c]: %v", err)
				}
				ab[k] = t
			}
			inputs := []*graph.Value{ab[0], ab[1], w}
			if bias != nil {
				inputs = append(inputs, bias)
			}
			out, err := addOp(g, graph.FusedDomain+".OuterProductMean", nil, inputs...)
			if err != nil {
				return nil, err
			}
			return unsqueezeLead(g, out, lead)
		},
		Counts: counts,
		Note: func(o *graph.Value) string {
			return fmt.Sprintf("%s ← Σ_s %s⊗%s · %s (einsum %q)", o.Name, x.Name, y.Name, w.Name, eq)
		},
	}, nil
}

// biasOf returns b when v's only reader is v + b with b a constant [c_out]
// of W's type (either operand order), else nil.
func biasOf(m *Matcher, v *graph.Value, w *graph.Tensor) *graph.Value {
	if !m.SingleUse(v) {
		return nil
	}
	u := m.Uses(v)[0]
	if u.Op != "Add" || u.Domain != graph.DefaultDomain || len(u.Inputs) != 2 {
		return nil
	}
	other := u.Inputs[0]
	if other == v {
		other = u.Inputs[1]
	}
	if other == v || !other.IsConst() || len(other.Const.Shape) != 1 || other.Const.DType != w.DType ||
		other.Const.Shape[0] != w.Shape[1] {
		return nil
	}
	return other
}
