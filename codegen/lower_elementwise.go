package codegen

import (
	"fmt"
	"math"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/mlx"
)

// unaryFn builds an elementwise function of x; dt is x's graph dtype.
type unaryFn func(t *tracer, n *graph.Node, x *mlx.Array, dt graph.DType) *mlx.Array

func unary(f unaryFn) lowerFn {
	return func(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
		x := in[0]
		return t.one(f(t, n, t.arr(x), x.dt), n.Outputs[0].Type.DType)
	}
}

func simple(op func(s *mlx.Scope, a *mlx.Array) *mlx.Array) lowerFn {
	return unary(func(t *tracer, _ *graph.Node, x *mlx.Array, _ graph.DType) *mlx.Array { return op(t.s, x) })
}

func init() {
	register(simple((*mlx.Scope).Sqrt), "Sqrt")
	register(simple((*mlx.Scope).Exp), "Exp")
	register(simple((*mlx.Scope).Log), "Log")
	register(simple((*mlx.Scope).Tanh), "Tanh")
	register(simple((*mlx.Scope).Erf), "Erf")
	register(unary(func(t *tracer, _ *graph.Node, x *mlx.Array, _ graph.DType) *mlx.Array { return t.sigmoid(x) }), "Sigmoid")
	register(simple((*mlx.Scope).Neg), "Neg")
	register(simple((*mlx.Scope).Abs), "Abs")
	register(simple((*mlx.Scope).Floor), "Floor")
	register(simple((*mlx.Scope).Ceil), "Ceil")
	register(simple((*mlx.Scope).Round), "Round")
	register(simple((*mlx.Scope).Sign), "Sign")
	register(simple((*mlx.Scope).Sin), "Sin")
	register(simple((*mlx.Scope).Cos), "Cos")
	register(simple((*mlx.Scope).Tan), "Tan")
	register(simple((*mlx.Scope).LogicalNot), "Not")
	register(simple((*mlx.Scope).IsNaN), "IsNaN")
	register(unary(func(t *tracer, _ *graph.Node, x *mlx.Array, dt graph.DType) *mlx.Array {
		// MLX's reciprocal of an integer is a float; ONNX keeps the type.
		return t.s.Div(t.scalar(1, dt), x)
	}), "Reciprocal")
	register(unary(func(t *tracer, _ *graph.Node, x *mlx.Array, dt graph.DType) *mlx.Array {
		return t.s.Maximum(x, t.scalar(0, dt))
	}), "Relu")
	register(unary(func(t *tracer, _ *graph.Node, x *mlx.Array, dt graph.DType) *mlx.Array {
		return softplus(t, x, dt)
	}), "Softplus")
	register(unary(func(t *tracer, _ *graph.Node, x *mlx.Array, dt graph.DType) *mlx.Array {
		s := t.s
		return s.Div(x, s.Add(t.scalar(1, dt), s.Abs(x)))
	}), "Softsign")
	register(unary(func(t *tracer, _ *graph.Node, x *mlx.Array, dt graph.DType) *mlx.Array {
		s := t.s
		return s.Arctan2(x, s.Sqrt(s.Sub(t.scalar(1, dt), s.Square(x))))
	}), "Asin")
	register(unary(func(t *tracer, _ *graph.Node, x *mlx.Array, dt graph.DType) *mlx.Array {
		s := t.s
		return s.Arctan2(s.Sqrt(s.Sub(t.scalar(1, dt), s.Square(x))), x)
	}), "Acos")
	register(unary(func(t *tracer, _ *graph.Node, x *mlx.Array, dt graph.DType) *mlx.Array {
		return t.s.Arctan2(x, t.scalar(1, dt))
	}), "Atan")
	register(unary(func(t *tracer, _ *graph.Node, x *mlx.Array, dt graph.DType) *mlx.Array {
		// (e^x − e^−x)/2 via expm1 keeps precision near 0.
		s := t.s
		return s.Mul(s.Sub(s.Expm1(x), s.Expm1(s.Neg(x))), t.scalar(0.5, dt))
	}), "Sinh")
	register(unary(func(t *tracer, _ *graph.Node, x *mlx.Array, dt graph.DType) *mlx.Array {
		s := t.s
		return s.Mul(s.Add(s.Exp(x), s.Exp(s.Neg(x))), t.scalar(0.5, dt))
	}), "Cosh")
	register(unary(func(t *tracer, _ *graph.Node, x *mlx.Array, dt graph.DType) *mlx.Array {
		// sign(x)·log1p(|x| + x²/(1+√(1+x²))): exact near 0, no cancellation for x < 0.
		s := t.s
		ax := s.Abs(x)
		x2 := s.Square(ax)
		inner := s.Add(ax, s.Div(x2, s.Add(t.scalar(1, dt), s.Sqrt(s.Add(t.scalar(1, dt), x2)))))
		return s.Mul(s.Sign(x), s.Log1p(inner))
	}), "Asinh")
	register(unary(func(t *tracer, _ *graph.Node, x *mlx.Array, dt graph.DType) *mlx.Array {
		s := t.s
		return s.Log(s.Add(x, s.Sqrt(s.Sub(s.Square(x), t.scalar(1, dt)))))
	}), "Acosh")
	register(unary(func(t *tracer, _ *graph.Node, x *mlx.Array, dt graph.DType) *mlx.Array {
		// ½·log1p(2x/(1−x))
		s := t.s
		return s.Mul(t.scalar(0.5, dt), s.Log1p(s.Div(s.Mul(t.scalar(2, dt), x), s.Sub(t.scalar(1, dt), x))))
	}), "Atanh")
	register(unary(func(t *tracer, n *graph.Node, x *mlx.Array, dt graph.DType) *mlx.Array {
		s := t.s
		alpha, beta := float64(n.AttrFloat("alpha", 0.2)), float64(n.AttrFloat("beta", 0.5))
		y := s.Add(s.Mul(x, t.scalar(alpha, dt)), t.scalar(beta, dt))
		return s.Maximum(t.scalar(0, dt), s.Minimum(t.scalar(1, dt), y))
	}), "HardSigmoid")
	register(unary(func(t *tracer, _ *graph.Node, x *mlx.Array, dt graph.DType) *mlx.Array {
		s := t.s
		y := s.Add(s.Mul(x, t.scalar(1.0/6, dt)), t.scalar(0.5, dt))
		return s.Mul(x, s.Maximum(t.scalar(0, dt), s.Minimum(t.scalar(1, dt), y)))
	}), "HardSwish")
	register(unary(func(t *tracer, n *graph.Node, x *mlx.Array, dt graph.DType) *mlx.Array {
		s := t.s
		alpha := float64(n.AttrFloat("alpha", 0.01))
		return s.Where(s.Less(x, t.scalar(0, dt)), s.Mul(x, t.scalar(alpha, dt)), x)
	}), "LeakyRelu")
	register(unary(func(t *tracer, n *graph.Node, x *mlx.Array, dt graph.DType) *mlx.Array {
		s := t.s
		alpha := float64(n.AttrFloat("alpha", 1))
		return s.Where(s.Less(x, t.scalar(0, dt)), s.Mul(s.Expm1(x), t.scalar(alpha, dt)), x)
	}), "Elu")
	register(unary(func(t *tracer, n *graph.Node, x *mlx.Array, dt graph.DType) *mlx.Array {
		s := t.s
		alpha := float64(n.AttrFloat("alpha", 1.67326319217681884765625))
		gamma := float64(n.AttrFloat("gamma", 1.05070102519989013671875))
		neg := s.Mul(s.Expm1(x), t.scalar(alpha, dt))
		return s.Mul(s.Where(s.LessEqual(x, t.scalar(0, dt)), neg, x), t.scalar(gamma, dt))
	}), "Selu")
	register(unary(func(t *tracer, n *graph.Node, x *mlx.Array, dt graph.DType) *mlx.Array {
		s := t.s
		alpha := float64(n.AttrFloat("alpha", 1))
		neg := s.Mul(s.Expm1(s.Div(x, t.scalar(alpha, dt))), t.scalar(alpha, dt))
		return s.Add(s.Maximum(x, t.scalar(0, dt)), s.Minimum(neg, t.scalar(0, dt)))
	}), "Celu")
	register(unary(func(t *tracer, _ *graph.Node, x *mlx.Array, dt graph.DType) *mlx.Array {
		return t.s.Mul(x, t.s.Tanh(softplus(t, x, dt)))
	}), "Mish")
	register(unary(func(t *tracer, n *graph.Node, x *mlx.Array, dt graph.DType) *mlx.Array {
		s := t.s
		alpha := float64(n.AttrFloat("alpha", 1))
		return s.Where(s.Greater(x, t.scalar(alpha, dt)), x, t.scalar(0, dt))
	}), "ThresholdedRelu")
	register(unary(func(t *tracer, n *graph.Node, x *mlx.Array, dt graph.DType) *mlx.Array {
		s := t.s
		half := t.scalar(0.5, dt)
		one := t.scalar(1, dt)
		if n.AttrString("approximate", "none") == "tanh" {
			inner := s.Mul(t.scalar(math.Sqrt(2/math.Pi), dt),
				s.Add(x, s.Mul(t.scalar(0.044715, dt), s.Mul(x, s.Square(x)))))
			return s.Mul(s.Mul(half, x), s.Add(one, s.Tanh(inner)))
		}
		return s.Mul(s.Mul(half, x), s.Add(one, s.Erf(s.Mul(x, t.scalar(1/math.Sqrt2, dt)))))
	}), "Gelu")
	register(unary(func(t *tracer, n *graph.Node, x *mlx.Array, dt graph.DType) *mlx.Array {
		s := t.s
		bias := float64(n.AttrFloat("bias", 0))
		lambd := float64(n.AttrFloat("lambd", 0.5))
		lo := s.Less(x, t.scalar(-lambd, dt))
		hi := s.Greater(x, t.scalar(lambd, dt))
		return s.Where(lo, s.Add(x, t.scalar(bias, dt)), s.Where(hi, s.Sub(x, t.scalar(bias, dt)), t.scalar(0, dt)))
	}), "Shrink")
	register(unary(func(t *tracer, n *graph.Node, x *mlx.Array, dt graph.DType) *mlx.Array {
		s := t.s
		inf := s.IsInf(x)
		pos, neg := n.AttrInt("detect_positive", 1) != 0, n.AttrInt("detect_negative", 1) != 0
		switch {
		case pos && neg:
			return inf
		case pos:
			return s.LogicalAnd(inf, s.Greater(x, t.scalar(0, dt)))
		case neg:
			return s.LogicalAnd(inf, s.Less(x, t.scalar(0, dt)))
		}
		return s.Zeros(mlx.Bool, x.Shape()...)
	}), "IsInf")

	binaryOps := map[string]func(s *mlx.Scope, a, b *mlx.Array) *mlx.Array{
		"Add": (*mlx.Scope).Add, "Sub": (*mlx.Scope).Sub, "Mul": (*mlx.Scope).Mul, "Div": (*mlx.Scope).Div,
		"Equal": (*mlx.Scope).Equal, "Less": (*mlx.Scope).Less, "LessOrEqual": (*mlx.Scope).LessEqual,
		"Greater": (*mlx.Scope).Greater, "GreaterOrEqual": (*mlx.Scope).GreaterEqual,
		"And": (*mlx.Scope).LogicalAnd, "Or": (*mlx.Scope).LogicalOr, "Xor": (*mlx.Scope).NotEqual,
	}
	for op, f := range binaryOps {
		register(func(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
			return t.one(f(t.s, t.arr(in[0]), t.arr(in[1])), n.Outputs[0].Type.DType)
		}, op)
	}
	register(lowerMod, "Mod")
	register(lowerPow, "Pow")
	register(lowerBitShift, "BitShift")
	register(func(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
		s := t.s
		x, slope := t.arr(in[0]), t.arr(in[1])
		return t.one(s.Where(s.Less(x, t.scalar(0, in[0].dt)), s.Mul(x, slope), x), in[0].dt)
	}, "PRelu")
	variadic := map[string]func(s *mlx.Scope, a, b *mlx.Array) *mlx.Array{
		"Max": (*mlx.Scope).Maximum, "Min": (*mlx.Scope).Minimum, "Sum": (*mlx.Scope).Add, "Mean": (*mlx.Scope).Add,
	}
	for op, f := range variadic {
		register(func(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
			var acc *mlx.Array
			cnt := 0
			for _, x := range in {
				if x == nil {
					continue
				}
				cnt++
				if acc == nil {
					acc = t.arr(x)
					continue
				}
				acc = f(t.s, acc, t.arr(x))
			}
			if acc == nil {
				return nil, fmt.Errorf("no inputs")
			}
			if n.Op == "Mean" {
				acc = t.s.Div(acc, t.scalar(float64(cnt), in[0].dt))
			}
			return t.one(acc, n.Outputs[0].Type.DType)
		}, op)
	}
	register(func(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
		s := t.s
		c := t.arr(in[0])
		if c != nil && c.Dtype() != mlx.Bool {
			c = s.AsType(c, mlx.Bool)
		}
		return t.one(s.Where(c, t.arr(in[1]), t.arr(in[2])), n.Outputs[0].Type.DType)
	}, "Where")
	register(lowerClip, "Clip")
	register(lowerCast, "Cast", "CastLike")
}

