package passes

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/shapes"
	"github.com/of3c/of3c/internal/units"
)

// The memory planner: for concrete dims it estimates the bytes live at every
// step of the topological order (values from their producer to their last
// reader, plus the temporaries inside fused ops), finds the peak, and
// chunks fused ops until the peak fits the budget — or refuses, with the
// numbers. Running out of device memory can hang a GPU under MLX, so a plan
// that does not fit must never be produced.
//
// The estimate models what the MLX lowering does, measured against MLX's
// own peak (docs/notes/PERFORMANCE.md §6; codegen's TestPlannerBoundsMLXPeak):
// every value is its own buffer, freed after its last reader, except views:
// Split, Slice, Transpose, Expand, Squeeze/Unsqueeze, Identity, and Reshape
// of anything but a Transpose share their input's buffer (MLX makes them
// strided views) and keep it alive as long as they are; a graph input read
// only by an elementwise op or LayerNorm is donated to its output;
// constants (weights) stay resident; inside the fused ops, what
// attentionWorkspace, the SwiGLU case of workspace and pairWorkspace
// (memory_pair.go) say, with the CPU's own default blocks and fused
// attention kernel when Options.Device is "cpu" (memory_cpu.go). The steps
// are taken in the worst of three evaluation orders (memory_order.go). The
// peak is that in-order need plus a slack, or, when more, what MLX's
// allocation may run ahead to under the memory limit the runtime sets
// while running (memory_limit.go).

// NoBudget is the budget of a plan made only to estimate: PlanMemory reads
// a budget of 0 as none (no chunking) and Format prints it as "none".
const NoBudget = int64(0)

// ChunkChoice is the chunking chosen for one fused node.
type ChunkChoice struct {
	Node            string           `json:"node"` // name of the node's output value
	Op              string           `json:"op"`
	Attrs           map[string]int64 `json:"attrs"`
	WorkspaceBefore int64            `json:"workspace_before"`
	WorkspaceAfter  int64            `json:"workspace_after"`
}

// LiveTensor is one entry of the biggest-live-tensors list at the peak.
type LiveTensor struct {
	Name  string  `json:"name"`
	Shape []int64 `json:"shape,omitempty"`
	Bytes int64   `json:"bytes"`
}

// MemoryPlan is the planner's result; it is stored in the artifact.
type MemoryPlan struct {
	Dims       map[string]int64 `json:"dims"`
	Budget     int64            `json:"budget"`
	Weights    int64            `json:"weights"`     // constants, resident throughout (included in peaks)
	PeakBefore int64            `json:"peak_before"` // with the chunking the graph had
	PeakAfter  int64            `json:"peak_after"`
	PeakNode   string           `json:"peak_node"` // where PeakAfter happens
	// InOrder is the largest live total over the evaluation order (the
	// peaks are max(InOrder, 2·LargestBuffer)); LargestBuffer the largest
	// single array one MLX op allocates under the final chunking (a value,
	// or a fused op's block temporary); RunLimit the MLX memory limit the
	// runtime sets while it runs the program, which holds MLX's peak to
	// PeakAfter (memory_limit.go says why).
	InOrder       int64         `json:"in_order,omitempty"`
	LargestBuffer int64         `json:"largest_buffer,omitempty"`
	RunLimit      int64         `json:"run_limit,omitempty"`
	Chunks        []ChunkChoice `json:"chunks,omitempty"`
	Largest       []LiveTensor  `json:"largest,omitempty"` // at the final peak
}

