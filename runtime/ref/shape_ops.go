package ref

import (
	"fmt"
	"math"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/shapes"
)

func init() {
	register(kernelReshape, "Reshape")
	register(kernelTranspose, "Transpose")
	register(kernelUnsqueeze, "Unsqueeze")
	register(kernelSqueeze, "Squeeze")
	register(kernelFlatten, "Flatten")
	register(kernelExpand, "Expand")
	register(kernelConcat, "Concat")
	register(kernelSplit, "Split")
	register(kernelSlice, "Slice")
	register(kernelTile, "Tile")
	register(kernelPad, "Pad")
	register(kernelShape, "Shape")
	register(kernelSize, "Size")
	register(kernelIdentity, "Identity")
	register(kernelDropout, "Dropout")
	register(kernelTrilu, "Trilu")
}

// resolveShape applies Reshape's rules: 0 copies the input dim (unless
// allowzero), one -1 is inferred from the element count.
func resolveShape(in []int64, target []int64, allowZero bool) ([]int64, error) {
	out := make([]int64, len(target))
	infer := -1
	known := int64(1)
	for k, d := range target {
		switch {
		case d == -1:
			if infer >= 0 {
				return nil, fmt.Errorf("shape %v has more than one -1", target)
			}
			infer = k
			continue
		case d == 0 && !allowZero:
			if k >= len(in) {
				return nil, fmt.Errorf("shape %v copies dim %d of a rank-%d input", target, k, len(in))
			}
			d = in[k]
		case d < 0:
			return nil, fmt.Errorf("shape %v has a negative dim", target)
		}
		out[k] = d
		if d > 0 && known > maxElements/d {
			return nil, fmt.Errorf("shape %v too large", target)
		}
		known *= d
	}
	total := shapes.Prod(in)
	if infer >= 0 {
		if known == 0 || total%known != 0 {
			return nil, fmt.Errorf("cannot reshape %v to %v", in, target)
		}
		out[infer] = total / known
	} else if known != total {
		return nil, fmt.Errorf("cannot reshape %v (%d elements) to %v", in, total, target)
	}
	return out, nil
}

func kernelReshape(n *graph.Node, in []*array) ([]*array, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	var target []int64
	if s := opt(in, 1); s != nil {
		if target, err = intList(s, "Reshape shape"); err != nil {
			return nil, err
		}
	} else if attr, ok := n.AttrInts("shape"); ok {
		target = attr // opset < 5
	} else {
		return nil, fmt.Errorf("Reshape needs a shape")
	}
	shape, err := resolveShape(x.shape, target, n.AttrInt("allowzero", 0) != 0)
	if err != nil {
		return nil, err
	}
	return []*array{x.reshaped(shape)}, nil
}

// permute returns a transposed copy: output dim k is input dim perm[k].
func permute(a *array, perm []int) *array {
	outShape := make([]int64, len(perm))
	inSt := strides(a.shape)
	st := make([]int64, len(perm))
	for k, p := range perm {
		outShape[k] = a.shape[p]
		st[k] = inSt[p]
	}
	r := newArray(a.dt, outShape)
	total := r.size()
	counter := make([]int64, len(perm))
	off := 0
	for o := 0; o < total; o++ {
		copyElem(r, o, a, off)
		for d := len(perm) - 1; d >= 0; d-- {
			counter[d]++
			off += int(st[d])
			if counter[d] < outShape[d] {
				break
			}
			off -= int(st[d] * outShape[d])
			counter[d] = 0
		}
	}
	return r
}

func kernelTranspose(n *graph.Node, in []*array) ([]*array, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	var perm []int
	if p, ok := n.AttrInts("perm"); ok {
		if len(p) != x.rank() {
			return nil, fmt.Errorf("perm %v for rank %d", p, x.rank())
		}
		if perm, err = shapes.NormAxes(p, x.rank()); err != nil {
			return nil, fmt.Errorf("perm %v: %w", p, err)
		}
	} else {
		for k := x.rank() - 1; k >= 0; k-- {
			perm = append(perm, k)
		}
	}
	return []*array{permute(x, perm)}, nil
}

