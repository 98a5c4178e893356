package mlx

import "fmt"

// Op codes shared with shim.h (capi_cgo.go checks they agree).
const (
	opAbs = iota
	opNeg
	opSign
	opExp
	opLog
	opSqrt
	opRsqrt
	opTanh
	opErf
	opSigmoid
	opFloor
	opCeil
	opRound
	opReciprocal
	opSin
	opCos
	opIsNaN
	opIsInf
	opLogicalNot
	opSquare
	opLog1p
	opExpm1
	opCopy
	opTan
	opErfinv
	opStopGradient
	opIsFinite
	unaryEnd
)

const (
	opAdd = iota
	opSub
	opMul
	opDiv
	opPow
	opRemainder
	opMaximum
	opMinimum
	opEqual
	opNotEqual
	opLess
	opLessEqual
	opGreater
	opGreaterEqual
	opLogicalAnd
	opLogicalOr
	opMatMul
	opFloorDivide
	opArctan2
	binaryEnd
)

const (
	redSum = iota
	redMean
	redMax
	redMin
	redProd
	redAll
	redAny
	redLogSumExp
	redArgMax
	redArgMin
	reduceEnd
)

func (s *Scope) unary(op int, name string, a *Array) *Array {
	if !s.ok(name, a) {
		return nil
	}
	h, err := libUnary(op, a.h)
	return s.result(name, h, err)
}

func (s *Scope) binary(op int, name string, a, b *Array) *Array {
	if !s.ok(name, a, b) {
		return nil
	}
	h, err := libBinary(op, a.h, b.h)
	return s.result(name, h, err)
}

func (s *Scope) reduce(op int, name string, a *Array, keepdims bool, axes []int) *Array {
	if !s.ok(name, a) {
		return nil
	}
	h, err := libReduce(op, a.h, axes, len(axes) == 0, keepdims)
	return s.result(name, h, err)
}

// Elementwise unary ops.
func (s *Scope) Abs(a *Array) *Array        { return s.unary(opAbs, "abs", a) }
func (s *Scope) Neg(a *Array) *Array        { return s.unary(opNeg, "negative", a) }
func (s *Scope) Sign(a *Array) *Array       { return s.unary(opSign, "sign", a) }
func (s *Scope) Exp(a *Array) *Array        { return s.unary(opExp, "exp", a) }
func (s *Scope) Log(a *Array) *Array        { return s.unary(opLog, "log", a) }
func (s *Scope) Sqrt(a *Array) *Array       { return s.unary(opSqrt, "sqrt", a) }
func (s *Scope) Rsqrt(a *Array) *Array      { return s.unary(opRsqrt, "rsqrt", a) }
func (s *Scope) Tanh(a *Array) *Array       { return s.unary(opTanh, "tanh", a) }
func (s *Scope) Erf(a *Array) *Array        { return s.unary(opErf, "erf", a) }
func (s *Scope) Sigmoid(a *Array) *Array    { return s.unary(opSigmoid, "sigmoid", a) }
func (s *Scope) Floor(a *Array) *Array      { return s.unary(opFloor, "floor", a) }
func (s *Scope) Ceil(a *Array) *Array       { return s.unary(opCeil, "ceil", a) }
func (s *Scope) Round(a *Array) *Array      { return s.unary(opRound, "round", a) } // half to even
func (s *Scope) Reciprocal(a *Array) *Array { return s.unary(opReciprocal, "reciprocal", a) }
func (s *Scope) Sin(a *Array) *Array        { return s.unary(opSin, "sin", a) }
func (s *Scope) Cos(a *Array) *Array        { return s.unary(opCos, "cos", a) }
func (s *Scope) Tan(a *Array) *Array        { return s.unary(opTan, "tan", a) }
func (s *Scope) IsNaN(a *Array) *Array      { return s.unary(opIsNaN, "isnan", a) }
func (s *Scope) IsInf(a *Array) *Array      { return s.unary(opIsInf, "isinf", a) }
func (s *Scope) IsFinite(a *Array) *Array   { return s.unary(opIsFinite, "isfinite", a) }
func (s *Scope) LogicalNot(a *Array) *Array { return s.unary(opLogicalNot, "logical_not", a) }
func (s *Scope) Square(a *Array) *Array     { return s.unary(opSquare, "square", a) }
func (s *Scope) Log1p(a *Array) *Array      { return s.unary(opLog1p, "log1p", a) }
func (s *Scope) Expm1(a *Array) *Array      { return s.unary(opExpm1, "expm1", a) }
func (s *Scope) Erfinv(a *Array) *Array     { return s.unary(opErfinv, "erfinv", a) }
func (s *Scope) Copy(a *Array) *Array       { return s.unary(opCopy, "copy", a) }

