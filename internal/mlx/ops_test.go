//go:build cgo && !nomlx

package mlx

import (
	"math"
	"math/rand"
	"testing"
)

func TestUnaryOps(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	base := randND(r, -3, 3, 4, 3, 5)
	pos := mapND(base, func(v float64) float64 { return math.Abs(v) + 0.1 })
	unit := mapND(base, func(v float64) float64 { return v / 3.1 })
	perm := []int{2, 0, 1} // every op also sees a non-contiguous input
	sign := func(v float64) float64 {
		switch {
		case v > 0:
			return 1
		case v < 0:
			return -1
		}
		return 0
	}
	cases := []struct {
		name string
		op   func(*Scope, *Array) *Array
		ref  func(float64) float64
		in   nd
	}{
		{"abs", (*Scope).Abs, math.Abs, base},
		{"neg", (*Scope).Neg, func(v float64) float64 { return -v }, base},
		{"sign", (*Scope).Sign, sign, base},
		{"exp", (*Scope).Exp, math.Exp, base},
		{"log", (*Scope).Log, math.Log, pos},
		{"sqrt", (*Scope).Sqrt, math.Sqrt, pos},
		{"rsqrt", (*Scope).Rsqrt, func(v float64) float64 { return 1 / math.Sqrt(v) }, pos},
		{"tanh", (*Scope).Tanh, math.Tanh, base},
		{"erf", (*Scope).Erf, math.Erf, base},
		{"sigmoid", (*Scope).Sigmoid, func(v float64) float64 { return 1 / (1 + math.Exp(-v)) }, base},
		{"floor", (*Scope).Floor, math.Floor, base},
		{"ceil", (*Scope).Ceil, math.Ceil, base},
		{"round", (*Scope).Round, math.RoundToEven, mapND(base, func(v float64) float64 { return math.Round(v*2) / 2 })},
		{"reciprocal", (*Scope).Reciprocal, func(v float64) float64 { return 1 / v }, pos},
		{"sin", (*Scope).Sin, math.Sin, base},
		{"cos", (*Scope).Cos, math.Cos, base},
		{"tan", (*Scope).Tan, math.Tan, unit},
		{"square", (*Scope).Square, func(v float64) float64 { return v * v }, base},
		{"log1p", (*Scope).Log1p, math.Log1p, pos},
		{"expm1", (*Scope).Expm1, math.Expm1, base},
		{"erfinv", (*Scope).Erfinv, math.Erfinv, mapND(unit, func(v float64) float64 { return v * 0.9 })},
		{"copy", (*Scope).Copy, func(v float64) float64 { return v }, base},
		{"stop_gradient", (*Scope).StopGradient, func(v float64) float64 { return v }, base},
	}
	do(t, func(s *Scope) {
		for _, c := range cases {
			x := s.Transpose(s.fromND(c.in), perm...)
			s.checkND(t, c.name, c.op(s, x), mapND(transposeND(c.in, perm), c.ref), 2e-6)
		}
		special := nd{shape: []int{5}, data: []float64{math.NaN(), math.Inf(1), math.Inf(-1), 0, -2}}
		b2f := func(b bool) float64 {
			if b {
				return 1
			}
			return 0
		}
		x := s.fromND(special)
		s.checkND(t, "isnan", s.IsNaN(x), mapND(special, func(v float64) float64 { return b2f(math.IsNaN(v)) }), 0)
		s.checkND(t, "isinf", s.IsInf(x), mapND(special, func(v float64) float64 { return b2f(math.IsInf(v, 0)) }), 0)
		s.checkND(t, "isfinite", s.IsFinite(x), mapND(special, func(v float64) float64 {
			return b2f(!math.IsInf(v, 0) && !math.IsNaN(v))
		}), 0)
		if s.IsNaN(x).Dtype() != Bool {
			t.Fatal("isnan should give bool")
		}
		bo := s.FromBools([]bool{true, false, true}, 3)
		if got := s.Bools(s.LogicalNot(bo)); got[0] || !got[1] || got[2] {
			t.Fatalf("logical_not: %v", got)
		}
	})
}

