package passes

import (
	"github.com/of3c/of3c/graph"
)

// The blocks the MLX lowering uses on the CPU for fused ops the graph leaves
// unchunked. These functions are the one copy of the rule: codegen's CPU
// lowering (tracer.cpuBlock, lowerSwiGLU) calls them, and the planner
// applies them when Options.Device is "cpu", so that its estimate of a
// default (unbudgeted) CPU compile is the memory that compile really uses,
// and so that a budget never makes the planner choose blocks coarser than
// the ones the CPU would have used anyway.
//
// Why blocks: MLX's CPU kernels stream over whole arrays one op at a time,
// so an op chain over blocks that fit the cache runs ~10-40% faster than
// over one 100 MiB+ array (measured on the OF3 pair stack: TriangleAttention
// N=256 −13%, PairformerBlock N=384 −40%), and the peak memory drops as a
// bonus. Chunking is exact (docs/ops.md).

// CPUBlockElems is the element count of the largest attention-logits block
// or SwiGLU [rows, 2h] block the CPU lowering materialises by default.
const CPUBlockElems = 1 << 20

// CPUAttentionBlock is the batch_chunk the CPU lowering uses for an
// unchunked attention with output shape out and keys keys (0: whole).
func CPUAttentionBlock(out []int64, keys int64) int64 {
	if len(out) <= 2 || out[0] <= 1 {
		return 0
	}
	perRow := mulS(keys, prod(out[1:len(out)-1]))
	if perRow == 0 || mulS(perRow, out[0]) <= CPUBlockElems {
		return 0
	}
	return max(1, CPUBlockElems/perRow)
}

// CPUSwiGLUBlock is the row_chunk the CPU lowering uses for an unchunked
// SwiGLU over rows rows with a [c, h2] merged weight (0: whole).
func CPUSwiGLUBlock(rows, h2 int64) int64 {
	if h2 <= 0 || mulS(rows, h2) <= CPUBlockElems {
		return 0
	}
	return max(1, CPUBlockElems/h2)
}

// cpuDefaults sets, on an unchunked fused step, the chunking the CPU
// lowering applies by itself.
func (p *planner) cpuDefaults(s *planNode) {
	if p.opts.Device != "cpu" || !s.fused {
		return
	}
	for _, v := range s.chunk {
		if v > 0 {
			return
		}
	}
	switch s.n.Op {
	case "Attention":
		if p.cpuFusedAttention(s) {
			return
		}
		vs := p.shapes[s.n.Inputs[2]]
		if bc := CPUAttentionBlock(s.outDims, vs[len(vs)-2]); bc > 0 {
			s.chunk["batch_chunk"] = bc
		}
	case "SwiGLU":
		xs := p.shapes[s.n.Inputs[0]]
		if rc := CPUSwiGLUBlock(prod(xs[:len(xs)-1]), p.shapes[s.n.Inputs[1]][1]); rc > 0 {
			s.chunk["row_chunk"] = rc
		}
	}
}

// CPUFusedAttention is the condition under which the CPU lowering runs an
// of3c.Attention as internal/mlx's FastAttention kernel (with the fast
// kernels on): mode qk and q, k, v and every present bias f32 on the
// device. The kernel never materialises the logits and ignores the chunk
// attributes. codegen's AttentionPath takes its attention/cpu-fused path
// under exactly this condition, and the planner models it.
func CPUFusedAttention(mode string, dtypes ...graph.DType) bool {
	if mode != graph.AttentionModeQK || len(dtypes) < 3 {
		return false
	}
	for _, dt := range dtypes {
		if dt != graph.Float32 {
			return false
		}
	}
	return true
}

// cpuFusedAttention reports whether the CPU lowering runs attention step s
// as the fused kernel (CPUFusedAttention on the graph's dtypes: the planner
// assumes fp32 precision with the fast kernels on; a bf16/fp16 CPU
// program's values are half the f32 sizes the planner counts, which covers
// the unfused attention it runs instead).
func (p *planner) cpuFusedAttention(s *planNode) bool {
	n := s.n
	if p.opts.Device != "cpu" || n.Op != "Attention" || len(n.Inputs) < 3 {
		return false
	}
	var dts []graph.DType
	for i, v := range n.Inputs {
		switch {
		case v != nil:
			dts = append(dts, v.Type.DType)
		case i < 3:
			return false
		}
	}
	return CPUFusedAttention(n.AttrString("mode", graph.AttentionModeQK), dts...)
}
