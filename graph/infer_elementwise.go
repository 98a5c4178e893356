package graph

import "fmt"

// Elementwise ops: unary math and activations, broadcasting binary
// arithmetic, comparisons and logic, variadic Max/Min/Sum/Mean, Where, Clip,
// Cast/CastLike. Arithmetic on small integer tensors also computes their
// ShapeValue, which is how torch's size arithmetic (Shape → Mul/Div →
// Concat → Reshape) keeps symbolic dims.

func init() {
	// Unary ops whose output has the input's type. The version is the oldest
	// opset whose semantics the rule (and the reference executor) follow;
	// attribute-only differences (alpha, beta, ...) do not change the shape.
	unary := []struct {
		op    string
		since int64
	}{
		{"Sqrt", 6}, {"Exp", 6}, {"Log", 6}, {"Tanh", 6}, {"Erf", 9}, {"Sigmoid", 6},
		{"Relu", 6}, {"Neg", 6}, {"Abs", 6}, {"Reciprocal", 6}, {"Floor", 6}, {"Ceil", 6},
		{"Round", 11}, {"Sign", 9}, {"Softplus", 1}, {"Softsign", 1}, {"Sin", 7}, {"Cos", 7},
		{"Tan", 7}, {"Asin", 7}, {"Acos", 7}, {"Atan", 7}, {"Sinh", 9}, {"Cosh", 9},
		{"Asinh", 9}, {"Acosh", 9}, {"Atanh", 9}, {"HardSigmoid", 6}, {"HardSwish", 14},
		{"LeakyRelu", 6}, {"Elu", 6}, {"Selu", 6}, {"Celu", 12}, {"Mish", 18},
		{"ThresholdedRelu", 10}, {"Gelu", 20}, {"Shrink", 9},
	}
	for _, u := range unary {
		op := u.op
		reg(op, u.since, 1, 1, 1, 1, func(n *Node) ([]Type, []Shape, error) {
			t, err := input(n, 0)
			if err != nil {
				return nil, nil, err
			}
			if op == "Gelu" {
				if a := n.AttrString("approximate", "none"); a != "none" && a != "tanh" {
					return nil, nil, fmt.Errorf("approximate=%q, want none or tanh", a)
				}
			}
			var sv []Shape
			if op == "Neg" && tracksValues(t) {
				sv = svUnary(n, func(d Dim) Dim { return DimSub(D(0), d) })
			}
			return one(withDType(t, t.DType)), sv, nil
		})
	}

	// Bool-valued unary predicates.
	for _, p := range []struct {
		op    string
		since int64
	}{{"IsNaN", 9}, {"IsInf", 10}} {
		reg(p.op, p.since, 1, 1, 1, 1, func(n *Node) ([]Type, []Shape, error) {
			t, err := input(n, 0)
			if err != nil {
				return nil, nil, err
			}
			return one(withDType(t, Bool)), nil, nil
		})
	}
	reg("Not", 1, 1, 1, 1, 1, func(n *Node) ([]Type, []Shape, error) {
		t, err := input(n, 0)
		if err != nil {
			return nil, nil, err
		}
		if t.DType != Undefined && t.DType != Bool {
			return nil, nil, fmt.Errorf("input is %s, want bool", t.DType)
		}
		var sv []Shape
		if tracksValues(t) {
			sv = svUnary(n, func(d Dim) Dim {
				if v, ok := DimInt(d); ok {
					return D(boolInt(v == 0))
				}
				return Unknown
			})
		}
		return one(withDType(t, Bool)), sv, nil
	})

	// Broadcasting binary arithmetic (multidirectional since opset 7).
	arith := map[string]func(a, b Dim) Dim{
		"Add": DimAdd, "Sub": DimSub, "Mul": DimMul, "Div": divValues, "Mod": modValues,
	}
	for _, op := range []string{"Add", "Sub", "Mul", "Div", "Mod", "Pow"} {
		op := op
		since := int64(7)
		switch op {
		case "Mod":
			since = 10
		}
		reg(op, since, 2, 2, 1, 1, func(n *Node) ([]Type, []Shape, error) {
			a, err := input(n, 0)
			if err != nil {
				return nil, nil, err
			}
			b, err := input(n, 1)
			if err != nil {
				return nil, nil, err
			}
			dt := a.DType
			if op != "Pow" { // Pow's exponent may have another type
				if dt, err = sameDType(n, 0, 1); err != nil {
					return nil, nil, err
				}
			}
			out, err := broadcastTypes(dt, a, b)
			if err != nil {
				return nil, nil, err
			}
			var sv []Shape
			if f := arith[op]; f != nil && tracksValues(out) && !(op == "Mod" && n.AttrInt("fmod", 0) != 0) {
				sv = svBinary(n, f)
			}
			return one(out), sv, nil
		})
	}

	// PRelu: slope broadcasts to X (unidirectional), the output is X's type.
	reg("PRelu", 7, 2, 2, 1, 1, func(n *Node) ([]Type, []Shape, error) {
		x, err := input(n, 0)
		if err != nil {
			return nil, nil, err
		}
		s, err := input(n, 1)
		if err != nil {
			return nil, nil, err
		}
		if err := unidirectional(s, x, "slope"); err != nil {
			return nil, nil, err
		}
		return one(withDType(x, x.DType)), nil, nil
	})

	// Comparisons and logic: broadcasting, bool result.
	cmp := map[string]func(a, b Dim) Dim{
		"Equal":          cmpValues(func(c int) bool { return c == 0 }),
		"Less":           cmpValues(func(c int) bool { return c < 0 }),
		"LessOrEqual":    cmpValues(func(c int) bool { return c <= 0 }),
		"Greater":        cmpValues(func(c int) bool { return c > 0 }),
		"GreaterOrEqual": cmpValues(func(c int) bool { return c >= 0 }),
		"And":            logicValues(func(a, b bool) bool { return a && b }),
		"Or":             logicValues(func(a, b bool) bool { return a || b }),
		"Xor":            logicValues(func(a, b bool) bool { return a != b }),
	}
	for _, op := range []string{"Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or", "Xor"} {
		op := op
		since := int64(7)
		if op == "LessOrEqual" || op == "GreaterOrEqual" {
			since = 12
		}
		logic := op == "And" || op == "Or" || op == "Xor"
		reg(op, since, 2, 2, 1, 1, func(n *Node) ([]Type, []Shape, error) {
			a, err := input(n, 0)
			if err != nil {
				return nil, nil, err
			}
			b, err := input(n, 1)
			if err != nil {
				return nil, nil, err
			}
			dt, err := sameDType(n, 0, 1)
			if err != nil {
				return nil, nil, err
			}
			if logic && dt != Undefined && dt != Bool {
				return nil, nil, fmt.Errorf("inputs are %s, want bool", dt)
			}
			out, err := broadcastTypes(Bool, a, b)
			if err != nil {
				return nil, nil, err
			}
			var sv []Shape
			if tracksValues(out) {
				sv = svBinary(n, cmp[op])
			}
			return one(out), sv, nil
		})
	}

	// Variadic broadcasting ops (opset 8 added broadcasting; in opset 6 the
	// inputs must already have equal shapes, which broadcasting accepts).
	variadic := map[string]func(a, b Dim) Dim{
		"Max": extremumValues(true), "Min": extremumValues(false), "Sum": DimAdd,
	}
	for _, op := range []string{"Max", "Min", "Sum", "Mean"} {
		op := op
		reg(op, 6, 1, -1, 1, 1, func(n *Node) ([]Type, []Shape, error) {
			idx := make([]int, len(n.Inputs))
			ts := make([]Type, len(n.Inputs))
			for i := range n.Inputs {
				t, err := input(n, i)
				if err != nil {
					return nil, nil, err
				}
				idx[i], ts[i] = i, t
			}
			dt, err := sameDType(n, idx...)
			if err != nil {
				return nil, nil, err
			}
			out, err := broadcastTypes(dt, ts...)
			if err != nil {
				return nil, nil, err
			}
			var sv []Shape
			if f := variadic[op]; f != nil && tracksValues(out) {
				sv = svFold(n, f)
			}
			return one(out), sv, nil
		})
	}

	reg("Where", 9, 3, 3, 1, 1, func(n *Node) ([]Type, []Shape, error) {
		var ts [3]Type
		for i := range ts {
			t, err := input(n, i)
			if err != nil {
				return nil, nil, err
			}
			ts[i] = t
		}
		if ts[0].DType != Undefined && ts[0].DType != Bool {
			return nil, nil, fmt.Errorf("condition is %s, want bool", ts[0].DType)
		}
		dt, err := sameDType(n, 1, 2)
		if err != nil {
			return nil, nil, err
		}
		out, err := broadcastTypes(dt, ts[0], ts[1], ts[2])
		if err != nil {
			return nil, nil, err
		}
		var sv []Shape
		if tracksValues(out) {
			sv = svWhere(n)
		}
		return one(out), sv, nil
	})

	// Clip: min/max are attributes before opset 11 and optional scalar
	// inputs from 11 on.
	reg("Clip", 6, 1, 3, 1, 1, func(n *Node) ([]Type, []Shape, error) {
		t, err := input(n, 0)
		if err != nil {
			return nil, nil, err
		}
		if n.Opset != 0 && n.Opset < 11 && len(n.Inputs) > 1 {
			return nil, nil, fmt.Errorf("opset %d Clip takes min/max as attributes, not inputs", n.Opset)
		}
		if _, err := sameDType(n, 0, 1, 2); err != nil {
			return nil, nil, err
		}
		for i := 1; i < 3; i++ {
			if v := n.Input(i); v != nil && v.Type.Ranked && len(v.Type.Shape) > 0 {
				if ne, ok := v.Type.Shape.NumElements(); !ok || ne != 1 {
					return nil, nil, fmt.Errorf("input %d has shape %s, want a scalar", i, v.Type.Shape)
				}
			}
		}
		return one(withDType(t, t.DType)), nil, nil
	})

	reg("Cast", 6, 1, 1, 1, 1, func(n *Node) ([]Type, []Shape, error) {
		t, err := input(n, 0)
		if err != nil {
			return nil, nil, err
		}
		a, ok := n.Attrs["to"]
		if !ok || a.Kind != AttrInt {
			return nil, nil, fmt.Errorf("attribute to (int) is required")
		}
		to := DType(a.Int)
		if _, known := dtypeNames[to]; !known || to == Undefined {
			return nil, nil, fmt.Errorf("to=%d is not a supported dtype", a.Int)
		}
		out := withDType(t, to)
		var sv []Shape
		if tracksValues(out) && (t.DType.IsInt() || t.DType == Bool) {
			sv = castValues(n, to)
		}
		return one(out), sv, nil
	})

	reg("CastLike", 15, 2, 2, 1, 1, func(n *Node) ([]Type, []Shape, error) {
		t, err := input(n, 0)
		if err != nil {
			return nil, nil, err
		}
		like, err := input(n, 1)
		if err != nil {
			return nil, nil, err
		}
		out := withDType(t, like.DType)
		var sv []Shape
		if tracksValues(out) && (t.DType.IsInt() || t.DType == Bool) {
			sv = castValues(n, like.DType)
		}
		return one(out), sv, nil
	})
}

