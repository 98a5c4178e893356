// Package ref is of3c's reference executor: a plain, single-threaded Go
// interpreter of the IR. It is the oracle that optimization passes and the
// MLX lowering are checked against, the kernel set passes use for constant
// folding, and the `--device ref` fallback.
//
// Numerics: float math is done in float64 and every result is rounded to the
// dtype the op declares (so a float32 graph sees float32 intermediates, as on
// any real backend); integer results wrap to their width; bools are 0/1.
// Kernels never panic on bad input: shape, arity and index errors come back
// as errors naming the node. An op without a kernel, or a feature of one the
// executor lacks (random training-mode Dropout, string casts), is a
// *graph.UnsupportedOpError.
//
// Every op registered in package graph has a kernel here (a test keeps the
// two sets equal), including of3c's fused ops — of3c.Attention with its
// batch/query chunks and LMA, of3c.SwiGLU with row chunks, as docs/ops.md
// specifies them — and ONNX Attention-23. Run, RunWith and EvalNode keep no
// shared state and are safe for concurrent use.
package ref

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/shapes"
)

// array is the executor's working form of a tensor. Float dtypes keep their
// elements in f, integer and bool dtypes in i (uint64 as its bit pattern), so
// kernels do arithmetic without re-decoding bytes for every op.
type array struct {
	dt    graph.DType
	shape []int64
	f     []float64
	i     []int64
}

// kernel evaluates one node. in[k] is nil for an omitted optional input. It
// returns at least as many outputs as the node has (extra ones are dropped).
type kernel func(n *graph.Node, in []*array) ([]*array, error)

var kernels = map[string]kernel{}

// register adds kernels under qualified op names ("MatMul", "of3c.Attention").
func register(k kernel, ops ...string) {
	for _, op := range ops {
		if _, dup := kernels[op]; dup {
			panic("ref: kernel registered twice: " + op)
		}
		kernels[op] = k
	}
}

