package passes

import (
	"fmt"
	"math"

	"of3c/graph"
)

// fuseAttention: softmax(scale·q·kᵀ + Σ biases)·v → of3c.Attention
// (docs/OPS.md). The anchor is every Softmax over the last axis:
//
//	Softmax(L) with L = Add-tree of leaves, one leaf optionally the scores
//	  scores = [Mul/Div by scalar]* MatMul([Mul/Div]* q, [Mul/Div]* [Transpose] [Mul/Div]* kᵀ)
//	the probabilities read (after an optional leading-1 Unsqueeze/Reshape)
//	by MatMul(P, v).
//
// Every other leaf of the Add-tree is a bias, kept as its own input in the
// source order. Without a scores leaf the softmax is over biases alone: the
// bias-only form (MSA pair-weighted averaging). Einsum and Gemm have been
// rewritten to MatMul and Div-by-constant to Mul by canonicalize; Div is
// still accepted so the fusion also works on a pass list without it.
func fuseAttention(c *Context) error {
	g := c.G
	m := NewMatcher(g)
	for _, n := range append([]*graph.Node(nil), g.Nodes...) {
		if n.Op != "Softmax" || n.Domain != graph.DefaultDomain {
			continue
		}
		fused, why, err := tryAttention(g, m, n)
		if err != nil {
			return err
		}
		if fused == nil {
			c.Explain("attention", n, why, nil)
			continue
		}
		c.Count("attention:" + fused.AttrString("mode", graph.AttentionModeQK))
		c.Notef("%s ← %s (%d biases, mode %s, scale %.6g)", fused.Outputs[0].Name, n,
			len(fused.Inputs)-3, fused.AttrString("mode", graph.AttentionModeQK), fused.AttrFloat("scale", 0))
		if _, err := removeDead(g); err != nil {
			return err
		}
		m.Refresh()
	}
	// Failed attempts may leave unused Transposes behind.
	if _, err := removeDead(g); err != nil {
		return err
	}
	return nil
}

