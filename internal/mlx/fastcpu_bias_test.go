//go:build cgo && !nomlx

package mlx

import (
	"math"
	"math/rand"
	"strings"
	"testing"
)

// softmaxBiasND is the float64 reference of FastSoftmaxBias: softmax over
// the last axis of scale·x + Σ max(b_j, −1e9), biases broadcast right-aligned.
// The logits sum is formed in float32, as the spec says (that is what makes
// a row masked with −1e9 uniform: −1e9 + a small value rounds to −1e9); the
// softmax is in float64.
func softmaxBiasND(x nd, scale float64, bs ...nd) nd {
	z := nd{shape: x.shape, data: make([]float64, len(x.data))}
	r := len(x.shape)
	bidx := make([]int, r)
	for i, v := range x.data {
		idx := unravel(i, x.shape)
		acc := float32(scale) * float32(v)
		for _, b := range bs {
			k := len(b.shape)
			bi := bidx[:k]
			for d := 0; d < k; d++ {
				if b.shape[d] == 1 {
					bi[d] = 0
				} else {
					bi[d] = idx[r-k+d]
				}
			}
			acc += float32(math.Max(b.at(bi), -1e9))
		}
		z.data[i] = float64(acc)
	}
	return softmaxND(z)
}

// softmaxBiasMLX is the same with plain MLX ops (the non-fused lowering).
func (s *Scope) softmaxBiasMLX(x *Array, scale float32, bs ...*Array) *Array {
	l := s.Mul(x, s.Scalar(float64(scale), Float32))
	for _, b := range bs {
		l = s.Add(l, s.Maximum(b, s.Scalar(-1e9, Float32)))
	}
	return s.Softmax(l, -1)
}

func TestFastSoftmaxBias(t *testing.T) {
	r := rand.New(rand.NewSource(21))
	cases := []struct {
		name   string
		scale  float32
		logits []int
		biases [][]int
	}{
		{"triangle (mask, pair)", 0.5, []int{5, 3, 7, 7}, [][]int{{5, 1, 1, 7}, {1, 3, 7, 7}}},
		{"pair then mask", 1, []int{6, 4, 16, 16}, [][]int{{1, 4, 16, 16}, {6, 1, 1, 16}}},
		{"rank-3 bias", 0.25, []int{4, 2, 9, 33}, [][]int{{1, 1, 33}}},
		{"row scalars", 1.5, []int{3, 17}, [][]int{{17}, {3, 1}, {1, 1}}},
		{"no bias", 1, []int{6, 40}, nil},
		{"odd sizes", 0.3, []int{2, 3, 5, 37}, [][]int{{2, 1, 1, 37}, {3, 5, 37}, {2, 3, 5, 1}}},
		{"full-size bias", 1, []int{3, 4, 21}, [][]int{{3, 4, 21}}},
		{"len 1", 1, []int{4, 1}, [][]int{{4, 1}}},
		{"threaded", 0.17, []int{8, 4, 64, 128}, [][]int{{8, 1, 1, 128}, {1, 4, 64, 128}}},
		{"threaded odd", 1, []int{7, 3, 61, 259}, [][]int{{7, 1, 1, 259}, {1, 3, 61, 259}}},
	}
	withISAs(t, func(t *testing.T, isa string) {
		do(t, func(s *Scope) {
			for _, c := range cases {
				x := randND(r, -6, 6, c.logits...)
				var bs []nd
				var ba []*Array
				for _, sh := range c.biases {
					b := randND(r, -4, 4, sh...)
					bs = append(bs, b)
					ba = append(ba, s.fromND(b))
				}
				xa := s.fromND(x)
				got := s.FastSoftmaxBias(xa, c.scale, ba...)
				s.checkND(t, c.name, got, softmaxBiasND(x, float64(c.scale), bs...), 2e-6)
				s.checkND(t, c.name+" vs mlx", got, toND(s, s.softmaxBiasMLX(xa, c.scale, ba...)), 2e-6)
			}
		})
	})
}

