package passes

import "github.com/of3c/of3c/graph"

// The planner's model of of3c.ChunkMap (a row-chunked region, chunk_regions.go).
// The region's inputs and outputs are values of the outer graph like any
// other; inside, one block at a time runs the body: its in-order peak at
// the block's rows (a planner of its own over the body, with the same
// device rules, so the fused ops inside get their CPU blocks or fused
// kernels) less what is already counted outside (the inputs passed whole,
// which are the outer buffers, and the body's small constants), plus,
// when there is more than one block, the finished blocks, which live until
// they are concatenated into the outputs (the block's own output among them,
// not counted twice). The sliced inputs are the body's inputs at the block's
// size: the lowering copies them (tracer.after makes each a fresh array), so
// they count; with one block the body runs on the outer arrays themselves.

// regionCost is what the body of a region needs at one block size.
type regionCost struct {
	peak    int64 // the body's in-order peak less the whole inputs and constants
	split   int64 // the split inputs' block slices
	out     int64 // the body's outputs for one block
	largest int64 // the largest buffer one of the body's ops allocates
	array   int64 // the body's largest array
}

// regionRows is the extent of s's mapped axis.
func (p *planner) regionRows(s *planNode) int64 {
	_, inAxes, _, err := graph.ChunkMapBody(s.n)
	if err != nil {
		return 0
	}
	for i, a := range inAxes {
		if a >= 0 {
			if sh := p.shapes[s.n.Inputs[i]]; int(a) < len(sh) {
				return sh[a]
			}
		}
	}
	return 0
}

// regionCostAt plans the body of s at r rows per block (cached).
func (p *planner) regionCostAt(s *planNode, r int64) regionCost {
	if p.regions == nil {
		p.regions = map[*graph.Node]map[int64]regionCost{}
	}
	if c, ok := p.regions[s.n][r]; ok {
		return c
	}
	body, inAxes, _, err := graph.ChunkMapBody(s.n)
	var c regionCost
	if err == nil {
		dims := map[string]int64{graph.ChunkRowsSym: r}
		for k, v := range p.dims {
			dims[k] = v
		}
		sub := &planner{g: body, dims: dims, opts: p.opts, shapes: map[*graph.Value][]int64{}, bytes: map[*graph.Value]int64{},
			root: map[*graph.Value]*graph.Value{}}
		if sub.bind() == nil && len(sub.steps) > 0 {
			pk, _ := sub.peak()
			for i, v := range body.Inputs {
				if inAxes[i] < 0 {
					pk -= sub.bytes[v]
				} else {
					c.split += sub.bytes[v]
				}
			}
			for _, v := range body.Outputs {
				c.out += sub.bytes[v]
			}
			for _, v := range body.Consts {
				pk -= sub.bytes[v]
			}
			c.peak = max(pk, 0)
			c.largest, _ = sub.largestBuffer()
			c.array = sub.largestArray()
		}
	}
	if p.regions[s.n] == nil {
		p.regions[s.n] = map[int64]regionCost{}
	}
	p.regions[s.n][r] = c
	return c
}

// regionWorkspace is s's memory beyond its inputs and outputs under its
// current chunk.
func (p *planner) regionWorkspace(s *planNode) int64 {
	rows := p.regionRows(s)
	r := chunked(rows, s.chunk["chunk"])
	c := p.regionCostAt(s, r)
	if r >= rows {
		// One block runs on the inputs as they are and makes the
		// outputs: both are counted outside already.
		return max(0, c.peak-c.split-c.out)
	}
	// The finished blocks (the last one among them), until they are
	// concatenated into the outputs.
	return addS(max(0, c.peak-c.out), sum(s.outs))
}

// DefaultLeanBlock is the working set (the part that grows with the chunk,
// in the graph's own types: f32 for OpenFold3, whatever precision it runs
// at) a lean plan leaves a block of at least. Smaller blocks make the run
// launch-bound: on an H200 the real PairFormerBlock at bf16 N = 512 took
// 17.1 ms with the N/8-row blocks of a plan without the floor, 10.7 ms with
// it, and 10.6 ms unchunked (100 ops per CUDA graph;
// docs/notes/2026-12-03-session8-gpu.md).
const DefaultLeanBlock = 256 << 20

// leanMinBlocks is the fewest blocks a lean plan splits a chunked op into.
const leanMinBlocks = 4

// leanDefaults is the GPU plan without a budget (issue 11: peak no more
// than OpenFold3's chunk + LMA path): every region and row-chunkable pair
// op is chunked until the part of its working set that grows with the
// chunk is at most its largest input or the block floor (LeanBlock), the
// larger (what does not shrink — a triangle multiplication's whole b, the
// finished blocks — stays), which keeps a pair-stack layer at a few
// [N, N, c_z] tensors whatever N; the chunks stay as large as that allows,
// for speed, but at least leanMinBlocks to an op that is not small.
func (p *planner) leanDefaults() {
	block := p.opts.LeanBlock
	if block <= 0 {
		block = DefaultLeanBlock
	}
	for _, s := range p.steps {
		if !s.fused {
			continue
		}
		switch s.n.Op {
		case "ChunkMap", "TriangleMultiplication", "OuterProductMean":
		default:
			continue
		}
		var largest int64
		for _, in := range s.n.Inputs {
			if in != nil && in.Const == nil {
				largest = max(largest, p.bytes[p.rootOf(in)])
			}
		}
		// The part of the workspace that shrinks with the chunk: what
		// it is less what it would be at one row per block.
		key := "row_chunk"
		if s.n.Op == "ChunkMap" {
			key = "chunk"
		}
		one := *s
		one.chunk = cloneChunks(s.chunk)
		one.chunk[key] = 1
		floor := p.workspace(&one)
		whole := p.workspace(s)
		for p.workspace(s)-floor > max(largest, block) && p.shrink(s) {
		}
		// At least leanMinBlocks blocks where the working set is not
		// small: a region the plan leaves whole runs as the plain graph,
		// whose GPU peak is above its estimate (N = 512 fp32, the
		// attention regions whole: 4.02 GiB against 1.31 GiB planned;
		// docs/notes/2026-12-03-session8-gpu.md).
		if whole <= block/leanMinBlocks {
			continue
		}
		rows := p.pairRows(s)
		if s.n.Op == "ChunkMap" {
			rows = p.regionRows(s)
		}
		for chunked(rows, s.chunk[key])*leanMinBlocks > rows && p.shrink(s) {
		}
	}
}
