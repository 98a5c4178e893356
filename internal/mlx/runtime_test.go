//go:build cgo && !nomlx

package mlx

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestInvalidCallsReturnErrors(t *testing.T) {
	cases := []struct {
		name string
		run  func(s *Scope) *Array
		want string
	}{
		{"matmul-shape", func(s *Scope) *Array {
			return s.MatMul(s.Zeros(Float32, 2, 3), s.Zeros(Float32, 4, 5))
		}, "mlx: matmul:"},
		{"matmul-scalar", func(s *Scope) *Array { return s.MatMul(s.Scalar(1, Float32), s.Zeros(Float32, 2)) }, "mlx: matmul:"},
		{"add-broadcast", func(s *Scope) *Array { return s.Add(s.Zeros(Float32, 2, 3), s.Zeros(Float32, 4)) }, "mlx: add:"},
		{"sum-axis", func(s *Scope) *Array { return s.Sum(s.Zeros(Float32, 2, 3), false, 2) }, "mlx: sum:"},
		{"sum-neg-axis", func(s *Scope) *Array { return s.Sum(s.Zeros(Float32, 2, 3), false, -3) }, "mlx: sum:"},
		{"argmax-axis", func(s *Scope) *Array { return s.ArgMax(s.Zeros(Float32, 2), 1, false) }, "mlx: argmax:"},
		{"transpose-perm", func(s *Scope) *Array { return s.Transpose(s.Zeros(Float32, 2, 3), 0, 0) }, "mlx: transpose:"},
		{"transpose-rank", func(s *Scope) *Array { return s.Transpose(s.Zeros(Float32, 2, 3), 0, 1, 2) }, "mlx: transpose:"},
		{"reshape", func(s *Scope) *Array { return s.Reshape(s.Zeros(Float32, 2, 3), 4, 2) }, "mlx: reshape:"},
		{"squeeze-nonsingleton", func(s *Scope) *Array { return s.Squeeze(s.Zeros(Float32, 2, 3), 0) }, "mlx: squeeze:"},
		{"expand-axis", func(s *Scope) *Array { return s.ExpandDims(s.Zeros(Float32, 2), 5) }, "mlx: expand_dims:"},
		{"softmax-axis", func(s *Scope) *Array { return s.Softmax(s.Zeros(Float32, 2), 3) }, "mlx: softmax:"},
		{"cumsum-axis", func(s *Scope) *Array { return s.CumSum(s.Zeros(Float32, 2), 1, false, true) }, "mlx: cumsum:"},
		{"take-axis", func(s *Scope) *Array { return s.Take(s.Zeros(Float32, 2), s.Zeros(Int32, 1), 4) }, "mlx: take:"},
		{"take-float-index", func(s *Scope) *Array { return s.Take(s.Zeros(Float32, 2), s.Zeros(Float32, 1), 0) }, "mlx: take:"},
		{"slice-stride0", func(s *Scope) *Array {
			return s.Slice(s.Zeros(Float32, 4), []int{0}, []int{4}, []int{0})
		}, "mlx: slice:"},
		{"slice-rank", func(s *Scope) *Array { return s.Slice(s.Zeros(Float32, 4, 4), []int{0}, []int{4}, nil) }, "mlx: slice:"},
		{"concat-shape", func(s *Scope) *Array { return s.Concatenate(0, s.Zeros(Float32, 2, 3), s.Zeros(Float32, 2, 4)) }, "mlx: concatenate:"},
		{"concat-none", func(s *Scope) *Array { return s.Concatenate(0) }, "mlx: concatenate:"},
		{"split-indices", func(s *Scope) *Array { s.Split(s.Zeros(Float32, 4), []int{3, 1}, 0); return nil }, "mlx: split:"},
		{"broadcast_to", func(s *Scope) *Array { return s.BroadcastTo(s.Zeros(Float32, 3), 2, 4) }, "mlx: broadcast_to:"},
		{"pad-rank", func(s *Scope) *Array { return s.Pad(s.Zeros(Float32, 3), []int{1, 1}, []int{1, 1}, 0) }, "mlx: pad:"},
		{"pad-negative", func(s *Scope) *Array { return s.Pad(s.Zeros(Float32, 3), []int{-1}, []int{0}, 0) }, "mlx: pad:"},
		{"einsum", func(s *Scope) *Array { return s.Einsum("ij,jk->ik", s.Zeros(Float32, 2, 3)) }, "mlx: einsum:"},
		{"where", func(s *Scope) *Array {
			return s.Where(s.Zeros(Bool, 3), s.Zeros(Float32, 4), s.Zeros(Float32, 3))
		}, "mlx: where:"},
		{"layer_norm-weight", func(s *Scope) *Array {
			return s.LayerNorm(s.Zeros(Float32, 2, 4), s.Zeros(Float32, 3), nil, 1e-5)
		}, "mlx: layer_norm:"},
		{"sdpa-rank", func(s *Scope) *Array {
			x := s.Zeros(Float32, 2, 3, 4)
			return s.ScaledDotProductAttention(x, x, x, 1, nil)
		}, "mlx: scaled_dot_product_attention:"},
		{"sdpa-mask", func(s *Scope) *Array {
			x := s.Zeros(Float32, 1, 2, 3, 4)
			return s.ScaledDotProductAttention(x, x, x, 1, s.Zeros(Float32, 5, 7))
		}, "mlx: scaled_dot_product_attention:"},
		{"tril-rank", func(s *Scope) *Array { return s.Tril(s.Zeros(Float32, 3), 0) }, "mlx: tril:"},
		{"astype-dtype", func(s *Scope) *Array { return s.AsType(s.Zeros(Float32, 3), Dtype(99)) }, "mlx: astype: unknown dtype"},
		{"bytes-dtype", func(s *Scope) *Array { return s.FromBytes(make([]byte, 4), Dtype(42), 1) }, "unknown dtype"},
		{"zeros-dtype", func(s *Scope) *Array { return s.Zeros(Dtype(-3), 2) }, "mlx: full:"},
		{"arange-dtype", func(s *Scope) *Array { return s.Arange(0, 3, 1, Dtype(77)) }, "mlx: arange:"},
		{"arange-step", func(s *Scope) *Array { return s.Arange(0, 3, 0, Float32) }, "mlx: arange:"},
		{"data-size", func(s *Scope) *Array { return s.FromFloat32s([]float32{1, 2, 3}, 2, 2) }, "mlx: from_float32s:"},
		{"negative-dim", func(s *Scope) *Array { return s.Zeros(Float32, -2) }, "mlx: full:"},
		{"nil-input", func(s *Scope) *Array { return s.Exp(nil) }, "mlx: exp: input 0 is nil"},
		{"released-input", func(s *Scope) *Array {
			a := s.Zeros(Float32, 2)
			s.Free(a)
			return s.Exp(a)
		}, "mlx: exp: input 0 was released"},
		{"huge-eval", func(s *Scope) *Array {
			s.Eval(s.Add(s.Zeros(Float32, 1<<18, 1<<18), s.Scalar(1, Float32)))
			return nil
		}, "mlx: eval: evaluation needs a"},
		{"huge-read", func(s *Scope) *Array { s.Float32s(s.Ones(Float32, 1<<17, 1<<17)); return nil }, "mlx: float32s:"},
		{"scatter-axes", func(s *Scope) *Array {
			return s.Scatter(s.Zeros(Float32, 3), []*Array{s.Zeros(Int32, 1)}, s.Zeros(Float32, 1, 1), []int{0, 1})
		}, "mlx: scatter:"},
	}
	do(t, func(s *Scope) {
		for _, c := range cases {
			got := c.run(s)
			err := s.ResetErr()
			if err == nil {
				t.Errorf("%s: no error (result %v)", c.name, got)
				continue
			}
			if got != nil {
				t.Errorf("%s: non-nil result with error", c.name)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: error %q does not contain %q", c.name, err, c.want)
			}
			// the scope (and MLX) keeps working after each failure
			if v := s.Float32s(s.Add(s.Ones(Float32, 2), s.Ones(Float32, 2))); s.Err() != nil || v[0] != 2 {
				t.Fatalf("%s: scope broken afterwards: %v %v", c.name, v, s.Err())
			}
		}
	})
	// Out-of-range gather/scatter indices are undefined (as in ONNX) but must
	// not touch memory outside the arrays.
	do(t, func(s *Scope) {
		a := s.FromFloat32s([]float32{1, 2, 3, 4}, 4)
		far := s.FromInt32s([]int32{1 << 30, -(1 << 29), 2}, 3)
		if v := s.Float32s(s.Take(a, far, 0)); len(v) != 3 || v[2] != 3 {
			t.Fatalf("take: %v", v)
		}
		s.Float32s(s.TakeAlongAxis(a, far, 0))
		s.Float32s(s.PutAlongAxis(a, far, s.Zeros(Float32, 3), 0))
		s.Float32s(s.ScatterAdd(a, []*Array{s.FromInt64s([]int64{1 << 40}, 1)}, s.Ones(Float32, 1, 1), []int{0}))
		u8 := s.FromBytes([]byte{200, 1}, Uint8, 2)
		if v := s.Float32s(s.Take(a, u8, 0)); v[1] != 2 {
			t.Fatalf("uint8 take: %v", v)
		}
	})
	// errors are sticky: later ops are skipped and Do returns the first one
	err := Do(func(s *Scope) error {
		x := s.MatMul(s.Zeros(Float32, 2, 3), s.Zeros(Float32, 2, 3))
		y := s.Exp(x)
		if y != nil {
			t.Error("op after failure returned an array")
		}
		return nil
	})
	if err == nil || !strings.HasPrefix(err.Error(), "mlx: matmul: ") {
		t.Fatalf("Do returned %v", err)
	}
}

