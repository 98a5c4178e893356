package graph

import (
	"fmt"
	"math"

	"github.com/of3c/of3c/internal/shapes"
)

// Shape-manipulating ops: Reshape, Transpose, Unsqueeze, Squeeze, Expand,
// Concat, Split, Slice, Flatten, Tile, Pad, Identity, and the ops that make
// dims tensors: Shape, Size, ConstantOfShape, Constant, Range. The dims
// tensors they produce (and read back through shapeValue) are what keeps
// symbolic shapes flowing through torch's exported size arithmetic.

func init() {
	reg("Reshape", 5, 2, 2, 1, 1, inferReshape)
	reg("Transpose", 1, 1, 1, 1, 1, inferTranspose)
	reg("Unsqueeze", 1, 1, 2, 1, 1, inferUnsqueeze)
	reg("Squeeze", 1, 1, 2, 1, 1, inferSqueeze)
	reg("Expand", 8, 2, 2, 1, 1, inferExpand)
	reg("Concat", 4, 1, -1, 1, 1, inferConcat)
	reg("Split", 2, 1, 2, 1, -1, inferSplit)
	reg("Slice", 1, 1, 5, 1, 1, inferSlice)
	reg("Flatten", 1, 1, 1, 1, 1, inferFlatten)
	reg("Tile", 6, 2, 2, 1, 1, inferTile)
	reg("Pad", 2, 1, 4, 1, 1, inferPad)
	reg("Identity", 1, 1, 1, 1, 1, func(n *Node) ([]Type, []Shape, error) {
		t, err := input(n, 0)
		if err != nil {
			return nil, nil, err
		}
		sv, _ := shapeValue(n.Input(0))
		return one(withDType(t, t.DType)), svOut(sv), nil
	})
	reg("Shape", 1, 1, 1, 1, 1, inferShapeOp)
	reg("Size", 1, 1, 1, 1, 1, func(n *Node) ([]Type, []Shape, error) {
		t, err := input(n, 0)
		if err != nil {
			return nil, nil, err
		}
		out := TensorType(Int64, Shape{})
		if !t.Ranked {
			return one(out), nil, nil
		}
		return one(out), svOut(Shape{DimProduct(t.Shape...)}), nil
	})
	reg("ConstantOfShape", 9, 1, 1, 1, 1, inferConstantOfShape)
	reg("Constant", 1, 0, 0, 1, 1, inferConstant)
	reg("Range", 11, 3, 3, 1, 1, inferRange)
}

func inferReshape(n *Node) ([]Type, []Shape, error) {
	t, err := input(n, 0)
	if err != nil {
		return nil, nil, err
	}
	st, err := input(n, 1)
	if err != nil {
		return nil, nil, err
	}
	if st.Ranked && len(st.Shape) != 1 {
		return nil, nil, fmt.Errorf("shape input has rank %d, want 1", len(st.Shape))
	}
	allowZero := n.AttrInt("allowzero", 0) != 0
	target, ok := shapeValue(n.Input(1))
	if !ok {
		if st.Ranked && st.Shape[0].IsStatic() {
			if err := checkRank(st.Shape[0].Val, "shape input"); err != nil {
				return nil, nil, err
			}
			return one(TensorType(t.DType, unknownShape(int(st.Shape[0].Val)))), nil, nil
		}
		return one(unranked(t.DType)), nil, nil
	}
	if err := checkRank(int64(len(target)), "shape input"); err != nil {
		return nil, nil, err
	}
	out := make(Shape, len(target))
	inferred, zeros := -1, false
	for i, d := range target {
		v, known := DimInt(d)
		switch {
		case !known:
			out[i] = CanonDim(d) // symbolic or unknown
		case v == -1:
			if inferred >= 0 {
				return nil, nil, fmt.Errorf("shape %s has more than one -1", target)
			}
			inferred = i
			out[i] = Unknown
		case v < -1:
			return nil, nil, fmt.Errorf("shape %s has invalid entry %d", target, v)
		case v == 0 && !allowZero:
			if !t.Ranked {
				out[i] = Unknown
			} else if i >= len(t.Shape) {
				return nil, nil, fmt.Errorf("shape %s copies dim %d (0) of a rank-%d input", target, i, len(t.Shape))
			} else {
				out[i] = t.Shape[i]
			}
		default:
			zeros = zeros || v == 0
			out[i] = D(v)
		}
	}
	if inferred >= 0 && zeros {
		return nil, nil, fmt.Errorf("shape %s has both -1 and 0 with allowzero=1", target)
	}
	if t.Ranked {
		total := DimProduct(t.Shape...)
		if inferred >= 0 {
			rest := make(Shape, 0, len(out)-1)
			rest = append(append(rest, out[:inferred]...), out[inferred+1:]...)
			known := DimProduct(rest...)
			if known.IsStatic() && known.Val == 0 {
				if total.IsStatic() && total.Val != 0 {
					return nil, nil, fmt.Errorf("cannot reshape %s to %s", t.Shape, target)
				}
			} else if q, ok := DimDivExact(total, known); ok {
				out[inferred] = q
			} else if total.IsStatic() && known.IsStatic() {
				return nil, nil, fmt.Errorf("cannot reshape %s (%d elements) to %s", t.Shape, total.Val, target)
			}
		}
		got := DimProduct(out...)
		if total.IsStatic() && got.IsStatic() && total.Val != got.Val {
			return nil, nil, fmt.Errorf("cannot reshape %s (%d elements) to %s (%d elements)", t.Shape, total.Val, out, got.Val)
		}
	}
	res := TensorType(t.DType, out)
	var sv []Shape
	if tracksValues(res) {
		if vals, ok := shapeValue(n.Input(0)); ok {
			sv = svOut(vals)
		}
	}
	return one(res), sv, nil
}