// unidirectional checks that from broadcasts to to without changing it.
func unidirectional(from, to Type, what string) error {
	if !from.Ranked || !to.Ranked {
		return nil
	}
	if len(from.Shape) > len(to.Shape) {
		return fmt.Errorf("%s %s has higher rank than the input %s", what, from.Shape, to.Shape)
	}
	off := len(to.Shape) - len(from.Shape)
	for i, d := range from.Shape {
		t := to.Shape[off+i]
		if d.IsStatic() && t.IsStatic() && d.Val != 1 && d.Val != t.Val {
			return fmt.Errorf("%s %s does not broadcast to %s", what, from.Shape, to.Shape)
		}
	}
	return nil
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// svUnary maps the shape value of input 0.
func svUnary(n *Node, f func(Dim) Dim) []Shape {
	sv, ok := shapeValue(n.Input(0))
	if !ok {
		return nil
	}
	out := make(Shape, len(sv))
	for i, d := range sv {
		out[i] = f(d)
	}
	return svOut(out)
}

// svBroadcast combines shape values elementwise; the inputs are flattened
// rank-0/1 tensors, so broadcasting is by length (1 repeats).
func svBroadcast(f func(ds []Dim) Dim, vals ...Shape) Shape {
	l := 1
	for _, v := range vals {
		if len(v) != 1 {
			if l != 1 && len(v) != l {
				return nil
			}
			l = len(v)
		}
	}
	out := make(Shape, l)
	args := make([]Dim, len(vals))
	for i := range out {
		for k, v := range vals {
			if len(v) == 1 {
				args[k] = v[0]
			} else {
				args[k] = v[i]
			}
		}
		out[i] = f(args)
	}
	return out
}

func svBinary(n *Node, f func(a, b Dim) Dim) []Shape {
	a, ok1 := shapeValue(n.Input(0))
	b, ok2 := shapeValue(n.Input(1))
	if !ok1 || !ok2 || len(a) == 0 || len(b) == 0 {
		return nil
	}
	return svOut(svBroadcast(func(ds []Dim) Dim { return f(ds[0], ds[1]) }, a, b))
}

func svFold(n *Node, f func(a, b Dim) Dim) []Shape {
	vals := make([]Shape, len(n.Inputs))
	for i, in := range n.Inputs {
		v, ok := shapeValue(in)
		if !ok || len(v) == 0 {
			return nil
		}
		vals[i] = v
	}
	return svOut(svBroadcast(func(ds []Dim) Dim {
		acc := ds[0]
		for _, d := range ds[1:] {
			acc = f(acc, d)
		}
		return acc
	}, vals...))
}

func svWhere(n *Node) []Shape {
	var vals [3]Shape
	for i := range vals {
		v, ok := shapeValue(n.Input(i))
		if !ok || len(v) == 0 {
			return nil
		}
		vals[i] = v
	}
	return svOut(svBroadcast(func(ds []Dim) Dim {
		c, ok := DimInt(ds[0])
		if !ok {
			return Unknown
		}
		if c != 0 {
			return ds[1]
		}
		return ds[2]
	}, vals[0], vals[1], vals[2]))
}

// castValues converts a shape value to another integer type: values that do
// not fit the narrower type are dropped to Unknown.
func castValues(n *Node, to DType) []Shape {
	if !(to.IsInt() || to == Bool) {
		return nil
	}
	return svUnary(n, func(d Dim) Dim {
		v, ok := DimInt(d)
		if !ok {
			if to == Int64 || to == Int32 {
				return d // symbolic sizes fit (and torch casts them to i64 and back)
			}
			return Unknown
		}
		switch to {
		case Bool:
			return D(boolInt(v != 0))
		case Int32:
			if v != int64(int32(v)) {
				return Unknown
			}
		case Int8, Int16, Uint8, Uint16, Uint32, Uint64:
			return Unknown // rare for sizes; keep the value rule simple
		}
		return IntDim(v)
	})
}

// divValues is integer division on known values (truncating, as integer
// Div does) and exact division on symbolic ones.
func divValues(a, b Dim) Dim {
	x, ok1 := DimInt(a)
	y, ok2 := DimInt(b)
	if ok1 && ok2 {
		if y == 0 {
			return Unknown
		}
		return IntDim(x / y)
	}
	if q, ok := DimDivExact(a, b); ok {
		return q
	}
	return Unknown
}

// modValues is integer Mod with fmod=0 (the sign follows the divisor).
func modValues(a, b Dim) Dim {
	x, ok1 := DimInt(a)
	y, ok2 := DimInt(b)
	if !ok1 || !ok2 || y == 0 {
		return Unknown
	}
	r := x % y
	if r != 0 && (r < 0) != (y < 0) {
		r += y
	}
	return IntDim(r)
}

// compareDims orders two values when that is decidable: known numbers, equal
// symbolic text, or a size (a symbolic dim without subtraction) against a
// negative number.
func compareDims(a, b Dim) (int, bool) {
	x, ok1 := DimInt(a)
	y, ok2 := DimInt(b)
	switch {
	case ok1 && ok2:
		switch {
		case x < y:
			return -1, true
		case x > y:
			return 1, true
		}
		return 0, true
	case a.IsUnknown() || b.IsUnknown():
		return 0, false
	case a.Sym != "" && b.Sym != "" && sameSym(a, b):
		return 0, true
	case ok2 && y < 0 && nonNegative(a):
		return 1, true
	case ok1 && x < 0 && nonNegative(b):
		return -1, true
	}
	return 0, false
}

// nonNegative reports whether a symbolic dim is a sum of products of sizes.
func nonNegative(d Dim) bool {
	if d.Sym == "" {
		return d.Val >= 0
	}
	for _, t := range parseSym(d.Sym).terms {
		if t.coef < 0 {
			return false
		}
	}
	return true
}

func cmpValues(pred func(c int) bool) func(a, b Dim) Dim {
	return func(a, b Dim) Dim {
		c, ok := compareDims(a, b)
		if !ok {
			return Unknown
		}
		return D(boolInt(pred(c)))
	}
}

func logicValues(f func(a, b bool) bool) func(a, b Dim) Dim {
	return func(a, b Dim) Dim {
		x, ok1 := DimInt(a)
		y, ok2 := DimInt(b)
		if !ok1 || !ok2 {
			return Unknown
		}
		return D(boolInt(f(x != 0, y != 0)))
	}
}

func extremumValues(max bool) func(a, b Dim) Dim {
	return func(a, b Dim) Dim {
		c, ok := compareDims(a, b)
		if !ok {
			return Unknown
		}
		if (c >= 0) == max {
			return a
		}
		return b
	}
}