func TestDoPanicAndNested(t *testing.T) {
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Fatalf("recovered %v", p)
			}
		}()
		_ = Do(func(s *Scope) error { s.Zeros(Float32, 2); panic("boom") })
		t.Fatal("Do did not re-panic")
	}()
	err := Do(func(s *Scope) error { return Do(func(*Scope) error { return nil }) })
	if err == nil || !strings.Contains(err.Error(), "inside Do") {
		t.Fatalf("nested Do: %v", err)
	}
	sentinel := errors.New("mine")
	if err := Do(func(*Scope) error { return sentinel }); err != sentinel {
		t.Fatalf("error not passed through: %v", err)
	}
}

// The executor restarts on a new OS thread after a Goexit (t.Fatal inside
// Do), and MLX gives that thread a new default stream (index 1, not 0).
// Functions exported afterwards record that stream, and importing such a
// .mlxfn yielded a function with no outputs (seen with the safetensors/export
// test after this one), so this runs in a child process of its own.
func TestGoexitInsideDo(t *testing.T) {
	if os.Getenv("MLX_GOEXIT_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestGoexitInsideDo$", "-test.v")
		cmd.Env = append(os.Environ(), "MLX_GOEXIT_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "restarted ok") {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	var err error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		err = Do(func(*Scope) error {
			runtimeGoexit()
			return nil
		})
	}()
	wg.Wait()
	if !errors.Is(err, errGoexit) {
		t.Fatalf("Goexit: %v", err)
	}
	do(t, func(s *Scope) {
		if v := s.Float32s(s.Ones(Float32, 1)); v[0] != 1 {
			t.Fatal("executor not restarted")
		}
	})
	t.Log("restarted ok")
}