// tryAttention fuses at Softmax node s, or says why not.
func tryAttention(g *graph.Graph, m *Matcher, s *graph.Node) (*graph.Node, string, error) {
	L, P := s.Input(0), s.Outputs[0]
	if L == nil || P == nil || !L.Type.Ranked {
		return nil, "softmax input has unknown rank", nil
	}
	rank := L.Type.Rank()
	if rank < 2 {
		return nil, "softmax input has rank < 2", nil
	}
	axis := s.AttrInt("axis", -1)
	if s.Opset > 0 && s.Opset < 13 {
		// Before opset 13 Softmax flattened from axis on; only the last
		// axis means the same thing.
		axis = s.AttrInt("axis", 1)
	}
	if ax, err := normAxis(axis, rank); err != nil || ax != rank-1 {
		return nil, fmt.Sprintf("softmax is over axis %d, not the last", axis), nil
	}
	if !L.Type.DType.IsFloat() {
		return nil, "softmax of a non-float type", nil
	}
	// A softmax upcast for precision, Cast(T→f32) … Softmax … Cast(f32→T)
	// with T = f16/bf16, is what the fused op does anyway (docs/OPS.md:
	// accumulation in f32): look through both Casts.
	if lc := L.Producer; lc != nil && lc.Op == "Cast" && lc.Domain == graph.DefaultDomain && m.SingleUse(L) && m.SingleUse(P) {
		low := lc.Inputs[0]
		pc := m.Uses(P)[0]
		if low != nil && (low.Type.DType == graph.Float16 || low.Type.DType == graph.BFloat16) &&
			L.Type.DType == graph.Float32 && pc.Op == "Cast" && pc.Domain == graph.DefaultDomain &&
			pc.Outputs[0].Type.DType == low.Type.DType {
			L, P = low, pc.Outputs[0]
		}
	}
	// Probabilities → MatMul(P, v), through a Reshape/Unsqueeze that only
	// adds leading 1s (MSA: a.unsqueeze(0) against v: [S, H, K, c]).
	if !m.SingleUse(P) {
		return nil, fmt.Sprintf("the probabilities have %d readers; the fused op does not produce them", len(m.Uses(P))), nil
	}
	pv := m.Uses(P)[0]
	pIn := P
	if (pv.Op == "Unsqueeze" || pv.Op == "Reshape") && pv.Domain == graph.DefaultDomain && addsLeadingOnes(P, pv.Outputs[0]) {
		if !m.SingleUse(pv.Outputs[0]) {
			return nil, "the unsqueezed probabilities have several readers", nil
		}
		pIn = pv.Outputs[0]
		pv = m.Uses(pIn)[0]
	}
	if pv.Op != "MatMul" || pv.Domain != graph.DefaultDomain || pv.Input(0) != pIn || pv.Input(1) == pIn {
		return nil, fmt.Sprintf("the probabilities are read by %s, not as the left operand of MatMul(P, v)", pv), nil
	}
	v := pv.Input(1)
	if !v.Type.Ranked || v.Type.Rank() < 2 {
		return nil, "v has rank < 2", nil
	}
	out := pv.Outputs[0]

	// The logits: leaves of the Add-tree rooted at L.
	if !m.SingleUse(L) {
		return nil, "the logits have several readers", nil
	}
	leaves := addLeaves(m, L, true)
	var q, k *graph.Value
	scale := 1.0
	scoresAt := -1
	for i, leaf := range leaves {
		qq, kk, sc, _, err := matchScores(g, m, leaf)
		if err != nil {
			return nil, "", err
		}
		if qq != nil {
			q, k, scale, scoresAt = qq, kk, sc, i
			break
		}
	}
	var biases []*graph.Value
	for i, leaf := range leaves {
		if i == scoresAt {
			continue
		}
		if leaf.Type.Ranked && leaf.Type.Rank() == 0 && leaf.Type.DType == v.Type.DType {
			// One number added to every logit: softmax does not see it.
			continue
		}
		if !leaf.Type.Ranked || leaf.Type.Rank() < 1 {
			return nil, fmt.Sprintf("bias %s has no rank ≥ 1", leaf), nil
		}
		if leaf.Type.DType != v.Type.DType {
			return nil, fmt.Sprintf("bias %s is %s, v is %s", leaf, leaf.Type.DType, v.Type.DType), nil
		}
		biases = append(biases, leaf)
	}
	attrs := map[string]graph.Attr{}
	inputs := []*graph.Value{q, k, v}
	if q == nil {
		if len(biases) == 0 {
			return nil, "no scores and no biases", nil
		}
		attrs["mode"] = graph.Attr{Kind: graph.AttrString, Str: graph.AttentionModeBiasOnly}
		inputs = []*graph.Value{nil, nil, v}
	} else {
		attrs["scale"] = graph.Attr{Kind: graph.AttrFloat, Float: float32(scale)}
	}
	inputs = append(inputs, biases...)
	fusedOut, err := addOp(g, graph.FusedDomain+".Attention", attrs, inputs...)
	if err != nil {
		return nil, fmt.Sprintf("fused op would be ill-typed: %v", err), nil
	}
	if !fusedOut.Type.Equal(out.Type) {
		removeNode(g, fusedOut.Producer)
		return nil, fmt.Sprintf("fused op would give %s where the graph has %s", fusedOut.Type, out.Type), nil
	}
	replaceValue(g, out, fusedOut)
	return fusedOut.Producer, "", nil
}

// addsLeadingOnes reports whether out is in with only leading 1-dims added.
func addsLeadingOnes(in, out *graph.Value) bool {
	if !in.Type.Ranked || !out.Type.Ranked || out.Type.Rank() < in.Type.Rank() {
		return false
	}
	extra := out.Type.Rank() - in.Type.Rank()
	for i := 0; i < extra; i++ {
		if !out.Type.Shape[i].Equal(graph.D(1)) {
			return false
		}
	}
	return out.Type.Shape[extra:].Equal(in.Type.Shape)
}

