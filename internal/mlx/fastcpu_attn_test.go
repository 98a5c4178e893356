//go:build cgo && !nomlx

package mlx

import (
	"math"
	"math/rand"
	"strings"
	"testing"
)

// ndOff is the offset of t's element for an index of a broadcast result
// (right-aligned; size-1 axes read index 0), without allocating.
func ndOff(t nd, idx []int) int {
	off, acc := 0, 1
	k := len(idx) - len(t.shape)
	for d := len(t.shape) - 1; d >= 0; d-- {
		if t.shape[d] != 1 {
			off += idx[d+k] * acc
		}
		acc *= t.shape[d]
	}
	return off
}

// attentionND is the float64 reference of FastAttention:
// softmax(scale·q·kᵀ + Σ max(b_j, −1e9))·v over the last two axes, batch
// axes broadcast. As the spec says, the logit sum is formed in float32 in
// order (scale·(q·k), then each bias) so that a row masked with −1e9 is
// uniform; the dot products, softmax and weighted sums are float64.
func attentionND(q, k, v nd, scale float64, bs ...nd) nd {
	last2 := func(t nd) []int { return t.shape[:len(t.shape)-2] }
	batch := bshape(bshape(last2(q), last2(k)), last2(v))
	for _, b := range bs {
		if len(b.shape) > 2 {
			batch = bshape(batch, last2(b))
		}
	}
	M, D := q.shape[len(q.shape)-2], q.shape[len(q.shape)-1]
	K, Dv := k.shape[len(k.shape)-2], v.shape[len(v.shape)-1]
	oshape := append(append([]int{}, batch...), M, Dv)
	o := nd{shape: oshape, data: make([]float64, size(oshape))}
	nb := len(batch)
	idx := make([]int, nb+2)
	logits := make([]float64, K)
	for bi := 0; bi < size(batch); bi++ {
		copy(idx, unravel(bi, batch))
		for i := 0; i < M; i++ {
			m := math.Inf(-1)
			for j := 0; j < K; j++ {
				dot := 0.0
				for d := 0; d < D; d++ {
					idx[nb], idx[nb+1] = i, d
					qv := q.data[ndOff(q, idx)]
					idx[nb], idx[nb+1] = j, d
					dot += qv * k.data[ndOff(k, idx)]
				}
				acc := float32(scale) * float32(dot)
				idx[nb], idx[nb+1] = i, j
				for _, b := range bs {
					acc += float32(math.Max(b.data[ndOff(b, idx)], -1e9))
				}
				logits[j] = float64(acc)
				m = math.Max(m, logits[j])
			}
			sum := 0.0
			for j := range logits {
				logits[j] = math.Exp(logits[j] - m)
				sum += logits[j]
			}
			for c := 0; c < Dv; c++ {
				s := 0.0
				for j := 0; j < K; j++ {
					idx[nb], idx[nb+1] = j, c
					s += logits[j] / sum * v.data[ndOff(v, idx)]
				}
				o.data[(bi*M+i)*Dv+c] = s
			}
		}
	}
	return o
}

// attentionMLX is the same with plain MLX ops (the unfused lowering).
func (s *Scope) attentionMLX(q, k, v *Array, scale float32, bs ...*Array) *Array {
	kt := s.Transpose(k, swapLast2(k.Ndim())...)
	return s.MatMul(s.softmaxBiasMLX(s.MatMul(q, kt), scale, bs...), v)
}

func swapLast2(r int) []int {
	p := make([]int, r)
	for i := range p {
		p[i] = i
	}
	p[r-1], p[r-2] = p[r-2], p[r-1]
	return p
}

