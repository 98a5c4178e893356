package passes

import (
	"fmt"
	"math"
	"strings"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/runtime/ref"
)

// Helpers shared by the passes for building and replacing nodes.

// addOp appends a node of the default domain (or "domain.Op") with one output
// and types it at once, so later matching in the same pass sees its type.
// Run re-sorts the nodes after the pass.
func addOp(g *graph.Graph, op string, attrs map[string]graph.Attr, inputs ...*graph.Value) (*graph.Value, error) {
	outs, err := addOpN(g, op, 1, attrs, inputs...)
	if err != nil {
		return nil, err
	}
	return outs[0], nil
}

func addOpN(g *graph.Graph, op string, nOut int, attrs map[string]graph.Attr, inputs ...*graph.Value) ([]*graph.Value, error) {
	domain, typ := graph.DefaultDomain, op
	if i := strings.LastIndexByte(op, '.'); i >= 0 {
		domain, typ = op[:i], op[i+1:]
		if _, ok := g.Opsets[domain]; !ok {
			if g.Opsets == nil {
				g.Opsets = map[string]int64{}
			}
			g.Opsets[domain] = 1
		}
	}
	names := make([]string, nOut)
	for i := range names {
		names[i] = strings.ToLower(typ)
	}
	n := g.AddNode(domain, typ, inputs, names, attrs)
	if v, ok := foldNew(g, n); ok {
		return []*graph.Value{v}, nil
	}
	if graph.LookupOp(domain, typ) == nil {
		return n.Outputs, nil
	}
	types, vals, err := graph.InferNode(n)
	if err != nil {
		// The node must not stay behind half-built.
		g.Nodes = g.Nodes[:len(g.Nodes)-1]
		return nil, err
	}
	for i, o := range n.Outputs {
		o.Type = types[i]
		if i < len(vals) {
			o.ShapeValue = vals[i]
		}
	}
	return n.Outputs, nil
}

// foldNew evaluates a just-added node whose inputs are all constants (e.g.
// the Transpose of a weight that gemm-to-matmul adds) and replaces it with
// the constant, so no pass leaves work for the next fold-constants.
func foldNew(g *graph.Graph, n *graph.Node) (*graph.Value, bool) {
	if len(n.Outputs) != 1 || n.Domain != graph.DefaultDomain || !ref.HasKernel(n.QualifiedOp()) {
		return nil, false
	}
	ins := make([]*graph.Tensor, len(n.Inputs))
	var elems int64
	for i, in := range n.Inputs {
		if in == nil {
			continue
		}
		if !in.IsConst() {
			return nil, false
		}
		ins[i] = in.Const
		elems += in.Const.NumElements()
	}
	if elems > 1<<26 {
		return nil, false // a weight this large is cheaper to transpose at run time than to copy here
	}
	outs, err := ref.EvalNode(n, ins)
	if err != nil || len(outs) != 1 || outs[0] == nil || outs[0].NumElements() > elems+maxFoldGrowth {
		return nil, false
	}
	removeNode(g, n)
	return g.AddConst(g.UniqueName(n.Outputs[0].Name), outs[0]), true
}

// removeNode drops n from the node list (its outputs must be unused).
func removeNode(g *graph.Graph, n *graph.Node) {
	for i, m := range g.Nodes {
		if m == n {
			g.Nodes = append(g.Nodes[:i], g.Nodes[i+1:]...)
			return
		}
	}
}

// replaceValue redirects every reader of old to new. When old is a graph
// output, new takes over its name: output names are part of the model's
// interface and must survive a rewrite.
func replaceValue(g *graph.Graph, old, new *graph.Value) {
	if old == new {
		return
	}
	if g.IsOutput(old) && !g.IsOutput(new) && new.Producer != nil {
		name := old.Name
		old.Name = g.UniqueName(name + "_replaced")
		new.Name = name
	}
	replaceAllUses(g, old, new)
}

// replaceAllUses is Graph.ReplaceAllUses that also rewrites the nodes of
// nested graphs (If/Loop/Scan bodies), which read outer values directly.
func replaceAllUses(g *graph.Graph, old, new *graph.Value) {
	g.ReplaceAllUses(old, new)
	for _, n := range g.Nodes {
		for _, a := range n.Attrs {
			if a.Kind == graph.AttrGraph && a.Graph != nil {
				replaceAllUses(a.Graph, old, new)
			}
		}
	}
}

