// Package mlx is of3c's binding to the MLX C++ library (through its own
// extern "C" shim, shim.h/shim.cc, in mlx-c's conventions).
//
// # Threads
//
// MLX's default streams belong to the OS thread that created them, so all MLX
// work runs on one goroutine locked to its thread. Callers submit whole
// functions with Do; inside, every op is a direct cgo call on that thread:
//
//	err := mlx.Do(func(s *mlx.Scope) error {
//		x := s.FromFloat32s(data, 2, 3)
//		y := s.Softmax(s.MatMul(x, s.Transpose(x)), -1)
//		out = s.Float32s(y) // evaluates
//		return nil          // Do returns s.Err() when fn returns nil
//	})
//
// Do is safe for concurrent use; calls run one after another. Calling Do from
// inside Do is an error.
//
// # Errors
//
// Ops return *Array and record the first failure in the Scope (sticky, like
// bufio.Scanner): after it, ops return nil without calling MLX, so generated
// code can chain ops and check s.Err() once. Messages look like
// "mlx: matmul: <MLX's message>". Inputs MLX would assert on are validated in
// the shim, so no C++ exception or abort reaches Go.
//
// # Lifetimes
//
// A Scope owns the arrays made through it and frees them when it ends.
// Scope.Keep detaches arrays that must outlive it (weights, results); the
// caller then calls Array.Release (any goroutine), with a GC cleanup as a
// backstop that hands the free to the executor. Scope.Nest bounds the memory
// of a loop body. Function objects (closures, compiled and imported
// functions) live until Release, so a compiled function's MLX cache persists
// across Do calls.
//
// # Compile
//
// Scope.Closure wraps a Go function; Scope.Compile traces it (the Go function
// runs during tracing, via a cgo callback on the same thread) and returns a
// Function whose second call with the same input shapes and dtypes reuses the
// trace. A Go error or panic during tracing aborts it and becomes the Call's
// error.
//
// # Builds without MLX
//
// With CGO_ENABLED=0 or -tags nomlx the same API compiles; Available reports
// false and Do returns ErrUnavailable.
package mlx
