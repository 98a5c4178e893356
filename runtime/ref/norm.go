package ref

import (
	"fmt"
	"math"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/shapes"
)

func init() {
	register(softmaxKernel(softmaxRow), "Softmax")
	register(softmaxKernel(logSoftmaxRow), "LogSoftmax")
	register(softmaxKernel(hardmaxRow), "Hardmax")
	register(kernelLayerNorm, "LayerNormalization")
	register(kernelRMSNorm, "RMSNormalization")
	register(kernelBatchNorm, "BatchNormalization")
}

// rowFn transforms one row (strided by inner within data) in place.
type rowFn func(row []float64)

func softmaxRow(row []float64) {
	m := math.Inf(-1)
	for _, v := range row {
		m = math.Max(m, v)
	}
	var s float64
	for k, v := range row {
		row[k] = math.Exp(v - m)
		s += row[k]
	}
	for k := range row {
		row[k] /= s
	}
}

func logSoftmaxRow(row []float64) {
	m := math.Inf(-1)
	for _, v := range row {
		m = math.Max(m, v)
	}
	var s float64
	for _, v := range row {
		s += math.Exp(v - m)
	}
	ls := math.Log(s)
	for k, v := range row {
		row[k] = v - m - ls
	}
}

// hardmaxRow marks the first maximum with 1.
func hardmaxRow(row []float64) {
	best := 0
	for k, v := range row {
		if v > row[best] {
			best = k
		}
	}
	for k := range row {
		row[k] = 0
	}
	if len(row) > 0 {
		row[best] = 1
	}
}

// softmaxKernel applies fn along an axis. From opset 13 that is one axis
// (default -1); before, the input is coerced to 2-D at axis (default 1) and
// fn runs over whole flattened rows.
func softmaxKernel(fn rowFn) kernel {
	return func(n *graph.Node, in []*array) ([]*array, error) {
		x, err := need(n, in, 0)
		if err != nil {
			return nil, err
		}
		if !isFloat(x.dt) {
			return nil, fmt.Errorf("%s takes floats, got %s", n.Op, x.dt)
		}
		legacy := n.Opset > 0 && n.Opset < 13
		def := int64(-1)
		if legacy {
			def = 1
		}
		rank := x.rank()
		if rank == 0 {
			return nil, fmt.Errorf("%s of a scalar", n.Op)
		}
		axis, err := shapes.NormAxis(n.AttrInt("axis", def), rank)
		if err != nil {
			return nil, err
		}
		var outer, mid, inner int
		if legacy {
			outer = int(shapes.Prod(x.shape[:axis]))
			mid, inner = int(shapes.Prod(x.shape[axis:])), 1
		} else {
			outer, mid, inner = splitAt(x.shape, axis)
		}
		r := newArray(x.dt, x.shape)
		row := make([]float64, mid)
		for o := 0; o < outer; o++ {
			for i := 0; i < inner; i++ {
				for m := range row {
					row[m] = x.f[(o*mid+m)*inner+i]
				}
				fn(row)
				for m, v := range row {
					r.f[(o*mid+m)*inner+i] = v
				}
			}
		}
		return []*array{r}, nil
	}
}

// normalizeTail normalizes x over the dims from axis on, optionally without
// centring (RMS), and scales/shifts with scale and bias broadcast to x. It
// returns Y and the per-row mean and 1/std in dtype stash, shaped like x with
// the normalized dims set to 1.
func normalizeTail(x, scale, bias *array, axis int, eps float64, rms bool, stash graph.DType) (y, mean, invStd *array, err error) {
	if scale != nil {
		if scale, err = broadcastTo(scale, x.shape); err != nil {
			return nil, nil, nil, fmt.Errorf("scale: %w", err)
		}
	}
	if bias != nil {
		if bias, err = broadcastTo(bias, x.shape); err != nil {
			return nil, nil, nil, fmt.Errorf("bias: %w", err)
		}
	}
	outer := int(shapes.Prod(x.shape[:axis]))
	inner := int(shapes.Prod(x.shape[axis:]))
	statShape := append([]int64{}, x.shape...)
	for k := axis; k < len(statShape); k++ {
		statShape[k] = 1
	}
	y = newArray(x.dt, x.shape)
	mean = newArray(stash, statShape)
	invStd = newArray(stash, statShape)
	for o := 0; o < outer; o++ {
		row := x.f[o*inner : (o+1)*inner]
		var mu float64
		if !rms {
			for _, v := range row {
				mu += v
			}
			mu /= float64(inner)
		}
		var sq float64
		for _, v := range row {
			sq += (v - mu) * (v - mu)
		}
		inv := 1 / math.Sqrt(sq/float64(inner)+eps)
		mean.set(o, mu)
		invStd.set(o, inv)
		for k, v := range row {
			e := o*inner + k
			out := (v - mu) * inv
			if scale != nil {
				out *= scale.float(e)
			}
			if bias != nil {
				out += bias.float(e)
			}
			y.f[e] = out
		}
	}
	return y, mean, invStd, nil
}

