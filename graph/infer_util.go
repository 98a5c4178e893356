package graph

import (
	"fmt"
	"math"
)

// Shared helpers of the per-op inference rules (infer_*.go).
//
// Conventions every rule follows:
//   - An input whose rank is unknown makes outputs whose shape depends on it
//     unranked; a dim that cannot be known is Unknown, never a guess.
//   - Symbolic dims are assumed to be at least as large as the constant
//     offsets applied to them (e.g. Slice x[1:] of N gives N-1, x[-2:] gives
//     2), and not to be the broadcasting 1 unless they are on both sides.
//   - ShapeValue (see Value) is the flattened contents of a rank-0 or rank-1
//     integer or bool tensor of at most maxShapeValueLen elements; a scalar
//     has one entry. Bools are 0 and 1.

// maxShapeValueLen bounds the tensors whose contents inference tracks, so a
// Range or ConstantOfShape of absurd size never allocates.
const maxShapeValueLen = 256

// maxRank bounds output ranks built from data (e.g. a Reshape to a shape
// tensor of static length 2^40), so bad input cannot cause a huge allocation.
const maxRank = 64

// sliceEndSentinel: Slice ends at or past this are "to the end" (torch and
// onnx write INT64_MAX or INT32_MAX there).
const sliceEndSentinel = math.MaxInt32

// reg registers an ai.onnx op. Every rule's result is checked for dims that
// cannot be sizes (negative numbers, which only ShapeValues may hold), so a
// slip in one rule surfaces as an error rather than a bad type downstream.
func reg(op string, since int64, minIn, maxIn, minOut, maxOut int, f InferFunc) {
	RegisterOp(OpDef{Op: op, SinceVersion: since, MinInputs: minIn, MaxInputs: maxIn,
		MinOutputs: minOut, MaxOutputs: maxOut, Infer: func(n *Node) ([]Type, []Shape, error) {
			if err := checkAttrKinds(n); err != nil {
				return nil, nil, err
			}
			types, vals, err := f(n)
			if err != nil {
				return nil, nil, err
			}
			for i, t := range types {
				for _, d := range t.Shape {
					if v, ok := DimInt(d); d.Sym != "" && ok && v < 0 {
						return nil, nil, fmt.Errorf("output %d would have negative dim %d (shape %s)", i, v, t.Shape)
					}
				}
			}
			return types, vals, nil
		}})
}

// input returns the type of input i; it fails when the input is absent.
func input(n *Node, i int) (Type, error) {
	v := n.Input(i)
	if v == nil {
		return Type{}, fmt.Errorf("input %d is missing", i)
	}
	return v.Type, nil
}

// present reports whether optional input i is given.
func present(n *Node, i int) bool { return n.Input(i) != nil }

func unranked(dt DType) Type { return Type{DType: dt} }

// sameAs returns a copy of t with another dtype.
func withDType(t Type, dt DType) Type {
	return Type{DType: dt, Shape: t.Shape.Clone(), Ranked: t.Ranked}
}

func one(t Type) []Type { return []Type{t} }

// constInts returns the contents of a constant integer tensor of at most
// limit elements.
func constInts(v *Value, limit int64) ([]int64, bool) {
	if v == nil || v.Const == nil || !(v.Const.DType.IsInt() || v.Const.DType == Bool) {
		return nil, false
	}
	if v.Const.NumElements() > limit || v.Const.Validate() != nil {
		return nil, false
	}
	vals, err := v.Const.Int64s()
	if err != nil {
		return nil, false
	}
	return vals, true
}

// constFloats returns the contents of a small constant numeric tensor.
func constFloats(v *Value, limit int64) ([]float64, bool) {
	if v == nil || v.Const == nil || v.Const.NumElements() > limit || v.Const.Validate() != nil {
		return nil, false
	}
	vals, err := v.Const.Float64s()
	if err != nil {
		return nil, false
	}
	return vals, true
}

// shapeValue returns what is known about the contents of a small integer
// tensor: its ShapeValue from inference or its constant contents.
func shapeValue(v *Value) (Shape, bool) {
	if v == nil {
		return nil, false
	}
	if v.ShapeValue != nil {
		return v.ShapeValue, true
	}
	if v.Type.Rank() > 1 {
		return nil, false
	}
	vals, ok := constInts(v, maxShapeValueLen)
	if !ok {
		return nil, false
	}
	s := make(Shape, len(vals))
	for i, x := range vals {
		s[i] = IntDim(x)
	}
	return s, true
}

