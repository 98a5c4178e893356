package ref

import (
	"errors"
	"fmt"
	"math"

	"github.com/of3c/of3c/graph"
)

// ---- unary ops ----

// floatFn builds a float function from a node's attributes.
type floatFn func(n *graph.Node) func(x float64) float64

// unary makes a kernel applying f to float inputs and, when intf is non-nil,
// intf to integer inputs; the result keeps the input dtype.
func unary(f floatFn, intf func(x int64, dt graph.DType) int64) kernel {
	return func(n *graph.Node, in []*array) ([]*array, error) {
		x, err := need(n, in, 0)
		if err != nil {
			return nil, err
		}
		r := newArray(x.dt, x.shape)
		if isFloat(x.dt) {
			fn := f(n)
			for k, v := range x.f {
				r.f[k] = fn(v)
			}
			return []*array{r}, nil
		}
		if intf == nil || x.dt == graph.Bool {
			return nil, fmt.Errorf("%s does not take %s", n.Op, x.dt)
		}
		for k, v := range x.i {
			r.i[k] = intf(v, x.dt)
		}
		return []*array{r}, nil
	}
}

func plain(f func(float64) float64) floatFn {
	return func(*graph.Node) func(float64) float64 { return f }
}

func attrF(n *graph.Node, name string, def float32) float64 {
	return float64(n.AttrFloat(name, def))
}

func sigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}

// softplus is log(1+e^x) without overflow for large x.
func softplus(x float64) float64 {
	if x > 30 {
		return x + math.Log1p(math.Exp(-x))
	}
	return math.Log1p(math.Exp(x))
}

func sign(x float64) float64 {
	switch {
	case x > 0:
		return 1
	case x < 0:
		return -1
	}
	return x // 0 and NaN stay as they are
}

func gelu(n *graph.Node) func(float64) float64 {
	if n.AttrString("approximate", "none") == "tanh" {
		c := math.Sqrt(2 / math.Pi)
		return func(x float64) float64 { return 0.5 * x * (1 + math.Tanh(c*(x+0.044715*x*x*x))) }
	}
	return func(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }
}

