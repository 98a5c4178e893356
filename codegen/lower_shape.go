package codegen

import (
	"fmt"
	"math"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/mlx"
	"github.com/of3c/of3c/internal/shapes"
)

func init() {
	register(lowerShape, "Shape")
	register(func(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
		return []*val{hostVal(graph.NewTensorI64(nil, []int64{in[0].numel()}))}, nil
	}, "Size")
	register(func(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
		if n.Op == "Dropout" && dropoutTraining(n, in) {
			return nil, unsupported(n, "training-mode dropout is random")
		}
		outs := make([]*val, len(n.Outputs))
		outs[0] = in[0]
		if len(outs) > 1 { // Dropout's mask: all kept at inference
			outs[1] = t.dev(t.s.Full(1, mlx.Bool, intsOf(in[0].shape)...), graph.Bool)
		}
		return outs, t.s.Err()
	}, "Identity", "Dropout")
	register(lowerConstant, "Constant")
	register(lowerReshape, "Reshape")
	register(lowerFlatten, "Flatten")
	register(lowerTranspose, "Transpose")
	register(lowerSqueeze, "Squeeze")
	register(lowerUnsqueeze, "Unsqueeze")
	register(lowerConcat, "Concat")
	register(lowerSplit, "Split")
	register(lowerSlice, "Slice")
	register(lowerExpand, "Expand")
	register(lowerTile, "Tile")
	register(lowerConstantOfShape, "ConstantOfShape")
	register(lowerRange, "Range")
	register(lowerPad, "Pad")
}

func lowerShape(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	r := int64(in[0].rank())
	start, end := n.AttrInt("start", 0), n.AttrInt("end", r)
	clamp := func(v int64) int64 {
		if v < 0 {
			v += r
		}
		return max(0, min(r, v))
	}
	start, end = clamp(start), clamp(end)
	dims := []int64{}
	if end > start {
		dims = append(dims, in[0].shape[start:end]...)
	}
	return []*val{hostVal(graph.NewTensorI64([]int64{int64(len(dims))}, dims))}, nil
}

func lowerConstant(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	if c := n.AttrTensor("value"); c != nil {
		return []*val{hostVal(c)}, nil
	}
	if a, ok := n.Attrs["value_float"]; ok {
		return []*val{hostVal(graph.NewTensorF32(nil, []float32{a.Float}))}, nil
	}
	if a, ok := n.Attrs["value_floats"]; ok {
		return []*val{hostVal(graph.NewTensorF32([]int64{int64(len(a.Floats))}, a.Floats))}, nil
	}
	if a, ok := n.Attrs["value_int"]; ok {
		return []*val{hostVal(graph.NewTensorI64(nil, []int64{a.Int}))}, nil
	}
	if a, ok := n.Attrs["value_ints"]; ok {
		return []*val{hostVal(graph.NewTensorI64([]int64{int64(len(a.Ints))}, a.Ints))}, nil
	}
	return nil, fmt.Errorf("constant without a supported value attribute")
}

// reshapeTo applies ONNX Reshape's 0 and -1 rules to a concrete input shape.
func reshapeTo(in []int64, spec []int64, allowZero bool) ([]int64, error) {
	out := make([]int64, len(spec))
	infer := -1
	known := int64(1)
	for i, d := range spec {
		switch {
		case d == 0 && !allowZero:
			if i >= len(in) {
				return nil, fmt.Errorf("shape %v copies dim %d of a rank-%d input", spec, i, len(in))
			}
			out[i] = in[i]
		case d == -1:
			if infer >= 0 {
				return nil, fmt.Errorf("shape %v has two -1 dims", spec)
			}
			infer = i
			continue
		case d < -1:
			return nil, fmt.Errorf("shape %v has a negative dim", spec)
		default:
			out[i] = d
		}
		known *= out[i]
	}
	total := int64(1)
	for _, d := range in {
		total *= d
	}
	if infer >= 0 {
		if known == 0 || total%known != 0 {
			return nil, fmt.Errorf("cannot reshape %v to %v", in, spec)
		}
		out[infer] = total / known
	} else if known != total {
		return nil, fmt.Errorf("cannot reshape %v (%d elements) to %v", in, total, out)
	}
	return out, nil
}