func inferTranspose(n *Node) ([]Type, []Shape, error) {
	t, err := input(n, 0)
	if err != nil {
		return nil, nil, err
	}
	perm, hasPerm := n.AttrInts("perm")
	if !t.Ranked {
		if hasPerm {
			if err := checkRank(int64(len(perm)), "perm"); err != nil {
				return nil, nil, err
			}
			return one(TensorType(t.DType, unknownShape(len(perm)))), nil, nil
		}
		return one(t), nil, nil
	}
	r := len(t.Shape)
	if !hasPerm {
		perm = make([]int64, r)
		for i := range perm {
			perm[i] = int64(r - 1 - i)
		}
	}
	if len(perm) != r {
		return nil, nil, fmt.Errorf("perm %v has %d entries for rank %d", perm, len(perm), r)
	}
	seen := make([]bool, r)
	out := make(Shape, r)
	for i, p := range perm {
		if p < 0 || p >= int64(r) || seen[p] {
			return nil, nil, fmt.Errorf("perm %v is not a permutation of 0..%d", perm, r-1)
		}
		seen[p] = true
		out[i] = t.Shape[p]
	}
	return one(TensorType(t.DType, out)), nil, nil
}

// passValues forwards input 0's shape value when the output can carry one
// (Unsqueeze/Squeeze/Reshape keep the elements in order).
func passValues(n *Node, out Type) []Shape {
	if !tracksValues(out) {
		return nil
	}
	sv, ok := shapeValue(n.Input(0))
	if !ok {
		return nil
	}
	return svOut(sv)
}

func inferUnsqueeze(n *Node) ([]Type, []Shape, error) {
	if err := inputsBefore(n, 13, 1); err != nil {
		return nil, nil, err
	}
	t, err := input(n, 0)
	if err != nil {
		return nil, nil, err
	}
	axes, given, known := axesArg(n, 1, 13)
	if !given {
		return nil, nil, fmt.Errorf("axes are required")
	}
	if !t.Ranked {
		return one(t), nil, nil
	}
	if !known {
		at := n.Input(1).Type
		if at.Ranked && len(at.Shape) == 1 && at.Shape[0].IsStatic() {
			k := at.Shape[0].Val
			if err := checkRank(int64(len(t.Shape))+k, "Unsqueeze"); err != nil {
				return nil, nil, err
			}
			return one(TensorType(t.DType, unknownShape(len(t.Shape)+int(k)))), nil, nil
		}
		return one(unranked(t.DType)), nil, nil
	}
	r := len(t.Shape) + len(axes)
	if err := checkRank(int64(r), "Unsqueeze"); err != nil {
		return nil, nil, err
	}
	norm, err := shapes.NormAxes(axes, r)
	if err != nil {
		return nil, nil, err
	}
	isNew := make([]bool, r)
	for _, a := range norm {
		isNew[a] = true
	}
	out := make(Shape, r)
	k := 0
	for i := range out {
		if isNew[i] {
			out[i] = D(1)
		} else {
			out[i] = t.Shape[k]
			k++
		}
	}
	res := TensorType(t.DType, out)
	return one(res), passValues(n, res), nil
}