// Format renders the plan for `of3c inspect --memory`.
func (p *MemoryPlan) Format() string {
	var b strings.Builder
	var dims []string
	for _, k := range sortedKeys(p.Dims) {
		dims = append(dims, fmt.Sprintf("%s=%d", k, p.Dims[k]))
	}
	budget := "none"
	if p.Budget > 0 {
		budget = units.FormatBytes(p.Budget)
	}
	fmt.Fprintf(&b, "memory plan for %s, budget %s\n", strings.Join(dims, " "), budget)
	fmt.Fprintf(&b, "  weights      %s\n", units.FormatBytes(p.Weights))
	fmt.Fprintf(&b, "  peak before  %s\n", units.FormatBytes(p.PeakBefore))
	fmt.Fprintf(&b, "  peak after   %s  (at %s)\n", units.FormatBytes(p.PeakAfter), p.PeakNode)
	if p.RunLimit > 0 {
		fmt.Fprintf(&b, "  in order     %s, largest single buffer %s: MLX memory limit while running %s\n",
			units.FormatBytes(p.InOrder), units.FormatBytes(p.LargestBuffer), units.FormatBytes(p.RunLimit))
	}
	if len(p.Chunks) == 0 {
		b.WriteString("  no chunking needed\n")
	} else {
		b.WriteString("  chunks:\n")
		for _, c := range p.Chunks {
			var at []string
			for _, k := range sortedKeys(c.Attrs) {
				at = append(at, fmt.Sprintf("%s=%d", k, c.Attrs[k]))
			}
			fmt.Fprintf(&b, "    %-40s %-15s %-40s workspace %s → %s\n", c.Node, c.Op, strings.Join(at, " "),
				units.FormatBytes(c.WorkspaceBefore), units.FormatBytes(c.WorkspaceAfter))
		}
	}
	if len(p.Largest) > 0 {
		b.WriteString("  largest live at the peak:\n")
		for _, t := range p.Largest {
			fmt.Fprintf(&b, "    %-40s %-20s %s\n", t.Name, fmt.Sprint(t.Shape), units.FormatBytes(t.Bytes))
		}
	}
	return b.String()
}

// Apply sets the chosen chunk attributes on g's nodes.
func (p *MemoryPlan) Apply(g *graph.Graph) error {
	byOut := map[string]*graph.Node{}
	for _, n := range g.Nodes {
		if len(n.Outputs) > 0 && n.Outputs[0] != nil {
			byOut[n.Outputs[0].Name] = n
		}
	}
	for _, c := range p.Chunks {
		n, ok := byOut[c.Node]
		if !ok {
			return fmt.Errorf("memory plan names %s, which the graph does not have", c.Node)
		}
		for k, v := range c.Attrs {
			n.SetAttr(k, graph.Attr{Kind: graph.AttrInt, Int: v})
		}
	}
	return nil
}

// Defaults mirroring OpenFold3's LMA settings.
const (
	defaultLMAKVChunk     = 4096
	defaultChunkThreshold = 4096
)

// chunkableOps are the of3c ops whose chunk attributes the planner sets.
var chunkableOps = map[string]bool{"Attention": true, "SwiGLU": true, "OuterProductMean": true, "TriangleMultiplication": true, "ChunkMap": true}

// planNode is what the planner knows about one step.
type planNode struct {
	n       *graph.Node
	outs    []int64 // bytes per output
	chunk   map[string]int64
	fused   bool
	outDims []int64 // concrete shape of output 0
}

type planner struct {
	g      *graph.Graph
	dims   map[string]int64
	opts   Options
	shapes map[*graph.Value][]int64
	bytes  map[*graph.Value]int64
	steps  []*planNode
	orders []*evalOrder // the evaluation orders considered (memory_order.go)
	// readers counts the nodes reading each buffer (root), views' readers
	// included.
	readers map[*graph.Value]int
	at      *evalOrder // the order of the last peak found
	root    map[*graph.Value]*graph.Value
	// regions caches the body plans of of3c.ChunkMap steps per block size
	// (memory_region.go).
	regions map[*graph.Node]map[int64]regionCost
}

// isView reports whether n's outputs share its first input's buffer.
func isView(n *graph.Node) bool {
	if n.Domain != graph.DefaultDomain || n.Input(0) == nil {
		return false
	}
	switch n.Op {
	case "Split", "Slice", "Transpose", "Expand", "Squeeze", "Unsqueeze", "Identity":
		return true
	case "Reshape", "Flatten":
		// Reshaping a transposed (strided) array copies it.
		p := n.Input(0).Producer
		return p == nil || p.Op != "Transpose"
	}
	return false
}

// rootOf is the buffer v lives in.
func (p *planner) rootOf(v *graph.Value) *graph.Value {
	if r, ok := p.root[v]; ok {
		return r
	}
	return v
}

