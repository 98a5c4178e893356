package passes

import (
	"fmt"
	"sort"
	"strings"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/units"
)

// Dynamic axial parallelism (DAP, as in FastFold/ScaleFold) over the
// optimized graph: the pair representation [.., N_i, N_j, c] is split by
// rows over P ranks, row-wise ops run on the local rows, and collectives are
// inserted where an op needs another axis. Every rank runs the same
// rewritten graph (of3c.ShardSlice / AllGather / AllToAll, graph/
// infer_of3c_dist.go); docs/ops.md, "Sharded pair stack", has the rules.
//
// States: a value is replicated (every rank holds all of it) or sharded on
// one axis (rank r holds the r-th of P equal chunks). Pair inputs (two
// adjacent axes of the same symbolic dim) start sharded on the first. A node
// keeps its inputs' sharding when its rule allows (elementwise with
// broadcasting, LayerNorm/MatMul/SwiGLU over channels, Transpose, Squeeze,
// Unsqueeze, Reshape, Slice, Split and Concat that keep the sharded axis whole, attention
// sharded on a batch or query axis); otherwise its inputs are gathered and it
// runs replicated. A Transpose that swaps the sharded row axis with the
// column axis becomes an all-to-all (the DAP axis switch before triangle
// attention around the ending node), and a replicated operand that meets a
// sharded one is sliced locally, without communication. Graph outputs are
// gathered. Single-representation ops see only replicated inputs and stay
// replicated.

// ShardPlan is what the shard-pair pass decided.
type ShardPlan struct {
	Parts       int               `json:"parts"`
	Dim         string            `json:"dim"` // the sharded symbolic dim (N)
	Inputs      []ShardedValue    `json:"inputs"`
	Nodes       []ShardNode       `json:"nodes"`
	Collectives []ShardCollective `json:"collectives"`
}

// ShardedValue is a graph input sharded on Axis.
type ShardedValue struct {
	Name string `json:"name"`
	Axis int    `json:"axis"`
}

// ShardNode is one node of the original graph: Axis ≥ 0 sharded on that
// output axis, −1 replicated. Why explains a replicated node that had a
// sharded input.
type ShardNode struct {
	Node string `json:"node"`
	Op   string `json:"op"`
	Axis int    `json:"axis"`
	Why  string `json:"why,omitempty"`
}

// ShardCollective is one inserted collective (or local slice).
type ShardCollective struct {
	Kind   string      `json:"kind"` // all_gather, all_to_all, shard_slice
	Value  string      `json:"value"`
	For    string      `json:"for"` // the node (or "output") that needed it
	From   int         `json:"from"`
	To     int         `json:"to"`
	Shape  graph.Shape `json:"shape"` // the whole (unsharded) value
	DType  graph.DType `json:"dtype"`
	Output string      `json:"output"`
}

// Bytes is what one rank receives for c at dims: all_gather (P−1)/P of the
// whole value; all_to_all, built on MLX's all_gather, the same (an ideal
// all-to-all would be (P−1)/P²); all_sum, a ring all-reduce, 2(P−1)/P;
// shard_slice nothing.
func (c ShardCollective) Bytes(parts int, dims map[string]int64) (int64, error) {
	if c.Kind == "shard_slice" || parts < 2 {
		return 0, nil
	}
	if c.Kind == "all_sum" { // a ring all-reduce: reduce-scatter then all-gather
		n, err := c.whole(dims)
		return 2 * n * int64(parts-1) / int64(parts), err
	}
	n, err := c.whole(dims)
	return n * int64(parts-1) / int64(parts), err
}

func (c ShardCollective) whole(dims map[string]int64) (int64, error) {
	s, err := graph.EvalShape(c.Shape, dims)
	if err != nil {
		return 0, err
	}
	n := int64(c.DType.Size())
	for _, d := range s {
		n *= d
	}
	return n, nil
}