func TestFastSoftmaxBiasMasks(t *testing.T) {
	r := rand.New(rand.NewSource(22))
	const N, H = 9, 2
	ninf := math.Inf(-1)
	withISAs(t, func(t *testing.T, isa string) {
		do(t, func(s *Scope) {
			x := randND(r, -3, 3, N, H, N, N)
			pair := randND(r, -2, 2, 1, H, N, N)
			// mask: last two keys masked for every row of batch 0..N-2; batch
			// N-1 fully masked (−inf), batch 3 fully masked with −1e9.
			mask := nd{shape: []int{N, 1, 1, N}, data: make([]float64, N*N)}
			for i := 0; i < N; i++ {
				for j := 0; j < N; j++ {
					switch {
					case i == N-1:
						mask.data[i*N+j] = ninf
					case i == 3:
						mask.data[i*N+j] = -1e9
					case j >= N-2:
						mask.data[i*N+j] = ninf
					}
				}
			}
			xa, ma, pa := s.fromND(x), s.fromND(mask), s.fromND(pair)
			got := s.FastSoftmaxBias(xa, 0.7, ma, pa)
			want := softmaxBiasND(x, 0.7, mask, pair)
			s.checkND(t, "masked", got, want, 2e-6)
			s.checkND(t, "masked vs mlx", got, toND(s, s.softmaxBiasMLX(xa, 0.7, ma, pa)), 2e-6)
			f := s.Float32s(got)
			for _, b := range []int{3, N - 1} {
				for i := b * H * N * N; i < (b+1)*H*N*N; i++ {
					if math.Abs(float64(f[i])-1.0/N) > 1e-6 {
						t.Fatalf("fully masked row %d: element %d = %v, want 1/%d", b, i, f[i], N)
					}
				}
			}
			// two −inf biases on the same element: still −2e9, not NaN
			got2 := s.Float32s(s.FastSoftmaxBias(xa, 1, ma, ma))
			for i, v := range got2 {
				if math.IsNaN(float64(v)) {
					t.Fatalf("double mask: NaN at %d", i)
				}
			}
			// NaN in a bias propagates to its row
			nb := randND(r, -1, 1, N)
			nb.data[2] = math.NaN()
			g := s.Float32s(s.FastSoftmaxBias(s.fromND(randND(r, -1, 1, 2, N)), 1, s.fromND(nb)))
			for i, v := range g {
				if !math.IsNaN(float64(v)) {
					t.Fatalf("NaN bias: element %d = %v, want NaN", i, v)
				}
			}
		})
	})
}

func TestFastSoftmaxBiasLayouts(t *testing.T) {
	r := rand.New(rand.NewSource(23))
	x := randND(r, -5, 5, 6, 2, 11, 35) // transposed to [11, 2, 6, 35]... below
	perm := []int{2, 1, 0, 3}
	xt := transposeND(x, perm) // [11, 2, 6, 35]
	b := randND(r, -3, 3, 35, 6)
	bt := transposeND(b, []int{1, 0}) // [6, 35]
	m := randND(r, -3, 3, 11, 1, 1, 35)
	do(t, func(s *Scope) {
		xa := s.Transpose(s.fromND(x), perm...)
		ba := s.Transpose(s.fromND(b), 1, 0)
		got := s.FastSoftmaxBias(xa, 0.9, s.fromND(m), ba)
		s.checkND(t, "transposed", got, softmaxBiasND(xt, 0.9, m, bt), 2e-6)
		// a slice of the logits
		xs := s.Slice(s.fromND(x), []int{1, 0, 0, 0}, []int{4, 2, 11, 35}, nil)
		xsND := nd{shape: []int{3, 2, 11, 35}, data: x.data[2*11*35 : 4*2*11*35]}
		pb := randND(r, -1, 1, 2, 11, 35)
		s.checkND(t, "sliced", s.FastSoftmaxBias(xs, 1, s.fromND(pb)), softmaxBiasND(xsND, 1, pb), 2e-6)
		// half inputs: computed in f32, result in the promoted dtype
		h := s.FastSoftmaxBias(s.AsType(s.fromND(xt), Float16), 1, s.AsType(s.fromND(m), Float16))
		if h.Dtype() != Float16 {
			t.Fatalf("half: dtype %v", h.Dtype())
		}
		s.checkND(t, "half", s.AsType(h, Float32), toND(s, s.softmaxBiasMLX(s.AsType(s.AsType(s.fromND(xt), Float16), Float32), 1, s.AsType(s.AsType(s.fromND(m), Float16), Float32))), 2e-3)
	})
}

func TestFastSoftmaxBiasErrors(t *testing.T) {
	for _, c := range []struct {
		name   string
		logits []int
		bias   []int
		want   string
	}{
		{"enlarges", []int{3, 4}, []int{2, 3, 4}, "higher rank"},
		{"enlarges axis", []int{1, 4}, []int{3, 4}, "broadcast"},
		{"mismatch", []int{3, 4}, []int{5}, "broadcast"},
	} {
		err := Do(func(s *Scope) error {
			s.FastSoftmaxBias(s.Zeros(Float32, c.logits...), 1, s.Zeros(Float32, c.bias...))
			return s.Err()
		})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%s: err %v, want %q", c.name, err, c.want)
		}
	}
}