// PlanMemory chooses chunk sizes for g's fused ops so that the estimated
// peak at dims fits budget. It does not change g; Apply does. Budget 0
// means none: the plan reports the peaks and chunks nothing.
func PlanMemory(g *graph.Graph, dims map[string]int64, budget int64, opts Options) (*MemoryPlan, error) {
	if budget < 0 {
		return nil, fmt.Errorf("memory budget %d: want ≥ 0", budget)
	}
	noBudget := budget == 0 || budget >= maxPlanBytes
	if noBudget {
		budget = maxPlanBytes
	}
	p := &planner{g: g, dims: dims, opts: opts, shapes: map[*graph.Value][]int64{}, bytes: map[*graph.Value]int64{},
		root: map[*graph.Value]*graph.Value{}}
	if err := p.bind(); err != nil {
		return nil, err
	}
	plan := &MemoryPlan{Dims: dims, Budget: budget}
	if noBudget {
		plan.Budget = 0
	}
	for _, c := range g.Consts {
		plan.Weights += p.bytes[c]
	}
	if len(p.steps) == 0 {
		// No node runs (the outputs are inputs or constants): nothing to
		// plan, and no run limit.
		plan.PeakBefore, plan.PeakAfter, plan.InOrder = plan.Weights, plan.Weights, plan.Weights
		return plan, nil
	}
	before := map[*planNode]map[string]int64{}
	for _, s := range p.steps {
		if s.fused {
			before[s] = cloneChunks(s.chunk)
		}
	}
	peak, at := p.bound()
	plan.PeakBefore = peak
	if noBudget && opts.Device == "gpu" {
		p.leanDefaults()
		peak, at = p.bound()
	}
	for peak > budget {
		s := p.steps[at]
		if !s.fused || !p.shrink(s) {
			if inOrder, _ := p.peak(); inOrder+inOrderSlack+inOrder/32 < peak {
				m, _ := p.largestBuffer()
				return nil, fmt.Errorf("does not fit: peak %s > budget %s at %s, whose buffer (%s) MLX may allocate on top of the run's memory limit, and that limit cannot go below the largest array (%s); in order the run needs %s; %s",
					units.FormatBytes(peak), units.FormatBytes(budget), s.n, units.FormatBytes(p.stepAlloc(at)), units.FormatBytes(max(m, p.largestArray())), units.FormatBytes(inOrder), p.whyNot(s))
			}
			live, ws := p.liveAt(at)
			var big []string
			for _, t := range p.largestAt(at, 5) {
				big = append(big, fmt.Sprintf("%s %v %s", t.Name, t.Shape, units.FormatBytes(t.Bytes)))
			}
			return nil, fmt.Errorf("does not fit: peak %s > budget %s at %s (%s of live tensors, %s inside the op, %s of weights); %s; largest live there: %s",
				units.FormatBytes(peak), units.FormatBytes(budget), s.n, units.FormatBytes(live), units.FormatBytes(ws), units.FormatBytes(plan.Weights), p.whyNot(s), strings.Join(big, ", "))
		}
		peak, at = p.bound()
	}
	plan.PeakAfter = peak
	plan.InOrder, _ = p.peak()
	plan.LargestBuffer, _ = p.largestBuffer()
	plan.RunLimit = RunLimit(plan.InOrder, plan.LargestBuffer, p.largestArray())
	if at >= 0 && at < len(p.steps) {
		plan.PeakNode = p.steps[at].n.String()
	}
	for _, s := range p.steps {
		if !s.fused {
			continue
		}
		changed := false
		attrs := map[string]int64{}
		for k, v := range s.chunk {
			if v != before[s][k] {
				changed = true
			}
			if v > 0 {
				attrs[k] = v
			}
		}
		if changed {
			wsAfter := p.workspace(s)
			s2 := *s
			s2.chunk = before[s]
			plan.Chunks = append(plan.Chunks, ChunkChoice{Node: s.n.Outputs[0].Name, Op: s.n.QualifiedOp(), Attrs: attrs,
				WorkspaceBefore: p.workspace(&s2), WorkspaceAfter: wsAfter})
		}
	}
	plan.Largest = p.largestAt(at, 10)
	return plan, nil
}