func inferSqueeze(n *Node) ([]Type, []Shape, error) {
	if err := inputsBefore(n, 13, 1); err != nil {
		return nil, nil, err
	}
	t, err := input(n, 0)
	if err != nil {
		return nil, nil, err
	}
	axes, given, known := axesArg(n, 1, 13)
	if !t.Ranked {
		return one(t), nil, nil
	}
	r := len(t.Shape)
	drop := make([]bool, r)
	switch {
	case !known:
		at := n.Input(1).Type
		if at.Ranked && len(at.Shape) == 1 && at.Shape[0].IsStatic() && at.Shape[0].Val <= int64(r) {
			return one(TensorType(t.DType, unknownShape(r-int(at.Shape[0].Val)))), nil, nil
		}
		return one(unranked(t.DType)), nil, nil
	case !given:
		// Squeeze every dim of size 1: only decidable when no dim could be 1
		// without our knowing.
		for i, d := range t.Shape {
			if !d.IsStatic() {
				return one(unranked(t.DType)), nil, nil
			}
			drop[i] = d.Val == 1
		}
	default:
		norm, err := shapes.NormAxes(axes, r)
		if err != nil {
			return nil, nil, err
		}
		for _, a := range norm {
			if d := t.Shape[a]; d.IsStatic() && d.Val != 1 {
				return nil, nil, fmt.Errorf("cannot squeeze axis %d of size %d", a, d.Val)
			}
			drop[a] = true
		}
	}
	out := Shape{}
	for i, d := range t.Shape {
		if !drop[i] {
			out = append(out, d)
		}
	}
	res := TensorType(t.DType, out)
	return one(res), passValues(n, res), nil
}

func inferExpand(n *Node) ([]Type, []Shape, error) {
	t, err := input(n, 0)
	if err != nil {
		return nil, nil, err
	}
	st, err := input(n, 1)
	if err != nil {
		return nil, nil, err
	}
	if st.Ranked && len(st.Shape) != 1 {
		return nil, nil, fmt.Errorf("shape input has rank %d, want 1", len(st.Shape))
	}
	target, ok := shapeValue(n.Input(1))
	if !ok {
		if !t.Ranked || !st.Ranked || !st.Shape[0].IsStatic() {
			return one(unranked(t.DType)), nil, nil
		}
		if err := checkRank(st.Shape[0].Val, "shape input"); err != nil {
			return nil, nil, err
		}
		target = unknownShape(int(st.Shape[0].Val))
	}
	if err := checkRank(int64(len(target)), "shape input"); err != nil {
		return nil, nil, err
	}
	dims := make(Shape, len(target))
	for i, d := range target {
		if dims[i], err = dimFromValue(d, "shape"); err != nil {
			return nil, nil, err
		}
	}
	if !t.Ranked {
		return one(unranked(t.DType)), nil, nil
	}
	out, err := broadcastShapes(t.Shape, dims)
	if err != nil {
		return nil, nil, err
	}
	res := TensorType(t.DType, out)
	var sv []Shape
	if tracksValues(res) {
		// Expanding a one-element dims tensor repeats it.
		if vals, ok := shapeValue(n.Input(0)); ok && len(vals) == 1 && len(out) == 1 && out[0].IsStatic() {
			rep := make(Shape, out[0].Val)
			for i := range rep {
				rep[i] = vals[0]
			}
			sv = svOut(rep)
		}
	}
	return one(res), sv, nil
}

