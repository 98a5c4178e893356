package passes

import (
	"fmt"
	"math"

	"github.com/of3c/of3c/graph"
)

// attentionRule: softmax(scale·q·kᵀ + Σ biases)·v → of3c.Attention
// (docs/ops.md), written as a pattern (attentionPattern) over the whole
// computation, rooted at the product with v:
//
//	MatMul( [Unsqueeze|Reshape adding leading 1s]
//	          [Cast T←f32] Softmax_last( [Cast f32←T] AddTree(biases…, scores?) ),
//	        v )
//	scores = Scaled( MatMul( Scaled(q), Scaled(kᵀ | Transpose(Scaled(k))) ) )
//
// Every leaf of the sum but the scores is a bias, kept as its own input in
// source order; without a scores leaf the softmax is over biases alone: the
// bias-only form (MSA pair-weighted averaging). Scalar factors may sit on q,
// on kᵀ, inside an explicit transpose of k (SDPA exports scale both sides) or
// on the product; their product is the scale. The anchor is the Softmax, so
// every softmax that stays unfused gets a reason; the rule finds the product
// with v among its readers and matches the pattern there. Einsum and Gemm
// have been rewritten to MatMul and Div-by-constant to Mul by canonicalize;
// Div is still accepted so the fusion also works on a pass list without it.
// k's transpose to [*, K, c] is made in Build (matching only reads).
var attentionRule = &FusionRule{Name: "attention", Anchors: []string{"Softmax"}, Match: matchAttention}

var (
	attentionScores = Scaled("s", Op("MatMul",
		Scaled("sq", Any("q").NotConst()),
		Scaled("sk", OneOf(
			Op("Transpose", Scaled("sk2", Any("k0").NotConst())).As("kt"),
			Any("kT").NotConst(),
		)),
	).OneUse())
	attentionLogits  = AddTree("biases", attentionScores)
	attentionSoftmax = Op("Softmax", attentionLogits).Where("over the last axis", softmaxOverLastAxis).OneUse().As("probs")
	// A softmax upcast for precision, Cast(T→f32) … Softmax … Cast(f32→T)
	// with T = f16/bf16, is what the fused op does anyway (docs/ops.md:
	// accumulation in f32).
	attentionUpcastSoftmax = Op("Cast", Op("Softmax", Op("Cast", attentionLogits).Where("from f16/bf16 to f32", castsUpFromHalf).OneUse().As("up")).
				Where("over the last axis", softmaxOverLastAxis).OneUse().As("probs")).
				Where("back to f16/bf16", castsDownToHalf).OneUse().As("down")
	attentionProbs   = OneOf(attentionUpcastSoftmax, attentionSoftmax)
	attentionPattern = Op("MatMul",
		OneOf(
			// P reshaped or unsqueezed to add leading 1s (MSA: against v [S, H, K, c]);
			// the axes / shape as an input (opset ≥ 13) or an attribute.
			Op("Unsqueeze|Reshape", attentionProbs, Any("")).Where("adds leading 1s only", addsLeadingOnesNode).OneUse(),
			Op("Unsqueeze", attentionProbs).Where("adds leading 1s only", addsLeadingOnesNode).OneUse(),
			attentionProbs,
		),
		Any("v"),
	)
)

func addsLeadingOnesNode(n *graph.Node) bool { return addsLeadingOnes(n.Input(0), n.Outputs[0]) }

func softmaxOverLastAxis(s *graph.Node) bool {
	L := s.Input(0)
	if L == nil || !L.Type.Ranked || L.Type.Rank() < 2 || !L.Type.DType.IsFloat() {
		return false
	}
	axis := s.AttrInt("axis", -1)
	if s.Opset > 0 && s.Opset < 13 {
		// Before opset 13 Softmax flattened from axis on; only the last
		// axis means the same thing.
		axis = s.AttrInt("axis", 1)
	}
	ax, err := normAxis(axis, L.Type.Rank())
	return err == nil && ax == L.Type.Rank()-1
}

func isHalf(dt graph.DType) bool { return dt == graph.Float16 || dt == graph.BFloat16 }

func castsUpFromHalf(n *graph.Node) bool {
	return n.Input(0) != nil && isHalf(n.Input(0).Type.DType) && n.Outputs[0].Type.DType == graph.Float32
}

func castsDownToHalf(n *graph.Node) bool {
	return n.Input(0) != nil && n.Input(0).Type.DType == graph.Float32 && isHalf(n.Outputs[0].Type.DType)
}

