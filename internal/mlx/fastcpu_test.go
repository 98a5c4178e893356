//go:build cgo && !nomlx

package mlx

import (
	"math"
	"math/rand"
	"os"
	"strings"
	"testing"
)

// fastISAs lists the SIMD variants this CPU can run (1 avx512, 2 avx2,
// 3 generic); each test runs under every one of them.
func fastISAs(t *testing.T) []int {
	var out []int
	for _, isa := range []int{1, 2, 3} {
		if err := libFastSetISA(isa); err == nil {
			out = append(out, isa)
		}
	}
	if err := libFastSetISA(0); err != nil {
		t.Fatal(err)
	}
	return out
}

func withISAs(t *testing.T, fn func(t *testing.T, isa string)) {
	for _, isa := range fastISAs(t) {
		if err := libFastSetISA(isa); err != nil {
			t.Fatal(err)
		}
		name := libFastISA()
		t.Run(name, func(t *testing.T) { fn(t, name) })
	}
	if err := libFastSetISA(0); err != nil {
		t.Fatal(err)
	}
}

func sigmoid64(v float64) float64 { return 1 / (1 + math.Exp(-v)) }

// softmaxND (last axis, float64) is in ops_test.go.

func layerNormND(x nd, w, b []float64, eps float64) nd {
	n := x.shape[len(x.shape)-1]
	o := nd{shape: x.shape, data: make([]float64, len(x.data))}
	for r := 0; r < len(x.data)/n; r++ {
		row := x.data[r*n : (r+1)*n]
		mean, v := 0.0, 0.0
		for _, e := range row {
			mean += e
		}
		mean /= float64(n)
		for _, e := range row {
			v += (e - mean) * (e - mean)
		}
		rs := 1 / math.Sqrt(v/float64(n)+eps)
		for i, e := range row {
			y := (e - mean) * rs
			if w != nil {
				y *= w[i]
			}
			if b != nil {
				y += b[i]
			}
			o.data[r*n+i] = y
		}
	}
	return o
}

func swigluND(x nd) nd {
	h := x.shape[len(x.shape)-1] / 2
	sh := append(append([]int(nil), x.shape[:len(x.shape)-1]...), h)
	o := nd{shape: sh, data: make([]float64, size(sh))}
	for r := 0; r < len(o.data)/h; r++ {
		for i := 0; i < h; i++ {
			a, b := x.data[r*2*h+i], x.data[r*2*h+h+i]
			o.data[r*h+i] = a * sigmoid64(a) * b
		}
	}
	return o
}

