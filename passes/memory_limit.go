package passes

import (
	"github.com/of3c/of3c/graph"
)

// Why the runtime sets MLX's memory limit (measured on MLX 0.32.4, CPU; the
// numbers are in docs/notes/PERFORMANCE.md, "Memory planner"):
//
// MLX evaluates a graph by encoding its ops one after another on the calling
// thread — allocating each op's output (and the copies it makes of
// non-contiguous operands) as it is encoded — while the stream's worker
// thread runs them; a buffer is freed when the last op reading it has run.
// Encoding is much faster than running, so without a brake the allocations
// run far ahead of the frees: the of3 PairformerBlock at N=256 peaks at
// 1.13 GiB although at no point of the evaluation order more than 364 MiB is
// needed. That gap depends on timing, so no static model can bound it. The
// brake MLX has is its memory limit: after encoding an op, eval waits for
// running ops while the active memory is above the limit (and any op is
// still running). So with limit L, the peak is at most
//
//	max(L + the largest allocation of one op, the in-order need)
//
// The planner models the in-order need (MemoryPlan.InOrder) and the
// largest single buffer; with L = InOrder − LargestBuffer (less a slack) the
// peak stays at or below InOrder. L never goes below the largest array of
// the graph: internal/mlx's guard refuses any array above the limit, so the
// plan's peak (PeakAfter, what a budget is checked against) is
// max(InOrder, largest array + LargestBuffer + slack).

// RunLimit is the MLX memory limit that keeps a run of a plan with in-order
// peak `peak`, largest single allocation `largest` and largest array
// `array` (internal/mlx's guard refuses a graph holding any array above the
// limit, views included: a broadcast counts at its full size) at or below
// max(peak, array + largest + encodeSlack(largest)).
func RunLimit(peak, largest, array int64) int64 {
	return max(peak-largest-encodeSlack(largest), array, largest)
}

// encodeSlack allows for what MLX allocates along with the largest buffer
// before it next checks its limit (a fused kernel's other outputs, small
// operand copies): 1 MiB plus 1/16 of it. Measured: 0.38 MiB above the limit
// plus a 24.25 MiB buffer (tri_att_start_of3, N=128, first call); 0.75 MiB
// above the limit plus a 4.5 MiB buffer (diffusion_transformer_block_tiny,
// N=768).
func encodeSlack(largest int64) int64 { return addS(1<<20, largest/16) }

// largestArray is the largest array of the lowered MLX graph, allocated or
// not: the largest buffer or value (also one written into a donated
// buffer), or the weights of a bias_only attention broadcast (as a view) to
// v's batch for the final GEMM.
func (p *planner) largestArray() int64 {
	m, _ := p.largestBuffer()
	for _, s := range p.steps {
		for _, b := range s.outs {
			m = max(m, b) // donated outputs included: the guard counts them
		}
		if s.fused && s.n.Op == "ChunkMap" {
			m = max(m, p.regionCostAt(s, chunked(p.regionRows(s), s.chunk["chunk"])).array)
			continue
		}
		if !s.fused || s.n.Op != "Attention" || p.fusedAttention(s) {
			continue
		}
		batch, q, k, _ := p.attentionDims(s)
		fb := 1.0
		if bc := s.chunk["batch_chunk"]; bc > 0 && len(s.outDims) > 2 && s.outDims[0] > 0 {
			fb = float64(chunked(s.outDims[0], bc)) / float64(s.outDims[0])
			batch = max(1, int64(float64(batch)*fb))
		}
		a := accBytes(s.n.Outputs[0].Type.DType)
		m = max(m, mulS(max(batch, p.attentionOutBatch(s, fb)), chunked(q, s.chunk["query_chunk"]), chunked(k, s.chunk["kv_chunk"]), a))
	}
	return m
}

// largestBuffer is the largest single array an MLX op allocates at once,
// under the current chunking, and the step that allocates it (stepAlloc).
func (p *planner) largestBuffer() (int64, int) {
	var m int64
	at := 0
	for i := range p.steps {
		if b := p.stepAlloc(i); b > m {
			m, at = b, i
		}
	}
	return m, at
}

// stepAlloc is the most step i allocates in one MLX op: its outputs
// together (less one written into a donated buffer; with the contiguous
// copies a GEMM makes of transposed operands), or a fused op's largest
// block temporary.
func (p *planner) stepAlloc(i int) int64 {
	s := p.steps[i]
	b := sum(s.outs)
	if d := p.donatedAlways(i); d > 0 {
		b -= d // written into an input's buffer: no allocation
	}
	if s.n.Domain == graph.DefaultDomain && (s.n.Op == "MatMul" || s.n.Op == "Gemm") {
		for _, in := range s.n.Inputs {
			if in != nil && in.Const == nil && p.rootOf(in) != in && in.Producer != nil && in.Producer.Op == "Transpose" {
				b = addS(b, p.bytes[in])
			}
		}
	}
	if s.fused {
		b = max(b, p.fusedLargest(s))
	}
	return b
}