// Ops lists the qualified op names that have a reference kernel, sorted.
func Ops() []string {
	names := make([]string, 0, len(kernels))
	for k := range kernels {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// HasKernel reports whether the qualified op (as Node.QualifiedOp) has a kernel.
func HasKernel(qualifiedOp string) bool { return kernels[qualifiedOp] != nil }

// Run executes g on the given inputs (by graph input name) and returns every
// graph output by name. Inputs must match the declared dtypes and ranks, and
// static or symbolic dims consistently. Intermediates are released after
// their last use. Every node's results are checked against the types shape
// inference recorded (see Options.NoTypeCheck).
func Run(g *graph.Graph, inputs map[string]*graph.Tensor) (map[string]*graph.Tensor, error) {
	return RunWith(g, inputs, Options{})
}

// Options adjust RunWith.
type Options struct {
	// Observe, when non-nil, is called after every node with its outputs
	// (nil where the node omits one), e.g. to dump intermediates or bisect a
	// divergence between backends. An error from it stops the run.
	Observe func(n *graph.Node, outputs []*graph.Tensor) error

	// NoTypeCheck skips comparing each result with its value's declared type.
	// By default a result must have the declared dtype, rank and static dims,
	// and every symbolic dim must have one size throughout the run (equal
	// symbols denote equal sizes), binding graph inputs' symbols first: a
	// mismatch means shape inference and execution disagree, which a compiled
	// backend with static shapes would get wrong silently.
	NoTypeCheck bool

	// Stats, when non-nil, receives measurements of the run.
	Stats *Stats
}

// Stats describe one run.
type Stats struct {
	// PeakBytes is the largest total size of live graph inputs and node
	// results (in their dtypes; constants and kernels' internal scratch not
	// counted), taken while each node's inputs and outputs are both alive.
	// It is the measured counterpart of the memory planner's estimate.
	PeakBytes int64
	// PeakNode is the node at which PeakBytes was reached.
	PeakNode string
	// Nodes is the number of nodes executed.
	Nodes int
}

// RunWith is Run with options.
func RunWith(g *graph.Graph, inputs map[string]*graph.Tensor, opts Options) (map[string]*graph.Tensor, error) {
	if g == nil {
		return nil, errors.New("ref: nil graph")
	}
	env := make(map[*graph.Value]*array, len(g.Inputs)+len(g.Nodes))
	// live is the byte size of the non-constant values in env.
	var live int64
	release := func(v *graph.Value) {
		if a, ok := env[v]; ok {
			if v.Const == nil {
				live -= a.bytes()
			}
			delete(env, v)
		}
	}
	known := map[string]bool{}
	syms := map[string]int64{}
	for _, v := range g.Inputs {
		known[v.Name] = true
		t, ok := inputs[v.Name]
		if !ok || t == nil {
			return nil, fmt.Errorf("ref: missing graph input %q (%s)", v.Name, v.Type)
		}
		if err := checkInput(v, t, syms); err != nil {
			return nil, err
		}
		a, err := fromTensor(t)
		if err != nil {
			return nil, fmt.Errorf("ref: graph input %q: %w", v.Name, err)
		}
		env[v] = a
		live += a.bytes()
	}
	for name := range inputs {
		if !known[name] {
			return nil, fmt.Errorf("ref: %q is not a graph input", name)
		}
	}

	// lastUse[v] is the index of the last node reading v; values that are
	// graph outputs are never released.
	lastUse := map[*graph.Value]int{}
	for i, n := range g.Nodes {
		for _, in := range n.Inputs {
			if in != nil {
				lastUse[in] = i
			}
		}
	}
	for _, o := range g.Outputs {
		lastUse[o] = len(g.Nodes)
	}

	// lookup finds an input's array; constants are decoded on first use.
	lookup := func(v *graph.Value) (*array, error) {
		if a, ok := env[v]; ok {
			return a, nil
		}
		if v.Const != nil {
			a, err := fromTensor(v.Const)
			if err != nil {
				return nil, fmt.Errorf("constant %q: %w", v.Name, err)
			}
			env[v] = a
			return a, nil
		}
		return nil, fmt.Errorf("value %q is read before it is defined", v.Name)
	}

	for i, n := range g.Nodes {
		ins := make([]*array, len(n.Inputs))
		for k, v := range n.Inputs {
			if v == nil {
				continue
			}
			a, err := lookup(v)
			if err != nil {
				return nil, fmt.Errorf("ref: node %s: %w", n, err)
			}
			ins[k] = a
		}
		outs, err := evalArrays(n, ins)
		if err != nil {
			return nil, err
		}
		for k, o := range n.Outputs {
			if o == nil {
				continue
			}
			if !opts.NoTypeCheck {
				if err := checkResult(o, outs[k], syms); err != nil {
					return nil, fmt.Errorf("ref: node %s: %w", n, err)
				}
			}
			if _, dup := env[o]; !dup {
				live += outs[k].bytes()
			}
			env[o] = outs[k]
		}
		if opts.Stats != nil {
			opts.Stats.Nodes++
			if live > opts.Stats.PeakBytes {
				opts.Stats.PeakBytes, opts.Stats.PeakNode = live, n.String()
			}
		}
		if opts.Observe != nil {
			ts := make([]*graph.Tensor, len(n.Outputs))
			for k, o := range n.Outputs {
				if o != nil {
					ts[k] = outs[k].toTensor()
				}
			}
			if err := opts.Observe(n, ts); err != nil {
				return nil, err
			}
		}
		for _, v := range n.Inputs {
			if v != nil && lastUse[v] == i {
				release(v)
			}
		}
		// Outputs nobody reads are dropped at once.
		for _, o := range n.Outputs {
			if _, used := lastUse[o]; o != nil && !used {
				release(o)
			}
		}
	}

	res := make(map[string]*graph.Tensor, len(g.Outputs))
	for _, o := range g.Outputs {
		a, err := lookup(o)
		if err != nil {
			return nil, fmt.Errorf("ref: graph output: %w", err)
		}
		res[o.Name] = a.toTensor()
	}
	return res, nil
}

// checkInput compares a supplied tensor with the graph input's declared type.
func checkInput(v *graph.Value, t *graph.Tensor, syms map[string]int64) error {
	if err := t.Validate(); err != nil {
		return fmt.Errorf("ref: graph input %q: %w", v.Name, err)
	}
	if v.Type.DType != graph.Undefined && v.Type.DType != t.DType {
		return fmt.Errorf("ref: graph input %q: got %s, want %s", v.Name, t.DType, v.Type)
	}
	if !v.Type.Ranked {
		return nil
	}
	if len(v.Type.Shape) != len(t.Shape) {
		return fmt.Errorf("ref: graph input %q: got shape %v, want %s", v.Name, t.Shape, v.Type)
	}
	for k, d := range v.Type.Shape {
		switch {
		case d.IsStatic() && d.Val != t.Shape[k]:
			return fmt.Errorf("ref: graph input %q: dim %d is %d, want %s", v.Name, k, t.Shape[k], v.Type)
		case d.IsSymbolic():
			if prev, ok := syms[d.Sym]; ok && prev != t.Shape[k] {
				return fmt.Errorf("ref: graph input %q: dim %d (%s) is %d, but %s = %d elsewhere", v.Name, k, d.Sym, t.Shape[k], d.Sym, prev)
			}
			syms[d.Sym] = t.Shape[k]
		}
	}
	return nil
}

// checkResult compares a computed array with its value's declared type.
func checkResult(v *graph.Value, a *array, syms map[string]int64) error {
	t := v.Type
	if t.DType != graph.Undefined && t.DType != a.dt {
		return fmt.Errorf("output %q is %s, its declared type is %s", v.Name, a.dt, t)
	}
	if !t.Ranked {
		return nil
	}
	if len(t.Shape) != len(a.shape) {
		return fmt.Errorf("output %q has shape %v, its declared type is %s", v.Name, a.shape, t)
	}
	for k, d := range t.Shape {
		switch {
		case d.IsStatic() && d.Val != a.shape[k]:
			return fmt.Errorf("output %q has shape %v, its declared type is %s", v.Name, a.shape, t)
		case d.IsSymbolic():
			if prev, ok := syms[d.Sym]; ok && prev != a.shape[k] {
				return fmt.Errorf("output %q has shape %v, its declared type is %s, but %s = %d elsewhere", v.Name, a.shape, t, d.Sym, prev)
			}
			syms[d.Sym] = a.shape[k]
		}
	}
	return nil
}

// EvalNode evaluates one node on constant inputs (nil for an omitted optional
// input) and returns one tensor per node output, nil where the node omits an
// output. Passes use it for constant folding.
func EvalNode(n *graph.Node, inputs []*graph.Tensor) ([]*graph.Tensor, error) {
	if n == nil {
		return nil, errors.New("ref: nil node")
	}
	ins := make([]*array, len(inputs))
	for k, t := range inputs {
		if t == nil {
			continue
		}
		a, err := fromTensor(t)
		if err != nil {
			return nil, fmt.Errorf("ref: node %s input %d: %w", n, k, err)
		}
		ins[k] = a
	}
	outs, err := evalArrays(n, ins)
	if err != nil {
		return nil, err
	}
	res := make([]*graph.Tensor, len(n.Outputs))
	for k, o := range n.Outputs {
		if o != nil {
			res[k] = outs[k].toTensor()
		}
	}
	return res, nil
}

// evalArrays dispatches one node and normalizes its results.
func evalArrays(n *graph.Node, ins []*array) (outs []*array, err error) {
	k := kernels[n.QualifiedOp()]
	if k == nil {
		return nil, &graph.UnsupportedOpError{Domain: n.Domain, Op: n.Op, Opset: n.Opset, Node: n.Name,
			Reason: "no reference kernel"}
	}
	outs, err = k(n, ins)
	if err != nil {
		var uerr *graph.UnsupportedOpError
		if errors.As(err, &uerr) {
			return nil, err
		}
		return nil, fmt.Errorf("ref: node %s: %w", n, err)
	}
	if len(outs) < len(n.Outputs) {
		return nil, fmt.Errorf("ref: node %s: kernel gave %d outputs, node has %d", n, len(outs), len(n.Outputs))
	}
	for k, o := range n.Outputs {
		if o == nil {
			continue
		}
		if outs[k] == nil {
			return nil, fmt.Errorf("ref: node %s: output %d was not computed", n, k)
		}
		outs[k].normalize()
	}
	return outs, nil
}

// unsupported reports a feature of a known op that the executor lacks.
func unsupported(n *graph.Node, format string, args ...any) error {
	return &graph.UnsupportedOpError{Domain: n.Domain, Op: n.Op, Opset: n.Opset, Node: n.Name,
		Reason: fmt.Sprintf(format, args...)}
}

// ---- conversion between graph.Tensor and array ----

func isFloat(dt graph.DType) bool { return dt.IsFloat() }

func isUnsigned(dt graph.DType) bool {
	return dt == graph.Uint8 || dt == graph.Uint16 || dt == graph.Uint32 || dt == graph.Uint64
}

// numeric reports whether the executor can hold dt.
func numeric(dt graph.DType) bool { return dt.IsFloat() || dt.IsInt() || dt == graph.Bool }

func fromTensor(t *graph.Tensor) (*array, error) {
	if !numeric(t.DType) {
		return nil, fmt.Errorf("dtype %s is not supported by the reference executor", t.DType)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	a := &array{dt: t.DType, shape: append([]int64{}, t.Shape...)}
	var err error
	if isFloat(t.DType) {
		a.f, err = t.Float64s()
	} else {
		a.i, err = t.Int64s()
		if t.DType == graph.Bool {
			for k, v := range a.i {
				if v != 0 {
					a.i[k] = 1
				}
			}
		}
	}
	if err != nil {
		return nil, err
	}
	return a, nil
}

func (a *array) toTensor() *graph.Tensor {
	if isFloat(a.dt) {
		t, err := graph.NewTensorFromFloat64s(a.dt, a.shape, a.f)
		if err != nil {
			// Every float dtype is encodable; reaching here is a bug in this package.
			panic("ref: " + err.Error())
		}
		return t
	}
	sz := a.dt.Size()
	b := make([]byte, sz*len(a.i))
	for k, v := range a.i {
		u := uint64(v)
		for j := 0; j < sz; j++ {
			b[sz*k+j] = byte(u >> (8 * j))
		}
	}
	return &graph.Tensor{DType: a.dt, Shape: append([]int64{}, a.shape...), Data: b}
}

// normalize rounds floats to their dtype's precision and wraps integers to
// their width, so every stored value is exactly representable in a.dt.
func (a *array) normalize() {
	switch a.dt {
	case graph.Float32:
		for k, v := range a.f {
			a.f[k] = float64(float32(v))
		}
	case graph.Float16:
		for k, v := range a.f {
			a.f[k] = roundFloat(v, 11, -14, 65504)
		}
	case graph.BFloat16:
		for k, v := range a.f {
			a.f[k] = roundFloat(v, 8, -126, maxBF16)
		}
	case graph.Bool:
		for k, v := range a.i {
			if v != 0 {
				a.i[k] = 1
			}
		}
	default:
		for k, v := range a.i {
			a.i[k] = wrapInt(a.dt, v)
		}
	}
}

// maxBF16 is the largest finite bfloat16, (2 − 2⁻⁷)·2¹²⁷.
var maxBF16 = math.Ldexp(2-1.0/128, 127)

// roundFloat rounds v to the nearest value (ties to even) of a binary format
// with the given significand bits (implicit bit included), minimum normal
// exponent and largest finite value; beyond that it overflows to ±Inf. Going
// straight from float64 avoids the double rounding of a float32 detour.
func roundFloat(v float64, bits int, minExp int, maxFinite float64) float64 {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return v
	}
	_, exp := math.Frexp(v) // |v| in [2^(exp-1), 2^exp)
	e := max(exp-1, minExp) // subnormals share the smallest normal's spacing
	ulp := math.Ldexp(1, e-(bits-1))
	r := math.RoundToEven(v/ulp) * ulp
	if math.Abs(r) > maxFinite {
		return math.Copysign(math.Inf(1), v)
	}
	return r
}

func wrapInt(dt graph.DType, v int64) int64 {
	switch dt {
	case graph.Int8:
		return int64(int8(v))
	case graph.Uint8:
		return int64(uint8(v))
	case graph.Int16:
		return int64(int16(v))
	case graph.Uint16:
		return int64(uint16(v))
	case graph.Int32:
		return int64(int32(v))
	case graph.Uint32:
		return int64(uint32(v))
	}
	return v
}

// ---- constructors and accessors ----

// maxElements bounds any tensor a kernel allocates, so absurd shapes from a
// malformed graph give an error instead of exhausting memory.
const maxElements = 1 << 31

func checkShape(shape []int64) error {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return fmt.Errorf("negative dimension in shape %v", shape)
		}
		if d > 0 && n > maxElements/d {
			return fmt.Errorf("shape %v has too many elements", shape)
		}
		n *= d
	}
	return nil
}