// Format prints the plan; with dims (e.g. N=1024) the bytes each
// collective moves per rank.
func (p *ShardPlan) Format(dims map[string]int64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "shard plan: %d ranks, pair dim %s split by rows (axis of each sharded value below)\n", p.Parts, p.Dim)
	for _, in := range p.Inputs {
		fmt.Fprintf(&b, "  input %s: sharded on axis %d\n", in.Name, in.Axis)
	}
	sharded, repl := 0, 0
	for _, n := range p.Nodes {
		if n.Axis >= 0 {
			sharded++
		} else {
			repl++
		}
	}
	fmt.Fprintf(&b, "nodes: %d sharded, %d replicated\n", sharded, repl)
	for _, n := range p.Nodes {
		mode := "replicated"
		if n.Axis >= 0 {
			mode = fmt.Sprintf("sharded axis %d", n.Axis)
		}
		fmt.Fprintf(&b, "  %-16s %-26s %s", mode, n.Op, n.Node)
		if n.Why != "" {
			fmt.Fprintf(&b, "  (%s)", n.Why)
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "collectives: %d\n", len(p.Collectives))
	var total int64
	for _, c := range p.Collectives {
		move := ""
		switch c.Kind {
		case "all_gather":
			move = fmt.Sprintf("axis %d → replicated", c.From)
		case "all_to_all":
			move = fmt.Sprintf("axis %d → axis %d", c.From, c.To)
		case "shard_slice":
			move = fmt.Sprintf("replicated → axis %d (local)", c.To)
		case "all_sum":
			move = "partial sums → replicated"
		}
		fmt.Fprintf(&b, "  %-11s %s %s %v before %s: %s", c.Kind, c.Value, c.DType, c.Shape, c.For, move)
		if len(dims) > 0 {
			if n, err := c.Bytes(p.Parts, dims); err == nil {
				total += n
				fmt.Fprintf(&b, ", receives %s per rank", units.FormatBytes(n))
			} else {
				fmt.Fprintf(&b, ", bytes: %v", err)
			}
		}
		b.WriteByte('\n')
	}
	if len(dims) > 0 {
		var kv []string
		for k, v := range dims {
			kv = append(kv, fmt.Sprintf("%s=%d", k, v))
		}
		sort.Strings(kv)
		fmt.Fprintf(&b, "total received per rank at %s: %s (all_to_all as MLX all_gather + slice)\n",
			strings.Join(kv, ","), units.FormatBytes(total))
	}
	return b.String()
}

func shardPairPass(c *Context) error {
	p := c.Opts.Shards
	if p < 2 {
		return fmt.Errorf("shard-pair needs Options.Shards ≥ 2 (got %d)", p)
	}
	plan, err := ShardGraph(c.G, p)
	if err != nil {
		return err
	}
	c.log.Shard = plan
	for _, col := range plan.Collectives {
		c.Count(col.Kind)
	}
	c.Notef("%d ranks on %s: %d collectives", p, plan.Dim, len(plan.Collectives))
	return nil
}

type sharder struct {
	g     *graph.Graph
	parts int
	dim   graph.Dim
	typ   map[*graph.Value]graph.Type // types before the rewrite
	st    map[*graph.Value]int        // sharded axis; absent: replicated
	local map[*graph.Value]*graph.Value
	whole map[*graph.Value]*graph.Value // seeded inputs: the replicated original
	cache map[convKey]*graph.Value
	plan  *ShardPlan
	cur   string // the node being rewritten
	dead  map[*graph.Node]bool
	like  *graph.Value // a whole pair input: the collectives' size reference
	likeA int
}

type convKey struct {
	v    *graph.Value
	want int
}

