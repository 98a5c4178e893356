package ref

import (
	"fmt"

	"github.com/of3c/of3c/internal/shapes"
)

// broadcastShapes applies numpy (ONNX multidirectional) broadcasting and
// checks the result's size.
func broadcastShapes(ss ...[]int64) ([]int64, error) {
	out, err := shapes.Broadcast(ss...)
	if err != nil {
		return nil, err
	}
	if err := checkShape(out); err != nil {
		return nil, err
	}
	return out, nil
}

// broadcastStrides gives, for an input of shape in read as if it had shape
// out, the stride of each of out's dims (0 where the input is broadcast).
func broadcastStrides(in, out []int64) []int64 {
	st := make([]int64, len(out))
	inSt := strides(in)
	off := len(out) - len(in)
	for k := range in {
		if in[k] != 1 || out[off+k] == 1 {
			st[off+k] = inSt[k]
		}
	}
	return st
}

// broadcastIndex calls fn for every element of out, in row-major order, with
// the matching flat index into each input.
func broadcastIndex(out []int64, ins [][]int64, fn func(o int, idx []int)) {
	total := int(shapes.Prod(out))
	idx := make([]int, len(ins))
	same := true
	for _, s := range ins {
		if !equalShape(s, out) {
			same = false
		}
	}
	if same {
		for o := 0; o < total; o++ {
			for k := range idx {
				idx[k] = o
			}
			fn(o, idx)
		}
		return
	}
	st := make([][]int64, len(ins))
	for k, s := range ins {
		st[k] = broadcastStrides(s, out)
	}
	counter := make([]int64, len(out))
	for o := 0; o < total; o++ {
		fn(o, idx)
		// Advance the odometer and the input offsets with it.
		for d := len(out) - 1; d >= 0; d-- {
			counter[d]++
			for k := range idx {
				idx[k] += int(st[k][d])
			}
			if counter[d] < out[d] {
				break
			}
			for k := range idx {
				idx[k] -= int(st[k][d] * out[d])
			}
			counter[d] = 0
		}
	}
}

func equalShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if a[k] != b[k] {
			return false
		}
	}
	return true
}

// broadcastTo materializes a with shape out (a must broadcast to it).
func broadcastTo(a *array, out []int64) (*array, error) {
	full, err := broadcastShapes(a.shape, out)
	if err != nil || !equalShape(full, out) {
		return nil, fmt.Errorf("shape %v does not broadcast to %v", a.shape, out)
	}
	if equalShape(a.shape, out) {
		return a, nil
	}
	r := newArray(a.dt, out)
	broadcastIndex(out, [][]int64{a.shape}, func(o int, idx []int) { copyElem(r, o, a, idx[0]) })
	return r, nil
}