// axesOf reads axes from input k (newer opsets) or from the "axes"
// attribute (older ones); present reports whether either was given.
func axesOf(n *graph.Node, in []*array, k int) (axes []int64, present bool, err error) {
	if a := opt(in, k); a != nil {
		axes, err = intList(a, "axes")
		return axes, true, err
	}
	if attr, ok := n.AttrInts("axes"); ok {
		return attr, true, nil
	}
	return nil, false, nil
}

func kernelUnsqueeze(n *graph.Node, in []*array) ([]*array, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	axes, ok, err := axesOf(n, in, 1)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("Unsqueeze needs axes")
	}
	rank := x.rank() + len(axes)
	ax, err := shapes.NormAxes(axes, rank)
	if err != nil {
		return nil, err
	}
	isNew := make([]bool, rank)
	for _, a := range ax {
		isNew[a] = true
	}
	shape := make([]int64, 0, rank)
	j := 0
	for k := 0; k < rank; k++ {
		if isNew[k] {
			shape = append(shape, 1)
		} else {
			shape = append(shape, x.shape[j])
			j++
		}
	}
	return []*array{x.reshaped(shape)}, nil
}

func kernelSqueeze(n *graph.Node, in []*array) ([]*array, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	axes, ok, err := axesOf(n, in, 1)
	if err != nil {
		return nil, err
	}
	drop := make([]bool, x.rank())
	if ok {
		ax, err := shapes.NormAxes(axes, x.rank())
		if err != nil {
			return nil, err
		}
		for _, a := range ax {
			if x.shape[a] != 1 {
				return nil, fmt.Errorf("cannot squeeze dim %d of size %d", a, x.shape[a])
			}
			drop[a] = true
		}
	} else {
		for k, d := range x.shape {
			drop[k] = d == 1
		}
	}
	shape := []int64{}
	for k, d := range x.shape {
		if !drop[k] {
			shape = append(shape, d)
		}
	}
	return []*array{x.reshaped(shape)}, nil
}

func kernelFlatten(n *graph.Node, in []*array) ([]*array, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	axis := n.AttrInt("axis", 1)
	if axis < -int64(x.rank()) || axis > int64(x.rank()) {
		return nil, fmt.Errorf("Flatten axis %d out of range for rank %d", axis, x.rank())
	}
	if axis < 0 {
		axis += int64(x.rank())
	}
	outer := shapes.Prod(x.shape[:axis])
	return []*array{x.reshaped([]int64{outer, shapes.Prod(x.shape[axis:])})}, nil
}

func kernelExpand(n *graph.Node, in []*array) ([]*array, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	s, err := need(n, in, 1)
	if err != nil {
		return nil, err
	}
	shape, err := intList(s, "Expand shape")
	if err != nil {
		return nil, err
	}
	out, err := broadcastShapes(x.shape, shape)
	if err != nil {
		return nil, err
	}
	r, err := broadcastTo(x, out)
	if err != nil {
		return nil, err
	}
	return []*array{r}, nil
}

func kernelConcat(n *graph.Node, in []*array) ([]*array, error) {
	if len(in) == 0 {
		return nil, fmt.Errorf("Concat needs inputs")
	}
	first, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	axis, err := shapes.NormAxis(n.AttrInt("axis", 0), first.rank())
	if err != nil {
		return nil, err
	}
	shape := append([]int64{}, first.shape...)
	shape[axis] = 0
	for k, a := range in {
		if a == nil {
			return nil, fmt.Errorf("Concat input %d missing", k)
		}
		if a.dt != first.dt || a.rank() != first.rank() {
			return nil, fmt.Errorf("Concat input %d is %s%v, input 0 is %s%v", k, a.dt, a.shape, first.dt, first.shape)
		}
		for d := range a.shape {
			if d != axis && a.shape[d] != first.shape[d] {
				return nil, fmt.Errorf("Concat input %d has shape %v, input 0 %v", k, a.shape, first.shape)
			}
		}
		shape[axis] += a.shape[axis]
	}
	r, err := allocArray(first.dt, shape)
	if err != nil {
		return nil, err
	}
	outer, _, inner := splitAt(shape, axis)
	pos := 0
	for o := 0; o < outer; o++ {
		for _, a := range in {
			chunk := int(a.shape[axis]) * inner
			if isFloat(a.dt) {
				copy(r.f[pos:], a.f[o*chunk:(o+1)*chunk])
			} else {
				copy(r.i[pos:], a.i[o*chunk:(o+1)*chunk])
			}
			pos += chunk
		}
	}
	return []*array{r}, nil
}