func TestFastAttention(t *testing.T) {
	r := rand.New(rand.NewSource(31))
	type c struct {
		name    string
		q, k, v []int
		biases  [][]int
	}
	cases := []c{
		{"triangle (mask, pair), odd sizes", []int{3, 2, 7, 5}, []int{3, 2, 7, 5}, []int{3, 2, 7, 5}, [][]int{{3, 1, 1, 7}, {1, 2, 7, 7}}},
		{"queries != keys, row scalars", []int{2, 3, 19, 12}, []int{2, 3, 37, 12}, []int{2, 3, 37, 9}, [][]int{{37}, {2, 1, 19, 1}}},
		{"broadcast batch", []int{4, 1, 6, 8}, []int{1, 3, 10, 8}, []int{3, 10, 4}, [][]int{{4, 3, 6, 10}}},
		{"bias enlarges batch", []int{6, 16}, []int{9, 16}, []int{9, 3}, [][]int{{2, 6, 9}}},
		{"no bias", []int{5, 16, 32}, []int{5, 16, 32}, []int{5, 16, 32}, nil},
		{"one key", []int{2, 4, 3}, []int{2, 1, 3}, []int{2, 1, 7}, [][]int{{2, 4, 1}}},
		{"rank 2", []int{33, 17}, []int{18, 17}, []int{18, 40}, [][]int{{33, 18}}},
		{"threaded, items", []int{8, 4, 64, 32}, []int{8, 4, 100, 32}, []int{8, 4, 100, 32}, [][]int{{8, 1, 1, 100}, {1, 4, 64, 100}}},
		{"threaded, row blocks", []int{1, 2, 300, 24}, []int{1, 2, 300, 24}, []int{1, 2, 300, 24}, [][]int{{1, 1, 1, 300}, {2, 300, 300}}},
		{"many keys", []int{2, 3, 40}, []int{2, 5000, 40}, []int{2, 5000, 17}, [][]int{{2, 1, 5000}}},
	}
	withISAs(t, func(t *testing.T, isa string) {
		do(t, func(s *Scope) {
			for _, c := range cases {
				q, k, v := randND(r, -2, 2, c.q...), randND(r, -2, 2, c.k...), randND(r, -1, 1, c.v...)
				var bs []nd
				var ba []*Array
				for _, sh := range c.biases {
					b := randND(r, -3, 3, sh...)
					bs = append(bs, b)
					ba = append(ba, s.fromND(b))
				}
				scale := float32(1 / math.Sqrt(float64(c.q[len(c.q)-1])))
				qa, ka, va := s.fromND(q), s.fromND(k), s.fromND(v)
				got := s.FastAttention(qa, ka, va, scale, ba...)
				want := attentionND(q, k, v, float64(scale), bs...)
				s.checkND(t, c.name, got, want, 1e-5)
				s.checkND(t, c.name+" vs mlx", got, toND(s, s.attentionMLX(qa, ka, va, scale, ba...)), 1e-5)
				// heads-inner layout: same values; transposed back, merged
				// and used by an MLX op, the values of the transpose.
				hi := s.FastAttentionHeadsInner(qa, ka, va, scale, ba...)
				s.checkND(t, c.name+" heads inner", hi, want, 1e-5)
				if r := len(want.shape); r >= 3 {
					perm := swapLast2(r)
					perm[r-3], perm[r-2], perm[r-1] = r-2, r-3, r-1
					wt := transposeND(want, perm)
					sh := append(append([]int{}, wt.shape[:r-2]...), wt.shape[r-2]*wt.shape[r-1])
					merged := s.Add(s.Reshape(s.Transpose(hi, perm...), sh...), s.Scalar(1, Float32))
					wm := mapND(wt, func(x float64) float64 { return x + 1 })
					wm.shape = sh
					s.checkND(t, c.name+" heads inner merged", merged, wm, 1e-5)
				}
			}
		})
	})
}

