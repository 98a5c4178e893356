package codegen

import (
	"fmt"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/mlx"
	"github.com/of3c/of3c/runtime/ref"
)

// lowerFn emits the MLX ops of one node. in[i] is nil for an omitted
// optional input. It returns one val per node output (nil for outputs it
// does not produce; only allowed where the output is omitted or unused).
type lowerFn func(t *tracer, n *graph.Node, in []*val) ([]*val, error)

// lowerings maps qualified op names to their lowering; filled by the
// init functions of lower_*.go.
var lowerings = map[string]lowerFn{}

func register(f lowerFn, ops ...string) {
	for _, op := range ops {
		if _, dup := lowerings[op]; dup {
			panic("codegen: lowering registered twice: " + op)
		}
		lowerings[op] = f
	}
}

// tracer is the state of one trace of the graph.
type tracer struct {
	s *mlx.Scope
	p *Program
	n *graph.Node // the node being lowered, for error messages
	// profile, when set, is called after each node (Program.Profile).
	profile func(n *graph.Node, outs []*val)
}

// hostFoldLimit bounds the element count of the inputs (and the result) of a
// node evaluated on the Go side: shape arithmetic is tiny, and anything
// larger belongs on the device.
const hostFoldLimit = 1 << 14

// scalarFoldLimit is the input element count up to which float nodes are
// folded on the host too.
const scalarFoldLimit = 8

// trace is the body of the MLX function: it builds the graph for the
// concrete shapes of in (graph inputs, then the weights).
// known[i], when non-nil, holds the values of graph input i (see
// specializeLimit).
func (p *Program) trace(s *mlx.Scope, in []*mlx.Array, known []*graph.Tensor) ([]*mlx.Array, error) {
	g := p.g
	if len(in) != len(g.Inputs)+len(p.weights) {
		return nil, fmt.Errorf("traced function got %d arguments, want %d", len(in), len(g.Inputs)+len(p.weights))
	}
	return p.traceWith(&tracer{s: s, p: p}, in, known)
}

func (p *Program) traceWith(t *tracer, in []*mlx.Array, known []*graph.Tensor) ([]*mlx.Array, error) {
	g, s := p.g, t.s
	env := make(map[*graph.Value]*val, len(g.Nodes)*2)
	for i, v := range g.Inputs {
		a := in[i]
		if want := p.devDType(v.Type.DType); a.Dtype() != t.mdt(want) {
			a = s.AsType(a, t.mdt(want))
		}
		env[v] = &val{a: a, dt: v.Type.DType, shape: int64sOf(in[i].Shape())}
		if i < len(known) && known[i] != nil {
			env[v].host = known[i]
		}
	}
	for j, w := range p.weights {
		env[w] = &val{a: in[len(g.Inputs)+j], host: w.Const, dt: w.Const.DType, shape: w.Const.Shape}
	}
	if err := p.traceNodes(t, env, g.Nodes); err != nil {
		return nil, err
	}
	return p.traceOutputs(t, env, nil)
}

// lookupVal is the val of v in env; constants not there yet (inline ones)
// are made host values on first use.
func lookupVal(env map[*graph.Value]*val, v *graph.Value) (*val, error) {
	if x, ok := env[v]; ok {
		return x, nil
	}
	if v.Const != nil {
		x := hostVal(v.Const)
		env[v] = x
		return x, nil
	}
	return nil, fmt.Errorf("value %q is read before it is defined", v.Name)
}

// traceNodes lowers nodes in order, reading and defining values in env.
func (p *Program) traceNodes(t *tracer, env map[*graph.Value]*val, nodes []*graph.Node) error {
	s := t.s
	lookup := func(v *graph.Value) (*val, error) { return lookupVal(env, v) }
	for _, n := range nodes {
		t.n = n
		ins := make([]*val, len(n.Inputs))
		for k, v := range n.Inputs {
			if v == nil {
				continue
			}
			x, err := lookup(v)
			if err != nil {
				return fmt.Errorf("node %q (%s): %w", nodeName(n), n.QualifiedOp(), err)
			}
			ins[k] = x
		}
		outs, err := t.lowerNode(n, ins)
		if err == nil {
			err = s.Err()
		}
		if err != nil {
			return fmt.Errorf("node %q (%s): %w", nodeName(n), n.QualifiedOp(), err)
		}
		for k, o := range n.Outputs {
			if o != nil && k < len(outs) && outs[k] != nil {
				env[o] = outs[k]
			}
		}
		if t.profile != nil {
			t.profile(n, outs)
		}
	}
	return nil
}

