// Package session runs a compiled model: it loads an artifact (or compiles
// an ONNX file on the fly), checks inputs against the signature, pads token
// axes up to buckets and crops the outputs back, checks the memory plan for
// the actual sizes before running, and dispatches to an executor: MLX on the
// CPU or GPU (codegen.Program) or the pure-Go reference executor.
package driver

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/of3c/of3c/artifact"
	"github.com/of3c/of3c/codegen"
	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/units"
	"github.com/of3c/of3c/runtime/ref"
)

// Devices lists the executors a session can use.
var Devices = []string{"cpu", "gpu", "ref"}

// Options control a session.
type Options struct {
	// Device is "cpu", "gpu" or "ref"; empty means the artifact's device.
	Device string
	// Buckets overrides the artifact's bucket sizes (nil keeps them; an
	// empty non-nil slice turns bucketing off).
	Buckets []int64
	// Precision applies to ONNX models compiled on the fly and overrides an
	// artifact's when set.
	Precision string
	// Of3cVersion is recorded when an ONNX model is compiled on the fly.
	Of3cVersion string
	// MemoryLimit, when > 0, replaces the machine's available memory as the
	// limit the memory check uses (tests; a budget set at compile time
	// applies as well).
	MemoryLimit int64
	// SkipMemoryCheck disables the pre-run memory check.
	SkipMemoryCheck bool
}

// Session is a loaded model ready to run. Not safe for concurrent Runs.
type Session struct {
	Graph    *graph.Graph
	Manifest *artifact.Manifest
	device   string
	buckets  []int64
	opts     Options
	prog     *codegen.Program
	types    map[string]graph.Type // declared input types by name
	shards   int                   // > 1: a sharded session (shards.go)
	// lean: a GPU graph compiled without a size to plan for is planned
	// per padded size at run time (lean.go); plans holds the recent ones.
	lean  bool
	plans []*leanPlan
}

// Open loads a .of3 artifact, or compiles a .onnx model with the default
// passes (anything else is tried as an artifact first).
func Open(path string, opts Options) (*Session, error) {
	if strings.HasSuffix(strings.ToLower(path), ".onnx") {
		g, m, err := Compile(CompileRequest{Source: path, Options: artifact.CompileOptions{
			Device: deviceForCompile(opts.Device), Precision: opts.Precision}, Buckets: opts.Buckets, Of3cVersion: opts.Of3cVersion})
		if err != nil {
			return nil, err
		}
		return New(g, m, opts)
	}
	// An artifact is read whole (its sections are checksummed): refuse
	// one larger than the memory this process may use first.
	if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() {
		if avail := AvailableMemory(); avail > 0 && st.Size() > avail {
			return nil, &MemoryError{fmt.Sprintf("%s: %s, more than the available memory %s", path, units.FormatBytes(st.Size()), units.FormatBytes(avail))}
		}
	}
	a, err := artifact.Read(path)
	if err != nil {
		return nil, err
	}
	return New(a.Graph, &a.Manifest, opts)
}

func deviceForCompile(d string) string {
	if d == "gpu" {
		return "gpu"
	}
	return "cpu"
}

// New makes a session for an optimized graph and its manifest.
func New(g *graph.Graph, m *artifact.Manifest, opts Options) (*Session, error) {
	s := &Session{Graph: g, Manifest: m, opts: opts, types: map[string]graph.Type{}}
	s.device = opts.Device
	if s.device == "" {
		s.device = m.Options.Device
	}
	if s.device == "" {
		s.device = "cpu"
	}
	if !contains(Devices, s.device) {
		return nil, fmt.Errorf("unknown device %q (want %s)", s.device, strings.Join(Devices, "|"))
	}
	s.buckets = m.Buckets
	if opts.Buckets != nil {
		b, err := NormalizeBuckets(opts.Buckets)
		if err != nil {
			return nil, err
		}
		s.buckets = b
	}
	if len(s.buckets) > 0 && len(m.TokenDims) == 0 {
		return nil, errors.New("buckets given, but the model has no symbolic token dim to pad")
	}
	for _, v := range g.Inputs {
		s.types[v.Name] = v.Type
	}
	if err := CheckDevice(s.device); err != nil {
		return nil, err
	}
	if s.lean = plansPerShape(s.device, m); s.lean {
		// Programs are made per size at run time (lean.go); the options
		// are checked now.
		o := codegen.Options{Device: s.device, Precision: s.precision()}
		if err := o.Validate(); err != nil {
			return nil, err
		}
	} else if s.device != "ref" {
		p, err := codegen.NewProgram(g, codegen.Options{Device: s.device, Precision: s.precision(), Budgeted: m.Options.MemoryBudget > 0 || len(m.MemoryPlan) > 0})
		if err != nil {
			return nil, err
		}
		s.prog = p
	} else {
		for _, n := range g.Nodes {
			if !ref.HasKernel(n.QualifiedOp()) {
				return nil, fmt.Errorf("the reference executor has no kernel for %s (node %s)", n.QualifiedOp(), n)
			}
		}
	}
	return s, nil
}

// precision is the compute precision: the session's, else the artifact's.
func (s *Session) precision() string {
	if s.opts.Precision != "" {
		return s.opts.Precision
	}
	return s.Manifest.Options.Precision
}

// Lowerings are the lowering paths the latest Run took, one per fused node
// ("path×count" with codegen.FormatLowerings); none on the reference
// executor or before the first Run.
func (s *Session) Lowerings() []codegen.Lowering {
	if s.prog == nil {
		return nil
	}
	return s.prog.Lowerings()
}