func lowerReshape(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	spec, err := t.hostInts(in[1], "the target shape")
	if err != nil {
		return nil, err
	}
	shape, err := reshapeTo(in[0].shape, spec, n.AttrInt("allowzero", 0) != 0)
	if err != nil {
		return nil, err
	}
	return t.one(t.s.Reshape(t.arr(in[0]), intsOf(shape)...), in[0].dt)
}

func lowerFlatten(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	r := in[0].rank()
	axis := n.AttrInt("axis", 1)
	if axis < 0 {
		axis += int64(r)
	}
	if axis < 0 || axis > int64(r) {
		return nil, fmt.Errorf("axis %d out of range for rank %d", n.AttrInt("axis", 1), r)
	}
	a, b := int64(1), int64(1)
	for i, d := range in[0].shape {
		if int64(i) < axis {
			a *= d
		} else {
			b *= d
		}
	}
	return t.one(t.s.Reshape(t.arr(in[0]), int(a), int(b)), in[0].dt)
}

func lowerTranspose(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	r := in[0].rank()
	perm, ok := n.AttrInts("perm")
	p := make([]int, r)
	if !ok {
		for i := range p {
			p[i] = r - 1 - i
		}
	} else {
		np, err := shapes.NormAxes(perm, r)
		if err != nil || len(np) != r {
			return nil, fmt.Errorf("bad perm %v for rank %d", perm, r)
		}
		p = np
	}
	return t.one(t.s.Transpose(t.arr(in[0]), p...), in[0].dt)
}

func lowerSqueeze(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	axes, given, err := t.axesOf(n, in, 1, "axes")
	if err != nil {
		return nil, err
	}
	x := in[0]
	var shape []int
	if !given || len(axes) == 0 {
		for _, d := range x.shape {
			if d != 1 {
				shape = append(shape, int(d))
			}
		}
	} else {
		ax, err := shapes.NormAxes(axes, x.rank())
		if err != nil {
			return nil, err
		}
		drop := map[int]bool{}
		for _, a := range ax {
			if x.shape[a] != 1 {
				return nil, fmt.Errorf("cannot squeeze axis %d of size %d", a, x.shape[a])
			}
			drop[a] = true
		}
		for i, d := range x.shape {
			if !drop[i] {
				shape = append(shape, int(d))
			}
		}
	}
	return t.one(t.s.Reshape(t.arr(x), shape...), x.dt)
}

func lowerUnsqueeze(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	axes, given, err := t.axesOf(n, in, 1, "axes")
	if err != nil {
		return nil, err
	}
	if !given {
		return nil, fmt.Errorf("axes missing")
	}
	x := in[0]
	r := x.rank() + len(axes)
	ax, err := shapes.NormAxes(axes, r)
	if err != nil {
		return nil, err
	}
	ins := map[int]bool{}
	for _, a := range ax {
		ins[a] = true
	}
	shape := make([]int, 0, r)
	k := 0
	for i := 0; i < r; i++ {
		if ins[i] {
			shape = append(shape, 1)
		} else {
			shape = append(shape, int(x.shape[k]))
			k++
		}
	}
	return t.one(t.s.Reshape(t.arr(x), shape...), x.dt)
}

func lowerConcat(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	var arrs []*mlx.Array
	var first *val
	for _, x := range in {
		if x == nil {
			continue
		}
		if first == nil {
			first = x
		}
		if x.numel() == 0 && x.rank() != first.rank() {
			continue
		}
		arrs = append(arrs, t.arr(x))
	}
	if first == nil {
		return nil, fmt.Errorf("no inputs")
	}
	axis, err := shapes.NormAxis(n.AttrInt("axis", 0), first.rank())
	if err != nil {
		return nil, err
	}
	if len(arrs) == 1 {
		return []*val{t.dev(arrs[0], first.dt)}, t.s.Err()
	}
	return t.one(t.s.Concatenate(axis, arrs...), first.dt)
}