func inferConcat(n *Node) ([]Type, []Shape, error) {
	a, ok := n.Attrs["axis"]
	if !ok || a.Kind != AttrInt {
		return nil, nil, fmt.Errorf("attribute axis (int) is required")
	}
	idx := make([]int, len(n.Inputs))
	var ref Type
	haveRef := false
	for i := range n.Inputs {
		t, err := input(n, i)
		if err != nil {
			return nil, nil, err
		}
		idx[i] = i
		if t.Ranked && !haveRef {
			ref, haveRef = t, true
		}
	}
	dt, err := sameDType(n, idx...)
	if err != nil {
		return nil, nil, err
	}
	if !haveRef {
		return one(unranked(dt)), nil, nil
	}
	r := len(ref.Shape)
	if r == 0 {
		return nil, nil, fmt.Errorf("cannot concatenate scalars")
	}
	axis, err := shapes.NormAxis(a.Int, r)
	if err != nil {
		return nil, nil, err
	}
	out := ref.Shape.Clone()
	sum := D(0)
	for i, in := range n.Inputs {
		t := in.Type
		if !t.Ranked {
			sum = Unknown
			continue
		}
		if len(t.Shape) != r {
			return nil, nil, fmt.Errorf("input %d has rank %d, input 0 has rank %d", i, len(t.Shape), r)
		}
		for k, d := range t.Shape {
			if k == axis {
				sum = DimAdd(sum, d)
				continue
			}
			m, err := mergeDim(out[k], d)
			if err != nil {
				return nil, nil, fmt.Errorf("input %d dim %d: %w", i, k, err)
			}
			out[k] = m
		}
	}
	out[axis] = sum
	res := TensorType(dt, out)
	var sv []Shape
	if tracksValues(res) {
		var vals Shape
		for _, in := range n.Inputs {
			v, ok := shapeValue(in)
			if !ok {
				vals = nil
				break
			}
			vals = append(vals, v...)
		}
		if vals != nil && int64(len(vals)) == sumStatic(out[0]) {
			sv = svOut(vals)
		}
	}
	return one(res), sv, nil
}

func sumStatic(d Dim) int64 {
	if d.IsStatic() {
		return d.Val
	}
	return -1
}

func inferSplit(n *Node) ([]Type, []Shape, error) {
	if err := inputsBefore(n, 13, 1); err != nil {
		return nil, nil, err
	}
	t, err := input(n, 0)
	if err != nil {
		return nil, nil, err
	}
	k := len(n.Outputs)
	outs := make([]Type, k)
	if !t.Ranked {
		for i := range outs {
			outs[i] = unranked(t.DType)
		}
		return outs, nil, nil
	}
	axis, err := shapes.NormAxis(n.AttrInt("axis", 0), len(t.Shape))
	if err != nil {
		return nil, nil, err
	}
	dim := t.Shape[axis]
	sizes := make([]Dim, k)
	var split []int64
	haveSplit, splitKnown := false, true
	if n.Opset >= 13 || (n.Opset == 0 && present(n, 1)) {
		if v := n.Input(1); v != nil {
			haveSplit = true
			split, splitKnown = knownInts(v)
		}
	} else if s, ok := n.AttrInts("split"); ok {
		split, haveSplit = s, true
	}
	numOut, hasNum := n.Attrs["num_outputs"]
	switch {
	case haveSplit && hasNum:
		return nil, nil, fmt.Errorf("split and num_outputs are both given")
	case haveSplit && !splitKnown:
		for i := range sizes {
			sizes[i] = Unknown
		}
	case haveSplit:
		if len(split) != k {
			return nil, nil, fmt.Errorf("split %v has %d entries for %d outputs", split, len(split), k)
		}
		var total int64
		for i, s := range split {
			if s < 0 {
				return nil, nil, fmt.Errorf("split %v has a negative size", split)
			}
			total += s
			sizes[i] = D(s)
		}
		if dim.IsStatic() && total != dim.Val {
			return nil, nil, fmt.Errorf("split %v sums to %d, dim %d is %d", split, total, axis, dim.Val)
		}
	case hasNum:
		if numOut.Kind != AttrInt || numOut.Int != int64(k) {
			return nil, nil, fmt.Errorf("num_outputs=%d but the node has %d outputs", numOut.Int, k)
		}
		// Opset 18: chunks of ceil(dim/k), the last one smaller if needed.
		if dim.IsStatic() {
			chunk := (dim.Val + int64(k) - 1) / int64(k)
			last := dim.Val - chunk*int64(k-1)
			if last < 0 {
				return nil, nil, fmt.Errorf("dim %d of size %d cannot be split into %d parts", axis, dim.Val, k)
			}
			for i := range sizes {
				sizes[i] = D(chunk)
			}
			sizes[k-1] = D(last)
		} else {
			q, ok := DimDivExact(dim, D(int64(k)))
			for i := range sizes {
				sizes[i] = q
				if !ok {
					sizes[i] = Unknown
				}
			}
		}
	default:
		q, ok := DimDivExact(dim, D(int64(k)))
		if !ok && dim.IsStatic() {
			return nil, nil, fmt.Errorf("dim %d of size %d does not split evenly into %d outputs", axis, dim.Val, k)
		}
		for i := range sizes {
			sizes[i] = q
			if !ok {
				sizes[i] = Unknown
			}
		}
	}
	for i := range outs {
		s := t.Shape.Clone()
		s[axis] = sizes[i]
		outs[i] = TensorType(t.DType, s)
	}
	return outs, nil, nil
}

