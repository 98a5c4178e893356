// Command fastcpu times MLX's own CPU ops against the fast CPU kernels of
// internal/mlx (fastcpu.go) on OpenFold3-sized f32 arrays, printing the min
// and median of -reps evaluations in ms. See docs/notes/PERFORMANCE.md, "Fast CPU
// kernels". OF3C_FASTCPU_THREADS=1 runs the kernels single-threaded;
// OF3C_FASTCPU_ISA=avx2|generic caps their SIMD variant.
package main

import (
	"flag"
	"fmt"
	"math"
	"math/rand"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/of3c/of3c/internal/mlx"
)

var (
	reps   = flag.Int("reps", 15, "timed evaluations per case (after one warm-up)")
	shapes = flag.String("shapes", "128x128x128,4x128x128x128", "shapes (last axis is the row axis)")
	only   = flag.String("only", "", "comma-separated case names (empty: all)")
	noMLX  = flag.Bool("fastonly", false, "time only the fast kernels (for profiling)")
	clear  = flag.Bool("clearcache", false, "empty MLX's buffer cache before each case")
	memlog = flag.Bool("mem", false, "print MLX's memory statistics after each case")
)

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func parseShape(s string) []int {
	var out []int
	for _, p := range strings.Split(s, "x") {
		n, err := strconv.Atoi(p)
		must(err)
		out = append(out, n)
	}
	return out
}

func randF32(n int, seed int64, scale float32) []float32 {
	r := rand.New(rand.NewSource(seed))
	v := make([]float32, n)
	for i := range v {
		v[i] = (r.Float32()*2 - 1) * scale
	}
	return v
}

type op func(s *mlx.Scope, in []*mlx.Array) *mlx.Array

type bcase struct {
	name       string
	mlx, fast  op
	nin        int
	doubleLast bool // inputs have last axis 2× (merged SwiGLU)
}

func first(s *mlx.Scope, in []*mlx.Array) *mlx.Array { return in[0] }

var cases = []bcase{
	{"exp", func(s *mlx.Scope, in []*mlx.Array) *mlx.Array { return s.Exp(in[0]) },
		func(s *mlx.Scope, in []*mlx.Array) *mlx.Array { return s.FastExp(in[0]) }, 1, false},
	{"sigmoid", func(s *mlx.Scope, in []*mlx.Array) *mlx.Array { return s.Sigmoid(in[0]) },
		func(s *mlx.Scope, in []*mlx.Array) *mlx.Array { return s.FastSigmoid(in[0]) }, 1, false},
	{"sigmoid_mul", func(s *mlx.Scope, in []*mlx.Array) *mlx.Array { return s.Mul(in[0], s.Sigmoid(in[1])) },
		func(s *mlx.Scope, in []*mlx.Array) *mlx.Array { return s.FastSigmoidMul(in[0], in[1]) }, 2, false},
	{"silu_mul", func(s *mlx.Scope, in []*mlx.Array) *mlx.Array {
		return s.Mul(s.Mul(in[0], s.Sigmoid(in[0])), in[1])
	}, func(s *mlx.Scope, in []*mlx.Array) *mlx.Array { return s.FastSiLUMul(in[0], in[1]) }, 2, false},
	{"swiglu(merged)", func(s *mlx.Scope, in []*mlx.Array) *mlx.Array {
		h := in[0].Shape()[in[0].Ndim()-1] / 2
		p := s.Split(in[0], []int{h}, -1)
		return s.Mul(s.Mul(p[0], s.Sigmoid(p[0])), p[1])
	}, func(s *mlx.Scope, in []*mlx.Array) *mlx.Array { return s.FastSwiGLU(in[0]) }, 1, true},
	{"softmax", func(s *mlx.Scope, in []*mlx.Array) *mlx.Array { return s.Softmax(in[0], -1) },
		func(s *mlx.Scope, in []*mlx.Array) *mlx.Array { return s.FastSoftmax(in[0]) }, 1, false},
	{"layer_norm", func(s *mlx.Scope, in []*mlx.Array) *mlx.Array { return s.LayerNorm(in[0], in[1], in[2], 1e-5) },
		func(s *mlx.Scope, in []*mlx.Array) *mlx.Array { return s.FastLayerNorm(in[0], in[1], in[2], 1e-5) }, 3, false},
}

func timeOp(s *mlx.Scope, f op, in []*mlx.Array) (minMS, medMS float64) {
	run := func() time.Duration {
		t0 := time.Now()
		s.Nest(func(c *mlx.Scope) ([]*mlx.Array, error) {
			c.Eval(f(c, in))
			return nil, nil
		})
		return time.Since(t0)
	}
	run() // warm-up
	ds := make([]time.Duration, *reps)
	for i := range ds {
		ds[i] = run()
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return ms(ds[0]), ms(ds[len(ds)/2])
}

func main() {
	flag.Parse()
	isa, threads := mlx.FastCPUInfo()
	fmt.Printf("MLX %s, fast kernels: %s, %d threads, reps %d\n", mlx.Version(), isa, threads, *reps)
	want := map[string]bool{}
	for _, n := range strings.Split(*only, ",") {
		if n != "" {
			want[n] = true
		}
	}
	fmt.Printf("%-16s %-18s %18s %18s %8s\n", "op", "shape", "MLX min/med ms", "fast min/med ms", "speed-up")
	for _, shs := range strings.Split(*shapes, ",") {
		sh := parseShape(shs)
		for _, c := range cases {
			if len(want) > 0 && !want[c.name] {
				continue
			}
			if *clear {
				must(mlx.ClearCache())
			}
			must(mlx.Do(func(s *mlx.Scope) error {
				xs := append([]int(nil), sh...)
				if c.doubleLast {
					xs[len(xs)-1] *= 2
				}
				n := 1
				for _, d := range xs {
					n *= d
				}
				in := []*mlx.Array{s.FromFloat32s(randF32(n, 1, 4), xs...)}
				if c.nin >= 2 {
					if c.name == "layer_norm" {
						ch := xs[len(xs)-1]
						in = append(in, s.FromFloat32s(randF32(ch, 2, 1), ch), s.FromFloat32s(randF32(ch, 3, 1), ch))
					} else {
						in = append(in, s.FromFloat32s(randF32(n, 2, 4), xs...))
					}
				}
				s.Eval(in...)
				m0, m1 := math.NaN(), math.NaN()
				if !*noMLX {
					m0, m1 = timeOp(s, c.mlx, in)
				}
				f0, f1 := timeOp(s, c.fast, in)
				fmt.Printf("%-16s %-18s %8.2f /%8.2f %8.2f /%8.2f %7.1fx\n", c.name, shs, m0, m1, f0, f1, m1/f1)
				return nil
			}))
			if *memlog {
				m, err := mlx.Memory()
				must(err)
				fmt.Printf("    memory: active %d MiB, peak %d MiB, cache %d MiB\n", m.Active>>20, m.Peak>>20, m.Cache>>20)
			}
		}
	}
}