// newArray allocates a zero array of dtype dt; the shape must already be
// checked with checkShape.
func newArray(dt graph.DType, shape []int64) *array {
	a := &array{dt: dt, shape: append([]int64{}, shape...)}
	n := shapes.Prod(shape)
	if isFloat(dt) {
		a.f = make([]float64, n)
	} else {
		a.i = make([]int64, n)
	}
	return a
}

func allocArray(dt graph.DType, shape []int64) (*array, error) {
	if err := checkShape(shape); err != nil {
		return nil, err
	}
	return newArray(dt, shape), nil
}

func (a *array) size() int {
	if isFloat(a.dt) {
		return len(a.f)
	}
	return len(a.i)
}

func (a *array) rank() int { return len(a.shape) }

// bytes is the array's size in its dtype (not in the float64/int64 it is
// held in here).
func (a *array) bytes() int64 { return int64(a.size()) * int64(a.dt.Size()) }

// float returns element k as float64 (unsigned 64-bit read as unsigned).
func (a *array) float(k int) float64 {
	if isFloat(a.dt) {
		return a.f[k]
	}
	if a.dt == graph.Uint64 {
		return float64(uint64(a.i[k]))
	}
	return float64(a.i[k])
}

// floats returns all elements as float64 (a copy only for integer arrays).
func (a *array) floats() []float64 {
	if isFloat(a.dt) {
		return a.f
	}
	out := make([]float64, len(a.i))
	for k := range a.i {
		out[k] = a.float(k)
	}
	return out
}

