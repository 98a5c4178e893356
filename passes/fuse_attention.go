package passes

import (
	"fmt"
	"math"

	"github.com/of3c/of3c/graph"
)

// attentionRule: softmax(scale·q·kᵀ + Σ biases)·v → of3c.Attention
// (docs/ops.md). The anchor is every Softmax over the last axis:
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
// still accepted so the fusion also works on a pass list without it. The
// match only reads the graph; k's transpose to [*, K, c] is made in Build.
var attentionRule = &FusionRule{Name: "attention", Anchors: []string{"Softmax"}, Match: matchAttention}

func matchAttention(m *Matcher, s *graph.Node) (*Fusion, *Miss) {
	L, P := s.Input(0), s.Outputs[0]
	if L == nil || P == nil || !L.Type.Ranked {
		return nil, missf("softmax input has unknown rank")
	}
	rank := L.Type.Rank()
	if rank < 2 {
		return nil, missf("softmax input has rank < 2")
	}
	axis := s.AttrInt("axis", -1)
	if s.Opset > 0 && s.Opset < 13 {
		// Before opset 13 Softmax flattened from axis on; only the last
		// axis means the same thing.
		axis = s.AttrInt("axis", 1)
	}
	if ax, err := normAxis(axis, rank); err != nil || ax != rank-1 {
		return nil, missf("softmax is over axis %d, not the last", axis)
	}
	if !L.Type.DType.IsFloat() {
		return nil, missf("softmax of a non-float type")
	}
	// A softmax upcast for precision, Cast(T→f32) … Softmax … Cast(f32→T)
	// with T = f16/bf16, is what the fused op does anyway (docs/ops.md:
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
		return nil, missf("the probabilities have %d readers; the fused op does not produce them", len(m.Uses(P)))
	}
	pv := m.Uses(P)[0]
	pIn := P
	if (pv.Op == "Unsqueeze" || pv.Op == "Reshape") && pv.Domain == graph.DefaultDomain && addsLeadingOnes(P, pv.Outputs[0]) {
		if !m.SingleUse(pv.Outputs[0]) {
			return nil, missf("the unsqueezed probabilities have several readers")
		}
		pIn = pv.Outputs[0]
		pv = m.Uses(pIn)[0]
	}
	if pv.Op != "MatMul" || pv.Domain != graph.DefaultDomain || pv.Input(0) != pIn || pv.Input(1) == pIn {
		return nil, missf("the probabilities are read by %s, not as the left operand of MatMul(P, v)", pv)
	}
	v := pv.Input(1)
	if !v.Type.Ranked || v.Type.Rank() < 2 {
		return nil, missf("v has rank < 2")
	}
	out := pv.Outputs[0]

	// The logits: leaves of the Add-tree rooted at L.
	if !m.SingleUse(L) {
		return nil, missf("the logits have several readers")
	}
	leaves := addLeaves(m, L, true)
	var sc *scores
	scoresAt := -1
	for i, leaf := range leaves {
		if got, miss := matchScores(m, leaf); miss == nil {
			sc, scoresAt = got, i
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
			return nil, missf("bias %s has no rank ≥ 1", leaf)
		}
		if leaf.Type.DType != v.Type.DType {
			return nil, missf("bias %s is %s, v is %s", leaf, leaf.Type.DType, v.Type.DType)
		}
		biases = append(biases, leaf)
	}
	mode := graph.AttentionModeQK
	if sc == nil {
		if len(biases) == 0 {
			return nil, missf("no scores and no biases")
		}
		mode = graph.AttentionModeBiasOnly
	}
	return &Fusion{
		Replace: out,
		Build: func(g *graph.Graph) (*graph.Value, error) {
			attrs := map[string]graph.Attr{}
			inputs := []*graph.Value{nil, nil, v}
			if sc != nil {
				k, err := transposeOf(g, sc.kSrc, sc.kPerm)
				if err != nil {
					return nil, err
				}
				inputs = []*graph.Value{sc.q, k, v}
				attrs["scale"] = graph.Attr{Kind: graph.AttrFloat, Float: float32(sc.scale)}
			} else {
				attrs["mode"] = graph.Attr{Kind: graph.AttrString, Str: graph.AttentionModeBiasOnly}
			}
			return addOp(g, graph.FusedDomain+".Attention", attrs, append(inputs, biases...)...)
		},
		Counts: []string{"attention:" + mode},
		Note: func(o *graph.Value) string {
			scale := 0.0
			if sc != nil {
				scale = sc.scale
			}
			return fmt.Sprintf("%s ← %s (%d biases, mode %s, scale %.6g)", o.Name, s, len(biases), mode, scale)
		},
	}, nil
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

// scores is a matched scale·q·kᵀ: k is Transpose(kSrc, kPerm) in [*, K, c]
// (made by Build; identity perms add nothing, and transposeOf composes with
// the exporter's own transposes).
type scores struct {
	q, kSrc *graph.Value
	kPerm   []int64
	scale   float64
}

// matchScores recognises scale·q·kᵀ at v without changing the graph.
func matchScores(m *Matcher, v *graph.Value) (*scores, *Miss) {
	if !m.SingleUse(v) {
		return nil, missf("the scores have several readers")
	}
	base, f := peelScale(v)
	if base != v && !m.SingleUse(base) {
		return nil, missf("the unscaled scores have several readers")
	}
	mm := base.Producer
	if mm == nil || mm.Op != "MatMul" || mm.Domain != graph.DefaultDomain {
		return nil, missf("no MatMul under the scale")
	}
	a, b := mm.Input(0), mm.Input(1)
	if a == nil || b == nil || !a.Type.Ranked || !b.Type.Ranked || a.Type.Rank() < 2 || b.Type.Rank() < 2 {
		return nil, missf("MatMul operands of rank < 2")
	}
	if a.IsConst() || b.IsConst() {
		// A product with a constant is a projection, not q·kᵀ.
		return nil, missf("MatMul by a constant")
	}
	qv, fq := peelScale(a)
	kt, fk := peelScale(b)
	// kᵀ = kt; k = Transpose(kt, swap last two), or, with √scale on k before
	// an explicit transpose (SDPA exports scale both sides), Transpose of
	// the unscaled k with the composed perm.
	src, perm := kt, swapLast2(kt.Type.Rank())
	if n := kt.Producer; n != nil && n.Op == "Transpose" && n.Domain == graph.DefaultDomain {
		inner, fk2 := peelScale(n.Inputs[0])
		if inner != n.Inputs[0] {
			p, ok := permOf(n)
			if !ok {
				return nil, missf("malformed Transpose")
			}
			fk *= fk2
			src, perm = inner, composePerm(p, perm)
		}
	}
	scale := f * fq * fk
	if scale == 0 || math.IsInf(scale, 0) || math.IsNaN(scale) {
		return nil, missf("scale %g", scale)
	}
	return &scores{q: qv, kSrc: src, kPerm: perm, scale: scale}, nil
}
