package passes

import (
	"fmt"
	"slices"

	"github.com/of3c/of3c/graph"
)

// Row-chunked regions (pass form-regions, issue 11). The fused ops carry
// their own chunk attributes, but the unfused ops around them — the
// LayerNorm before a triangle attention, its merged q/k/v/gate projection,
// the head reshapes, the gate, the output projection and the residual Add —
// always ran whole, so every [N, N, ·] intermediate of a pair-stack layer
// existed at once. A region is a connected set of nodes that all treat one
// axis (the "row axis") as a batch axis: each row of the output depends only
// on the same row of the inputs that have the axis, and on the whole of the
// inputs that lack it (weights, a broadcast mask, the triangle bias). Such a
// set can run on slices of that axis and concatenate, with identical
// numbers; the planner chooses the slice (of3c.ChunkMap's chunk).
//
// Per op, which axes are row axes (rowRule): elementwise ops with
// broadcasting (an input lacking the axis or of size 1 there is passed
// whole), LayerNormalization/Softmax/reductions over other axes, MatMul by
// a weight without the axis, Reshape that keeps the row axis and every axis
// before it, Transpose that keeps the row axis in place, Split/Slice/Gather
// on other axes, Squeeze/Unsqueeze, Cast, of3c.Attention with the row axis
// a batch axis (biases broadcast on it passed whole), of3c.SwiGLU.
// TriangleMultiplication and OuterProductMean need every row and are never
// in a region (their own row_chunk chunks them).
//
// Regions are grown from seeds — the of3c.Attention and of3c.SwiGLU nodes
// with a symbolic batch axis — forward into consumers and backward into
// producers whose outputs only the region reads. A merged projection
// (MatMul by a constant + Split) whose Split also feeds something outside
// the region (the triangle bias channels, needed whole by every chunk) is
// un-merged first: the weight is cut into the columns computed whole
// outside and those computed inside. Growth never crosses a Transpose that
// moves the row axis: that is where the pair stack switches between
// rows and columns, and a region that took both sides would need its own
// output whole.

// seedAxis is the row axis a seed node offers, or -1.
func seedAxis(n *graph.Node) int {
	if n.Domain == graph.DefaultDomain && n.Op == "LayerNormalization" && len(n.Outputs) == 1 {
		// A pair or MSA representation's LayerNorm ([*, N, N, c]): the
		// start of a layer's projections, or, after a triangle
		// multiplication, of its gate and residual.
		x := n.Outputs[0]
		if x.Type.Rank() < 4 {
			return -1
		}
		ax, err := normAxis(n.AttrInt("axis", -1), x.Type.Rank())
		if err != nil {
			return -1
		}
		return firstRowAxis(x, ax)
	}
	if n.Domain != graph.FusedDomain {
		return -1
	}
	var x *graph.Value
	var batch int
	switch n.Op {
	case "Attention":
		if n.AttrString("mode", graph.AttentionModeQK) != graph.AttentionModeQK {
			return -1
		}
		x = n.Outputs[0]
		batch = x.Type.Rank() - 2
	case "SwiGLU":
		x = n.Outputs[0]
		batch = x.Type.Rank() - 1
	default:
		return -1
	}
	return firstRowAxis(x, batch)
}

// firstRowAxis is the first axis of x below axis end that is symbolic (a
// token or sequence dim) or, in an export with fixed sizes, larger than 1;
// -1 when there is none.
func firstRowAxis(x *graph.Value, end int) int {
	if !x.Type.Ranked {
		return -1
	}
	for a := 0; a < end; a++ {
		if d := x.Type.Shape[a]; d.IsSymbolic() || d.IsStatic() && d.Val > 1 {
			return a
		}
	}
	return -1
}