// ints returns the elements of an integer array, truncating floats toward zero.
func (a *array) ints() []int64 {
	if !isFloat(a.dt) {
		return a.i
	}
	out := make([]int64, len(a.f))
	for k, v := range a.f {
		out[k] = floatToInt(v)
	}
	return out
}

// floatToInt truncates toward zero; NaN gives 0 and out-of-range values
// saturate, so results never depend on the platform's conversion.
func floatToInt(v float64) int64 {
	switch {
	case math.IsNaN(v):
		return 0
	case v >= 9.223372036854775807e18:
		return math.MaxInt64
	case v <= -9.223372036854775808e18:
		return math.MinInt64
	}
	return int64(v)
}

// set stores a float64 into element k (truncated for integer arrays).
func (a *array) set(k int, v float64) {
	if isFloat(a.dt) {
		a.f[k] = v
		return
	}
	switch {
	case a.dt == graph.Bool:
		if v != 0 {
			a.i[k] = 1
		} else {
			a.i[k] = 0
		}
	case a.dt == graph.Uint64 && v >= 9.223372036854775807e18:
		if v >= 1.8446744073709551615e19 {
			a.i[k] = -1
		} else {
			a.i[k] = int64(uint64(v))
		}
	default:
		a.i[k] = floatToInt(v)
	}
}