// TestFastAttentionLayouts: q, k, v as the strided views the OF3 lowering
// hands over (heads split out of one projection, transposed), k given
// transposed in memory, and a −inf / −1e9 / NaN mask.
func TestFastAttentionLayouts(t *testing.T) {
	r := rand.New(rand.NewSource(32))
	const N, H, C = 9, 2, 12
	proj := randND(r, -2, 2, N, N, 3*H*C+H) // [N, N, q|k|v|bias]
	do(t, func(s *Scope) {
		pa := s.fromND(proj)
		head := func(part int) (*Array, nd) {
			lo := part * H * C
			sl := s.Slice(pa, []int{0, 0, lo}, []int{N, N, lo + H*C}, nil)
			a := s.Transpose(s.Reshape(sl, N, N, H, C), 0, 2, 1, 3) // [N, H, N, C]
			ref := nd{shape: []int{N, N, H, C}, data: make([]float64, N*N*H*C)}
			for i := 0; i < N*N; i++ {
				copy(ref.data[i*H*C:(i+1)*H*C], proj.data[i*(3*H*C+H)+lo:i*(3*H*C+H)+lo+H*C])
			}
			return a, transposeND(ref, []int{0, 2, 1, 3})
		}
		qa, q := head(0)
		ka, k := head(1)
		va, v := head(2)
		bsl := s.Slice(pa, []int{0, 0, 3 * H * C}, []int{N, N, 3*H*C + H}, nil)
		ba := s.Reshape(s.Transpose(bsl, 2, 0, 1), 1, H, N, N) // [1, H, N, N] pair bias
		bref := nd{shape: []int{N, N, H}, data: make([]float64, N*N*H)}
		for i := 0; i < N*N; i++ {
			copy(bref.data[i*H:(i+1)*H], proj.data[i*(3*H*C+H)+3*H*C:(i+1)*(3*H*C+H)])
		}
		b := transposeND(bref, []int{2, 0, 1})
		b.shape = []int{1, H, N, N}
		mask := nd{shape: []int{N, 1, 1, N}, data: make([]float64, N*N)}
		for i := 0; i < N; i++ {
			for j := 0; j < N; j++ {
				switch {
				case i == N-1:
					mask.data[i*N+j] = math.Inf(-1)
				case i == 3:
					mask.data[i*N+j] = -1e9
				case j >= N-2:
					mask.data[i*N+j] = -1e9
				}
			}
		}
		ma := s.fromND(mask)
		got := s.FastAttention(qa, ka, va, 0.3, ma, ba)
		want := attentionND(q, k, v, 0.3, mask, b)
		s.checkND(t, "views", got, want, 1e-5)
		s.checkND(t, "views vs mlx", got, toND(s, s.attentionMLX(qa, ka, va, 0.3, ma, ba)), 1e-5)
		// a fully masked row attends uniformly: the mean of v's rows
		f := s.Float32s(got)
		for h := 0; h < H; h++ {
			for i := 0; i < N; i++ {
				for c := 0; c < C; c++ {
					mean := 0.0
					for j := 0; j < N; j++ {
						mean += v.at([]int{N - 1, h, j, c}) / N
					}
					if g := float64(f[(((N-1)*H+h)*N+i)*C+c]); math.Abs(g-mean) > 1e-5 {
						t.Fatalf("masked row: %v, want mean %v", g, mean)
					}
				}
			}
		}
		// k stored transposed ([.., C, N] in memory)
		kT := transposeND(k, []int{0, 1, 3, 2})
		kTa := s.Transpose(s.fromND(kT), 0, 1, 3, 2)
		s.checkND(t, "k transposed in memory", s.FastAttention(qa, kTa, va, 0.3, ma), attentionND(q, k, v, 0.3, mask), 1e-5)
		// NaN in a bias propagates to its rows only
		nb := randND(r, -1, 1, 1, 1, 1, N)
		nb.data[2] = math.NaN()
		g := s.Float32s(s.FastAttention(qa, ka, va, 1, s.fromND(nb)))
		for i, x := range g {
			if !math.IsNaN(float64(x)) {
				t.Fatalf("NaN bias: element %d = %v, want NaN", i, x)
			}
		}
		// half inputs: computed in f32, result in the promoted dtype
		h16 := func(a *Array) *Array { return s.AsType(a, Float16) }
		hg := s.FastAttention(h16(qa), h16(ka), h16(va), 0.3, h16(ma))
		if hg.Dtype() != Float16 {
			t.Fatalf("half: dtype %v", hg.Dtype())
		}
		f32 := func(a *Array) *Array { return s.AsType(h16(a), Float32) }
		s.checkND(t, "half", s.AsType(hg, Float32), toND(s, s.attentionMLX(f32(qa), f32(ka), f32(va), 0.3, f32(ma))), 2e-3)
		// no keys: the weighted sum is empty
		z := s.FastAttention(s.Zeros(Float32, 2, 3, 4), s.Zeros(Float32, 2, 0, 4), s.Zeros(Float32, 2, 0, 5), 1)
		s.checkND(t, "no keys", z, nd{shape: []int{2, 3, 5}, data: make([]float64, 30)}, 0)
	})
}