func TestCompile(t *testing.T) {
	r := rand.New(rand.NewSource(8))
	x := randND(r, -1, 1, 4, 6)
	y := randND(r, -1, 1, 6)
	var traces atomic.Int32
	body := func(s *Scope, in []*Array) ([]*Array, error) {
		traces.Add(1)
		h := in[0]
		for i := 0; i < 10; i++ {
			h = s.Tanh(s.Add(s.Mul(h, in[1]), s.Scalar(0.5, Float32)))
		}
		return []*Array{h, s.Sum(h, false, -1)}, nil
	}
	var compiled *Function
	do(t, func(s *Scope) {
		plain := s.Closure(body)
		defer plain.Release()
		xa, ya := s.fromND(x), s.fromND(y)
		want := s.Call(plain, xa, ya)
		if traces.Load() != 1 {
			t.Fatalf("direct call ran the closure %d times", traces.Load())
		}
		compiled = s.Compile(plain, false)
		traces.Store(0)
		got1 := s.Call(compiled, xa, ya)
		got2 := s.Call(compiled, s.Mul(xa, s.Scalar(1, Float32)), ya)
		if n := traces.Load(); n != 1 {
			t.Fatalf("compiled function traced %d times for one shape", n)
		}
		for i := range want {
			w := s.Float32s(want[i])
			for _, g := range [][]float32{s.Float32s(got1[i]), s.Float32s(got2[i])} {
				for j := range w {
					if d := g[j] - w[j]; d > 1e-6 || d < -1e-6 {
						t.Fatalf("output %d[%d]: compiled %v, plain %v", i, j, g[j], w[j])
					}
				}
			}
		}
		// a new shape traces again
		s.Call(compiled, s.Zeros(Float32, 3, 6), ya)
		if n := traces.Load(); n != 2 {
			t.Fatalf("new shape: %d traces", n)
		}
	})
	// the compiled function (and its cache) outlives the Do call, and the
	// closure it came from was already released
	do(t, func(s *Scope) {
		s.Call(compiled, s.fromND(x), s.fromND(y))
		s.Eval()
		if n := traces.Load(); n != 2 {
			t.Fatalf("cache lost across Do: %d traces", n)
		}
	})
	compiled.Release()

	// a Go error during tracing aborts the trace and becomes the call's error
	sentinel := "no luck in trace"
	err := Do(func(s *Scope) error {
		f := s.Compile(s.Closure(func(s *Scope, in []*Array) ([]*Array, error) {
			s.Exp(in[0])
			return nil, errors.New(sentinel)
		}), false)
		s.Call(f, s.Ones(Float32, 2))
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), sentinel) || !strings.HasPrefix(err.Error(), "mlx: call: ") {
		t.Fatalf("trace error: %v", err)
	}
	// so does an MLX error and a panic inside the closure
	for _, bad := range []ClosureFunc{
		func(s *Scope, in []*Array) ([]*Array, error) {
			return []*Array{s.MatMul(in[0], s.Zeros(Float32, 5, 5))}, nil
		},
		func(s *Scope, in []*Array) ([]*Array, error) { panic("closure panic") },
		func(s *Scope, in []*Array) ([]*Array, error) { return []*Array{nil}, nil },
	} {
		err := Do(func(s *Scope) error {
			f := s.Compile(s.Closure(bad), false)
			s.Call(f, s.Ones(Float32, 2, 2))
			return nil
		})
		if err == nil {
			t.Fatal("bad closure gave no error")
		}
	}
	// Released compiled functions must not leave cache entries a new function
	// could pick up (MLX keys its cache by the function object's address).
	for i := 0; i < 20; i++ {
		k := float64(i)
		do(t, func(s *Scope) {
			f := s.Closure(func(s *Scope, in []*Array) ([]*Array, error) {
				return []*Array{s.Add(in[0], s.Scalar(k, Float32))}, nil
			})
			c := s.Compile(f, false)
			f.Release()
			v := s.Float32s(s.Call(c, s.Zeros(Float32, 2))[0])
			c.Release()
			if len(v) != 2 || v[0] != float32(k) {
				t.Fatalf("iteration %d: got %v", i, v)
			}
		})
	}
	// and compile still works afterwards
	do(t, func(s *Scope) {
		f := s.Compile(s.Closure(func(s *Scope, in []*Array) ([]*Array, error) {
			return []*Array{s.Mul(in[0], in[0])}, nil
		}), true)
		if v := s.Float32s(s.Call(f, s.FromFloat32s([]float32{3}, 1))[0]); v[0] != 9 {
			t.Fatalf("after failures: %v", v)
		}
		f.Release()
	})
}