func cloneChunks(m map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// bind gives every value a concrete shape and every step its frees.
func (p *planner) bind() error {
	var missing []string
	seenMissing := map[string]bool{}
	conc := func(v *graph.Value) error {
		if v == nil {
			return nil
		}
		if _, ok := p.shapes[v]; ok {
			return nil
		}
		if v.Const != nil {
			p.shapes[v] = v.Const.Shape
			p.bytes[v] = v.Const.NumElements() * int64(v.Const.DType.Size())
			return nil
		}
		if !v.Type.Ranked {
			return fmt.Errorf("%s has unknown rank; the planner needs every shape", v)
		}
		s, err := graph.EvalShape(v.Type.Shape, p.dims)
		if err != nil && strings.Contains(err.Error(), "overflows") {
			return &SizeError{fmt.Sprintf("shape of %s at %s: %v", v, fmtDims(p.dims), err)}
		}
		if err != nil {
			for _, d := range v.Type.Shape {
				for _, sym := range graph.DimSymbols(d) {
					if _, ok := p.dims[sym]; !ok && !seenMissing[sym] {
						seenMissing[sym] = true
						missing = append(missing, sym)
					}
				}
			}
			return fmt.Errorf("shape of %s: %w", v, err)
		}
		p.shapes[v] = s
		b := mulS(prod(s), int64(v.Type.DType.Size()))
		if b >= maxPlanBytes {
			return &SizeError{fmt.Sprintf("%s is %v at %s: more than %s, beyond what any run can hold", v, s, fmtDims(p.dims), units.FormatBytes(maxPlanBytes))}
		}
		p.bytes[v] = b
		return nil
	}
	for _, v := range p.g.Inputs {
		if err := conc(v); err != nil {
			return p.bindErr(err, missing)
		}
	}
	for _, v := range p.g.Consts {
		_ = conc(v)
	}
	p.readers = map[*graph.Value]int{}
	for _, n := range p.g.Nodes {
		s := &planNode{n: n}
		seen := map[*graph.Value]bool{}
		for _, in := range n.Inputs {
			if in != nil && !seen[in] {
				seen[in] = true
				p.readers[p.rootOf(in)]++
			}
			if in != nil {
				if err := conc(in); err != nil {
					return p.bindErr(err, missing)
				}
			}
		}
		for _, o := range n.Outputs {
			if o == nil {
				s.outs = append(s.outs, 0)
				continue
			}
			if err := conc(o); err != nil {
				return p.bindErr(err, missing)
			}
			if isView(n) && !n.Input(0).IsConst() {
				p.root[o] = p.rootOf(n.Input(0))
				s.outs = append(s.outs, 0)
				continue
			}
			s.outs = append(s.outs, p.bytes[o])
		}
		if n.Domain == graph.FusedDomain && chunkableOps[n.Op] {
			s.fused = true
			s.chunk = map[string]int64{}
			for _, k := range []string{"batch_chunk", "query_chunk", "kv_chunk", "row_chunk", "chunk"} {
				if v := n.AttrInt(k, 0); v > 0 {
					s.chunk[k] = v
				}
			}
			s.outDims = p.shapes[n.Outputs[0]]
			p.cpuDefaults(s)
		}
		p.steps = append(p.steps, s)
	}
	p.orders = p.evalOrders()
	return nil
}

func (p *planner) bindErr(err error, missing []string) error {
	if len(missing) > 0 {
		return fmt.Errorf("bind dims %s (e.g. --memory %s=1024): %w", strings.Join(missing, ", "), missing[0], err)
	}
	return err
}

// peak returns the largest live total over every evaluation order the
// planner considers (memory_order.go) and the step where it happens; the
// order it happens in becomes p.at, which liveTensors reports from.
func (p *planner) peak() (int64, int) {
	best, at := int64(-1), 0
	for _, o := range p.orders {
		if pk, i := p.peakIn(o); pk > best {
			best, at, p.at = pk, i, o
		}
	}
	return best, at
}

// peakIn is the largest live total when the steps run in order o.
func (p *planner) peakIn(o *evalOrder) (int64, int) {
	best, at := int64(-1), 0
	p.simulate(o, func(i int, total int64) {
		if total > best {
			best, at = total, i
		}
	})
	return best, at
}

// simulate runs order o and calls visit with each step and the bytes live
// while it runs (its outputs and workspace included).
func (p *planner) simulate(o *evalOrder, visit func(step int, total int64)) {
	var live int64
	for _, v := range p.g.Inputs {
		live = addS(live, p.bytes[v])
	}
	for _, v := range p.g.Consts {
		live = addS(live, p.bytes[v])
	}
	for k, i := range o.seq {
		s := p.steps[i]
		d := p.donated(o, k)
		live = addS(live, sum(s.outs)) - d
		visit(i, addS(live, p.workspace(s)))
		live -= p.freedAfter(o, k) - d
	}
}

// freedAfter is the bytes released once the step at position k of order o
// has run: inputs read for the last time and outputs nobody reads.
func (p *planner) freedAfter(o *evalOrder, k int) int64 {
	var f int64
	n := p.steps[o.seq[k]].n
	seen := map[*graph.Value]bool{}
	for _, in := range n.Inputs {
		if in == nil || in.Const != nil {
			continue
		}
		r := p.rootOf(in)
		if seen[r] {
			continue
		}
		seen[r] = true
		if o.last[r] == k {
			f = addS(f, p.bytes[r])
		}
	}
	for _, out := range n.Outputs {
		if out == nil || p.rootOf(out) != out || seen[out] {
			continue
		}
		if _, used := o.last[out]; !used {
			f = addS(f, p.bytes[out])
		}
	}
	return f
}

func sum(xs []int64) int64 { return addS(xs...) }

// liveAt splits the total at step i into live tensors and the op's own
// workspace.
func (p *planner) liveAt(i int) (live, ws int64) {
	for _, t := range p.liveTensors(i) {
		live = addS(live, t.Bytes)
	}
	return live, p.workspace(p.steps[i])
}

// liveTensors lists the values live at step i in the order of the last
// peak (p.at).
func (p *planner) liveTensors(i int) []LiveTensor {
	o := p.at
	if o == nil {
		o = p.orders[0]
	}
	k := o.pos[i]
	var out []LiveTensor
	add := func(v *graph.Value) {
		out = append(out, LiveTensor{Name: v.Name, Shape: p.shapes[v], Bytes: p.bytes[v]})
	}
	for _, v := range p.g.Inputs {
		if l, ok := o.last[v]; ok && l >= k {
			add(v)
		}
	}
	for j := 0; j <= k; j++ {
		for _, v := range p.steps[o.seq[j]].n.Outputs {
			if v == nil || p.rootOf(v) != v {
				continue
			}
			if l, ok := o.last[v]; (ok && l >= k) || j == k {
				add(v)
			}
		}
	}
	return out
}

func (p *planner) largestAt(i, k int) []LiveTensor {
	ts := p.liveTensors(i)
	if ws := p.workspace(p.steps[i]); ws > 0 {
		ts = append(ts, LiveTensor{Name: "(inside " + p.steps[i].n.String() + ")", Bytes: ws})
	}
	sort.SliceStable(ts, func(a, b int) bool { return ts[a].Bytes > ts[b].Bytes })
	if len(ts) > k {
		ts = ts[:k]
	}
	return ts
}

func accBytes(dt graph.DType) int64 {
	if dt == graph.Float64 {
		return 8
	}
	return 4
}

func chunked(full, chunk int64) int64 {
	if chunk > 0 && chunk < full {
		return chunk
	}
	return full
}

// prod is the product of xs, saturating at maxPlanBytes.
func prod(xs []int64) int64 { return mulS(xs...) }

// maxPlanBytes is where the planner's arithmetic saturates: sizes built
// from huge dims (a bucket of 2^62) stay huge instead of wrapping around to
// small or negative numbers, and a value at least this large is refused
// (SizeError).
const maxPlanBytes = int64(1) << 62

// mulS multiplies non-negative numbers, saturating at maxPlanBytes.
func mulS(xs ...int64) int64 {
	n := int64(1)
	for _, x := range xs {
		if x <= 0 {
			return 0
		}
		if n > maxPlanBytes/x {
			n = maxPlanBytes
			continue
		}
		n = min(n*x, maxPlanBytes)
	}
	return n
}

// addS adds numbers, saturating at maxPlanBytes (the planner's sums are
// of non-negative sizes; subtraction stays ordinary).
func addS(xs ...int64) int64 {
	var n int64
	for _, x := range xs {
		if x > 0 && n > maxPlanBytes-x {
			n = maxPlanBytes
			continue
		}
		n += x
	}
	return n
}

// SizeError is a plan refused because a value's size, at the given dims,
// is beyond anything a machine can hold (or overflows int64).
type SizeError struct{ Msg string }

func (e *SizeError) Error() string { return e.Msg }

func fmtDims(d map[string]int64) string {
	var parts []string
	for _, k := range sortedKeys(d) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, d[k]))
	}
	if len(parts) == 0 {
		return "the given dims"
	}
	return strings.Join(parts, ",")
}

