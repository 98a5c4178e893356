package codegen

import (
	"fmt"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/mlx"
	"github.com/of3c/of3c/internal/shapes"
)

func init() {
	register(lowerGather, "Gather")
	register(lowerGatherElements, "GatherElements")
	register(lowerGatherND, "GatherND")
	register(lowerScatterElements, "ScatterElements")
	register(lowerScatterND, "ScatterND")
	register(lowerOneHot, "OneHot")
	register(lowerTopK, "TopK")
	register(lowerNonZero, "NonZero")
}

// wrapIndex maps negative indices into [0, dim): MLX's take accepts them,
// but its scatter and take_along_axis do not.
func (t *tracer) wrapIndex(idx *mlx.Array, dim int64) *mlx.Array {
	s := t.s
	dt := idx.Dtype()
	zero := s.Scalar(0, dt)
	return s.Where(s.Less(idx, zero), s.Add(idx, s.Scalar(float64(dim), dt)), idx)
}

func lowerGather(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	x, idx := in[0], in[1]
	axis, err := shapes.NormAxis(n.AttrInt("axis", 0), x.rank())
	if err != nil {
		return nil, err
	}
	if idx.host != nil {
		// Known indices: check the range here for a clear error.
		ids, err := idx.host.Int64s()
		if err != nil {
			return nil, err
		}
		d := x.shape[axis]
		for _, i := range ids {
			if i < -d || i >= d {
				return nil, fmt.Errorf("index %d out of range for axis %d of size %d", i, axis, d)
			}
		}
		// A scalar index of a single element is a slice: cheaper than take.
		if len(idx.shape) == 0 {
			i := ids[0]
			if i < 0 {
				i += d
			}
			a := t.sliceAxis(t.arr(x), x.shape, axis, i, i+1)
			return t.one(t.s.Squeeze(a, axis), x.dt)
		}
	}
	return t.one(t.s.Take(t.arr(x), t.wrapIndex(t.arr(idx), x.shape[axis]), axis), x.dt)
}

func lowerGatherElements(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	x, idx := in[0], in[1]
	axis, err := shapes.NormAxis(n.AttrInt("axis", 0), x.rank())
	if err != nil {
		return nil, err
	}
	return t.one(t.s.TakeAlongAxis(t.arr(x), t.wrapIndex(t.arr(idx), x.shape[axis]), axis), x.dt)
}

// flatIndex turns the last-axis coordinates of ind ([..., k]) into offsets
// into the first k axes of a tensor of shape dims, flattened, with batch
// offsets for the first b axes added. Negative coordinates wrap.
func (t *tracer) ndIndices(ind *val, dims []int64) ([]*mlx.Array, error) {
	s := t.s
	k := int(ind.shape[len(ind.shape)-1])
	if k > len(dims) {
		return nil, fmt.Errorf("index depth %d exceeds data rank %d", k, len(dims))
	}
	a := t.arr(ind)
	parts := make([]*mlx.Array, k)
	lead := intsOf(ind.shape[:len(ind.shape)-1])
	for j := 0; j < k; j++ {
		p := t.sliceAxis(a, ind.shape, len(ind.shape)-1, int64(j), int64(j+1))
		p = s.Reshape(p, lead...)
		parts[j] = t.wrapIndex(p, dims[j])
	}
	return parts, s.Err()
}

func lowerGatherND(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	s := t.s
	x, ind := in[0], in[1]
	b := int(n.AttrInt("batch_dims", 0))
	if ind.rank() < 1 || b >= ind.rank() || b > x.rank() {
		return nil, fmt.Errorf("bad ranks for batch_dims %d", b)
	}
	k := int(ind.shape[ind.rank()-1])
	if b+k > x.rank() {
		return nil, fmt.Errorf("index depth %d + batch_dims %d exceeds data rank %d", k, b, x.rank())
	}
	// Flatten the batch dims of data and indices to one, then address data
	// as [B·prod(data[b:b+k]), rest...] with a single flat index.
	bsz := int64(1)
	for _, d := range x.shape[:b] {
		bsz *= d
	}
	inner := x.shape[b : b+k]
	rest := x.shape[b+k:]
	parts, err := t.ndIndices(ind, x.shape[b:])
	if err != nil {
		return nil, err
	}
	idt := mlx.Int64
	var flat *mlx.Array
	stride := int64(1)
	for j := k - 1; j >= 0; j-- {
		term := s.Mul(s.AsType(parts[j], idt), s.Scalar(float64(stride), idt))
		if flat == nil {
			flat = term
		} else {
			flat = s.Add(flat, term)
		}
		stride *= inner[j]
	}
	if flat == nil { // k == 0: every index selects the whole slice
		flat = s.Zeros(idt, intsOf(ind.shape[:ind.rank()-1])...)
	}
	// Batch offset: index shape is [batch..., m...]; add b_i·stride.
	if b > 0 {
		bidx := s.Arange(0, float64(bsz), 1, idt)
		bshape := append(intsOf(ind.shape[:b]), ones(ind.rank()-1-b)...)
		bidx = s.Reshape(bidx, bshape...)
		flat = s.Add(flat, s.Mul(bidx, s.Scalar(float64(stride), idt)))
	}
	dataShape := append([]int{int(bsz * stride)}, intsOf(rest)...)
	data := s.Reshape(t.arr(x), dataShape...)
	return t.one(s.Take(data, flat, 0), x.dt)
}