func TestSafetensorsAndExport(t *testing.T) {
	dir := t.TempDir()
	st := filepath.Join(dir, "w.safetensors")
	fn := filepath.Join(dir, "f.mlxfn")
	do(t, func(s *Scope) {
		s.SaveSafetensors(st, map[string]*Array{
			"a": s.FromFloat32s([]float32{1, 2, 3, 4, 5, 6}, 2, 3),
			"b": s.AsType(s.FromFloat32s([]float32{1.5, -2}, 2), BFloat16),
			"c": s.FromInt64s([]int64{7}, 1),
			"t": s.Transpose(s.FromFloat32s([]float32{1, 2, 3, 4}, 2, 2)),
		}, map[string]string{"format": "of3c", "version": "1"})
	})
	do(t, func(s *Scope) {
		m, meta := s.LoadSafetensors(st)
		if meta["format"] != "of3c" || meta["version"] != "1" || len(m) != 4 {
			t.Fatalf("meta %v arrays %d", meta, len(m))
		}
		if m["b"].Dtype() != BFloat16 || fmt.Sprint(m["a"].Shape()) != "[2 3]" {
			t.Fatalf("b %v a %v", m["b"], m["a"])
		}
		if v := s.Float32s(m["t"]); fmt.Sprint(v) != "[1 3 2 4]" {
			t.Fatalf("t %v", v)
		}
		if v := s.Float32s(m["b"]); v[0] != 1.5 || v[1] != -2 {
			t.Fatalf("b %v", v)
		}
		s.LoadSafetensors(filepath.Join(dir, "missing.safetensors"))
		if err := s.ResetErr(); err == nil || !strings.HasPrefix(err.Error(), "mlx: load_safetensors:") {
			t.Fatalf("missing file: %v", err)
		}

		w := s.FromFloat32s([]float32{2, 3}, 2)
		f := s.Closure(func(s *Scope, in []*Array) ([]*Array, error) {
			return []*Array{s.Add(s.Mul(in[0], w), s.Scalar(1, Float32))}, nil
		})
		s.ExportFunction(fn, f, []*Array{s.Ones(Float32, 2)}, false)
		f.Release()
	})
	if fi, err := os.Stat(fn); err != nil || fi.Size() == 0 {
		t.Fatalf("export wrote nothing: %v", err)
	}
	do(t, func(s *Scope) {
		imp := s.ImportFunction(fn)
		defer imp.Release()
		out := s.Call(imp, s.FromFloat32s([]float32{10, 20}, 2))
		if s.Err() != nil {
			t.Fatal(s.Err())
		}
		if v := s.Float32s(out[0]); v[0] != 21 || v[1] != 61 {
			t.Fatalf("imported: %v", v)
		}
		c := s.Compile(imp, false)
		defer c.Release()
		if v := s.Float32s(s.Call(c, s.FromFloat32s([]float32{1, 1}, 2))[0]); v[0] != 3 || v[1] != 4 {
			t.Fatalf("compiled import: %v", v)
		}
		s.ImportFunction(filepath.Join(dir, "nope.mlxfn"))
		if err := s.ResetErr(); err == nil {
			t.Fatal("import of a missing file succeeded")
		}
	})
}