// attentionDims returns the logits' batch size (product of batch dims),
// queries, keys, and the output's axis-0 size.
func (p *planner) attentionDims(s *planNode) (batch, q, k, cv int64) {
	n := s.n
	var ins [][]int64
	if n.AttrString("mode", graph.AttentionModeQK) == graph.AttentionModeQK {
		qs, ks := p.shapes[n.Inputs[0]], p.shapes[n.Inputs[1]]
		b, _ := shapes.Broadcast(qs[:len(qs)-2], ks[:len(ks)-2])
		ins = append(ins, append(b, qs[len(qs)-2], ks[len(ks)-2]))
	}
	for _, b := range n.Inputs[3:] {
		ins = append(ins, p.shapes[b])
	}
	l, err := shapes.Broadcast(ins...)
	if err != nil || len(l) < 2 {
		return 0, 0, 0, 0 // the verifier refuses such a graph before planning
	}
	vs := p.shapes[n.Inputs[2]]
	return prod(l[:len(l)-2]), l[len(l)-2], l[len(l)-1], vs[len(vs)-1]
}

// workspace estimates a fused op's temporaries under its current chunking.
func (p *planner) workspace(s *planNode) int64 {
	if !s.fused {
		return 0
	}
	n := s.n
	a := accBytes(n.Outputs[0].Type.DType)
	switch n.Op {
	case "Attention":
		return p.attentionWorkspace(s, a)
	case "SwiGLU":
		xs := p.shapes[n.Inputs[0]]
		rows := prod(xs[:len(xs)-1])
		h := p.shapes[n.Inputs[1]][1] / 2
		cout := h
		if n.Input(2) != nil {
			cout = p.shapes[n.Inputs[2]][1]
		}
		r := chunked(rows, s.chunk["row_chunk"])
		// One block's [r, 2h] product and [r, h] activation (and its
		// projection); blocks' results are concatenated, so all of them
		// plus the output exist at the end.
		ws := mulS(3, r, h, a)
		if r < rows {
			// One block's, plus the finished blocks, which live until
			// they are concatenated into the output. (At the end the input
			// is often free already; not counted, since how far MLX runs
			// ahead decides whether it is.)
			ws = addS(ws, mulS(r, cout, a), mulS(rows, cout, a))
		}
		return ws
	case "OuterProductMean", "TriangleMultiplication":
		return p.pairWorkspace(s)
	case "ChunkMap":
		return p.regionWorkspace(s)
	}
	return 0
}

