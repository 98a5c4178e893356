package codegen

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/mlx"
	"github.com/of3c/of3c/internal/shapes"
)

func init() {
	register(lowerMatMul, "MatMul")
	register(lowerGemm, "Gemm")
	register(lowerEinsum, "Einsum")
	for _, op := range []string{"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd",
		"ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"} {
		register(lowerReduce, op)
	}
	register(lowerArgExtremum, "ArgMax", "ArgMin")
	register(lowerSoftmax, "Softmax", "LogSoftmax")
	register(lowerCumSum, "CumSum")
	register(lowerTrilu, "Trilu")
}

// floatCompute is the MLX dtype integer matmuls are evaluated in: MLX's
// GEMM is float-only.
func (t *tracer) floatCompute() mlx.Dtype {
	if t.p.opts.Device == "gpu" {
		return mlx.Float32
	}
	return mlx.Float64
}

func (t *tracer) matmul(a, b *mlx.Array, dt graph.DType) *mlx.Array {
	s := t.s
	if dt.IsFloat() {
		return s.MatMul(a, b)
	}
	f := t.floatCompute()
	return s.AsType(s.MatMul(s.AsType(a, f), s.AsType(b, f)), t.ddt(dt))
}

func lowerMatMul(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	return t.one(t.matmul(t.arr(in[0]), t.arr(in[1]), in[0].dt), in[0].dt)
}

func lowerGemm(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	s := t.s
	dt := in[0].dt
	a, b := t.arr(in[0]), t.arr(in[1])
	if n.AttrInt("transA", 0) != 0 {
		a = s.Transpose(a, 1, 0)
	}
	if n.AttrInt("transB", 0) != 0 {
		b = s.Transpose(b, 1, 0)
	}
	y := t.matmul(a, b, dt)
	if alpha := n.AttrFloat("alpha", 1); alpha != 1 {
		y = s.Mul(y, t.scalar(float64(alpha), dt))
	}
	if len(in) > 2 && in[2] != nil {
		c := t.arr(in[2])
		if beta := n.AttrFloat("beta", 1); beta != 1 {
			c = s.Mul(c, t.scalar(float64(beta), dt))
		}
		y = s.Add(y, c)
	}
	return t.one(y, dt)
}

// explicitEinsum rewrites an ONNX equation into the explicit "in->out" form
// MLX takes: spaces removed and, for the implicit form, the output made of
// the labels that occur once, in alphabetical order, after any ellipsis.
func explicitEinsum(eq string) string {
	eq = strings.ReplaceAll(eq, " ", "")
	if strings.Contains(eq, "->") {
		return eq
	}
	count := map[rune]int{}
	for _, r := range strings.ReplaceAll(eq, "...", "") {
		if r != ',' {
			count[r]++
		}
	}
	var once []string
	for r, c := range count {
		if c == 1 {
			once = append(once, string(r))
		}
	}
	sort.Strings(once)
	out := strings.Join(once, "")
	if strings.Contains(eq, "...") {
		out = "..." + out
	}
	return eq + "->" + out
}

func lowerEinsum(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	eq := explicitEinsum(n.AttrString("equation", ""))
	ops := make([]*mlx.Array, len(in))
	dt := in[0].dt
	for i, x := range in {
		ops[i] = t.arr(x)
		if !dt.IsFloat() {
			ops[i] = t.s.AsType(ops[i], t.floatCompute())
		}
	}
	y := t.s.Einsum(eq, ops...)
	if !dt.IsFloat() {
		y = t.s.AsType(y, t.ddt(dt))
	}
	return t.one(y, dt)
}

func lowerReduce(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	s := t.s
	x := in[0]
	dt := x.dt
	keep := n.AttrInt("keepdims", 1) != 0
	// Axes: an input from opset 13 (ReduceSum) / 18 (the others), an
	// attribute before.
	var axes []int64
	var given bool
	var err error
	if len(in) > 1 && in[1] != nil {
		axes, err = t.hostInts(in[1], "axes")
		given = true
	} else {
		axes, given = n.AttrInts("axes")
	}
	if err != nil {
		return nil, err
	}
	a := t.arr(x)
	if !given || len(axes) == 0 {
		if n.AttrInt("noop_with_empty_axes", 0) != 0 {
			return t.one(a, dt)
		}
		axes = nil
		for i := 0; i < x.rank(); i++ {
			axes = append(axes, int64(i))
		}
	}
	ax, err := shapes.NormAxes(axes, x.rank())
	if err != nil {
		return nil, err
	}
	if len(ax) == 0 { // rank-0 input: every reduction is the identity here
		switch n.Op {
		case "ReduceL1":
			return t.one(s.Abs(a), dt)
		case "ReduceSumSquare":
			return t.one(s.Square(a), dt)
		case "ReduceL2":
			return t.one(s.Abs(a), dt)
		case "ReduceLogSum", "ReduceLogSumExp":
			if n.Op == "ReduceLogSum" {
				return t.one(s.Log(a), dt)
			}
		}
		return t.one(a, dt)
	}
	// A reduction over an empty axis is its identity element, which MLX
	// refuses to produce for max/min/logsumexp.
	for _, i := range ax {
		if x.shape[i] == 0 {
			return t.emptyReduce(n, x, ax, keep)
		}
	}
	// Sums of small integer or half types accumulate in MLX's own wider
	// type; results are cast back to dt by the caller.
	var y *mlx.Array
	switch n.Op {
	case "ReduceSum":
		y = s.Sum(a, keep, ax...)
	case "ReduceMean":
		y = s.Mean(a, keep, ax...)
	case "ReduceMax":
		y = s.Max(a, keep, ax...)
	case "ReduceMin":
		y = s.Min(a, keep, ax...)
	case "ReduceProd":
		y = s.Prod(a, keep, ax...)
	case "ReduceL1":
		y = s.Sum(s.Abs(a), keep, ax...)
	case "ReduceL2":
		y = s.Sqrt(s.Sum(s.Square(a), keep, ax...))
	case "ReduceLogSum":
		y = s.Log(s.Sum(a, keep, ax...))
	case "ReduceLogSumExp":
		y = s.LogSumExp(a, keep, ax...)
	case "ReduceSumSquare":
		y = s.Sum(s.Square(a), keep, ax...)
	default:
		return nil, fmt.Errorf("unknown reduction")
	}
	return t.one(y, dt)
}

