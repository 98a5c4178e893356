package mlx

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
)

// ErrUnavailable is returned by Do (and everything built on it) when this
// binary was built without MLX (CGO_ENABLED=0 or the nomlx tag).
var ErrUnavailable = errors.New("mlx: unavailable (built without cgo or with the nomlx tag)")

// Available reports whether this binary is linked against MLX.
func Available() bool { return available }

// MLX's default streams are per OS thread, so every MLX call runs on one
// goroutine locked to its thread. Callers hand it whole functions (Do), not
// single ops, so a lowered graph pays one channel hop, not one per op.
type executor struct {
	tasks chan task
	gid   atomic.Uint64
	busy  atomic.Bool

	// Frees requested off the executor (Release, cleanups), drained on it.
	mu       sync.Mutex
	arrays   []hnd
	funcs    []hnd
	nudged   atomic.Bool
	poolDone sync.Pool
}

type task struct {
	fn   func(*Scope) error
	done chan result
}

type result struct {
	err      error
	panicVal any
	panicked bool
}

var (
	exOnce sync.Once
	ex     executor
)

// gpuOpsPerBuffer and gpuMBPerBuffer are the MLX_MAX_OPS_PER_BUFFER and
// MLX_MAX_MB_PER_BUFFER this package sets on Linux unless the environment
// already has them. MLX's CUDA backend records ops into a CUDA graph until
// it holds more than that many ops or MiB of op inputs (100 ops and 1000
// MiB on an H100/H200 by default), and keeps every input of a launched
// graph's ops alive until the graph completes, so smaller graphs free
// intermediates sooner; but every graph costs a launch, which small sizes
// feel. Measured, each variant against the other on the same machine and
// plan:
//   - MiB: an H200 at N = 2048 (real OF3 PairFormerBlock, lean plan)
//     peaked at 22.78 GiB fp32 / 13.41 GiB bf16 with 2 ops / 1000 MiB and
//     at 18.84 / 10.91 GiB with 20 ops / 100 MiB, at the same compute time
//     (885.0 / 888.6 ms, 266.2 / 264.4 ms); 4 ops / 1000 MiB gave 27.28 GiB
//     (docs/notes/2026-12-03-session6-gpu.md), so 100;
//   - ops, with 100 MiB: on the H200 (docs/notes/2026-12-03-session8-gpu.md)
//     2 ops against 20: bf16 N = 256 12.6 → 10.0 ms (100 ops), bf16
//     N = 512 17.1 → 15.5 ms (656 → 787 MiB peak), fp32 N = 512 27.9 →
//     28.2 ms; at N = 1024 and 2048, 20 ops came within 1 % in time and
//     within 0.1 GiB in peak of session 7's 2-op runs (there the MiB cap
//     decides), so 20. (An H100 at N = 384
//     had peaked at 8.03 GiB with MLX's default 100 ops / 1000 MiB and 6.14
//     GiB with 2 ops; docs/notes/GPU.md.)
const (
	gpuOpsPerBuffer = "20"
	gpuMBPerBuffer  = "100"
)

func startExecutor() {
	exOnce.Do(func() {
		if runtime.GOOS == "linux" {
			if _, set := os.LookupEnv("MLX_MAX_OPS_PER_BUFFER"); !set {
				os.Setenv("MLX_MAX_OPS_PER_BUFFER", gpuOpsPerBuffer)
			}
			if _, set := os.LookupEnv("MLX_MAX_MB_PER_BUFFER"); !set {
				os.Setenv("MLX_MAX_MB_PER_BUFFER", gpuMBPerBuffer)
			}
		}
		// fp32 means fp32, as in PyTorch (whose matmuls do not use TF32 by
		// default): MLX's CUDA backend would use TF32 unless told not to.
		if _, set := os.LookupEnv("MLX_ENABLE_TF32"); !set {
			os.Setenv("MLX_ENABLE_TF32", "0")
		}
		fixCUDAHome()
		ex.tasks = make(chan task, 64)
		ex.poolDone.New = func() any { return make(chan result, 1) }
		ready := make(chan struct{})
		go ex.loop(ready)
		<-ready
	})
}

