package passes

import "of3c/graph"

// Why the runtime sets MLX's memory limit (measured on MLX 0.32.4, CPU; the
// numbers are in docs/PERFORMANCE.md, "Memory planner"):
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
// largest buffer; with L = InOrder − LargestBuffer the peak stays at or
// below InOrder. L never goes below LargestBuffer: MLX refuses (runtime/mlx's
// guard) any single buffer above the limit, so the plan's peak (PeakAfter,
// what a budget is checked against) is max(InOrder, 2·LargestBuffer).

// RunLimit is the MLX memory limit that keeps a run of a plan with in-order
// peak `peak`, largest single allocation `largest` and largest array
// `array` (runtime/mlx's guard refuses a graph holding any array above the
// limit, views included: a broadcast counts at its full size) at or below
// max(peak, array + largest).
func RunLimit(peak, largest, array int64) int64 {
	return max(peak-largest, array, largest)
}

// largestArray is the largest array of the lowered MLX graph, allocated or
// not: the largest buffer, or the weights of a bias_only attention
// broadcast (as a view) to v's batch for the final GEMM.
func (p *planner) largestArray() int64 {
	m, _ := p.largestBuffer()
	for _, s := range p.steps {
		if !s.fused || s.n.Op != "Attention" || p.cpuFusedAttention(s) {
			continue
		}
		batch, q, k, _ := p.attentionDims(s)
		fb := 1.0
		if bc := s.chunk["batch_chunk"]; bc > 0 && len(s.outDims) > 2 && s.outDims[0] > 0 {
			fb = float64(chunked(s.outDims[0], bc)) / float64(s.outDims[0])
			batch = max(1, int64(float64(batch)*fb))
		}
		a := accBytes(s.n.Outputs[0].Type.DType)
		m = max(m, max(batch, p.attentionOutBatch(s, fb))*chunked(q, s.chunk["query_chunk"])*chunked(k, s.chunk["kv_chunk"])*a)
	}
	return m
}

// largestBuffer is the largest single array an MLX op allocates at once,
// under the current chunking — an op's outputs together (with the
// contiguous copies a GEMM makes of transposed operands), or a fused op's
// largest block temporary — and the step that allocates it.
func (p *planner) largestBuffer() (int64, int) {
	var m int64
	at := 0
	for i, s := range p.steps {
		b := sum(s.outs)
		if d := p.donatedAlways(i); d > 0 {
			b -= d // written into an input's buffer: no allocation
		}
		if s.n.Domain == graph.DefaultDomain && (s.n.Op == "MatMul" || s.n.Op == "Gemm") {
			for _, in := range s.n.Inputs {
				if in != nil && in.Const == nil && p.rootOf(in) != in && in.Producer != nil && in.Producer.Op == "Transpose" {
					b += p.bytes[in]
				}
			}
		}
		if s.fused {
			b = max(b, p.fusedLargest(s))
		}
		if b > m {
			m, at = b, i
		}
	}
	return m, at
}

// bound is what a run of the plan is held to: the in-order peak, or the
// largest array plus the largest buffer when that is more (the limit cannot
// go below one array, and one op may allocate a buffer above it) — and the
// step that sets it.
func (p *planner) bound() (int64, int) {
	peak, at := p.peak()
	m, mAt := p.largestBuffer()
	if b := p.largestArray() + m; b > peak {
		return b, mAt
	}
	return peak, at
}

// fusedLargest is the largest block temporary of a fused step (the models
// of workspace and pairWorkspace).
func (p *planner) fusedLargest(s *planNode) int64 {
	n := s.n
	a := accBytes(n.Outputs[0].Type.DType)
	switch n.Op {
	case "Attention":
		if p.cpuFusedAttention(s) {
			return 0 // no temporary beyond the biases' copies (values' sizes)
		}
		batch, q, k, _ := p.attentionDims(s)
		fb := 1.0
		if bc := s.chunk["batch_chunk"]; bc > 0 && len(s.outDims) > 2 && s.outDims[0] > 0 {
			fb = float64(chunked(s.outDims[0], bc)) / float64(s.outDims[0])
			if batch >= s.outDims[0] {
				batch = max(1, int64(float64(batch)*fb))
			}
		}
		return batch * chunked(q, s.chunk["query_chunk"]) * chunked(k, s.chunk["kv_chunk"]) * a
	case "SwiGLU":
		xs := p.shapes[n.Inputs[0]]
		rows := prod(xs[:len(xs)-1])
		return chunked(rows, s.chunk["row_chunk"]) * p.shapes[n.Inputs[1]][1] * a
	case "TriangleMultiplication":
		xs, ws := p.shapes[n.Inputs[0]], p.shapes[n.Inputs[2]]
		rows := p.pairRows(s)
		r := chunked(rows, s.chunk["row_chunk"])
		w := prod(xs[:len(xs)-2]) * ws[1] * a // x·W, [*, N, N, 4h]
		if r < rows {
			w = w / rows * r / 2 // one block's [R, N, 2h]
		}
		return w
	case "OuterProductMean":
		as, bs := p.shapes[n.Inputs[0]], p.shapes[n.Inputs[1]]
		r := chunked(p.pairRows(s), s.chunk["row_chunk"])
		return prod(as[:len(as)-3]) * r * as[len(as)-1] * bs[len(bs)-2] * bs[len(bs)-1] * a
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
