// Package passes turns an imported graph into an optimized one: cleanup,
// fusions into of3c ops (docs/ops.md), projection merging and memory
// rewrites chosen by a planner.
//
// The whole pipeline is the table below, in order. Run executes all of it or
// a named subset, re-infers types after every pass, runs the verifier after
// every pass when asked (always in tests), dumps the IR after every pass into
// a directory, and returns a per-pass log that the compiler stores in the
// artifact.
package passes

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/of3c/of3c/graph"
)

// Pass is one entry of the pipeline.
type Pass struct {
	Name string
	Fn   func(*Context) error
	Desc string
	// After names passes that, when both run, must run before this one; Run
	// refuses a pass list that breaks it (ordering is data, as in Go's SSA
	// passOrder).
	After []string
	// Default is false for passes that only run when named (or, for
	// plan-memory, when Options ask for it).
	Default bool
}

// pipeline is the whole optimizer, in order.
var pipeline = [...]Pass{
	{Name: "infer-shapes", Fn: inferShapesPass, Default: true,
		Desc: "type every value; dims stay symbolic where the model's are"},
	{Name: "fold-constants", Fn: foldConstants, Default: true, After: []string{"infer-shapes"},
		Desc: "evaluate nodes whose inputs are constants or known shapes; symbolic Reshape targets become constants with 0/-1"},
	{Name: "remove-noops", Fn: removeNoops, Default: true,
		Desc: "drop Identity, Dropout, Casts to the same type, Reshapes to the same shape; compose and cancel Transposes"},
	{Name: "canonicalize", Fn: canonicalize, Default: true, After: []string{"fold-constants"},
		Desc: "Div by constant → Mul by reciprocal, 0−x → Neg, Gemm and batched-matmul Einsum → MatMul, splat constants to rank 0, f16 mask constants that overflowed to inf repaired"},
	{Name: "cse", Fn: cse, Default: true,
		Desc: "merge nodes with the same op, attributes and inputs, and equal constants"},
	{Name: "dce", Fn: dce, Default: true,
		Desc: "remove nodes and constants that no output depends on"},
	{Name: "fuse-layernorm", Fn: fusionPass(layerNormRule), Default: true, After: []string{"canonicalize"},
		Desc: "recover LayerNormalization from ReduceMean/Sub/Pow/Add/Sqrt/Div/Mul/Add"},
	{Name: "fuse-attention", Fn: fusionPass(attentionRule), Default: true, After: []string{"canonicalize", "remove-noops"},
		Desc: "softmax(scale·q·kᵀ + Σ biases)·v and the bias-only form → of3c.Attention"},
	{Name: "fuse-swiglu", Fn: fusionPass(swigluRule), Default: true, After: []string{"canonicalize"},
		Desc: "silu(x·Wa) ⊙ (x·Wb) → of3c.SwiGLU(x, [Wa|Wb])"},
	{Name: "fuse-outer-product", Fn: fusionPass(outerProductRule), Default: true, After: []string{"canonicalize", "remove-noops"},
		Desc: "Σ_s a[s,i]⊗b[s,j] flattened · W_out (+ bias) → of3c.OuterProductMean (row-chunkable)"},
	{Name: "fuse-triangle-mul", Fn: fusionPass(triangleMulRule), Default: true, After: []string{"canonicalize", "remove-noops"},
		Desc: "mask·σ(x Wg)·(x Wp) projections and Σ_k a_ik b_jk / Σ_k a_ki b_kj → of3c.TriangleMultiplication (row-chunkable)"},
	{Name: "merge-projections", Fn: mergeProjections, Default: true, After: []string{"fuse-swiglu", "fuse-attention"},
		Desc: "MatMuls of one input by constant weights, live at the same time → one MatMul on concatenated weights + Split"},
	{Name: "late-cleanup", Fn: lateCleanup, Default: true,
		Desc: "remove-noops, cse and dce again after the fusions"},
	{Name: "form-regions", Fn: formRegions, After: []string{"late-cleanup"},
		Desc: "row-chunked regions: connected ops that all treat one axis as a batch axis (LayerNorm, projections, head reshapes, attention, gate, residual Add) → of3c.ChunkMap, chunked by plan-memory; runs with plan-memory (passes/chunk_regions.go)"},
	{Name: "plan-memory", Fn: planMemoryPass, After: []string{"fuse-attention", "fuse-swiglu"},
		Desc: "choose chunk sizes (batch/query chunking, LMA, row_chunk, regions' chunk) so the peak fits Options.MemoryBudget; on the GPU without a budget (inspect --memory --device gpu), lean chunks (passes/memory_region.go)"},
	{Name: "shard-pair", Fn: shardPairPass, After: []string{"late-cleanup"},
		Desc: "dynamic axial parallelism over Options.Shards ranks: pair rows sharded, collectives (of3c.AllGather/AllToAll) where an op needs the other axis (passes/shard.go)"},
}