// rowRule gives the row axis of every input and output of n when value v
// (an input or output of n) has row axis a; -1 for an input read whole. ok
// is false when n does not treat that axis as a row axis.
func rowRule(n *graph.Node, v *graph.Value, a int, row graph.Dim) (ins, outs []int, ok bool) {
	out := n.Outputs[0]
	if out == nil || !out.Type.Ranked {
		return nil, nil, false
	}
	for _, o := range n.Outputs {
		if o == nil || !o.Type.Ranked {
			return nil, nil, false
		}
	}
	ro := out.Type.Rank()
	// Output axis from the known value.
	oa := -1
	for _, o := range n.Outputs {
		if o == v {
			oa = a
		}
	}
	inIdx := -1
	if oa < 0 {
		inIdx = slices.Index(n.Inputs, v)
		if inIdx < 0 {
			return nil, nil, false
		}
	}
	ins = make([]int, len(n.Inputs))
	outs = make([]int, len(n.Outputs))
	// aligned: the axis of input i right-aligned with output axis oa, -1
	// when it lacks it or broadcasts there.
	aligned := func(i int) int {
		in := n.Inputs[i]
		if in == nil || !in.Type.Ranked {
			return -2
		}
		ai := oa - (ro - in.Type.Rank())
		if ai < 0 || (in.Type.Shape[ai].IsStatic() && in.Type.Shape[ai].Val == 1) {
			return -1
		}
		if !in.Type.Shape[ai].Equal(row) {
			return -2
		}
		return ai
	}
	constInts := func(i int) ([]int64, bool) {
		x := n.Input(i)
		if x == nil || x.Const == nil {
			return nil, false
		}
		vals, err := x.Const.Int64s()
		return vals, err == nil
	}
	setAll := func(x int) {
		for k := range outs {
			outs[k] = x
		}
	}
	if n.Domain == graph.DefaultDomain {
		switch n.Op {
		case "Add", "Sub", "Mul", "Div", "Pow", "Where", "Max", "Min", "Sigmoid", "Relu", "Tanh", "Exp", "Log", "Neg",
			"Sqrt", "Erf", "Abs", "Cast", "Identity", "Reciprocal", "Equal", "Less", "Greater", "Not", "And", "Or":
			if oa < 0 {
				in := n.Inputs[inIdx]
				oa = a + (ro - in.Type.Rank())
			}
			for i := range n.Inputs {
				if ins[i] = aligned(i); ins[i] == -2 {
					return nil, nil, false
				}
			}
			outs[0] = oa
			return ins, outs, len(n.Outputs) == 1
		case "LayerNormalization", "Softmax", "LogSoftmax":
			if len(n.Outputs) != 1 {
				return nil, nil, false
			}
			def := int64(-1)
			ax, err := normAxis(n.AttrInt("axis", def), ro)
			if err != nil {
				return nil, nil, false
			}
			if oa < 0 {
				if inIdx != 0 {
					return nil, nil, false
				}
				oa = a
			}
			if n.Op == "LayerNormalization" && oa >= ax || n.Op != "LayerNormalization" && oa == ax {
				return nil, nil, false
			}
			ins[0], outs[0] = oa, oa
			for i := 1; i < len(n.Inputs); i++ {
				if x := n.Inputs[i]; x != nil && x.Type.Rank() > ro-ax {
					return nil, nil, false
				}
				ins[i] = -1
			}
			return ins, outs, true
		case "MatMul":
			A, B := n.Inputs[0], n.Inputs[1]
			if A.Type.Rank() < 2 || B.Type.Rank() != 2 || v == B {
				return nil, nil, false
			}
			if oa < 0 {
				oa = a + (ro - A.Type.Rank())
			}
			ai := oa - (ro - A.Type.Rank())
			if ai < 0 || ai > A.Type.Rank()-2 {
				return nil, nil, false
			}
			ins[0], ins[1], outs[0] = ai, -1, oa
			return ins, outs, true
		case "Transpose":
			perm, ok := permOf(n)
			if !ok {
				return nil, nil, false
			}
			if oa < 0 {
				oa = slices.Index(perm, int64(a))
			}
			if oa < 0 || perm[oa] != int64(oa) {
				return nil, nil, false // the row axis moves: stop here
			}
			ins[0], outs[0] = oa, oa
			return ins, outs, true
		case "Reshape":
			in := n.Inputs[0]
			if _, ok := constInts(1); !ok || n.AttrInt("allowzero", 0) != 0 || v != in && v != out {
				return nil, nil, false
			}
			if oa < 0 {
				oa = a
			}
			if oa >= in.Type.Rank() {
				return nil, nil, false
			}
			for k := 0; k <= oa; k++ {
				if !in.Type.Shape[k].Equal(out.Type.Shape[k]) {
					return nil, nil, false
				}
			}
			ins[0], ins[1], outs[0] = oa, -1, oa
			return ins, outs, true
		case "Split", "Slice", "Gather", "Squeeze", "Unsqueeze", "ReduceMean", "ReduceSum", "ReduceMax":
			return rowRuleAxes(n, v, a, oa, constInts)
		}
		return nil, nil, false
	}
	if n.Domain != graph.FusedDomain {
		return nil, nil, false
	}
	switch n.Op {
	case "Attention":
		if n.AttrString("mode", graph.AttentionModeQK) != graph.AttentionModeQK || len(n.Outputs) != 1 {
			return nil, nil, false
		}
		if oa < 0 {
			in := n.Inputs[inIdx]
			oa = a + (ro - in.Type.Rank())
		}
		if oa < 0 || oa >= ro-2 {
			return nil, nil, false
		}
		for i := range n.Inputs {
			if n.Inputs[i] == nil {
				ins[i] = -1
				continue
			}
			if ins[i] = aligned(i); ins[i] == -2 {
				return nil, nil, false
			}
		}
		outs[0] = oa
		return ins, outs, true
	case "SwiGLU":
		x := n.Inputs[0]
		if v != x && v != out {
			return nil, nil, false
		}
		if oa < 0 {
			oa = a
		}
		if oa >= ro-1 {
			return nil, nil, false
		}
		ins[0], outs[0] = oa, oa
		for i := 1; i < len(n.Inputs); i++ {
			ins[i] = -1
		}
		return ins, outs, true
	}
	setAll(-1)
	return nil, nil, false
}