// sliceArgs gathers Slice's starts/ends/axes/steps (attributes before opset
// 10, inputs after). Starts and ends may hold symbolic entries (e.g. an end
// taken from Shape); known is false when the axes, steps or the lengths of
// starts/ends are not known.
func sliceArgs(n *Node) (starts, ends Shape, axes, steps []int64, known bool, err error) {
	if n.Opset != 0 && n.Opset < 10 {
		s, ok1 := n.AttrInts("starts")
		e, ok2 := n.AttrInts("ends")
		if !ok1 || !ok2 {
			return nil, nil, nil, nil, false, fmt.Errorf("attributes starts and ends are required")
		}
		starts, ends = make(Shape, len(s)), make(Shape, len(e))
		for i, v := range s {
			starts[i] = IntDim(v)
		}
		for i, v := range e {
			ends[i] = IntDim(v)
		}
		axes, _ = n.AttrInts("axes")
	} else {
		if !present(n, 1) || !present(n, 2) {
			return nil, nil, nil, nil, false, fmt.Errorf("inputs starts and ends are required")
		}
		var ok1, ok2 bool
		starts, ok1 = shapeValue(n.Input(1))
		ends, ok2 = shapeValue(n.Input(2))
		ok3, ok4 := true, true
		if v := n.Input(3); v != nil {
			axes, ok3 = knownInts(v)
		}
		if v := n.Input(4); v != nil {
			steps, ok4 = knownInts(v)
		}
		if !ok1 || !ok2 || !ok3 || !ok4 {
			return nil, nil, nil, nil, false, nil
		}
	}
	if len(starts) != len(ends) {
		return nil, nil, nil, nil, false, fmt.Errorf("starts %v and ends %v differ in length", starts, ends)
	}
	if axes == nil {
		axes = make([]int64, len(starts))
		for i := range axes {
			axes[i] = int64(i)
		}
	}
	if steps == nil {
		steps = make([]int64, len(starts))
		for i := range steps {
			steps[i] = 1
		}
	}
	if len(axes) != len(starts) || len(steps) != len(starts) {
		return nil, nil, nil, nil, false, fmt.Errorf("starts, ends, axes and steps differ in length")
	}
	return starts, ends, axes, steps, true, nil
}

// sliceStatic is the number of elements Slice keeps of a dim of size d, and
// the effective start (for slicing shape values), per the ONNX clamping rules.
func sliceStatic(d, start, end, step int64) (count, first int64) {
	clamp := func(v, lo, hi int64) int64 {
		if v < lo {
			return lo
		}
		if v > hi {
			return hi
		}
		return v
	}
	if start < 0 {
		start += d
	}
	if end < 0 {
		end += d
	}
	if step > 0 {
		start = clamp(start, 0, d)
		end = clamp(end, 0, d)
		if end <= start {
			return 0, start
		}
		return (end-start-1)/step + 1, start
	}
	start = clamp(start, -1, d-1)
	end = clamp(end, -1, d-1)
	if start <= end {
		return 0, start
	}
	return (start-end-1)/(-step) + 1, start
}

// sliceSymbolic handles a symbolic dim, or symbolic bounds, under the
// assumption that bounds lie inside the dim; Unknown where that is not
// enough (a constant end on a symbolic dim is min(end, d), which the
// symbols cannot express).
func sliceSymbolic(d, start, end Dim, step int64) Dim {
	si, sInt := DimInt(start)
	ei, eInt := DimInt(end)
	if d.IsUnknown() || start.IsUnknown() || end.IsUnknown() {
		return Unknown
	}
	if step != 1 {
		if step == -1 && sInt && eInt && si >= sliceEndSentinel-1 && ei <= -sliceEndSentinel {
			return d // full reverse
		}
		return Unknown
	}
	s, e := start, end
	if sInt && si < 0 {
		s = DimAdd(d, start)
	}
	if eInt {
		switch {
		case ei >= sliceEndSentinel:
			e = d
		case ei < 0:
			e = DimAdd(d, end)
		case !d.IsStatic():
			return Unknown
		}
	}
	if d.IsStatic() && !(sInt && eInt) {
		return Unknown // a symbolic bound on a static dim: clamping unknown
	}
	r := DimSub(e, s)
	if v, ok := DimInt(r); ok && v < 0 {
		return D(0)
	}
	return r
}