func init() {
	// Check the table once: unique names, After entries that exist and come
	// earlier. A broken table is a programming error every test catches.
	seen := map[string]bool{}
	for _, p := range pipeline {
		if seen[p.Name] {
			panic("passes: duplicate pass " + p.Name)
		}
		for _, a := range p.After {
			if !seen[a] {
				panic("passes: " + p.Name + " is after " + a + ", which is not an earlier pass")
			}
		}
		seen[p.Name] = true
	}
}

// Names lists every pass in pipeline order.
func Names() []string {
	names := make([]string, len(pipeline))
	for i, p := range pipeline {
		names[i] = p.Name
	}
	return names
}

// Describe returns "name: description" lines for every pass, in order.
func Describe() string {
	var b strings.Builder
	for _, p := range pipeline {
		mark := ""
		if !p.Default {
			mark = " (on request)"
		}
		fmt.Fprintf(&b, "%-18s %s%s\n", p.Name, p.Desc, mark)
	}
	return b.String()
}

func lookupPass(name string) (*Pass, bool) {
	for i := range pipeline {
		if pipeline[i].Name == name {
			return &pipeline[i], true
		}
	}
	return nil, false
}

// Options control Run and the memory planner. The memory options mirror
// OpenFold3's knobs.
type Options struct {
	// Passes to run, in this order; empty means every default pass (and
	// plan-memory when MemoryBudget > 0).
	Passes []string
	// DumpDir, when set, receives NN-pass.txt (and .dot with DumpDOT) with
	// the IR after every pass, and 00-input.txt before the first.
	DumpDir string
	DumpDOT bool
	// Verify runs graph.Verify after every pass.
	Verify bool
	// Explain records, for fusion anchors that did not fuse, which condition
	// of the pattern failed (Log.Explanations).
	Explain bool

	// MemoryBudget in bytes for the planner (0: no planning).
	MemoryBudget int64
	// ChunkThreshold: attention with fewer keys than this is never chunked
	// along keys (LMA); 0 means the default of 4096.
	ChunkThreshold int64
	// ChunkSize fixes the batch/query chunk size instead of searching.
	ChunkSize int64
	// LMAKVChunk fixes the key/value chunk size used for LMA (default 4096,
	// OpenFold3's).
	LMAKVChunk int64
	// Dims binds symbolic dims (N, S, …) to sizes for the planner.
	Dims map[string]int64
	// Device is the MLX device the plan is for ("cpu", "gpu"; empty:
	// unknown). On "cpu" the planner models the blocks the CPU lowering
	// uses for fused ops the graph leaves unchunked (memory_cpu.go).
	Device string
	// Shards > 1 appends shard-pair (ranks sharing the pair stack).
	Shards int
	// Lean plans without a budget (form-regions and plan-memory run with
	// MemoryBudget 0): on the GPU the planner then chunks every region and
	// row-chunkable op until its working set is about its largest input
	// or LeanBlock, whichever is larger (memory_region.go), the default
	// of a GPU compile with --buckets.
	// Needs Dims.
	Lean bool
	// LeanBlock is the working set below which a lean plan does not shrink
	// a chunk (the part of it that grows with the chunk); 0 means
	// DefaultLeanBlock. Smaller blocks launch more, smaller kernels.
	LeanBlock int64
}

// Planning reports whether Run plans memory (form-regions, plan-memory).
func (o Options) Planning() bool { return o.MemoryBudget > 0 || (o.Lean && len(o.Dims) > 0) }