func TestFastAttentionCompiled(t *testing.T) {
	r := rand.New(rand.NewSource(33))
	q, k, v := randND(r, -2, 2, 5, 2, 20, 8), randND(r, -2, 2, 5, 2, 20, 8), randND(r, -2, 2, 5, 2, 20, 8)
	b := randND(r, -2, 2, 1, 2, 20, 20)
	fast := func(s *Scope, in []*Array) ([]*Array, error) {
		qs := s.Add(in[0], s.Scalar(0.5, Float32))
		o := s.FastAttention(qs, in[1], in[2], 0.35, in[3])
		return []*Array{s.Mul(o, s.Scalar(2, Float32))}, nil
	}
	plain := func(s *Scope, in []*Array) ([]*Array, error) {
		qs := s.Add(in[0], s.Scalar(0.5, Float32))
		o := s.attentionMLX(qs, in[1], in[2], 0.35, in[3])
		return []*Array{s.Mul(o, s.Scalar(2, Float32))}, nil
	}
	do(t, func(s *Scope) {
		args := []*Array{s.fromND(q), s.fromND(k), s.fromND(v), s.fromND(b)}
		fc, pc := s.Closure(fast), s.Closure(plain)
		defer fc.Release()
		defer pc.Release()
		cf := s.Compile(fc, false)
		defer cf.Release()
		want := toND(s, s.Call(pc, args...)[0])
		for rep := 0; rep < 2; rep++ {
			s.checkND(t, "compiled vs plain", s.Call(cf, args...)[0], want, 2e-5)
		}
	})
}

func TestFastAttentionErrors(t *testing.T) {
	for _, c := range []struct {
		name    string
		q, k, v []int
		bias    []int
		want    string
	}{
		{"head sizes", []int{2, 3, 4}, []int{2, 3, 5}, []int{2, 3, 4}, nil, "head sizes"},
		{"key counts", []int{2, 3, 4}, []int{2, 3, 4}, []int{2, 5, 4}, nil, "key counts"},
		{"rank 1", []int{4}, []int{3, 4}, []int{3, 4}, nil, "rank"},
		{"batch", []int{2, 3, 4}, []int{3, 3, 4}, []int{3, 3, 4}, nil, "broadcast"},
		{"bias queries", []int{2, 3, 4}, []int{2, 5, 4}, []int{2, 5, 4}, []int{2, 5}, "bias"},
		{"bias batch", []int{2, 3, 4}, []int{2, 5, 4}, []int{2, 5, 4}, []int{3, 3, 5}, "broadcast"},
	} {
		err := Do(func(s *Scope) error {
			var bs []*Array
			if c.bias != nil {
				bs = append(bs, s.Zeros(Float32, c.bias...))
			}
			s.Eval(s.FastAttention(s.Zeros(Float32, c.q...), s.Zeros(Float32, c.k...), s.Zeros(Float32, c.v...), 1, bs...))
			return s.Err()
		})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%s: err %v, want %q", c.name, err, c.want)
		}
	}
}