// shrink makes s's chunking one step finer; false when it cannot.
func (p *planner) shrink(s *planNode) bool {
	step := func(key string, full int64) bool {
		cur := chunked(full, s.chunk[key])
		if cur <= 1 {
			return false
		}
		next := int64(1)
		for next*2 < cur {
			next *= 2
		}
		if fixed := p.opts.ChunkSize; fixed > 0 && key != "kv_chunk" {
			if fixed >= cur {
				return false
			}
			next = fixed
		}
		s.chunk[key] = next
		return true
	}
	switch s.n.Op {
	case "Attention":
		if p.fusedAttention(s) {
			return false // its memory does not depend on the chunking
		}
		if len(s.outDims) > 2 && step("batch_chunk", s.outDims[0]) {
			return true
		}
		_, q, k, _ := p.attentionDims(s)
		if step("query_chunk", q) {
			return true
		}
		threshold := p.opts.ChunkThreshold
		if threshold <= 0 {
			threshold = defaultChunkThreshold
		}
		if k < threshold {
			return false
		}
		if s.chunk["kv_chunk"] == 0 {
			kc := p.opts.LMAKVChunk
			if kc <= 0 {
				kc = defaultLMAKVChunk
			}
			if kc < k {
				s.chunk["kv_chunk"] = kc
				return true
			}
		}
		return step("kv_chunk", k)
	case "SwiGLU":
		xs := p.shapes[s.n.Inputs[0]]
		return step("row_chunk", prod(xs[:len(xs)-1]))
	case "OuterProductMean", "TriangleMultiplication":
		return step("row_chunk", p.pairRows(s))
	case "ChunkMap":
		return step("chunk", p.regionRows(s))
	}
	return false
}

