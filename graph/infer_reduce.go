package graph

import (
	"fmt"

	"github.com/of3c/of3c/internal/shapes"
)

// Reductions (Reduce*, ArgMax/ArgMin) and the normalisations along an axis
// (Softmax, LogSoftmax, Hardmax).

func init() {
	// Axes moved from an attribute to an optional second input in opset 13
	// for ReduceSum and in opset 18 for the others; noop_with_empty_axes
	// arrived with the input.
	reduces := []struct {
		op        string
		axesInput int64
	}{
		{"ReduceSum", 13}, {"ReduceMean", 18}, {"ReduceMax", 18}, {"ReduceMin", 18},
		{"ReduceProd", 18}, {"ReduceL1", 18}, {"ReduceL2", 18}, {"ReduceLogSum", 18},
		{"ReduceLogSumExp", 18}, {"ReduceSumSquare", 18},
	}
	for _, r := range reduces {
		since := r.axesInput
		reg(r.op, 1, 1, 2, 1, 1, func(n *Node) ([]Type, []Shape, error) {
			return inferReduce(n, since)
		})
	}
	for _, op := range []string{"ArgMax", "ArgMin"} {
		reg(op, 1, 1, 1, 1, 1, func(n *Node) ([]Type, []Shape, error) {
			t, err := input(n, 0)
			if err != nil {
				return nil, nil, err
			}
			if !t.Ranked {
				return one(unranked(Int64)), nil, nil
			}
			axis, err := shapes.NormAxis(n.AttrInt("axis", 0), len(t.Shape))
			if err != nil {
				return nil, nil, err
			}
			keep := n.AttrInt("keepdims", 1) != 0
			return one(TensorType(Int64, reducedShape(t.Shape, []int{axis}, keep))), nil, nil
		})
	}
	// Before opset 13 these ops flatten the input to 2-D at axis (default
	// 1) and normalise each row; from 13 they normalise along one axis
	// (default -1). The output shape is the input shape either way.
	for _, op := range []string{"Softmax", "LogSoftmax", "Hardmax"} {
		reg(op, 1, 1, 1, 1, 1, func(n *Node) ([]Type, []Shape, error) {
			t, err := input(n, 0)
			if err != nil {
				return nil, nil, err
			}
			def := int64(-1)
			if n.Opset != 0 && n.Opset < 13 {
				def = 1
			}
			if t.Ranked {
				r := len(t.Shape)
				axis := n.AttrInt("axis", def)
				if n.Opset != 0 && n.Opset < 13 && r == 0 {
					return nil, nil, fmt.Errorf("input must have rank >= 1")
				}
				if r == 0 {
					r = 1 // a scalar normalises to itself along its one implicit axis
				}
				if _, err := shapes.NormAxis(axis, r); err != nil {
					return nil, nil, err
				}
			}
			return one(withDType(t, t.DType)), nil, nil
		})
	}
}

// reducedShape drops (or, with keep, sets to 1) the given axes.
func reducedShape(s Shape, axes []int, keep bool) Shape {
	red := make([]bool, len(s))
	for _, a := range axes {
		red[a] = true
	}
	out := Shape{}
	for i, d := range s {
		switch {
		case !red[i]:
			out = append(out, d)
		case keep:
			out = append(out, D(1))
		}
	}
	return out
}

func inferReduce(n *Node, axesInputSince int64) ([]Type, []Shape, error) {
	t, err := input(n, 0)
	if err != nil {
		return nil, nil, err
	}
	keep := n.AttrInt("keepdims", 1) != 0
	if n.Opset != 0 && n.Opset < axesInputSince && len(n.Inputs) > 1 {
		return nil, nil, fmt.Errorf("opset %d takes axes as an attribute, not an input", n.Opset)
	}
	axes, given, known := axesArg(n, 1, axesInputSince)
	if !t.Ranked {
		return one(t), nil, nil
	}
	r := len(t.Shape)
	if !known {
		// Which axes are reduced is data-dependent.
		if keep {
			// Each dim stays or becomes 1: a dim that is already 1 is 1.
			out := unknownShape(r)
			for i, d := range t.Shape {
				if d.IsStatic() && d.Val == 1 {
					out[i] = D(1)
				}
			}
			return one(TensorType(t.DType, out)), nil, nil
		}
		at := n.Input(1).Type
		if at.Ranked && len(at.Shape) == 1 && at.Shape[0].IsStatic() && at.Shape[0].Val > 0 && at.Shape[0].Val <= int64(r) {
			return one(TensorType(t.DType, unknownShape(r-int(at.Shape[0].Val)))), nil, nil
		}
		return one(unranked(t.DType)), nil, nil
	}
	if !given || len(axes) == 0 {
		if n.AttrInt("noop_with_empty_axes", 0) != 0 {
			return one(withDType(t, t.DType)), nil, nil
		}
		all := make([]int, r)
		for i := range all {
			all[i] = i
		}
		return one(TensorType(t.DType, reducedShape(t.Shape, all, keep))), nil, nil
	}
	norm, err := shapes.NormAxes(axes, r)
	if err != nil {
		return nil, nil, err
	}
	return one(TensorType(t.DType, reducedShape(t.Shape, norm, keep))), nil, nil
}