func inferSlice(n *Node) ([]Type, []Shape, error) {
	if err := inputsBefore(n, 10, 1); err != nil {
		return nil, nil, err
	}
	t, err := input(n, 0)
	if err != nil {
		return nil, nil, err
	}
	if !t.Ranked {
		return one(t), nil, nil
	}
	r := len(t.Shape)
	starts, ends, axes, steps, known, err := sliceArgs(n)
	if err != nil {
		return nil, nil, err
	}
	if !known {
		out := t.Shape.Clone()
		if v := n.Input(3); v != nil {
			if ax, ok := knownInts(v); ok {
				norm, err := shapes.NormAxes(ax, r)
				if err != nil {
					return nil, nil, err
				}
				for _, a := range norm {
					out[a] = Unknown
				}
				return one(TensorType(t.DType, out)), nil, nil
			}
		}
		return one(TensorType(t.DType, unknownShape(r))), nil, nil
	}
	norm, err := shapes.NormAxes(axes, r)
	if err != nil {
		return nil, nil, err
	}
	out := t.Shape.Clone()
	sv, hasSV := shapeValue(n.Input(0))
	for i, a := range norm {
		if steps[i] == 0 {
			return nil, nil, fmt.Errorf("step 0 on axis %d", a)
		}
		d := t.Shape[a]
		si, ok1 := DimInt(starts[i])
		ei, ok2 := DimInt(ends[i])
		if d.IsStatic() && ok1 && ok2 {
			cnt, first := sliceStatic(d.Val, si, ei, steps[i])
			out[a] = D(cnt)
			if hasSV && r == 1 && int64(len(sv)) == d.Val {
				vals := make(Shape, cnt)
				for k := range vals {
					vals[k] = sv[first+int64(k)*steps[i]]
				}
				sv = vals
			}
		} else {
			out[a] = sliceSymbolic(d, starts[i], ends[i], steps[i])
			hasSV = false
		}
	}
	res := TensorType(t.DType, out)
	if hasSV && tracksValues(res) && r == 1 && out[0].IsStatic() && int64(len(sv)) == out[0].Val {
		return one(res), svOut(sv), nil
	}
	return one(res), nil, nil
}

func inferFlatten(n *Node) ([]Type, []Shape, error) {
	t, err := input(n, 0)
	if err != nil {
		return nil, nil, err
	}
	axis := n.AttrInt("axis", 1)
	if !t.Ranked {
		return one(TensorType(t.DType, unknownShape(2))), nil, nil
	}
	r := int64(len(t.Shape))
	if axis < -r || axis > r {
		return nil, nil, fmt.Errorf("axis %d is out of range for rank %d", axis, r)
	}
	if axis < 0 {
		axis += r
	}
	return one(TensorType(t.DType, Shape{DimProduct(t.Shape[:axis]...), DimProduct(t.Shape[axis:]...)})), nil, nil
}

func inferTile(n *Node) ([]Type, []Shape, error) {
	t, err := input(n, 0)
	if err != nil {
		return nil, nil, err
	}
	if !t.Ranked {
		return one(t), nil, nil
	}
	reps, ok := shapeValue(n.Input(1))
	if !ok {
		return one(TensorType(t.DType, unknownShape(len(t.Shape)))), nil, nil
	}
	if len(reps) != len(t.Shape) {
		return nil, nil, fmt.Errorf("repeats has %d entries for rank %d", len(reps), len(t.Shape))
	}
	out := make(Shape, len(t.Shape))
	for i, d := range t.Shape {
		rep, err := dimFromValue(reps[i], "repeats")
		if err != nil {
			return nil, nil, err
		}
		out[i] = DimMul(d, rep)
	}
	return one(TensorType(t.DType, out)), nil, nil
}