func lowerSplit(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	x := in[0]
	axis, err := shapes.NormAxis(n.AttrInt("axis", 0), x.rank())
	if err != nil {
		return nil, err
	}
	dim := x.shape[axis]
	var sizes []int64
	if len(in) > 1 && in[1] != nil {
		if sizes, err = t.hostInts(in[1], "split"); err != nil {
			return nil, err
		}
	} else if a, ok := n.AttrInts("split"); ok {
		sizes = a
	} else {
		k := int64(len(n.Outputs))
		if no := n.AttrInt("num_outputs", 0); no > 0 {
			k = no
		}
		if k <= 0 {
			return nil, fmt.Errorf("no outputs")
		}
		// ONNX: equal parts of ceil(dim/k), the last one smaller.
		part := (dim + k - 1) / k
		for rem := dim; rem > 0 || int64(len(sizes)) < k; rem -= part {
			if int64(len(sizes)) == k {
				break
			}
			sizes = append(sizes, max(0, min(part, rem)))
		}
	}
	var sum int64
	for _, s := range sizes {
		if s < 0 {
			return nil, fmt.Errorf("negative split size in %v", sizes)
		}
		sum += s
	}
	if sum != dim {
		return nil, fmt.Errorf("split sizes %v do not add up to %d", sizes, dim)
	}
	outs := make([]*val, len(sizes))
	var off int64
	for i, sz := range sizes {
		outs[i] = t.dev(t.sliceAxis(t.arr(x), x.shape, axis, off, off+sz), x.dt)
		off += sz
	}
	return outs, t.s.Err()
}

// sliceAxis takes [lo, hi) of one axis of an array of the given shape.
func (t *tracer) sliceAxis(a *mlx.Array, shape []int64, axis int, lo, hi int64) *mlx.Array {
	start := make([]int, len(shape))
	stop := intsOf(shape)
	start[axis], stop[axis] = int(lo), int(hi)
	return t.s.Slice(a, start, stop, nil)
}

func lowerSlice(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	x := in[0]
	r := x.rank()
	var starts, ends, axes, steps []int64
	var err error
	if n.Opset > 0 && n.Opset < 10 {
		starts, _ = n.AttrInts("starts")
		ends, _ = n.AttrInts("ends")
		axes, _ = n.AttrInts("axes")
	} else {
		if starts, err = t.hostInts(in[1], "starts"); err != nil {
			return nil, err
		}
		if ends, err = t.hostInts(in[2], "ends"); err != nil {
			return nil, err
		}
		if len(in) > 3 && in[3] != nil {
			if axes, err = t.hostInts(in[3], "axes"); err != nil {
				return nil, err
			}
		}
		if len(in) > 4 && in[4] != nil {
			if steps, err = t.hostInts(in[4], "steps"); err != nil {
				return nil, err
			}
		}
	}
	if len(starts) != len(ends) {
		return nil, fmt.Errorf("starts and ends differ in length")
	}
	if axes == nil {
		for i := range starts {
			axes = append(axes, int64(i))
		}
	}
	if steps == nil {
		steps = make([]int64, len(starts))
		for i := range steps {
			steps[i] = 1
		}
	}
	if len(axes) != len(starts) || len(steps) != len(starts) {
		return nil, fmt.Errorf("starts, ends, axes and steps differ in length")
	}
	start := make([]int, r)
	stop := intsOf(x.shape)
	stride := make([]int, r)
	for i := range stride {
		stride[i] = 1
	}
	ax, err := shapes.NormAxes(axes, r)
	if err != nil {
		return nil, err
	}
	for i, a := range ax {
		lo, hi, st, err := onnxSliceBounds(starts[i], ends[i], steps[i], x.shape[a])
		if err != nil {
			return nil, err
		}
		start[a], stop[a], stride[a] = lo, hi, st
	}
	return t.one(t.s.Slice(t.arr(x), start, stop, stride), x.dt)
}