// sliceAxis copies [start, start+len) of axis into a new array.
func sliceAxis(a *array, axis int, start, length int64) *array {
	shape := append([]int64{}, a.shape...)
	shape[axis] = length
	r := newArray(a.dt, shape)
	outer, mid, inner := splitAt(a.shape, axis)
	pos := 0
	for o := 0; o < outer; o++ {
		src := (o*mid + int(start)) * inner
		cnt := int(length) * inner
		if isFloat(a.dt) {
			copy(r.f[pos:pos+cnt], a.f[src:src+cnt])
		} else {
			copy(r.i[pos:pos+cnt], a.i[src:src+cnt])
		}
		pos += cnt
	}
	return r
}

func kernelSplit(n *graph.Node, in []*array) ([]*array, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	axis, err := shapes.NormAxis(n.AttrInt("axis", 0), x.rank())
	if err != nil {
		return nil, err
	}
	dim := x.shape[axis]
	var sizes []int64
	if s := opt(in, 1); s != nil {
		if sizes, err = intList(s, "Split split"); err != nil {
			return nil, err
		}
	} else if attr, ok := n.AttrInts("split"); ok {
		sizes = attr
	} else {
		parts := int64(len(n.Outputs))
		if num := n.AttrInt("num_outputs", 0); num > 0 {
			parts = num
		}
		if parts <= 0 {
			return nil, fmt.Errorf("Split into %d parts", parts)
		}
		// Equal parts; from opset 18 the last may be smaller.
		chunk := (dim + parts - 1) / parts
		if n.Opset > 0 && n.Opset < 18 && dim%parts != 0 {
			return nil, fmt.Errorf("Split: dim %d does not divide into %d parts", dim, parts)
		}
		for k, left := int64(0), dim; k < parts; k++ {
			c := min(chunk, left)
			sizes = append(sizes, c)
			left -= c
		}
	}
	var total int64
	for _, s := range sizes {
		if s < 0 {
			return nil, fmt.Errorf("Split sizes %v negative", sizes)
		}
		total += s
	}
	if total != dim {
		return nil, fmt.Errorf("Split sizes %v do not add up to dim %d", sizes, dim)
	}
	outs := make([]*array, len(sizes))
	var start int64
	for k, s := range sizes {
		outs[k] = sliceAxis(x, axis, start, s)
		start += s
	}
	if len(outs) < len(n.Outputs) {
		return nil, fmt.Errorf("Split gives %d parts for %d outputs", len(outs), len(n.Outputs))
	}
	return outs, nil
}

// clampSlice resolves one axis of Slice: negative positions count from the
// end, then start/end are clamped to the ranges the step direction allows.
func clampSlice(start, end, step, dim int64) (int64, int64) {
	if start < 0 {
		start += dim
	}
	if end < 0 {
		end += dim
	}
	if step > 0 {
		start = min(max(start, 0), dim)
		end = min(max(end, 0), dim)
	} else {
		start = min(max(start, 0), dim-1)
		end = min(max(end, -1), dim-1)
	}
	return start, end
}