// StopGradient is an identity for inference graphs; kept for Identity nodes
// that must stay distinct graph nodes.
func (s *Scope) StopGradient(a *Array) *Array { return s.unary(opStopGradient, "stop_gradient", a) }

// Elementwise binary ops with NumPy broadcasting and type promotion.
func (s *Scope) Add(a, b *Array) *Array         { return s.binary(opAdd, "add", a, b) }
func (s *Scope) Sub(a, b *Array) *Array         { return s.binary(opSub, "subtract", a, b) }
func (s *Scope) Mul(a, b *Array) *Array         { return s.binary(opMul, "multiply", a, b) }
func (s *Scope) Div(a, b *Array) *Array         { return s.binary(opDiv, "divide", a, b) }
func (s *Scope) Pow(a, b *Array) *Array         { return s.binary(opPow, "power", a, b) }
func (s *Scope) Remainder(a, b *Array) *Array   { return s.binary(opRemainder, "remainder", a, b) } // sign of divisor (Python %)
func (s *Scope) FloorDivide(a, b *Array) *Array { return s.binary(opFloorDivide, "floor_divide", a, b) }
func (s *Scope) Maximum(a, b *Array) *Array     { return s.binary(opMaximum, "maximum", a, b) }
func (s *Scope) Minimum(a, b *Array) *Array     { return s.binary(opMinimum, "minimum", a, b) }
func (s *Scope) Equal(a, b *Array) *Array       { return s.binary(opEqual, "equal", a, b) }
func (s *Scope) NotEqual(a, b *Array) *Array    { return s.binary(opNotEqual, "not_equal", a, b) }
func (s *Scope) Less(a, b *Array) *Array        { return s.binary(opLess, "less", a, b) }
func (s *Scope) LessEqual(a, b *Array) *Array   { return s.binary(opLessEqual, "less_equal", a, b) }
func (s *Scope) Greater(a, b *Array) *Array     { return s.binary(opGreater, "greater", a, b) }
func (s *Scope) GreaterEqual(a, b *Array) *Array {
	return s.binary(opGreaterEqual, "greater_equal", a, b)
}
func (s *Scope) LogicalAnd(a, b *Array) *Array { return s.binary(opLogicalAnd, "logical_and", a, b) }
func (s *Scope) LogicalOr(a, b *Array) *Array  { return s.binary(opLogicalOr, "logical_or", a, b) }
func (s *Scope) Arctan2(a, b *Array) *Array    { return s.binary(opArctan2, "arctan2", a, b) }

// MatMul follows numpy.matmul (batch broadcasting; 1-d operands promoted).
func (s *Scope) MatMul(a, b *Array) *Array { return s.binary(opMatMul, "matmul", a, b) }