// Log is what happened in one Run, serializable as JSON for the artifact.
type Log struct {
	Passes       []PassLog     `json:"passes"`
	Explanations []Explanation `json:"explanations,omitempty"`
	Plan         *MemoryPlan   `json:"memory_plan,omitempty"`
	Shard        *ShardPlan    `json:"shard_plan,omitempty"`
}

// PassLog is one pass's entry.
type PassLog struct {
	Name        string         `json:"name"`
	Micros      int64          `json:"us"`
	NodesBefore int            `json:"nodes_before"`
	NodesAfter  int            `json:"nodes_after"`
	Rewrites    map[string]int `json:"rewrites,omitempty"` // rule → times applied
	Notes       []string       `json:"notes,omitempty"`    // what fused where
}

// Explanation says why a fusion did not fire at one anchor node.
type Explanation struct {
	Pass   string  `json:"pass"`
	Rule   string  `json:"rule"`
	Anchor string  `json:"anchor"`
	Reason string  `json:"reason"`
	Detail Failure `json:"detail,omitzero"`
}

func (e Explanation) String() string {
	s := fmt.Sprintf("%s: %s at %s: %s", e.Pass, e.Rule, e.Anchor, e.Reason)
	if e.Detail.Want != "" {
		s += " (" + e.Detail.String() + ")"
	}
	return s
}

// JSON renders the log.
func (l *Log) JSON() ([]byte, error) { return json.MarshalIndent(l, "", "  ") }

// Format renders the log as a table for `of3c inspect`.
func (l *Log) Format() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-18s %10s %7s %7s  rewrites\n", "pass", "time", "before", "after")
	for _, p := range l.Passes {
		var rw []string
		for _, k := range sortedKeys(p.Rewrites) {
			rw = append(rw, fmt.Sprintf("%s×%d", k, p.Rewrites[k]))
		}
		fmt.Fprintf(&b, "%-18s %10s %7d %7d  %s\n", p.Name, time.Duration(p.Micros)*time.Microsecond,
			p.NodesBefore, p.NodesAfter, strings.Join(rw, " "))
		for _, n := range p.Notes {
			fmt.Fprintf(&b, "    %s\n", n)
		}
	}
	for _, e := range l.Explanations {
		fmt.Fprintf(&b, "explain: %s\n", e)
	}
	return b.String()
}

// Context is what a pass sees: the graph, the options and its log entry.
type Context struct {
	G    *graph.Graph
	Opts *Options

	entry *PassLog
	log   *Log
}

// Notef records what the pass did (e.g. which nodes fused into what).
func (c *Context) Notef(format string, args ...any) {
	c.entry.Notes = append(c.entry.Notes, fmt.Sprintf(format, args...))
}

// Count counts one application of a rewrite rule.
func (c *Context) Count(rule string) {
	if c.entry.Rewrites == nil {
		c.entry.Rewrites = map[string]int{}
	}
	c.entry.Rewrites[rule]++
}

// Explain records a near miss (only when Options.Explain is set).
func (c *Context) Explain(rule string, anchor *graph.Node, reason string, f *Failure) {
	if !c.Opts.Explain {
		return
	}
	e := Explanation{Pass: c.entry.Name, Rule: rule, Anchor: anchor.String(), Reason: reason}
	if f != nil {
		e.Detail = *f
	}
	c.log.Explanations = append(c.log.Explanations, e)
}

// Select resolves Options.Passes to the passes Run executes, checking names
// and ordering.
func Select(opts Options) ([]string, error) {
	names := opts.Passes
	if len(names) == 0 {
		for _, p := range pipeline {
			planning := opts.Planning()
			if p.Default || ((p.Name == "plan-memory" || p.Name == "form-regions") && planning) || (p.Name == "shard-pair" && opts.Shards > 1) {
				names = append(names, p.Name)
			}
		}
		return names, nil
	}
	// Every listed pass must exist, and each occurrence of a pass must come
	// after some occurrence of each pass it is After, when that pass is
	// listed at all (repeating a pass, e.g. dce, is fine).
	first := map[string]int{}
	for i, n := range names {
		if _, ok := lookupPass(n); !ok {
			return nil, fmt.Errorf("unknown pass %q (passes: %s)", n, strings.Join(Names(), ", "))
		}
		if _, dup := first[n]; !dup {
			first[n] = i
		}
	}
	for i, n := range names {
		p, _ := lookupPass(n)
		for _, a := range p.After {
			if j, listed := first[a]; listed && j > i {
				return nil, fmt.Errorf("pass %s must run after %s", n, a)
			}
		}
	}
	return names, nil
}