func kernelSlice(n *graph.Node, in []*array) ([]*array, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	var starts, ends, axes, steps []int64
	if len(in) == 1 && n.Opset > 0 && n.Opset < 10 {
		var ok bool
		if starts, ok = n.AttrInts("starts"); !ok {
			return nil, fmt.Errorf("Slice needs starts")
		}
		if ends, ok = n.AttrInts("ends"); !ok {
			return nil, fmt.Errorf("Slice needs ends")
		}
		axes, _ = n.AttrInts("axes")
	} else {
		if starts, err = intList(opt(in, 1), "Slice starts"); err != nil {
			return nil, err
		}
		if ends, err = intList(opt(in, 2), "Slice ends"); err != nil {
			return nil, err
		}
		if a := opt(in, 3); a != nil {
			if axes, err = intList(a, "Slice axes"); err != nil {
				return nil, err
			}
		}
		if s := opt(in, 4); s != nil {
			if steps, err = intList(s, "Slice steps"); err != nil {
				return nil, err
			}
		}
	}
	if len(ends) != len(starts) {
		return nil, fmt.Errorf("Slice starts %v and ends %v differ in length", starts, ends)
	}
	if axes == nil {
		for k := range starts {
			axes = append(axes, int64(k))
		}
	}
	if steps == nil {
		for range starts {
			steps = append(steps, 1)
		}
	}
	if len(axes) != len(starts) || len(steps) != len(starts) {
		return nil, fmt.Errorf("Slice starts, axes and steps differ in length")
	}
	ax, err := shapes.NormAxes(axes, x.rank())
	if err != nil {
		return nil, err
	}
	rank := x.rank()
	first := make([]int64, rank)
	step := make([]int64, rank)
	shape := append([]int64{}, x.shape...)
	for k := range step {
		step[k] = 1
	}
	for k, a := range ax {
		if steps[k] == 0 {
			return nil, fmt.Errorf("Slice step 0")
		}
		s, e := clampSlice(starts[k], ends[k], steps[k], x.shape[a])
		var cnt int64
		if steps[k] > 0 && e > s {
			cnt = (e - s + steps[k] - 1) / steps[k]
		} else if steps[k] < 0 && s > e {
			cnt = (s - e + (-steps[k]) - 1) / (-steps[k])
		}
		first[a], step[a], shape[a] = s, steps[k], cnt
	}
	r := newArray(x.dt, shape)
	total := r.size()
	if total == 0 {
		return []*array{r}, nil
	}
	inSt := strides(x.shape)
	off := 0
	for d := range first {
		off += int(first[d] * inSt[d])
	}
	counter := make([]int64, rank)
	for o := 0; o < total; o++ {
		copyElem(r, o, x, off)
		for d := rank - 1; d >= 0; d-- {
			counter[d]++
			off += int(step[d] * inSt[d])
			if counter[d] < shape[d] {
				break
			}
			off -= int(step[d] * inSt[d] * shape[d])
			counter[d] = 0
		}
	}
	return []*array{r}, nil
}

func kernelTile(n *graph.Node, in []*array) ([]*array, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	reps, err := intList(opt(in, 1), "Tile repeats")
	if err != nil {
		return nil, err
	}
	if len(reps) != x.rank() {
		return nil, fmt.Errorf("Tile repeats %v for rank %d", reps, x.rank())
	}
	shape := make([]int64, x.rank())
	for k, rp := range reps {
		if rp < 0 {
			return nil, fmt.Errorf("Tile repeats %v negative", reps)
		}
		shape[k] = x.shape[k] * rp
	}
	r, err := allocArray(x.dt, shape)
	if err != nil {
		return nil, err
	}
	inSt := strides(x.shape)
	idx := make([]int64, len(shape))
	for o := 0; o < r.size(); o++ {
		src := int64(0)
		for d := range idx {
			src += (idx[d] % x.shape[d]) * inSt[d]
		}
		copyElem(r, o, x, int(src))
		for d := len(shape) - 1; d >= 0; d-- {
			idx[d]++
			if idx[d] < shape[d] {
				break
			}
			idx[d] = 0
		}
	}
	return []*array{r}, nil
}

