package graph

import (
	"fmt"
	"strconv"
	"strings"
)

// Dim is one dimension of a shape: a known size, a named symbol (such as N or
// S, from an ONNX dim_param or derived by shape inference, e.g. "N*N"), or
// unknown.
//
// Symbolic expressions are kept in a canonical text form produced by the
// symbolic arithmetic in symbolic.go, so two dims are equal exactly when their
// Sym strings are equal.
type Dim struct {
	Val int64  // the size when Sym == "" and Val >= 0
	Sym string // a symbolic size when non-empty
}

// Unknown is a dimension nothing is known about.
var Unknown = Dim{Val: -1}

// D returns a static dimension.
func D(v int64) Dim { return Dim{Val: v} }

// S returns a symbolic dimension.
func S(sym string) Dim { return Dim{Val: -1, Sym: sym} }

func (d Dim) IsStatic() bool   { return d.Sym == "" && d.Val >= 0 }
func (d Dim) IsSymbolic() bool { return d.Sym != "" }
func (d Dim) IsUnknown() bool  { return d.Sym == "" && d.Val < 0 }

// Equal reports whether two dims are known to be the same size.
func (d Dim) Equal(o Dim) bool {
	if d.IsUnknown() || o.IsUnknown() {
		return false
	}
	return d.Sym == o.Sym && (d.Sym != "" || d.Val == o.Val)
}

func (d Dim) String() string {
	switch {
	case d.Sym != "":
		return d.Sym
	case d.Val >= 0:
		return strconv.FormatInt(d.Val, 10)
	}
	return "?"
}

// Shape is a list of dims. A nil Shape with Ranked false means the rank is
// unknown; see Type.
type Shape []Dim

// StaticShape builds a fully static shape.
func StaticShape(dims ...int64) Shape {
	s := make(Shape, len(dims))
	for i, v := range dims {
		s[i] = D(v)
	}
	return s
}

// IsStatic reports whether every dim is a known number.
func (s Shape) IsStatic() bool {
	for _, d := range s {
		if !d.IsStatic() {
			return false
		}
	}
	return true
}

// Ints returns the static sizes; ok is false if some dim is not static.
func (s Shape) Ints() (dims []int64, ok bool) {
	dims = make([]int64, len(s))
	for i, d := range s {
		if !d.IsStatic() {
			return nil, false
		}
		dims[i] = d.Val
	}
	return dims, true
}

// NumElements returns the element count of a static shape.
func (s Shape) NumElements() (int64, bool) {
	n := int64(1)
	for _, d := range s {
		if !d.IsStatic() {
			return 0, false
		}
		n *= d.Val
	}
	return n, true
}

func (s Shape) Clone() Shape {
	if s == nil {
		return nil
	}
	return append(Shape{}, s...)
}

func (s Shape) Equal(o Shape) bool {
	if len(s) != len(o) {
		return false
	}
	for i := range s {
		if s[i] != o[i] {
			return false
		}
	}
	return true
}

func (s Shape) String() string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = d.String()
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// Type is the static type of a value: element type and shape.
// Ranked is false when even the rank is unknown (Shape is then nil).
type Type struct {
	DType  DType
	Shape  Shape
	Ranked bool
}

// TensorType builds a ranked type.
func TensorType(dt DType, shape Shape) Type { return Type{DType: dt, Shape: shape, Ranked: true} }

// Rank returns the rank, or -1 when unknown.
func (t Type) Rank() int {
	if !t.Ranked {
		return -1
	}
	return len(t.Shape)
}

func (t Type) String() string {
	if !t.Ranked {
		return t.DType.String() + "[*]"
	}
	return t.DType.String() + t.Shape.String()
}

func (t Type) Equal(o Type) bool {
	return t.DType == o.DType && t.Ranked == o.Ranked && t.Shape.Equal(o.Shape)
}

// ParseType parses the text form written by Type.String, e.g. "f32[N,N,128]",
// "i64[]" (a scalar), "f32[*]" (unknown rank), "f32[?,4]".
func ParseType(s string) (Type, error) {
	i := strings.IndexByte(s, '[')
	if i < 0 || !strings.HasSuffix(s, "]") {
		return Type{}, fmt.Errorf("type %q: want dtype[dims]", s)
	}
	dt, err := ParseDType(s[:i])
	if err != nil {
		return Type{}, err
	}
	body := s[i+1 : len(s)-1]
	if body == "*" {
		return Type{DType: dt}, nil
	}
	shape := Shape{}
	if body != "" {
		for _, p := range strings.Split(body, ",") {
			p = strings.TrimSpace(p)
			switch {
			case p == "?":
				shape = append(shape, Unknown)
			case p == "":
				return Type{}, fmt.Errorf("type %q: empty dim", s)
			default:
				if v, err := strconv.ParseInt(p, 10, 64); err == nil {
					if v < 0 {
						return Type{}, fmt.Errorf("type %q: negative dim %d", s, v)
					}
					shape = append(shape, D(v))
				} else {
					shape = append(shape, S(p))
				}
			}
		}
	}
	return TensorType(dt, shape), nil
}