// outerRefs lists values of g that nodes of nested graphs read: Graph.Uses
// does not see those reads, so dead-code removal must keep them.
func outerRefs(g *graph.Graph) []*graph.Value {
	var refs []*graph.Value
	var walk func(sub *graph.Graph)
	walk = func(sub *graph.Graph) {
		for _, n := range sub.Nodes {
			refs = append(refs, n.Inputs...)
			for _, a := range n.Attrs {
				if a.Kind == graph.AttrGraph && a.Graph != nil {
					walk(a.Graph)
				}
			}
		}
		refs = append(refs, sub.Outputs...)
	}
	for _, n := range g.Nodes {
		for _, a := range n.Attrs {
			if a.Kind == graph.AttrGraph && a.Graph != nil {
				walk(a.Graph)
			}
		}
	}
	out := refs[:0]
	for _, v := range refs {
		if v != nil {
			out = append(out, v)
		}
	}
	return out
}

// scalarConst adds a rank-0 constant of dtype dt.
func scalarConst(g *graph.Graph, base string, dt graph.DType, v float64) (*graph.Value, error) {
	t, err := graph.NewTensorFromFloat64s(dt, nil, []float64{v})
	if err != nil {
		return nil, err
	}
	return g.AddConst(g.UniqueName(base), t), nil
}

func i64Const(g *graph.Graph, base string, vals ...int64) *graph.Value {
	return g.AddConst(g.UniqueName(base), graph.NewTensorI64([]int64{int64(len(vals))}, vals))
}

// pureScalarOperand returns the value of a one-element constant operand that
// does not widen the result: in x·c the output must have x's shape, or
// dropping c would change the broadcast.
func pureScalarOperand(n *graph.Node, constIdx int) (float64, bool) {
	c := n.Input(constIdx)
	x := n.Input(1 - constIdx)
	if c == nil || x == nil || !c.IsConst() || len(n.Outputs) != 1 {
		return 0, false
	}
	v, ok := scalarValue(c.Const)
	if !ok {
		return 0, false
	}
	if !x.Type.Ranked || !n.Outputs[0].Type.Ranked || !x.Type.Shape.Equal(n.Outputs[0].Type.Shape) ||
		x.Type.DType != n.Outputs[0].Type.DType {
		return 0, false
	}
	return v, true
}

// permOf returns a Transpose node's permutation, with ONNX's default
// (reverse) when absent; ok is false for a malformed one.
func permOf(n *graph.Node) ([]int64, bool) {
	in := n.Input(0)
	if in == nil || !in.Type.Ranked {
		return nil, false
	}
	r := in.Type.Rank()
	perm, ok := n.AttrInts("perm")
	if !ok {
		perm = make([]int64, r)
		for i := range perm {
			perm[i] = int64(r - 1 - i)
		}
	}
	if len(perm) != r {
		return nil, false
	}
	seen := make([]bool, r)
	for _, p := range perm {
		if p < 0 || p >= int64(r) || seen[p] {
			return nil, false
		}
		seen[p] = true
	}
	return perm, true
}

// composePerm gives the permutation of Transpose(Transpose(x, inner), outer).
func composePerm(inner, outer []int64) []int64 {
	out := make([]int64, len(outer))
	for i, o := range outer {
		out[i] = inner[o]
	}
	return out
}

func isIdentityPerm(p []int64) bool {
	for i, v := range p {
		if v != int64(i) {
			return false
		}
	}
	return true
}

// swapLast2 is the permutation that transposes the last two axes.
func swapLast2(rank int) []int64 {
	p := make([]int64, rank)
	for i := range p {
		p[i] = int64(i)
	}
	p[rank-1], p[rank-2] = p[rank-2], p[rank-1]
	return p
}

// transposeOf returns x transposed by perm, reusing x itself for the
// identity and looking through an existing Transpose (composing the perms).
func transposeOf(g *graph.Graph, x *graph.Value, perm []int64) (*graph.Value, error) {
	if x.Producer != nil && x.Producer.Op == "Transpose" && x.Producer.Domain == graph.DefaultDomain {
		if inner, ok := permOf(x.Producer); ok {
			return transposeOf(g, x.Producer.Inputs[0], composePerm(inner, perm))
		}
	}
	if isIdentityPerm(perm) {
		return x, nil
	}
	return addOp(g, "Transpose", map[string]graph.Attr{"perm": {Kind: graph.AttrInts, Ints: perm}}, x)
}