// knownInts returns the contents of an input when every element is a known
// number (constant, or a ShapeValue of static entries).
func knownInts(v *Value) ([]int64, bool) {
	if vals, ok := constInts(v, 1<<16); ok {
		return vals, true
	}
	sv, ok := shapeValue(v)
	if !ok {
		return nil, false
	}
	out := make([]int64, len(sv))
	for i, d := range sv {
		x, ok := DimInt(d)
		if !ok {
			return nil, false
		}
		out[i] = x
	}
	return out, true
}

// knownInt returns a scalar (or one-element) input's known value.
func knownInt(v *Value) (int64, bool) {
	vals, ok := knownInts(v)
	if !ok || len(vals) != 1 {
		return 0, false
	}
	return vals[0], true
}

// axesArg returns the axes of ops whose axes moved from an attribute to an
// optional input at some opset: given reports whether any axes were given.
func axesArg(n *Node, inputIdx int, inputSince int64) (axes []int64, given, known bool) {
	if n.Opset >= inputSince || (n.Opset == 0 && present(n, inputIdx)) {
		v := n.Input(inputIdx)
		if v == nil {
			return nil, false, true
		}
		vals, ok := knownInts(v)
		return vals, true, ok
	}
	a, ok := n.AttrInts("axes")
	return a, ok, true
}

// dimFromValue turns a shape-tensor entry into a size, rejecting negative
// numbers.
func dimFromValue(d Dim, what string) (Dim, error) {
	if d.IsUnknown() {
		return Unknown, nil
	}
	if v, ok := DimInt(d); ok {
		if v < 0 {
			return Unknown, fmt.Errorf("%s has negative size %d", what, v)
		}
		return D(v), nil
	}
	return CanonDim(d), nil
}

// broadcastDim merges two dims under numpy broadcasting.
func broadcastDim(a, b Dim) (Dim, error) {
	switch {
	case a.IsStatic() && a.Val == 1:
		return b, nil
	case b.IsStatic() && b.Val == 1:
		return a, nil
	case a.IsStatic() && b.IsStatic():
		if a.Val != b.Val {
			return Unknown, fmt.Errorf("cannot broadcast %d against %d", a.Val, b.Val)
		}
		return a, nil
	case a.IsStatic():
		// b is symbolic or unknown: it is either 1 or equal to a.
		return a, nil
	case b.IsStatic():
		return b, nil
	case a.IsSymbolic() && b.IsSymbolic():
		if sameSym(a, b) {
			return a, nil
		}
		// Either could be 1 at run time; the result is one of the two.
		return Unknown, nil
	case a.IsSymbolic():
		return a, nil
	case b.IsSymbolic():
		return b, nil
	}
	return Unknown, nil
}

// BroadcastShapes applies multidirectional (numpy) broadcasting with
// symbolic dims: 1 stretches, equal symbols match, a symbol against an
// unknown dim stays the symbol, two different symbols give Unknown, and
// static sizes that differ (neither 1) are an error.
func BroadcastShapes(shapes ...Shape) (Shape, error) { return broadcastShapes(shapes...) }

// broadcastShapes applies multidirectional (numpy) broadcasting.
func broadcastShapes(shapes ...Shape) (Shape, error) {
	rank := 0
	for _, s := range shapes {
		if len(s) > rank {
			rank = len(s)
		}
	}
	out := make(Shape, rank)
	for i := range out {
		out[i] = D(1)
	}
	for _, s := range shapes {
		off := rank - len(s)
		for i, d := range s {
			m, err := broadcastDim(out[off+i], d)
			if err != nil {
				return nil, fmt.Errorf("shapes %s: dim %d: %w", shapesText(shapes), off+i-rank, err)
			}
			out[off+i] = m
		}
	}
	return out, nil
}

func shapesText(shapes []Shape) string {
	s := ""
	for i, sh := range shapes {
		if i > 0 {
			s += " and "
		}
		s += sh.String()
	}
	return s
}

// broadcastTypes broadcasts the given types; the result is unranked when any
// input rank is unknown.
func broadcastTypes(dt DType, ts ...Type) (Type, error) {
	shapes := make([]Shape, 0, len(ts))
	for _, t := range ts {
		if !t.Ranked {
			return unranked(dt), nil
		}
		shapes = append(shapes, t.Shape)
	}
	s, err := broadcastShapes(shapes...)
	if err != nil {
		return Type{}, err
	}
	return TensorType(dt, s), nil
}

// sameDType returns the common dtype of the given inputs, failing when two
// known dtypes differ.
func sameDType(n *Node, idx ...int) (DType, error) {
	dt := Undefined
	first := -1
	for _, i := range idx {
		v := n.Input(i)
		if v == nil || v.Type.DType == Undefined {
			continue
		}
		if dt == Undefined {
			dt, first = v.Type.DType, i
			continue
		}
		if v.Type.DType != dt {
			return Undefined, fmt.Errorf("input %d is %s but input %d is %s", i, v.Type.DType, first, dt)
		}
	}
	return dt, nil
}