// Device is the executor in use.
func (s *Session) Device() string { return s.device }

// Buckets are the bucket sizes in use (ascending).
func (s *Session) Buckets() []int64 { return s.buckets }

// Close releases the MLX program.
func (s *Session) Close() {
	for _, lp := range s.plans {
		if lp.prog != nil {
			if lp.prog == s.prog {
				s.prog = nil
			}
			lp.prog.Close()
		}
	}
	s.plans = nil
	if s.prog != nil {
		s.prog.Close()
		s.prog = nil
	}
}

func contains(list []string, x string) bool {
	for _, v := range list {
		if v == x {
			return true
		}
	}
	return false
}

// InputError is a problem with the inputs given to Run or CheckInputs.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

func inputErrorf(format string, a ...any) error { return &InputError{fmt.Sprintf(format, a...)} }

// CheckInputs compares inputs with the signature: every input present and
// no unknown ones, dtypes and ranks as declared, static dims equal and each
// symbolic dim the same size everywhere it appears. It returns the sizes
// of the symbols.
func (s *Session) CheckInputs(in map[string]*graph.Tensor) (map[string]int64, error) {
	var unknown []string
	for name := range in {
		if _, ok := s.types[name]; !ok {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, inputErrorf("unknown input %q (the model's inputs are %s)", unknown[0], s.inputList())
	}
	env := map[string]int64{}
	// Bind single symbols first, then check compound dims against them.
	for pass := 0; pass < 2; pass++ {
		for _, v := range s.Graph.Inputs {
			t := in[v.Name]
			if t == nil {
				return nil, inputErrorf("missing input %q (%s)", v.Name, v.Type)
			}
			if pass == 0 {
				if err := t.Validate(); err != nil {
					return nil, inputErrorf("input %q: %v", v.Name, err)
				}
				if t.DType != v.Type.DType {
					return nil, inputErrorf("input %q is %s, the model wants %s (%s)", v.Name, t.DType, v.Type.DType, v.Type)
				}
				if v.Type.Ranked && len(t.Shape) != len(v.Type.Shape) {
					return nil, inputErrorf("input %q has rank %d (shape %v), the model wants rank %d (%s)", v.Name, len(t.Shape), t.Shape, len(v.Type.Shape), v.Type)
				}
			}
			if !v.Type.Ranked {
				continue
			}
			if err := bindShape(v, t.Shape, env); err != nil {
				return nil, err
			}
		}
	}
	return env, nil
}

// bindShape is graph.BindShape with messages that name the input and, for a
// symbol bound elsewhere, where.
func bindShape(v *graph.Value, shape []int64, env map[string]int64) error {
	if err := graph.BindShape(v.Type.Shape, shape, env); err != nil {
		return inputErrorf("input %q with shape %v does not match %s: %v", v.Name, shape, v.Type, err)
	}
	return nil
}

func (s *Session) inputList() string {
	var names []string
	for _, v := range s.Graph.Inputs {
		names = append(names, fmt.Sprintf("%s %s", v.Name, v.Type))
	}
	return strings.Join(names, ", ")
}

// RunStats describe one Run.
type RunStats struct {
	// FirstCall: this padded shape ran for the first time (the time
	// includes tracing and MLX compilation).
	FirstCall bool
	Elapsed   time.Duration
	// Upload, Compute and Download split Elapsed for MLX programs (see
	// codegen.RunInfo); zero on the reference executor.
	Upload, Compute, Download time.Duration
	// Dims are the symbol sizes of the inputs; Padded are the sizes the
	// model ran at (equal without buckets).
	Dims, Padded map[string]int64
	// Planned is set when this run planned the GPU memory for its size
	// (lean.go): one line saying so, for the CLI to print.
	Planned string
}

// Run checks the inputs, pads to the bucket, checks memory, runs and crops.
func (s *Session) Run(in map[string]*graph.Tensor) (map[string]*graph.Tensor, RunStats, error) {
	var st RunStats
	dims, err := s.CheckInputs(in)
	if err != nil {
		return nil, st, err
	}
	st.Dims = dims
	// The memory check runs on the padded sizes before the padded inputs
	// are built: a large bucket must be refused, not allocated.
	padded, changed := s.padDims(dims)
	st.Padded = padded
	g := s.Graph
	var lp *leanPlan
	if s.lean {
		if lp, err = s.planFor(padded); err != nil {
			return nil, st, err
		}
		g = lp.g
		if !lp.reported {
			st.Planned, lp.reported = lp.describe(), true
		}
	}
	if !s.opts.SkipMemoryCheck {
		if err := s.checkMemory(g, padded); err != nil {
			return nil, st, err
		}
	}
	if lp != nil {
		if s.prog, err = s.program(lp); err != nil {
			return nil, st, err
		}
	}
	runIn, err := s.pad(in, dims, padded, changed)
	if err != nil {
		return nil, st, err
	}
	start := time.Now()
	var out map[string]*graph.Tensor
	if s.prog != nil {
		var info codegen.RunInfo
		out, info, err = s.prog.Run(runIn)
		st.FirstCall = info.FirstCall
		st.Upload, st.Compute, st.Download = info.Upload, info.Compute, info.Download
	} else {
		out, err = ref.Run(s.Graph, runIn)
	}
	st.Elapsed = time.Since(start)
	if err != nil {
		return nil, st, err
	}
	out, err = s.crop(out, dims, padded)
	if err != nil {
		return nil, st, err
	}
	return out, st, nil
}