// TestFastExpAccuracy sweeps exp over every float32 exponent range it can
// return a normal result for and checks the relative error bound, then the
// special values.
func TestFastExpAccuracy(t *testing.T) {
	const n = 1 << 20
	xs := make([]float32, 0, n+64)
	lo, hi := -87.3, 88.72
	for i := 0; i < n; i++ {
		xs = append(xs, float32(lo+(hi-lo)*float64(i)/float64(n-1)))
	}
	r := rand.New(rand.NewSource(3))
	for i := 0; i < 4096; i++ { // small arguments, where exp ~ 1 + x
		xs = append(xs, float32(r.NormFloat64()*1e-3))
	}
	withISAs(t, func(t *testing.T, isa string) {
		do(t, func(s *Scope) {
			got := s.Float32s(s.FastExp(s.FromFloat32s(xs, len(xs))))
			worst, at := 0.0, float32(0)
			for i, x := range xs {
				want := math.Exp(float64(x))
				if float32(want) > math.MaxFloat32 || want < 0x1p-126 {
					continue
				}
				rel := math.Abs(float64(got[i])-want) / want
				if rel > worst {
					worst, at = rel, x
				}
			}
			t.Logf("%s: max relative error %.3g at x=%v over %d points", isa, worst, at, len(xs))
			if worst > 2e-7 {
				t.Fatalf("%s: exp relative error %.3g at x=%v exceeds 2e-7", isa, worst, at)
			}
			inf, nan := float32(math.Inf(1)), float32(math.NaN())
			special := []float32{-1e9, -104, -200, float32(math.Inf(-1)), 88.8, 89, 100, 1e9, inf,
				nan, 0, float32(math.Copysign(0, -1)), -87.5, -100, -103}
			sg := s.Float32s(s.FastExp(s.FromFloat32s(special, len(special))))
			for i, x := range special {
				want := math.Exp(float64(x))
				g := float64(sg[i])
				switch {
				case math.IsNaN(float64(x)):
					if !math.IsNaN(g) {
						t.Fatalf("%s: exp(NaN) = %v", isa, g)
					}
				case float32(want) > math.MaxFloat32:
					if !math.IsInf(g, 1) {
						t.Fatalf("%s: exp(%v) = %v, want +Inf", isa, x, g)
					}
				case want < 0x1p-126: // subnormal or zero: absolute error
					if math.Abs(g-want) > 0x1p-148 {
						t.Fatalf("%s: exp(%v) = %v, want %v", isa, x, g, want)
					}
				default:
					if math.Abs(g-want) > 2e-7*want {
						t.Fatalf("%s: exp(%v) = %v, want %v", isa, x, g, want)
					}
				}
			}
			if sg[0] != 0 {
				t.Fatalf("%s: exp(-1e9) = %v, want 0", isa, sg[0])
			}
			// sigmoid over the range where its result is a normal float:
			// the exp error plus one addition and one division.
			sx := make([]float32, 0, 1<<18)
			for i := 0; i < 1<<18; i++ {
				sx = append(sx, float32(-87+(87+30)*float64(i)/float64(1<<18-1)))
			}
			sgot := s.Float32s(s.FastSigmoid(s.FromFloat32s(sx, len(sx))))
			worst, at = 0, 0
			for i, x := range sx {
				want := sigmoid64(float64(x))
				if rel := math.Abs(float64(sgot[i])-want) / want; rel > worst {
					worst, at = rel, x
				}
			}
			t.Logf("%s: sigmoid max relative error %.3g at x=%v", isa, worst, at)
			if worst > 3e-7 {
				t.Fatalf("%s: sigmoid relative error %.3g at x=%v exceeds 3e-7", isa, worst, at)
			}
		})
	})
}

func TestFastKernels(t *testing.T) {
	r := rand.New(rand.NewSource(11))
	shapes := [][]int{{1}, {7}, {1023}, {3, 17}, {2, 5, 33}, {4, 64, 128}, {2, 300, 200}}
	withISAs(t, func(t *testing.T, isa string) {
		do(t, func(s *Scope) {
			for _, sh := range shapes {
				x := randND(r, -8, 8, sh...)
				g := randND(r, -8, 8, sh...)
				xa, ga := s.fromND(x), s.fromND(g)
				s.checkND(t, "exp", s.FastExp(xa), mapND(x, math.Exp), 1e-6)
				s.checkND(t, "sigmoid", s.FastSigmoid(xa), mapND(x, sigmoid64), 1e-6)
				s.checkND(t, "sigmoid_mul", s.FastSigmoidMul(xa, ga),
					zipND(x, g, func(a, b float64) float64 { return a * sigmoid64(b) }), 1e-6)
				s.checkND(t, "silu_mul", s.FastSiLUMul(xa, ga),
					zipND(x, g, func(a, b float64) float64 { return a * sigmoid64(a) * b }), 1e-6)
				s.checkND(t, "softmax", s.FastSoftmax(xa), softmaxND(x), 1e-6)
				// against MLX's own ops
				s.checkND(t, "sigmoid vs mlx", s.FastSigmoid(xa), toND(s, s.Sigmoid(xa)), 1e-6)
				s.checkND(t, "softmax vs mlx", s.FastSoftmax(xa), toND(s, s.Softmax(xa)), 1e-6)
				c := sh[len(sh)-1]
				w, b := randND(r, -2, 2, c), randND(r, -2, 2, c)
				wa, ba := s.fromND(w), s.fromND(b)
				s.checkND(t, "layer_norm", s.FastLayerNorm(xa, wa, ba, 1e-5),
					layerNormND(x, w.data, b.data, 1e-5), 1e-5)
				s.checkND(t, "layer_norm w", s.FastLayerNorm(xa, wa, nil, 1e-5),
					layerNormND(x, w.data, nil, 1e-5), 1e-5)
				s.checkND(t, "layer_norm b", s.FastLayerNorm(xa, nil, ba, 1e-5),
					layerNormND(x, nil, b.data, 1e-5), 1e-5)
				s.checkND(t, "layer_norm none", s.FastLayerNorm(xa, nil, nil, 1e-3),
					layerNormND(x, nil, nil, 1e-3), 1e-5)
				s.checkND(t, "layer_norm vs mlx", s.FastLayerNorm(xa, wa, ba, 1e-5),
					toND(s, s.LayerNorm(xa, wa, ba, 1e-5)), 1e-5)
				if c%2 == 0 {
					s.checkND(t, "swiglu", s.FastSwiGLU(xa), swigluND(x), 1e-6)
				}
			}
		})
	})
}