// kernelPad handles constant, reflect, edge and wrap modes; negative pads crop.
func kernelPad(n *graph.Node, in []*array) ([]*array, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	mode := n.AttrString("mode", "constant")
	var pads []int64
	cval := 0.0
	if p := opt(in, 1); p != nil {
		if pads, err = intList(p, "Pad pads"); err != nil {
			return nil, err
		}
		if c := opt(in, 2); c != nil {
			if c.size() != 1 {
				return nil, fmt.Errorf("Pad constant_value must have one element, has shape %v", c.shape)
			}
			if c.dt != x.dt {
				return nil, fmt.Errorf("Pad constant_value is %s, data is %s", c.dt, x.dt)
			}
			cval = c.float(0)
		}
	} else if attr, ok := n.AttrInts("pads"); ok { // opset < 11
		pads = attr
		cval = attrF(n, "value", 0)
	} else {
		return nil, fmt.Errorf("Pad needs pads")
	}
	rank := x.rank()
	axes := make([]int, rank)
	for k := range axes {
		axes[k] = k
	}
	if a := opt(in, 3); a != nil {
		list, err := intList(a, "Pad axes")
		if err != nil {
			return nil, err
		}
		if axes, err = shapes.NormAxes(list, rank); err != nil {
			return nil, err
		}
	}
	if len(pads) != 2*len(axes) {
		return nil, fmt.Errorf("Pad has %d pads for %d axes", len(pads), len(axes))
	}
	before := make([]int64, rank)
	shape := append([]int64{}, x.shape...)
	for k, a := range axes {
		before[a] = pads[k]
		shape[a] += pads[k] + pads[k+len(axes)]
		if shape[a] < 0 {
			return nil, fmt.Errorf("Pad %v crops more than dim %d has", pads, a)
		}
	}
	if mode != "constant" {
		for a, d := range x.shape {
			if d == 0 && shape[a] > 0 {
				return nil, fmt.Errorf("Pad mode %s cannot pad an empty dim", mode)
			}
		}
	}
	r, err := allocArray(x.dt, shape)
	if err != nil {
		return nil, err
	}
	inSt := strides(x.shape)
	idx := make([]int64, rank)
	for o := 0; o < r.size(); o++ {
		src := int64(0)
		inside := true
		for d := range idx {
			p := idx[d] - before[d]
			dim := x.shape[d]
			if p < 0 || p >= dim {
				switch mode {
				case "constant":
					inside = false
				case "edge":
					p = min(max(p, 0), dim-1)
				case "reflect":
					p = reflectIndex(p, dim)
				case "wrap":
					p = ((p % dim) + dim) % dim
				default:
					return nil, fmt.Errorf("Pad mode %q unknown", mode)
				}
			}
			src += p * inSt[d]
		}
		if inside {
			copyElem(r, o, x, int(src))
		} else {
			r.set(o, cval)
		}
		for d := rank - 1; d >= 0; d-- {
			idx[d]++
			if idx[d] < shape[d] {
				break
			}
			idx[d] = 0
		}
	}
	return []*array{r}, nil
}

// reflectIndex mirrors p into [0, dim) without repeating the edge element.
func reflectIndex(p, dim int64) int64 {
	if dim == 1 {
		return 0
	}
	period := 2 * (dim - 1)
	p = ((p % period) + period) % period
	if p >= dim {
		p = period - p
	}
	return p
}

func kernelShape(n *graph.Node, in []*array) ([]*array, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	rank := int64(x.rank())
	clampEnd := func(v int64) int64 {
		if v < 0 {
			v += rank
		}
		return min(max(v, 0), rank)
	}
	start, end := clampEnd(n.AttrInt("start", 0)), clampEnd(n.AttrInt("end", rank))
	dims := []int64{}
	if start < end {
		dims = x.shape[start:end]
	}
	r := newArray(graph.Int64, []int64{int64(len(dims))})
	copy(r.i, dims)
	return []*array{r}, nil
}