func TestBinaryOps(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	a := randND(r, -3, 3, 2, 1, 4)
	b := randND(r, -3, 3, 3, 1)
	bnz := mapND(b, func(v float64) float64 {
		if math.Abs(v) < 0.2 {
			return 0.5
		}
		return v
	})
	apos := mapND(a, func(v float64) float64 { return math.Abs(v) + 0.1 })
	b2f := func(c bool) float64 {
		if c {
			return 1
		}
		return 0
	}
	pyMod := func(x, y float64) float64 {
		m := math.Mod(x, y)
		if m != 0 && (m < 0) != (y < 0) {
			m += y
		}
		return m
	}
	cases := []struct {
		name string
		op   func(*Scope, *Array, *Array) *Array
		ref  func(x, y float64) float64
		x, y nd
	}{
		{"add", (*Scope).Add, func(x, y float64) float64 { return x + y }, a, b},
		{"sub", (*Scope).Sub, func(x, y float64) float64 { return x - y }, a, b},
		{"mul", (*Scope).Mul, func(x, y float64) float64 { return x * y }, a, b},
		{"div", (*Scope).Div, func(x, y float64) float64 { return x / y }, a, bnz},
		{"pow", (*Scope).Pow, math.Pow, apos, b},
		{"remainder", (*Scope).Remainder, pyMod, a, bnz},
		{"floor_divide", (*Scope).FloorDivide, func(x, y float64) float64 { return math.Floor(x / y) }, a, bnz},
		{"maximum", (*Scope).Maximum, math.Max, a, b},
		{"minimum", (*Scope).Minimum, math.Min, a, b},
		{"arctan2", (*Scope).Arctan2, math.Atan2, a, b},
		{"equal", (*Scope).Equal, func(x, y float64) float64 { return b2f(x == y) }, a, a},
		{"not_equal", (*Scope).NotEqual, func(x, y float64) float64 { return b2f(x != y) }, a, b},
		{"less", (*Scope).Less, func(x, y float64) float64 { return b2f(x < y) }, a, b},
		{"less_equal", (*Scope).LessEqual, func(x, y float64) float64 { return b2f(x <= y) }, a, b},
		{"greater", (*Scope).Greater, func(x, y float64) float64 { return b2f(x > y) }, a, b},
		{"greater_equal", (*Scope).GreaterEqual, func(x, y float64) float64 { return b2f(x >= y) }, a, b},
	}
	do(t, func(s *Scope) {
		for _, c := range cases {
			got := c.op(s, s.fromND(c.x), s.fromND(c.y))
			s.checkND(t, c.name, got, zipND(c.x, c.y, c.ref), 3e-6)
			// again with x as a strided view: every other row of a stack of x
			// and garbage, read backwards along the last axis
			big := s.Concatenate(1, s.fromND(c.x), s.Full(1e6, Float32, c.x.shape...))
			n := c.x.shape[2]
			view := s.Slice(big, []int{0, 0, n - 1}, []int{2, 2, -n - 1}, []int{1, 2, -1})
			rev := mapIdx(c.x, func(idx []int, _ float64) float64 {
				return c.x.at([]int{idx[0], idx[1], n - 1 - idx[2]})
			})
			s.checkND(t, c.name+"-view", c.op(s, view, s.fromND(c.y)), zipND(rev, c.y, c.ref), 3e-6)
		}
		p := s.FromBools([]bool{true, true, false, false}, 4)
		q := s.FromBools([]bool{true, false, true, false}, 4)
		if g := s.Bools(s.LogicalAnd(p, q)); !g[0] || g[1] || g[2] || g[3] {
			t.Fatalf("logical_and %v", g)
		}
		if g := s.Bools(s.LogicalOr(p, q)); !g[0] || !g[1] || !g[2] || g[3] {
			t.Fatalf("logical_or %v", g)
		}
		// Integer remainder follows the divisor's sign, like Python.
		ia := s.FromInt64s([]int64{7, -7, 7, -7}, 4)
		ib := s.FromInt64s([]int64{3, 3, -3, -3}, 4)
		if g := s.Int64s(s.Remainder(ia, ib)); g[0] != 1 || g[1] != 2 || g[2] != -2 || g[3] != -1 {
			t.Fatalf("int remainder %v", g)
		}
	})
}