// rowRuleAxes covers the ops with an axis list (attribute or constant
// input): the row axis must not be one of them.
func rowRuleAxes(n *graph.Node, v *graph.Value, a, oa int, constInts func(int) ([]int64, bool)) (ins, outs []int, ok bool) {
	in := n.Inputs[0]
	if v != in && oa < 0 {
		return nil, nil, false
	}
	ri, ro := in.Type.Rank(), n.Outputs[0].Type.Rank()
	var axes []int64
	switch n.Op {
	case "Split", "Gather":
		axes = []int64{n.AttrInt("axis", 0)}
	case "Slice":
		if n.Input(3) == nil {
			for k := 0; k < ri; k++ {
				axes = append(axes, int64(k))
			}
		} else if axes, ok = constInts(3); !ok {
			return nil, nil, false
		}
		for k := 1; k < len(n.Inputs); k++ {
			if _, ok := constInts(k); n.Inputs[k] != nil && !ok {
				return nil, nil, false
			}
		}
	default:
		if x, has := n.AttrInts("axes"); has {
			axes = x
		} else if n.Input(1) != nil {
			if axes, ok = constInts(1); !ok {
				return nil, nil, false
			}
		} else {
			return nil, nil, false
		}
	}
	rank := ri
	if n.Op == "Unsqueeze" {
		rank = ro
	}
	var norm []int
	for _, x := range axes {
		k, err := normAxis(x, rank)
		if err != nil {
			return nil, nil, false
		}
		norm = append(norm, k)
	}
	slices.Sort(norm)
	before := func(ax int) int { // axes listed below ax
		c := 0
		for _, k := range norm {
			if k < ax {
				c++
			}
		}
		return c
	}
	ia := a
	if v != in {
		// Backward from an output axis.
		switch n.Op {
		case "Unsqueeze":
			if slices.Contains(norm, oa) {
				return nil, nil, false
			}
			ia = oa - before(oa)
		case "Squeeze", "ReduceMean", "ReduceSum", "ReduceMax":
			if n.Op != "Squeeze" && n.AttrInt("keepdims", 1) != 0 {
				ia = oa
				break
			}
			ia = oa
			for _, k := range norm {
				if k <= ia {
					ia++
				}
			}
		case "Gather":
			ax := norm[0]
			if oa < ax {
				ia = oa
			} else {
				ia = oa - n.Inputs[1].Type.Rank() + 1
			}
		default:
			ia = oa
		}
	}
	if ia < 0 || ia >= ri || slices.Contains(norm, ia) && n.Op != "Unsqueeze" {
		return nil, nil, false
	}
	switch n.Op {
	case "Unsqueeze":
		oa = ia
		for _, k := range norm {
			if k <= oa {
				oa++
			}
		}
	case "Squeeze":
		oa = ia - before(ia)
	case "ReduceMean", "ReduceSum", "ReduceMax":
		oa = ia
		if n.AttrInt("keepdims", 1) == 0 {
			oa = ia - before(ia)
		}
	case "Gather":
		if _, ok := constInts(1); !ok && n.Inputs[1].Const == nil {
			return nil, nil, false
		}
		oa = ia
		if norm[0] < ia {
			oa = ia + n.Inputs[1].Type.Rank() - 1
		}
	default:
		oa = ia
	}
	ins = make([]int, len(n.Inputs))
	outs = make([]int, len(n.Outputs))
	for k := range ins {
		ins[k] = -1
	}
	ins[0] = ia
	for k := range outs {
		outs[k] = oa
	}
	return ins, outs, true
}