func toND(s *Scope, a *Array) nd {
	f := s.Float32s(a)
	o := nd{shape: a.Shape(), data: make([]float64, len(f))}
	for i, v := range f {
		o.data[i] = float64(v)
	}
	return o
}

func TestFastLayoutsAndBroadcast(t *testing.T) {
	r := rand.New(rand.NewSource(12))
	x := randND(r, -5, 5, 6, 9, 34)
	g := randND(r, -5, 5, 34)
	perm := []int{2, 0, 1}
	xt := transposeND(x, perm)
	do(t, func(s *Scope) {
		xa := s.Transpose(s.fromND(x), perm...) // non-contiguous
		s.checkND(t, "exp T", s.FastExp(xa), mapND(xt, math.Exp), 1e-6)
		s.checkND(t, "sigmoid T", s.FastSigmoid(xa), mapND(xt, sigmoid64), 1e-6)
		s.checkND(t, "softmax T", s.FastSoftmax(xa), softmaxND(xt), 1e-6)
		s.checkND(t, "layer_norm T", s.FastLayerNorm(xa, nil, nil, 1e-5), layerNormND(xt, nil, nil, 1e-5), 1e-5)
		s.checkND(t, "swiglu T", s.FastSwiGLU(s.Transpose(s.fromND(x), 1, 0, 2)),
			swigluND(transposeND(x, []int{1, 0, 2})), 1e-6)
		// a slice (view with an offset) and a broadcast operand
		xs := s.Slice(s.fromND(x), []int{1, 0, 0}, []int{5, 9, 34}, nil)
		xsND := nd{shape: []int{4, 9, 34}, data: x.data[9*34 : 5*9*34]}
		ga := s.fromND(g)
		s.checkND(t, "sigmoid_mul bcast", s.FastSigmoidMul(xs, ga),
			zipND(xsND, g, func(a, b float64) float64 { return a * sigmoid64(b) }), 1e-6)
		s.checkND(t, "silu_mul bcast", s.FastSiLUMul(ga, xs),
			zipND(g, xsND, func(a, b float64) float64 { return a * sigmoid64(a) * b }), 1e-6)
		// weight given as [1, C]
		w := randND(r, -1, 1, 1, 34)
		s.checkND(t, "layer_norm w[1,C]", s.FastLayerNorm(xs, s.fromND(w), nil, 1e-5),
			layerNormND(xsND, w.data, nil, 1e-5), 1e-5)
	})
}