func init() {
	absInt := func(x int64, dt graph.DType) int64 {
		if x < 0 && !isUnsigned(dt) {
			return -x
		}
		return x
	}
	negInt := func(x int64, _ graph.DType) int64 { return -x }
	signInt := func(x int64, dt graph.DType) int64 {
		switch {
		case x == 0:
			return 0
		case x < 0 && !isUnsigned(dt):
			return -1
		}
		return 1
	}
	reluInt := func(x int64, dt graph.DType) int64 {
		if x < 0 && !isUnsigned(dt) {
			return 0
		}
		return x
	}
	register(unary(plain(math.Abs), absInt), "Abs")
	register(unary(plain(func(x float64) float64 { return -x }), negInt), "Neg")
	register(unary(plain(sign), signInt), "Sign")
	register(unary(plain(func(x float64) float64 { return math.Max(x, 0) }), reluInt), "Relu")
	register(unary(plain(math.Sqrt), nil), "Sqrt")
	register(unary(plain(math.Exp), nil), "Exp")
	register(unary(plain(math.Log), nil), "Log")
	register(unary(plain(math.Tanh), nil), "Tanh")
	register(unary(plain(math.Erf), nil), "Erf")
	register(unary(plain(sigmoid), nil), "Sigmoid")
	register(unary(plain(func(x float64) float64 { return 1 / x }), nil), "Reciprocal")
	register(unary(plain(math.Floor), nil), "Floor")
	register(unary(plain(math.Ceil), nil), "Ceil")
	register(unary(plain(math.RoundToEven), nil), "Round")
	register(unary(plain(softplus), nil), "Softplus")
	register(unary(plain(func(x float64) float64 { return x / (1 + math.Abs(x)) }), nil), "Softsign")
	register(unary(plain(math.Sin), nil), "Sin")
	register(unary(plain(math.Cos), nil), "Cos")
	register(unary(plain(math.Tan), nil), "Tan")
	register(unary(plain(math.Asin), nil), "Asin")
	register(unary(plain(math.Acos), nil), "Acos")
	register(unary(plain(math.Atan), nil), "Atan")
	register(unary(plain(math.Sinh), nil), "Sinh")
	register(unary(plain(math.Cosh), nil), "Cosh")
	register(unary(plain(math.Asinh), nil), "Asinh")
	register(unary(plain(math.Acosh), nil), "Acosh")
	register(unary(plain(math.Atanh), nil), "Atanh")
	register(unary(plain(func(x float64) float64 { return x * math.Tanh(softplus(x)) }), nil), "Mish")
	register(unary(gelu, nil), "Gelu")
	register(unary(func(n *graph.Node) func(float64) float64 {
		alpha := attrF(n, "alpha", 0.01)
		return func(x float64) float64 {
			if x < 0 {
				return alpha * x
			}
			return x
		}
	}, nil), "LeakyRelu")
	register(unary(func(n *graph.Node) func(float64) float64 {
		alpha := attrF(n, "alpha", 1)
		return func(x float64) float64 {
			if x < 0 {
				return alpha * (math.Exp(x) - 1)
			}
			return x
		}
	}, nil), "Elu")
	register(unary(func(n *graph.Node) func(float64) float64 {
		alpha := attrF(n, "alpha", 1.67326319217681884765625)
		gamma := attrF(n, "gamma", 1.05070102214813232421875)
		return func(x float64) float64 {
			if x <= 0 {
				return gamma * (alpha*math.Exp(x) - alpha)
			}
			return gamma * x
		}
	}, nil), "Selu")
	register(unary(func(n *graph.Node) func(float64) float64 {
		alpha := attrF(n, "alpha", 1)
		return func(x float64) float64 { return math.Max(0, x) + math.Min(0, alpha*(math.Exp(x/alpha)-1)) }
	}, nil), "Celu")
	register(unary(func(n *graph.Node) func(float64) float64 {
		alpha, beta := attrF(n, "alpha", 0.2), attrF(n, "beta", 0.5)
		return func(x float64) float64 { return math.Max(0, math.Min(1, alpha*x+beta)) }
	}, nil), "HardSigmoid")
	register(unary(plain(func(x float64) float64 { return x * math.Max(0, math.Min(1, x/6+0.5)) }), nil), "HardSwish")
	register(unary(func(n *graph.Node) func(float64) float64 {
		alpha := attrF(n, "alpha", 1)
		return func(x float64) float64 {
			if x > alpha {
				return x
			}
			return 0
		}
	}, nil), "ThresholdedRelu")
	register(unary(func(n *graph.Node) func(float64) float64 {
		bias, lambd := attrF(n, "bias", 0), attrF(n, "lambd", 0.5)
		return func(x float64) float64 {
			switch {
			case x < -lambd:
				return x + bias
			case x > lambd:
				return x - bias
			}
			return 0
		}
	}, nil), "Shrink")

	register(kernelNot, "Not")
	register(kernelIsNaN, "IsNaN")
	register(kernelIsInf, "IsInf")
	register(kernelClip, "Clip")
	register(kernelWhere, "Where")
	register(kernelPRelu, "PRelu")
}

func kernelNot(n *graph.Node, in []*array) ([]*array, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	if x.dt != graph.Bool {
		return nil, fmt.Errorf("Not takes bool, got %s", x.dt)
	}
	r := newArray(graph.Bool, x.shape)
	for k, v := range x.i {
		r.i[k] = 1 - v
	}
	return []*array{r}, nil
}

func floatPredicate(n *graph.Node, in []*array, pred func(float64) bool) ([]*array, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	if !isFloat(x.dt) {
		return nil, fmt.Errorf("%s takes a float tensor, got %s", n.Op, x.dt)
	}
	r := newArray(graph.Bool, x.shape)
	for k, v := range x.f {
		if pred(v) {
			r.i[k] = 1
		}
	}
	return []*array{r}, nil
}