// region is one region under construction.
type region struct {
	axis  map[*graph.Value]int // row axis of every value the region reads or makes
	nodes map[*graph.Node]bool
	row   graph.Dim
}

// formRegions is the pass: it replaces every region with an of3c.ChunkMap
// node whose chunk is 0 (one chunk) until the planner sets it.
func formRegions(c *Context) error {
	g := c.G
	claimed := map[*graph.Node]bool{}
	tried := map[*graph.Node]bool{}
	for again := true; again; {
		again = false
		for _, n := range slices.Clone(g.Nodes) {
			a := seedAxis(n)
			if a < 0 || claimed[n] || tried[n] || !slices.Contains(g.Nodes, n) {
				continue
			}
			tried[n] = true
			again = true
			r, err := growRegion(g, n, a, claimed)
			if err != nil {
				return err
			}
			if r == nil {
				continue
			}
			for m := range r.nodes {
				claimed[m] = true
			}
			cm, err := buildChunkMap(g, r)
			if err != nil {
				return err
			}
			c.Count("region")
			c.Notef("of3c.ChunkMap %s: %d nodes over axis %v", cm.Outputs[0], len(r.nodes), r.row)
		}
	}
	// Un-merging leaves the merged weights unread.
	_, err := removeDead(g)
	return err
}

// growRegion grows a region from seed (row axis a of its output) until it
// stops changing; nil when the seed alone does not make a region worth
// forming.
func growRegion(g *graph.Graph, seed *graph.Node, a int, claimed map[*graph.Node]bool) (*region, error) {
	row := seed.Outputs[0].Type.Shape[a]
	r := &region{axis: map[*graph.Value]int{}, nodes: map[*graph.Node]bool{}, row: row}
	if !r.add(seed, seed.Outputs[0], a) {
		return nil, nil
	}
	for changed := true; changed; {
		changed = false
		uses := g.Uses()
		for _, n := range slices.Clone(g.Nodes) {
			if r.nodes[n] || claimed[n] || n.Domain == graph.FusedDomain && n.Op == "ChunkMap" {
				continue
			}
			if n.Op == "LayerNormalization" && seedAxis(n) >= 0 {
				// A representation's LayerNorm starts a region of its
				// own (the next layer): a region ends at its residual Add.
				continue
			}
			// Forward: n reads a value the region makes.
			for _, in := range n.Inputs {
				if in == nil || in.Producer == nil || !r.nodes[in.Producer] {
					continue
				}
				if r.add(n, in, r.axis[in]) {
					changed = true
				}
				break
			}
			if r.nodes[n] {
				continue
			}
			// Backward: every output of n is read only by the region.
			if len(n.Outputs) == 0 {
				continue
			}
			var known *graph.Value
			only := true
			for _, o := range n.Outputs {
				if o == nil {
					continue
				}
				if g.IsOutput(o) {
					only = false
				}
				for _, u := range uses[o] {
					if !r.nodes[u] {
						only = false
					}
				}
				if _, ok := r.axis[o]; ok && known == nil {
					known = o
				}
			}
			if known == nil {
				continue
			}
			if only && r.add(n, known, r.axis[known]) {
				changed = true
			}
		}
	}
	if len(r.nodes) < 2 {
		return nil, nil
	}
	if err := r.makeConvex(g, seed); err != nil {
		return nil, err
	}
	// A region earns its loop only with work in it: a projection or a
	// fused op (a LayerNorm and a view alone save nothing).
	work := false
	for n := range r.nodes {
		work = work || n.Op == "MatMul" || n.Domain == graph.FusedDomain
	}
	if len(r.nodes) < 2 || !work {
		return nil, nil
	}
	return r, nil
}