func (e *executor) loop(ready chan struct{}) {
	runtime.LockOSThread() // never unlocked: the thread owns MLX's streams
	e.gid.Store(curGID())
	if ready != nil {
		close(ready)
	}
	for t := range e.tasks {
		e.nudged.Store(false)
		e.drain()
		if t.fn == nil {
			continue
		}
		e.busy.Store(true)
		r := e.run(t.fn, t.done)
		e.busy.Store(false)
		e.drain()
		t.done <- r
	}
}

var errGoexit = errors.New("mlx: function passed to Do called runtime.Goexit (t.FailNow?); the executor was restarted")

// run calls fn in a fresh scope. A panic is captured for the caller. If fn
// calls runtime.Goexit (t.Fatal inside Do), this goroutine and its locked
// thread die regardless; a new executor takes over so later calls still run,
// but on a new MLX default stream: treat the process as degraded (export
// after a restart records the new stream index; see TestGoexitInsideDo).
func (e *executor) run(fn func(*Scope) error, done chan result) (r result) {
	s := &Scope{}
	finished := false
	defer func() {
		p := recover()
		s.close()
		if !finished && p == nil {
			e.busy.Store(false)
			go e.loop(nil)
			done <- result{err: errGoexit}
			return
		}
		if p != nil {
			r = result{panicVal: p, panicked: true}
		}
	}()
	err := fn(s)
	finished = true
	if err == nil {
		err = s.err
	}
	return result{err: err}
}

// drain frees handles queued by other goroutines and closures MLX dropped.
func (e *executor) drain() {
	e.mu.Lock()
	as, fs := e.arrays, e.funcs
	e.arrays, e.funcs = nil, nil
	e.mu.Unlock()
	for _, h := range as {
		libFree(h)
	}
	for _, h := range fs {
		libFunctionFree(h)
	}
	if available {
		for _, t := range libTakeDeadTokens() {
			closures.Delete(t)
		}
	}
}

func (e *executor) queueFree(h hnd, isFunc bool) {
	e.mu.Lock()
	if isFunc {
		e.funcs = append(e.funcs, h)
	} else {
		e.arrays = append(e.arrays, h)
	}
	n := len(e.arrays) + len(e.funcs)
	e.mu.Unlock()
	// Wake an idle executor now and then so garbage does not pile up between
	// Do calls; never block (this may run in a cleanup).
	if n >= 256 && e.nudged.CompareAndSwap(false, true) {
		select {
		case e.tasks <- task{}:
		default:
			e.nudged.Store(false)
		}
	}
}

func curGID() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	// "goroutine 123 [running]:"
	b = b[len("goroutine "):]
	i := 0
	for i < len(b) && b[i] != ' ' {
		i++
	}
	id, _ := strconv.ParseUint(string(b[:i]), 10, 64)
	return id
}

// Do runs fn on the MLX executor thread with a fresh Scope and waits for it.
// Arrays created in the scope are freed when fn returns unless kept. If fn
// returns nil, Do returns the scope's sticky error, if any. A panic in fn is
// re-raised in the caller. Safe for concurrent use; calls are serialized.
// Calling Do from inside fn is an error (use the Scope you were given).
func Do(fn func(s *Scope) error) error {
	if !available {
		return ErrUnavailable
	}
	startExecutor()
	if ex.busy.Load() && curGID() == ex.gid.Load() {
		return errors.New("mlx: Do called from inside Do; use the enclosing Scope")
	}
	done := ex.poolDone.Get().(chan result)
	ex.tasks <- task{fn: fn, done: done}
	r := <-done
	ex.poolDone.Put(done)
	if r.panicked {
		panic(r.panicVal)
	}
	return r.err
}

// Scope is the context every MLX operation runs in. It owns the arrays made
// through it and frees them when it ends. Operations keep the first error in
// the scope (sticky, like bufio.Scanner): after a failure they return nil and
// do nothing, so generated code can chain ops and check Err once.
// A Scope is only valid inside the function it was given to.
type Scope struct {
	owned  []*Array
	err    error
	parent *Scope
	closed bool
}

// Array is a handle to an MLX array (a lazy graph node until evaluated).
// Shape, Dtype, Ndim and Size may be called from any goroutine; everything
// else goes through a Scope.
type Array struct {
	h       hnd
	scope   *Scope // owner; nil once kept
	cleanup runtime.Cleanup
	kept    bool
}

// Err returns the first error recorded in the scope.
func (s *Scope) Err() error { return s.err }