func kernelIsNaN(n *graph.Node, in []*array) ([]*array, error) {
	return floatPredicate(n, in, math.IsNaN)
}

func kernelIsInf(n *graph.Node, in []*array) ([]*array, error) {
	neg, pos := n.AttrInt("detect_negative", 1) != 0, n.AttrInt("detect_positive", 1) != 0
	return floatPredicate(n, in, func(v float64) bool { return (pos && math.IsInf(v, 1)) || (neg && math.IsInf(v, -1)) })
}

// kernelClip: bounds come from inputs 1 and 2 (opset ≥ 11) or from the
// min/max attributes (older opsets, floats only); an absent bound does not
// clip. NaN passes through.
func kernelClip(n *graph.Node, in []*array) ([]*array, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	var bounds [2]*array // min, max
	for k := range bounds {
		b := opt(in, 1+k)
		if b == nil {
			continue
		}
		if b.size() != 1 || b.dt != x.dt {
			return nil, fmt.Errorf("Clip bound %d must be a one-element %s tensor, got %s%v", k, x.dt, b.dt, b.shape)
		}
		bounds[k] = b
	}
	if n.Opset > 0 && n.Opset < 11 && isFloat(x.dt) {
		for k, name := range []string{"min", "max"} {
			if _, ok := n.Attrs[name]; ok {
				bounds[k] = newArray(graph.Float64, nil)
				bounds[k].f[0] = attrF(n, name, 0)
			}
		}
	}
	r := x.clone()
	if isFloat(x.dt) {
		for k, v := range r.f {
			if bounds[0] != nil && v < bounds[0].f[0] {
				v = bounds[0].f[0]
			}
			if bounds[1] != nil && v > bounds[1].f[0] {
				v = bounds[1].f[0]
			}
			r.f[k] = v
		}
		return []*array{r}, nil
	}
	for k, v := range r.i {
		if bounds[0] != nil && lessInt(x.dt, v, bounds[0].i[0]) {
			v = bounds[0].i[0]
		}
		if bounds[1] != nil && lessInt(x.dt, bounds[1].i[0], v) {
			v = bounds[1].i[0]
		}
		r.i[k] = v
	}
	return []*array{r}, nil
}

// lessInt compares integers of dtype dt (unsigned 64-bit as unsigned).
func lessInt(dt graph.DType, a, b int64) bool {
	if dt == graph.Uint64 {
		return uint64(a) < uint64(b)
	}
	return a < b
}

func kernelWhere(n *graph.Node, in []*array) ([]*array, error) {
	c, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	x, err := need(n, in, 1)
	if err != nil {
		return nil, err
	}
	y, err := need(n, in, 2)
	if err != nil {
		return nil, err
	}
	if c.dt != graph.Bool {
		return nil, fmt.Errorf("Where condition must be bool, got %s", c.dt)
	}
	if x.dt != y.dt {
		return nil, fmt.Errorf("Where branches differ in dtype: %s vs %s", x.dt, y.dt)
	}
	shape, err := broadcastShapes(c.shape, x.shape, y.shape)
	if err != nil {
		return nil, err
	}
	r := newArray(x.dt, shape)
	broadcastIndex(shape, [][]int64{c.shape, x.shape, y.shape}, func(o int, idx []int) {
		if c.i[idx[0]] != 0 {
			copyElem(r, o, x, idx[1])
		} else {
			copyElem(r, o, y, idx[2])
		}
	})
	return []*array{r}, nil
}