// addLeaves flattens a tree of single-use Adds into its leaves, left to
// right. The root's readers were checked by the caller.
func addLeaves(m *Matcher, v *graph.Value, root bool) []*graph.Value {
	n := v.Producer
	if n == nil || n.Op != "Add" || n.Domain != graph.DefaultDomain || len(n.Inputs) != 2 ||
		(!root && !m.SingleUse(v)) {
		return []*graph.Value{v}
	}
	return append(addLeaves(m, n.Inputs[0], false), addLeaves(m, n.Inputs[1], false)...)
}

// peelScale strips multiplications and divisions by scalar constants that do
// not change v's shape, returning the base value and the product of the
// factors.
func peelScale(v *graph.Value) (*graph.Value, float64) {
	f := 1.0
	for {
		n := v.Producer
		if n == nil || n.Domain != graph.DefaultDomain || len(n.Inputs) != 2 {
			return v, f
		}
		switch n.Op {
		case "Mul":
			if c, ok := pureScalarOperand(n, 1); ok {
				f *= c
				v = n.Inputs[0]
				continue
			}
			if c, ok := pureScalarOperand(n, 0); ok {
				f *= c
				v = n.Inputs[1]
				continue
			}
		case "Div":
			if c, ok := pureScalarOperand(n, 1); ok && c != 0 {
				f /= c
				v = n.Inputs[0]
				continue
			}
		}
		return v, f
	}
}

// matchScores recognises scale·q·kᵀ at v and returns q, k (in [*, K, c]
// layout, a Transpose added when the graph only has kᵀ) and the scale.
func matchScores(g *graph.Graph, m *Matcher, v *graph.Value) (q, k *graph.Value, scale float64, why string, err error) {
	if !m.SingleUse(v) {
		return nil, nil, 0, "the scores have several readers", nil
	}
	base, f := peelScale(v)
	if base != v && !m.SingleUse(base) {
		return nil, nil, 0, "the unscaled scores have several readers", nil
	}
	mm := base.Producer
	if mm == nil || mm.Op != "MatMul" || mm.Domain != graph.DefaultDomain {
		return nil, nil, 0, "no MatMul under the scale", nil
	}
	a, b := mm.Input(0), mm.Input(1)
	if a == nil || b == nil || !a.Type.Ranked || !b.Type.Ranked || a.Type.Rank() < 2 || b.Type.Rank() < 2 {
		return nil, nil, 0, "MatMul operands of rank < 2", nil
	}
	if a.IsConst() || b.IsConst() {
		// A product with a constant is a projection, not q·kᵀ.
		return nil, nil, 0, "MatMul by a constant", nil
	}
	qv, fq := peelScale(a)
	kt, fk := peelScale(b)
	kv := kt
	if n := kt.Producer; n != nil && n.Op == "Transpose" && n.Domain == graph.DefaultDomain {
		// √scale on k before the transpose (SDPA exports scale both sides).
		inner, fk2 := peelScale(n.Inputs[0])
		if inner != n.Inputs[0] {
			perm, ok := permOf(n)
			if !ok {
				return nil, nil, 0, "malformed Transpose", nil
			}
			fk *= fk2
			if kv, err = transposeOf(g, inner, perm); err != nil {
				return nil, nil, 0, "", err
			}
		}
	}
	if kv, err = transposeOf(g, kv, swapLast2(kv.Type.Rank())); err != nil {
		return nil, nil, 0, "", err
	}
	scale = f * fq * fk
	if scale == 0 || math.IsInf(scale, 0) || math.IsNaN(scale) {
		return nil, nil, 0, fmt.Sprintf("scale %g", scale), nil
	}
	return qv, kv, scale, "", nil
}
