package passes

import (
	"fmt"

	"github.com/of3c/of3c/graph"
)

// lastAxisMean: ReduceMean over the last axis only, keeping dims (axes as
// an attribute before opset 18, as an input from 18 on).
func lastAxisMean(x *Pattern) *Pattern {
	keepsLast := func(n *graph.Node) bool {
		in := n.Input(0)
		if in == nil || !in.Type.Ranked || n.AttrInt("keepdims", 1) != 1 {
			return false
		}
		axes, ok := n.AttrInts("axes")
		if a := n.Input(1); a != nil {
			if !a.IsConst() {
				return false
			}
			vals, err := a.Const.Int64s()
			if err != nil {
				return false
			}
			axes, ok = vals, true
		}
		if !ok || len(axes) != 1 {
			return false
		}
		ax, err := normAxis(axes[0], in.Type.Rank())
		return err == nil && ax == in.Type.Rank()-1
	}
	return OneOf(
		Op("ReduceMean", x).Where("reduces the last axis only, keeping dims", keepsLast),
		Op("ReduceMean", x, Const("", "", nil)).Where("reduces the last axis only, keeping dims", keepsLast),
	)
}

// The decomposed LayerNorm: (x − mean) / sqrt(var + eps) [· γ] [+ β].
var (
	lnCentered = Op("Sub", Any("x"), lastAxisMean(Any("x"))).As("d")
	lnVariance = lastAxisMean(OneOf(
		Op("Pow", Any("d"), ConstNear("", 2, 0)),
		Op("Mul", Any("d"), Any("d")),
	))
	lnStd        = Op("Sqrt", Op("Add", lnVariance, ScalarConst("eps")))
	lnNormalized = OneOf(
		Op("Div", lnCentered, lnStd),
		Op("Mul", lnCentered, Op("Reciprocal", lnStd)),
	).As("normalized")
	lnPattern = OneOf(
		Op("Add", Op("Mul", lnNormalized, Const("gamma", "a weight", nil)), Const("beta", "an offset", nil)),
		Op("Mul", lnNormalized, Const("gamma", "a weight", nil)),
		Op("Add", lnNormalized, Const("beta", "an offset", nil)),
		lnNormalized,
	)
)

// layerNormRule recovers ONNX LayerNormalization (axis −1) from its
// decomposed form. It anchors on the outermost node only: a node whose single
// reader would also match is left for that reader.
var layerNormRule = &FusionRule{Name: "layernorm", Anchors: []string{"Add", "Mul", "Div"}, Match: matchLayerNorm}

func matchLayerNorm(m *Matcher, n *graph.Node) (*Fusion, *Miss) {
	if len(n.Outputs) != 1 {
		return nil, nil
	}
	mt, ok := m.MatchNode(lnPattern, n)
	if !ok {
		if f, ok := m.LastFailure(); ok && f.Matched >= 3 && n.Op == "Div" {
			return nil, &Miss{Reason: "pattern did not match", Detail: &f}
		}
		return nil, nil
	}
	if uses := m.Uses(n.Outputs[0]); len(uses) == 1 && !m.g.IsOutput(n.Outputs[0]) {
		if _, outer := m.MatchNode(lnPattern, uses[0]); outer {
			return nil, nil
		}
	}
	x := mt.Value("x")
	if !x.Type.Ranked || x.Type.Rank() < 1 || !x.Type.DType.IsFloat() {
		return nil, nil
	}
	cdim := x.Type.Shape[x.Type.Rank()-1]
	if !cdim.IsStatic() {
		return nil, missf("the normalized axis has no static size")
	}
	eps, _ := scalarValue(mt.Value("eps").Const)
	gamma, beta := mt.Value("gamma"), mt.Value("beta")
	for _, p := range []*graph.Value{gamma, beta} {
		if p != nil {
			if err := lnParamCheck(p, cdim.Val, x.Type.DType); err != nil {
				return nil, missf("%v", err)
			}
		}
	}
	return &Fusion{
		Replace: n.Outputs[0],
		Closed:  []*Match{mt},
		Build: func(g *graph.Graph) (*graph.Value, error) {
			gv, err := lnParam(g, gamma, cdim.Val, x.Type.DType, 1)
			if err != nil {
				return nil, err
			}
			inputs := []*graph.Value{x, gv}
			if beta != nil {
				bv, err := lnParam(g, beta, cdim.Val, x.Type.DType, 0)
				if err != nil {
					return nil, err
				}
				inputs = append(inputs, bv)
			}
			return addOp(g, "LayerNormalization", map[string]graph.Attr{
				"axis":    {Kind: graph.AttrInt, Int: -1},
				"epsilon": {Kind: graph.AttrFloat, Float: float32(eps)},
			}, inputs...)
		},
		Counts: []string{"layernorm"},
		Note: func(o *graph.Value) string {
			return fmt.Sprintf("%s ← LayerNormalization(%s, eps=%g)", o.Name, x.Name, eps)
		},
	}, nil
}

// lnParamCheck says whether lnParam can turn v into a [c] parameter.
func lnParamCheck(v *graph.Value, c int64, dt graph.DType) error {
	t := v.Const
	if t.DType != dt {
		return fmt.Errorf("parameter %s is %s, the input %s", v, t.DType, dt)
	}
	for i, d := range t.Shape {
		if i < len(t.Shape)-1 && d != 1 {
			return fmt.Errorf("parameter %s%v varies along more than the last axis", v, t.Shape)
		}
	}
	if n := t.NumElements(); n != c && n != 1 {
		return fmt.Errorf("parameter %s%v does not match %d channels", v, t.Shape, c)
	}
	return nil
}

// lnParam turns γ or β as the graph had it (any shape that broadcasts along
// the last axis only, or absent) into the [C] constant LayerNormalization
// takes.
func lnParam(g *graph.Graph, v *graph.Value, c int64, dt graph.DType, def float64) (*graph.Value, error) {
	if v == nil {
		t, err := graph.NewTensorFromFloat64s(dt, []int64{c}, filled(int(c), def))
		if err != nil {
			return nil, err
		}
		return g.AddConst(g.UniqueName("ln_scale_ones"), t), nil
	}
	t := v.Const
	if t.DType != dt {
		return nil, fmt.Errorf("parameter %s is %s, the input %s", v, t.DType, dt)
	}
	for i, d := range t.Shape {
		if i < len(t.Shape)-1 && d != 1 {
			return nil, fmt.Errorf("parameter %s%v varies along more than the last axis", v, t.Shape)
		}
	}
	n := t.NumElements()
	switch {
	case len(t.Shape) == 1 && n == c:
		return v, nil
	case n == c:
		return g.AddConst(g.UniqueName(v.Name+"_1d"), &graph.Tensor{DType: dt, Shape: []int64{c}, Data: t.Data}), nil
	case n == 1:
		vals, err := t.Float64s()
		if err != nil {
			return nil, err
		}
		nt, err := graph.NewTensorFromFloat64s(dt, []int64{c}, filled(int(c), vals[0]))
		if err != nil {
			return nil, err
		}
		return g.AddConst(g.UniqueName(v.Name+"_1d"), nt), nil
	}
	return nil, fmt.Errorf("parameter %s%v does not match %d channels", v, t.Shape, c)
}

func filled(n int, v float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}
