package codegen

import (
	"fmt"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/mlx"
)

// Deep graphs. mx::compile walks the traced graph recursively (compile_dfs,
// one C++ stack frame per level of the longest path), so a deep enough
// graph overflows the thread's stack: a chain of 60,000 Relu nodes crashed
// with SIGSEGV while 40,000 passed. A graph whose longest path is longer
// than segmentNodes nodes is therefore traced and compiled as consecutive
// segments of at most segmentNodes nodes (in the graph's topological
// order), each its own compiled function: the values a later segment reads
// flow between them as ordinary arrays of one lazy graph, evaluated once at
// the end as before (MLX's evaluation is not recursive). Shallower graphs —
// every OF3 model — stay one compiled function.
//
// segmentNodes bounds the longest path one compiled function sees: 4,096
// graph nodes, each lowered to a few MLX ops, stays far from the depth that
// overflowed.
var segmentNodes = 4096 // a variable for tests

// segment is nodes [lo, hi) of the graph.
type segment struct {
	lo, hi int
	// in are the values the segment reads that are defined before it
	// (graph inputs, uploaded weights, earlier segments' values), in the
	// order of the traced function's arguments.
	in []*graph.Value
	// out are the values it defines that later segments read (the last
	// segment returns the graph outputs instead).
	out []*graph.Value
}

// planSegments splits g when its longest path exceeds segmentNodes; nil
// means one function. weights are the values passed as uploaded arrays.
func planSegments(g *graph.Graph, weights []*graph.Value) []segment {
	return planSegmentsN(g, weights, segmentNodes)
}

func planSegmentsN(g *graph.Graph, weights []*graph.Value, size int) []segment {
	index := make(map[*graph.Node]int, len(g.Nodes))
	for i, n := range g.Nodes {
		index[n] = i
	}
	// Longest path, in nodes, ending at each node.
	depth := make([]int, len(g.Nodes))
	deepest := 0
	for i, n := range g.Nodes {
		d := 0
		for _, v := range n.Inputs {
			if v != nil && v.Producer != nil {
				if j, ok := index[v.Producer]; ok && j < i {
					d = max(d, depth[j])
				}
			}
		}
		depth[i] = d + 1
		deepest = max(deepest, depth[i])
	}
	if deepest <= size {
		return nil
	}
	isWeight := make(map[*graph.Value]bool, len(weights))
	for _, w := range weights {
		isWeight[w] = true
	}
	// lastRead is the index of the last node reading each value; graph
	// outputs count as read after every node.
	lastRead := map[*graph.Value]int{}
	for i, n := range g.Nodes {
		for _, v := range n.Inputs {
			if v != nil {
				lastRead[v] = i
			}
		}
	}
	for _, o := range g.Outputs {
		lastRead[o] = len(g.Nodes)
	}
	// passed says whether v travels as an argument: everything but the
	// constants built inline by the trace.
	passed := func(v *graph.Value) bool { return v.Const == nil || isWeight[v] }
	var segs []segment
	for lo := 0; lo < len(g.Nodes); lo += size {
		hi := min(lo+size, len(g.Nodes))
		sg := segment{lo: lo, hi: hi}
		seen := map[*graph.Value]bool{}
		addIn := func(v *graph.Value) {
			if v == nil || seen[v] || !passed(v) {
				return
			}
			if v.Producer != nil {
				if j, ok := index[v.Producer]; ok && j >= lo {
					return // defined in this segment
				}
			}
			seen[v] = true
			sg.in = append(sg.in, v)
		}
		for _, n := range g.Nodes[lo:hi] {
			for _, v := range n.Inputs {
				addIn(v)
			}
		}
		if hi == len(g.Nodes) {
			for _, o := range g.Outputs {
				addIn(o)
			}
		} else {
			for _, n := range g.Nodes[lo:hi] {
				for _, o := range n.Outputs {
					if o != nil && lastRead[o] >= hi {
						sg.out = append(sg.out, o)
					}
				}
			}
		}
		segs = append(segs, sg)
	}
	return segs
}

// segMeta is what a segment's trace learned about a value it passes on:
// its dtype and shape, its host value if known, and whether it was only a
// host value (no array), which the next trace restores.
type segMeta struct {
	dt       graph.DType
	shape    []int64
	host     *graph.Tensor
	hostOnly bool
}