// Reductions; no axes means all axes. Axes may be negative.
func (s *Scope) Sum(a *Array, keepdims bool, axes ...int) *Array {
	return s.reduce(redSum, "sum", a, keepdims, axes)
}
func (s *Scope) Mean(a *Array, keepdims bool, axes ...int) *Array {
	return s.reduce(redMean, "mean", a, keepdims, axes)
}
func (s *Scope) Max(a *Array, keepdims bool, axes ...int) *Array {
	return s.reduce(redMax, "max", a, keepdims, axes)
}
func (s *Scope) Min(a *Array, keepdims bool, axes ...int) *Array {
	return s.reduce(redMin, "min", a, keepdims, axes)
}
func (s *Scope) Prod(a *Array, keepdims bool, axes ...int) *Array {
	return s.reduce(redProd, "prod", a, keepdims, axes)
}
func (s *Scope) All(a *Array, keepdims bool, axes ...int) *Array {
	return s.reduce(redAll, "all", a, keepdims, axes)
}
func (s *Scope) Any(a *Array, keepdims bool, axes ...int) *Array {
	return s.reduce(redAny, "any", a, keepdims, axes)
}
func (s *Scope) LogSumExp(a *Array, keepdims bool, axes ...int) *Array {
	return s.reduce(redLogSumExp, "logsumexp", a, keepdims, axes)
}

// ArgMax returns uint32 indices of the first maximum along axis.
func (s *Scope) ArgMax(a *Array, axis int, keepdims bool) *Array {
	return s.reduce(redArgMax, "argmax", a, keepdims, []int{axis})
}

// ArgMin returns uint32 indices of the first minimum along axis.
func (s *Scope) ArgMin(a *Array, axis int, keepdims bool) *Array {
	return s.reduce(redArgMin, "argmin", a, keepdims, []int{axis})
}

// Where selects x where cond is true, else y (broadcasting all three).
func (s *Scope) Where(cond, x, y *Array) *Array {
	if !s.ok("where", cond, x, y) {
		return nil
	}
	h, err := libWhere(cond.h, x.h, y.h)
	return s.result("where", h, err)
}

// Contiguous is a made row-contiguous: the same buffer when it already is,
// else one copy (MLX's 2-D column-to-row case, which a transpose of a
// contiguous array collapses to, is a tiled copy; a general strided copy is
// several times slower on the GPU).
func (s *Scope) Contiguous(a *Array) *Array {
	if !s.ok("contiguous", a) {
		return nil
	}
	h, err := libContiguous(a.h)
	return s.result("contiguous", h, err)
}

// Depends is x, sharing its buffer, made to depend on dep: MLX evaluates
// dep before anything computed from the result. No data moves.
func (s *Scope) Depends(x, dep *Array) *Array {
	if !s.ok("depends", x, dep) {
		return nil
	}
	h, err := libDepends(x.h, dep.h)
	return s.result("depends", h, err)
}

// AsType casts a to dt.
func (s *Scope) AsType(a *Array, dt Dtype) *Array {
	if !s.ok("astype", a) {
		return nil
	}
	if !dt.Valid() {
		s.failf("astype", fmt.Errorf("unknown dtype %d", int(dt)))
		return nil
	}
	h, err := libAsType(a.h, dt)
	return s.result("astype", h, err)
}

// Clip limits a to [lo, hi]; either bound may be nil (ONNX Clip).
func (s *Scope) Clip(a, lo, hi *Array) *Array {
	if !s.ok("clip", a) || !s.okOpt("clip", lo, hi) {
		return nil
	}
	h, err := libClip(a.h, hOrNil(lo), hOrNil(hi))
	return s.result("clip", h, err)
}

func handlesOf(as []*Array) []hnd {
	hs := make([]hnd, len(as))
	for i, a := range as {
		hs[i] = a.h
	}
	return hs
}

// Einsum evaluates an Einstein summation, e.g. "bij,bjk->bik".
func (s *Scope) Einsum(subscripts string, operands ...*Array) *Array {
	if !s.ok("einsum", operands...) {
		return nil
	}
	h, err := libEinsum(subscripts, handlesOf(operands))
	return s.result("einsum", h, err)
}

// Reshape; one dimension may be -1.
func (s *Scope) Reshape(a *Array, shape ...int) *Array {
	if !s.ok("reshape", a) {
		return nil
	}
	h, err := libReshape(a.h, shape)
	return s.result("reshape", h, err)
}