func kernelSize(n *graph.Node, in []*array) ([]*array, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	r := newArray(graph.Int64, nil)
	r.i[0] = shapes.Prod(x.shape)
	return []*array{r}, nil
}

func kernelIdentity(n *graph.Node, in []*array) ([]*array, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	return []*array{x}, nil
}

// kernelDropout is inference-mode dropout: the identity, with an all-true
// mask. Training mode with a nonzero ratio is random and not supported.
func kernelDropout(n *graph.Node, in []*array) ([]*array, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	ratio := attrF(n, "ratio", 0.5)
	if r := opt(in, 1); r != nil {
		if r.size() != 1 {
			return nil, fmt.Errorf("Dropout ratio must be a scalar")
		}
		ratio = r.float(0)
	}
	if t := opt(in, 2); t != nil {
		if t.size() != 1 {
			return nil, fmt.Errorf("Dropout training_mode must be a scalar")
		}
		if t.i != nil && t.i[0] != 0 && ratio != 0 {
			return nil, unsupported(n, "training-mode dropout is random")
		}
	}
	// Before opset 10 the mask had x's dtype.
	maskType := graph.Bool
	if n.Opset > 0 && n.Opset < 10 {
		maskType = x.dt
	}
	mask := newArray(maskType, x.shape)
	for k := 0; k < mask.size(); k++ {
		mask.set(k, 1)
	}
	return []*array{x, mask}, nil
}

func kernelTrilu(n *graph.Node, in []*array) ([]*array, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	if x.rank() < 2 {
		return nil, fmt.Errorf("Trilu needs rank ≥ 2, got %v", x.shape)
	}
	var k int64
	if kk := opt(in, 1); kk != nil {
		if k, err = scalarInt(kk, "Trilu k"); err != nil {
			return nil, err
		}
	}
	upper := n.AttrInt("upper", 1) != 0
	rows, cols := x.shape[x.rank()-2], x.shape[x.rank()-1]
	r := newArray(x.dt, x.shape)
	for o := 0; o < r.size(); o++ {
		i := int64(o) / cols % rows
		j := int64(o) % cols
		keep := j-i >= k
		if !upper {
			keep = j-i <= k
		}
		if keep {
			copyElem(r, o, x, o)
		}
	}
	return []*array{r}, nil
}

// ---- constants and generators ----

func init() {
	register(kernelConstant, "Constant")
	register(kernelConstantOfShape, "ConstantOfShape")
	register(kernelRange, "Range")
	register(kernelCast, "Cast")
	register(kernelCastLike, "CastLike")
}

func kernelConstant(n *graph.Node, _ []*array) ([]*array, error) {
	if t := n.AttrTensor("value"); t != nil {
		a, err := fromTensor(t)
		if err != nil {
			return nil, err
		}
		return []*array{a}, nil
	}
	if a, ok := n.Attrs["value_float"]; ok && a.Kind == graph.AttrFloat {
		r := newArray(graph.Float32, nil)
		r.f[0] = float64(a.Float)
		return []*array{r}, nil
	}
	if a, ok := n.Attrs["value_int"]; ok && a.Kind == graph.AttrInt {
		r := newArray(graph.Int64, nil)
		r.i[0] = a.Int
		return []*array{r}, nil
	}
	if v, ok := n.AttrFloats("value_floats"); ok {
		r := newArray(graph.Float32, []int64{int64(len(v))})
		for k, f := range v {
			r.f[k] = float64(f)
		}
		return []*array{r}, nil
	}
	if v, ok := n.AttrInts("value_ints"); ok {
		r := newArray(graph.Int64, []int64{int64(len(v))})
		copy(r.i, v)
		return []*array{r}, nil
	}
	return nil, unsupported(n, "Constant without a numeric value (string and sparse values are not supported)")
}