// add puts n into the region when rowRule agrees with every axis already
// known.
func (r *region) add(n *graph.Node, v *graph.Value, a int) bool {
	ins, outs, ok := rowRule(n, v, a, r.row)
	if !ok {
		return false
	}
	for i, in := range n.Inputs {
		if in == nil {
			continue
		}
		if prev, ok := r.axis[in]; ok && prev != ins[i] {
			return false
		}
		if ins[i] < 0 && in.Producer != nil && r.nodes[in.Producer] {
			return false // a region value cannot be read whole
		}
	}
	for k, o := range n.Outputs {
		if o == nil {
			continue
		}
		if prev, ok := r.axis[o]; ok && prev != outs[k] {
			return false
		}
		if outs[k] < 0 || !o.Type.Shape[outs[k]].Equal(r.row) {
			return false
		}
	}
	for i, in := range n.Inputs {
		if in != nil {
			r.axis[in] = ins[i]
		}
	}
	for k, o := range n.Outputs {
		if o != nil {
			r.axis[o] = outs[k]
		}
	}
	r.nodes[n] = true
	return true
}

// unmergeSplit cuts outputs of split (a Split along the last axis of a
// MatMul by a constant) that something outside the region reads into their
// own MatMul outside: x·W becomes x·W_out, computed whole, and x·W_in,
// split as before minus those outputs. It reports whether it changed g.
func unmergeSplit(g *graph.Graph, split *graph.Node, r *region, uses map[*graph.Value][]*graph.Node) bool {
	mm := split.Inputs[0].Producer
	if mm == nil || mm.Op != "MatMul" || mm.Domain != graph.DefaultDomain || len(uses[split.Inputs[0]]) != 1 {
		return false
	}
	w := mm.Inputs[1]
	if w.Const == nil || len(w.Const.Shape) != 2 || split.Input(1) == nil || split.Input(1).Const == nil {
		return false
	}
	rank := split.Inputs[0].Type.Rank()
	if ax, err := normAxis(split.AttrInt("axis", 0), rank); err != nil || ax != rank-1 {
		return false
	}
	sizes, err := split.Input(1).Const.Int64s()
	if err != nil || len(sizes) != len(split.Outputs) {
		return false
	}
	outside := make([]bool, len(sizes))
	any, all := false, true
	for k, o := range split.Outputs {
		for _, u := range uses[o] {
			if !r.nodes[u] {
				outside[k] = true
			}
		}
		if g.IsOutput(o) {
			outside[k] = true
		}
		any = any || outside[k]
		all = all && outside[k]
	}
	if !any || all {
		return false
	}
	wv, err := w.Const.Float64s()
	if err != nil {
		return false
	}
	rows, cols := w.Const.Shape[0], w.Const.Shape[1]
	colsOf := func(keep func(k int) bool) ([]float64, int64) {
		var out []float64
		var width int64
		var spans [][2]int64
		lo := int64(0)
		for k, s := range sizes {
			if keep(k) {
				spans = append(spans, [2]int64{lo, lo + s})
				width += s
			}
			lo += s
		}
		for i := int64(0); i < rows; i++ {
			for _, sp := range spans {
				out = append(out, wv[i*cols+sp[0]:i*cols+sp[1]]...)
			}
		}
		return out, width
	}
	x := mm.Inputs[0]
	inRegion := r.nodes[split]
	xWhole := x
	if x.Producer != nil && r.nodes[x.Producer] {
		// x is made inside the region: the whole columns need it whole,
		// so its row-local chain is recomputed outside (a LayerNorm: one
		// transient [*, N, N, c]) rather than made a region output that
		// the region would then read back.
		if xWhole = cloneChain(g, x, r, 0); xWhole == nil {
			return false
		}
	}
	mkMatMul := func(keep func(k int) bool, base string, x *graph.Value) (*graph.Value, []int64) {
		vals, width := colsOf(keep)
		t, err := graph.NewTensorFromFloat64s(w.Const.DType, []int64{rows, width}, vals)
		if err != nil {
			return nil, nil
		}
		wc := g.AddConst(g.UniqueName(w.Name+base), t)
		n := g.AddNode(graph.DefaultDomain, "MatMul", []*graph.Value{x, wc}, []string{mm.Outputs[0].Name + base}, nil)
		var sz []int64
		for k, s := range sizes {
			if keep(k) {
				sz = append(sz, s)
			}
		}
		return n.Outputs[0], sz
	}
	outV, outSz := mkMatMul(func(k int) bool { return outside[k] }, "_whole", xWhole)
	inV, inSz := mkMatMul(func(k int) bool { return !outside[k] }, "_rows", x)
	if outV == nil || inV == nil {
		return false
	}
	splitOut := func(v *graph.Value, sz []int64, keep func(k int) bool) {
		var olds []*graph.Value
		for k, o := range split.Outputs {
			if keep(k) {
				olds = append(olds, o)
			}
		}
		if len(olds) == 1 {
			if a, ok := r.axis[olds[0]]; ok {
				r.axis[v] = a
			}
			g.ReplaceAllUses(olds[0], v)
			return
		}
		if inRegion && v == inV {
			r.nodes[v.Producer] = true
			r.axis[v] = r.axis[split.Inputs[0]]
		}
		sc := g.AddConst(g.UniqueName(split.Input(1).Name), graph.NewTensorI64([]int64{int64(len(sz))}, sz))
		n := g.AddNode(graph.DefaultDomain, "Split", []*graph.Value{v, sc}, make([]string, len(olds)), map[string]graph.Attr{"axis": {Kind: graph.AttrInt, Int: -1}})
		for k, o := range olds {
			n.Outputs[k].Name = g.UniqueName(o.Name)
			if a, ok := r.axis[o]; ok {
				r.axis[n.Outputs[k]] = a
			}
			g.ReplaceAllUses(o, n.Outputs[k])
		}
		if inRegion && v == inV {
			r.nodes[n] = true
		}
	}
	splitOut(outV, outSz, func(k int) bool { return outside[k] })
	splitOut(inV, inSz, func(k int) bool { return !outside[k] })
	if inRegion && len(inSz) == 1 {
		r.nodes[inV.Producer] = true
		r.axis[inV] = r.axis[split.Inputs[0]]
	}
	delete(r.nodes, split)
	delete(r.nodes, mm)
	removeNode(g, split)
	removeNode(g, mm)
	if err := g.TopoSort(); err != nil {
		return false
	}
	if err := inferTypes(g); err != nil {
		return false
	}
	return true
}