func (p *planner) whyNot(s *planNode) string {
	if !s.fused {
		return fmt.Sprintf("%s is not a chunkable op (only of3c.Attention, SwiGLU, OuterProductMean, TriangleMultiplication and ChunkMap are; form-regions makes regions of the ops around them)", s.n.QualifiedOp())
	}
	if p.fusedAttention(s) {
		return fmt.Sprintf("%s runs as a fused attention kernel (the CPU's, or the GPU's flash kernel), whose memory (output and biases) no chunking lowers", s.n)
	}
	var at []string
	for _, k := range sortedKeys(s.chunk) {
		at = append(at, fmt.Sprintf("%s=%d", k, s.chunk[k]))
	}
	return fmt.Sprintf("%s is chunked as far as it goes (%s)", s.n, strings.Join(at, " "))
}

// planMemoryPass runs the planner on Options and applies the plan.
func planMemoryPass(c *Context) error {
	if !c.Opts.Planning() {
		c.Notef("no memory budget: nothing planned")
		return nil
	}
	// Regions the plan leaves whole are dissolved back into their ops (one
	// block is the plain graph, and MLX's own order over the plain graph is
	// what the planner's model was measured on), and the graph is planned
	// again: the plain graph's estimate may differ from the region's model.
	var plan *MemoryPlan
	var chunks []ChunkChoice
	for round := 0; ; round++ {
		p, err := PlanMemory(c.G, c.Opts.Dims, c.Opts.MemoryBudget, *c.Opts)
		if err != nil {
			return err
		}
		if err := p.Apply(c.G); err != nil {
			return err
		}
		if plan != nil {
			p.PeakBefore = plan.PeakBefore
		}
		plan = p
		for _, ch := range p.Chunks {
			if i := slices.IndexFunc(chunks, func(x ChunkChoice) bool { return x.Node == ch.Node }); i >= 0 {
				ch.WorkspaceBefore = chunks[i].WorkspaceBefore
				chunks[i] = ch
				continue
			}
			chunks = append(chunks, ch)
		}
		dissolved := 0
		if err := graph.InlineChunkMaps(c.G, func(n *graph.Node) bool {
			whole := n.AttrInt("chunk", 0) == 0
			if whole {
				dissolved++
			}
			return whole
		}); err != nil {
			return err
		}
		if dissolved == 0 || round == 3 {
			break
		}
		c.Notef("%d regions left whole, dissolved", dissolved)
		// What form-regions un-merged for a dissolved region (a
		// LayerNorm recomputed whole, the projection cut in two) merges
		// back: the two LayerNorms are one node again, the two MatMuls of
		// it one projection.
		for _, f := range []func(*Context) error{cse, mergeProjections, dce} {
			if err := f(c); err != nil {
				return err
			}
		}
		if err := c.G.TopoSort(); err != nil {
			return err
		}
		if err := inferTypes(c.G); err != nil {
			return err
		}
	}
	plan.Chunks = chunks
	c.log.Plan = plan
	for _, ch := range plan.Chunks {
		c.Count("chunk:" + ch.Op)
		c.Notef("%s %s: %v", ch.Op, ch.Node, ch.Attrs)
	}
	c.Notef("peak %s → %s (budget %s)", units.FormatBytes(plan.PeakBefore), units.FormatBytes(plan.PeakAfter), units.FormatBytes(plan.Budget))
	return nil
}

