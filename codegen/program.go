package codegen

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/mlx"
)

// Options select how a graph is lowered.
type Options struct {
	// Device is "cpu" (default) or "gpu".
	Device string
	// Precision is the compute dtype of float32 values: "fp32" (default),
	// "bf16" or "fp16". See the package documentation.
	Precision string
	// NoCompile runs the traced closure directly instead of through
	// mx::compile (no kernel fusion; for debugging and for measuring what
	// compile buys).
	NoCompile bool
	// NoFastKernels keeps MLX's own CPU kernels instead of internal/mlx's
	// SIMD ones (for comparison).
	NoFastKernels bool
	// Budgeted says the graph was memory-planned (under a budget, or the
	// lean GPU plan of a compile with buckets): CPU runs are then held to
	// the planner's MLX memory limit as well (GPU runs always are; see
	// memory_limit.go), and bf16/fp16 attention takes the flash kernel
	// where MLX's SDPA would write a full-size summed mask the plan does
	// not hold (paths.go).
	Budgeted bool
}

// Precisions lists the accepted Options.Precision values.
var Precisions = []string{"fp32", "bf16", "fp16"}

// Devices lists the accepted Options.Device values.
var Devices = []string{"cpu", "gpu"}

// Validate normalises defaults and rejects unknown values.
func (o *Options) Validate() error {
	if o.Device == "" {
		o.Device = "cpu"
	}
	if o.Precision == "" {
		o.Precision = "fp32"
	}
	if !contains(Devices, o.Device) {
		return fmt.Errorf("unknown device %q (want %s)", o.Device, strings.Join(Devices, "|"))
	}
	if !contains(Precisions, o.Precision) {
		return fmt.Errorf("unknown precision %q (want %s)", o.Precision, strings.Join(Precisions, "|"))
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// computeDType is the graph dtype float32 values are computed in.
func (o Options) computeDType() graph.DType {
	switch o.Precision {
	case "bf16":
		return graph.BFloat16
	case "fp16":
		return graph.Float16
	}
	return graph.Float32
}

// weightInline is the element count up to which a constant is built inside
// the traced function (it becomes a constant of the compiled graph, where
// MLX can fuse scalars into kernels). Larger constants are uploaded once and
// passed as arguments, so retracing for a new shape does not copy them.
const weightInline = 256

// Program is a graph ready to run on MLX. It is safe for concurrent use;
// calls are serialised on the MLX executor.
type Program struct {
	g    *graph.Graph
	opts Options

	// weights are the constants passed to the traced function after the
	// graph inputs, in this order; warrs are their uploaded arrays.
	weights []*graph.Value
	warrs   []*mlx.Array
	// segs splits a deep graph into separately compiled functions
	// (segment.go); nil for one function.
	segs []segment

	mu     sync.Mutex
	cache  map[string]*compiled // by input signature
	limits map[string]int64     // MLX memory limit by input signature (memory_limit.go)
	device mlx.Device
	closed bool

	lowered loweringLog // the path each fused node took (paths.go)
}

// compiled is the traced function for one input signature. Each signature
// gets its own closure, traced in the same executor task that first calls
// it: MLX's compile cache then always hits for later calls of the same
// shapes, and a closure is never asked to retrace in a later task (the
// binding currently forgets Go closures between tasks; see retrace below).
type compiled struct {
	closure *mlx.Function
	fn      *mlx.Function
	// segs and segClosures are the compiled functions and closures of a
	// segmented program, in order (fn and closure are then nil).
	segs, segClosures []*mlx.Function
	// traceErr keeps the trace's error with its type (MLX passes only the
	// message back through C++), e.g. a *graph.UnsupportedOpError.
	traceErr error
}

func (c *compiled) release() {
	if c != nil {
		c.fn.Release()
		c.closure.Release()
		for i := range c.segs {
			c.segs[i].Release()
			c.segClosures[i].Release()
		}
	}
}

// CheckLowerable reports the first node whose op has no MLX lowering.
func CheckLowerable(g *graph.Graph) error {
	var missing []string
	seen := map[string]bool{}
	for _, n := range g.Nodes {
		q := n.QualifiedOp()
		if lowerings[q] == nil && !seen[q] {
			seen[q] = true
			missing = append(missing, fmt.Sprintf("%s (node %q)", q, nodeName(n)))
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("codegen: no MLX lowering for %s", strings.Join(missing, ", "))
	}
	return nil
}

// LoweredOps lists the qualified op names codegen can lower, sorted.
func LoweredOps() []string {
	out := make([]string, 0, len(lowerings))
	for k := range lowerings {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func nodeName(n *graph.Node) string {
	if n.Name != "" {
		return n.Name
	}
	if len(n.Outputs) > 0 && n.Outputs[0] != nil {
		return n.Outputs[0].Name
	}
	return "?"
}

// NewProgram prepares g for MLX: it checks every op has a lowering, picks
// the device and uploads the weights in the compute dtype. The graph must not
// change afterwards.
func NewProgram(g *graph.Graph, opts Options) (*Program, error) {
	if g == nil {
		return nil, errors.New("codegen: nil graph")
	}
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("codegen: %w", err)
	}
	if !mlx.Available() {
		return nil, mlx.ErrUnavailable
	}
	if err := CheckLowerable(g); err != nil {
		return nil, err
	}
	for _, v := range g.Inputs {
		if !v.Type.Ranked {
			return nil, fmt.Errorf("codegen: graph input %q has unknown rank", v.Name)
		}
		if _, err := mlxDType(v.Type.DType); err != nil {
			return nil, fmt.Errorf("codegen: graph input %q: %w", v.Name, err)
		}
	}
	if opts.Device == "gpu" && opts.Precision == "fp32" && os.Getenv("MLX_ENABLE_TF32") == "" {
		// MLX's CUDA fp32 GEMM uses TF32 (10-bit mantissa) unless told
		// not to; fp32 means fp32 here (parity is 1e-4). Must be set
		// before MLX's first CUDA GEMM.
		os.Setenv("MLX_ENABLE_TF32", "0")
	}
	p := &Program{g: g, opts: opts, cache: map[string]*compiled{}}
	for _, c := range g.Consts {
		if c.Const != nil && c.Const.NumElements() > weightInline {
			p.weights = append(p.weights, c)
		}
	}
	p.segs = planSegments(g, p.weights)
	err := mlx.Do(func(s *mlx.Scope) error {
		dev, err := pickDevice(s, opts.Device)
		if err != nil {
			return err
		}
		p.device = dev
		s.SetDefaultDevice(dev)
		for _, w := range p.weights {
			a := uploadTensor(s, w.Const, p.devDType(w.Const.DType), opts)
			if err := s.Err(); err != nil {
				return fmt.Errorf("uploading weight %q: %w", w.Name, err)
			}
			s.Eval(a)
			s.Keep(a)
			p.warrs = append(p.warrs, a)
		}
		return s.Err()
	})
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("codegen: %w", err)
	}
	return p, nil
}

func pickDevice(s *mlx.Scope, name string) (mlx.Device, error) {
	want := mlx.CPU
	if name == "gpu" {
		want = mlx.GPU
	}
	var have []string
	for _, d := range s.Devices() {
		if d.Type == want {
			return d, nil
		}
		have = append(have, d.Type.String())
	}
	return mlx.Device{}, fmt.Errorf("device %s is not available in this MLX build (available: %s)", name, strings.Join(have, ", "))
}

// Graph returns the program's graph.
func (p *Program) Graph() *graph.Graph { return p.g }

// Options returns the options the program was built with.
func (p *Program) Options() Options { return p.opts }

// Close releases the compiled function and the weights.
func (p *Program) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for k, c := range p.cache {
		c.release()
		delete(p.cache, k)
	}
	for _, a := range p.warrs {
		a.Release()
	}
	p.warrs = nil
}

// devDType is the graph dtype a value of dtype dt has on the device.
func (p *Program) devDType(dt graph.DType) graph.DType { return deviceDType(p.opts, dt) }

// RunInfo describes one Run.
type RunInfo struct {
	// FirstCall is true when this input signature had not been seen, so the
	// call included tracing and MLX compilation.
	FirstCall bool
	// Upload is the time to hand the inputs to MLX and evaluate them on the
	// device, Compute the compiled call and its evaluation (the device's
	// work, inputs already resident), Download the read-back of the
	// outputs into host tensors. The first call's Compute includes tracing
	// and compilation.
	Upload, Compute, Download time.Duration
}

// specializeLimit is the element count up to which an integer or bool
// graph input is treated as known at trace time: its values join the cache
// key and the trace sees them as constants, so shape-like inputs (a window
// length, a training flag, sequence lengths) can drive shapes, as MLX's
// static graphs need. Larger inputs are ordinary data.
const specializeLimit = 16

func specialized(t *graph.Tensor) bool {
	return t != nil && (t.DType.IsInt() || t.DType == graph.Bool) && t.NumElements() <= specializeLimit
}

// Signature is the cache key of a set of inputs: dtype and shape of each
// graph input, in graph order, and the values of specialized inputs.
func (p *Program) Signature(inputs map[string]*graph.Tensor) string {
	var b strings.Builder
	for i, v := range p.g.Inputs {
		if i > 0 {
			b.WriteByte(';')
		}
		t := inputs[v.Name]
		if t == nil {
			b.WriteString("?")
			continue
		}
		fmt.Fprintf(&b, "%s%v", t.DType, t.Shape)
		if specialized(t) {
			vals, _ := t.Int64s()
			fmt.Fprintf(&b, "=%v", vals)
		}
	}
	return b.String()
}

// Run evaluates the graph. Inputs are by graph input name and must have the
// declared dtypes and ranks; outputs come back by graph output name in their
// declared dtypes.
func (p *Program) Run(inputs map[string]*graph.Tensor) (map[string]*graph.Tensor, RunInfo, error) {
	var info RunInfo
	args := make([]*graph.Tensor, len(p.g.Inputs))
	for i, v := range p.g.Inputs {
		t := inputs[v.Name]
		if t == nil {
			return nil, info, fmt.Errorf("codegen: missing input %q", v.Name)
		}
		if err := t.Validate(); err != nil {
			return nil, info, fmt.Errorf("codegen: input %q: %w", v.Name, err)
		}
		if t.DType != v.Type.DType {
			return nil, info, fmt.Errorf("codegen: input %q is %s, want %s", v.Name, t.DType, v.Type.DType)
		}
		if len(t.Shape) != len(v.Type.Shape) {
			return nil, info, fmt.Errorf("codegen: input %q has rank %d, want %d", v.Name, len(t.Shape), len(v.Type.Shape))
		}
		args[i] = t
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, info, errors.New("codegen: program is closed")
	}
	sig := p.Signature(inputs)
	entry := p.cache[sig]
	info.FirstCall = entry == nil
	outs := make(map[string]*graph.Tensor, len(p.g.Outputs))
	err := mlx.Do(func(s *mlx.Scope) error {
		s.SetDefaultDevice(p.device)
		if entry == nil {
			entry = p.newCompiled(s, args)
			if err := s.Err(); err != nil {
				return err
			}
			p.cache[sig] = entry
		}
		t0 := time.Now()
		ins := make([]*mlx.Array, 0, len(args)+len(p.warrs))
		for _, t := range args {
			ins = append(ins, uploadInput(s, t, p))
		}
		s.Eval(ins...)
		ins = append(ins, p.warrs...)
		if err := s.Err(); err != nil {
			return err
		}
		t1 := time.Now()
		info.Upload = t1.Sub(t0)
		call := func(e *compiled) []*mlx.Array {
			if p.segs != nil {
				return p.callSegments(s, e, ins)
			}
			return s.Call(e.fn, ins...)
		}
		res := call(entry)
		if err := s.Err(); err != nil && retrace(err) {
			// MLX asked an old closure to trace again (it does so for
			// graphs whose outputs are views of inputs); build a fresh one.
			s.ResetErr()
			entry.release()
			entry = p.newCompiled(s, args)
			p.cache[sig] = entry
			res = call(entry)
		}
		if err := s.Err(); err != nil {
			if entry.traceErr != nil {
				delete(p.cache, sig)
				entry.release()
				return entry.traceErr
			}
			return err
		}
		if len(res) != len(p.g.Outputs) {
			return fmt.Errorf("traced function returned %d outputs, want %d", len(res), len(p.g.Outputs))
		}
		// Drop our handles on the inputs so that MLX frees each one after
		// its last reader, as the memory planner assumes.
		s.Free(ins[:len(args)]...)
		evalLimited(s, p.runLimit(sig, args), res)
		t2 := time.Now()
		info.Compute = t2.Sub(t1)
		defer func() { info.Download = time.Since(t2) }()
		for i, o := range p.g.Outputs {
			t, err := download(s, res[i], o.Type.DType)
			if err != nil {
				return fmt.Errorf("output %q: %w", o.Name, err)
			}
			outs[o.Name] = t
		}
		return s.Err()
	})
	if err != nil {
		return nil, info, fmt.Errorf("codegen: %w", err)
	}
	return outs, info, nil
}

// newCompiled wraps the trace in a closure and (unless NoCompile) compile.
func (p *Program) newCompiled(s *mlx.Scope, args []*graph.Tensor) *compiled {
	known := make([]*graph.Tensor, len(args))
	for i, t := range args {
		if specialized(t) {
			known[i] = t
		}
	}
	c := &compiled{}
	if p.segs != nil {
		meta := map[*graph.Value]*segMeta{}
		for k := range p.segs {
			cl := s.Closure(func(s *mlx.Scope, in []*mlx.Array) ([]*mlx.Array, error) {
				out, err := p.traceSegment(&tracer{s: s, p: p}, k, in, known, meta)
				if err != nil && c.traceErr == nil {
					c.traceErr = err
				}
				return out, err
			})
			fn := cl
			if !p.opts.NoCompile {
				fn = s.Compile(cl, false)
			}
			c.segClosures = append(c.segClosures, cl)
			c.segs = append(c.segs, fn)
		}
		return c
	}
	c.closure = s.Closure(func(s *mlx.Scope, in []*mlx.Array) ([]*mlx.Array, error) {
		out, err := p.trace(s, in, known)
		if err != nil {
			c.traceErr = err
		}
		return out, err
	})
	if p.opts.NoCompile {
		c.fn = c.closure
		c.closure = nil
	} else {
		c.fn = s.Compile(c.closure, false)
	}
	return c
}

// retrace recognises the binding's error for a Go closure it no longer
// knows (internal/mlx drops closure tokens at the end of the task that made
// them).
func retrace(err error) bool { return strings.Contains(err.Error(), "closure was released") }

// uploadInput copies a host tensor to MLX in its own dtype (the traced
// function converts it to the compute dtype, where compile can fuse the
// conversion); float64 on the GPU is converted on the host because the GPU
// cannot hold it.
func uploadInput(s *mlx.Scope, t *graph.Tensor, p *Program) *mlx.Array {
	if t.DType == graph.Float64 && p.opts.Device == "gpu" {
		return uploadTensor(s, t, graph.Float32, p.opts)
	}
	dt, err := mlxDType(t.DType)
	if err != nil {
		s.Fail(err)
		return nil
	}
	return s.FromBytes(t.Data, dt, intsOf(t.Shape)...)
}

// download reads an evaluated array back as a tensor of dtype want.
func download(s *mlx.Scope, a *mlx.Array, want graph.DType) (*graph.Tensor, error) {
	got, err := graphDType(a.Dtype())
	if err != nil {
		return nil, err
	}
	t := &graph.Tensor{DType: got, Shape: int64sOf(a.Shape()), Data: s.Bytes(a)}
	if err := s.Err(); err != nil {
		return nil, err
	}
	if want == graph.Undefined || want == got {
		return t, nil
	}
	return convertTensor(t, want, false)
}
