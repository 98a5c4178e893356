package passes

import "github.com/of3c/of3c/graph"

// Evaluation orders. MLX does not run a graph in the order of our IR: its
// eval walks the graph depth-first from the outputs, each op's inputs in
// the order the op lists them, and runs an op once its inputs have run.
// mx::compile fuses elementwise chains into one kernel whose input list has
// its own order, so which of two independent branches runs first is not
// known here: the residual add `z + lin_z(tri_mul(..)) · σ(lin_g(..))` of a
// triangle multiplication, fused with the gate, had MLX compute the gate
// branch before the triangle multiplication (measured: one more [N, N, c]
// activation live at the of3 PairformerBlock's peak than the IR order has).
// The planner therefore takes, at every step, the worst of three orders: the
// IR's, and the depth-first post-orders with inputs in their listed and in
// reverse order.

// evalOrder is one order of the steps and the liveness it implies.
type evalOrder struct {
	seq  []int                // step indices, in evaluation order
	pos  []int                // pos[step] = its position in seq
	last map[*graph.Value]int // buffer (root) → the last position reading it
}

func (p *planner) evalOrders() []*evalOrder {
	n := len(p.steps)
	ir := make([]int, n)
	for i := range ir {
		ir[i] = i
	}
	orders := []*evalOrder{p.newOrder(ir)}
	for _, rev := range []bool{false, true} {
		if seq := p.dfsOrder(rev); len(seq) == n {
			orders = append(orders, p.newOrder(seq))
		}
	}
	return orders
}

// dfsOrder is the post-order of a depth-first walk from the graph outputs
// (inputs in listed order, or reversed), then any step no output needs.
func (p *planner) dfsOrder(reverse bool) []int {
	idx := map[*graph.Node]int{}
	for i, s := range p.steps {
		idx[s.n] = i
	}
	done := make([]bool, len(p.steps))
	var seq []int
	type frame struct {
		i, next int
	}
	var stack []frame
	visit := func(i int) {
		if done[i] {
			return
		}
		done[i] = true
		stack = append(stack, frame{i: i})
		for len(stack) > 0 {
			f := &stack[len(stack)-1]
			ins := p.steps[f.i].n.Inputs
			if f.next < len(ins) {
				k := f.next
				if reverse {
					k = len(ins) - 1 - f.next
				}
				f.next++
				if v := ins[k]; v != nil && v.Producer != nil {
					if j, ok := idx[v.Producer]; ok && !done[j] {
						done[j] = true
						stack = append(stack, frame{i: j})
					}
				}
				continue
			}
			seq = append(seq, f.i)
			stack = stack[:len(stack)-1]
		}
	}
	for _, o := range p.g.Outputs {
		if o != nil && o.Producer != nil {
			if j, ok := idx[o.Producer]; ok {
				visit(j)
			}
		}
	}
	for i := range p.steps {
		visit(i)
	}
	return seq
}

// newOrder computes the liveness of order seq. Graph outputs live to the
// end; graph inputs until their last reader (the runtime drops its own
// handles on them once the call is made).
func (p *planner) newOrder(seq []int) *evalOrder {
	o := &evalOrder{seq: seq, pos: make([]int, len(seq)), last: map[*graph.Value]int{}}
	for k, i := range seq {
		o.pos[i] = k
		for _, in := range p.steps[i].n.Inputs {
			if in != nil && in.Const == nil {
				if r := p.rootOf(in); o.last[r] < k {
					o.last[r] = k
				}
			}
		}
	}
	end := len(seq)
	for _, v := range p.g.Outputs {
		o.last[p.rootOf(v)] = end
	}
	return o
}

// donatingOps are the ops whose MLX lowering writes its output into an
// input's buffer when nothing else holds that input (MLX "donates" it):
// elementwise ops and the LayerNorm kernel.
var donatingOps = map[string]bool{
	"Add": true, "Sub": true, "Mul": true, "Div": true, "Pow": true, "Neg": true, "Abs": true,
	"Exp": true, "Log": true, "Sqrt": true, "Reciprocal": true, "Sigmoid": true, "Tanh": true,
	"Relu": true, "Erf": true, "Softplus": true, "LayerNormalization": true,
}

// donated is the bytes of the input buffer the step at position k of order
// o writes its output into (0: none). MLX donates a buffer only if nothing
// else references it when the op is encoded, and an op's producer (or an
// earlier reader) may still be running then and hold it, so only a graph
// input read by this step alone is counted as donated: the runtime has
// dropped its handle, nothing else ever held it.
func (p *planner) donated(o *evalOrder, k int) int64 {
	s := p.steps[o.seq[k]]
	n := s.n
	if n.Domain != graph.DefaultDomain || !donatingOps[n.Op] || len(s.outs) == 0 || s.outs[0] == 0 {
		return 0
	}
	for _, in := range n.Inputs {
		if in == nil || in.Const != nil || in.Producer != nil || p.readers[in] != 1 || p.bytes[in] != s.outs[0] {
			continue
		}
		if l, ok := o.last[in]; ok && l == k {
			return s.outs[0]
		}
	}
	return 0
}