// Transpose permutes axes; no perm reverses them.
func (s *Scope) Transpose(a *Array, perm ...int) *Array {
	if !s.ok("transpose", a) {
		return nil
	}
	if len(perm) == 0 {
		nd := a.Ndim()
		perm = make([]int, nd)
		for i := range perm {
			perm[i] = nd - 1 - i
		}
	}
	h, err := libTranspose(a.h, perm)
	return s.result("transpose", h, err)
}

// BroadcastTo broadcasts a to shape (NumPy rules).
func (s *Scope) BroadcastTo(a *Array, shape ...int) *Array {
	if !s.ok("broadcast_to", a) {
		return nil
	}
	h, err := libBroadcastTo(a.h, shape)
	return s.result("broadcast_to", h, err)
}

// ExpandDims inserts singleton axes at the given positions of the result.
func (s *Scope) ExpandDims(a *Array, axes ...int) *Array {
	if !s.ok("expand_dims", a) {
		return nil
	}
	h, err := libExpandDims(a.h, axes)
	return s.result("expand_dims", h, err)
}

// Squeeze removes the given singleton axes, or all of them if none are given.
func (s *Scope) Squeeze(a *Array, axes ...int) *Array {
	if !s.ok("squeeze", a) {
		return nil
	}
	h, err := libSqueeze(a.h, axes, len(axes) == 0)
	return s.result("squeeze", h, err)
}

// Slice takes start/stop/strides for every axis, NumPy semantics: negative
// start/stop count from the end, bounds are clamped, and a negative stride
// walks backwards (stop exclusive, so use -size-1 to reach index 0).
func (s *Scope) Slice(a *Array, start, stop, strides []int) *Array {
	if !s.ok("slice", a) {
		return nil
	}
	if strides == nil {
		strides = ones(len(start))
	}
	if len(start) != len(stop) || len(start) != len(strides) {
		s.failf("slice", fmt.Errorf("start, stop and strides differ in length"))
		return nil
	}
	h, err := libSlice(a.h, start, stop, strides)
	return s.result("slice", h, err)
}

func ones(n int) []int {
	r := make([]int, n)
	for i := range r {
		r[i] = 1
	}
	return r
}

// SliceUpdate returns a copy of a with the slice replaced by upd.
func (s *Scope) SliceUpdate(a, upd *Array, start, stop, strides []int) *Array {
	if !s.ok("slice_update", a, upd) {
		return nil
	}
	if strides == nil {
		strides = ones(len(start))
	}
	if len(start) != len(stop) || len(start) != len(strides) {
		s.failf("slice_update", fmt.Errorf("start, stop and strides differ in length"))
		return nil
	}
	h, err := libSliceUpdate(a.h, upd.h, start, stop, strides)
	return s.result("slice_update", h, err)
}

// Concatenate joins arrays along an existing axis.
func (s *Scope) Concatenate(axis int, as ...*Array) *Array {
	if !s.ok("concatenate", as...) {
		return nil
	}
	h, err := libConcatenate(handlesOf(as), axis)
	return s.result("concatenate", h, err)
}

// Stack joins arrays along a new axis.
func (s *Scope) Stack(axis int, as ...*Array) *Array {
	if !s.ok("stack", as...) {
		return nil
	}
	h, err := libStack(handlesOf(as), axis)
	return s.result("stack", h, err)
}

// Split cuts a along axis before each index (ascending), giving
// len(indices)+1 parts.
func (s *Scope) Split(a *Array, indices []int, axis int) []*Array {
	if !s.ok("split", a) {
		return nil
	}
	hs, err := libSplit(a.h, indices, axis)
	if err != nil {
		s.failf("split", err)
		return nil
	}
	out := make([]*Array, len(hs))
	for i, h := range hs {
		out[i] = s.wrap(h)
	}
	return out
}