// cloneChain copies the region nodes that make v (up to values made
// outside the region) as ordinary nodes outside it and returns the copy of
// v; nil when the chain holds anything but cheap row-local ops or is long.
func cloneChain(g *graph.Graph, v *graph.Value, r *region, depth int) *graph.Value {
	n := v.Producer
	if n == nil || !r.nodes[n] {
		return v
	}
	if depth > 4 || n.Domain != graph.DefaultDomain || len(n.Outputs) != 1 {
		return nil
	}
	switch n.Op {
	case "LayerNormalization", "Add", "Sub", "Mul", "Transpose", "Reshape", "Unsqueeze", "Squeeze", "Cast":
	default:
		return nil
	}
	ins := make([]*graph.Value, len(n.Inputs))
	for i, in := range n.Inputs {
		if in == nil {
			continue
		}
		if ins[i] = cloneChain(g, in, r, depth+1); ins[i] == nil {
			return nil
		}
	}
	c := g.AddNode(n.Domain, n.Op, ins, []string{v.Name + "_whole"}, n.Attrs)
	c.Opset = n.Opset
	c.Outputs[0].Type = v.Type
	return c.Outputs[0]
}

// makeConvex drops region nodes until no path leaves the region and comes
// back in (a ChunkMap cannot read what it makes). A region node reached
// from such a detour is dropped with its region descendants; then every
// node whose results nothing needs any more — no region node reads them,
// no node that was never in the region, no graph output — goes too (the
// gate of the next layer, grown forward, that only the dropped nodes
// read). What stays makes the values the detour needs (the next triangle
// multiplication's LayerNorm) as region outputs.
func (r *region) makeConvex(g *graph.Graph, seed *graph.Node) error {
	former := map[*graph.Node]bool{}
	for n := range r.nodes {
		former[n] = true
	}
	for iter := 0; iter <= len(g.Nodes); iter++ {
		down := map[*graph.Node]bool{} // outside nodes reachable from the region
		bad := map[*graph.Node]bool{}  // region nodes reachable from those
		for _, n := range g.Nodes {    // topological order
			fromRegion, fromDown := false, false
			for _, in := range n.Inputs {
				if in == nil || in.Producer == nil {
					continue
				}
				fromRegion = fromRegion || r.nodes[in.Producer]
				fromDown = fromDown || down[in.Producer]
			}
			switch {
			case r.nodes[n] && fromDown:
				bad[n] = true
			case !r.nodes[n] && (fromRegion || fromDown):
				down[n] = true
			}
		}
		if len(bad) == 0 {
			return nil
		}
		// A merged projection whose Split feeds the detour (the triangle
		// bias channels): un-merge it and look again.
		unmerged := false
		uses := g.Uses()
		for _, n := range g.Nodes {
			if !r.nodes[n] || n.Op != "Split" {
				continue
			}
			feeds := false
			for _, o := range n.Outputs {
				for _, u := range uses[o] {
					feeds = feeds || down[u]
				}
			}
			if feeds && unmergeSplit(g, n, r, uses) {
				unmerged = true
				break
			}
		}
		if unmerged {
			for n := range r.nodes {
				former[n] = true
			}
			continue
		}
		drop := map[*graph.Node]bool{}
		for _, n := range g.Nodes {
			if !r.nodes[n] {
				continue
			}
			if bad[n] {
				drop[n] = true
				continue
			}
			for _, in := range n.Inputs {
				if in != nil && in.Producer != nil && drop[in.Producer] {
					drop[n] = true
				}
			}
		}
		for n := range drop {
			delete(r.nodes, n)
		}
		for changed := true; changed; {
			changed = false
			for n := range r.nodes {
				needed := false
				for _, o := range n.Outputs {
					if o == nil {
						continue
					}
					needed = needed || g.IsOutput(o)
					for _, u := range uses[o] {
						needed = needed || r.nodes[u] || !former[u]
					}
				}
				if !needed {
					delete(r.nodes, n)
					changed = true
				}
			}
		}
		if !r.nodes[seed] {
			r.nodes = map[*graph.Node]bool{}
			return nil
		}
		r.recomputeAxes()
	}
	return fmt.Errorf("form-regions: region did not become convex")
}