// onnxSliceBounds clamps ONNX slice bounds for a dim and returns them in
// MLX's (numpy) convention. For negative steps MLX's stop is exclusive and
// -dim-1 means "through index 0".
func onnxSliceBounds(start, end, step, dim int64) (int, int, int, error) {
	if step == 0 {
		return 0, 0, 0, fmt.Errorf("slice step 0")
	}
	if start < 0 {
		start += dim
	}
	if end < 0 {
		end += dim
	}
	if step > 0 {
		start = max(0, min(dim, start))
		end = max(0, min(dim, end))
		if end < start {
			end = start
		}
		return int(start), int(end), int(step), nil
	}
	start = max(-1, min(dim-1, start))
	end = max(-1, min(dim-1, end))
	if end > start {
		end = start
	}
	if start < 0 { // empty
		return 0, 0, int(step), nil
	}
	stop := int(end)
	if end < 0 {
		stop = int(-dim - 1)
	}
	return int(start), stop, int(step), nil
}

func lowerExpand(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	spec, err := t.hostInts(in[1], "the target shape")
	if err != nil {
		return nil, err
	}
	shape, err := shapes.Broadcast(in[0].shape, spec)
	if err != nil {
		return nil, err
	}
	return t.one(t.s.BroadcastTo(t.arr(in[0]), intsOf(shape)...), in[0].dt)
}

func lowerTile(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	reps, err := t.hostInts(in[1], "repeats")
	if err != nil {
		return nil, err
	}
	if len(reps) != in[0].rank() {
		return nil, fmt.Errorf("repeats %v for rank %d", reps, in[0].rank())
	}
	return t.one(t.s.Tile(t.arr(in[0]), intsOf(reps)...), in[0].dt)
}

func lowerConstantOfShape(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	shape, err := t.hostInts(in[0], "the shape")
	if err != nil {
		return nil, err
	}
	for _, d := range shape {
		if d < 0 {
			return nil, fmt.Errorf("negative dim in %v", shape)
		}
	}
	dt := graph.Float32
	v := 0.0
	if c := n.AttrTensor("value"); c != nil {
		dt = c.DType
		fs, err := c.Float64s()
		if err != nil || len(fs) != 1 {
			return nil, fmt.Errorf("value must be a one-element tensor")
		}
		v = fs[0]
	}
	return t.one(t.s.Full(v, t.ddt(dt), intsOf(shape)...), dt)
}

func lowerRange(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	var b [3]float64
	for i := range b {
		f, err := t.hostFloats(in[i], []string{"start", "limit", "delta"}[i])
		if err != nil {
			return nil, err
		}
		if len(f) != 1 {
			return nil, fmt.Errorf("range bounds must be scalars")
		}
		b[i] = f[0]
	}
	if b[2] == 0 {
		return nil, fmt.Errorf("range delta is 0")
	}
	cnt := math.Max(0, math.Ceil((b[1]-b[0])/b[2]))
	dt := in[0].dt
	// Build start + delta·i so the count is exactly ONNX's.
	s := t.s
	idx := s.Arange(0, cnt, 1, t.ddt(dt))
	return t.one(s.Add(s.Mul(idx, t.scalar(b[2], dt)), t.scalar(b[0], dt)), dt)
}

