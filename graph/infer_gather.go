package graph

import (
	"fmt"

	"github.com/of3c/of3c/internal/shapes"
)

// Indexing ops: Gather, GatherElements, GatherND, ScatterND,
// ScatterElements, OneHot, NonZero, TopK, and the shape-preserving Trilu and
// CumSum.

func init() {
	reg("Gather", 1, 2, 2, 1, 1, inferGather)
	reg("GatherElements", 11, 2, 2, 1, 1, func(n *Node) ([]Type, []Shape, error) {
		d, err := input(n, 0)
		if err != nil {
			return nil, nil, err
		}
		idx, err := input(n, 1)
		if err != nil {
			return nil, nil, err
		}
		if err := checkIndexType(idx); err != nil {
			return nil, nil, err
		}
		if d.Ranked && idx.Ranked {
			if len(d.Shape) != len(idx.Shape) {
				return nil, nil, fmt.Errorf("indices rank %d differs from data rank %d", len(idx.Shape), len(d.Shape))
			}
			if len(d.Shape) == 0 {
				return nil, nil, fmt.Errorf("data must have rank >= 1")
			}
			if _, err := shapes.NormAxis(n.AttrInt("axis", 0), len(d.Shape)); err != nil {
				return nil, nil, err
			}
		}
		return one(withDType(idx, d.DType)), nil, nil
	})
	reg("GatherND", 11, 2, 2, 1, 1, inferGatherND)
	reg("ScatterND", 11, 3, 3, 1, 1, func(n *Node) ([]Type, []Shape, error) {
		d, err := input(n, 0)
		if err != nil {
			return nil, nil, err
		}
		idx, err := input(n, 1)
		if err != nil {
			return nil, nil, err
		}
		upd, err := input(n, 2)
		if err != nil {
			return nil, nil, err
		}
		if err := checkIndexType(idx); err != nil {
			return nil, nil, err
		}
		if r := n.AttrString("reduction", "none"); r != "none" && r != "add" && r != "mul" && r != "max" && r != "min" {
			return nil, nil, fmt.Errorf("reduction %q is not none, add, mul, max or min", r)
		}
		if _, err := sameDType(n, 0, 2); err != nil {
			return nil, nil, err
		}
		// updates must be indices.shape[:-1] + data.shape[k:].
		if d.Ranked && idx.Ranked && upd.Ranked && len(idx.Shape) > 0 {
			if k := idx.Shape[len(idx.Shape)-1]; k.IsStatic() {
				if k.Val > int64(len(d.Shape)) {
					return nil, nil, fmt.Errorf("indices address %d dims of rank-%d data", k.Val, len(d.Shape))
				}
				want := append(idx.Shape[:len(idx.Shape)-1].Clone(), d.Shape[k.Val:]...)
				if len(want) != len(upd.Shape) {
					return nil, nil, fmt.Errorf("updates have shape %s, want %s", upd.Shape, want)
				}
				for i := range want {
					if _, err := mergeDim(want[i], upd.Shape[i]); err != nil {
						return nil, nil, fmt.Errorf("updates have shape %s, want %s", upd.Shape, want)
					}
				}
			}
		}
		return one(withDType(d, d.DType)), nil, nil
	})
	reg("ScatterElements", 11, 3, 3, 1, 1, func(n *Node) ([]Type, []Shape, error) {
		d, err := input(n, 0)
		if err != nil {
			return nil, nil, err
		}
		idx, err := input(n, 1)
		if err != nil {
			return nil, nil, err
		}
		upd, err := input(n, 2)
		if err != nil {
			return nil, nil, err
		}
		if err := checkIndexType(idx); err != nil {
			return nil, nil, err
		}
		if _, err := sameDType(n, 0, 2); err != nil {
			return nil, nil, err
		}
		if d.Ranked && idx.Ranked {
			if len(d.Shape) != len(idx.Shape) {
				return nil, nil, fmt.Errorf("indices rank %d differs from data rank %d", len(idx.Shape), len(d.Shape))
			}
			if _, err := shapes.NormAxis(n.AttrInt("axis", 0), len(d.Shape)); err != nil {
				return nil, nil, err
			}
		}
		if idx.Ranked && upd.Ranked && len(idx.Shape) != len(upd.Shape) {
			return nil, nil, fmt.Errorf("updates rank %d differs from indices rank %d", len(upd.Shape), len(idx.Shape))
		}
		return one(withDType(d, d.DType)), nil, nil
	})
	reg("OneHot", 9, 3, 3, 1, 1, inferOneHot)
	reg("NonZero", 9, 1, 1, 1, 1, func(n *Node) ([]Type, []Shape, error) {
		t, err := input(n, 0)
		if err != nil {
			return nil, nil, err
		}
		// The count of non-zero elements depends on the data.
		r := Unknown
		if t.Ranked {
			r = D(int64(len(t.Shape)))
		}
		return one(TensorType(Int64, Shape{r, Unknown})), nil, nil
	})
	reg("TopK", 1, 1, 2, 2, 2, inferTopK)
	reg("Trilu", 14, 1, 2, 1, 1, func(n *Node) ([]Type, []Shape, error) {
		t, err := input(n, 0)
		if err != nil {
			return nil, nil, err
		}
		if t.Ranked && len(t.Shape) < 2 {
			return nil, nil, fmt.Errorf("input has rank %d, want at least 2", len(t.Shape))
		}
		if k := n.Input(1); k != nil && k.Type.Ranked && len(k.Type.Shape) != 0 {
			return nil, nil, fmt.Errorf("k has shape %s, want a scalar", k.Type.Shape)
		}
		return one(withDType(t, t.DType)), nil, nil
	})
	reg("CumSum", 11, 2, 2, 1, 1, func(n *Node) ([]Type, []Shape, error) {
		t, err := input(n, 0)
		if err != nil {
			return nil, nil, err
		}
		ax, err := input(n, 1)
		if err != nil {
			return nil, nil, err
		}
		if ax.Ranked && len(ax.Shape) > 1 {
			return nil, nil, fmt.Errorf("axis has rank %d, want a scalar", len(ax.Shape))
		}
		if a, ok := knownInt(n.Input(1)); ok && t.Ranked {
			if _, err := shapes.NormAxis(a, len(t.Shape)); err != nil {
				return nil, nil, err
			}
		}
		return one(withDType(t, t.DType)), nil, nil
	})
}

