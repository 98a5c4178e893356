package codegen

import (
	"fmt"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/mlx"
)

// The lowering of of3c.ChunkMap (a row-chunked region, passes/chunk_regions.go;
// docs/ops.md): the body is lowered once per block of rows with the existing
// per-op lowerings, on slices of the split inputs and the whole of the
// others, and each output is the concatenation of its blocks (path
// region/sequenced). MLX evaluates the lazy graph without ordering
// independent branches, so, as in trimul/blocked, every block's sliced
// inputs are made to depend on the previous block's outputs
// (tracer.after): otherwise MLX's scheduler may start every block at once
// and all their intermediates are alive together. With one block (chunk 0
// or ≥ the rows) the body is lowered on the inputs as they are
// (region/whole), which is the unchunked graph.
//
// Measured (TestChunkMapPeak: MLX CPU, f32, the real PairFormerBlock,
// c_z = 128, its triangle multiplications at row_chunk 32 in both, under
// the planner's run limit), without regions / every region at chunk 32:
// N = 256 237 / 201 MiB; N = 384 450 / 415 MiB. The triangle
// multiplications, which regions leave to their own row_chunk, set the
// rest of the peak. Filling the outputs with slice_update instead of
// concatenating the blocks measured worse (220 MiB at N = 256; 483 MiB at
// N = 384): MLX does not donate the buffer from block to block here.

func init() {
	register(lowerChunkMap, graph.FusedDomain+".ChunkMap")
}

// chunkMapRows is the extent of the mapped axis.
func chunkMapRows(in []Operand, inAxes []int64) int64 {
	for i, a := range inAxes {
		if a >= 0 && i < len(in) && int(a) < len(in[i].Shape) {
			return in[i].Shape[a]
		}
	}
	return 0
}

func lowerChunkMap(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	body, inAxes, outAxes, err := graph.ChunkMapBody(n)
	if err != nil {
		return nil, err
	}
	rows := int64(-1)
	for i, x := range in {
		if x == nil {
			return nil, fmt.Errorf("input %d is omitted", i)
		}
		if a := inAxes[i]; a >= 0 {
			if int(a) >= x.rank() {
				return nil, fmt.Errorf("input %d %v has no axis %d", i, x.shape, a)
			}
			if rows >= 0 && x.shape[a] != rows {
				return nil, fmt.Errorf("input %d has %d rows, others %d", i, x.shape[a], rows)
			}
			rows = x.shape[a]
		}
	}
	chunk := n.AttrInt("chunk", 0)
	p := ChunkMapPath(t.p.opts, rows, chunk)
	t.record(n, p, 0)
	blocks := pairRowBlocks(rows, chunk)
	parts := make([][]*mlx.Array, len(n.Outputs))
	var dts []graph.DType
	var prev []*mlx.Array
	for _, blk := range blocks {
		lo, hi := blk[0], blk[1]
		env := make(map[*graph.Value]*val, len(body.Nodes)*2)
		for i, x := range in {
			a := inAxes[i]
			if a < 0 || len(blocks) == 1 {
				env[body.Inputs[i]] = x
				continue
			}
			xa := t.sliceAxis(t.arr(x), x.shape, int(a), lo, hi)
			for _, pv := range prev {
				xa = t.after(xa, pv)
			}
			shape := append([]int64{}, x.shape...)
			shape[a] = hi - lo
			env[body.Inputs[i]] = &val{a: xa, dt: x.dt, shape: shape}
		}
		if err := t.p.traceNodes(t, env, body.Nodes); err != nil {
			return nil, fmt.Errorf("rows [%d, %d): %w", lo, hi, err)
		}
		t.n = n
		prev = prev[:0]
		dts = dts[:0]
		for j, o := range body.Outputs {
			v, err := lookupVal(env, o)
			if err != nil {
				return nil, err
			}
			a := t.arr(v)
			parts[j] = append(parts[j], a)
			prev = append(prev, a)
			dts = append(dts, v.dt)
		}
	}
	outs := make([]*val, len(n.Outputs))
	for j := range outs {
		a := parts[j][0]
		if len(parts[j]) > 1 {
			a = t.s.Concatenate(int(outAxes[j]), parts[j]...)
		}
		outs[j] = &val{a: a, dt: dts[j], shape: int64sOf(a.Shape())}
	}
	return outs, nil
}