// TestFastContiguous compares FastContiguous of strided views (transposes,
// slices, stepped slices, broadcasts, size-1 axes) with the plain-Go
// reference of the same view.
func TestFastContiguous(t *testing.T) {
	r := rand.New(rand.NewSource(34))
	do(t, func(s *Scope) {
		x := randND(r, -1, 1, 7, 33, 5, 40)
		xa := s.fromND(x)
		for _, perm := range [][]int{{0, 1, 2, 3}, {3, 2, 1, 0}, {0, 2, 1, 3}, {1, 0, 2, 3}, {0, 1, 3, 2}, {2, 0, 3, 1}, {3, 0, 1, 2}} {
			got := s.FastContiguous(s.Transpose(xa, perm...))
			s.checkND(t, "transpose", got, transposeND(x, perm), 0)
		}
		// large enough to be split over the pool, odd tile edges
		big := randND(r, -1, 1, 3, 301, 257)
		ba := s.fromND(big)
		s.checkND(t, "big transpose", s.FastContiguous(s.Transpose(ba, 0, 2, 1)), transposeND(big, []int{0, 2, 1}), 0)
		s.checkND(t, "big transpose 2", s.FastContiguous(s.Transpose(ba, 2, 1, 0)), transposeND(big, []int{2, 1, 0}), 0)
		// a slice of the last axis (row-strided), then transposed
		sl := s.Slice(ba, []int{0, 0, 3}, []int{3, 301, 131}, nil)
		want := nd{shape: []int{3, 301, 128}, data: make([]float64, 3*301*128)}
		for i := 0; i < 3*301; i++ {
			copy(want.data[i*128:(i+1)*128], big.data[i*257+3:i*257+131])
		}
		s.checkND(t, "slice", s.FastContiguous(sl), want, 0)
		s.checkND(t, "slice transposed", s.FastContiguous(s.Transpose(sl, 2, 0, 1)), transposeND(want, []int{2, 0, 1}), 0)
		// stepped slice (no axis of stride 1)
		st := s.Slice(xa, []int{0, 0, 0, 1}, []int{7, 33, 5, 40}, []int{2, 1, 3, 2})
		wst := nd{shape: []int{4, 33, 2, 20}}
		for i := 0; i < 4; i++ {
			for j := 0; j < 33; j++ {
				for k := 0; k < 2; k++ {
					for l := 0; l < 20; l++ {
						wst.data = append(wst.data, x.at([]int{2 * i, j, 3 * k, 1 + 2*l}))
					}
				}
			}
		}
		s.checkND(t, "stepped", s.FastContiguous(st), wst, 0)
		// broadcast (stride 0) and size-1 axes
		b := randND(r, -1, 1, 1, 6, 1)
		bb := s.BroadcastTo(s.fromND(b), 4, 6, 9)
		wb := nd{shape: []int{4, 6, 9}}
		for i := 0; i < 4*6*9; i++ {
			wb.data = append(wb.data, b.data[i/9%6])
		}
		s.checkND(t, "broadcast", s.FastContiguous(bb), wb, 0)
		// already contiguous, a scalar, and a non-f32 dtype
		s.checkND(t, "contiguous", s.FastContiguous(xa), x, 0)
		s.checkND(t, "scalar", s.FastContiguous(s.Scalar(2.5, Float32)), nd{shape: []int{}, data: []float64{2.5}}, 0)
		h := s.FastContiguous(s.Transpose(s.AsType(xa, Float16), 3, 1, 2, 0))
		if h.Dtype() != Float16 {
			t.Fatalf("half: dtype %v", h.Dtype())
		}
		s.checkND(t, "half", s.AsType(h, Float32), transposeND(x, []int{3, 1, 2, 0}), 1e-3)
	})
}

// TestHugePageOutputs: outputs above 4 MiB (fast kernels' and the BLAS
// forwarder's, whose fresh pages are advised as transparent huge pages)
// hold the right values.
func TestHugePageOutputs(t *testing.T) {
	r := rand.New(rand.NewSource(35))
	x := randND(r, -1, 1, 1030, 1100) // 4.3 MiB
	a := randND(r, -1, 1, 1030, 40)
	b := randND(r, -1, 1, 40, 1100)
	do(t, func(s *Scope) {
		s.checkND(t, "transpose", s.FastContiguous(s.Transpose(s.fromND(x), 1, 0)), transposeND(x, []int{1, 0}), 0)
		s.checkND(t, "sigmoid", s.FastSigmoid(s.fromND(x)), mapND(x, sigmoid64), 1e-6)
		want := nd{shape: []int{1030, 1100}, data: make([]float64, 1030*1100)}
		for i := 0; i < 1030; i++ {
			for j := 0; j < 1100; j++ {
				acc := 0.0
				for k := 0; k < 40; k++ {
					acc += a.data[i*40+k] * b.data[k*1100+j]
				}
				want.data[i*1100+j] = acc
			}
		}
		s.checkND(t, "sgemm", s.MatMul(s.fromND(a), s.fromND(b)), want, 1e-5)
	})
}

