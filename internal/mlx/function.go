package mlx

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// ClosureFunc builds a graph from its inputs. It runs on the executor thread
// inside a Scope of its own, which ends when the function returns (returned
// arrays are handed to MLX first, so they need not be kept). It is called
// from inside MLX C++ frames: return errors (a panic is converted into one),
// but never call runtime.Goexit (t.Fatal) there, which would abandon those
// frames without running their destructors.
type ClosureFunc func(s *Scope, in []*Array) ([]*Array, error)

// Function is an MLX function object: a Go closure, its compiled form, or an
// imported .mlxfn. It outlives Do calls; Release it when done (a GC cleanup
// frees it as a backstop). Keeping a compiled Function alive is what keeps
// MLX's compile cache for it.
type Function struct {
	h       hnd
	cleanup runtime.Cleanup
}

var (
	closures     sync.Map // token -> ClosureFunc
	closureToken atomic.Uintptr
)

func (s *Scope) newFunction(op string, h hnd, err error) *Function {
	if err != nil {
		s.failf(op, err)
		return nil
	}
	f := &Function{h: h}
	f.cleanup = runtime.AddCleanup(f, func(h hnd) { ex.queueFree(h, true) }, h)
	return f
}

// Closure wraps a Go function as an MLX function. Called directly it runs fn
// every time; pass it to Compile or ExportFunction to trace it.
func (s *Scope) Closure(fn ClosureFunc) *Function {
	if !s.ok("closure") {
		return nil
	}
	if fn == nil {
		s.failf("closure", errors.New("nil function"))
		return nil
	}
	tok := closureToken.Add(1)
	closures.Store(tok, fn)
	h, err := libClosureNew(tok)
	if err != nil {
		closures.Delete(tok)
	}
	return s.newFunction("closure", h, err)
}

// Compile returns the compiled form of f (mx::compile). With shapeless, one
// trace serves all input shapes of the same rank and dtype (only valid for
// graphs whose ops do not depend on shapes).
func (s *Scope) Compile(f *Function, shapeless bool) *Function {
	if !s.ok("compile") || !s.okFunc("compile", f) {
		return nil
	}
	h, err := libCompile(f.h, shapeless)
	return s.newFunction("compile", h, err)
}

func (s *Scope) okFunc(op string, f *Function) bool {
	if f == nil || f.h == nil {
		s.failf(op, errors.New("nil or released function"))
		return false
	}
	return true
}

// Call applies f to the inputs; the outputs belong to s.
func (s *Scope) Call(f *Function, in ...*Array) []*Array {
	if !s.ok("call", in...) || !s.okFunc("call", f) {
		return nil
	}
	hs, err := libCall(f.h, handlesOf(in))
	if err != nil {
		s.failf("call", err)
		return nil
	}
	out := make([]*Array, len(hs))
	for i, h := range hs {
		out[i] = s.wrap(h)
	}
	return out
}

// Release frees f from any goroutine.
func (f *Function) Release() {
	if f == nil || f.h == nil {
		return
	}
	f.cleanup.Stop()
	h := f.h
	f.h = nil
	ex.queueFree(h, true)
}

// ExportFunction traces f with example args and writes a .mlxfn file.
func (s *Scope) ExportFunction(path string, f *Function, args []*Array, shapeless bool) {
	if !s.ok("export_function", args...) || !s.okFunc("export_function", f) {
		return
	}
	if err := libExport(path, f.h, handlesOf(args), shapeless); err != nil {
		s.failf("export_function", err)
	}
}

// ImportFunction loads a .mlxfn file. Wrap the result in Compile to get
// kernel fusion back.
func (s *Scope) ImportFunction(path string) *Function {
	if !s.ok("import_function") {
		return nil
	}
	h, err := libImport(path)
	return s.newFunction("import_function", h, err)
}

// runClosure is the body of the cgo callback: it runs on the executor thread,
// called from inside an MLX call (a trace or a direct call of a closure).
func runClosure(tok uintptr, ins []hnd) (outs []hnd, err error) {
	ts := &Scope{}
	args := make([]*Array, len(ins))
	for i, h := range ins {
		args[i] = ts.wrap(h)
	}
	defer ts.close()
	defer func() {
		// A panic must not unwind through C++ frames.
		if p := recover(); p != nil {
			for _, h := range outs {
				libFree(h)
			}
			outs, err = nil, fmt.Errorf("panic in closure: %v", p)
		}
	}()
	v, ok := closures.Load(tok)
	if !ok {
		return nil, errors.New("closure was released")
	}
	res, ferr := v.(ClosureFunc)(ts, args)
	if ferr == nil {
		ferr = ts.err
	}
	if ferr != nil {
		return nil, ferr
	}
	outs = make([]hnd, 0, len(res))
	for i, a := range res {
		if a == nil || a.h == nil {
			for _, h := range outs {
				libFree(h)
			}
			return nil, fmt.Errorf("closure output %d is nil or released", i)
		}
		h, err := libCopyHandle(a.h)
		if err != nil {
			for _, h := range outs {
				libFree(h)
			}
			return nil, err
		}
		outs = append(outs, h)
	}
	return outs, nil
}