func stashType(n *graph.Node) (graph.DType, error) {
	dt := graph.DType(n.AttrInt("stash_type", int64(graph.Float32)))
	if !dt.IsFloat() {
		return 0, fmt.Errorf("stash_type %s is not a float type", dt)
	}
	return dt, nil
}

func kernelLayerNorm(n *graph.Node, in []*array) ([]*array, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	scale, err := need(n, in, 1)
	if err != nil {
		return nil, err
	}
	if !isFloat(x.dt) || scale.dt != x.dt {
		return nil, fmt.Errorf("LayerNormalization takes floats of one dtype, got %s and %s", x.dt, scale.dt)
	}
	if b := opt(in, 2); b != nil && b.dt != x.dt {
		return nil, fmt.Errorf("LayerNormalization bias is %s, x is %s", b.dt, x.dt)
	}
	axis, err := shapes.NormAxis(n.AttrInt("axis", -1), x.rank())
	if err != nil {
		return nil, err
	}
	stash, err := stashType(n)
	if err != nil {
		return nil, err
	}
	y, mean, inv, err := normalizeTail(x, scale, opt(in, 2), axis, attrF(n, "epsilon", 1e-5), false, stash)
	if err != nil {
		return nil, err
	}
	return []*array{y, mean, inv}, nil
}

func kernelRMSNorm(n *graph.Node, in []*array) ([]*array, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	scale, err := need(n, in, 1)
	if err != nil {
		return nil, err
	}
	if !isFloat(x.dt) || scale.dt != x.dt {
		return nil, fmt.Errorf("RMSNormalization takes floats of one dtype, got %s and %s", x.dt, scale.dt)
	}
	axis, err := shapes.NormAxis(n.AttrInt("axis", -1), x.rank())
	if err != nil {
		return nil, err
	}
	stash, err := stashType(n)
	if err != nil {
		return nil, err
	}
	y, _, _, err := normalizeTail(x, scale, nil, axis, attrF(n, "epsilon", 1e-5), true, stash)
	if err != nil {
		return nil, err
	}
	return []*array{y}, nil
}

// channelParam reads a per-channel vector of length c.
func channelParam(n *graph.Node, in []*array, k int, c int64, what string) ([]float64, error) {
	a, err := need(n, in, k)
	if err != nil {
		return nil, err
	}
	if a.size() != int(c) {
		return nil, fmt.Errorf("%s %s has shape %v, want [%d]", n.Op, what, a.shape, c)
	}
	return a.floats(), nil
}

// kernelBatchNorm: inference uses the given statistics; training_mode=1
// normalizes with the batch statistics and also returns the updated running
// mean and variance.
func kernelBatchNorm(n *graph.Node, in []*array) ([]*array, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	if !isFloat(x.dt) || x.rank() < 2 {
		return nil, fmt.Errorf("BatchNormalization takes a float tensor of rank ≥ 2, got %s%v", x.dt, x.shape)
	}
	if n.AttrInt("spatial", 1) == 0 {
		return nil, unsupported(n, "spatial=0 (per-activation statistics)")
	}
	c := x.shape[1]
	var p [4][]float64
	for k, what := range []string{"scale", "bias", "mean", "var"} {
		if p[k], err = channelParam(n, in, k+1, c, what); err != nil {
			return nil, err
		}
	}
	eps := attrF(n, "epsilon", 1e-5)
	momentum := attrF(n, "momentum", 0.9)
	training := n.AttrInt("training_mode", 0) != 0
	outer, mid, inner := splitAt(x.shape, 1)
	mean, variance := p[2], p[3]
	var runMean, runVar *array
	if training {
		mean = make([]float64, c)
		variance = make([]float64, c)
		cnt := float64(outer * inner)
		for o := 0; o < outer; o++ {
			for ch := 0; ch < mid; ch++ {
				for i := 0; i < inner; i++ {
					mean[ch] += x.f[(o*mid+ch)*inner+i]
				}
			}
		}
		for ch := range mean {
			mean[ch] /= cnt
		}
		for o := 0; o < outer; o++ {
			for ch := 0; ch < mid; ch++ {
				for i := 0; i < inner; i++ {
					d := x.f[(o*mid+ch)*inner+i] - mean[ch]
					variance[ch] += d * d
				}
			}
		}
		dt := in[3].dt
		runMean, runVar = newArray(dt, []int64{c}), newArray(dt, []int64{c})
		for ch := range variance {
			variance[ch] /= cnt
			runMean.set(ch, p[2][ch]*momentum+mean[ch]*(1-momentum))
			runVar.set(ch, p[3][ch]*momentum+variance[ch]*(1-momentum))
		}
	}
	y := newArray(x.dt, x.shape)
	for o := 0; o < outer; o++ {
		for ch := 0; ch < mid; ch++ {
			inv := 1 / math.Sqrt(variance[ch]+eps)
			for i := 0; i < inner; i++ {
				e := (o*mid+ch)*inner + i
				y.f[e] = (x.f[e]-mean[ch])*inv*p[0][ch] + p[1][ch]
			}
		}
	}
	if training {
		return []*array{y, runMean, runVar}, nil
	}
	return []*array{y, nil, nil}, nil
}
