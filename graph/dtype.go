package graph

import "fmt"

// DType is an element type. The numeric values equal ONNX's
// TensorProto.DataType so that import and export need no table.
type DType int32

const (
	Undefined  DType = 0
	Float32    DType = 1
	Uint8      DType = 2
	Int8       DType = 3
	Uint16     DType = 4
	Int16      DType = 5
	Int32      DType = 6
	Int64      DType = 7
	String     DType = 8
	Bool       DType = 9
	Float16    DType = 10
	Float64    DType = 11
	Uint32     DType = 12
	Uint64     DType = 13
	Complex64  DType = 14
	Complex128 DType = 15
	BFloat16   DType = 16
)

var dtypeNames = map[DType]string{
	Undefined: "undef", Float32: "f32", Uint8: "u8", Int8: "i8", Uint16: "u16", Int16: "i16",
	Int32: "i32", Int64: "i64", String: "str", Bool: "bool", Float16: "f16", Float64: "f64",
	Uint32: "u32", Uint64: "u64", Complex64: "c64", Complex128: "c128", BFloat16: "bf16",
}

// String is the short name used in the IR text form (f32, i64, bf16, ...).
func (d DType) String() string {
	if s, ok := dtypeNames[d]; ok {
		return s
	}
	return fmt.Sprintf("dtype(%d)", int32(d))
}

// ParseDType is the inverse of DType.String.
func ParseDType(s string) (DType, error) {
	for d, n := range dtypeNames {
		if n == s {
			return d, nil
		}
	}
	return Undefined, fmt.Errorf("unknown dtype %q", s)
}

// Size is the byte width of one element, 0 for types without a fixed width.
func (d DType) Size() int {
	switch d {
	case Bool, Uint8, Int8:
		return 1
	case Float16, BFloat16, Int16, Uint16:
		return 2
	case Float32, Int32, Uint32:
		return 4
	case Float64, Int64, Uint64, Complex64:
		return 8
	case Complex128:
		return 16
	}
	return 0
}

// IsFloat reports whether d is a real floating-point type.
func (d DType) IsFloat() bool {
	return d == Float32 || d == Float16 || d == BFloat16 || d == Float64
}

// IsInt reports whether d is a (signed or unsigned) integer type.
func (d DType) IsInt() bool {
	switch d {
	case Int8, Int16, Int32, Int64, Uint8, Uint16, Uint32, Uint64:
		return true
	}
	return false
}
