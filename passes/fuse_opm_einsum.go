package passes

import (
	"fmt"
	"strings"

	"of3c/graph"
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

// opmEinsumMatch is a matched einsum outer product.
type opmEinsumMatch struct {
	a, b   *graph.Value // [S, N, c] after transposes, lead axes squeezed
	lead   int
	replac *graph.Value // the value the fused op replaces (MatMul or + bias)
	inputs []*graph.Value
}

// tryOPMEinsum matches MatMul(Reshape(Einsum(X, Y)), W) at mm and builds the
// fused op's operands. It returns a reason when mm looked like a candidate
// (its left operand is a Reshape of an Einsum) but is not one.
func tryOPMEinsum(g *graph.Graph, m *Matcher, mm *graph.Node) (*graph.Value, string, error) {
	flat := mm.Input(0)
	w := mm.Input(1)
	rs := flat.Producer
	if rs == nil || rs.Op != "Reshape" || rs.Domain != graph.DefaultDomain || !w.IsConst() || len(w.Const.Shape) != 2 {
		return nil, "", nil
	}
	ein := rs.Input(0).Producer
	if ein == nil || ein.Op != "Einsum" || ein.Domain != graph.DefaultDomain || len(ein.Inputs) != 2 {
		return nil, "", nil
	}
	if !m.SingleUse(flat) || !m.SingleUse(rs.Input(0)) {
		return nil, "the outer product or its flattening has other readers", nil
	}
	x, y, outer := ein.Inputs[0], ein.Inputs[1], ein.Outputs[0]
	for _, v := range []*graph.Value{x, y, outer, flat} {
		if v == nil || !v.Type.Ranked {
			return nil, "an operand has unknown rank", nil
		}
	}
	eq := strings.ReplaceAll(ein.AttrString("equation", ""), " ", "")
	lhs, lo, ok := strings.Cut(eq, "->")
	ops := strings.Split(lhs, ",")
	if !ok || len(ops) != 2 {
		return nil, fmt.Sprintf("einsum %q is not a two-operand equation with an output", eq), nil
	}
	la, lb, lo, ok := expandEllipsis(ops[0], ops[1], lo, x.Type.Rank(), y.Type.Rank())
	if !ok || len(la) != x.Type.Rank() || len(lb) != y.Type.Rank() || hasRepeat(la) || hasRepeat(lb) || hasRepeat(lo) {
		return nil, fmt.Sprintf("einsum %q: labels do not match the operand ranks", eq), nil
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
		return nil, fmt.Sprintf("einsum %q is not Σ_s over one label of two [*, N, S, c] operands into [*, I, J, c, e]", eq), nil
	}
	// Output [batch…, i, j, c, e]: i, c from one operand, j, e from the other.
	oi, oj, oc, oe := lo[lead], lo[lead+1], lo[lead+2], lo[lead+3]
	if in(lb, oi) {
		x, y, la, lb = y, x, lb, la
	}
	if !in(la, oi) || !in(la, oc) || !in(lb, oj) || !in(lb, oe) {
		return nil, fmt.Sprintf("einsum %q: rows and channels of the output do not come from one operand each", eq), nil
	}
	if !unitLead(lead, x, y, outer, flat, mm.Outputs[0]) {
		return nil, "the batch axes are not leading axes of size 1", nil
	}
	// [batch…, I, J, c, e] → [batch…, I, J, c·e], projected by W [c·e, c_out].
	os := outer.Type.Shape
	ch, e := os[lead+2], os[lead+3]
	if !ch.IsStatic() || !e.IsStatic() {
		return nil, "channel dims are not static", nil
	}
	fs := flat.Type.Shape
	if len(fs) != lead+3 || !fs[lead].Equal(os[lead]) || !fs[lead+1].Equal(os[lead+1]) || !fs[lead+2].Equal(graph.D(ch.Val*e.Val)) {
		return nil, fmt.Sprintf("the outer products are flattened to %s, not [*, I, J, c·e]", flat.Type), nil
	}
	if w.Const.Shape[0] != ch.Val*e.Val || x.Type.DType != y.Type.DType || x.Type.DType != w.Const.DType {
		return nil, fmt.Sprintf("W_out %v does not take c·e = %d channels of the operands' type", w.Const.Shape, ch.Val*e.Val), nil
	}
	// Bring each operand to [batch…, S, N, c], then drop the batch axes.
	perm := func(labels string, want ...byte) []int64 {
		p := make([]int64, 0, len(want)+lead)
		for _, l := range append(append([]byte{}, batch...), want...) {
			p = append(p, int64(strings.IndexByte(labels, l)))
		}
		return p
	}
	s := sum[0]
	mark := len(g.Nodes)
	rollback := func() { g.Nodes = g.Nodes[:mark] }
	var ab [2]*graph.Value
	for k, op := range []struct {
		v          *graph.Value
		labels     string
		tok, chan_ byte
	}{{x, la, oi, oc}, {y, lb, oj, oe}} {
		t, err := transposeOf(g, op.v, perm(op.labels, s, op.tok, op.chan_))
		if err == nil {
			t, err = squeezeLead(g, t, lead)
		}
		if err != nil {
			rollback()
			return nil, fmt.Sprintf("arranging the operands as [S, N, c]: %v", err), nil
		}
		ab[k] = t
	}
	inputs := []*graph.Value{ab[0], ab[1], w}
	replaced := mm.Outputs[0]
	if b := biasOf(m, replaced, w.Const); b != nil {
		inputs = append(inputs, b)
		replaced = m.Uses(replaced)[0].Outputs[0]
	}
	out3, err := addOp(g, graph.FusedDomain+".OuterProductMean", nil, inputs...)
	if err != nil {
		rollback()
		return nil, fmt.Sprintf("fused op would be ill-typed: %v", err), nil
	}
	out, err := unsqueezeLead(g, out3, lead)
	if err != nil || !out.Type.Equal(replaced.Type) {
		rollback()
		return nil, fmt.Sprintf("fused op would give %s where the graph has %s", out.Type, replaced.Type), nil
	}
	replaceValue(g, replaced, out)
	return out3, "", nil
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
