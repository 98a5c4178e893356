package passes

import (
	"fmt"

	"github.com/of3c/of3c/graph"
)

// weight2D matches a constant [c_in, h] weight.
func weight2D(name string) *Pattern {
	return Const(name, "a 2-D weight", func(t *graph.Tensor) bool { return len(t.Shape) == 2 })
}

// siluOf matches silu(a) in the forms exporters write it.
func siluOf(a *Pattern) *Pattern {
	return OneOf(
		Op("Mul", a, Op("Sigmoid", a)),
		Op("SiLU", a),
		Op("Swish", a).Where("alpha = 1", func(n *graph.Node) bool { return n.AttrFloat("alpha", 1) == 1 }),
	)
}

// swigluPattern: silu(x·Wa) ⊙ (x·Wb), both products reading the same x.
var swigluPattern = Op("Mul",
	siluOf(Op("MatMul", Any("x"), weight2D("wa")).As("a")),
	Op("MatMul", Any("x"), weight2D("wb")).OneUse(),
)

// swigluRule rewrites the pattern to of3c.SwiGLU(x, [Wa|Wb]) and absorbs a
// following projection by a constant (W_out) when nothing else reads the
// SwiGLU output, so a chunked SwiGLU never materialises its [*, h] result.
var swigluRule = &FusionRule{Name: "swiglu", Anchors: []string{"Mul"}, Match: matchSwiGLU}

func matchSwiGLU(m *Matcher, n *graph.Node) (*Fusion, *Miss) {
	if len(n.Outputs) != 1 {
		return nil, nil
	}
	mt, ok := m.MatchNode(swigluPattern, n)
	if !ok {
		if f, ok := m.LastFailure(); ok && f.Matched >= 2 {
			return nil, &Miss{Reason: "pattern did not match", Detail: &f}
		}
		return nil, nil
	}
	wa, wb := mt.Value("wa").Const, mt.Value("wb").Const
	if wa.DType != wb.DType || wa.Shape[0] != wb.Shape[0] || wa.Shape[1] != wb.Shape[1] {
		return nil, missf("Wa %v and Wb %v differ in shape or type", wa.Shape, wb.Shape)
	}
	x := mt.Value("x")
	var wo *graph.Value
	replaced := n.Outputs[0]
	// Absorb y·W_out.
	if m.SingleUse(replaced) {
		if u := m.Uses(replaced)[0]; u.Op == "MatMul" && u.Domain == graph.DefaultDomain && u.Input(0) == replaced {
			if w := u.Input(1); w.IsConst() && len(w.Const.Shape) == 2 && w.Const.DType == wa.DType {
				wo, replaced = w, u.Outputs[0]
			}
		}
	}
	counts := []string{"swiglu"}
	if wo != nil {
		counts = append(counts, "swiglu+w_out")
	}
	return &Fusion{
		Replace: replaced,
		Closed:  []*Match{mt},
		Build: func(g *graph.Graph) (*graph.Value, error) {
			w, err := concatLastAxis([]*graph.Tensor{wa, wb})
			if err != nil {
				return nil, err
			}
			inputs := []*graph.Value{x, g.AddConst(g.UniqueName(mt.Value("wa").Name+"_ab"), w)}
			if wo != nil {
				inputs = append(inputs, wo)
			}
			return addOp(g, graph.FusedDomain+".SwiGLU", nil, inputs...)
		},
		Counts: counts,
		Note: func(o *graph.Value) string {
			return fmt.Sprintf("%s ← silu(%s·%s)⊙(%s·%s)", o.Name, x.Name, mt.Value("wa").Name, x.Name, mt.Value("wb").Name)
		},
	}, nil
}

// concatLastAxis concatenates 2-D tensors [r, c_i] of one dtype into
// [r, Σc_i].
func concatLastAxis(ts []*graph.Tensor) (*graph.Tensor, error) {
	if len(ts) == 0 {
		return nil, fmt.Errorf("nothing to concatenate")
	}
	dt, rows := ts[0].DType, ts[0].Shape[0]
	sz := int64(dt.Size())
	var cols int64
	for _, t := range ts {
		if len(t.Shape) != 2 || t.Shape[0] != rows || t.DType != dt {
			return nil, fmt.Errorf("cannot concatenate %s%v with %s%v", t.DType, t.Shape, dt, ts[0].Shape)
		}
		if err := t.Validate(); err != nil {
			return nil, err
		}
		cols += t.Shape[1]
	}
	data := make([]byte, 0, rows*cols*sz)
	for r := int64(0); r < rows; r++ {
		for _, t := range ts {
			w := t.Shape[1] * sz
			data = append(data, t.Data[r*w:(r+1)*w]...)
		}
	}
	return &graph.Tensor{DType: dt, Shape: []int64{rows, cols}, Data: data}, nil
}