// softplus is log(1+eˣ) without overflow: max(x,0) + log1p(e^−|x|).
func softplus(t *tracer, x *mlx.Array, dt graph.DType) *mlx.Array {
	s := t.s
	return s.Add(s.Maximum(x, t.scalar(0, dt)), s.Log1p(s.Exp(s.Neg(s.Abs(x)))))
}

func lowerMod(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	s := t.s
	a, b := t.arr(in[0]), t.arr(in[1])
	dt := in[0].dt
	if n.AttrInt("fmod", 0) == 0 {
		// Python/numpy remainder: the sign of the divisor, which is MLX's.
		return t.one(s.Remainder(a, b), dt)
	}
	// C fmod: the sign of the dividend. a − b·trunc(a/b), with trunc done
	// as integer division (which MLX truncates) or via float.
	if dt.IsFloat() {
		q := s.Div(a, b)
		tq := s.Where(s.Less(q, t.scalar(0, dt)), s.Ceil(q), s.Floor(q))
		return t.one(s.Sub(a, s.Mul(b, tq)), dt)
	}
	r := s.Remainder(a, b)
	// remainder has b's sign; fix where it differs from a's and is nonzero.
	zero := t.scalar(0, dt)
	fix := s.LogicalAnd(s.NotEqual(r, zero), s.NotEqual(s.Less(a, zero), s.Less(r, zero)))
	return t.one(s.Where(fix, s.Sub(r, b), r), dt)
}