func matmulND(a, b nd) nd {
	// [..., m, k] x [..., k, n] with batch broadcasting
	m, k, n := a.shape[len(a.shape)-2], a.shape[len(a.shape)-1], b.shape[len(b.shape)-1]
	batch := bshape(a.shape[:len(a.shape)-2], b.shape[:len(b.shape)-2])
	sh := append(append([]int{}, batch...), m, n)
	o := nd{shape: sh, data: make([]float64, size(sh))}
	for i := range o.data {
		idx := unravel(i, sh)
		bi := idx[:len(batch)]
		ai := append(append([]int{}, bi...), idx[len(batch)], 0)
		bj := append(append([]int{}, bi...), 0, idx[len(batch)+1])
		var acc float64
		for kk := 0; kk < k; kk++ {
			ai[len(ai)-1] = kk
			bj[len(bj)-2] = kk
			acc += a.bat(ai) * b.bat(bj)
		}
		o.data[i] = acc
	}
	return o
}

func TestMatMulEinsum(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	a := randND(r, -1, 1, 2, 1, 5, 7)
	b := randND(r, -1, 1, 3, 7, 4)
	bt := randND(r, -1, 1, 3, 4, 7)
	do(t, func(s *Scope) {
		s.checkND(t, "matmul", s.MatMul(s.fromND(a), s.fromND(b)), matmulND(a, b), 1e-5)
		// transposed (non-contiguous) right operand
		got := s.MatMul(s.fromND(a), s.Transpose(s.fromND(bt), 0, 2, 1))
		s.checkND(t, "matmul^T", got, matmulND(a, transposeND(bt, []int{0, 2, 1})), 1e-5)
		// big enough for the BLAS's blocked kernels, odd sizes for its edges
		p, q := randND(r, -1, 1, 131, 67), randND(r, -1, 1, 67, 95)
		s.checkND(t, "matmul-large", s.MatMul(s.fromND(p), s.fromND(q)), matmulND(p, q), 1e-5)
		x := randND(r, -1, 1, 3, 5, 7)
		y := randND(r, -1, 1, 3, 7, 4)
		s.checkND(t, "einsum", s.Einsum("bij,bjk->bik", s.fromND(x), s.fromND(y)), matmulND(x, y), 1e-5)
		// einsum with a reduction over a batch axis and an output permutation
		e := s.Einsum("bij,bjk->kib", s.fromND(x), s.fromND(y))
		s.checkND(t, "einsum-perm", e, transposeND(matmulND(x, y), []int{2, 1, 0}), 1e-5)
	})
}

func TestReductions(t *testing.T) {
	r := rand.New(rand.NewSource(4))
	x := randND(r, -2, 2, 3, 4, 5)
	type red struct {
		name string
		op   func(*Scope, *Array, bool, ...int) *Array
		init float64
		f    func(acc, v float64) float64
		post func(v float64, n int) float64
	}
	reds := []red{
		{"sum", (*Scope).Sum, 0, func(a, v float64) float64 { return a + v }, nil},
		{"mean", (*Scope).Mean, 0, func(a, v float64) float64 { return a + v }, func(v float64, n int) float64 { return v / float64(n) }},
		{"max", (*Scope).Max, math.Inf(-1), math.Max, nil},
		{"min", (*Scope).Min, math.Inf(1), math.Min, nil},
		{"prod", (*Scope).Prod, 1, func(a, v float64) float64 { return a * v }, nil},
		{"logsumexp", (*Scope).LogSumExp, 0, func(a, v float64) float64 { return a + math.Exp(v) }, func(v float64, _ int) float64 { return math.Log(v) }},
	}
	axesSets := [][]int{{1}, {-1}, {0, 2}, {-3, -2}, nil}
	do(t, func(s *Scope) {
		xa := s.fromND(x)
		for _, rd := range reds {
			for _, axes := range axesSets {
				for _, keep := range []bool{false, true} {
					norm := []int{}
					n := 1
					if axes == nil {
						norm = []int{0, 1, 2}
					}
					for _, a := range axes {
						if a < 0 {
							a += 3
						}
						norm = append(norm, a)
					}
					for _, a := range norm {
						n *= x.shape[a]
					}
					want := reduceND(x, norm, keep, rd.init, rd.f)
					if rd.post != nil {
						want = mapND(want, func(v float64) float64 { return rd.post(v, n) })
					}
					s.checkND(t, rd.name, rd.op(s, xa, keep, axes...), want, 1e-5)
				}
			}
		}
		// argmax/argmin along a negative axis on a transposed view
		xt := transposeND(x, []int{2, 0, 1})
		v := s.Transpose(xa, 2, 0, 1)
		for _, c := range []struct {
			name   string
			op     func(*Scope, *Array, int, bool) *Array
			better func(a, b float64) bool
		}{
			{"argmax", (*Scope).ArgMax, func(a, b float64) bool { return a > b }},
			{"argmin", (*Scope).ArgMin, func(a, b float64) bool { return a < b }},
		} {
			got := s.Int64s(c.op(s, v, -1, false))
			want := make([]int64, 0)
			for i := 0; i < xt.shape[0]*xt.shape[1]; i++ {
				best := 0
				for j := 1; j < xt.shape[2]; j++ {
					if c.better(xt.data[i*xt.shape[2]+j], xt.data[i*xt.shape[2]+best]) {
						best = j
					}
				}
				want = append(want, int64(best))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%s: %v want %v", c.name, got, want)
				}
			}
		}
		b := s.FromBools([]bool{true, false, true, true}, 2, 2)
		if g := s.Bools(s.All(b, false, 1)); g[0] || !g[1] {
			t.Fatalf("all %v", g)
		}
		if g := s.Bools(s.Any(b, false, 0)); !g[0] || !g[1] {
			t.Fatalf("any %v", g)
		}
	})
}