// kernelPRelu: slope broadcasts to x (unidirectionally).
func kernelPRelu(n *graph.Node, in []*array) ([]*array, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	s, err := need(n, in, 1)
	if err != nil {
		return nil, err
	}
	if s.dt != x.dt {
		return nil, fmt.Errorf("PRelu slope is %s, x is %s", s.dt, x.dt)
	}
	shape, err := broadcastShapes(x.shape, s.shape)
	if err != nil {
		return nil, err
	}
	if !equalShape(shape, x.shape) {
		return nil, fmt.Errorf("PRelu slope %v does not broadcast to x %v", s.shape, x.shape)
	}
	r := newArray(x.dt, shape)
	broadcastIndex(shape, [][]int64{x.shape, s.shape}, func(o int, idx []int) {
		v := x.float(idx[0])
		if v < 0 {
			v *= s.float(idx[1])
		}
		r.set(o, v)
	})
	return []*array{r}, nil
}

// ---- binary and variadic ops ----

var errIntDivZero = errors.New("integer division by zero")

// binOp describes an arithmetic op for float and integer operands. A nil
// function means the op does not take that kind of operand.
type binOp struct {
	f func(a, b float64) float64
	i func(a, b int64, dt graph.DType) (int64, error)
}

func binary(op func(n *graph.Node) binOp) kernel {
	return func(n *graph.Node, in []*array) ([]*array, error) {
		a, err := need(n, in, 0)
		if err != nil {
			return nil, err
		}
		b, err := need(n, in, 1)
		if err != nil {
			return nil, err
		}
		if a.dt != b.dt {
			return nil, fmt.Errorf("%s operands differ in dtype: %s vs %s", n.Op, a.dt, b.dt)
		}
		r, err := applyBinary(op(n), n.Op, a, b)
		if err != nil {
			return nil, err
		}
		return []*array{r}, nil
	}
}

func applyBinary(op binOp, name string, a, b *array) (*array, error) {
	shape, err := broadcastShapes(a.shape, b.shape)
	if err != nil {
		return nil, err
	}
	r := newArray(a.dt, shape)
	ins := [][]int64{a.shape, b.shape}
	if isFloat(a.dt) {
		if op.f == nil {
			return nil, fmt.Errorf("%s does not take %s", name, a.dt)
		}
		broadcastIndex(shape, ins, func(o int, idx []int) { r.f[o] = op.f(a.f[idx[0]], b.f[idx[1]]) })
		return r, nil
	}
	if op.i == nil || (a.dt == graph.Bool && name != "Max" && name != "Min") {
		return nil, fmt.Errorf("%s does not take %s", name, a.dt)
	}
	var ferr error
	broadcastIndex(shape, ins, func(o int, idx []int) {
		v, err := op.i(a.i[idx[0]], b.i[idx[1]], a.dt)
		if err != nil && ferr == nil {
			ferr = err
		}
		r.i[o] = v
	})
	if ferr != nil {
		return nil, fmt.Errorf("%s: %w", name, ferr)
	}
	return r, nil
}

func fixed(op binOp) func(*graph.Node) binOp { return func(*graph.Node) binOp { return op } }

var (
	opAdd = binOp{
		f: func(a, b float64) float64 { return a + b },
		i: func(a, b int64, _ graph.DType) (int64, error) { return a + b, nil },
	}
	opSub = binOp{
		f: func(a, b float64) float64 { return a - b },
		i: func(a, b int64, _ graph.DType) (int64, error) { return a - b, nil },
	}
	opMul = binOp{
		f: func(a, b float64) float64 { return a * b },
		i: func(a, b int64, _ graph.DType) (int64, error) { return a * b, nil },
	}
	// Integer division truncates toward zero, as C and ONNX Runtime do.
	opDiv = binOp{
		f: func(a, b float64) float64 { return a / b },
		i: func(a, b int64, dt graph.DType) (int64, error) {
			if b == 0 {
				return 0, errIntDivZero
			}
			if dt == graph.Uint64 {
				return int64(uint64(a) / uint64(b)), nil
			}
			if b == -1 {
				return -a, nil // avoids the MinInt64 / -1 trap
			}
			return a / b, nil
		},
	}
	opMax = binOp{
		f: func(a, b float64) float64 {
			if math.IsNaN(a) || math.IsNaN(b) {
				return math.NaN()
			}
			return math.Max(a, b)
		},
		i: func(a, b int64, dt graph.DType) (int64, error) {
			if lessInt(dt, a, b) {
				return b, nil
			}
			return a, nil
		},
	}
	opMin = binOp{
		f: func(a, b float64) float64 {
			if math.IsNaN(a) || math.IsNaN(b) {
				return math.NaN()
			}
			return math.Min(a, b)
		},
		i: func(a, b int64, dt graph.DType) (int64, error) {
			if lessInt(dt, b, a) {
				return b, nil
			}
			return a, nil
		},
	}
)

