package codegen

import (
	"fmt"
	"sort"
	"time"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/mlx"
)

// NodeTime is the measured time of one node (or of all nodes of one op).
type NodeTime struct {
	Name  string
	Op    string
	Time  time.Duration
	Count int
	// Work is how far MLX's memory rose above what was active before the
	// node while its outputs were evaluated: its outputs plus whatever its
	// lowering held at once (the largest over an op's nodes). Where the
	// lowering of one node allocates more than the memory planner's model
	// of it, this is where it shows. Eager: every earlier node's outputs
	// stay live until the end, so only the rise is meaningful, and the
	// compiled function's fusion and run-ahead are absent.
	Work uint64
}

// Profile runs the graph eagerly, without mx::compile, evaluating every
// node's outputs before the next node starts, and returns each node's
// wall time (sorted, slowest first) and the totals per op. It shows where
// time goes; the sum is larger than a compiled run, which fuses the
// elementwise work between the heavy ops.
func (p *Program) Profile(inputs map[string]*graph.Tensor) (nodes, ops []NodeTime, err error) {
	args := make([]*graph.Tensor, len(p.g.Inputs))
	for i, v := range p.g.Inputs {
		if args[i] = inputs[v.Name]; args[i] == nil {
			return nil, nil, fmt.Errorf("codegen: missing input %q", v.Name)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	byOp := map[string]*NodeTime{}
	err = mlx.Do(func(s *mlx.Scope) error {
		s.SetDefaultDevice(p.device)
		ins := make([]*mlx.Array, 0, len(args)+len(p.warrs))
		for _, t := range args {
			ins = append(ins, uploadInput(s, t, p))
		}
		ins = append(ins, p.warrs...)
		s.Eval(ins...)
		s.ResetPeakMemory()
		before := s.Memory().Active
		last := time.Now()
		t := &tracer{s: s, p: p}
		t.profile = func(n *graph.Node, outs []*val) {
			var as []*mlx.Array
			for _, o := range outs {
				if o != nil && o.a != nil {
					as = append(as, o.a)
				}
			}
			if len(as) > 0 {
				s.Eval(as...)
			}
			now := time.Now()
			d := now.Sub(last)
			mem := s.Memory()
			work := uint64(0)
			if mem.Peak > before {
				work = mem.Peak - before
			}
			before = mem.Active
			s.ResetPeakMemory()
			last = time.Now()
			nodes = append(nodes, NodeTime{Name: nodeName(n), Op: n.QualifiedOp(), Time: d, Count: 1, Work: work})
			e := byOp[n.QualifiedOp()]
			if e == nil {
				e = &NodeTime{Op: n.QualifiedOp()}
				byOp[n.QualifiedOp()] = e
			}
			e.Time += d
			e.Count++
			e.Work = max(e.Work, work)
		}
		known := make([]*graph.Tensor, len(args))
		for i, a := range args {
			if specialized(a) {
				known[i] = a
			}
		}
		_, err := p.traceWith(t, ins, known)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("codegen: %w", err)
	}
	for _, e := range byOp {
		ops = append(ops, *e)
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Time > nodes[j].Time })
	sort.Slice(ops, func(i, j int) bool { return ops[i].Time > ops[j].Time })
	return nodes, ops, nil
}