// traceOutputs returns the graph outputs from env in their declared
// dtypes. An output that would be one of the arrays in args (a traced
// function's own inputs) is copied, so it is a fresh node.
func (p *Program) traceOutputs(t *tracer, env map[*graph.Value]*val, args []*mlx.Array) ([]*mlx.Array, error) {
	g, s := p.g, t.s
	res := make([]*mlx.Array, len(g.Outputs))
	for i, o := range g.Outputs {
		x, err := lookupVal(env, o)
		if err != nil {
			return nil, fmt.Errorf("graph output %q: %w", o.Name, err)
		}
		a := t.arr(x)
		want := o.Type.DType
		if want == graph.Undefined {
			want = x.dt
		}
		// Outputs leave in their declared dtype (float64 on the GPU leaves
		// as float32 and is widened on the host).
		od := want
		if want == graph.Float64 && p.opts.Device == "gpu" {
			od = graph.Float32
		}
		if a != nil && a.Dtype() != t.mdt(od) {
			a = s.AsType(a, t.mdt(od))
		}
		if (x.a == nil || isArg(a, args)) && a != nil {
			// A host value (or a segment's input) returned as is; copy
			// so it is a fresh node.
			a = s.Copy(a)
		}
		res[i] = a
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	return res, nil
}

// lowerNode folds n on the host when all its inputs are host values and
// small, and otherwise emits MLX ops. Results are normalised to the dtype
// the graph declares.
func (t *tracer) lowerNode(n *graph.Node, ins []*val) ([]*val, error) {
	if outs, ok, err := t.hostFold(n, ins); ok || err != nil {
		return outs, err
	}
	f := lowerings[n.QualifiedOp()]
	if f == nil {
		return nil, fmt.Errorf("no MLX lowering")
	}
	outs, err := f(t, n, ins)
	if err != nil {
		return nil, err
	}
	for k, o := range n.Outputs {
		if o == nil || k >= len(outs) || outs[k] == nil || outs[k].a == nil {
			continue
		}
		want := o.Type.DType
		if want == graph.Undefined {
			continue
		}
		x := outs[k]
		if md := t.mdt(t.p.devDType(want)); x.a.Dtype() != md {
			x.a = t.s.AsType(x.a, md)
		}
		x.dt = want
	}
	return outs, nil
}

// foldable lists ops that may run on the host when their inputs are known:
// the integer and shape arithmetic that exporters leave around reshapes.
// Float math is left to MLX so host folding never changes numerics.
var generators = map[string]bool{"ConstantOfShape": true, "Expand": true, "Tile": true, "Range": true}

func (t *tracer) hostFold(n *graph.Node, ins []*val) ([]*val, bool, error) {
	if n.Domain != "" && n.Domain != "ai.onnx" {
		return nil, false, nil
	}
	if !ref.HasKernel(n.QualifiedOp()) {
		return nil, false, nil
	}
	var total int64
	tensors := make([]*graph.Tensor, len(ins))
	for i, x := range ins {
		if x == nil {
			continue
		}
		if x.host == nil {
			return nil, false, nil
		}
		total += x.numel()
		tensors[i] = x.host
	}
	if total > hostFoldLimit {
		return nil, false, nil
	}
	// Generators can turn a small input into a large output: only fold them
	// when the declared output is known to be small.
	if generators[n.Op] {
		for _, o := range n.Outputs {
			if o == nil || !o.Type.Ranked {
				return nil, false, nil
			}
			dims, ok := o.Type.Shape.Ints()
			if !ok {
				return nil, false, nil
			}
			c := int64(1)
			for _, d := range dims {
				c *= d
			}
			if c > hostFoldLimit {
				return nil, false, nil
			}
		}
	}
	// Float arithmetic on more than a few scalars stays on the device:
	// folding is about shapes, not numerics. Scalars are folded because
	// exporters compute shape arguments in float too (e.g. Range limits of
	// window functions); the reference rounds each result to its dtype, so
	// the values are what the device would compute, or closer.
	for _, o := range n.Outputs {
		if o != nil && o.Type.DType.IsFloat() && !shuffleOps[n.Op] && total > scalarFoldLimit {
			return nil, false, nil
		}
	}
	res, err := ref.EvalNode(n, tensors)
	if err != nil {
		// Let the device lowering report (or handle) it.
		return nil, false, nil
	}
	outs := make([]*val, len(res))
	for i, r := range res {
		if r != nil {
			if r.NumElements() > hostFoldLimit {
				return nil, false, nil
			}
			outs[i] = hostVal(r)
		}
	}
	return outs, true, nil
}

// shuffleOps move or select elements without arithmetic; folding them on
// the host gives bit-identical float results.
var shuffleOps = map[string]bool{
	"Identity": true, "Reshape": true, "Flatten": true, "Squeeze": true, "Unsqueeze": true,
	"Concat": true, "Gather": true, "Slice": true, "Transpose": true, "Constant": true,
	"Shape": true, "Size": true, "Split": true, "Expand": true, "ConstantOfShape": true,
	"Tile": true,
}

// mdt maps a graph dtype to MLX's, recording an error for unsupported ones.
func (t *tracer) mdt(dt graph.DType) mlx.Dtype {
	d, err := mlxDType(dt)
	if err != nil {
		t.s.Fail(err)
		return mlx.Float32
	}
	return d
}

// ddt is the MLX dtype a value of graph dtype dt has on the device.
func (t *tracer) ddt(dt graph.DType) mlx.Dtype { return t.mdt(t.p.devDType(dt)) }

// arr returns v as a device array in its device dtype, materialising a host
// value (once) if needed.
func (t *tracer) arr(v *val) *mlx.Array {
	if v == nil {
		t.s.Fail(fmt.Errorf("missing input"))
		return nil
	}
	if v.a == nil && v.host != nil {
		v.a = uploadTensor(t.s, v.host, t.p.devDType(v.dt), t.p.opts)
	}
	return v.a
}

// dev wraps an array as a val of graph dtype dt.
func (t *tracer) dev(a *mlx.Array, dt graph.DType) *val {
	return &val{a: a, dt: dt, shape: int64sOf(a.Shape())}
}

// one wraps a single result.
func (t *tracer) one(a *mlx.Array, dt graph.DType) ([]*val, error) {
	if err := t.s.Err(); err != nil {
		return nil, err
	}
	return []*val{t.dev(a, dt)}, nil
}

// scalar makes a 0-d array of the device dtype of graph dtype dt.
func (t *tracer) scalar(x float64, dt graph.DType) *mlx.Array {
	if t.p.opts.Precision == "fp16" && t.p.devDType(dt) == graph.Float16 {
		if x > f16Max {
			x = f16Max
		} else if x < -f16Max {
			x = -f16Max
		}
	}
	return t.s.Scalar(x, t.ddt(dt))
}

// hostInts returns the contents of an integer value that must be known at
// trace time (a shape, axes, pads ...).
func (t *tracer) hostInts(v *val, what string) ([]int64, error) {
	if v == nil {
		return nil, fmt.Errorf("%s is missing", what)
	}
	if v.host == nil {
		return nil, fmt.Errorf("%s must be known when the graph is compiled (it is computed from tensor data; MLX graphs have static shapes)", what)
	}
	return v.host.Int64s()
}

// hostFloats returns the contents of a value known at trace time.
func (t *tracer) hostFloats(v *val, what string) ([]float64, error) {
	if v == nil {
		return nil, fmt.Errorf("%s is missing", what)
	}
	if v.host == nil {
		return nil, fmt.Errorf("%s must be known when the graph is compiled", what)
	}
	return v.host.Float64s()
}

// optInts returns an optional host int input, or the attribute, or nil.
func (t *tracer) axesOf(n *graph.Node, in []*val, idx int, attr string) ([]int64, bool, error) {
	if idx >= 0 && idx < len(in) && in[idx] != nil {
		v, err := t.hostInts(in[idx], attr)
		return v, true, err
	}
	if a, ok := n.AttrInts(attr); ok {
		return a, true, nil
	}
	return nil, false, nil
}
