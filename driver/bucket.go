package driver

import (
	"fmt"
	"math"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/units"
)

// Bucketing: a token dim of size n runs at the smallest bucket ≥ n. Every
// input axis declared as that dim is zero-padded (masks included, so padded
// tokens are masked out: attention gives them no weight, and the triangle
// updates and outer products multiply them by the mask), and every output
// axis declared as that dim is cropped back to n. One compiled function per
// bucket then serves every length up to it. Sizes above the largest bucket
// run unpadded.

// BucketFor returns the smallest bucket ≥ n, or n when none is.
func BucketFor(buckets []int64, n int64) int64 {
	for _, b := range buckets {
		if b >= n {
			return b
		}
	}
	return n
}

// padDims returns the sizes a run at dims runs at: each token dim at its
// bucket. It allocates nothing, so the memory check can run on its result
// before pad builds the padded inputs.
func (s *Session) padDims(dims map[string]int64) (padded map[string]int64, changed bool) {
	padded = map[string]int64{}
	for k, v := range dims {
		padded[k] = v
	}
	if len(s.buckets) == 0 {
		return padded, false
	}
	for _, td := range s.Manifest.TokenDims {
		n, ok := dims[td]
		if !ok {
			continue
		}
		b := BucketFor(s.buckets, n)
		padded[td] = b
		if b != n {
			changed = true
		}
	}
	return padded, changed
}

// pad zero-pads the inputs from dims up to padded (padDims).
func (s *Session) pad(in map[string]*graph.Tensor, dims, padded map[string]int64, changed bool) (map[string]*graph.Tensor, error) {
	if !changed {
		return in, nil
	}
	out := make(map[string]*graph.Tensor, len(in))
	for _, v := range s.Graph.Inputs {
		t := in[v.Name]
		for ax, d := range v.Type.Shape {
			if !d.IsSymbolic() {
				continue
			}
			syms := graph.DimSymbols(d)
			if d.Sym != syms[0] || len(syms) != 1 {
				for _, sym := range syms {
					if padded[sym] != dims[sym] {
						return nil, fmt.Errorf("cannot pad input %q: its dim %d is %s, not a plain token dim (run without --buckets)", v.Name, ax, d)
					}
				}
				continue
			}
			if want := padded[d.Sym]; want != t.Shape[ax] {
				var err error
				if t, err = padAxis(t, ax, want); err != nil {
					return nil, fmt.Errorf("padding input %q: %w", v.Name, err)
				}
			}
		}
		out[v.Name] = t
	}
	return out, nil
}

func (s *Session) crop(out map[string]*graph.Tensor, dims, padded map[string]int64) (map[string]*graph.Tensor, error) {
	same := true
	for k, v := range padded {
		if dims[k] != v {
			same = false
		}
	}
	if same {
		return out, nil
	}
	res := make(map[string]*graph.Tensor, len(out))
	for _, o := range s.Graph.Outputs {
		t := out[o.Name]
		if t == nil {
			continue
		}
		if o.Type.Ranked && len(o.Type.Shape) == len(t.Shape) {
			for ax, d := range o.Type.Shape {
				if !d.IsSymbolic() {
					continue
				}
				syms := graph.DimSymbols(d)
				if len(syms) != 1 || syms[0] != d.Sym {
					for _, sym := range syms {
						if padded[sym] != dims[sym] {
							return nil, fmt.Errorf("cannot crop output %q: its dim %d is %s, not a plain token dim (run without buckets)", o.Name, ax, d)
						}
					}
					continue
				}
				if n, ok := dims[d.Sym]; ok && t.Shape[ax] != n {
					var err error
					if t, err = cropAxis(t, ax, n); err != nil {
						return nil, fmt.Errorf("cropping output %q: %w", o.Name, err)
					}
				}
			}
		}
		res[o.Name] = t
	}
	return res, nil
}

// strides returns the outer count, axis size and inner byte size of t
// around axis.
func around(t *graph.Tensor, axis int) (outer int64, inner int64) {
	outer, inner = 1, int64(t.DType.Size())
	for i, d := range t.Shape {
		switch {
		case i < axis:
			outer *= d
		case i > axis:
			inner *= d
		}
	}
	return
}

// padAxis zero-pads axis of t up to size n (≥ its size).
func padAxis(t *graph.Tensor, axis int, n int64) (*graph.Tensor, error) {
	cur := t.Shape[axis]
	if n < cur {
		return nil, fmt.Errorf("axis %d is %d, larger than the bucket %d", axis, cur, n)
	}
	outer, inner := around(t, axis)
	shape := append([]int64{}, t.Shape...)
	shape[axis] = n
	// outer·cur·inner is the tensor's size; outer·n·inner may overflow.
	total, ok := mulCheck(outer, n, inner)
	if !ok || total > maxPadBytes {
		return nil, fmt.Errorf("padding axis %d from %d to %d makes %s%v, more than %s", axis, cur, n, t.DType, shape, units.FormatBytes(maxPadBytes))
	}
	data := make([]byte, total)
	for o := int64(0); o < outer; o++ {
		copy(data[o*n*inner:], t.Data[o*cur*inner:(o+1)*cur*inner])
	}
	return &graph.Tensor{DType: t.DType, Shape: shape, Data: data}, nil
}

// maxPadBytes bounds one padded input (the memory check normally refuses
// far smaller ones first; this holds when it is off or cannot estimate).
const maxPadBytes = int64(1) << 40

// mulCheck multiplies non-negative factors, reporting overflow.
func mulCheck(xs ...int64) (int64, bool) {
	n := int64(1)
	for _, x := range xs {
		if x < 0 || (x > 0 && n > math.MaxInt64/x) {
			return 0, false
		}
		n *= x
	}
	return n, true
}

// cropAxis keeps the first n entries of axis.
func cropAxis(t *graph.Tensor, axis int, n int64) (*graph.Tensor, error) {
	cur := t.Shape[axis]
	if n > cur {
		return nil, fmt.Errorf("axis %d is %d, smaller than %d", axis, cur, n)
	}
	outer, inner := around(t, axis)
	shape := append([]int64{}, t.Shape...)
	shape[axis] = n
	data := make([]byte, outer*n*inner)
	for o := int64(0); o < outer; o++ {
		copy(data[o*n*inner:(o+1)*n*inner], t.Data[o*cur*inner:])
	}
	return &graph.Tensor{DType: t.DType, Shape: shape, Data: data}, nil
}