func TestShapeOps(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	x := randND(r, -2, 2, 2, 3, 4)
	do(t, func(s *Scope) {
		xa := s.fromND(x)
		s.checkND(t, "reshape", s.Reshape(xa, 4, -1), nd{[]int{4, 6}, x.data}, 0)
		s.checkND(t, "transpose", s.Transpose(xa, 1, 2, 0), transposeND(x, []int{1, 2, 0}), 0)
		s.checkND(t, "transpose-rev", s.Transpose(xa), transposeND(x, []int{2, 1, 0}), 0)
		// reshape of a non-contiguous view must copy in logical order
		tv := transposeND(x, []int{2, 0, 1})
		s.checkND(t, "reshape-view", s.Reshape(s.Transpose(xa, 2, 0, 1), -1), nd{[]int{24}, tv.data}, 0)
		bc := s.BroadcastTo(s.Reshape(xa, 2, 3, 1, 4), 2, 3, 5, 4)
		wantBC := nd{shape: []int{2, 3, 5, 4}, data: make([]float64, 120)}
		for i := range wantBC.data {
			idx := unravel(i, wantBC.shape)
			wantBC.data[i] = x.at([]int{idx[0], idx[1], idx[3]})
		}
		s.checkND(t, "broadcast_to", bc, wantBC, 0)
		eqShape(t, "expand_dims", s.ExpandDims(xa, 0, -1).Shape(), []int{1, 2, 3, 4, 1})
		eqShape(t, "squeeze", s.Squeeze(s.Reshape(xa, 1, 2, 1, 12), -2).Shape(), []int{1, 2, 12})
		eqShape(t, "squeeze-all", s.Squeeze(s.Reshape(xa, 1, 2, 1, 12)).Shape(), []int{2, 12})

		// slices with steps, negative bounds and a negative stride
		sl := s.Slice(xa, []int{0, -1, 3}, []int{2, -4, 0}, []int{1, -1, -2})
		want := nd{shape: []int{2, 3, 2}}
		for i := 0; i < 2; i++ {
			for j := 2; j >= 0; j-- {
				for k := 3; k > 0; k -= 2 {
					want.data = append(want.data, x.at([]int{i, j, k}))
				}
			}
		}
		s.checkND(t, "slice", sl, want, 0)
		s.checkND(t, "slice-clamp", s.Slice(xa, []int{0, 0, 2}, []int{100, 100, 100}, nil),
			sliceLast(x, 2), 0)
		upd := s.SliceUpdate(xa, s.Zeros(Float32, 2, 3, 2), []int{0, 0, 2}, []int{2, 3, 4}, nil)
		wantU := mapIdx(x, func(idx []int, v float64) float64 {
			if idx[2] >= 2 {
				return 0
			}
			return v
		})
		s.checkND(t, "slice_update", upd, wantU, 0)

		cat := s.Concatenate(-1, xa, s.Neg(xa))
		wantC := nd{shape: []int{2, 3, 8}}
		for i := 0; i < 6; i++ {
			wantC.data = append(wantC.data, x.data[i*4:i*4+4]...)
			for _, v := range x.data[i*4 : i*4+4] {
				wantC.data = append(wantC.data, -v)
			}
		}
		s.checkND(t, "concatenate", cat, wantC, 0)
		eqShape(t, "stack", s.Stack(1, xa, xa).Shape(), []int{2, 2, 3, 4})
		parts := s.Split(cat, []int{4}, 2)
		s.checkND(t, "split0", parts[0], x, 0)
		s.checkND(t, "split1", parts[1], mapND(x, func(v float64) float64 { return -v }), 0)
		ps := s.SplitSizes(xa, []int{1, 2}, 1)
		eqShape(t, "split-sizes", ps[1].Shape(), []int{2, 2, 4})

		idx := s.FromInt64s([]int64{2, 0, -1}, 3)
		tk := s.Take(xa, idx, 1)
		wantT := nd{shape: []int{2, 3, 4}}
		for i := 0; i < 2; i++ {
			for _, j := range []int{2, 0, 2} {
				for k := 0; k < 4; k++ {
					wantT.data = append(wantT.data, x.at([]int{i, j, k}))
				}
			}
		}
		s.checkND(t, "take", tk, wantT, 0)

		ai := []int32{3, 0, 1, 2, 2, 2}
		tai := s.TakeAlongAxis(s.Reshape(xa, 6, 4), s.FromInt32s(ai, 6, 1), 1)
		wantTA := nd{shape: []int{6, 1}}
		for i, j := range ai {
			wantTA.data = append(wantTA.data, x.data[i*4+int(j)])
		}
		s.checkND(t, "take_along_axis", tai, wantTA, 0)
		pa := s.PutAlongAxis(s.Reshape(xa, 6, 4), s.FromInt32s(ai, 6, 1), s.Full(9, Float32, 6, 1), 1)
		wantPA := nd{shape: []int{6, 4}, data: append([]float64{}, x.data...)}
		for i, j := range ai {
			wantPA.data[i*4+int(j)] = 9
		}
		s.checkND(t, "put_along_axis", pa, wantPA, 0)

		// gather of single elements by (row, col) pairs, and of row slices
		g := s.Gather(s.Reshape(xa, 6, 4), []*Array{s.FromInt32s([]int32{5, 0, -1}, 3), s.FromInt32s([]int32{1, 3, 0}, 3)},
			[]int{0, 1}, []int{1, 1})
		s.checkND(t, "gather", g, nd{[]int{3, 1, 1}, []float64{x.data[5*4+1], x.data[3], x.data[5*4]}}, 0)
		gr := s.Gather(s.Reshape(xa, 6, 4), []*Array{s.FromInt64s([]int64{2, 9}, 2)}, []int{0}, []int{1, 4})
		eqShape(t, "gather-rows", gr.Shape(), []int{2, 1, 4})
		if v := s.Float32s(gr); float64(v[0]) != x.data[8] {
			t.Fatalf("gather rows %v", v)
		}

		// scatter_add with duplicate rows
		z := s.Zeros(Float32, 3, 2)
		rows := s.FromInt32s([]int32{0, 2, 0}, 3)
		u := s.Reshape(s.FromFloat32s([]float32{1, 2, 3, 4, 5, 6}, 6), 3, 1, 2)
		s.checkND(t, "scatter_add", s.ScatterAdd(z, []*Array{rows}, u, []int{0}),
			nd{[]int{3, 2}, []float64{6, 8, 0, 0, 3, 4}}, 0)
		s.checkND(t, "scatter", s.Scatter(z, []*Array{s.FromInt32s([]int32{1}, 1)}, s.Reshape(s.FromFloat32s([]float32{7, 8}, 2), 1, 1, 2), []int{0}),
			nd{[]int{3, 2}, []float64{0, 0, 7, 8, 0, 0}}, 0)

		pd := s.Pad(s.Reshape(xa, 6, 4), []int{1, 0}, []int{0, 2}, -5)
		wantP := nd{shape: []int{7, 6}}
		for i := 0; i < 7; i++ {
			for j := 0; j < 6; j++ {
				v := -5.0
				if i >= 1 && j < 4 {
					v = x.data[(i-1)*4+j]
				}
				wantP.data = append(wantP.data, v)
			}
		}
		s.checkND(t, "pad", pd, wantP, 0)
		tl := s.Tile(s.FromFloat32s([]float32{1, 2}, 1, 2), 2, 2)
		s.checkND(t, "tile", tl, nd{[]int{2, 4}, []float64{1, 2, 1, 2, 1, 2, 1, 2}}, 0)
		s.checkND(t, "arange", s.Arange(2, -1, -0.5, Float32), nd{[]int{6}, []float64{2, 1.5, 1, 0.5, 0, -0.5}}, 0)
		if g := s.Int64s(s.Arange(0, 5, 2, Int64)); len(g) != 3 || g[2] != 4 {
			t.Fatalf("arange int64 %v", g)
		}
		s.checkND(t, "full", s.Full(2.5, Float32, 2, 2), nd{[]int{2, 2}, []float64{2.5, 2.5, 2.5, 2.5}}, 0)
		s.checkND(t, "ones", s.Ones(Float32, 3), nd{[]int{3}, []float64{1, 1, 1}}, 0)

		cs := s.CumSum(s.FromFloat32s([]float32{1, 2, 3, 4}, 2, 2), -1, false, true)
		s.checkND(t, "cumsum", cs, nd{[]int{2, 2}, []float64{1, 3, 3, 7}}, 0)
		cs = s.CumSum(s.FromFloat32s([]float32{1, 2, 3, 4}, 4), 0, true, false)
		s.checkND(t, "cumsum-rev-excl", cs, nd{[]int{4}, []float64{9, 7, 4, 0}}, 0)
		m := s.Ones(Float32, 3, 3)
		s.checkND(t, "tril", s.Tril(m, 0), nd{[]int{3, 3}, []float64{1, 0, 0, 1, 1, 0, 1, 1, 1}}, 0)
		s.checkND(t, "triu", s.Triu(m, 1), nd{[]int{3, 3}, []float64{0, 1, 1, 0, 0, 1, 0, 0, 0}}, 0)

		cond := s.Greater(xa, s.Scalar(0, Float32))
		s.checkND(t, "where", s.Where(cond, xa, s.Scalar(-1, Float32)),
			mapND(x, func(v float64) float64 {
				if v > 0 {
					return v
				}
				return -1
			}), 0)
		s.checkND(t, "clip", s.Clip(xa, s.Scalar(-0.5, Float32), s.Scalar(0.5, Float32)),
			mapND(x, func(v float64) float64 { return math.Max(-0.5, math.Min(0.5, v)) }), 0)
		s.checkND(t, "clip-lo", s.Clip(xa, s.Scalar(0, Float32), nil), mapND(x, func(v float64) float64 { return math.Max(0, v) }), 0)
		ci := s.AsType(s.FromFloat32s([]float32{1.7, -1.7, 2.5}, 3), Int32)
		if ci.Dtype() != Int32 {
			t.Fatalf("astype dtype %v", ci.Dtype())
		}
		if g := s.Int32s(ci); g[0] != 1 || g[1] != -1 || g[2] != 2 {
			t.Fatalf("astype trunc %v", g)
		}
	})
}

