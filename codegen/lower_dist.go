package codegen

import (
	"fmt"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/mlx"
)

// Lowerings of the collectives of a sharded graph (passes/shard.go,
// graph/infer_of3c_dist.go) on MLX's distributed layer (internal/mlx
// distributed.go). The process must have joined the group
// (mlx.DistInit) with as many ranks as the graph was sharded for.

func init() {
	register(lowerShardSlice, graph.FusedDomain+".ShardSlice")
	register(lowerAllGather, graph.FusedDomain+".AllGather")
	register(lowerAllToAll, graph.FusedDomain+".AllToAll")
	register(lowerAllSum, graph.FusedDomain+".AllSum")
}

func distCheck(t *tracer, n *graph.Node) (mlx.Group, error) {
	g := t.s.DistGroup()
	parts := n.AttrInt("parts", 0)
	if int64(g.Size) != parts {
		return g, fmt.Errorf("the graph is sharded for %d ranks, but this process's distributed group has %d (run it with --shards %d)", parts, g.Size, parts)
	}
	return g, nil
}

func distAxis(n *graph.Node, name string, r int) (int, error) {
	ax := int(n.AttrInt(name, 0))
	if ax < 0 {
		ax += r
	}
	if ax < 0 || ax >= r {
		return 0, fmt.Errorf("%s %d out of range for rank %d", name, n.AttrInt(name, 0), r)
	}
	return ax, nil
}

// chunkRange is rank r's rows of an axis of n split over parts:
// [min(r·c, n), min((r+1)·c, n)) with c = ⌈n/parts⌉.
func chunkRange(n, parts, r int) (lo, hi, c int) {
	c = (n + parts - 1) / parts
	return min(r*c, n), min((r+1)*c, n), c
}

// wholeSize is the unsharded size of a sharded axis: like's axis
// like_axis when the node has like, else local·parts (equal chunks).
func wholeSize(n *graph.Node, in []*val, local int64, parts int) (int, error) {
	if len(in) > 1 && in[1] != nil {
		la, err := distAxis(n, "like_axis", in[1].rank())
		if err != nil {
			return 0, err
		}
		return int(in[1].shape[la]), nil
	}
	return int(local) * parts, nil
}

func checkChunks(n, parts int) error {
	if _, hi, _ := chunkRange(n, parts, parts-1); hi <= (parts-1)*((n+parts-1)/parts) {
		return fmt.Errorf("an axis of %d rows leaves a rank of %d without rows", n, parts)
	}
	return nil
}

// padAxis pads a with zeros at the end of axis ax up to size.
func padAxis(t *tracer, a *mlx.Array, ax, size int) *mlx.Array {
	sh := a.Shape()
	if sh[ax] >= size {
		return a
	}
	low := make([]int, len(sh))
	high := make([]int, len(sh))
	high[ax] = size - sh[ax]
	return t.s.Pad(a, low, high, 0)
}

// sliceAxis keeps [lo, hi) of axis ax.
func sliceAxis(t *tracer, a *mlx.Array, ax, lo, hi int) *mlx.Array {
	sh := a.Shape()
	if lo == 0 && hi == sh[ax] {
		return a
	}
	start := make([]int, len(sh))
	stop := append([]int(nil), sh...)
	start[ax], stop[ax] = lo, hi
	return t.s.Slice(a, start, stop, nil)
}

func lowerShardSlice(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	g, err := distCheck(t, n)
	if err != nil {
		return nil, err
	}
	x := in[0]
	ax, err := distAxis(n, "axis", x.rank())
	if err != nil {
		return nil, err
	}
	whole := int(x.shape[ax])
	if err := checkChunks(whole, g.Size); err != nil {
		return nil, err
	}
	lo, hi, _ := chunkRange(whole, g.Size, g.Rank)
	return t.one(sliceAxis(t, t.arr(x), ax, lo, hi), x.dt)
}

func lowerAllGather(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	g, err := distCheck(t, n)
	if err != nil {
		return nil, err
	}
	x := in[0]
	ax, err := distAxis(n, "axis", x.rank())
	if err != nil {
		return nil, err
	}
	whole, err := wholeSize(n, in, x.shape[ax], g.Size)
	if err != nil {
		return nil, err
	}
	_, _, c := chunkRange(whole, g.Size, g.Rank)
	a := t.s.AllGather(padAxis(t, t.arr(x), ax, c), ax)
	return t.one(sliceAxis(t, a, ax, 0, whole), x.dt)
}

func lowerAllToAll(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	g, err := distCheck(t, n)
	if err != nil {
		return nil, err
	}
	x := in[0]
	sa, err := distAxis(n, "split_axis", x.rank())
	if err != nil {
		return nil, err
	}
	ca, err := distAxis(n, "concat_axis", x.rank())
	if err != nil {
		return nil, err
	}
	whole, err := wholeSize(n, in, x.shape[ca], g.Size)
	if err != nil {
		return nil, err
	}
	if int(x.shape[sa]) != whole {
		return nil, fmt.Errorf("all_to_all: split axis %d has %d rows, the sharded axis %d rows whole", sa, x.shape[sa], whole)
	}
	lo, hi, c := chunkRange(whole, g.Size, g.Rank)
	a := padAxis(t, padAxis(t, t.arr(x), ca, c), sa, c*g.Size)
	a = t.s.AllToAll(a, sa, ca)
	a = sliceAxis(t, sliceAxis(t, a, ca, 0, whole), sa, 0, hi-lo)
	return t.one(a, x.dt)
}

func lowerAllSum(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	if _, err := distCheck(t, n); err != nil {
		return nil, err
	}
	return t.one(t.s.AllSum(t.arr(in[0])), in[0].dt)
}