func lowerPad(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	x := in[0]
	r := x.rank()
	var pads []int64
	var err error
	cval := 0.0
	var cdev *mlx.Array
	if n.Opset > 0 && n.Opset < 11 {
		pads, _ = n.AttrInts("pads")
		cval = float64(n.AttrFloat("value", 0))
	} else {
		if pads, err = t.hostInts(in[1], "pads"); err != nil {
			return nil, err
		}
		if len(in) > 2 && in[2] != nil {
			if in[2].host == nil {
				// Computed on the device: pad with 0, then fill the border.
				cdev = t.arr(in[2])
			} else {
				f, err := in[2].host.Float64s()
				if err != nil || len(f) != 1 {
					return nil, fmt.Errorf("constant_value must be a scalar")
				}
				cval = f[0]
			}
		}
	}
	axes := make([]int, r)
	for i := range axes {
		axes[i] = i
	}
	if len(in) > 3 && in[3] != nil {
		a, err := t.hostInts(in[3], "axes")
		if err != nil {
			return nil, err
		}
		if axes, err = shapes.NormAxes(a, r); err != nil {
			return nil, err
		}
	}
	if len(pads) != 2*len(axes) {
		return nil, fmt.Errorf("pads %v for %d axes", pads, len(axes))
	}
	low, high := make([]int64, r), make([]int64, r)
	for i, a := range axes {
		low[a], high[a] = pads[i], pads[i+len(axes)]
	}
	a := t.arr(x)
	shape := append([]int64{}, x.shape...)
	// Negative pads crop first.
	for ax := 0; ax < r; ax++ {
		lo, hi := int64(0), shape[ax]
		if low[ax] < 0 {
			lo = -low[ax]
			low[ax] = 0
		}
		if high[ax] < 0 {
			hi += high[ax]
			high[ax] = 0
		}
		if lo != 0 || hi != shape[ax] {
			if hi < lo {
				return nil, fmt.Errorf("pads crop more than axis %d has", ax)
			}
			a = t.sliceAxis(a, shape, ax, lo, hi)
			shape[ax] = hi - lo
		}
	}
	mode := n.AttrString("mode", "constant")
	s := t.s
	switch mode {
	case "constant":
		y := s.Pad(a, intsOf(low), intsOf(high), cval)
		if cdev != nil {
			inside := s.Pad(s.Full(1, mlx.Bool, intsOf(shape)...), intsOf(low), intsOf(high), 0)
			y = s.Where(inside, y, s.Reshape(cdev, []int{}...))
		}
		return t.one(y, x.dt)
	case "edge", "reflect", "wrap":
		for ax := 0; ax < r; ax++ {
			if low[ax] == 0 && high[ax] == 0 {
				continue
			}
			d := shape[ax]
			if d == 0 || (mode == "reflect" && (low[ax] >= d || high[ax] >= d)) {
				return nil, fmt.Errorf("%s pad of %d/%d on an axis of size %d", mode, low[ax], high[ax], d)
			}
			// Gather indices along the axis: a simple, exact formulation.
			idx := make([]int32, 0, low[ax]+d+high[ax])
			for i := -low[ax]; i < d+high[ax]; i++ {
				j := i
				switch mode {
				case "edge":
					j = max(0, min(d-1, i))
				case "reflect":
					for j < 0 || j >= d {
						if j < 0 {
							j = -j
						}
						if j >= d {
							j = 2*(d-1) - j
						}
					}
				case "wrap":
					j = ((i % d) + d) % d
				}
				idx = append(idx, int32(j))
			}
			a = s.Take(a, s.FromInt32s(idx, len(idx)), ax)
			shape[ax] = int64(len(idx))
		}
		return t.one(a, x.dt)
	}
	return nil, fmt.Errorf("pad mode %q is not supported", mode)
}

// dropoutTraining reports whether a Dropout node really drops: training mode
// on (opset ≥ 12: input 2; a value computed on the device counts as on) and
// a nonzero ratio.
func dropoutTraining(n *graph.Node, in []*val) bool {
	if len(in) < 3 || in[2] == nil {
		return false
	}
	if in[2].host != nil {
		v, err := in[2].host.Int64s()
		if err == nil && len(v) == 1 && v[0] == 0 {
			return false
		}
	}
	if len(in) > 1 && in[1] != nil && in[1].host != nil {
		if r, err := in[1].host.Float64s(); err == nil && len(r) == 1 && r[0] == 0 {
			return false
		}
	}
	return true
}