// ShardGraph rewrites g (typed, topologically sorted) for parts ranks and
// returns the plan. A graph with no pair input is an error.
func ShardGraph(g *graph.Graph, parts int) (*ShardPlan, error) {
	s := &sharder{g: g, parts: parts, typ: map[*graph.Value]graph.Type{}, st: map[*graph.Value]int{},
		local: map[*graph.Value]*graph.Value{}, whole: map[*graph.Value]*graph.Value{}, cache: map[convKey]*graph.Value{},
		dead: map[*graph.Node]bool{}, plan: &ShardPlan{Parts: parts}}
	for _, v := range g.AllValues() {
		s.typ[v] = v.Type
	}
	// Seed: pair inputs.
	for _, in := range g.Inputs {
		if ax := pairAxis(in.Type); ax >= 0 {
			d := in.Type.Shape[ax]
			if s.plan.Dim == "" {
				s.dim = d
				s.plan.Dim = d.String()
			}
			if !d.Equal(s.dim) {
				continue
			}
			s.plan.Inputs = append(s.plan.Inputs, ShardedValue{Name: in.Name, Axis: ax})
		}
	}
	if s.plan.Dim == "" {
		return nil, fmt.Errorf("no pair input (two adjacent axes of one symbolic dim) to shard")
	}
	if _, static := graph.DimInt(s.dim); static {
		return nil, fmt.Errorf("pair dim %s is static; sharding needs a symbolic token dim", s.dim)
	}
	uses := g.Uses()
	for _, si := range s.plan.Inputs {
		var in *graph.Value
		for _, v := range g.Inputs {
			if v.Name == si.Name {
				in = v
			}
		}
		if len(uses[in]) == 0 && !g.IsOutput(in) {
			continue
		}
		n := g.AddNode(graph.FusedDomain, "ShardSlice", []*graph.Value{in}, []string{in.Name + "_shard"},
			map[string]graph.Attr{"axis": intAttr(int64(si.Axis)), "parts": intAttr(int64(parts))})
		s.st[in] = si.Axis
		if s.like == nil {
			s.like, s.likeA = in, si.Axis
		}
		s.local[in] = n.Outputs[0]
		s.whole[in] = in
		s.plan.Collectives = append(s.plan.Collectives, ShardCollective{Kind: "shard_slice", Value: in.Name,
			For: "input", From: -1, To: si.Axis, Shape: in.Type.Shape, DType: in.Type.DType, Output: n.Outputs[0].Name})
	}
	nodes := append([]*graph.Node(nil), g.Nodes...)
	for _, n := range nodes {
		if n.Domain == graph.FusedDomain && n.Op == "ShardSlice" && s.whole[n.Input(0)] != nil {
			continue // a seed just added
		}
		if err := s.node(n); err != nil {
			return nil, fmt.Errorf("shard %s: %w", n, err)
		}
	}
	if len(s.dead) > 0 {
		kept := g.Nodes[:0]
		for _, n := range g.Nodes {
			if !s.dead[n] {
				kept = append(kept, n)
			}
		}
		g.Nodes = kept
	}
	for i, o := range g.Outputs {
		if _, sh := s.st[o]; !sh {
			continue
		}
		s.cur = "output"
		name := o.Name
		gv := s.conv(o, -1)
		if gv == o {
			continue
		}
		lv := o
		if l := s.local[o]; l != nil {
			lv = l
		}
		if lv.Name == name {
			lv.Name = g.UniqueName(name + "_local")
		}
		gv.Name = name
		g.Outputs[i] = gv
	}
	return s.plan, nil
}

func intAttr(v int64) graph.Attr { return graph.Attr{Kind: graph.AttrInt, Int: v} }

// pairAxis is the first of two adjacent axes of one symbolic dim, or −1.
func pairAxis(t graph.Type) int {
	if !t.Ranked {
		return -1
	}
	for i := 0; i+1 < len(t.Shape); i++ {
		if t.Shape[i].IsSymbolic() && t.Shape[i].Equal(t.Shape[i+1]) {
			return i
		}
	}
	return -1
}

func (s *sharder) axis(v *graph.Value) int {
	if v == nil {
		return -1
	}
	if a, ok := s.st[v]; ok {
		return a
	}
	return -1
}

func (s *sharder) shape(v *graph.Value) graph.Shape { return s.typ[v].Shape }

// full reports whether v's dim at ax is the whole pair dim.
func (s *sharder) full(v *graph.Value, ax int) bool {
	sh := s.shape(v)
	return ax >= 0 && ax < len(sh) && sh[ax].Equal(s.dim)
}

func (s *sharder) addColl(kind string, v *graph.Value, from, to int, out *graph.Value) {
	t := s.typ[v]
	s.plan.Collectives = append(s.plan.Collectives, ShardCollective{Kind: kind, Value: v.Name, For: s.cur,
		From: from, To: to, Shape: t.Shape, DType: t.DType, Output: out.Name})
}