// traceSegment is the body of segment k's function: in holds the arrays
// of seg.in. Values passed on are described in meta for the segments after.
func (p *Program) traceSegment(t *tracer, k int, in []*mlx.Array, known []*graph.Tensor, meta map[*graph.Value]*segMeta) ([]*mlx.Array, error) {
	g, s := p.g, t.s
	sg := p.segs[k]
	if len(in) != len(sg.in) {
		return nil, fmt.Errorf("segment %d got %d arguments, want %d", k, len(in), len(sg.in))
	}
	inputIdx := make(map[*graph.Value]int, len(g.Inputs))
	for i, v := range g.Inputs {
		inputIdx[v] = i
	}
	env := make(map[*graph.Value]*val, 2*(sg.hi-sg.lo)+len(sg.in))
	for i, v := range sg.in {
		a := in[i]
		switch gi, isInput := inputIdx[v]; {
		case isInput:
			if want := p.devDType(v.Type.DType); a.Dtype() != t.mdt(want) {
				a = s.AsType(a, t.mdt(want))
			}
			env[v] = &val{a: a, dt: v.Type.DType, shape: int64sOf(in[i].Shape())}
			if gi < len(known) && known[gi] != nil {
				env[v].host = known[gi]
			}
		case v.Const != nil:
			env[v] = &val{a: a, host: v.Const, dt: v.Const.DType, shape: v.Const.Shape}
		default:
			m := meta[v]
			if m == nil {
				return nil, fmt.Errorf("segment %d: value %q was not traced before it", k, v.Name)
			}
			x := &val{a: a, host: m.host, dt: m.dt, shape: m.shape}
			if m.hostOnly {
				x.a = nil
			}
			env[v] = x
		}
	}
	if err := p.traceNodes(t, env, g.Nodes[sg.lo:sg.hi]); err != nil {
		return nil, err
	}
	if k == len(p.segs)-1 {
		return p.traceOutputs(t, env, in)
	}
	res := make([]*mlx.Array, len(sg.out))
	for i, v := range sg.out {
		x, ok := env[v]
		if !ok {
			return nil, fmt.Errorf("segment %d: value %q is not defined", k, v.Name)
		}
		meta[v] = &segMeta{dt: x.dt, shape: x.shape, host: x.host, hostOnly: x.a == nil}
		a := t.arr(x)
		if isArg(a, in) {
			a = s.Copy(a)
		}
		res[i] = a
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	return res, nil
}

// isArg says whether a is one of args.
func isArg(a *mlx.Array, args []*mlx.Array) bool {
	for _, x := range args {
		if a == x {
			return true
		}
	}
	return false
}

// callSegments runs the segments' functions one after another on ins (the
// graph inputs, then p.warrs) and returns the last one's results. The
// arrays passed between segments are freed before returning (MLX keeps
// what the lazy graph still needs).
func (p *Program) callSegments(s *mlx.Scope, c *compiled, ins []*mlx.Array) []*mlx.Array {
	avail := make(map[*graph.Value]*mlx.Array, len(ins))
	for i, v := range p.g.Inputs {
		avail[v] = ins[i]
	}
	for j, w := range p.weights {
		avail[w] = ins[len(p.g.Inputs)+j]
	}
	var carried []*mlx.Array
	defer func() { s.Free(carried...) }()
	for k, sg := range p.segs {
		args := make([]*mlx.Array, len(sg.in))
		for i, v := range sg.in {
			args[i] = avail[v]
			if args[i] == nil {
				s.Fail(fmt.Errorf("segment %d: no array for %q", k, v.Name))
				return nil
			}
		}
		res := s.Call(c.segs[k], args...)
		if s.Err() != nil {
			return nil
		}
		if k == len(p.segs)-1 {
			return res
		}
		if len(res) != len(sg.out) {
			s.Fail(fmt.Errorf("segment %d returned %d arrays, want %d", k, len(res), len(sg.out)))
			return nil
		}
		for i, v := range sg.out {
			avail[v] = res[i]
		}
		carried = append(carried, res...)
	}
	return nil
}
