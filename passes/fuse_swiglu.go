package passes

import (
	"fmt"

	"of3c/graph"
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

// fuseSwiGLU rewrites the pattern to of3c.SwiGLU(x, [Wa|Wb]) and absorbs a
// following projection by a constant (W_out) when nothing else reads the
// SwiGLU output, so a chunked SwiGLU never materialises its [*, h] result.
func fuseSwiGLU(c *Context) error {
	g := c.G
	m := NewMatcher(g)
	for _, n := range append([]*graph.Node(nil), g.Nodes...) {
		if n.Op != "Mul" || n.Domain != graph.DefaultDomain || len(n.Outputs) != 1 {
			continue
		}
		mt, ok := m.MatchNode(swigluPattern, n)
		if !ok {
			if f, ok := m.LastFailure(); ok && f.Matched >= 2 {
				c.Explain("swiglu", n, "pattern did not match", &f)
			}
			continue
		}
		if esc, ok := m.Closed(mt); !ok {
			c.Explain("swiglu", n, fmt.Sprintf("%s is read outside the pattern", esc), nil)
			continue
		}
		wa, wb := mt.Value("wa").Const, mt.Value("wb").Const
		if wa.DType != wb.DType || wa.Shape[0] != wb.Shape[0] || wa.Shape[1] != wb.Shape[1] {
			c.Explain("swiglu", n, fmt.Sprintf("Wa %v and Wb %v differ in shape or type", wa.Shape, wb.Shape), nil)
			continue
		}
		w, err := concatLastAxis([]*graph.Tensor{wa, wb})
		if err != nil {
			return err
		}
		wv := g.AddConst(g.UniqueName(mt.Value("wa").Name+"_ab"), w)
		inputs := []*graph.Value{mt.Value("x"), wv}
		replaced := n.Outputs[0]
		// Absorb y·W_out.
		if m.SingleUse(replaced) {
			if u := m.Uses(replaced)[0]; u.Op == "MatMul" && u.Domain == graph.DefaultDomain && u.Input(0) == replaced {
				if wo := u.Input(1); wo.IsConst() && len(wo.Const.Shape) == 2 && wo.Const.DType == wa.DType {
					inputs = append(inputs, wo)
					replaced = u.Outputs[0]
				}
			}
		}
		out, err := addOp(g, graph.FusedDomain+".SwiGLU", nil, inputs...)
		if err != nil {
			c.Explain("swiglu", n, fmt.Sprintf("fused op would be ill-typed: %v", err), nil)
			continue
		}
		if !out.Type.Equal(replaced.Type) {
			removeNode(g, out.Producer)
			c.Explain("swiglu", n, fmt.Sprintf("fused op would give %s where the graph has %s", out.Type, replaced.Type), nil)
			continue
		}
		replaceValue(g, replaced, out)
		c.Count("swiglu")
		if len(inputs) == 3 {
			c.Count("swiglu+w_out")
		}
		c.Notef("%s ← silu(%s·%s)⊙(%s·%s)", out.Name, mt.Value("x").Name, mt.Value("wa").Name, mt.Value("x").Name, mt.Value("wb").Name)
		if _, err := removeDead(g); err != nil {
			return err
		}
		m.Refresh()
	}
	return nil
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