// conv returns the local value of v in state want (−1 replicated), adding
// the collective that makes it.
func (s *sharder) conv(v *graph.Value, want int) *graph.Value {
	cur := s.axis(v)
	if cur == want {
		if l := s.local[v]; l != nil {
			return l
		}
		return v
	}
	k := convKey{v, want}
	if c, ok := s.cache[k]; ok {
		return c
	}
	if want < 0 && s.whole[v] != nil {
		return s.whole[v]
	}
	src := v
	if l := s.local[v]; l != nil {
		src = l
	}
	if w := s.whole[v]; w != nil && want >= 0 { // every rank holds all of v: slice, don't move
		src, cur = w, -1
	}
	p := intAttr(int64(s.parts))
	var out *graph.Value
	switch {
	case want < 0:
		n := s.g.AddNode(graph.FusedDomain, "AllGather", []*graph.Value{src, s.like}, []string{v.Name + "_gathered"},
			map[string]graph.Attr{"axis": intAttr(int64(cur)), "parts": p, "like_axis": intAttr(int64(s.likeA))})
		out = n.Outputs[0]
		s.addColl("all_gather", v, cur, -1, out)
	case cur < 0:
		n := s.g.AddNode(graph.FusedDomain, "ShardSlice", []*graph.Value{src}, []string{v.Name + "_shard"},
			map[string]graph.Attr{"axis": intAttr(int64(want)), "parts": p})
		out = n.Outputs[0]
		s.addColl("shard_slice", v, -1, want, out)
	default:
		n := s.g.AddNode(graph.FusedDomain, "AllToAll", []*graph.Value{src, s.like}, []string{v.Name + "_a2a"},
			map[string]graph.Attr{"split_axis": intAttr(int64(want)), "concat_axis": intAttr(int64(cur)), "parts": p,
				"like_axis": intAttr(int64(s.likeA))})
		out = n.Outputs[0]
		s.addColl("all_to_all", v, cur, want, out)
	}
	s.cache[k] = out
	return out
}

// canConv reports whether v can be brought to want.
func (s *sharder) canConv(v *graph.Value, want int) bool {
	if v == nil {
		return want < 0
	}
	if want < 0 || s.axis(v) == want {
		return true
	}
	return s.full(v, want)
}

// node rewrites n's inputs per its rule and records its outputs' states.
func (s *sharder) node(n *graph.Node) error {
	s.cur = n.Name
	if s.cur == "" && len(n.Outputs) > 0 && n.Outputs[0] != nil {
		s.cur = n.Outputs[0].Name
	}
	anySharded := false
	for _, in := range n.Inputs {
		if s.axis(in) >= 0 {
			anySharded = true
		}
	}
	if anySharded && n.QualifiedOp() == "of3c.TriangleMultiplication" {
		if ok, err := s.trimul(n); ok || err != nil {
			return err
		}
	}
	wants, outs, why := []int(nil), []int(nil), ""
	if anySharded {
		wants, outs, why = s.rule(n)
	}
	if wants == nil { // replicated
		wants = make([]int, len(n.Inputs))
		for i := range wants {
			wants[i] = -1
		}
		outs = make([]int, len(n.Outputs))
		for i := range outs {
			outs[i] = -1
		}
	}
	for i, in := range n.Inputs {
		if in == nil {
			continue
		}
		if !s.canConv(in, wants[i]) {
			return fmt.Errorf("input %d (%s) cannot be sharded on axis %d", i, in.Name, wants[i])
		}
		n.Inputs[i] = s.conv(in, wants[i])
	}
	axis := -1
	for i, o := range n.Outputs {
		if o != nil && outs[i] >= 0 {
			s.st[o] = outs[i]
			axis = outs[i]
		}
	}
	if anySharded && n.QualifiedOp() == "of3c.TriangleMultiplication" && len(n.Outputs) == 1 {
		// Keep only this rank's rows of the whole result right away, so the
		// per-pair tail (LN_out, projection, gate) runs sharded.
		o := n.Outputs[0]
		if ra := len(s.shape(o)) - 3; ra >= 0 && s.full(o, ra) {
			sl := s.conv(o, ra)
			s.st[o], s.local[o], s.whole[o] = ra, sl, o
			delete(s.cache, convKey{o, ra})
			axis = ra
			why = "not decomposable here (needs f32/f64, rows sharded, constant W): x and mask gathered, the op run whole on every rank, its rows sliced after"
		}
	}
	if !anySharded {
		why = ""
	} else if axis < 0 && why == "" {
		why = "inputs gathered"
	}
	s.plan.Nodes = append(s.plan.Nodes, ShardNode{Node: s.cur, Op: n.QualifiedOp(), Axis: axis, Why: why})
	return nil
}

var shardElementwise = map[string]bool{
	"Add": true, "Sub": true, "Mul": true, "Div": true, "Pow": true, "Max": true, "Min": true,
	"Sigmoid": true, "Relu": true, "Tanh": true, "Exp": true, "Log": true, "Sqrt": true, "Neg": true,
	"Abs": true, "Erf": true, "Reciprocal": true, "Softplus": true, "Cast": true, "Where": true,
	"Equal": true, "Less": true, "Greater": true, "Not": true, "And": true, "Or": true, "Clip": true,
	"Gelu": true, "Silu": true, "HardSigmoid": true, "LeakyRelu": true, "Elu": true, "Sign": true,
	"Floor": true, "Ceil": true, "Round": true, "IsNaN": true, "IsInf": true, "LessOrEqual": true,
	"GreaterOrEqual": true, "Xor": true, "Mod": true,
}