func inferPad(n *Node) ([]Type, []Shape, error) {
	if err := inputsBefore(n, 11, 1); err != nil {
		return nil, nil, err
	}
	t, err := input(n, 0)
	if err != nil {
		return nil, nil, err
	}
	mode := n.AttrString("mode", "constant")
	switch mode {
	case "constant", "reflect", "edge", "wrap":
	default:
		return nil, nil, fmt.Errorf("mode %q is not constant, reflect, edge or wrap", mode)
	}
	if !t.Ranked {
		return one(t), nil, nil
	}
	r := len(t.Shape)
	var pads Shape
	known := true
	if n.Opset != 0 && n.Opset < 11 {
		p, ok := n.AttrInts("pads")
		if !ok {
			return nil, nil, fmt.Errorf("attribute pads is required")
		}
		pads = make(Shape, len(p))
		for i, v := range p {
			pads[i] = IntDim(v)
		}
	} else {
		if !present(n, 1) {
			return nil, nil, fmt.Errorf("input pads is required")
		}
		pads, known = shapeValue(n.Input(1))
	}
	axes := make([]int, r)
	for i := range axes {
		axes[i] = i
	}
	if v := n.Input(3); v != nil {
		ax, ok := knownInts(v)
		if !ok {
			return one(TensorType(t.DType, unknownShape(r))), nil, nil
		}
		if axes, err = shapes.NormAxes(ax, r); err != nil {
			return nil, nil, err
		}
	}
	if !known {
		out := t.Shape.Clone()
		for _, a := range axes {
			out[a] = Unknown
		}
		return one(TensorType(t.DType, out)), nil, nil
	}
	if len(pads) != 2*len(axes) {
		return nil, nil, fmt.Errorf("pads has %d entries, want %d", len(pads), 2*len(axes))
	}
	out := t.Shape.Clone()
	for i, a := range axes {
		d := DimAdd(DimAdd(t.Shape[a], pads[i]), pads[i+len(axes)])
		if v, ok := DimInt(d); ok && v < 0 {
			return nil, nil, fmt.Errorf("padding makes dim %d negative (%d)", a, v)
		}
		out[a] = d
	}
	return one(TensorType(t.DType, out)), nil, nil
}

func inferShapeOp(n *Node) ([]Type, []Shape, error) {
	t, err := input(n, 0)
	if err != nil {
		return nil, nil, err
	}
	if !t.Ranked {
		return one(TensorType(Int64, Shape{Unknown})), nil, nil
	}
	r := int64(len(t.Shape))
	clamp := func(v int64) int64 {
		if v < 0 {
			v += r
		}
		return max(0, min(v, r))
	}
	start := clamp(n.AttrInt("start", 0))
	end := clamp(n.AttrInt("end", r))
	if end < start {
		end = start
	}
	vals := t.Shape[start:end].Clone()
	if vals == nil {
		vals = Shape{}
	}
	return one(TensorType(Int64, Shape{D(end - start)})), svOut(vals), nil
}

func inferConstantOfShape(n *Node) ([]Type, []Shape, error) {
	st, err := input(n, 0)
	if err != nil {
		return nil, nil, err
	}
	dt := Float32
	var fill *Tensor
	if v := n.AttrTensor("value"); v != nil {
		if v.NumElements() != 1 {
			return nil, nil, fmt.Errorf("value must have one element, has %d", v.NumElements())
		}
		dt, fill = v.DType, v
	}
	if st.Ranked && len(st.Shape) != 1 {
		return nil, nil, fmt.Errorf("shape input has rank %d, want 1", len(st.Shape))
	}
	target, ok := shapeValue(n.Input(0))
	if !ok {
		if st.Ranked && st.Shape[0].IsStatic() {
			if err := checkRank(st.Shape[0].Val, "shape input"); err != nil {
				return nil, nil, err
			}
			return one(TensorType(dt, unknownShape(int(st.Shape[0].Val)))), nil, nil
		}
		return one(unranked(dt)), nil, nil
	}
	if err := checkRank(int64(len(target)), "shape input"); err != nil {
		return nil, nil, err
	}
	out := make(Shape, len(target))
	for i, d := range target {
		if out[i], err = dimFromValue(d, "shape"); err != nil {
			return nil, nil, err
		}
	}
	res := TensorType(dt, out)
	var sv []Shape
	if tracksValues(res) && fill != nil && fill.Validate() == nil {
		if vals, err := fill.Int64s(); err == nil {
			cnt := int64(1)
			if len(out) == 1 {
				cnt = out[0].Val
			}
			rep := make(Shape, cnt)
			for i := range rep {
				rep[i] = IntDim(vals[0])
			}
			sv = svOut(rep)
		}
	}
	return one(res), sv, nil
}