// SplitSizes cuts a along axis into parts of the given sizes (ONNX Split).
func (s *Scope) SplitSizes(a *Array, sizes []int, axis int) []*Array {
	if len(sizes) == 0 {
		s.failf("split", fmt.Errorf("no sizes"))
		return nil
	}
	idx := make([]int, 0, len(sizes)-1)
	acc := 0
	for _, n := range sizes[:len(sizes)-1] {
		acc += n
		idx = append(idx, acc)
	}
	return s.Split(a, idx, axis)
}

// Take gathers slices of a at integer indices along axis (ONNX Gather).
// Negative indices count from the end.
func (s *Scope) Take(a, indices *Array, axis int) *Array {
	if !s.ok("take", a, indices) {
		return nil
	}
	h, err := libTake(a.h, indices.h, axis)
	return s.result("take", h, err)
}

// TakeAlongAxis is numpy.take_along_axis (ONNX GatherElements).
func (s *Scope) TakeAlongAxis(a, indices *Array, axis int) *Array {
	if !s.ok("take_along_axis", a, indices) {
		return nil
	}
	h, err := libTakeAlongAxis(a.h, indices.h, axis)
	return s.result("take_along_axis", h, err)
}

// PutAlongAxis is the inverse (ONNX ScatterElements without reduction).
func (s *Scope) PutAlongAxis(a, indices, values *Array, axis int) *Array {
	if !s.ok("put_along_axis", a, indices, values) {
		return nil
	}
	h, err := libPutAlongAxis(a.h, indices.h, values.h, axis)
	return s.result("put_along_axis", h, err)
}

// Gather is mlx::core::gather: one index array per axis in axes (broadcast
// together), and a slice size for every axis of a; the result has shape
// broadcast(indices) + sliceSizes. With all axes indexed and slice sizes 1
// it is ONNX GatherND (then reshape away the trailing ones).
func (s *Scope) Gather(a *Array, indices []*Array, axes []int, sliceSizes []int) *Array {
	if !s.ok("gather", append([]*Array{a}, indices...)...) {
		return nil
	}
	h, err := libGather(a.h, handlesOf(indices), axes, sliceSizes)
	return s.result("gather", h, err)
}

func (s *Scope) scatter(name string, a *Array, indices []*Array, updates *Array, axes []int, mode int) *Array {
	if !s.ok(name, append([]*Array{a, updates}, indices...)...) {
		return nil
	}
	h, err := libScatter(a.h, handlesOf(indices), updates.h, axes, mode)
	return s.result(name, h, err)
}

// Scatter writes updates at indices (one index array per axis in axes);
// updates has shape broadcast(indices) + slice shape, as in mlx::core::scatter.
func (s *Scope) Scatter(a *Array, indices []*Array, updates *Array, axes []int) *Array {
	return s.scatter("scatter", a, indices, updates, axes, 0)
}

// ScatterAdd is Scatter that accumulates duplicates.
func (s *Scope) ScatterAdd(a *Array, indices []*Array, updates *Array, axes []int) *Array {
	return s.scatter("scatter_add", a, indices, updates, axes, 1)
}

// Pad pads every axis with low/high counts of a constant value.
func (s *Scope) Pad(a *Array, low, high []int, value float64) *Array {
	if !s.ok("pad", a) {
		return nil
	}
	v, err := libScalar(value, a.Dtype())
	if err != nil {
		s.failf("pad", err)
		return nil
	}
	defer libFree(v)
	h, err := libPad(a.h, low, high, v)
	return s.result("pad", h, err)
}

// Tile repeats a along each axis.
func (s *Scope) Tile(a *Array, reps ...int) *Array {
	if !s.ok("tile", a) {
		return nil
	}
	h, err := libTile(a.h, reps)
	return s.result("tile", h, err)
}

// Arange is [start, stop) in steps of step.
func (s *Scope) Arange(start, stop, step float64, dt Dtype) *Array {
	if !s.ok("arange") {
		return nil
	}
	h, err := libArange(start, stop, step, dt)
	return s.result("arange", h, err)
}

