package ref

import (
	"fmt"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/shapes"
)

func init() {
	register(kernelGather, "Gather")
	register(kernelGatherElements, "GatherElements")
	register(kernelGatherND, "GatherND")
	register(kernelScatterND, "ScatterND")
	register(kernelScatterElements, "ScatterElements")
	register(kernelOneHot, "OneHot")
	register(kernelNonZero, "NonZero")
}

// fixIndex maps a possibly negative index into [0, dim) or fails.
func fixIndex(i, dim int64) (int64, error) {
	if i < -dim || i >= dim {
		return 0, fmt.Errorf("index %d out of range for dim %d", i, dim)
	}
	if i < 0 {
		i += dim
	}
	return i, nil
}

func indexInput(n *graph.Node, in []*array, k int) (*array, error) {
	idx, err := need(n, in, k)
	if err != nil {
		return nil, err
	}
	if idx.dt != graph.Int64 && idx.dt != graph.Int32 {
		return nil, fmt.Errorf("%s indices must be int32 or int64, got %s", n.Op, idx.dt)
	}
	return idx, nil
}

func kernelGather(n *graph.Node, in []*array) ([]*array, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	idx, err := indexInput(n, in, 1)
	if err != nil {
		return nil, err
	}
	if x.rank() == 0 {
		return nil, fmt.Errorf("Gather from a scalar")
	}
	axis, err := shapes.NormAxis(n.AttrInt("axis", 0), x.rank())
	if err != nil {
		return nil, err
	}
	outer, mid, inner := splitAt(x.shape, axis)
	shape := append(append(append([]int64{}, x.shape[:axis]...), idx.shape...), x.shape[axis+1:]...)
	r, err := allocArray(x.dt, shape)
	if err != nil {
		return nil, err
	}
	ni := idx.size()
	for j, raw := range idx.i {
		p, err := fixIndex(raw, int64(mid))
		if err != nil {
			return nil, err
		}
		for o := 0; o < outer; o++ {
			src := (o*mid + int(p)) * inner
			dst := (o*ni + j) * inner
			if isFloat(x.dt) {
				copy(r.f[dst:dst+inner], x.f[src:src+inner])
			} else {
				copy(r.i[dst:dst+inner], x.i[src:src+inner])
			}
		}
	}
	return []*array{r}, nil
}

// elementOffsets yields, for every element of idx (same rank as data), the
// flat offset in data of the addressed element: its own position with the
// axis coordinate replaced by the index value.
func elementOffsets(data, idx *array, axis int, fn func(k int, off int) error) error {
	if idx.rank() != data.rank() {
		return fmt.Errorf("indices rank %d differs from data rank %d", idx.rank(), data.rank())
	}
	for d := range idx.shape {
		if d != axis && idx.shape[d] > data.shape[d] {
			return fmt.Errorf("indices shape %v exceeds data shape %v", idx.shape, data.shape)
		}
	}
	st := strides(data.shape)
	coord := make([]int64, idx.rank())
	for k, raw := range idx.i {
		p, err := fixIndex(raw, data.shape[axis])
		if err != nil {
			return err
		}
		off := int64(0)
		for d, c := range coord {
			if d == axis {
				c = p
			}
			off += c * st[d]
		}
		if err := fn(k, int(off)); err != nil {
			return err
		}
		for d := len(coord) - 1; d >= 0; d-- {
			coord[d]++
			if coord[d] < idx.shape[d] {
				break
			}
			coord[d] = 0
		}
	}
	return nil
}