// normAxis maps a possibly negative axis into [0, rank).
func normAxis(axis int64, rank int) (int, error) {
	if axis < 0 {
		axis += int64(rank)
	}
	if axis < 0 || axis >= int64(rank) {
		return 0, fmt.Errorf("axis %d out of range for rank %d", axis, rank)
	}
	return int(axis), nil
}

// finiteFloatConst returns the values of v when it is a float constant with all
// elements finite.
func finiteFloatConst(v *graph.Value) ([]float64, bool) {
	if !v.IsConst() || !v.Const.DType.IsFloat() {
		return nil, false
	}
	vals, err := v.Const.Float64s()
	if err != nil {
		return nil, false
	}
	for _, x := range vals {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, false
		}
	}
	return vals, true
}

// removeDead restores topological order (rewrites append nodes at the end)
// and drops what nothing reads; Graph.RemoveDead needs the order to see
// which nodes the appended ones keep alive.
func removeDead(g *graph.Graph) (int, error) {
	if err := g.TopoSort(); err != nil {
		return 0, err
	}
	// Values read inside nested graphs stay alive: list them as outputs
	// for the duration of the sweep (extra entries for a nested graph's own
	// values are harmless: nothing at this level defines them).
	refs := outerRefs(g)
	if len(refs) == 0 {
		return g.RemoveDead(), nil
	}
	outs := g.Outputs
	g.Outputs = append(append([]*graph.Value(nil), outs...), refs...)
	n := g.RemoveDead()
	g.Outputs = outs
	return n, nil
}

// replacer batches the value replacements of one sweep over the nodes, so a
// sweep costs time linear in the graph rather than linear per replacement
// (replaceValue rewrites every node: 100k Identity nodes took minutes).
// Replacements are recorded in a map; a node's inputs are resolved through
// it just before the node is visited (prepare), graph outputs at once, and
// every node, nested graph included, at the end of the sweep (finish).
type replacer struct {
	g    *graph.Graph
	to   map[*graph.Value]*graph.Value
	outs map[*graph.Value]int // graph outputs, with multiplicity
}

func newReplacer(g *graph.Graph) *replacer {
	r := &replacer{g: g, to: map[*graph.Value]*graph.Value{}, outs: map[*graph.Value]int{}}
	for _, o := range g.Outputs {
		r.outs[o]++
	}
	return r
}

// resolve follows v's replacements to the value that stands for it now.
func (r *replacer) resolve(v *graph.Value) *graph.Value {
	root := v
	for {
		w, ok := r.to[root]
		if !ok {
			break
		}
		root = w
	}
	for v != root { // path compression
		next := r.to[v]
		r.to[v] = root
		v = next
	}
	return root
}

// prepare points n's inputs at their current values.
func (r *replacer) prepare(n *graph.Node) {
	if len(r.to) == 0 {
		return
	}
	for i, in := range n.Inputs {
		if in != nil {
			n.Inputs[i] = r.resolve(in)
		}
	}
}

func (r *replacer) isOutput(v *graph.Value) bool { return r.outs[v] > 0 }

// replaceValue is the batched form of replaceValue (the package function).
func (r *replacer) replaceValue(old, new *graph.Value) {
	new = r.resolve(new)
	if old == new {
		return
	}
	if r.isOutput(old) && !r.isOutput(new) && new.Producer != nil {
		name := old.Name
		old.Name = r.g.UniqueName(name + "_replaced")
		new.Name = name
	}
	r.redirect(old, new)
}

// redirect records old → new and moves graph outputs at once.
func (r *replacer) redirect(old, new *graph.Value) {
	if old == new {
		return
	}
	r.to[old] = new
	if k := r.outs[old]; k > 0 {
		for i, o := range r.g.Outputs {
			if o == old {
				r.g.Outputs[i] = new
			}
		}
		delete(r.outs, old)
		r.outs[new] += k
	}
}

// finish applies the sweep's replacements to every node and nested graph.
func (r *replacer) finish() {
	if len(r.to) == 0 {
		return
	}
	var walk func(g *graph.Graph, top bool)
	walk = func(g *graph.Graph, top bool) {
		for _, n := range g.Nodes {
			r.prepare(n)
			for _, a := range n.Attrs {
				if a.Kind == graph.AttrGraph && a.Graph != nil {
					walk(a.Graph, false)
				}
			}
		}
		if !top {
			for i, o := range g.Outputs {
				if o != nil {
					g.Outputs[i] = r.resolve(o)
				}
			}
		}
	}
	walk(r.g, true)
	clear(r.to)
}