// attentionWorkspace models the MLX lowering of of3c.Attention (codegen
// lowerAttention) under the step's chunking: per block of batch rows and
// queries, the logits and their softmax weights; the block's operands as
// MLX copies them (q scaled, q made to wait for the previous block, k and v
// made contiguous for the GEMMs); with LMA the running accumulator; and
// when there is more than one block, the blocks' results, which all live
// until they are concatenated into the output.
func (p *planner) attentionWorkspace(s *planNode, a int64) int64 {
	n := s.n
	if p.fusedAttention(s) {
		// internal/mlx's FastAttention: logits in per-thread 64 KiB
		// buffers, q, k, v read in place; biases made row-contiguous.
		// The GPU's flash kernels: the same, the bias's f32 read and its
		// row-contiguous copy (and the pieces of that copy, where the
		// tiled copy takes it in pieces) alive at once (memory_gpu.go).
		gpu := p.gpuFlashAttention(s)
		var ws int64
		for _, b := range n.Inputs[3:] {
			if b != nil && b.Const == nil {
				copies := int64(1)
				if gpu {
					copies = 2
					if bs := p.shapes[b]; len(bs) >= 2 && bs[len(bs)-2]*bs[len(bs)-1] > GPUTiledCopyCols(4) {
						copies = 3
					}
				}
				ws = addS(ws, mulS(copies, p.bytes[b]))
			}
		}
		return ws
	}
	batch, q, k, cv := p.attentionDims(s)
	fb := 1.0
	out0 := int64(0)
	if bc := s.chunk["batch_chunk"]; bc > 0 && len(s.outDims) > 2 && s.outDims[0] > 0 {
		// The logits batch shrinks with the output's axis 0 when they
		// share it; a logits batch already 1 there is unaffected.
		out0 = s.outDims[0]
		fb = float64(chunked(out0, bc)) / float64(out0)
		if batch >= out0 {
			batch = max(1, int64(float64(batch)*fb))
		}
	}
	qb := chunked(q, s.chunk["query_chunk"])
	fq := float64(qb) / float64(max(q, 1))
	kc := chunked(k, s.chunk["kv_chunk"])
	ws := mulS(2, batch, qb, kc, a)
	if kc < k {
		ws = addS(ws, mulS(batch, qb, cv, a), mulS(2, batch, qb, a)) // acc, running max and normaliser
	}
	// block is the elements of input x in one block: its batch axis (the
	// one right-aligned with the output's axis 0) sliced when > 1.
	block := func(x *graph.Value, f float64) int64 {
		if x == nil {
			return 0
		}
		xs := p.shapes[x]
		e := float64(prod(xs))
		if j := len(xs) - len(s.outDims); out0 > 0 && j >= 0 && xs[j] > 1 {
			e *= fb
		}
		return mulS(int64(min(e*f, float64(maxPlanBytes))), a)
	}
	if n.AttrString("mode", graph.AttentionModeQK) == graph.AttentionModeQK {
		ws = addS(ws, mulS(2, block(n.Inputs[0], fq)), block(n.Inputs[1], 1))
	}
	ws = addS(ws, block(n.Inputs[2], 1))
	if fb < 1 || fq < 1 {
		ws = addS(ws, mulS(prod(s.outDims), a))
	}
	return ws
}

// attentionOutBatch is the output's batch size (all but its last two axes)
// in one block of batch fraction fb.
func (p *planner) attentionOutBatch(s *planNode, fb float64) int64 {
	if len(s.outDims) < 2 {
		return 1
	}
	return max(1, int64(float64(prod(s.outDims[:len(s.outDims)-2]))*fb))
}