// Full makes an array of shape filled with v.
func (s *Scope) Full(v float64, dt Dtype, shape ...int) *Array {
	if !s.ok("full") {
		return nil
	}
	sc, err := libScalar(v, dt)
	if err != nil {
		s.failf("full", err)
		return nil
	}
	defer libFree(sc)
	h, err := libFull(shape, sc, dt)
	return s.result("full", h, err)
}

// FullLike broadcasts the 0-d or broadcastable array v to shape.
func (s *Scope) FullArray(v *Array, shape ...int) *Array {
	if !s.ok("full", v) {
		return nil
	}
	h, err := libFull(shape, v.h, v.Dtype())
	return s.result("full", h, err)
}

func (s *Scope) Zeros(dt Dtype, shape ...int) *Array { return s.Full(0, dt, shape...) }
func (s *Scope) Ones(dt Dtype, shape ...int) *Array  { return s.Full(1, dt, shape...) }

// CumSum along axis; exclusive when !inclusive, right-to-left when reverse.
func (s *Scope) CumSum(a *Array, axis int, reverse, inclusive bool) *Array {
	if !s.ok("cumsum", a) {
		return nil
	}
	h, err := libCumsum(a.h, axis, reverse, inclusive)
	return s.result("cumsum", h, err)
}

// Tril zeroes elements above the k-th diagonal of the last two axes.
func (s *Scope) Tril(a *Array, k int) *Array {
	if !s.ok("tril", a) {
		return nil
	}
	h, err := libTri(a.h, k, false)
	return s.result("tril", h, err)
}

// Triu zeroes elements below the k-th diagonal of the last two axes.
func (s *Scope) Triu(a *Array, k int) *Array {
	if !s.ok("triu", a) {
		return nil
	}
	h, err := libTri(a.h, k, true)
	return s.result("triu", h, err)
}

// Softmax over axes (last axis if none), computed in float32 for half
// inputs (MLX's precise mode).
func (s *Scope) Softmax(a *Array, axes ...int) *Array {
	if !s.ok("softmax", a) {
		return nil
	}
	if len(axes) == 0 {
		axes = []int{-1}
	}
	h, err := libSoftmax(a.h, axes, true)
	return s.result("softmax", h, err)
}

func hOrNil(a *Array) hnd {
	if a == nil {
		return nil
	}
	return a.h
}

func (s *Scope) okOpt(op string, as ...*Array) bool {
	for i, a := range as {
		if a != nil && a.h == nil {
			s.failf(op, fmt.Errorf("optional input %d was released", i))
			return false
		}
	}
	return true
}

// LayerNorm normalizes over the last axis; weight and bias may be nil.
func (s *Scope) LayerNorm(x, weight, bias *Array, eps float32) *Array {
	if !s.ok("layer_norm", x) || !s.okOpt("layer_norm", weight, bias) {
		return nil
	}
	h, err := libLayerNorm(x.h, hOrNil(weight), hOrNil(bias), eps)
	return s.result("layer_norm", h, err)
}

// RMSNorm normalizes over the last axis; weight may be nil.
func (s *Scope) RMSNorm(x, weight *Array, eps float32) *Array {
	if !s.ok("rms_norm", x) || !s.okOpt("rms_norm", weight) {
		return nil
	}
	h, err := libRMSNorm(x.h, hOrNil(weight), eps)
	return s.result("rms_norm", h, err)
}

// ScaledDotProductAttention is softmax(scale·q·kᵀ + mask)·v for rank-4
// [B, H, L, D] inputs; mask (nil for none) is additive (float) or boolean
// (false = masked out) and broadcasts to [B, H, Lq, Lk]. k/v may have fewer
// heads than q (grouped-query attention).
func (s *Scope) ScaledDotProductAttention(q, k, v *Array, scale float32, mask *Array) *Array {
	if !s.ok("scaled_dot_product_attention", q, k, v) || !s.okOpt("scaled_dot_product_attention", mask) {
		return nil
	}
	h, err := libSDPA(q.h, k.h, v.h, scale, hOrNil(mask))
	return s.result("scaled_dot_product_attention", h, err)
}