func sliceLast(x nd, from int) nd {
	o := nd{shape: append(append([]int{}, x.shape[:len(x.shape)-1]...), x.shape[len(x.shape)-1]-from)}
	last := x.shape[len(x.shape)-1]
	for i := 0; i < len(x.data); i += last {
		o.data = append(o.data, x.data[i+from:i+last]...)
	}
	return o
}

func mapIdx(x nd, f func(idx []int, v float64) float64) nd {
	o := nd{shape: x.shape, data: make([]float64, len(x.data))}
	for i, v := range x.data {
		o.data[i] = f(unravel(i, x.shape), v)
	}
	return o
}

func softmaxND(x nd) nd {
	last := x.shape[len(x.shape)-1]
	o := nd{shape: x.shape, data: make([]float64, len(x.data))}
	for i := 0; i < len(x.data); i += last {
		m := math.Inf(-1)
		for _, v := range x.data[i : i+last] {
			m = math.Max(m, v)
		}
		var z float64
		for j, v := range x.data[i : i+last] {
			o.data[i+j] = math.Exp(v - m)
			z += o.data[i+j]
		}
		for j := range o.data[i : i+last] {
			o.data[i+j] /= z
		}
	}
	return o
}

func TestNormsAttention(t *testing.T) {
	r := rand.New(rand.NewSource(6))
	x := randND(r, -2, 2, 2, 3, 8)
	w := randND(r, 0.5, 1.5, 8)
	b := randND(r, -0.5, 0.5, 8)
	const eps = 1e-5
	norm := func(rms bool, useW, useB bool) nd {
		o := nd{shape: x.shape, data: make([]float64, len(x.data))}
		for i := 0; i < len(x.data); i += 8 {
			row := x.data[i : i+8]
			var mean, v float64
			if !rms {
				for _, e := range row {
					mean += e
				}
				mean /= 8
			}
			for _, e := range row {
				v += (e - mean) * (e - mean)
			}
			v /= 8
			for j, e := range row {
				y := (e - mean) / math.Sqrt(v+eps)
				if useW {
					y *= w.data[j]
				}
				if useB {
					y += b.data[j]
				}
				o.data[i+j] = y
			}
		}
		return o
	}
	do(t, func(s *Scope) {
		// half-precision inputs keep their dtype through the fused ops
		for _, dt := range []Dtype{Float16, BFloat16} {
			h := s.AsType(s.fromND(x), dt)
			for name, y := range map[string]*Array{
				"softmax":    s.Softmax(h, -1),
				"layer_norm": s.LayerNorm(h, nil, nil, eps),
				"rms_norm":   s.RMSNorm(h, nil, eps),
			} {
				if y.Dtype() != dt {
					t.Fatalf("%s of %v gave %v", name, dt, y.Dtype())
				}
			}
			s.checkND(t, "softmax-"+dt.String(), s.Softmax(h, -1), softmaxND(mapND(x, func(v float64) float64 {
				if dt == Float16 {
					return float64(F16ToF32(F32ToF16(float32(v))))
				}
				return float64(BF16ToF32(F32ToBF16(float32(v))))
			})), 1e-2)
		}
		xa, wa, ba := s.fromND(x), s.fromND(w), s.fromND(b)
		s.checkND(t, "layer_norm", s.LayerNorm(xa, wa, ba, eps), norm(false, true, true), 1e-5)
		s.checkND(t, "layer_norm-nil", s.LayerNorm(xa, nil, nil, eps), norm(false, false, false), 1e-5)
		s.checkND(t, "rms_norm", s.RMSNorm(xa, wa, eps), norm(true, true, false), 1e-5)
		s.checkND(t, "softmax", s.Softmax(xa, -1), softmaxND(x), 1e-6)
		s.checkND(t, "softmax-default", s.Softmax(s.Transpose(xa, 0, 2, 1)), softmaxND(transposeND(x, []int{0, 2, 1})), 1e-6)

		// attention: B=2, H=3, Lq=4, Lk=5, D=8 with an additive mask broadcast over heads
		q := randND(r, -1, 1, 2, 3, 4, 8)
		k := randND(r, -1, 1, 2, 3, 5, 8)
		v := randND(r, -1, 1, 2, 3, 5, 8)
		mask := randND(r, -3, 0, 2, 1, 4, 5)
		scale := float32(1 / math.Sqrt(8))
		logits := mapND(matmulND(q, transposeND(k, []int{0, 1, 3, 2})), func(e float64) float64 { return e * float64(scale) })
		want := matmulND(softmaxND(zipND(logits, mask, func(a, b float64) float64 { return a + b })), v)
		got := s.ScaledDotProductAttention(s.fromND(q), s.fromND(k), s.fromND(v), scale, s.fromND(mask))
		s.checkND(t, "sdpa", got, want, 1e-5)
		want0 := matmulND(softmaxND(logits), v)
		s.checkND(t, "sdpa-nomask", s.ScaledDotProductAttention(s.fromND(q), s.fromND(k), s.fromND(v), scale, nil), want0, 1e-5)
	})
}