func matchAttention(m *Matcher, s *graph.Node) (*Fusion, *Miss) {
	L, P := s.Input(0), s.Outputs[0]
	if L == nil || P == nil || !L.Type.Ranked {
		return nil, missf("softmax input has unknown rank")
	}
	if L.Type.Rank() < 2 {
		return nil, missf("softmax input has rank < 2")
	}
	if !softmaxOverLastAxis(s) {
		if !L.Type.DType.IsFloat() {
			return nil, missf("softmax of a non-float type")
		}
		return nil, missf("softmax is over axis %d, not the last", s.AttrInt("axis", -1))
	}
	// The pattern is rooted at the product with v: find it among the
	// readers (through the down-cast and a leading-1 reshape).
	pv, why := probabilitiesReader(m, P)
	if pv == nil {
		return nil, missf("%s", why)
	}
	mt, ok := m.MatchNode(attentionPattern, pv)
	if !ok {
		f, _ := m.LastFailure()
		return nil, &Miss{Reason: "pattern did not match", Detail: &f}
	}
	if mt.Node("probs") != s {
		return nil, missf("the product with v reads another softmax")
	}
	if down, up := mt.Value("down"), mt.Node("up"); down != nil && up != nil && down.Type.DType != up.Input(0).Type.DType {
		return nil, missf("the softmax is upcast from %s but cast back to %s", up.Input(0).Type.DType, down.Type.DType)
	}
	v := mt.Value("v")
	if !v.Type.Ranked || v.Type.Rank() < 2 {
		return nil, missf("v has rank < 2")
	}
	var biases []*graph.Value
	for _, leaf := range mt.List("biases") {
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
	q := mt.Value("q")
	mode := graph.AttentionModeQK
	var kSrc *graph.Value
	var kPerm []int64
	scale := 1.0
	if q == nil {
		if len(biases) == 0 {
			return nil, missf("no scores and no biases")
		}
		mode = graph.AttentionModeBiasOnly
	} else {
		scale = mt.Scalar("s") * mt.Scalar("sq") * mt.Scalar("sk") * mt.Scalar("sk2")
		if scale == 0 || math.IsInf(scale, 0) || math.IsNaN(scale) {
			return nil, missf("scale %g", scale)
		}
		// k = Transpose(kᵀ, swap last two); through an explicit transpose,
		// one composed transpose of k.
		if kt := mt.Node("kt"); kt != nil {
			p, ok := permOf(kt)
			if !ok {
				return nil, missf("malformed Transpose")
			}
			kSrc, kPerm = mt.Value("k0"), composePerm(p, swapLast2(len(p)))
		} else {
			kT := mt.Value("kT")
			kSrc, kPerm = kT, swapLast2(kT.Type.Rank())
		}
		if !kSrc.Type.Ranked || kSrc.Type.Rank() < 2 || !q.Type.Ranked || q.Type.Rank() < 2 {
			return nil, missf("q or k of rank < 2")
		}
	}
	return &Fusion{
		Replace: pv.Outputs[0],
		Closed:  []*Match{mt},
		Build: func(g *graph.Graph) (*graph.Value, error) {
			attrs := map[string]graph.Attr{}
			inputs := []*graph.Value{nil, nil, v}
			if mode == graph.AttentionModeQK {
				k, err := transposeOf(g, kSrc, kPerm)
				if err != nil {
					return nil, err
				}
				inputs = []*graph.Value{q, k, v}
				attrs["scale"] = graph.Attr{Kind: graph.AttrFloat, Float: float32(scale)}
			} else {
				attrs["mode"] = graph.Attr{Kind: graph.AttrString, Str: graph.AttentionModeBiasOnly}
			}
			return addOp(g, graph.FusedDomain+".Attention", attrs, append(inputs, biases...)...)
		},
		Counts: []string{"attention:" + mode},
		Note: func(o *graph.Value) string {
			return fmt.Sprintf("%s ← %s (%d biases, mode %s, scale %.6g)", o.Name, s, len(biases), mode, scale)
		},
	}, nil
}

// probabilitiesReader finds MatMul(P, v) among the readers of the softmax
// output P (through a Cast back to f16/bf16 and a reshape that adds leading
// 1s), or says why there is none.
func probabilitiesReader(m *Matcher, P *graph.Value) (*graph.Node, string) {
	for hop := 0; hop < 3; hop++ {
		if !m.SingleUse(P) {
			return nil, fmt.Sprintf("the probabilities have %d readers; the fused op does not produce them", len(m.Uses(P)))
		}
		u := m.Uses(P)[0]
		if u.Domain != graph.DefaultDomain {
			return nil, fmt.Sprintf("the probabilities are read by %s, not as the left operand of MatMul(P, v)", u)
		}
		switch u.Op {
		case "MatMul":
			if u.Input(0) != P || u.Input(1) == P {
				return nil, fmt.Sprintf("the probabilities are read by %s, not as the left operand of MatMul(P, v)", u)
			}
			return u, ""
		case "Cast", "Unsqueeze", "Reshape":
			P = u.Outputs[0]
			continue
		}
		return nil, fmt.Sprintf("the probabilities are read by %s, not as the left operand of MatMul(P, v)", u)
	}
	return nil, "the probabilities reach no MatMul(P, v)"
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