func TestConcurrentCallers(t *testing.T) {
	workers, iters := 16, 40
	if testing.Short() || raceEnabled {
		iters = 10
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	var shared *Array
	do(t, func(s *Scope) {
		shared = s.FromFloat32s([]float32{1, 2, 3}, 3)
		s.Keep(shared)
	})
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < iters; i++ {
				var got []float32
				err := Do(func(s *Scope) error {
					x := s.Full(float64(w), Float32, 3)
					got = s.Float32s(s.Add(s.Mul(x, shared), s.Scalar(float64(i), Float32)))
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
				for j, v := range got {
					if want := float32(w*(j+1) + i); v != want {
						errs <- fmt.Errorf("worker %d iter %d: %v", w, i, got)
						return
					}
				}
				if i%5 == 0 {
					Memory()
					Devices()
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	shared.Release()
}

func TestMemoryReturnsToBaseline(t *testing.T) {
	settle := func() MemoryStats {
		do(t, func(s *Scope) { s.Synchronize() })
		m, err := Memory()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	base := settle()
	n := 3000
	if raceEnabled {
		n = 300
	}
	var kept []*Array
	for i := 0; i < n/100; i++ {
		do(t, func(s *Scope) {
			x := s.Ones(Float32, 64, 64)
			for j := 0; j < 100; j++ {
				x = s.Add(s.Mul(x, s.Scalar(0.5, Float32)), s.Ones(Float32, 64, 64))
				if j%10 == 0 {
					s.Eval(x)
				}
			}
			// a nested scope returns one array and frees the rest
			outs := s.Nest(func(c *Scope) ([]*Array, error) {
				return []*Array{c.Exp(c.Sub(x, x))}, nil
			})
			s.Eval(outs[0])
			k := s.MatMul(x, x)
			s.Eval(k)
			s.Keep(k)
			kept = append(kept, k)
		})
	}
	mid := settle()
	if mid.Active <= base.Active {
		t.Fatalf("kept arrays should hold memory: base %d now %d", base.Active, mid.Active)
	}
	for _, k := range kept {
		k.Release() // from a non-executor goroutine: queued, freed on the next Do
	}
	after := settle()
	if after.Active != base.Active {
		t.Fatalf("active memory %d after %d ops, baseline %d", after.Active, n, base.Active)
	}
	// the GC backstop frees a kept array nobody released
	do(t, func(s *Scope) { s.Keep(s.Ones(Float32, 1000)) })
	// cleanups run asynchronously after a GC; give them a moment
	for i := 0; i < 100 && settle().Active != base.Active; i++ {
		runtimeGC()
		time.Sleep(10 * time.Millisecond)
	}
	if a := settle().Active; a != base.Active {
		t.Fatalf("cleanup did not free a leaked array: active %d, baseline %d", a, base.Active)
	}
	if _, err := SetCacheLimit(1 << 20); err != nil {
		t.Fatal(err)
	}
	if err := ClearCache(); err != nil {
		t.Fatal(err)
	}
	if err := ResetPeakMemory(); err != nil {
		t.Fatal(err)
	}
	prev, err := SetMemoryLimit(1 << 40)
	if err != nil || prev == 0 {
		t.Fatalf("memory limit %d %v", prev, err)
	}
	SetMemoryLimit(prev)
}

func TestInfo(t *testing.T) {
	if !Available() {
		t.Fatal("cgo build should have MLX")
	}
	if v := Version(); !strings.HasPrefix(v, "0.32.") {
		t.Fatalf("version %q", v)
	}
	ds := Devices()
	if len(ds) == 0 || ds[0].Type != CPU {
		t.Fatalf("devices %v", ds)
	}
	if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/libopenblas.so.0"); err == nil && os.Getenv("OF3C_BLAS") == "" {
		if !strings.Contains(BLAS(), "openblas") {
			t.Fatalf("OpenBLAS is installed but MLX's GEMM goes to %q", BLAS())
		}
	}
	if !strings.Contains(Info(), "cpu:0") {
		t.Fatalf("info %q", Info())
	}
	do(t, func(s *Scope) {
		if d := s.DefaultDevice(); d.Type != CPU && d.Type != GPU {
			t.Fatalf("default device %v", d)
		}
		s.SetDefaultDevice(Device{Type: CPU})
		s.SetDefaultDevice(Device{Type: GPU, Index: 7})
		if s.ResetErr() == nil {
			t.Fatal("setting a missing gpu succeeded")
		}
	})
}

func TestNestKeepAndCompileSwitch(t *testing.T) {
	do(t, func(s *Scope) {
		x := s.FromFloat32s([]float32{1, 2}, 2)
		var inner *Array
		outs := s.Nest(func(c *Scope) ([]*Array, error) {
			inner = c.Exp(x) // freed when the child ends
			return []*Array{c.Add(x, x)}, nil
		})
		if inner.h != nil {
			t.Fatal("child-scope array survived Nest")
		}
		if v := s.Float32s(outs[0]); v[1] != 4 {
			t.Fatalf("nest output %v", v)
		}
		s.Nest(func(c *Scope) ([]*Array, error) { return nil, errors.New("inner failure") })
		if err := s.ResetErr(); err == nil || err.Error() != "inner failure" {
			t.Fatalf("nest error %v", err)
		}
	})
	if err := SetCompileEnabled(false); err != nil {
		t.Fatal(err)
	}
	defer SetCompileEnabled(true)
	var traces atomic.Int32
	do(t, func(s *Scope) {
		f := s.Compile(s.Closure(func(s *Scope, in []*Array) ([]*Array, error) {
			traces.Add(1)
			return []*Array{s.Mul(in[0], s.Scalar(3, Float32))}, nil
		}), false)
		defer f.Release()
		for i := 0; i < 2; i++ {
			if v := s.Float32s(s.Call(f, s.Ones(Float32, 2))[0]); v[0] != 3 {
				t.Fatalf("uncompiled call %v", v)
			}
		}
	})
	if traces.Load() != 2 {
		t.Fatalf("with compile disabled the closure should run per call, ran %d times", traces.Load())
	}
}

// A compiled closure that must trace again (new input shape) in a later Do
// call still reaches its Go function: the closure's liveness token stays
// valid until the function is released (regression: it was marked dead at
// creation, so any later trace failed with "closure was released").
func TestCompiledClosureRetracesInLaterDo(t *testing.T) {
	var traces atomic.Int32
	var compiled *Function
	do(t, func(s *Scope) {
		compiled = s.Compile(s.Closure(func(s *Scope, in []*Array) ([]*Array, error) {
			traces.Add(1)
			return []*Array{s.Add(in[0], in[0])}, nil
		}), false)
		s.Eval(s.Call(compiled, s.Ones(Float32, 2))...)
	})
	defer compiled.Release()
	do(t, func(s *Scope) {
		out := s.Call(compiled, s.Ones(Float32, 3, 2))
		if got := s.Float32s(out[0]); len(got) != 6 || got[5] != 2 {
			t.Fatalf("retraced output %v", got)
		}
	})
	if n := traces.Load(); n != 2 {
		t.Fatalf("%d traces, want 2 (one per shape)", n)
	}
}