func same(n, v int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// rule returns the wanted input states and the output states for n, or nil
// wants to run n replicated (with a reason).
func (s *sharder) rule(n *graph.Node) (wants, outs []int, why string) {
	op := n.QualifiedOp()
	x := n.Input(0)
	a := s.axis(x)
	switch {
	case shardElementwise[op]:
		return s.elementwise(n)
	case op == "LayerNormalization" || op == "RMSNormalization":
		r := len(s.shape(x))
		ax := int(n.AttrInt("axis", -1))
		if ax < 0 {
			ax += r
		}
		if a < 0 || a >= ax {
			return nil, nil, "normalizes over the sharded axis"
		}
		for _, in := range n.Inputs[1:] {
			if in != nil && s.axis(in) >= 0 {
				return nil, nil, "sharded scale"
			}
		}
		wants = same(len(n.Inputs), -1)
		wants[0] = a
		outs = same(len(n.Outputs), -1)
		outs[0] = a
		return wants, outs, ""
	case op == "MatMul":
		w := n.Input(1)
		r := len(s.shape(x))
		if a < 0 || s.axis(w) >= 0 || len(s.shape(w)) != 2 || a > r-2 {
			return nil, nil, "contracts or broadcasts the sharded axis"
		}
		return []int{a, -1}, []int{a}, ""
	case op == "of3c.SwiGLU":
		r := len(s.shape(x))
		if a < 0 || a >= r-1 {
			return nil, nil, "sharded channels"
		}
		for _, in := range n.Inputs[1:] {
			if in != nil && s.axis(in) >= 0 {
				return nil, nil, "sharded weights"
			}
		}
		wants = same(len(n.Inputs), -1)
		wants[0] = a
		return wants, []int{a}, ""
	case op == "Transpose":
		perm, ok := n.AttrInts("perm")
		if !ok || a < 0 {
			return nil, nil, "no perm"
		}
		if a < len(perm) && int(perm[a]) != a && s.full(x, int(perm[a])) {
			// The DAP axis switch: re-shard on the axis that lands on a.
			return []int{int(perm[a])}, []int{a}, ""
		}
		for k, p := range perm {
			if int(p) == a {
				return []int{a}, []int{k}, ""
			}
		}
		return nil, nil, "bad perm"
	case op == "Squeeze" || op == "Unsqueeze":
		return s.squeeze(n, op == "Unsqueeze")
	case op == "Reshape":
		return s.reshape(n)
	case op == "Split":
		ax := int(n.AttrInt("axis", 0))
		if ax < 0 {
			ax += len(s.shape(x))
		}
		if a < 0 || a == ax || s.axis(n.Input(1)) >= 0 {
			return nil, nil, "splits the sharded axis"
		}
		wants = same(len(n.Inputs), -1)
		wants[0] = a
		return wants, same(len(n.Outputs), a), ""
	case op == "Slice":
		r := len(s.shape(x))
		starts := n.Input(1)
		if a < 0 || starts == nil || starts.Const == nil {
			return nil, nil, "slice bounds not constant"
		}
		var axes []int64
		if av := n.Input(3); av != nil {
			if av.Const == nil {
				return nil, nil, "slice axes not constant"
			}
			xs, err := av.Const.Int64s()
			if err != nil {
				return nil, nil, "slice axes not ints"
			}
			axes = xs
		} else {
			for i := int64(0); i < starts.Const.NumElements(); i++ {
				axes = append(axes, i)
			}
		}
		for _, ax := range axes {
			if ax < 0 {
				ax += int64(r)
			}
			if int(ax) == a {
				return nil, nil, "slices the sharded axis"
			}
		}
		for _, in := range n.Inputs[1:] {
			if in != nil && s.axis(in) >= 0 {
				return nil, nil, "sharded slice bounds"
			}
		}
		wants = same(len(n.Inputs), -1)
		wants[0] = a
		return wants, []int{a}, ""
	case op == "Concat":
		ax := int(n.AttrInt("axis", 0))
		if ax < 0 {
			ax += len(s.shape(x))
		}
		t := -1
		for _, in := range n.Inputs {
			if s.axis(in) >= 0 {
				t = s.axis(in)
				break
			}
		}
		if t == ax {
			return nil, nil, "concatenates along the sharded axis"
		}
		wants = same(len(n.Inputs), t)
		for _, in := range n.Inputs {
			if !s.canConv(in, t) {
				return nil, nil, "operand not shardable"
			}
		}
		return wants, []int{t}, ""
	case op == "of3c.Attention":
		return s.attention(n)
	case op == "of3c.TriangleMultiplication":
		return nil, nil, ""
	}
	return nil, nil, "no sharding rule for " + op
}

func (s *sharder) elementwise(n *graph.Node) (wants, outs []int, why string) {
	if len(n.Outputs) != 1 || n.Outputs[0] == nil {
		return nil, nil, "several outputs"
	}
	r := len(s.shape(n.Outputs[0]))
	t := -1
	for _, in := range n.Inputs {
		if a := s.axis(in); a >= 0 {
			t = a + r - len(s.shape(in))
			break
		}
	}
	wants = make([]int, len(n.Inputs))
	for i, in := range n.Inputs {
		if in == nil {
			wants[i] = -1
			continue
		}
		ia := t - (r - len(s.shape(in)))
		sh := s.shape(in)
		if ia < 0 || sh[ia].Equal(graph.D(1)) {
			if s.axis(in) >= 0 {
				return nil, nil, "operand sharded on a broadcast axis"
			}
			wants[i] = -1
			continue
		}
		if !s.canConv(in, ia) {
			return nil, nil, "operand not shardable on the output's axis"
		}
		wants[i] = ia
	}
	return wants, []int{t}, ""
}

// axesOf reads Squeeze/Unsqueeze axes (constant input 1 or attribute).
func (s *sharder) axesOf(n *graph.Node, rank int) ([]int, bool) {
	var raw []int64
	if v := n.Input(1); v != nil {
		if v.Const == nil {
			return nil, false
		}
		xs, err := v.Const.Int64s()
		if err != nil {
			return nil, false
		}
		raw = xs
	} else if xs, ok := n.AttrInts("axes"); ok {
		raw = xs
	}
	out := make([]int, len(raw))
	for i, x := range raw {
		if x < 0 {
			x += int64(rank)
		}
		out[i] = int(x)
	}
	return out, true
}

func (s *sharder) squeeze(n *graph.Node, unsqueeze bool) (wants, outs []int, why string) {
	x := n.Input(0)
	a := s.axis(x)
	in, out := s.shape(x), s.shape(n.Outputs[0])
	rank := len(in)
	if unsqueeze {
		rank = len(out)
	}
	axes, ok := s.axesOf(n, rank)
	if !ok {
		return nil, nil, "axes not constant"
	}
	set := map[int]bool{}
	for _, x := range axes {
		set[x] = true
	}
	if !unsqueeze && len(axes) == 0 {
		for i, d := range in {
			if d.Equal(graph.D(1)) {
				set[i] = true
			}
		}
	}
	k := -1
	if unsqueeze {
		j := 0
		for o := 0; o < len(out); o++ {
			if set[o] {
				continue
			}
			if j == a {
				k = o
			}
			j++
		}
	} else {
		if set[a] {
			return nil, nil, "squeezes the sharded axis"
		}
		j := 0
		for i := range in {
			if set[i] {
				continue
			}
			if i == a {
				k = j
			}
			j++
		}
	}
	if k < 0 {
		return nil, nil, "axis lost"
	}
	wants = same(len(n.Inputs), -1)
	wants[0] = a
	return wants, []int{k}, ""
}

func (s *sharder) reshape(n *graph.Node) (wants, outs []int, why string) {
	x, tv := n.Input(0), n.Input(1)
	a := s.axis(x)
	if tv == nil || tv.Const == nil || s.axis(tv) >= 0 {
		return nil, nil, "target not constant"
	}
	target, err := tv.Const.Int64s()
	if err != nil {
		return nil, nil, "target not ints"
	}
	in, out := s.shape(x), s.shape(n.Outputs[0])
	pre := graph.DimProduct(in[:a]...)
	for b := range out {
		if !out[b].Equal(in[a]) || !graph.DimProduct(out[:b]...).Equal(pre) || b >= len(target) {
			continue
		}
		// The local target must give the local rows: a -1 there, or a 0
		// copying the (local) sharded axis itself; no other -1.
		ok := target[b] == -1 || (target[b] == 0 && b == a)
		for j, t := range target {
			if j != b && (t == -1 && target[b] != 0 || t == 0 && j == a) {
				ok = false
			}
		}
		if ok {
			return []int{a, -1}, []int{b}, ""
		}
	}
	return nil, nil, "merges or splits the sharded axis"
}

func (s *sharder) attention(n *graph.Node) (wants, outs []int, why string) {
	q := n.Input(0)
	a := s.axis(q)
	r := len(s.shape(q))
	if a < 0 {
		return nil, nil, "queries replicated (single representation): biases gathered"
	}
	if a >= r-1 {
		return nil, nil, "sharded head channels"
	}
	wants = make([]int, len(n.Inputs))
	for i, in := range n.Inputs {
		if in == nil {
			wants[i] = -1
			continue
		}
		switch {
		case i == 1 || i == 2: // k, v
			if a == r-2 { // query-sharded: every key on every rank
				wants[i] = -1
			} else if s.canConv(in, a+len(s.shape(in))-r) {
				wants[i] = a + len(s.shape(in)) - r
			} else {
				return nil, nil, "keys not shardable on the batch axis"
			}
		case i >= 3: // biases broadcast into the logits [.., Lq, Lk]
			lr := r // logits rank = q's rank
			ia := a - (lr - len(s.shape(in)))
			if ia < 0 || s.shape(in)[ia].Equal(graph.D(1)) {
				wants[i] = -1
			} else if s.canConv(in, ia) {
				wants[i] = ia
			} else {
				return nil, nil, "bias not shardable"
			}
		default:
			wants[i] = a
		}
	}
	return wants, []int{a}, ""
}

// trimul rewrites a TriangleMultiplication whose x is sharded by rows into
// local projections and gates, the channel-batched product, and one
// collective (docs/ops.md):
//
//	outgoing p_ij = Σ_k a_ik b_jk: a's local rows times every row of b
//	  (b all-gathered); p sharded by rows.
//	incoming p_ij = Σ_k a_ki b_kj: the local rows are k, so each rank forms
//	  the partial sum over its k for every (i, j), and an all_sum adds them;
//	  p is then whole on every rank and its rows are sliced locally.
//
// It reports false (the caller gathers x instead) for other dtypes than
// f32/f64 (the fused op accumulates f16/bf16 in f32), a non-constant W, or
// x not sharded by rows.
func (s *sharder) trimul(n *graph.Node) (bool, error) {
	x, mask, w := n.Input(0), n.Input(1), n.Input(2)
	xt := s.typ[x]
	r := len(xt.Shape)
	if r < 3 || s.axis(x) != r-3 || (xt.DType != graph.Float32 && xt.DType != graph.Float64) {
		return false, nil
	}
	if w == nil || w.Const == nil || len(w.Const.Shape) != 2 || w.Const.Shape[1]%4 != 0 {
		return false, nil
	}
	if mask != nil && (len(s.shape(mask)) != r || !s.canConv(mask, r-3)) {
		return false, nil
	}
	h := w.Const.Shape[1] / 4
	outgoing := n.AttrString("direction", graph.TriangleOutgoing) == graph.TriangleOutgoing
	base := n.Outputs[0].Name
	add := func(op string, ins []*graph.Value, attrs map[string]graph.Attr, outs ...string) *graph.Node {
		if len(outs) == 0 {
			outs = []string{base + "_" + strings.ToLower(op)}
		}
		return s.g.AddNode("", op, ins, outs, attrs)
	}
	perm := func(last3 ...int) graph.Attr {
		p := make([]int64, 0, r)
		for i := 0; i < r-3; i++ {
			p = append(p, int64(i))
		}
		for _, a := range last3 {
			p = append(p, int64(r-3+a))
		}
		return graph.Attr{Kind: graph.AttrInts, Ints: p}
	}
	xl := s.conv(x, r-3)
	var ml *graph.Value
	if mask != nil {
		ml = s.conv(mask, r-3)
	}
	proj := add("MatMul", []*graph.Value{xl, w}, nil).Outputs[0]
	sizes := s.g.AddConst(s.g.UniqueName(base+"_split"), graph.NewTensorI64([]int64{4}, []int64{h, h, h, h}))
	sp := add("Split", []*graph.Value{proj, sizes}, map[string]graph.Attr{"axis": intAttr(-1)},
		base+"_ap", base+"_ag", base+"_bp", base+"_bg").Outputs
	gated := func(p, g *graph.Value) *graph.Value {
		gate := add("Sigmoid", []*graph.Value{g}, nil).Outputs[0]
		if ml != nil {
			gate = add("Mul", []*graph.Value{ml, gate}, nil).Outputs[0]
		}
		return add("Mul", []*graph.Value{gate, p}, nil).Outputs[0]
	}
	a, b := gated(sp[0], sp[1]), gated(sp[2], sp[3])
	o := n.Outputs[0]
	s.cur = o.Name
	var local, whole *graph.Value
	if outgoing {
		aT := add("Transpose", []*graph.Value{a}, map[string]graph.Attr{"perm": perm(2, 0, 1)}).Outputs[0] // [*, c, i, k]
		gb := s.g.AddNode(graph.FusedDomain, "AllGather", []*graph.Value{b, s.like}, []string{base + "_b_gathered"},
			map[string]graph.Attr{"axis": intAttr(int64(r - 3)), "parts": intAttr(int64(s.parts)), "like_axis": intAttr(int64(s.likeA))})
		s.addCollShape("all_gather", base+" b", xt.Shape[:r-1], h, xt.DType, r-3, -1, gb.Outputs[0])
		bT := add("Transpose", []*graph.Value{gb.Outputs[0]}, map[string]graph.Attr{"perm": perm(2, 1, 0)}).Outputs[0] // [*, c, k, j]
		pT := add("MatMul", []*graph.Value{aT, bT}, nil).Outputs[0]                                                    // [*, c, i, j]
		local = add("Transpose", []*graph.Value{pT}, map[string]graph.Attr{"perm": perm(1, 2, 0)}).Outputs[0]
	} else {
		aT := add("Transpose", []*graph.Value{a}, map[string]graph.Attr{"perm": perm(2, 1, 0)}).Outputs[0] // [*, c, i, k]
		bT := add("Transpose", []*graph.Value{b}, map[string]graph.Attr{"perm": perm(2, 0, 1)}).Outputs[0] // [*, c, k, j]
		part := add("MatMul", []*graph.Value{aT, bT}, nil).Outputs[0]                                      // [*, c, i, j] over local k
		sum := s.g.AddNode(graph.FusedDomain, "AllSum", []*graph.Value{part}, []string{base + "_summed"},
			map[string]graph.Attr{"parts": intAttr(int64(s.parts))})
		full := append(graph.Shape(nil), xt.Shape[:r-3]...)
		full = append(full, graph.D(h), xt.Shape[r-2], xt.Shape[r-2])
		s.addCollShape("all_sum", base+" partial products", full, 0, xt.DType, -1, -1, sum.Outputs[0])
		whole = add("Transpose", []*graph.Value{sum.Outputs[0]}, map[string]graph.Attr{"perm": perm(1, 2, 0)}).Outputs[0]
		sl := s.g.AddNode(graph.FusedDomain, "ShardSlice", []*graph.Value{whole}, []string{base + "_rows"},
			map[string]graph.Attr{"axis": intAttr(int64(r - 3)), "parts": intAttr(int64(s.parts))})
		full2 := append(graph.Shape(nil), xt.Shape[:r-1]...)
		s.addCollShape("shard_slice", base, full2, h, xt.DType, -1, r-3, sl.Outputs[0])
		local = sl.Outputs[0]
	}
	s.st[o], s.local[o] = r-3, local
	if whole != nil {
		s.whole[o] = whole
	}
	s.dead[n] = true
	how := "decomposed: local projections and gates, b all-gathered, local rows of the product"
	if !outgoing {
		how = "decomposed: local projections and gates, partial products over the local k summed across ranks (all_sum), rows sliced"
	}
	s.plan.Nodes = append(s.plan.Nodes, ShardNode{Node: o.Name, Op: n.QualifiedOp(), Axis: r - 3, Why: how})
	return true, nil
}

// addCollShape records a collective of a value the pass made, by its
// whole shape (prefix plus a channel dim ch when ch > 0).
func (s *sharder) addCollShape(kind, what string, prefix graph.Shape, ch int64, dt graph.DType, from, to int, out *graph.Value) {
	sh := append(graph.Shape(nil), prefix...)
	if ch > 0 {
		sh = append(sh, graph.D(ch))
	}
	s.plan.Collectives = append(s.plan.Collectives, ShardCollective{Kind: kind, Value: what, For: s.cur,
		From: from, To: to, Shape: sh, DType: dt, Output: out.Name})
}