func lowerArgExtremum(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	s := t.s
	x := in[0]
	axis, err := shapes.NormAxis(n.AttrInt("axis", 0), x.rank())
	if err != nil {
		return nil, err
	}
	keep := n.AttrInt("keepdims", 1) != 0
	a := t.arr(x)
	last := n.AttrInt("select_last_index", 0) != 0
	if last {
		// Reverse the axis, take the first extremum, map the index back.
		d := int(x.shape[axis])
		start := make([]int, x.rank())
		stop := intsOf(x.shape)
		stride := ones(x.rank())
		start[axis], stop[axis], stride[axis] = d-1, -d-1, -1
		a = s.Slice(a, start, stop, stride)
	}
	var y *mlx.Array
	if n.Op == "ArgMax" {
		y = s.ArgMax(a, axis, keep)
	} else {
		y = s.ArgMin(a, axis, keep)
	}
	y = s.AsType(y, mlx.Int64)
	if last {
		y = s.Sub(s.Scalar(float64(x.shape[axis]-1), mlx.Int64), y)
	}
	return t.one(y, graph.Int64)
}

func ones(n int) []int {
	r := make([]int, n)
	for i := range r {
		r[i] = 1
	}
	return r
}

func lowerSoftmax(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	s := t.s
	x := in[0]
	r := x.rank()
	a := t.arr(x)
	old := n.Opset > 0 && n.Opset < 13
	def := int64(-1)
	if old {
		def = 1
	}
	axis, err := shapes.NormAxis(n.AttrInt("axis", def), max(r, 1))
	if err != nil {
		return nil, err
	}
	shape := intsOf(x.shape)
	if old {
		// Before opset 13 the input is viewed as 2-D [prod(:axis), prod(axis:)].
		p, q := 1, 1
		for i, d := range shape {
			if i < axis {
				p *= d
			} else {
				q *= d
			}
		}
		a = s.Reshape(a, p, q)
		axis = 1
	}
	var y *mlx.Array
	if n.Op == "Softmax" {
		y = s.Softmax(a, axis)
	} else {
		// x − logsumexp(x) in f32 for half inputs, like precise softmax.
		orig := a.Dtype()
		if orig == mlx.Float16 || orig == mlx.BFloat16 {
			a = s.AsType(a, mlx.Float32)
		}
		y = s.Sub(a, s.LogSumExp(a, true, axis))
		if y != nil && y.Dtype() != orig {
			y = s.AsType(y, orig)
		}
	}
	if old {
		y = s.Reshape(y, shape...)
	}
	return t.one(y, x.dt)
}

func lowerCumSum(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	ax, err := t.hostInts(in[1], "axis")
	if err != nil {
		return nil, err
	}
	if len(ax) != 1 {
		return nil, fmt.Errorf("axis must be a scalar")
	}
	axis, err := shapes.NormAxis(ax[0], in[0].rank())
	if err != nil {
		return nil, err
	}
	y := t.s.CumSum(t.arr(in[0]), axis, n.AttrInt("reverse", 0) != 0, n.AttrInt("exclusive", 0) == 0)
	return t.one(y, in[0].dt)
}

func lowerTrilu(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	k := int64(0)
	if len(in) > 1 && in[1] != nil {
		v, err := t.hostInts(in[1], "k")
		if err != nil {
			return nil, err
		}
		if len(v) != 1 {
			return nil, fmt.Errorf("k must be a scalar")
		}
		k = v[0]
	}
	a := t.arr(in[0])
	if n.AttrInt("upper", 1) != 0 {
		return t.one(t.s.Triu(a, int(k)), in[0].dt)
	}
	return t.one(t.s.Tril(a, int(k)), in[0].dt)
}

// emptyReduce fills the reduced shape with the reduction's identity.
func (t *tracer) emptyReduce(n *graph.Node, x *val, ax []int, keep bool) ([]*val, error) {
	red := map[int]bool{}
	for _, a := range ax {
		red[a] = true
	}
	var shape []int
	for i, d := range x.shape {
		switch {
		case !red[i]:
			shape = append(shape, int(d))
		case keep:
			shape = append(shape, 1)
		}
	}
	v := 0.0
	switch n.Op {
	case "ReduceProd":
		v = 1
	case "ReduceMax", "ReduceLogSum", "ReduceLogSumExp":
		v = math.Inf(-1)
	case "ReduceMin":
		v = math.Inf(1)
	case "ReduceMean":
		v = math.NaN()
	}
	dt := x.dt
	if !dt.IsFloat() && math.IsInf(v, 0) {
		// Integer max/min of nothing: the type's extreme values.
		lim := map[bool]float64{true: -math.MaxInt64, false: math.MaxInt64}
		v = lim[v < 0]
	}
	return t.one(t.s.Full(v, t.ddt(dt), shape...), dt)
}