func lowerPow(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	s := t.s
	dt := in[0].dt
	a, b := t.arr(in[0]), t.arr(in[1])
	if in[1].dt == dt {
		return t.one(s.Pow(a, b), dt)
	}
	if dt.IsFloat() {
		return t.one(s.Pow(a, s.AsType(b, t.ddt(dt))), dt)
	}
	// Integer base, float exponent: the real power truncated to the base type.
	fdt := t.ddt(graph.Float64)
	if t.p.opts.Device == "gpu" {
		fdt = mlx.Float32
	}
	r := s.Pow(s.AsType(a, fdt), s.AsType(b, fdt))
	return t.one(s.AsType(r, t.ddt(dt)), dt)
}

func lowerBitShift(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	s := t.s
	dt := in[0].dt
	a, b := t.arr(in[0]), t.arr(in[1])
	// ONNX BitShift is defined on unsigned integers only, where shifts are
	// multiplication and floor division by powers of two.
	p := s.Pow(t.scalar(2, dt), b)
	if n.AttrString("direction", "") == "LEFT" {
		return t.one(s.Mul(a, p), dt)
	}
	// A shift by ≥ the bit width gives 0; 2^b then wraps to 0, guard it.
	bits := float64(8 * dt.Size())
	big := s.GreaterEqual(b, t.scalar(bits, in[1].dt))
	safe := s.Where(big, t.scalar(1, dt), p)
	return t.one(s.Where(big, t.scalar(0, dt), s.FloorDivide(a, safe)), dt)
}