// coordinates returns, for a tensor of shape dims, one index array per axis
// (each broadcast to dims) giving that axis's coordinate.
func (t *tracer) coordinates(dims []int64) []*mlx.Array {
	s := t.s
	out := make([]*mlx.Array, len(dims))
	for ax, d := range dims {
		shape := ones(len(dims))
		shape[ax] = int(d)
		out[ax] = s.BroadcastTo(s.Reshape(s.Arange(0, float64(d), 1, mlx.Int64), shape...), intsOf(dims)...)
	}
	return out
}

func lowerScatterElements(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	s := t.s
	x, idx, upd := in[0], in[1], in[2]
	axis, err := shapes.NormAxis(n.AttrInt("axis", 0), x.rank())
	if err != nil {
		return nil, err
	}
	red := n.AttrString("reduction", "none")
	ia := s.AsType(t.wrapIndex(t.arr(idx), x.shape[axis]), mlx.Int64)
	if red == "none" {
		return t.one(s.PutAlongAxis(t.arr(x), ia, t.arr(upd), axis), x.dt)
	}
	if red != "add" {
		return nil, fmt.Errorf("ScatterElements reduction %q is not supported by the MLX lowering", red)
	}
	coords := t.coordinates(idx.shape)
	coords[axis] = ia
	axes := make([]int, x.rank())
	for i := range axes {
		axes[i] = i
	}
	u := s.Reshape(t.arr(upd), append(intsOf(upd.shape), ones(x.rank())...)...)
	return t.one(s.ScatterAdd(t.arr(x), coords, u, axes), x.dt)
}

func lowerScatterND(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	s := t.s
	x, ind, upd := in[0], in[1], in[2]
	parts, err := t.ndIndices(ind, x.shape)
	if err != nil {
		return nil, err
	}
	k := len(parts)
	if k == 0 {
		return nil, fmt.Errorf("ScatterND with empty index depth")
	}
	axes := make([]int, k)
	for i := range axes {
		axes[i] = i
	}
	// MLX wants updates shaped indices-shape + slice shape (1 on the
	// indexed axes, full on the rest).
	ush := append(intsOf(ind.shape[:ind.rank()-1]), ones(k)...)
	ush = append(ush, intsOf(x.shape[k:])...)
	u := s.Reshape(t.arr(upd), ush...)
	switch n.AttrString("reduction", "none") {
	case "none":
		return t.one(s.Scatter(t.arr(x), parts, u, axes), x.dt)
	case "add":
		return t.one(s.ScatterAdd(t.arr(x), parts, u, axes), x.dt)
	}
	return nil, fmt.Errorf("ScatterND reduction %q is not supported by the MLX lowering", n.AttrString("reduction", ""))
}

func lowerOneHot(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	s := t.s
	idx, depthV, values := in[0], in[1], in[2]
	dv, err := t.hostFloats(depthV, "depth")
	if err != nil {
		return nil, err
	}
	if len(dv) != 1 || dv[0] < 1 {
		return nil, fmt.Errorf("depth must be a positive scalar")
	}
	depth := int64(dv[0])
	r := idx.rank() + 1
	axis, err := shapes.NormAxis(n.AttrInt("axis", -1), r)
	if err != nil {
		return nil, err
	}
	ia := s.AsType(t.arr(idx), mlx.Int64)
	// Negative indices count from the end of depth.
	ia = t.wrapIndex(ia, depth)
	ia = s.ExpandDims(ia, axis)
	shape := ones(r)
	shape[axis] = int(depth)
	rng := s.Reshape(s.Arange(0, float64(depth), 1, mlx.Int64), shape...)
	hit := s.Equal(ia, rng)
	va := t.arr(values)
	off := s.Reshape(t.sliceAxis(va, values.shape, 0, 0, 1), []int{}...)
	on := s.Reshape(t.sliceAxis(va, values.shape, 0, 1, 2), []int{}...)
	return t.one(s.Where(hit, on, off), values.dt)
}

