package ref

import (
	"fmt"
	"math"
	"sort"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/shapes"
)

func init() {
	register(reduce(reduceSum), "ReduceSum")
	register(reduce(reduceMean), "ReduceMean")
	register(reduce(reduceMax), "ReduceMax")
	register(reduce(reduceMin), "ReduceMin")
	register(reduce(reduceProd), "ReduceProd")
	register(reduce(reduceL1), "ReduceL1")
	register(reduce(reduceL2), "ReduceL2")
	register(reduce(reduceLogSum), "ReduceLogSum")
	register(reduce(reduceLogSumExp), "ReduceLogSumExp")
	register(reduce(reduceSumSquare), "ReduceSumSquare")
	register(argReduce(true), "ArgMax")
	register(argReduce(false), "ArgMin")
	register(kernelCumSum, "CumSum")
	register(kernelTopK, "TopK")
}

type reduceKind int

const (
	reduceSum reduceKind = iota
	reduceMean
	reduceMax
	reduceMin
	reduceProd
	reduceL1
	reduceL2
	reduceLogSum
	reduceLogSumExp
	reduceSumSquare
)

// reduceAxes resolves the axes of a reduction: axes come from input 1 or
// the "axes" attribute; none (or an empty list) means all axes unless
// noop_with_empty_axes is set, which makes the op the identity.
func reduceAxes(n *graph.Node, in []*array, rank int) (axes []bool, noop bool, err error) {
	list, _, err := axesOf(n, in, 1)
	if err != nil {
		return nil, false, err
	}
	axes = make([]bool, rank)
	if len(list) == 0 {
		if n.AttrInt("noop_with_empty_axes", 0) != 0 {
			return nil, true, nil
		}
		for k := range axes {
			axes[k] = true
		}
		return axes, false, nil
	}
	ax, err := shapes.NormAxes(list, rank)
	if err != nil {
		return nil, false, err
	}
	for _, a := range ax {
		axes[a] = true
	}
	return axes, false, nil
}

// reduceIndex maps every input element to its output slot and returns the
// output shape (keepdims applied). Every slot receives shapes.Prod(in)/shapes.Prod(out)
// elements.
func reduceIndex(shape []int64, axes []bool, keep bool) (outShape []int64, slot []int) {
	kept := make([]int64, len(shape))
	for k, d := range shape {
		kept[k] = d
		if axes[k] {
			kept[k] = 1
		}
		if !axes[k] || keep {
			outShape = append(outShape, kept[k])
		}
	}
	if outShape == nil {
		outShape = []int64{}
	}
	// Each input element's slot: its index with reduced dims zeroed, in the
	// kept shape's row-major order.
	total := int(shapes.Prod(shape))
	slot = make([]int, total)
	broadcastIndex(shape, [][]int64{kept}, func(o int, idx []int) { slot[o] = idx[0] })
	return outShape, slot
}