func kernelConstantOfShape(n *graph.Node, in []*array) ([]*array, error) {
	shape, err := intList(opt(in, 0), "ConstantOfShape shape")
	if err != nil {
		return nil, err
	}
	dt, v := graph.Float32, 0.0
	if t := n.AttrTensor("value"); t != nil {
		a, err := fromTensor(t)
		if err != nil {
			return nil, err
		}
		if a.size() != 1 {
			return nil, fmt.Errorf("ConstantOfShape value must have one element")
		}
		dt, v = a.dt, a.float(0)
	}
	r, err := allocArray(dt, shape)
	if err != nil {
		return nil, err
	}
	for k := 0; k < r.size(); k++ {
		r.set(k, v)
	}
	return []*array{r}, nil
}

func kernelRange(n *graph.Node, in []*array) ([]*array, error) {
	var ab [3]*array
	for k := range ab {
		a, err := need(n, in, k)
		if err != nil {
			return nil, err
		}
		if a.size() != 1 || a.dt != in[0].dt {
			return nil, fmt.Errorf("Range takes three scalars of one dtype, got %s%v", a.dt, a.shape)
		}
		ab[k] = a
	}
	dt := ab[0].dt
	if isFloat(dt) {
		start, limit, delta := ab[0].f[0], ab[1].f[0], ab[2].f[0]
		if delta == 0 {
			return nil, fmt.Errorf("Range delta is 0")
		}
		cnt := math.Ceil((limit - start) / delta)
		if cnt < 0 || math.IsNaN(cnt) {
			cnt = 0
		}
		if cnt > maxElements {
			return nil, fmt.Errorf("Range of %g elements is too large", cnt)
		}
		r := newArray(dt, []int64{int64(cnt)})
		for k := range r.f {
			r.f[k] = start + float64(k)*delta
		}
		return []*array{r}, nil
	}
	start, limit, delta := ab[0].i[0], ab[1].i[0], ab[2].i[0]
	if delta == 0 {
		return nil, fmt.Errorf("Range delta is 0")
	}
	var cnt int64
	if delta > 0 && limit > start {
		cnt = (limit - start + delta - 1) / delta
	} else if delta < 0 && limit < start {
		cnt = (start - limit - delta - 1) / -delta
	}
	if cnt > maxElements {
		return nil, fmt.Errorf("Range of %d elements is too large", cnt)
	}
	r := newArray(dt, []int64{cnt})
	for k := range r.i {
		r.i[k] = start + int64(k)*delta
	}
	return []*array{r}, nil
}

// cast converts to dt: floats to integers truncate toward zero, anything to
// bool is "!= 0", and float results are rounded by normalize.
func cast(n *graph.Node, x *array, dt graph.DType) (*array, error) {
	if !numeric(dt) {
		return nil, unsupported(n, "cast to %s", dt)
	}
	if dt == x.dt {
		return x, nil
	}
	r := newArray(dt, x.shape)
	switch {
	case isFloat(dt):
		for k := range r.f {
			r.f[k] = x.float(k)
		}
	case isFloat(x.dt):
		for k := range r.i {
			r.set(k, x.f[k])
		}
	default: // integer to integer: two's complement wrap (normalize narrows)
		copy(r.i, x.i)
		if dt == graph.Bool {
			for k, v := range r.i {
				if v != 0 {
					r.i[k] = 1
				}
			}
		}
	}
	return r, nil
}

func kernelCast(n *graph.Node, in []*array) ([]*array, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	to, ok := n.Attrs["to"]
	if !ok || to.Kind != graph.AttrInt {
		return nil, fmt.Errorf("Cast needs an int attribute 'to'")
	}
	r, err := cast(n, x, graph.DType(to.Int))
	if err != nil {
		return nil, err
	}
	return []*array{r}, nil
}

func kernelCastLike(n *graph.Node, in []*array) ([]*array, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	like, err := need(n, in, 1)
	if err != nil {
		return nil, err
	}
	r, err := cast(n, x, like.dt)
	if err != nil {
		return nil, err
	}
	return []*array{r}, nil
}