func kernelGatherElements(n *graph.Node, in []*array) ([]*array, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	idx, err := indexInput(n, in, 1)
	if err != nil {
		return nil, err
	}
	axis, err := shapes.NormAxis(n.AttrInt("axis", 0), x.rank())
	if err != nil {
		return nil, err
	}
	r := newArray(x.dt, idx.shape)
	err = elementOffsets(x, idx, axis, func(k, off int) error {
		copyElem(r, k, x, off)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return []*array{r}, nil
}

// reducer combines an existing element with an update (ScatterND and
// ScatterElements' reduction attribute).
func reducer(n *graph.Node) (func(dst *array, k int, src *array, j int), error) {
	mode := n.AttrString("reduction", "none")
	var f func(a, b float64) float64
	switch mode {
	case "none":
		return copyElem, nil
	case "add":
		f = func(a, b float64) float64 { return a + b }
	case "mul":
		f = func(a, b float64) float64 { return a * b }
	case "max":
		f = func(a, b float64) float64 { return max(a, b) }
	case "min":
		f = func(a, b float64) float64 { return min(a, b) }
	default:
		return nil, fmt.Errorf("reduction %q unknown", mode)
	}
	return func(dst *array, k int, src *array, j int) {
		if !isFloat(dst.dt) {
			// Integer updates stay exact.
			a, b := dst.i[k], src.i[j]
			switch mode {
			case "add":
				dst.i[k] = a + b
			case "mul":
				dst.i[k] = a * b
			case "max":
				if lessInt(dst.dt, a, b) {
					dst.i[k] = b
				}
			case "min":
				if lessInt(dst.dt, b, a) {
					dst.i[k] = b
				}
			}
			return
		}
		dst.f[k] = f(dst.f[k], src.f[j])
	}, nil
}

func kernelScatterElements(n *graph.Node, in []*array) ([]*array, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	idx, err := indexInput(n, in, 1)
	if err != nil {
		return nil, err
	}
	upd, err := need(n, in, 2)
	if err != nil {
		return nil, err
	}
	if upd.dt != x.dt || !equalShape(upd.shape, idx.shape) {
		return nil, fmt.Errorf("ScatterElements updates %s%v must match data dtype %s and indices shape %v", upd.dt, upd.shape, x.dt, idx.shape)
	}
	axis, err := shapes.NormAxis(n.AttrInt("axis", 0), x.rank())
	if err != nil {
		return nil, err
	}
	red, err := reducer(n)
	if err != nil {
		return nil, err
	}
	r := x.clone()
	err = elementOffsets(x, idx, axis, func(k, off int) error {
		red(r, off, upd, k)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return []*array{r}, nil
}

// ndTargets resolves GatherND/ScatterND index tuples: idx's last dim holds
// tuples addressing the leading dims of data (after batch dims); fn gets the
// tuple's number and the flat offset of the addressed slice.
func ndTargets(data, idx *array, batch int, fn func(t int, off int) error) (sliceLen int, err error) {
	if idx.rank() < 1 {
		return 0, fmt.Errorf("indices must have rank ≥ 1")
	}
	q := int(idx.shape[idx.rank()-1])
	if batch < 0 || batch+q > data.rank() || batch >= idx.rank() {
		return 0, fmt.Errorf("index tuples of length %d (batch_dims %d) for data rank %d", q, batch, data.rank())
	}
	for d := 0; d < batch; d++ {
		if idx.shape[d] != data.shape[d] {
			return 0, fmt.Errorf("batch dims of indices %v and data %v differ", idx.shape, data.shape)
		}
	}
	sliceLen = int(shapes.Prod(data.shape[batch+q:]))
	batchSize := int(shapes.Prod(data.shape[:batch]))
	perBatchData := int(shapes.Prod(data.shape[batch:]))
	tuples := idx.size() / max(q, 1)
	if q == 0 {
		tuples = int(shapes.Prod(idx.shape[:idx.rank()-1]))
	}
	perBatchTuples := tuples / max(batchSize, 1)
	st := strides(data.shape[batch:])
	for t := 0; t < tuples; t++ {
		b := 0
		if perBatchTuples > 0 {
			b = t / perBatchTuples
		}
		off := b * perBatchData
		for j := 0; j < q; j++ {
			p, err := fixIndex(idx.i[t*q+j], data.shape[batch+j])
			if err != nil {
				return 0, err
			}
			off += int(p * st[j])
		}
		if err := fn(t, off); err != nil {
			return 0, err
		}
	}
	return sliceLen, nil
}

func kernelGatherND(n *graph.Node, in []*array) ([]*array, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	idx, err := indexInput(n, in, 1)
	if err != nil {
		return nil, err
	}
	batch := int(n.AttrInt("batch_dims", 0))
	if idx.rank() < 1 {
		return nil, fmt.Errorf("GatherND indices must have rank ≥ 1")
	}
	q := int(idx.shape[idx.rank()-1])
	if batch+q > x.rank() {
		return nil, fmt.Errorf("GatherND tuples of length %d for data rank %d", q, x.rank())
	}
	shape := append(append([]int64{}, idx.shape[:idx.rank()-1]...), x.shape[batch+q:]...)
	r, err := allocArray(x.dt, shape)
	if err != nil {
		return nil, err
	}
	_, err = ndTargets(x, idx, batch, func(t, off int) error {
		l := int(shapes.Prod(x.shape[batch+q:]))
		for j := 0; j < l; j++ {
			copyElem(r, t*l+j, x, off+j)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return []*array{r}, nil
}

func kernelScatterND(n *graph.Node, in []*array) ([]*array, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	idx, err := indexInput(n, in, 1)
	if err != nil {
		return nil, err
	}
	upd, err := need(n, in, 2)
	if err != nil {
		return nil, err
	}
	if upd.dt != x.dt {
		return nil, fmt.Errorf("ScatterND updates are %s, data is %s", upd.dt, x.dt)
	}
	if idx.rank() < 1 {
		return nil, fmt.Errorf("ScatterND indices must have rank ≥ 1")
	}
	q := int(idx.shape[idx.rank()-1])
	if q > x.rank() {
		return nil, fmt.Errorf("ScatterND tuples of length %d for data rank %d", q, x.rank())
	}
	want := append(append([]int64{}, idx.shape[:idx.rank()-1]...), x.shape[q:]...)
	if !equalShape(upd.shape, want) {
		return nil, fmt.Errorf("ScatterND updates shape %v, want %v", upd.shape, want)
	}
	red, err := reducer(n)
	if err != nil {
		return nil, err
	}
	r := x.clone()
	_, err = ndTargets(x, idx, 0, func(t, off int) error {
		l := int(shapes.Prod(x.shape[q:]))
		for j := 0; j < l; j++ {
			red(r, off+j, upd, t*l+j)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return []*array{r}, nil
}

// kernelOneHot: indices may be negative (counted from depth); out-of-range
// indices give an all-off row.
func kernelOneHot(n *graph.Node, in []*array) ([]*array, error) {
	idx, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	d, err := need(n, in, 1)
	if err != nil {
		return nil, err
	}
	vals, err := need(n, in, 2)
	if err != nil {
		return nil, err
	}
	if d.size() != 1 {
		return nil, fmt.Errorf("OneHot depth must have one element")
	}
	if vals.size() != 2 {
		return nil, fmt.Errorf("OneHot values must have two elements")
	}
	depth := floatToInt(d.float(0))
	if depth <= 0 {
		return nil, fmt.Errorf("OneHot depth %d", depth)
	}
	axis, err := shapes.NormAxis(n.AttrInt("axis", -1), idx.rank()+1)
	if err != nil {
		return nil, err
	}
	shape := append(append(append([]int64{}, idx.shape[:axis]...), depth), idx.shape[axis:]...)
	r, err := allocArray(vals.dt, shape)
	if err != nil {
		return nil, err
	}
	outer, inner := int(shapes.Prod(idx.shape[:axis])), int(shapes.Prod(idx.shape[axis:]))
	iv := idx.floats()
	for o := 0; o < outer; o++ {
		for i := 0; i < inner; i++ {
			hot := floatToInt(iv[o*inner+i])
			if hot < 0 {
				hot += depth
			}
			for c := 0; c < int(depth); c++ {
				dst := (o*int(depth)+c)*inner + i
				if int64(c) == hot {
					copyElem(r, dst, vals, 1)
				} else {
					copyElem(r, dst, vals, 0)
				}
			}
		}
	}
	return []*array{r}, nil
}

func kernelNonZero(n *graph.Node, in []*array) ([]*array, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	var hits []int
	for k := 0; k < x.size(); k++ {
		if x.float(k) != 0 {
			hits = append(hits, k)
		}
	}
	rank := x.rank()
	r := newArray(graph.Int64, []int64{int64(rank), int64(len(hits))})
	st := strides(x.shape)
	for j, h := range hits {
		rest := int64(h)
		for d := 0; d < rank; d++ {
			r.i[d*len(hits)+j] = rest / st[d]
			rest %= st[d]
		}
	}
	return []*array{r}, nil
}