func TestFastSpecialValues(t *testing.T) {
	inf, nan := math.Inf(1), math.NaN()
	rows := nd{shape: []int{5, 20}, data: make([]float64, 100)}
	for i := 0; i < 20; i++ {
		rows.data[i] = -1e9                                      // all -1e9: uniform
		rows.data[20+i] = float64(i)                             // finite
		rows.data[40+i] = math.Inf(-1)                           // all -inf: NaN
		rows.data[60+i] = float64(i % 3)                         // with NaN
		rows.data[80+i] = float64(float32(float64(i)*0.5 - 1e3)) // masked entries below
		if i%4 == 0 {
			rows.data[80+i] = math.Inf(-1)
		}
	}
	rows.data[65] = nan
	withISAs(t, func(t *testing.T, isa string) {
		do(t, func(s *Scope) {
			got := s.Float32s(s.FastSoftmax(s.fromND(rows)))
			want := softmaxND(rows)
			for i := range got {
				w, g := want.data[i], float64(got[i])
				if i < 20 && g != 0.05 && math.Abs(g-0.05) > 1e-8 {
					t.Fatalf("all -1e9 row: %v", got[:20])
				}
				if (i >= 40 && i < 80) != math.IsNaN(g) {
					t.Fatalf("element %d: got %v, want %v", i, g, w)
				}
				if !math.IsNaN(w) && math.Abs(g-w) > 1e-6 {
					t.Fatalf("element %d: got %v, want %v", i, g, w)
				}
				if i >= 80 && i%4 == 0 && g != 0 {
					t.Fatalf("masked element %d: %v", i, g)
				}
			}
			sp := []float32{float32(nan), float32(inf), float32(-inf), -1e9, 1e9, 0}
			sa := s.FromFloat32s(sp, len(sp))
			sig := s.Float32s(s.FastSigmoid(sa))
			wantSig := []float64{nan, 1, 0, 0, 1, 0.5}
			for i, w := range wantSig {
				if math.IsNaN(w) != math.IsNaN(float64(sig[i])) || (!math.IsNaN(w) && float64(sig[i]) != w) {
					t.Fatalf("sigmoid(%v) = %v, want %v", sp[i], sig[i], w)
				}
			}
			ln := s.Float32s(s.FastLayerNorm(s.FromFloat32s([]float32{1, float32(nan), 3, 1, 1, 1}, 2, 3), nil, nil, 1e-5))
			if !math.IsNaN(float64(ln[0])) || ln[3] != 0 {
				t.Fatalf("layer_norm with NaN row / constant row: %v", ln)
			}
		})
	})
}

func TestFastHalfDtypes(t *testing.T) {
	r := rand.New(rand.NewSource(13))
	x := randND(r, -4, 4, 3, 40)
	g := randND(r, -4, 4, 3, 40)
	do(t, func(s *Scope) {
		for _, dt := range []Dtype{Float16, BFloat16} {
			xa := s.AsType(s.fromND(x), dt)
			ga := s.AsType(s.fromND(g), dt)
			xr := toND(s, s.AsType(xa, Float32)) // the rounded inputs
			gr := toND(s, s.AsType(ga, Float32))
			tol := 1e-3
			if dt == BFloat16 {
				tol = 8e-3
			}
			check := func(name string, a *Array, want nd) {
				t.Helper()
				if a.Dtype() != dt {
					t.Fatalf("%s %v: result dtype %v", name, dt, a.Dtype())
				}
				s.checkND(t, name+" "+dt.String(), s.AsType(a, Float32), want, tol)
			}
			check("exp", s.FastExp(xa), mapND(xr, math.Exp))
			check("sigmoid", s.FastSigmoid(xa), mapND(xr, sigmoid64))
			check("softmax", s.FastSoftmax(xa), softmaxND(xr))
			check("sigmoid_mul", s.FastSigmoidMul(xa, ga), zipND(xr, gr, func(a, b float64) float64 { return a * sigmoid64(b) }))
			check("silu_mul", s.FastSiLUMul(xa, ga), zipND(xr, gr, func(a, b float64) float64 { return a * sigmoid64(a) * b }))
			check("swiglu", s.FastSwiGLU(xa), swigluND(xr))
			check("layer_norm", s.FastLayerNorm(xa, nil, nil, 1e-5), layerNormND(xr, nil, nil, 1e-5))
		}
	})
}

