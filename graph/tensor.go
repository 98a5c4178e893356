package graph

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Tensor is a dense constant: element type, static shape and the elements as
// little-endian bytes in row-major order (ONNX raw_data layout). Bool is one
// byte per element; float16/bfloat16 are their 16-bit patterns.
//
// Data may be shared between tensors (e.g. views of one weights file); treat
// it as read-only.
type Tensor struct {
	DType DType
	Shape []int64
	Data  []byte
}

// NumElements is the product of the shape (1 for a scalar).
func (t *Tensor) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Type returns the tensor's static type.
func (t *Tensor) Type() Type { return TensorType(t.DType, StaticShape(t.Shape...)) }

// Validate checks that Data has exactly the bytes the shape needs.
func (t *Tensor) Validate() error {
	sz := t.DType.Size()
	if sz == 0 {
		return fmt.Errorf("tensor of unsupported dtype %s", t.DType)
	}
	n := int64(1)
	for _, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("tensor with negative dim %v", t.Shape)
		}
		if d > 0 && n > math.MaxInt64/d {
			return fmt.Errorf("tensor shape %v overflows", t.Shape)
		}
		n *= d
	}
	if n > math.MaxInt64/int64(sz) || int64(len(t.Data)) != n*int64(sz) {
		return fmt.Errorf("tensor %s%v: %d data bytes, want %d", t.DType, t.Shape, len(t.Data), n*int64(sz))
	}
	return nil
}

// Float64s decodes any numeric tensor to float64 (bool as 0/1).
func (t *Tensor) Float64s() ([]float64, error) {
	n := int(t.NumElements())
	out := make([]float64, n)
	b := t.Data
	le := binary.LittleEndian
	switch t.DType {
	case Float32:
		for i := range out {
			out[i] = float64(math.Float32frombits(le.Uint32(b[4*i:])))
		}
	case Float64:
		for i := range out {
			out[i] = math.Float64frombits(le.Uint64(b[8*i:]))
		}
	case Float16:
		for i := range out {
			out[i] = float64(HalfToFloat32(le.Uint16(b[2*i:])))
		}
	case BFloat16:
		for i := range out {
			out[i] = float64(BF16ToFloat32(le.Uint16(b[2*i:])))
		}
	default:
		ints, err := t.Int64s()
		if err != nil {
			return nil, err
		}
		for i, v := range ints {
			out[i] = float64(v)
		}
	}
	return out, nil
}

// Int64s decodes an integer or bool tensor to int64.
func (t *Tensor) Int64s() ([]int64, error) {
	n := int(t.NumElements())
	out := make([]int64, n)
	b := t.Data
	le := binary.LittleEndian
	switch t.DType {
	case Int64:
		for i := range out {
			out[i] = int64(le.Uint64(b[8*i:]))
		}
	case Int32:
		for i := range out {
			out[i] = int64(int32(le.Uint32(b[4*i:])))
		}
	case Int16:
		for i := range out {
			out[i] = int64(int16(le.Uint16(b[2*i:])))
		}
	case Int8:
		for i := range out {
			out[i] = int64(int8(b[i]))
		}
	case Uint8, Bool:
		for i := range out {
			out[i] = int64(b[i])
		}
	case Uint16:
		for i := range out {
			out[i] = int64(le.Uint16(b[2*i:]))
		}
	case Uint32:
		for i := range out {
			out[i] = int64(le.Uint32(b[4*i:]))
		}
	case Uint64:
		for i := range out {
			out[i] = int64(le.Uint64(b[8*i:]))
		}
	default:
		return nil, fmt.Errorf("tensor of dtype %s is not an integer tensor", t.DType)
	}
	return out, nil
}

// NewTensorF32 builds a float32 tensor.
func NewTensorF32(shape []int64, vals []float32) *Tensor {
	b := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return &Tensor{DType: Float32, Shape: append([]int64{}, shape...), Data: b}
}

// NewTensorI64 builds an int64 tensor.
func NewTensorI64(shape []int64, vals []int64) *Tensor {
	b := make([]byte, 8*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(v))
	}
	return &Tensor{DType: Int64, Shape: append([]int64{}, shape...), Data: b}
}

// NewTensorFromFloat64s encodes float64 values as a tensor of dtype dt
// (any numeric type or bool; integers are truncated toward zero).
func NewTensorFromFloat64s(dt DType, shape []int64, vals []float64) (*Tensor, error) {
	sz := dt.Size()
	if sz == 0 || dt == String || dt == Complex64 || dt == Complex128 {
		return nil, fmt.Errorf("cannot build a %s tensor", dt)
	}
	b := make([]byte, sz*len(vals))
	le := binary.LittleEndian
	for i, v := range vals {
		switch dt {
		case Float32:
			le.PutUint32(b[4*i:], math.Float32bits(float32(v)))
		case Float64:
			le.PutUint64(b[8*i:], math.Float64bits(v))
		case Float16:
			le.PutUint16(b[2*i:], Float32ToHalf(float32(v)))
		case BFloat16:
			le.PutUint16(b[2*i:], Float32ToBF16(float32(v)))
		case Bool:
			if v != 0 {
				b[i] = 1
			}
		case Int8, Uint8:
			b[i] = byte(int64(v))
		case Int16, Uint16:
			le.PutUint16(b[2*i:], uint16(int64(v)))
		case Int32, Uint32:
			le.PutUint32(b[4*i:], uint32(int64(v)))
		case Int64:
			le.PutUint64(b[8*i:], uint64(int64(v)))
		case Uint64:
			le.PutUint64(b[8*i:], uint64(v))
		}
	}
	return &Tensor{DType: dt, Shape: append([]int64{}, shape...), Data: b}, nil
}

// HalfToFloat32 converts an IEEE 754 binary16 bit pattern to float32.
func HalfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: renormalize
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		mant &= 0x3ff
		return math.Float32frombits(sign | e<<23 | mant<<13)
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// Float32ToHalf converts float32 to binary16 with round-to-nearest-even.
func Float32ToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff { // inf or nan
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign
		}
		mant |= 0x800000
		shift := uint32(14 - e)
		half := mant >> shift
		rem := mant & (1<<shift - 1)
		mid := uint32(1) << (shift - 1)
		if rem > mid || (rem == mid && half&1 == 1) {
			half++
		}
		return sign | uint16(half)
	}
	half := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && half&1 == 1) {
		half++ // may carry into the exponent, which is the right result
	}
	return sign | uint16(half)
}

// BF16ToFloat32 converts a bfloat16 bit pattern to float32.
func BF16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// Float32ToBF16 converts float32 to bfloat16 with round-to-nearest-even.
func Float32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 { // nan stays nan
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}
