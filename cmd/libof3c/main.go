// Command libof3c is of3c's C API as a shared library:
//
//	go build -buildmode=c-shared -o bin/libof3c.so ./cmd/libof3c
//
// The declarations are in of3c.h (hand-written; the generated libof3c.h
// matches it). This file only converts between C and Go types, keeps the
// per-thread error message and turns panics into errors; package capi does
// the work.
package main

/*
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static __thread char *of3c_err_msg;

static void of3c_set_error(const char *m) {
	free(of3c_err_msg);
	of3c_err_msg = m ? strdup(m) : NULL;
}

static const char *of3c_get_error(void) { return of3c_err_msg ? of3c_err_msg : ""; }
*/
import "C"

import (
	"fmt"
	"strings"
	"sync"
	"unsafe"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/capi"
)

// version is the of3c release; overridden at link time by `-X main.version=...`.
var version = "0.1.0-dev"

func main() {}

func init() { capi.Version = version }

// C strings the library owns: the version (forever), signatures (until
// the session closes) and result names (until the result is freed).
var (
	strMu      sync.Mutex
	versionStr *C.char
	sigStrs    = map[int64]*C.char{}
	nameStrs   = map[int64][]*C.char{}
)

// call runs f, catching panics, and sets the thread's error message.
func call(f func() error) (rc C.int) {
	defer func() {
		if p := recover(); p != nil {
			setError(fmt.Errorf("internal error: %v", p))
			rc = -1
		}
	}()
	if err := f(); err != nil {
		setError(err)
		return -1
	}
	C.of3c_set_error(nil)
	return 0
}

func setError(err error) {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	cs := C.CString(msg)
	C.of3c_set_error(cs)
	C.free(unsafe.Pointer(cs))
}

func goString(s *C.char) string {
	if s == nil {
		return ""
	}
	return C.GoString(s)
}

//export of3c_version
func of3c_version() *C.char {
	strMu.Lock()
	defer strMu.Unlock()
	if versionStr == nil {
		versionStr = C.CString(version)
	}
	return versionStr
}

//export of3c_last_error
func of3c_last_error() *C.char { return C.of3c_get_error() }

//export of3c_compile
func of3c_compile(src, out, options *C.char) C.int {
	return call(func() error { return capi.Compile(goString(src), goString(out), goString(options)) })
}

//export of3c_open
func of3c_open(path, device, options *C.char, out *C.int64_t) C.int {
	return call(func() error {
		if out == nil {
			return fmt.Errorf("of3c_open: out is NULL")
		}
		id, err := capi.Open(goString(path), goString(device), goString(options))
		if err != nil {
			return err
		}
		*out = C.int64_t(id)
		return nil
	})
}

//export of3c_close
func of3c_close(s C.int64_t) {
	call(func() error {
		capi.Close(int64(s))
		strMu.Lock()
		if p := sigStrs[int64(s)]; p != nil {
			C.free(unsafe.Pointer(p))
			delete(sigStrs, int64(s))
		}
		strMu.Unlock()
		return nil
	})
}

//export of3c_signature
func of3c_signature(s C.int64_t) *C.char {
	var out *C.char
	call(func() error {
		sig, err := capi.Signature(int64(s))
		if err != nil {
			return err
		}
		strMu.Lock()
		defer strMu.Unlock()
		if sigStrs[int64(s)] == nil {
			sigStrs[int64(s)] = C.CString(sig)
		}
		out = sigStrs[int64(s)]
		return nil
	})
	return out
}