// bound is what a run of the plan is held to — the in-order peak plus
// inOrderSlack, or what the run-ahead under the run limit may reach when
// that is more (runAhead) — and the step that sets it.
func (p *planner) bound() (int64, int) {
	peak, at := p.peak()
	m, _ := p.largestBuffer()
	lim := RunLimit(peak, m, p.largestArray())
	peak = addS(peak, inOrderSlack, peak/32)
	if b, bAt := p.runAhead(lim); b > peak {
		return b, bAt
	}
	return peak, at
}

// inOrderSlack, and 1/32 of the in-order peak, allow for what the planner
// does not model (scalars, small copies, fused kernels' extra outputs,
// orders MLX picks beyond the three considered): measured up to 1.54 MiB
// above the in-order peak of 42.2 MiB (the of3 PairformerBlock at N=96,
// budgeted, third call) and 0.5 MiB above 42.6 MiB
// (diffusion_transformer_block_tiny, N=768).
const inOrderSlack = 1 << 20

// runAhead bounds the peak of a run under MLX memory limit lim: when MLX
// encodes step i, what is allocated and not yet freed is at most lim (it
// waited) and at most everything allocated so far (inputs, weights, and the
// earlier steps' outputs and temporaries); step i then adds its own
// allocation (and encodeSlack). The worst over the evaluation orders.
func (p *planner) runAhead(lim int64) (int64, int) {
	best, at := int64(0), 0
	var start int64
	for _, v := range p.g.Inputs {
		start = addS(start, p.bytes[v])
	}
	for _, v := range p.g.Consts {
		start = addS(start, p.bytes[v])
	}
	for _, o := range p.orders {
		cum := start
		for k, i := range o.seq {
			s := p.steps[i]
			a := p.stepAlloc(i)
			if t := addS(min(lim, cum), a, encodeSlack(a)); t > best {
				best, at = t, i
			}
			cum = addS(cum, sum(s.outs)-p.donated(o, k), p.workspace(s))
		}
	}
	return best, at
}

// fusedLargest is the largest block temporary of a fused step (the models
// of workspace and pairWorkspace).
func (p *planner) fusedLargest(s *planNode) int64 {
	n := s.n
	a := accBytes(n.Outputs[0].Type.DType)
	switch n.Op {
	case "Attention":
		if p.fusedAttention(s) {
			var b int64 // the biases' contiguous copies
			for _, x := range n.Inputs[3:] {
				if x != nil && x.Const == nil {
					b = max(b, p.bytes[x])
				}
			}
			return b
		}
		batch, q, k, _ := p.attentionDims(s)
		fb := 1.0
		if bc := s.chunk["batch_chunk"]; bc > 0 && len(s.outDims) > 2 && s.outDims[0] > 0 {
			fb = float64(chunked(s.outDims[0], bc)) / float64(s.outDims[0])
			if batch >= s.outDims[0] {
				batch = max(1, int64(float64(batch)*fb))
			}
		}
		return mulS(batch, chunked(q, s.chunk["query_chunk"]), chunked(k, s.chunk["kv_chunk"]), a)
	case "SwiGLU":
		xs := p.shapes[n.Inputs[0]]
		rows := prod(xs[:len(xs)-1])
		return mulS(chunked(rows, s.chunk["row_chunk"]), p.shapes[n.Inputs[1]][1], a)
	case "ChunkMap":
		return p.regionCostAt(s, chunked(p.regionRows(s), s.chunk["chunk"])).largest
	case "TriangleMultiplication":
		xs, ws := p.shapes[n.Inputs[0]], p.shapes[n.Inputs[2]]
		rows := p.pairRows(s)
		r := chunked(rows, s.chunk["row_chunk"])
		w := mulS(prod(xs[:len(xs)-2]), ws[1], a) // x·W, [*, N, N, 4h]
		if r < rows {
			w = mulS(w/rows, r) / 2 // one block's [R, N, 2h]
		}
		return w
	case "OuterProductMean":
		as, bs := p.shapes[n.Inputs[0]], p.shapes[n.Inputs[1]]
		r := chunked(p.pairRows(s), s.chunk["row_chunk"])
		return mulS(prod(as[:len(as)-3]), r, as[len(as)-1], bs[len(bs)-2], bs[len(bs)-1], a)
	}
	return 0
}

// donatedAlways is the bytes step i writes into an input's buffer in every
// evaluation order the planner considers (0 when in some it allocates).
func (p *planner) donatedAlways(i int) int64 {
	var d int64
	for k, o := range p.orders {
		x := p.donated(o, o.pos[i])
		if x == 0 {
			return 0
		}
		if k == 0 || x < d {
			d = x
		}
	}
	return d
}