func TestDtypeRoundTrips(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	vals := make([]float32, 64)
	for i := range vals {
		vals[i] = float32(r.NormFloat64() * 100)
	}
	vals = append(vals, 0, -0, 65504, 1e-7, 6e-5)
	do(t, func(s *Scope) {
		for _, dt := range []Dtype{Float16, BFloat16} {
			raw := make([]byte, 2*len(vals))
			enc, dec := F32ToF16, F16ToF32
			if dt == BFloat16 {
				enc, dec = F32ToBF16, BF16ToF32
			}
			for i, v := range vals {
				h := enc(v)
				raw[2*i], raw[2*i+1] = byte(h), byte(h>>8)
			}
			a := s.FromBytes(raw, dt, len(vals))
			if a.Dtype() != dt {
				t.Fatalf("dtype %v", a.Dtype())
			}
			// raw bytes come back identical
			back := s.Bytes(a)
			for i := range raw {
				if back[i] != raw[i] {
					t.Fatalf("%v bytes differ at %d", dt, i)
				}
			}
			// MLX's own float32->half cast agrees with the Go encoder
			mc := s.Bytes(s.AsType(s.FromFloat32s(vals, len(vals)), dt))
			for i := range vals {
				if mc[2*i] != raw[2*i] || mc[2*i+1] != raw[2*i+1] {
					t.Fatalf("%v cast of %v: mlx %02x%02x go %02x%02x", dt, vals[i], mc[2*i+1], mc[2*i], raw[2*i+1], raw[2*i])
				}
			}
			f := s.Float32s(a)
			for i := range vals {
				h := uint16(raw[2*i]) | uint16(raw[2*i+1])<<8
				if f[i] != dec(h) {
					t.Fatalf("%v decode %d: %v vs %v", dt, i, f[i], dec(h))
				}
			}
			// arithmetic in half precision stays in that dtype
			if d := s.Add(a, a).Dtype(); d != dt {
				t.Fatalf("add promoted %v to %v", dt, d)
			}
		}
		i64 := []int64{math.MaxInt64, math.MinInt64, 1 << 40, -3}
		if g := s.Int64s(s.FromInt64s(i64, 4)); g[0] != i64[0] || g[1] != i64[1] || g[2] != i64[2] {
			t.Fatalf("int64 %v", g)
		}
		if g := s.Int32s(s.FromInt32s([]int32{math.MaxInt32, -5}, 2)); g[0] != math.MaxInt32 || g[1] != -5 {
			t.Fatalf("int32 %v", g)
		}
		f64 := []float64{math.Pi, 1e300}
		if g := s.Float64s(s.Mul(s.FromFloat64s(f64, 2), s.Scalar(1, Float64))); g[0] != math.Pi || g[1] != 1e300 {
			t.Fatalf("float64 %v", g)
		}
		if g := s.Bools(s.FromBools([]bool{true, false}, 2)); !g[0] || g[1] {
			t.Fatalf("bool %v", g)
		}
		if g := s.Int64s(s.FromBytes([]byte{200, 3}, Uint8, 2)); g[0] != 200 || g[1] != 3 {
			t.Fatalf("uint8 %v", g)
		}
		if g := s.Int64s(s.FromBytes([]byte{0xff, 3}, Int8, 2)); g[0] != -1 || g[1] != 3 {
			t.Fatalf("int8 %v", g)
		}
		// 0-d and empty arrays
		if g := s.Float32s(s.Scalar(3, Float32)); len(g) != 1 || g[0] != 3 {
			t.Fatalf("scalar %v", g)
		}
		if g := s.Float32s(s.FromFloat32s(nil, 0, 3)); len(g) != 0 {
			t.Fatalf("empty %v", g)
		}
		if g := s.Int64s(s.Scalar(1<<40+1, Int64)); g[0] != 1<<40+1 {
			t.Fatalf("int64 scalar %v", g)
		}
	})
}

func TestHalfConversions(t *testing.T) {
	// Exhaustive: every finite binary16 value survives F16->F32->F16.
	for h := 0; h < 1<<16; h++ {
		f := F16ToF32(uint16(h))
		if f != f {
			continue
		}
		if g := F32ToF16(f); g != uint16(h) {
			t.Fatalf("f16 %04x -> %v -> %04x", h, f, g)
		}
	}
	if F32ToF16(70000) != 0x7c00 || F32ToF16(-1e-9) != 0x8000 {
		t.Fatal("f16 overflow/underflow")
	}
	for h := 0; h < 1<<16; h++ {
		f := BF16ToF32(uint16(h))
		if f != f {
			continue
		}
		if g := F32ToBF16(f); g != uint16(h) {
			t.Fatalf("bf16 %04x -> %v -> %04x", h, f, g)
		}
	}
}