// modOp: fmod=1 is C's fmod (sign of the dividend); fmod=0 takes the sign of
// the divisor, like Python's %.
func modOp(n *graph.Node) binOp {
	if n.AttrInt("fmod", 0) != 0 {
		return binOp{
			f: math.Mod,
			i: func(a, b int64, dt graph.DType) (int64, error) {
				if b == 0 {
					return 0, errIntDivZero
				}
				if dt == graph.Uint64 {
					return int64(uint64(a) % uint64(b)), nil
				}
				if b == -1 {
					return 0, nil
				}
				return a % b, nil
			},
		}
	}
	return binOp{
		f: func(a, b float64) float64 {
			m := math.Mod(a, b)
			if m != 0 && (m < 0) != (b < 0) {
				m += b
			}
			return m
		},
		i: func(a, b int64, dt graph.DType) (int64, error) {
			if b == 0 {
				return 0, errIntDivZero
			}
			if dt == graph.Uint64 {
				return int64(uint64(a) % uint64(b)), nil
			}
			if b == -1 {
				return 0, nil
			}
			m := a % b
			if m != 0 && (m < 0) != (b < 0) {
				m += b
			}
			return m, nil
		},
	}
}

// kernelPow: the exponent may have another dtype than the base; the result
// has the base's dtype.
func kernelPow(n *graph.Node, in []*array) ([]*array, error) {
	a, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	b, err := need(n, in, 1)
	if err != nil {
		return nil, err
	}
	if a.dt == graph.Bool || b.dt == graph.Bool {
		return nil, fmt.Errorf("Pow does not take bool")
	}
	shape, err := broadcastShapes(a.shape, b.shape)
	if err != nil {
		return nil, err
	}
	r := newArray(a.dt, shape)
	intExp := !isFloat(a.dt) && !isFloat(b.dt)
	broadcastIndex(shape, [][]int64{a.shape, b.shape}, func(o int, idx []int) {
		if intExp {
			r.i[o] = intPow(a.i[idx[0]], b.i[idx[1]])
			return
		}
		r.set(o, math.Pow(a.float(idx[0]), b.float(idx[1])))
	})
	return []*array{r}, nil
}

// intPow is exact integer exponentiation (wrapping); negative exponents give
// the truncated real result (0 unless the base is ±1).
func intPow(base, exp int64) int64 {
	if exp < 0 {
		switch base {
		case 1:
			return 1
		case -1:
			if exp%2 == 0 {
				return 1
			}
			return -1
		}
		return 0
	}
	r := int64(1)
	for exp > 0 {
		if exp&1 == 1 {
			r *= base
		}
		base *= base
		exp >>= 1
	}
	return r
}

// ---- comparisons and logic ----