//export of3c_run
func of3c_run(s C.int64_t, n C.int32_t, names **C.char, dtypes *C.int32_t, ranks *C.int32_t, shapes *C.int64_t,
	data *unsafe.Pointer, nbytes *C.int64_t, out *C.int64_t) C.int {
	return call(func() error {
		if out == nil {
			return fmt.Errorf("of3c_run: out is NULL")
		}
		if n < 0 || n > 1<<16 {
			return fmt.Errorf("of3c_run: %d inputs", n)
		}
		var ins []capi.Input
		if n > 0 {
			if names == nil || dtypes == nil || ranks == nil || data == nil || nbytes == nil {
				return fmt.Errorf("of3c_run: NULL array for %d inputs", n)
			}
			cn := unsafe.Slice(names, n)
			cd := unsafe.Slice(dtypes, n)
			cr := unsafe.Slice(ranks, n)
			cp := unsafe.Slice(data, n)
			cb := unsafe.Slice(nbytes, n)
			total := 0
			for i := range cr {
				if cr[i] < 0 || cr[i] > 64 {
					return fmt.Errorf("of3c_run: input %d has rank %d", i, cr[i])
				}
				total += int(cr[i])
			}
			var dims []C.int64_t
			if total > 0 {
				if shapes == nil {
					return fmt.Errorf("of3c_run: shapes is NULL")
				}
				dims = unsafe.Slice(shapes, total)
			}
			off := 0
			for i := 0; i < int(n); i++ {
				shape := make([]int64, cr[i])
				for k := range shape {
					shape[k] = int64(dims[off+k])
				}
				off += int(cr[i])
				if cb[i] < 0 || (cb[i] > 0 && cp[i] == nil) {
					return fmt.Errorf("of3c_run: input %d: %d bytes at %p", i, cb[i], cp[i])
				}
				var buf []byte
				if cb[i] > 0 {
					buf = unsafe.Slice((*byte)(cp[i]), int(cb[i]))
				}
				ins = append(ins, capi.Input{Name: goString(cn[i]), DType: graph.DType(cd[i]), Shape: shape, Data: buf})
			}
		}
		rid, err := capi.Run(int64(s), ins)
		if err != nil {
			return err
		}
		*out = C.int64_t(rid)
		return nil
	})
}

//export of3c_result_count
func of3c_result_count(r C.int64_t) C.int32_t {
	count := C.int32_t(-1)
	call(func() error {
		res, err := capi.GetResult(int64(r))
		if err != nil {
			return err
		}
		count = C.int32_t(len(res.Tensors))
		return nil
	})
	return count
}

func output(r C.int64_t, i C.int32_t) (*capi.Result, *graph.Tensor, error) {
	res, err := capi.GetResult(int64(r))
	if err != nil {
		return nil, nil, err
	}
	if i < 0 || int(i) >= len(res.Tensors) {
		return nil, nil, fmt.Errorf("output %d: the result has %d", i, len(res.Tensors))
	}
	return res, res.Tensors[i], nil
}

//export of3c_result_info
func of3c_result_info(r C.int64_t, i C.int32_t, name **C.char, dtype *C.int32_t, rank *C.int32_t, shape *C.int64_t, shapeCap C.int32_t, nbytes *C.int64_t) C.int {
	return call(func() error {
		res, t, err := output(r, i)
		if err != nil {
			return err
		}
		if name != nil {
			strMu.Lock()
			names := nameStrs[int64(r)]
			if names == nil {
				for _, n := range res.Names {
					names = append(names, C.CString(n))
				}
				nameStrs[int64(r)] = names
			}
			*name = names[i]
			strMu.Unlock()
		}
		if dtype != nil {
			*dtype = C.int32_t(t.DType)
		}
		if rank != nil {
			*rank = C.int32_t(len(t.Shape))
		}
		if shape != nil && shapeCap > 0 {
			dst := unsafe.Slice(shape, shapeCap)
			for k := 0; k < len(t.Shape) && k < int(shapeCap); k++ {
				dst[k] = C.int64_t(t.Shape[k])
			}
		}
		if nbytes != nil {
			*nbytes = C.int64_t(len(t.Data))
		}
		return nil
	})
}

//export of3c_result_copy
func of3c_result_copy(r C.int64_t, i C.int32_t, dst unsafe.Pointer, nbytes C.int64_t) C.int {
	return call(func() error {
		_, t, err := output(r, i)
		if err != nil {
			return err
		}
		if int64(nbytes) != int64(len(t.Data)) {
			return fmt.Errorf("output %d holds %d bytes, the buffer %d", i, len(t.Data), nbytes)
		}
		if nbytes > 0 {
			if dst == nil {
				return fmt.Errorf("of3c_result_copy: dst is NULL")
			}
			copy(unsafe.Slice((*byte)(dst), int(nbytes)), t.Data)
		}
		return nil
	})
}

//export of3c_result_free
func of3c_result_free(r C.int64_t) {
	call(func() error {
		capi.FreeResult(int64(r))
		strMu.Lock()
		for _, p := range nameStrs[int64(r)] {
			C.free(unsafe.Pointer(p))
		}
		delete(nameStrs, int64(r))
		strMu.Unlock()
		return nil
	})
}