// Run optimizes g in place with the selected passes.
func Run(g *graph.Graph, opts Options) (*Log, error) {
	names, err := Select(opts)
	if err != nil {
		return nil, err
	}
	log := &Log{}
	if len(g.ImportNotes) > 0 {
		log.Passes = append(log.Passes, PassLog{Name: "import", NodesBefore: len(g.Nodes), NodesAfter: len(g.Nodes),
			Rewrites: map[string]int{"repair": len(g.ImportNotes)}, Notes: append([]string(nil), g.ImportNotes...)})
	}
	if opts.DumpDir != "" {
		if err := os.MkdirAll(opts.DumpDir, 0o755); err != nil {
			return log, fmt.Errorf("dump dir: %w", err)
		}
		if err := dump(g, opts, "00-input"); err != nil {
			return log, err
		}
	}
	// Passes may assume typed values; imports carry types only for inputs,
	// constants and sometimes outputs.
	if err := inferTypes(g); err != nil {
		return log, fmt.Errorf("before passes: %w", err)
	}
	for i, name := range names {
		p, _ := lookupPass(name)
		entry := PassLog{Name: name, NodesBefore: len(g.Nodes)}
		ctx := &Context{G: g, Opts: &opts, entry: &entry, log: log}
		start := time.Now()
		err := p.Fn(ctx)
		if err == nil {
			// Rewrites append nodes at the end and leave new values untyped:
			// restore order and types here, once, for every pass.
			if err = g.TopoSort(); err == nil {
				err = inferTypes(g)
			}
		}
		entry.Micros = time.Since(start).Microseconds()
		entry.NodesAfter = len(g.Nodes)
		log.Passes = append(log.Passes, entry)
		if err != nil {
			return log, fmt.Errorf("pass %s: %w", name, err)
		}
		if opts.Verify {
			if err := graph.Verify(g); err != nil {
				return log, fmt.Errorf("verifier after pass %s: %w", name, err)
			}
		}
		if opts.DumpDir != "" {
			if err := dump(g, opts, fmt.Sprintf("%02d-%s", i+1, name)); err != nil {
				return log, err
			}
		}
	}
	return log, nil
}

// Explain runs the passes with explanations on and returns them with the log.
func Explain(g *graph.Graph, opts Options) ([]Explanation, *Log, error) {
	opts.Explain = true
	log, err := Run(g, opts)
	if log == nil {
		return nil, nil, err
	}
	return log.Explanations, log, err
}

func dump(g *graph.Graph, opts Options, stem string) error {
	path := filepath.Join(opts.DumpDir, stem+".txt")
	if err := os.WriteFile(path, []byte(graph.Format(g)), 0o644); err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	if opts.DumpDOT {
		if err := os.WriteFile(filepath.Join(opts.DumpDir, stem+".dot"), []byte(graph.FormatDOT(g)), 0o644); err != nil {
			return fmt.Errorf("dump: %w", err)
		}
	}
	return nil
}

// inferTypes re-types every node output. Nodes of ops with no rule keep the
// types they have (the importer may have them from value_info), so a model
// using an op the compiler only passes through does not stop the pipeline.
func inferTypes(g *graph.Graph) error {
	for _, n := range g.Nodes {
		if graph.LookupOp(n.Domain, n.Op) == nil {
			continue
		}
		types, vals, err := graph.InferNode(n)
		if err != nil {
			return err
		}
		for i, o := range n.Outputs {
			if o == nil {
				continue
			}
			o.Type = types[i]
			o.ShapeValue = nil
			if i < len(vals) {
				o.ShapeValue = vals[i]
			}
		}
	}
	return nil
}

func inferShapesPass(c *Context) error {
	// Run re-infers after every pass; as a pass of its own it also reports
	// values that stay untyped, which the later passes cannot reason about.
	if err := inferTypes(c.G); err != nil {
		return err
	}
	untyped := 0
	for _, n := range c.G.Nodes {
		for _, o := range n.Outputs {
			if o != nil && !o.Type.Ranked {
				untyped++
			}
		}
	}
	if untyped > 0 {
		c.Notef("%d values of unknown rank", untyped)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