// copyElem copies element j of src into element k of dst (same dtype class).
func copyElem(dst *array, k int, src *array, j int) {
	if isFloat(dst.dt) {
		dst.f[k] = src.f[j]
	} else {
		dst.i[k] = src.i[j]
	}
}

// scalarInt reads a one-element integer (or float) tensor input.
func scalarInt(a *array, what string) (int64, error) {
	if a == nil {
		return 0, fmt.Errorf("missing %s", what)
	}
	if a.size() != 1 {
		return 0, fmt.Errorf("%s must have one element, has shape %v", what, a.shape)
	}
	return a.ints()[0], nil
}

// intList reads a 1-D (or scalar) integer input such as shape or axes.
func intList(a *array, what string) ([]int64, error) {
	if a == nil {
		return nil, fmt.Errorf("missing %s", what)
	}
	if a.rank() > 1 {
		return nil, fmt.Errorf("%s must be 1-D, has shape %v", what, a.shape)
	}
	if isFloat(a.dt) {
		return nil, fmt.Errorf("%s must be an integer tensor, is %s", what, a.dt)
	}
	return append([]int64{}, a.i...), nil
}

// need returns input k or an error if it is missing.
func need(n *graph.Node, in []*array, k int) (*array, error) {
	if k >= len(in) || in[k] == nil {
		return nil, fmt.Errorf("%s needs input %d", n.QualifiedOp(), k)
	}
	return in[k], nil
}

// opt returns input k or nil when absent.
func opt(in []*array, k int) *array {
	if k >= len(in) {
		return nil
	}
	return in[k]
}

// strides returns row-major element strides.
func strides(shape []int64) []int64 {
	s := make([]int64, len(shape))
	acc := int64(1)
	for k := len(shape) - 1; k >= 0; k-- {
		s[k] = acc
		acc *= shape[k]
	}
	return s
}

// splitAt returns the element counts before axis, of axis and after axis.
func splitAt(shape []int64, axis int) (outer, mid, inner int) {
	outer, inner = 1, 1
	for k := 0; k < axis; k++ {
		outer *= int(shape[k])
	}
	for k := axis + 1; k < len(shape); k++ {
		inner *= int(shape[k])
	}
	return outer, int(shape[axis]), inner
}

// reshaped returns a view of a with another shape (data shared).
func (a *array) reshaped(shape []int64) *array {
	return &array{dt: a.dt, shape: append([]int64{}, shape...), f: a.f, i: a.i}
}

// clone copies a (data included).
func (a *array) clone() *array {
	b := &array{dt: a.dt, shape: append([]int64{}, a.shape...)}
	if a.f != nil {
		b.f = append([]float64{}, a.f...)
	}
	if a.i != nil {
		b.i = append([]int64{}, a.i...)
	}
	return b
}