// recomputeAxes keeps the axes of values the remaining nodes read or make.
func (r *region) recomputeAxes() {
	keep := map[*graph.Value]int{}
	for n := range r.nodes {
		for _, v := range append(slices.Clone(n.Inputs), n.Outputs...) {
			if v != nil {
				if a, ok := r.axis[v]; ok {
					keep[v] = a
				}
			}
		}
	}
	r.axis = keep
}

// bodyConstLimit: constants up to this many elements (shapes, axes,
// scalars) are copied into the body; larger ones (weights) are inputs of
// the ChunkMap passed whole, so they stay graph weights.
const bodyConstLimit = 64

// buildChunkMap replaces r's nodes with one of3c.ChunkMap.
func buildChunkMap(g *graph.Graph, r *region) (*graph.Node, error) {
	uses := g.Uses()
	body := &graph.Graph{Name: "chunk", Opsets: map[string]int64{}}
	for k, v := range g.Opsets {
		body.Opsets[k] = v
	}
	vmap := map[*graph.Value]*graph.Value{}
	targets := map[string]*graph.Value{} // Reshape targets with the row entry 0
	var ins []*graph.Value
	var inAxes []int64
	var nodes []*graph.Node
	for _, n := range g.Nodes {
		if r.nodes[n] {
			nodes = append(nodes, n)
		}
	}
	bv := func(v *graph.Value) *graph.Value {
		if v == nil {
			return nil
		}
		if b, ok := vmap[v]; ok {
			return b
		}
		if v.Producer != nil && r.nodes[v.Producer] {
			b := &graph.Value{Name: v.Name, Type: v.Type}
			vmap[v] = b
			return b
		}
		if v.Const != nil && v.Const.NumElements() <= bodyConstLimit {
			b := &graph.Value{Name: v.Name, Type: v.Type, Const: v.Const}
			body.Consts = append(body.Consts, b)
			vmap[v] = b
			return b
		}
		b := &graph.Value{Name: v.Name, Type: v.Type}
		body.Inputs = append(body.Inputs, b)
		ins = append(ins, v)
		a, ok := r.axis[v]
		if !ok {
			a = -1
		}
		inAxes = append(inAxes, int64(a))
		vmap[v] = b
		return b
	}
	for _, n := range nodes {
		bn := &graph.Node{Name: n.Name, Domain: n.Domain, Op: n.Op, Opset: n.Opset, Attrs: n.Attrs}
		for i, in := range n.Inputs {
			if n.Op == "Reshape" && n.Domain == graph.DefaultDomain && i == 1 {
				// The target's row entry becomes 0 (copy the input's
				// dim): one chunk's rows, whatever the chunk.
				key := fmt.Sprintf("%s/%d", in.Name, r.axis[n.Inputs[0]])
				c, ok := targets[key]
				if !ok {
					tgt, _ := in.Const.Int64s()
					tgt = slices.Clone(tgt)
					tgt[r.axis[n.Inputs[0]]] = 0
					c = &graph.Value{Name: fmt.Sprintf("%s_rows%d", in.Name, len(targets)), Const: graph.NewTensorI64([]int64{int64(len(tgt))}, tgt)}
					c.Type = c.Const.Type()
					body.Consts = append(body.Consts, c)
					targets[key] = c
				}
				bn.Inputs = append(bn.Inputs, c)
				continue
			}
			bn.Inputs = append(bn.Inputs, bv(in))
		}
		for _, o := range n.Outputs {
			b := bv(o)
			if b != nil {
				b.Producer = bn
			}
			bn.Outputs = append(bn.Outputs, b)
		}
		body.Nodes = append(body.Nodes, bn)
	}
	var outs []*graph.Value
	var outAxes []int64
	for _, n := range nodes {
		for _, o := range n.Outputs {
			if o == nil {
				continue
			}
			outside := g.IsOutput(o)
			for _, u := range uses[o] {
				if !r.nodes[u] {
					outside = true
				}
			}
			if outside {
				outs = append(outs, o)
				outAxes = append(outAxes, int64(r.axis[o]))
				body.Outputs = append(body.Outputs, vmap[o])
			}
		}
	}
	if len(outs) == 0 {
		return nil, fmt.Errorf("form-regions: region of %d nodes has no output", len(nodes))
	}
	// Body values get a suffix so that no name is both a ChunkMap output
	// outside and a body value inside (printers and ONNX export show both).
	for _, v := range append(append(slices.Clone(body.Inputs), body.Consts...), bodyValues(body)...) {
		v.Name += "@chunk"
	}
	for _, n := range nodes {
		removeNode(g, n)
	}
	cm := &graph.Node{Domain: graph.FusedDomain, Op: "ChunkMap", Inputs: ins, Outputs: outs, Opset: 1,
		Attrs: map[string]graph.Attr{
			"body":     graph.GraphAttr(body),
			"in_axes":  {Kind: graph.AttrInts, Ints: inAxes},
			"out_axes": {Kind: graph.AttrInts, Ints: outAxes},
			"chunk":    {Kind: graph.AttrInt, Int: 0},
		}}
	for _, o := range outs {
		o.Producer = cm
	}
	if _, ok := g.Opsets[graph.FusedDomain]; !ok {
		g.Opsets[graph.FusedDomain] = 1
	}
	g.Nodes = append(g.Nodes, cm)
	return cm, g.TopoSort()
}

func bodyValues(b *graph.Graph) []*graph.Value {
	var out []*graph.Value
	for _, n := range b.Nodes {
		for _, o := range n.Outputs {
			if o != nil {
				out = append(out, o)
			}
		}
	}
	return out
}
