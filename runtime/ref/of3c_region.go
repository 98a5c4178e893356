package ref

import (
	"fmt"

	"github.com/of3c/of3c/graph"
)

func init() {
	register(kernelChunkMap, graph.FusedDomain+".ChunkMap")
}

// kernelChunkMap runs of3c.ChunkMap's body once per chunk of the mapped
// axis, on the chunk's slices of the split inputs and the whole of the
// others, and concatenates the results (docs/ops.md). The body runs on
// this executor, so a region's numbers are its ops' reference numbers
// whatever the chunking.
func kernelChunkMap(n *graph.Node, in []*array) ([]*array, error) {
	body, inAxes, outAxes, err := graph.ChunkMapBody(n)
	if err != nil {
		return nil, err
	}
	rows := int64(-1)
	for i, a := range in {
		if a == nil {
			return nil, fmt.Errorf("input %d is omitted", i)
		}
		if ax := inAxes[i]; ax >= 0 {
			if int(ax) >= a.rank() {
				return nil, fmt.Errorf("input %d %v has no axis %d", i, a.shape, ax)
			}
			if rows >= 0 && a.shape[ax] != rows {
				return nil, fmt.Errorf("input %d has %d rows on axis %d, others %d", i, a.shape[ax], ax, rows)
			}
			rows = a.shape[ax]
		}
	}
	if rows < 0 {
		return nil, fmt.Errorf("no input is split")
	}
	chunk := n.AttrInt("chunk", 0)
	if chunk <= 0 || chunk > rows {
		chunk = rows
	}
	parts := make([][]*array, len(n.Outputs))
	for lo := int64(0); lo < rows || (rows == 0 && lo == 0); lo += chunk {
		hi := min(lo+chunk, rows)
		feed := map[string]*graph.Tensor{}
		for i, a := range in {
			if ax := inAxes[i]; ax >= 0 && (lo > 0 || hi < rows) {
				a = sliceAxis(a, int(ax), lo, hi-lo)
			}
			feed[body.Inputs[i].Name] = a.toTensor()
		}
		res, err := Run(body, feed)
		if err != nil {
			return nil, fmt.Errorf("chunk [%d, %d): %w", lo, hi, err)
		}
		for j, o := range body.Outputs {
			a, err := fromTensor(res[o.Name])
			if err != nil {
				return nil, err
			}
			parts[j] = append(parts[j], a)
		}
		if rows == 0 {
			break
		}
	}
	outs := make([]*array, len(n.Outputs))
	for j := range outs {
		if len(parts[j]) == 1 {
			outs[j] = parts[j][0]
			continue
		}
		if outs[j], err = concatArrays(parts[j], int(outAxes[j])); err != nil {
			return nil, err
		}
	}
	return outs, nil
}