func inferConstant(n *Node) ([]Type, []Shape, error) {
	var t *Tensor
	count := 0
	for _, name := range []string{"value", "value_float", "value_int", "value_floats", "value_ints", "value_string", "value_strings", "sparse_value"} {
		a, ok := n.Attrs[name]
		if !ok {
			continue
		}
		count++
		switch name {
		case "value":
			if a.Kind != AttrTensor || a.Tensor == nil {
				return nil, nil, fmt.Errorf("attribute value must be a tensor")
			}
			t = a.Tensor
		case "value_float":
			t = NewTensorF32(nil, []float32{a.Float})
		case "value_int":
			t = NewTensorI64(nil, []int64{a.Int})
		case "value_floats":
			t = NewTensorF32([]int64{int64(len(a.Floats))}, a.Floats)
		case "value_ints":
			t = NewTensorI64([]int64{int64(len(a.Ints))}, a.Ints)
		case "value_string":
			return one(TensorType(String, Shape{})), nil, nil
		case "value_strings":
			return one(TensorType(String, StaticShape(int64(len(a.Strings))))), nil, nil
		default:
			return nil, nil, fmt.Errorf("sparse_value is not supported")
		}
	}
	if count != 1 {
		return nil, nil, fmt.Errorf("exactly one value attribute is required, found %d", count)
	}
	for _, d := range t.Shape {
		if d < 0 {
			return nil, nil, fmt.Errorf("value has negative dim in %v", t.Shape)
		}
	}
	res := t.Type()
	var sv []Shape
	if tracksValues(res) && t.Validate() == nil {
		if vals, err := t.Int64s(); err == nil {
			s := make(Shape, len(vals))
			for i, v := range vals {
				s[i] = IntDim(v)
			}
			sv = svOut(s)
		}
	}
	return one(res), sv, nil
}

func inferRange(n *Node) ([]Type, []Shape, error) {
	var ts [3]Type
	for i := range ts {
		t, err := input(n, i)
		if err != nil {
			return nil, nil, err
		}
		if t.Ranked && len(t.Shape) != 0 {
			if ne, ok := t.Shape.NumElements(); !ok || ne != 1 {
				return nil, nil, fmt.Errorf("input %d has shape %s, want a scalar", i, t.Shape)
			}
		}
		ts[i] = t
	}
	dt, err := sameDType(n, 0, 1, 2)
	if err != nil {
		return nil, nil, err
	}
	length := Unknown
	var sv Shape
	if dt.IsFloat() {
		s, ok1 := constFloats(n.Input(0), 1)
		l, ok2 := constFloats(n.Input(1), 1)
		d, ok3 := constFloats(n.Input(2), 1)
		if ok1 && ok2 && ok3 {
			if d[0] == 0 {
				return nil, nil, fmt.Errorf("delta is 0")
			}
			c := math.Ceil((l[0] - s[0]) / d[0])
			if c > math.MaxInt64/2 || math.IsNaN(c) {
				return nil, nil, fmt.Errorf("range (%v, %v, %v) is too long", s[0], l[0], d[0])
			}
			length = D(max(0, int64(c)))
		}
	} else {
		start, ok1 := knownInt(n.Input(0))
		limit, ok2 := knownInt(n.Input(1))
		delta, ok3 := knownInt(n.Input(2))
		switch {
		case ok3 && delta == 0:
			return nil, nil, fmt.Errorf("delta is 0")
		case ok1 && ok2 && ok3:
			span := limit - start
			if (limit > start && span < 0) || (limit < start && span > 0) {
				return nil, nil, fmt.Errorf("range (%d, %d, %d) overflows", start, limit, delta)
			}
			var c int64
			if (span > 0) == (delta > 0) && span != 0 {
				c = (absInt(span) + absInt(delta) - 1) / absInt(delta)
			}
			length = D(c)
			if c <= maxShapeValueLen {
				sv = make(Shape, c)
				for i := range sv {
					sv[i] = IntDim(start + int64(i)*delta)
				}
			}
		case ok3 && delta > 0:
			// Symbolic bounds, e.g. Range(0, N, 1) → N; only when the
			// quotient is exact (ceil is not expressible).
			s, okS := shapeValue(n.Input(0))
			l, okL := shapeValue(n.Input(1))
			if okS && okL && len(s) == 1 && len(l) == 1 {
				if q, ok := DimDivExact(DimSub(l[0], s[0]), D(delta)); ok {
					if v, isInt := DimInt(q); !isInt || v >= 0 {
						length = q
					}
				}
			}
		}
	}
	return one(TensorType(dt, Shape{length})), svOut(sv), nil
}