func lowerClip(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	s := t.s
	x := t.arr(in[0])
	dt := in[0].dt
	if n.Opset > 0 && n.Opset < 11 {
		if a, ok := n.Attrs["min"]; ok {
			x = s.Maximum(x, t.scalar(float64(a.Float), dt))
		}
		if a, ok := n.Attrs["max"]; ok {
			x = s.Minimum(x, t.scalar(float64(a.Float), dt))
		}
		return t.one(x, dt)
	}
	if len(in) > 1 && in[1] != nil {
		x = s.Maximum(x, t.arr(in[1]))
	}
	if len(in) > 2 && in[2] != nil {
		x = s.Minimum(x, t.arr(in[2]))
	}
	return t.one(x, dt)
}

func lowerCast(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	s := t.s
	var to graph.DType
	if n.Op == "CastLike" {
		to = in[1].dt
	} else {
		to = graph.DType(n.AttrInt("to", 0))
	}
	if _, err := mlxDType(to); err != nil {
		return nil, err
	}
	x := t.arr(in[0])
	from := in[0].dt
	target := t.ddt(to)
	switch {
	case to == graph.Bool && from != graph.Bool:
		return t.one(s.NotEqual(x, t.scalar(0, from)), to)
	case from.IsFloat() && to.IsInt():
		// MLX's float→int conversion truncates like C; NaN/inf are
		// undefined in ONNX too.
		return t.one(s.AsType(x, target), to)
	}
	if t.p.opts.Precision == "fp16" && target == mlx.Float16 && from != graph.Float16 && from.IsFloat() {
		// Keep the cast finite, as constants are (see the package doc).
		x = s.Minimum(s.Maximum(x, t.scalar(-f16Max, from)), t.scalar(f16Max, from))
	}
	if x != nil && x.Dtype() == target {
		return t.one(x, to)
	}
	return t.one(s.AsType(x, target), to)
}