func checkIndexType(t Type) error {
	if t.DType != Undefined && t.DType != Int64 && t.DType != Int32 {
		return fmt.Errorf("indices are %s, want i32 or i64", t.DType)
	}
	return nil
}

func inferGather(n *Node) ([]Type, []Shape, error) {
	d, err := input(n, 0)
	if err != nil {
		return nil, nil, err
	}
	idx, err := input(n, 1)
	if err != nil {
		return nil, nil, err
	}
	if err := checkIndexType(idx); err != nil {
		return nil, nil, err
	}
	if !d.Ranked || !idx.Ranked {
		return one(unranked(d.DType)), nil, nil
	}
	if len(d.Shape) == 0 {
		return nil, nil, fmt.Errorf("data must have rank >= 1")
	}
	axis, err := shapes.NormAxis(n.AttrInt("axis", 0), len(d.Shape))
	if err != nil {
		return nil, nil, err
	}
	out := append(d.Shape[:axis].Clone(), idx.Shape...)
	out = append(out, d.Shape[axis+1:]...)
	if err := checkRank(int64(len(out)), "Gather"); err != nil {
		return nil, nil, err
	}
	res := TensorType(d.DType, out)
	var sv []Shape
	if tracksValues(res) && len(d.Shape) == 1 {
		data, ok1 := shapeValue(n.Input(0))
		ids, ok2 := knownInts(n.Input(1))
		if ok1 && ok2 {
			vals := make(Shape, len(ids))
			for i, k := range ids {
				if k < 0 {
					k += int64(len(data))
				}
				if k < 0 || k >= int64(len(data)) {
					return nil, nil, fmt.Errorf("index %d is out of range for %d elements", ids[i], len(data))
				}
				vals[i] = data[k]
			}
			sv = svOut(vals)
		}
	}
	// Indices known without their values still bound-check against a
	// static axis.
	if d.Shape[axis].IsStatic() {
		if ids, ok := constInts(n.Input(1), maxShapeValueLen); ok {
			for _, k := range ids {
				if k < -d.Shape[axis].Val || k >= d.Shape[axis].Val {
					return nil, nil, fmt.Errorf("index %d is out of range for axis %d of size %d", k, axis, d.Shape[axis].Val)
				}
			}
		}
	}
	return one(res), sv, nil
}