// mergeDim combines two dims that must be equal (Concat's other axes,
// MatMul's contracted dims): it prefers the better-known one and fails on
// a static mismatch.
func mergeDim(a, b Dim) (Dim, error) {
	switch {
	case a.IsStatic() && b.IsStatic():
		if a.Val != b.Val {
			return Unknown, fmt.Errorf("%d does not match %d", a.Val, b.Val)
		}
		return a, nil
	case a.IsStatic():
		return a, nil
	case b.IsStatic():
		return b, nil
	case a.IsSymbolic():
		return a, nil
	}
	return b, nil
}

// svOut wraps a single output's shape value.
func svOut(s Shape) []Shape {
	if s == nil {
		return nil
	}
	return []Shape{s}
}

// tracksValues reports whether a tensor of this type can carry a ShapeValue.
func tracksValues(t Type) bool {
	if !(t.DType.IsInt() || t.DType == Bool) || !t.Ranked || len(t.Shape) > 1 {
		return false
	}
	if len(t.Shape) == 1 {
		d := t.Shape[0]
		return d.IsStatic() && d.Val <= maxShapeValueLen
	}
	return true
}

// checkRank rejects absurd output ranks before anything is allocated.
func checkRank(r int64, what string) error {
	if r < 0 || r > maxRank {
		return fmt.Errorf("%s gives rank %d (at most %d supported)", what, r, maxRank)
	}
	return nil
}

// unknownShape is a ranked shape of unknown dims.
func unknownShape(rank int) Shape {
	s := make(Shape, rank)
	for i := range s {
		s[i] = Unknown
	}
	return s
}

// inputsBefore rejects inputs that an op only took from opset since on
// (before it, the same arguments were attributes): silently ignoring them
// would type the node by the wrong arguments.
func inputsBefore(n *Node, since int64, max int) error {
	if n.Opset != 0 && n.Opset < since && len(n.Inputs) > max {
		return fmt.Errorf("opset %d %s takes %d input(s); the others are attributes before opset %d", n.Opset, n.Op, max, since)
	}
	return nil
}

// attrKinds is the kind every attribute of the supported ops has, by name
// (the rules read attributes with Node.AttrInt and friends, which fall back
// to the default on a kind mismatch; a model with axis=1.0 must fail
// instead). opAttrKinds overrides it where one name has two kinds.
var attrKinds = map[string]AttrKind{
	"axis": AttrInt, "axes": AttrInts, "perm": AttrInts, "keepdims": AttrInt, "to": AttrInt,
	"allowzero": AttrInt, "noop_with_empty_axes": AttrInt, "split": AttrInts, "num_outputs": AttrInt,
	"starts": AttrInts, "ends": AttrInts, "pads": AttrInts, "k": AttrInt, "batch_dims": AttrInt,
	"transA": AttrInt, "transB": AttrInt, "start": AttrInt, "end": AttrInt, "stash_type": AttrInt,
	"select_last_index": AttrInt, "largest": AttrInt, "sorted": AttrInt, "q_num_heads": AttrInt,
	"kv_num_heads": AttrInt, "is_causal": AttrInt, "qk_matmul_output_mode": AttrInt, "softcap": AttrFloat,
	"scale": AttrFloat, "approximate": AttrString, "fmod": AttrInt, "upper": AttrInt, "exclusive": AttrInt,
	"reverse": AttrInt, "reduction": AttrString, "equation": AttrString, "mode": AttrString,
	"alpha": AttrFloat, "beta": AttrFloat, "gamma": AttrFloat, "bias": AttrFloat, "lambd": AttrFloat,
	"epsilon": AttrFloat, "momentum": AttrFloat, "ratio": AttrFloat, "seed": AttrInt, "min": AttrFloat,
	"max": AttrFloat, "spatial": AttrInt, "training_mode": AttrInt, "detect_negative": AttrInt,
	"detect_positive": AttrInt, "value": AttrTensor, "value_float": AttrFloat, "value_floats": AttrFloats,
	"value_int": AttrInt, "value_ints": AttrInts, "value_string": AttrString, "value_strings": AttrStrings,
	"saturate": AttrInt, "round_mode": AttrString,
}

var opAttrKinds = map[string]AttrKind{
	"Pad.value": AttrFloat, // Pad before opset 11
}

func checkAttrKinds(n *Node) error {
	for name, a := range n.Attrs {
		want, ok := opAttrKinds[n.Op+"."+name]
		if !ok {
			want, ok = attrKinds[name]
		}
		if ok && a.Kind != want {
			return fmt.Errorf("attribute %s is %s, want %s", name, a.Kind, want)
		}
	}
	return nil
}