func TestFastErrors(t *testing.T) {
	if err := libFastCheckDevice(GPU); err == nil || !strings.Contains(err.Error(), "CPU device") {
		t.Fatalf("GPU device check: %v", err)
	}
	if err := libFastCheckDevice(CPU); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		fn   func(s *Scope)
		want string
	}{
		{"int input", func(s *Scope) { s.FastSigmoid(s.Arange(0, 4, 1, Int32)) }, "float32"},
		{"odd swiglu", func(s *Scope) { s.FastSwiGLU(s.Zeros(Float32, 2, 3)) }, "even"},
		{"scalar softmax", func(s *Scope) { s.FastSoftmax(s.Scalar(1, Float32)) }, "rank"},
		{"ln weight size", func(s *Scope) { s.FastLayerNorm(s.Zeros(Float32, 2, 3), s.Zeros(Float32, 4), nil, 1e-5) }, "elements"},
		{"bcast mismatch", func(s *Scope) { s.FastSiLUMul(s.Zeros(Float32, 2, 3), s.Zeros(Float32, 4)) }, "roadcast"},
		{"nil", func(s *Scope) { s.FastExp(nil) }, "nil"},
	}
	for _, c := range cases {
		err := Do(func(s *Scope) error { c.fn(s); return nil })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
	// On a GPU, if there is one, the builders themselves refuse.
	var gpu bool
	do(t, func(s *Scope) {
		for _, d := range s.Devices() {
			gpu = gpu || d.Type == GPU
		}
	})
	if gpu {
		err := Do(func(s *Scope) error {
			prev := s.DefaultDevice()
			s.SetDefaultDevice(Device{Type: GPU})
			defer s.SetDefaultDevice(prev)
			s.FastSigmoid(s.Zeros(Float32, 4))
			return nil
		})
		if err == nil || !strings.Contains(err.Error(), "CPU device") {
			t.Fatalf("on GPU: %v", err)
		}
	}
	// MLX cannot serialize custom primitives: exporting fails cleanly.
	err := Do(func(s *Scope) error {
		f := s.Closure(func(s *Scope, in []*Array) ([]*Array, error) { return []*Array{s.FastSigmoid(in[0])}, nil })
		defer f.Release()
		s.ExportFunction(t.TempDir()+"/f.mlxfn", f, []*Array{s.Zeros(Float32, 4)}, false)
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "serialize") {
		t.Fatalf("export of a fast kernel: %v", err)
	}
	// empty arrays work
	do(t, func(s *Scope) {
		if got := s.FastSoftmax(s.Zeros(Float32, 0, 4)).Shape(); len(got) != 2 || got[0] != 0 {
			t.Fatalf("empty softmax shape %v", got)
		}
		s.Eval(s.FastSigmoid(s.Zeros(Float32, 0)), s.FastSwiGLU(s.Zeros(Float32, 3, 0)))
	})
}

// TestFastCompiled: inside a compiled function the kernels give what they
// give uncompiled, and what MLX's plain ops give, next to fused
// elementwise neighbours.
func TestFastCompiled(t *testing.T) {
	r := rand.New(rand.NewSource(14))
	x := randND(r, -3, 3, 4, 33, 64)
	w := randND(r, -1, 1, 64)
	fast := func(s *Scope, in []*Array) ([]*Array, error) {
		h := s.Add(s.Mul(in[0], s.Scalar(0.5, Float32)), s.Scalar(0.1, Float32))
		ln := s.FastLayerNorm(h, in[1], in[1], 1e-5)
		a := s.FastSoftmax(s.Mul(ln, s.Scalar(2, Float32)))
		gate := s.FastSigmoidMul(a, h)
		sw := s.FastSwiGLU(s.Add(gate, ln))
		e := s.FastExp(s.Neg(s.Square(sw)))
		return []*Array{s.Add(e, s.FastSiLUMul(sw, sw)), s.FastSigmoid(ln)}, nil
	}
	plain := func(s *Scope, in []*Array) ([]*Array, error) {
		h := s.Add(s.Mul(in[0], s.Scalar(0.5, Float32)), s.Scalar(0.1, Float32))
		ln := s.LayerNorm(h, in[1], in[1], 1e-5)
		a := s.Softmax(s.Mul(ln, s.Scalar(2, Float32)), -1)
		gate := s.Mul(a, s.Sigmoid(h))
		parts := s.Split(s.Add(gate, ln), []int{32}, -1)
		sw := s.Mul(s.Mul(parts[0], s.Sigmoid(parts[0])), parts[1])
		e := s.Exp(s.Neg(s.Square(sw)))
		return []*Array{s.Add(e, s.Mul(s.Mul(sw, s.Sigmoid(sw)), sw)), s.Sigmoid(ln)}, nil
	}
	do(t, func(s *Scope) {
		xa, wa := s.fromND(x), s.fromND(w)
		fc, pc := s.Closure(fast), s.Closure(plain)
		defer fc.Release()
		defer pc.Release()
		cf := s.Compile(fc, false)
		defer cf.Release()
		want := s.Call(pc, xa, wa)
		unc := s.Call(fc, xa, wa)
		for rep := 0; rep < 2; rep++ {
			got := s.Call(cf, xa, wa)
			for i := range want {
				ref := toND(s, want[i])
				s.checkND(t, "uncompiled vs plain", unc[i], ref, 2e-5)
				s.checkND(t, "compiled vs plain", got[i], ref, 2e-5)
				s.checkND(t, "compiled vs uncompiled", got[i], toND(s, unc[i]), 1e-6)
			}
		}
	})
}

// TestFastRepeatedLarge runs the multi-threaded path many times (pool
// hand-offs) and checks every result.
func TestFastRepeatedLarge(t *testing.T) {
	r := rand.New(rand.NewSource(15))
	x := randND(r, -6, 6, 64, 1031)
	want := softmaxND(x)
	wantS := mapND(x, sigmoid64)
	do(t, func(s *Scope) {
		xa := s.fromND(x)
		for i := 0; i < 20; i++ {
			s.checkND(t, "softmax", s.FastSoftmax(xa), want, 1e-6)
			s.checkND(t, "sigmoid", s.FastSigmoid(s.Add(xa, s.Scalar(0, Float32))), wantS, 1e-6)
		}
	})
	isa, threads := FastCPUInfo()
	t.Logf("fast CPU kernels: %s, %d threads", isa, threads)
}

// TestFastExpExhaustive checks exp on every float32 whose exp is a normal
// float (~2.2e9 values, about a minute); run with OF3C_FASTCPU_EXHAUSTIVE=1.
func TestFastExpExhaustive(t *testing.T) {
	if os.Getenv("OF3C_FASTCPU_EXHAUSTIVE") == "" {
		t.Skip("set OF3C_FASTCPU_EXHAUSTIVE=1")
	}
	const chunk = 1 << 24
	buf := make([]float32, chunk)
	worst, at := 0.0, float32(0)
	check := func(lo, hi uint32) { // bit patterns [lo, hi)
		for b := lo; b < hi; {
			n := min(uint64(hi-b), chunk)
			for i := range buf[:n] {
				buf[i] = math.Float32frombits(b + uint32(i))
			}
			do(t, func(s *Scope) {
				got := s.Float32s(s.FastExp(s.FromFloat32s(buf[:n], int(n))))
				for i, x := range buf[:n] {
					want := math.Exp(float64(x))
					if float32(want) > math.MaxFloat32 || want < 0x1p-126 {
						continue
					}
					if rel := math.Abs(float64(got[i])-want) / want; rel > worst {
						worst, at = rel, x
					}
				}
			})
			b += uint32(n)
		}
	}
	check(0, math.Float32bits(88.73))          // +0 .. 88.73
	check(0x80000000, math.Float32bits(-87.4)) // -0 .. -87.4
	isa, _ := FastCPUInfo()
	t.Logf("%s: exhaustive max relative error %.4g at x=%v", isa, worst, at)
	if worst > 2e-7 {
		t.Fatalf("exp relative error %.4g at x=%v", worst, at)
	}
}