func reduce(kind reduceKind) kernel {
	return func(n *graph.Node, in []*array) ([]*array, error) {
		x, err := need(n, in, 0)
		if err != nil {
			return nil, err
		}
		if x.dt == graph.Bool && kind != reduceMax && kind != reduceMin {
			return nil, fmt.Errorf("%s does not take bool", n.Op)
		}
		axes, noop, err := reduceAxes(n, in, x.rank())
		if err != nil {
			return nil, err
		}
		if noop {
			return []*array{x}, nil
		}
		outShape, slot := reduceIndex(x.shape, axes, n.AttrInt("keepdims", 1) != 0)
		r := newArray(x.dt, outShape)
		cnt := 0
		if r.size() > 0 {
			cnt = x.size() / r.size()
		}
		if !isFloat(x.dt) && (kind == reduceSum || kind == reduceProd || kind == reduceMax ||
			kind == reduceMin || kind == reduceSumSquare || kind == reduceL1) {
			reduceInts(kind, x, r, slot)
			return []*array{r}, nil
		}
		acc := make([]float64, r.size())
		init := 0.0
		switch kind {
		case reduceProd:
			init = 1
		case reduceMax, reduceLogSumExp:
			init = math.Inf(-1)
		case reduceMin:
			init = math.Inf(1)
		}
		for k := range acc {
			acc[k] = init
		}
		// LogSumExp subtracts each slot's max first to stay finite.
		if kind == reduceLogSumExp {
			for k := 0; k < x.size(); k++ {
				if v := x.float(k); v > acc[slot[k]] || math.IsNaN(v) {
					acc[slot[k]] = v
				}
			}
		}
		mx := append([]float64{}, acc...)
		if kind == reduceLogSumExp {
			for k := range acc {
				acc[k] = 0
			}
		}
		for k := 0; k < x.size(); k++ {
			v, s := x.float(k), slot[k]
			switch kind {
			case reduceSum, reduceMean, reduceLogSum:
				acc[s] += v
			case reduceProd:
				acc[s] *= v
			case reduceMax:
				if v > acc[s] || math.IsNaN(v) {
					acc[s] = v
				}
			case reduceMin:
				if v < acc[s] || math.IsNaN(v) {
					acc[s] = v
				}
			case reduceL1:
				acc[s] += math.Abs(v)
			case reduceL2, reduceSumSquare:
				acc[s] += v * v
			case reduceLogSumExp:
				if !math.IsInf(mx[s], 0) {
					acc[s] += math.Exp(v - mx[s])
				}
			}
		}
		for k, v := range acc {
			switch kind {
			case reduceMean:
				v /= float64(cnt)
			case reduceL2:
				v = math.Sqrt(v)
			case reduceLogSum:
				v = math.Log(v)
			case reduceLogSumExp:
				if math.IsInf(mx[k], 0) || math.IsNaN(mx[k]) {
					v = mx[k]
				} else {
					v = mx[k] + math.Log(v)
				}
			}
			r.set(k, v)
		}
		return []*array{r}, nil
	}
}

// reduceInts keeps integer sums and products exact (float64 would lose bits
// beyond 2^53).
func reduceInts(kind reduceKind, x, r *array, slot []int) {
	seen := make([]bool, r.size())
	for k, v := range x.i {
		s := slot[k]
		switch kind {
		case reduceSum:
			r.i[s] += v
		case reduceSumSquare:
			r.i[s] += v * v
		case reduceL1:
			if v < 0 && !isUnsigned(x.dt) {
				v = -v
			}
			r.i[s] += v
		case reduceProd:
			if !seen[s] {
				r.i[s] = 1
			}
			r.i[s] *= v
		case reduceMax:
			if !seen[s] || lessInt(x.dt, r.i[s], v) {
				r.i[s] = v
			}
		case reduceMin:
			if !seen[s] || lessInt(x.dt, v, r.i[s]) {
				r.i[s] = v
			}
		}
		seen[s] = true
	}
	// Empty reductions: product 1, max/min the dtype's extreme values.
	for s, ok := range seen {
		if ok {
			continue
		}
		switch kind {
		case reduceProd:
			r.i[s] = 1
		case reduceMax:
			r.i[s] = intExtreme(x.dt, false)
		case reduceMin:
			r.i[s] = intExtreme(x.dt, true)
		}
	}
}

// intExtreme is the largest (or smallest) value of an integer dtype (for
// bool: true or false, so an empty max is false and an empty min true).
func intExtreme(dt graph.DType, largest bool) int64 {
	if dt == graph.Bool {
		return b2i(largest)
	}
	bits := uint(8 * dt.Size())
	if isUnsigned(dt) {
		if !largest {
			return 0
		}
		if bits == 64 {
			return -1 // all ones
		}
		return int64(1)<<bits - 1
	}
	if largest {
		return int64(uint64(1)<<(bits-1) - 1)
	}
	return -int64(uint64(1) << (bits - 1))
}