func compare(pred func(c int) bool) kernel {
	return func(n *graph.Node, in []*array) ([]*array, error) {
		a, err := need(n, in, 0)
		if err != nil {
			return nil, err
		}
		b, err := need(n, in, 1)
		if err != nil {
			return nil, err
		}
		if a.dt != b.dt {
			return nil, fmt.Errorf("%s operands differ in dtype: %s vs %s", n.Op, a.dt, b.dt)
		}
		shape, err := broadcastShapes(a.shape, b.shape)
		if err != nil {
			return nil, err
		}
		r := newArray(graph.Bool, shape)
		ins := [][]int64{a.shape, b.shape}
		if isFloat(a.dt) {
			broadcastIndex(shape, ins, func(o int, idx []int) {
				x, y := a.f[idx[0]], b.f[idx[1]]
				if math.IsNaN(x) || math.IsNaN(y) {
					return // every ordered comparison with NaN is false
				}
				if pred(cmpFloat(x, y)) {
					r.i[o] = 1
				}
			})
		} else {
			broadcastIndex(shape, ins, func(o int, idx []int) {
				x, y := a.i[idx[0]], b.i[idx[1]]
				c := 0
				if lessInt(a.dt, x, y) {
					c = -1
				} else if x != y {
					c = 1
				}
				if pred(c) {
					r.i[o] = 1
				}
			})
		}
		return []*array{r}, nil
	}
}

func cmpFloat(x, y float64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

func logic(f func(a, b bool) bool) kernel {
	return func(n *graph.Node, in []*array) ([]*array, error) {
		a, err := need(n, in, 0)
		if err != nil {
			return nil, err
		}
		b, err := need(n, in, 1)
		if err != nil {
			return nil, err
		}
		if a.dt != graph.Bool || b.dt != graph.Bool {
			return nil, fmt.Errorf("%s takes bool operands, got %s and %s", n.Op, a.dt, b.dt)
		}
		shape, err := broadcastShapes(a.shape, b.shape)
		if err != nil {
			return nil, err
		}
		r := newArray(graph.Bool, shape)
		broadcastIndex(shape, [][]int64{a.shape, b.shape}, func(o int, idx []int) {
			if f(a.i[idx[0]] != 0, b.i[idx[1]] != 0) {
				r.i[o] = 1
			}
		})
		return []*array{r}, nil
	}
}

// variadic folds Max/Min/Sum/Mean over any number of broadcast inputs.
func variadic(op binOp, mean bool) kernel {
	return func(n *graph.Node, in []*array) ([]*array, error) {
		if len(in) == 0 {
			return nil, fmt.Errorf("%s needs at least one input", n.Op)
		}
		acc, err := need(n, in, 0)
		if err != nil {
			return nil, err
		}
		for k := 1; k < len(in); k++ {
			b, err := need(n, in, k)
			if err != nil {
				return nil, err
			}
			if b.dt != acc.dt {
				return nil, fmt.Errorf("%s inputs differ in dtype: %s vs %s", n.Op, acc.dt, b.dt)
			}
			if acc, err = applyBinary(op, n.Op, acc, b); err != nil {
				return nil, err
			}
		}
		if len(in) == 1 {
			acc = acc.clone()
		}
		if mean {
			if !isFloat(acc.dt) {
				return nil, fmt.Errorf("Mean takes float inputs, got %s", acc.dt)
			}
			for k := range acc.f {
				acc.f[k] /= float64(len(in))
			}
		}
		return []*array{acc}, nil
	}
}

func init() {
	register(binary(fixed(opAdd)), "Add")
	register(binary(fixed(opSub)), "Sub")
	register(binary(fixed(opMul)), "Mul")
	register(binary(fixed(opDiv)), "Div")
	register(binary(modOp), "Mod")
	register(kernelPow, "Pow")
	register(compare(func(c int) bool { return c == 0 }), "Equal")
	register(compare(func(c int) bool { return c < 0 }), "Less")
	register(compare(func(c int) bool { return c <= 0 }), "LessOrEqual")
	register(compare(func(c int) bool { return c > 0 }), "Greater")
	register(compare(func(c int) bool { return c >= 0 }), "GreaterOrEqual")
	register(logic(func(a, b bool) bool { return a && b }), "And")
	register(logic(func(a, b bool) bool { return a || b }), "Or")
	register(logic(func(a, b bool) bool { return a != b }), "Xor")
	register(variadic(opMax, false), "Max")
	register(variadic(opMin, false), "Min")
	register(variadic(opAdd, false), "Sum")
	register(variadic(opAdd, true), "Mean")
}