func inferGatherND(n *Node) ([]Type, []Shape, error) {
	d, err := input(n, 0)
	if err != nil {
		return nil, nil, err
	}
	idx, err := input(n, 1)
	if err != nil {
		return nil, nil, err
	}
	if err := checkIndexType(idx); err != nil {
		return nil, nil, err
	}
	b := n.AttrInt("batch_dims", 0)
	if !d.Ranked || !idx.Ranked {
		return one(unranked(d.DType)), nil, nil
	}
	q, r := int64(len(idx.Shape)), int64(len(d.Shape))
	if q < 1 || r < 1 {
		return nil, nil, fmt.Errorf("data and indices must have rank >= 1")
	}
	if b < 0 || b >= q || b >= r {
		return nil, nil, fmt.Errorf("batch_dims %d is out of range for ranks %d and %d", b, r, q)
	}
	k := idx.Shape[q-1]
	if !k.IsStatic() {
		return one(unranked(d.DType)), nil, nil
	}
	if k.Val < 1 || k.Val > r-b {
		return nil, nil, fmt.Errorf("indices address %d dims of rank-%d data with batch_dims %d", k.Val, r, b)
	}
	for i := int64(0); i < b; i++ {
		if _, err := mergeDim(d.Shape[i], idx.Shape[i]); err != nil {
			return nil, nil, fmt.Errorf("batch dim %d: %w", i, err)
		}
	}
	out := append(idx.Shape[:q-1].Clone(), d.Shape[b+k.Val:]...)
	return one(TensorType(d.DType, out)), nil, nil
}

func inferOneHot(n *Node) ([]Type, []Shape, error) {
	idx, err := input(n, 0)
	if err != nil {
		return nil, nil, err
	}
	dep, err := input(n, 1)
	if err != nil {
		return nil, nil, err
	}
	vals, err := input(n, 2)
	if err != nil {
		return nil, nil, err
	}
	if dep.Ranked {
		if ne, ok := dep.Shape.NumElements(); len(dep.Shape) > 1 || (ok && ne != 1) {
			return nil, nil, fmt.Errorf("depth has shape %s, want a scalar", dep.Shape)
		}
	}
	if vals.Ranked {
		if ne, ok := vals.Shape.NumElements(); len(vals.Shape) != 1 || (ok && ne != 2) {
			return nil, nil, fmt.Errorf("values has shape %s, want [2]", vals.Shape)
		}
	}
	if !idx.Ranked {
		return one(unranked(vals.DType)), nil, nil
	}
	r := len(idx.Shape) + 1
	axis, err := shapes.NormAxis(n.AttrInt("axis", -1), r)
	if err != nil {
		return nil, nil, err
	}
	depth := Unknown
	if f, ok := constFloats(n.Input(1), 1); ok {
		if f[0] < 1 || f[0] > 1<<53 {
			return nil, nil, fmt.Errorf("depth %v must be positive", f[0])
		}
		depth = D(int64(f[0]))
	} else if sv, ok := shapeValue(n.Input(1)); ok && len(sv) == 1 {
		if depth, err = dimFromValue(sv[0], "depth"); err != nil {
			return nil, nil, err
		}
	}
	out := make(Shape, 0, r)
	out = append(out, idx.Shape[:axis]...)
	out = append(out, depth)
	out = append(out, idx.Shape[axis:]...)
	return one(TensorType(vals.DType, out)), nil, nil
}

func inferTopK(n *Node) ([]Type, []Shape, error) {
	if err := inputsBefore(n, 10, 1); err != nil {
		return nil, nil, err
	}
	t, err := input(n, 0)
	if err != nil {
		return nil, nil, err
	}
	k := Unknown
	if n.Opset != 0 && n.Opset < 10 {
		a, ok := n.Attrs["k"]
		if !ok || a.Kind != AttrInt {
			return nil, nil, fmt.Errorf("attribute k (int) is required")
		}
		k = IntDim(a.Int)
	} else {
		kv := n.Input(1)
		if kv == nil {
			return nil, nil, fmt.Errorf("input K is required")
		}
		if kv.Type.Ranked {
			if ne, ok := kv.Type.Shape.NumElements(); len(kv.Type.Shape) > 1 || (ok && ne != 1) {
				return nil, nil, fmt.Errorf("K has shape %s, want [1]", kv.Type.Shape)
			}
		}
		if sv, ok := shapeValue(kv); ok && len(sv) == 1 {
			k = sv[0]
		}
	}
	if v, ok := DimInt(k); ok && v < 0 {
		return nil, nil, fmt.Errorf("k is negative (%d)", v)
	}
	if !t.Ranked {
		return []Type{unranked(t.DType), unranked(Int64)}, nil, nil
	}
	if len(t.Shape) == 0 {
		return nil, nil, fmt.Errorf("input must have rank >= 1")
	}
	axis, err := shapes.NormAxis(n.AttrInt("axis", -1), len(t.Shape))
	if err != nil {
		return nil, nil, err
	}
	if d := t.Shape[axis]; d.IsStatic() && k.IsStatic() && k.Val > d.Val {
		return nil, nil, fmt.Errorf("k=%d is larger than axis %d of size %d", k.Val, axis, d.Val)
	}
	out := t.Shape.Clone()
	out[axis] = k
	return []Type{TensorType(t.DType, out), TensorType(Int64, out.Clone())}, nil, nil
}