func argReduce(isMax bool) kernel {
	return func(n *graph.Node, in []*array) ([]*array, error) {
		x, err := need(n, in, 0)
		if err != nil {
			return nil, err
		}
		axis, err := shapes.NormAxis(n.AttrInt("axis", 0), max(x.rank(), 1))
		if err != nil {
			return nil, err
		}
		if x.rank() == 0 {
			return nil, fmt.Errorf("%s of a scalar", n.Op)
		}
		last := n.AttrInt("select_last_index", 0) != 0
		outer, mid, inner := splitAt(x.shape, axis)
		if mid == 0 {
			return nil, fmt.Errorf("%s over an empty axis", n.Op)
		}
		shape := append([]int64{}, x.shape...)
		shape[axis] = 1
		if n.AttrInt("keepdims", 1) == 0 {
			shape = append(shape[:axis], shape[axis+1:]...)
		}
		r := newArray(graph.Int64, shape)
		vals := x.floats()
		for o := 0; o < outer; o++ {
			for i := 0; i < inner; i++ {
				best := 0
				bv := vals[o*mid*inner+i]
				for m := 1; m < mid; m++ {
					v := vals[(o*mid+m)*inner+i]
					better := v > bv
					if !isMax {
						better = v < bv
					}
					if better || (last && v == bv) {
						best, bv = m, v
					}
				}
				r.i[o*inner+i] = int64(best)
			}
		}
		return []*array{r}, nil
	}
}

func kernelCumSum(n *graph.Node, in []*array) ([]*array, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	a, err := scalarInt(opt(in, 1), "CumSum axis")
	if err != nil {
		return nil, err
	}
	axis, err := shapes.NormAxis(a, x.rank())
	if err != nil {
		return nil, err
	}
	if x.dt == graph.Bool {
		return nil, fmt.Errorf("CumSum does not take bool")
	}
	excl, rev := n.AttrInt("exclusive", 0) != 0, n.AttrInt("reverse", 0) != 0
	outer, mid, inner := splitAt(x.shape, axis)
	r := newArray(x.dt, x.shape)
	for o := 0; o < outer; o++ {
		for i := 0; i < inner; i++ {
			var fs float64
			var is int64
			for step := 0; step < mid; step++ {
				m := step
				if rev {
					m = mid - 1 - step
				}
				k := (o*mid+m)*inner + i
				if isFloat(x.dt) {
					if excl {
						r.f[k] = fs
						fs += x.f[k]
					} else {
						fs += x.f[k]
						r.f[k] = fs
					}
				} else {
					if excl {
						r.i[k] = is
						is += x.i[k]
					} else {
						is += x.i[k]
						r.i[k] = is
					}
				}
			}
		}
	}
	return []*array{r}, nil
}

// kernelTopK returns the k largest (or smallest) along axis, sorted, ties
// broken by the lower index.
func kernelTopK(n *graph.Node, in []*array) ([]*array, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	var k int64
	if kk := opt(in, 1); kk != nil {
		if k, err = scalarInt(kk, "TopK k"); err != nil {
			return nil, err
		}
	} else {
		k = n.AttrInt("k", -1) // opset 1
	}
	axis, err := shapes.NormAxis(n.AttrInt("axis", -1), x.rank())
	if err != nil {
		return nil, err
	}
	if x.dt == graph.Bool {
		return nil, fmt.Errorf("TopK does not take bool")
	}
	largest := n.AttrInt("largest", 1) != 0
	outer, mid, inner := splitAt(x.shape, axis)
	if k < 0 || k > int64(mid) {
		return nil, fmt.Errorf("TopK k=%d for axis of size %d", k, mid)
	}
	shape := append([]int64{}, x.shape...)
	shape[axis] = k
	vals := newArray(x.dt, shape)
	idxs := newArray(graph.Int64, shape)
	order := make([]int, mid)
	fv := x.floats()
	for o := 0; o < outer; o++ {
		for i := 0; i < inner; i++ {
			at := func(m int) int { return (o*mid+m)*inner + i }
			for m := range order {
				order[m] = m
			}
			less := func(p, q int) bool {
				a, b := fv[at(order[p])], fv[at(order[q])]
				if a != b {
					if largest {
						return a > b
					}
					return a < b
				}
				return order[p] < order[q]
			}
			sort.SliceStable(order, less)
			for j := 0; j < int(k); j++ {
				dst := (o*int(k)+j)*inner + i
				copyElem(vals, dst, x, at(order[j]))
				idxs.i[dst] = int64(order[j])
			}
		}
	}
	return []*array{vals, idxs}, nil
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