// ResetErr returns the recorded error and clears it so work can go on.
func (s *Scope) ResetErr() error {
	err := s.err
	s.err = nil
	return err
}

// Fail records err (if it is the first) so later ops short-circuit.
func (s *Scope) Fail(err error) {
	if s.err == nil && err != nil {
		s.err = err
	}
}

func (s *Scope) failf(op string, err error) {
	if s.err == nil {
		s.err = fmt.Errorf("mlx: %s: %w", op, err)
	}
}

func (s *Scope) wrap(h hnd) *Array {
	a := &Array{h: h, scope: s}
	s.owned = append(s.owned, a)
	return a
}

// result turns a shim result into an array owned by s or records the error.
func (s *Scope) result(op string, h hnd, err error) *Array {
	if err != nil {
		s.failf(op, err)
		return nil
	}
	return s.wrap(h)
}

// ok reports whether work may proceed with these inputs, recording why not.
func (s *Scope) ok(op string, as ...*Array) bool {
	if s.err != nil {
		return false
	}
	if s.closed {
		s.err = fmt.Errorf("mlx: %s: scope already ended", op)
		return false
	}
	for i, a := range as {
		if a == nil {
			s.err = fmt.Errorf("mlx: %s: input %d is nil", op, i)
			return false
		}
		if a.h == nil {
			s.err = fmt.Errorf("mlx: %s: input %d was released", op, i)
			return false
		}
	}
	return true
}

func (s *Scope) close() {
	for _, a := range s.owned {
		if a.scope == s && a.h != nil {
			libFree(a.h)
			a.h = nil
		}
	}
	s.owned = nil
	s.closed = true
}

// Keep detaches a from the scope so it outlives it. The caller then owns it:
// Release it when done (a GC cleanup frees it as a backstop).
func (s *Scope) Keep(as ...*Array) {
	for _, a := range as {
		if a == nil || a.h == nil || a.kept {
			continue
		}
		a.scope = nil
		a.kept = true
		a.cleanup = runtime.AddCleanup(a, func(h hnd) { ex.queueFree(h, false) }, a.h)
	}
}

// Free releases arrays now instead of at the end of the scope.
func (s *Scope) Free(as ...*Array) {
	for _, a := range as {
		if a == nil || a.h == nil {
			continue
		}
		if a.kept {
			a.cleanup.Stop()
		}
		libFree(a.h)
		a.h = nil
	}
}

// Release frees a kept array from any goroutine. The free itself happens on
// the executor thread.
func (a *Array) Release() {
	if a == nil || a.h == nil {
		return
	}
	if a.kept {
		a.cleanup.Stop()
	}
	h := a.h
	a.h = nil
	ex.queueFree(h, false)
}

// Nest runs fn in a child scope whose arrays are freed when it returns,
// except the ones fn returns, which move to s. Useful to bound the memory of
// a loop body. The child's error becomes s's error.
func (s *Scope) Nest(fn func(c *Scope) ([]*Array, error)) []*Array {
	if !s.ok("nest") {
		return nil
	}
	c := &Scope{parent: s}
	var outs []*Array
	func() {
		defer c.close()
		var err error
		outs, err = fn(c)
		s.Fail(err)
		s.Fail(c.err)
		if s.err != nil {
			outs = nil
			return
		}
		for _, a := range outs {
			if a != nil && a.scope == c {
				a.scope = s
				s.owned = append(s.owned, a)
			}
		}
	}()
	return outs
}

// Shape returns the array's dimensions (nil for a released array).
func (a *Array) Shape() []int {
	if a == nil || a.h == nil {
		return nil
	}
	return libShape(a.h)
}

// Ndim returns the rank.
func (a *Array) Ndim() int {
	if a == nil || a.h == nil {
		return 0
	}
	return libNdim(a.h)
}

// Dtype returns the element type.
func (a *Array) Dtype() Dtype {
	if a == nil || a.h == nil {
		return -1
	}
	return libDtype(a.h)
}

// Size returns the number of elements.
func (a *Array) Size() int {
	if a == nil || a.h == nil {
		return 0
	}
	return libSize(a.h)
}

func (a *Array) String() string {
	if a == nil || a.h == nil {
		return "mlx.Array(released)"
	}
	return fmt.Sprintf("mlx.Array(%v %v)", a.Dtype(), a.Shape())
}
