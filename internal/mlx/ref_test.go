//go:build cgo && !nomlx

package mlx

import (
	"math"
	"math/rand"
	"testing"
)

// nd is a plain-Go row-major reference tensor.
type nd struct {
	shape []int
	data  []float64
}

func size(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

func strides(shape []int) []int {
	st := make([]int, len(shape))
	acc := 1
	for i := len(shape) - 1; i >= 0; i-- {
		st[i] = acc
		acc *= shape[i]
	}
	return st
}

func unravel(i int, shape []int) []int {
	idx := make([]int, len(shape))
	for d := len(shape) - 1; d >= 0; d-- {
		if shape[d] > 0 {
			idx[d] = i % shape[d]
			i /= shape[d]
		}
	}
	return idx
}

func (t nd) at(idx []int) float64 {
	st := strides(t.shape)
	off := 0
	for d, i := range idx {
		off += i * st[d]
	}
	return t.data[off]
}

func randND(r *rand.Rand, lo, hi float64, shape ...int) nd {
	t := nd{shape: shape, data: make([]float64, size(shape))}
	for i := range t.data {
		t.data[i] = float64(float32(lo + (hi-lo)*r.Float64()))
	}
	return t
}

func (t nd) f32() []float32 {
	out := make([]float32, len(t.data))
	for i, v := range t.data {
		out[i] = float32(v)
	}
	return out
}

func mapND(t nd, f func(float64) float64) nd {
	o := nd{shape: t.shape, data: make([]float64, len(t.data))}
	for i, v := range t.data {
		o.data[i] = f(v)
	}
	return o
}

func bshape(a, b []int) []int {
	n := max(len(a), len(b))
	out := make([]int, n)
	for i := 0; i < n; i++ {
		da, db := 1, 1
		if j := i - (n - len(a)); j >= 0 {
			da = a[j]
		}
		if j := i - (n - len(b)); j >= 0 {
			db = b[j]
		}
		out[i] = max(da, db)
	}
	return out
}

// bat reads t at an index of a broadcast result shape.
func (t nd) bat(idx []int) float64 {
	off := len(idx) - len(t.shape)
	sub := make([]int, len(t.shape))
	for d := range t.shape {
		if t.shape[d] != 1 {
			sub[d] = idx[d+off]
		}
	}
	return t.at(sub)
}

func zipND(a, b nd, f func(x, y float64) float64) nd {
	sh := bshape(a.shape, b.shape)
	o := nd{shape: sh, data: make([]float64, size(sh))}
	for i := range o.data {
		idx := unravel(i, sh)
		o.data[i] = f(a.bat(idx), b.bat(idx))
	}
	return o
}

func transposeND(t nd, perm []int) nd {
	sh := make([]int, len(perm))
	for i, p := range perm {
		sh[i] = t.shape[p]
	}
	o := nd{shape: sh, data: make([]float64, len(t.data))}
	src := make([]int, len(perm))
	for i := range o.data {
		idx := unravel(i, sh)
		for j, p := range perm {
			src[p] = idx[j]
		}
		o.data[i] = t.at(src)
	}
	return o
}

// reduceND folds the given (non-negative, distinct) axes.
func reduceND(t nd, axes []int, keep bool, init float64, f func(acc, v float64) float64) nd {
	red := map[int]bool{}
	for _, a := range axes {
		red[a] = true
	}
	var osh, ksh []int
	for d, n := range t.shape {
		if red[d] {
			ksh = append(ksh, 1)
		} else {
			osh = append(osh, n)
			ksh = append(ksh, n)
		}
	}
	o := nd{shape: ksh, data: make([]float64, size(ksh))}
	for i := range o.data {
		o.data[i] = init
	}
	kst := strides(ksh)
	for i, v := range t.data {
		idx := unravel(i, t.shape)
		off := 0
		for d := range idx {
			if !red[d] {
				off += idx[d] * kst[d]
			}
		}
		o.data[off] = f(o.data[off], v)
	}
	if !keep {
		o.shape = osh
	}
	return o
}

func close32(t *testing.T, name string, got []float32, want nd, tol float64) {
	t.Helper()
	if len(got) != len(want.data) {
		t.Fatalf("%s: got %d elements, want %d", name, len(got), len(want.data))
	}
	for i, g := range got {
		w := want.data[i]
		if math.IsNaN(w) && math.IsNaN(float64(g)) {
			continue
		}
		if math.IsInf(w, 0) && float64(g) == w {
			continue
		}
		if d := math.Abs(float64(g) - w); d > tol*(1+math.Abs(w)) {
			t.Fatalf("%s: element %d (index %v): got %v, want %v", name, i, unravel(i, want.shape), g, w)
		}
	}
}

func eqShape(t *testing.T, name string, got, want []int) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: shape %v, want %v", name, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: shape %v, want %v", name, got, want)
		}
	}
}

// do runs fn on the executor and fails the test on any error.
func do(t *testing.T, fn func(s *Scope)) {
	t.Helper()
	if err := Do(func(s *Scope) error { fn(s); return s.Err() }); err != nil {
		t.Fatal(err)
	}
}

func (s *Scope) fromND(t nd) *Array { return s.FromFloat32s(t.f32(), t.shape...) }

// checkND compares an MLX array against the reference, shape included.
func (s *Scope) checkND(t *testing.T, name string, a *Array, want nd, tol float64) {
	t.Helper()
	if err := s.Err(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	eqShape(t, name, a.Shape(), want.shape)
	close32(t, name, s.Float32s(a), want, tol)
}
