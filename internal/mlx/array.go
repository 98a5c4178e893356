package mlx

import (
	"fmt"
	"unsafe"
)

func checkShape(n int, shape []int) error {
	p := 1
	for _, d := range shape {
		if d < 0 {
			return fmt.Errorf("negative dimension in shape %v", shape)
		}
		p *= d
	}
	if p != n {
		return fmt.Errorf("%d elements do not fill shape %v", n, shape)
	}
	return nil
}

func fromSlice[T any](s *Scope, op string, data []T, dt Dtype, shape []int) *Array {
	if !s.ok(op) {
		return nil
	}
	if err := checkShape(len(data), shape); err != nil {
		s.failf(op, err)
		return nil
	}
	var p unsafe.Pointer
	if len(data) > 0 {
		p = unsafe.Pointer(&data[0])
	}
	var zero T
	h, err := libFromData(p, len(data)*int(unsafe.Sizeof(zero)), shape, dt)
	return s.result(op, h, err)
}

// FromFloat32s copies data into a new float32 array of the given shape.
func (s *Scope) FromFloat32s(data []float32, shape ...int) *Array {
	return fromSlice(s, "from_float32s", data, Float32, shape)
}

// FromFloat64s copies data into a new float64 array (float64 is CPU-only in MLX).
func (s *Scope) FromFloat64s(data []float64, shape ...int) *Array {
	return fromSlice(s, "from_float64s", data, Float64, shape)
}

// FromInt32s copies data into a new int32 array.
func (s *Scope) FromInt32s(data []int32, shape ...int) *Array {
	return fromSlice(s, "from_int32s", data, Int32, shape)
}

// FromInt64s copies data into a new int64 array.
func (s *Scope) FromInt64s(data []int64, shape ...int) *Array {
	return fromSlice(s, "from_int64s", data, Int64, shape)
}

// FromBools copies data into a new bool array.
func (s *Scope) FromBools(data []bool, shape ...int) *Array {
	return fromSlice(s, "from_bools", data, Bool, shape)
}

// FromBytes copies raw little-endian element bytes of dtype dt.
func (s *Scope) FromBytes(data []byte, dt Dtype, shape ...int) *Array {
	const op = "from_bytes"
	if !s.ok(op) {
		return nil
	}
	if !dt.Valid() {
		s.failf(op, fmt.Errorf("unknown dtype %d", int(dt)))
		return nil
	}
	n := 1
	for _, d := range shape {
		if d < 0 {
			s.failf(op, fmt.Errorf("negative dimension in shape %v", shape))
			return nil
		}
		n *= d
	}
	if n*dt.Size() != len(data) {
		s.failf(op, fmt.Errorf("%d bytes do not fill %v %v", len(data), dt, shape))
		return nil
	}
	var p unsafe.Pointer
	if len(data) > 0 {
		p = unsafe.Pointer(&data[0])
	}
	h, err := libFromData(p, len(data), shape, dt)
	return s.result(op, h, err)
}

// Scalar makes a 0-d array of dtype dt holding v.
func (s *Scope) Scalar(v float64, dt Dtype) *Array {
	if !s.ok("scalar") {
		return nil
	}
	h, err := libScalar(v, dt)
	return s.result("scalar", h, err)
}

// Eval computes the arrays (and everything they depend on).
func (s *Scope) Eval(as ...*Array) {
	if !s.ok("eval", as...) {
		return
	}
	hs := make([]hnd, len(as))
	for i, a := range as {
		hs[i] = a.h
	}
	if err := libEval(hs); err != nil {
		s.failf("eval", err)
	}
}

func readAs[T any](s *Scope, op string, a *Array, want Dtype) []T {
	if !s.ok(op, a) {
		return nil
	}
	src := a
	if a.Dtype() != want {
		h, err := libAsType(a.h, want)
		if err != nil {
			s.failf(op, err)
			return nil
		}
		defer libFree(h)
		src = &Array{h: h}
	}
	// Evaluate before allocating the Go copy, so a result too large to compute
	// fails as an error in the shim rather than as a Go out-of-memory crash.
	if err := libEval([]hnd{src.h}); err != nil {
		s.failf(op, err)
		return nil
	}
	out := make([]T, src.Size())
	var p unsafe.Pointer
	if len(out) > 0 {
		p = unsafe.Pointer(&out[0])
	}
	var zero T
	if err := libRead(src.h, p, len(out)*int(unsafe.Sizeof(zero))); err != nil {
		s.failf(op, err)
		return nil
	}
	return out
}

// Float32s evaluates a and returns its elements row-major, cast to float32.
func (s *Scope) Float32s(a *Array) []float32 { return readAs[float32](s, "float32s", a, Float32) }

// Float64s evaluates a and returns its elements cast to float64.
func (s *Scope) Float64s(a *Array) []float64 { return readAs[float64](s, "float64s", a, Float64) }

// Int32s evaluates a and returns its elements cast to int32.
func (s *Scope) Int32s(a *Array) []int32 { return readAs[int32](s, "int32s", a, Int32) }

// Int64s evaluates a and returns its elements cast to int64.
func (s *Scope) Int64s(a *Array) []int64 { return readAs[int64](s, "int64s", a, Int64) }

// Bools evaluates a and returns its elements cast to bool.
func (s *Scope) Bools(a *Array) []bool { return readAs[bool](s, "bools", a, Bool) }

// Bytes evaluates a and returns its raw little-endian element bytes in its
// own dtype, row-major.
func (s *Scope) Bytes(a *Array) []byte {
	if !s.ok("bytes", a) {
		return nil
	}
	if err := libEval([]hnd{a.h}); err != nil {
		s.failf("bytes", err)
		return nil
	}
	out := make([]byte, a.Size()*a.Dtype().Size())
	var p unsafe.Pointer
	if len(out) > 0 {
		p = unsafe.Pointer(&out[0])
	}
	if err := libRead(a.h, p, len(out)); err != nil {
		s.failf("bytes", err)
		return nil
	}
	return out
}