// TestFastMatMul checks FastMatMul against matmulND (ops_test.go), the
// plain-Go float64 reference with batch broadcasting.
func TestFastMatMul(t *testing.T) {
	r := rand.New(rand.NewSource(36))
	cases := []struct {
		name string
		a, b []int
	}{
		{"odd sizes", []int{3, 7, 5}, []int{3, 5, 9}},
		{"many items", []int{40, 19, 33}, []int{40, 33, 50}},
		{"few items, row blocks", []int{1, 70, 20}, []int{1, 20, 48}},
		{"2-D", []int{13, 64}, []int{64, 32}},
		{"broadcast batch", []int{4, 1, 6, 8}, []int{3, 8, 17}},
		{"one row, one column", []int{5, 1, 7}, []int{5, 7, 1}},
	}
	withISAs(t, func(t *testing.T, isa string) {
		do(t, func(s *Scope) {
			for _, c := range cases {
				a, b := randND(r, -1, 1, c.a...), randND(r, -1, 1, c.b...)
				got := s.FastMatMul(s.fromND(a), s.fromND(b))
				s.checkND(t, c.name, got, matmulND(a, b), 1e-5)
			}
			// operands as transposed / sliced views (the triangle
			// multiplication's channel-first views of [N, N, c] arrays)
			x := randND(r, -1, 1, 12, 12, 10)
			xa := s.fromND(x)
			lhs := s.Transpose(xa, 2, 0, 1) // [c, i, k]: rows strided, k stride c
			rhs := s.Transpose(xa, 2, 1, 0) // [c, k, j]: columns strided
			want := matmulND(transposeND(x, []int{2, 0, 1}), transposeND(x, []int{2, 1, 0}))
			s.checkND(t, "transposed views", s.FastMatMul(lhs, rhs), want, 1e-5)
			// a with contiguous columns (stride-1 rows axis)
			aT := randND(r, -1, 1, 2, 9, 14) // stored [.., K, M]
			b := randND(r, -1, 1, 2, 9, 20)
			s.checkND(t, "a transposed", s.FastMatMul(s.Transpose(s.fromND(aT), 0, 2, 1), s.fromND(b)),
				matmulND(transposeND(aT, []int{0, 2, 1}), b), 1e-5)
			sl := s.Slice(s.fromND(b), []int{0, 0, 3}, []int{2, 9, 20}, []int{1, 1, 2})
			bs := nd{shape: []int{2, 9, 9}}
			for i := 0; i < 2*9; i++ {
				for j := 3; j < 20; j += 2 {
					bs.data = append(bs.data, b.data[i*20+j])
				}
			}
			a2 := randND(r, -1, 1, 2, 5, 9)
			s.checkND(t, "stepped slice", s.FastMatMul(s.fromND(a2), sl), matmulND(a2, bs), 1e-5)
			z := s.FastMatMul(s.Zeros(Float32, 2, 3, 0), s.Zeros(Float32, 2, 0, 4))
			s.checkND(t, "K = 0", z, nd{shape: []int{2, 3, 4}, data: make([]float64, 24)}, 0)
			h := s.FastMatMul(s.AsType(s.fromND(a2), Float16), s.AsType(s.fromND(bs), Float16))
			if h.Dtype() != Float16 {
				t.Fatalf("half: dtype %v", h.Dtype())
			}
		})
	})
	for _, c := range []struct {
		name string
		a, b []int
		want string
	}{
		{"inner", []int{2, 3}, []int{4, 5}, "inner"},
		{"rank", []int{3}, []int{3, 2}, "rank"},
		{"batch", []int{2, 3, 4}, []int{3, 4, 5}, "broadcast"},
	} {
		err := Do(func(s *Scope) error {
			s.Eval(s.FastMatMul(s.Zeros(Float32, c.a...), s.Zeros(Float32, c.b...)))
			return s.Err()
		})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%s: err %v, want %q", c.name, err, c.want)
		}
	}
}