// lowerTopK has no sort primitive in the binding to build on, so it ranks
// by comparison: rank_i = #{j: x_j beats x_i} + #{j < i: x_j ties x_i}
// (ties keep the lower index first, as ONNX requires), then selects the
// element of rank r for r < k. It costs O(L²) memory along the axis; fine
// for the small top-k of classification heads, not for sorting long axes.
func lowerTopK(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	s := t.s
	x := in[0]
	kv, err := t.hostInts(in[1], "k")
	if err != nil {
		return nil, err
	}
	if len(kv) != 1 {
		return nil, fmt.Errorf("k must have one element")
	}
	axis, err := shapes.NormAxis(n.AttrInt("axis", -1), x.rank())
	if err != nil {
		return nil, err
	}
	L := x.shape[axis]
	k := kv[0]
	if k < 0 || k > L {
		return nil, fmt.Errorf("k = %d for an axis of size %d", k, L)
	}
	largest := n.AttrInt("largest", 1) != 0
	a := t.arr(x)
	// Move the axis last: xa [..., L].
	r := x.rank()
	perm := make([]int, 0, r)
	for i := 0; i < r; i++ {
		if i != axis {
			perm = append(perm, i)
		}
	}
	perm = append(perm, axis)
	xa := s.Transpose(a, perm...)
	xi := s.ExpandDims(xa, -1) // [..., L(i), 1]
	xj := s.ExpandDims(xa, -2) // [..., 1, L(j)]
	var beats *mlx.Array
	if largest {
		beats = s.Greater(xj, xi)
	} else {
		beats = s.Less(xj, xi)
	}
	ii := s.Reshape(s.Arange(0, float64(L), 1, mlx.Int64), int(L), 1)
	jj := s.Reshape(s.Arange(0, float64(L), 1, mlx.Int64), 1, int(L))
	ties := s.LogicalAnd(s.Equal(xj, xi), s.Less(jj, ii))
	rank := s.Sum(s.AsType(s.LogicalOr(beats, ties), mlx.Int64), false, -1) // [..., L(i)]
	// sel[..., r, i] = rank_i == r for r < k.
	rr := s.Reshape(s.Arange(0, float64(k), 1, mlx.Int64), int(k), 1)
	sel := s.Equal(s.ExpandDims(rank, -2), rr) // [..., k, L]
	pos := s.ArgMax(s.AsType(sel, mlx.Int32), -1, false)
	pos = s.AsType(pos, mlx.Int64) // [..., k]
	vals := s.TakeAlongAxis(xa, pos, -1)
	inv := make([]int, r)
	for i, p := range perm {
		inv[p] = i
	}
	vals = s.Transpose(vals, inv...)
	pos = s.Transpose(pos, inv...)
	outs := []*val{t.dev(vals, x.dt), t.dev(pos, graph.Int64)}
	return outs, s.Err()
}

// lowerNonZero needs its input's contents to know its output shape, so it
// only lowers when the input is known at trace time.
func lowerNonZero(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	x := in[0]
	if x.host == nil {
		return nil, fmt.Errorf("NonZero's output shape depends on tensor data; MLX graphs have static shapes (only constant inputs are supported)")
	}
	vals, err := x.host.Float64s()
	if err != nil {
		return nil, err
	}
	r := x.rank()
	var coords [][]int64
	for i, v := range vals {
		if v == 0 {
			continue
		}
		c := make([]int64, r)
		rem := int64(i)
		for d := r - 1; d >= 0; d-- {
			c[d] = rem % x.shape[d]
			rem /= x.shape[d]
		}
		coords = append(coords, c)
	}
	out := make([]int64, r*len(coords))
	for j, c := range coords {
		for d := 0; d < r; d++ {
			out[d*len(coords)+j] = c[d]
		}
	}
	return []*val{hostVal(graph.NewTensorI64([]int64{int64(r), int64(len(coords))}, out))}, nil
}
