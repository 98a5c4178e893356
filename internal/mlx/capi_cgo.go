//go:build cgo && !nomlx

package mlx

/*
#cgo CXXFLAGS: -std=c++20 -O2 -I${SRCDIR}/../../.mlx/include
#cgo LDFLAGS: -L${SRCDIR}/../../.mlx/lib -lmlx -Wl,-rpath,$ORIGIN/../.mlx/lib -Wl,-rpath,$ORIGIN/../mlx/lib -Wl,-rpath,$ORIGIN/../lib
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"errors"
	"unsafe"
)

const available = true

// The Go op codes must match the shim's enums; each pair of conversions fails
// to compile if they drift apart in either direction.
const (
	_ = uint(C.MLXS_UNARY_END - unaryEnd)
	_ = uint(unaryEnd - C.MLXS_UNARY_END)
	_ = uint(C.MLXS_BINARY_END - binaryEnd)
	_ = uint(binaryEnd - C.MLXS_BINARY_END)
	_ = uint(C.MLXS_REDUCE_END - reduceEnd)
	_ = uint(reduceEnd - C.MLXS_REDUCE_END)
	_ = uint(C.MLXS_MATMUL - opMatMul)
	_ = uint(opMatMul - C.MLXS_MATMUL)
	_ = uint(C.MLXS_ARGMAX - redArgMax)
	_ = uint(redArgMax - C.MLXS_ARGMAX)
)

type hnd = unsafe.Pointer

func lastErr() error { return errors.New(C.GoString(C.mlxs_last_error())) }

func ck(rc C.int) error {
	if rc != 0 {
		return lastErr()
	}
	return nil
}

func ca(h hnd) C.mlxs_array { return C.mlxs_array{ctx: h} }

func i64s(v []int) (*C.int64_t, []int64) {
	if len(v) == 0 {
		return nil, nil
	}
	s := make([]int64, len(v))
	for i, x := range v {
		s[i] = int64(x)
	}
	return (*C.int64_t)(unsafe.Pointer(&s[0])), s
}

func i32s(v []int) (*C.int, []C.int) {
	if len(v) == 0 {
		return nil, nil
	}
	s := make([]C.int, len(v))
	for i, x := range v {
		s[i] = C.int(x)
	}
	return &s[0], s
}

func handles(hs []hnd) (*C.mlxs_array, []C.mlxs_array) {
	if len(hs) == 0 {
		return nil, nil
	}
	s := make([]C.mlxs_array, len(hs))
	for i, h := range hs {
		s[i].ctx = h
	}
	return &s[0], s
}

func libVersion() string {
	var p *C.char
	if C.mlxs_version(&p) != 0 {
		return "unknown"
	}
	return C.GoString(p)
}

func libGPUSoftmaxBias(l hnd, bs []hnd) (hnd, error) {
	var out C.mlxs_array
	p, keep := handles(bs)
	err := ck(C.mlxs_gpu_softmax_bias(&out, ca(l), p, C.int(len(bs))))
	_ = keep
	return out.ctx, err
}

func libGPUBiasSum(shape []int, dt Dtype, clampF16 bool, bs []hnd) (hnd, error) {
	var out C.mlxs_array
	sp, keepS := i64s(shape)
	p, keep := handles(bs)
	err := ck(C.mlxs_gpu_bias_sum(&out, sp, C.int(len(shape)), C.int(dt), C.bool(clampF16), p, C.int(len(bs))))
	_, _ = keep, keepS
	return out.ctx, err
}

func libGPULayerNorm(x, w, b hnd, eps float32) (hnd, error) {
	var out C.mlxs_array
	err := ck(C.mlxs_gpu_layer_norm(&out, ca(x), optional(w), optional(b), C.float(eps)))
	return out.ctx, err
}

func libGPUFlashAttention(q, k, v hnd, bs []hnd, scale float32, dt Dtype, mma bool) (hnd, error) {
	var out C.mlxs_array
	p, keep := handles(bs)
	err := ck(C.mlxs_gpu_flash_attention(&out, ca(q), ca(k), ca(v), p, C.int(len(bs)), C.float(scale), C.int(dt), C.bool(mma)))
	_ = keep
	return out.ctx, err
}

func libGPUMemInfo() (free, total int64, ok bool) {
	var f, t C.int64_t
	var k C.int
	if C.mlxs_gpu_mem_info(&f, &t, &k) != 0 || k == 0 {
		return 0, 0, false
	}
	return int64(f), int64(t), true
}

func libGPUIO() string {
	var p *C.char
	if C.mlxs_gpu_io_status(&p) != 0 {
		return "unknown"
	}
	return C.GoString(p)
}

func libSetGPUIO(mode string) error {
	cs := C.CString(mode)
	defer C.free(unsafe.Pointer(cs))
	return ck(C.mlxs_gpu_io_set_mode(cs))
}

func libGPUIOSelfTest(nbytes, bufBytes, nbufs, threads int) (int, error) {
	var pieces C.long
	err := ck(C.mlxs_gpu_io_selftest(C.size_t(nbytes), C.size_t(bufBytes), C.int(nbufs), C.int(threads), &pieces))
	return int(pieces), err
}

func libDeviceCount(t DeviceType) (int, error) {
	var n C.int
	err := ck(C.mlxs_device_count(C.int(t), &n))
	return int(n), err
}

func libDeviceAvailable(t DeviceType, i int) (bool, error) {
	var ok C.bool
	err := ck(C.mlxs_device_available(C.int(t), C.int(i), &ok))
	return bool(ok), err
}

func libDefaultDevice() (Device, error) {
	var t, i C.int
	err := ck(C.mlxs_default_device(&t, &i))
	return Device{Type: DeviceType(t), Index: int(i)}, err
}

func libSetDefaultDevice(d Device) error {
	return ck(C.mlxs_set_default_device(C.int(d.Type), C.int(d.Index)))
}

func libDeviceName(d Device) string {
	var buf [256]C.char
	if C.mlxs_device_name(C.int(d.Type), C.int(d.Index), &buf[0], C.size_t(len(buf))) != 0 {
		return ""
	}
	return C.GoString(&buf[0])
}

func libBLAS() string {
	var buf [1024]C.char
	if C.mlxs_blas_library(&buf[0], C.size_t(len(buf))) != 0 {
		return ""
	}
	return C.GoString(&buf[0])
}

func libSynchronize() error { return ck(C.mlxs_synchronize()) }

func libMemory() (MemoryStats, error) {
	var a, p, c, l C.size_t
	err := ck(C.mlxs_memory(&a, &p, &c, &l))
	return MemoryStats{Active: uint64(a), Peak: uint64(p), Cache: uint64(c), Limit: uint64(l)}, err
}

func libResetPeakMemory() error { return ck(C.mlxs_reset_peak_memory()) }

func libSetMemoryLimit(n uint64) (uint64, error) {
	var prev C.size_t
	err := ck(C.mlxs_set_memory_limit(C.size_t(n), &prev))
	return uint64(prev), err
}

func libSetCacheLimit(n uint64) (uint64, error) {
	var prev C.size_t
	err := ck(C.mlxs_set_cache_limit(C.size_t(n), &prev))
	return uint64(prev), err
}

func libClearCache() error { return ck(C.mlxs_clear_cache()) }

func libSetCompileEnabled(on bool) error { return ck(C.mlxs_set_compile_enabled(C.bool(on))) }

func libFree(h hnd) { C.mlxs_array_free(ca(h)) }

func libCopyHandle(h hnd) (hnd, error) {
	var out C.mlxs_array
	err := ck(C.mlxs_array_copy_handle(&out, ca(h)))
	return out.ctx, err
}

func libFromData(data unsafe.Pointer, nbytes int, shape []int, dt Dtype) (hnd, error) {
	var out C.mlxs_array
	sp, keep := i64s(shape)
	err := ck(C.mlxs_array_from_data(&out, data, C.size_t(nbytes), sp, C.int(len(shape)), C.int(dt)))
	_ = keep
	return out.ctx, err
}

func libScalar(v float64, dt Dtype) (hnd, error) {
	var out C.mlxs_array
	err := ck(C.mlxs_array_scalar(&out, C.double(v), C.int(dt)))
	return out.ctx, err
}

func libShape(h hnd) []int {
	var nd C.int
	if C.mlxs_array_ndim(ca(h), &nd) != 0 {
		return nil
	}
	var buf [16]int64
	s := buf[:]
	if int(nd) > len(buf) {
		s = make([]int64, nd)
	}
	out := make([]int, nd)
	if nd == 0 {
		return out
	}
	if C.mlxs_array_shape(ca(h), (*C.int64_t)(unsafe.Pointer(&s[0]))) != 0 {
		return nil
	}
	for i := range out {
		out[i] = int(s[i])
	}
	return out
}

func libNdim(h hnd) int {
	var nd C.int
	C.mlxs_array_ndim(ca(h), &nd)
	return int(nd)
}

func libDtype(h hnd) Dtype {
	var d C.int
	if C.mlxs_array_dtype(ca(h), &d) != 0 {
		return -1
	}
	return Dtype(d)
}

func libSize(h hnd) int {
	var n C.size_t
	C.mlxs_array_size(ca(h), &n)
	return int(n)
}

func libRead(h hnd, dst unsafe.Pointer, nbytes int) error {
	return ck(C.mlxs_array_read(ca(h), dst, C.size_t(nbytes)))
}

func libEval(hs []hnd) error {
	p, keep := handles(hs)
	err := ck(C.mlxs_eval(p, C.int(len(hs))))
	_ = keep
	return err
}

func libUnary(op int, a hnd) (hnd, error) {
	var out C.mlxs_array
	err := ck(C.mlxs_unary(C.int(op), &out, ca(a)))
	return out.ctx, err
}

func libBinary(op int, a, b hnd) (hnd, error) {
	var out C.mlxs_array
	err := ck(C.mlxs_binary(C.int(op), &out, ca(a), ca(b)))
	return out.ctx, err
}

func libReduce(op int, a hnd, axes []int, all, keepdims bool) (hnd, error) {
	var out C.mlxs_array
	p, keep := i32s(axes)
	n := C.int(len(axes))
	if all {
		n = -1
	}
	err := ck(C.mlxs_reduce(C.int(op), &out, ca(a), p, n, C.bool(keepdims)))
	_ = keep
	return out.ctx, err
}

func libWhere(c, x, y hnd) (hnd, error) {
	var out C.mlxs_array
	err := ck(C.mlxs_where(&out, ca(c), ca(x), ca(y)))
	return out.ctx, err
}

func libAsType(a hnd, dt Dtype) (hnd, error) {
	var out C.mlxs_array
	err := ck(C.mlxs_astype(&out, ca(a), C.int(dt)))
	return out.ctx, err
}

func libContiguous(a hnd) (hnd, error) {
	var out C.mlxs_array
	err := ck(C.mlxs_contiguous(&out, ca(a)))
	return out.ctx, err
}

func libDepends(x, dep hnd) (hnd, error) {
	var out C.mlxs_array
	err := ck(C.mlxs_depends(&out, ca(x), ca(dep)))
	return out.ctx, err
}

func libClip(a, lo, hi hnd) (hnd, error) {
	var out C.mlxs_array
	err := ck(C.mlxs_clip(&out, ca(a), optional(lo), optional(hi)))
	return out.ctx, err
}

func libEinsum(sub string, ops []hnd) (hnd, error) {
	var out C.mlxs_array
	cs := C.CString(sub)
	defer C.free(unsafe.Pointer(cs))
	p, keep := handles(ops)
	err := ck(C.mlxs_einsum(&out, cs, p, C.int(len(ops))))
	_ = keep
	return out.ctx, err
}

func libReshape(a hnd, shape []int) (hnd, error) {
	var out C.mlxs_array
	p, keep := i64s(shape)
	err := ck(C.mlxs_reshape(&out, ca(a), p, C.int(len(shape))))
	_ = keep
	return out.ctx, err
}

func libTranspose(a hnd, perm []int) (hnd, error) {
	var out C.mlxs_array
	p, keep := i32s(perm)
	err := ck(C.mlxs_transpose(&out, ca(a), p, C.int(len(perm))))
	_ = keep
	return out.ctx, err
}

func libBroadcastTo(a hnd, shape []int) (hnd, error) {
	var out C.mlxs_array
	p, keep := i64s(shape)
	err := ck(C.mlxs_broadcast_to(&out, ca(a), p, C.int(len(shape))))
	_ = keep
	return out.ctx, err
}

func libExpandDims(a hnd, axes []int) (hnd, error) {
	var out C.mlxs_array
	p, keep := i32s(axes)
	err := ck(C.mlxs_expand_dims(&out, ca(a), p, C.int(len(axes))))
	_ = keep
	return out.ctx, err
}

func libSqueeze(a hnd, axes []int, all bool) (hnd, error) {
	var out C.mlxs_array
	p, keep := i32s(axes)
	n := C.int(len(axes))
	if all {
		n = -1
	}
	err := ck(C.mlxs_squeeze(&out, ca(a), p, n))
	_ = keep
	return out.ctx, err
}

func libSlice(a hnd, start, stop, strides []int) (hnd, error) {
	var out C.mlxs_array
	p1, k1 := i64s(start)
	p2, k2 := i64s(stop)
	p3, k3 := i64s(strides)
	err := ck(C.mlxs_slice(&out, ca(a), p1, p2, p3, C.int(len(start))))
	_, _, _ = k1, k2, k3
	return out.ctx, err
}

func libSliceUpdate(a, upd hnd, start, stop, strides []int) (hnd, error) {
	var out C.mlxs_array
	p1, k1 := i64s(start)
	p2, k2 := i64s(stop)
	p3, k3 := i64s(strides)
	err := ck(C.mlxs_slice_update(&out, ca(a), ca(upd), p1, p2, p3, C.int(len(start))))
	_, _, _ = k1, k2, k3
	return out.ctx, err
}

func libConcatenate(hs []hnd, axis int) (hnd, error) {
	var out C.mlxs_array
	p, keep := handles(hs)
	err := ck(C.mlxs_concatenate(&out, p, C.int(len(hs)), C.int(axis)))
	_ = keep
	return out.ctx, err
}

func libStack(hs []hnd, axis int) (hnd, error) {
	var out C.mlxs_array
	p, keep := handles(hs)
	err := ck(C.mlxs_stack(&out, p, C.int(len(hs)), C.int(axis)))
	_ = keep
	return out.ctx, err
}

func libSplit(a hnd, indices []int, axis int) ([]hnd, error) {
	outs := make([]C.mlxs_array, len(indices)+1)
	p, keep := i64s(indices)
	err := ck(C.mlxs_split(&outs[0], ca(a), p, C.int(len(indices)), C.int(axis)))
	_ = keep
	if err != nil {
		return nil, err
	}
	hs := make([]hnd, len(outs))
	for i := range outs {
		hs[i] = outs[i].ctx
	}
	return hs, nil
}

func libTake(a, idx hnd, axis int) (hnd, error) {
	var out C.mlxs_array
	err := ck(C.mlxs_take(&out, ca(a), ca(idx), C.int(axis)))
	return out.ctx, err
}

func libTakeAlongAxis(a, idx hnd, axis int) (hnd, error) {
	var out C.mlxs_array
	err := ck(C.mlxs_take_along_axis(&out, ca(a), ca(idx), C.int(axis)))
	return out.ctx, err
}

func libPutAlongAxis(a, idx, vals hnd, axis int) (hnd, error) {
	var out C.mlxs_array
	err := ck(C.mlxs_put_along_axis(&out, ca(a), ca(idx), ca(vals), C.int(axis)))
	return out.ctx, err
}

func libGather(a hnd, idx []hnd, axes, slice []int) (hnd, error) {
	var out C.mlxs_array
	if len(idx) != len(axes) {
		return nil, errors.New("gather needs one axis per index array")
	}
	p, k1 := handles(idx)
	ap, k2 := i32s(axes)
	sp, k3 := i64s(slice)
	err := ck(C.mlxs_gather(&out, ca(a), p, C.int(len(idx)), ap, sp, C.int(len(slice))))
	_, _, _ = k1, k2, k3
	return out.ctx, err
}

func libScatter(a hnd, idx []hnd, upd hnd, axes []int, mode int) (hnd, error) {
	var out C.mlxs_array
	p, k1 := handles(idx)
	ap, k2 := i32s(axes)
	if len(idx) != len(axes) {
		return nil, errors.New("scatter needs one axis per index array")
	}
	err := ck(C.mlxs_scatter(&out, ca(a), p, C.int(len(idx)), ca(upd), ap, C.int(mode)))
	_, _ = k1, k2
	return out.ctx, err
}

func libPad(a hnd, low, high []int, value hnd) (hnd, error) {
	var out C.mlxs_array
	if len(low) != len(high) {
		return nil, errors.New("pad: low and high differ in length")
	}
	p1, k1 := i64s(low)
	p2, k2 := i64s(high)
	err := ck(C.mlxs_pad(&out, ca(a), p1, p2, C.int(len(low)), ca(value)))
	_, _ = k1, k2
	return out.ctx, err
}

func libTile(a hnd, reps []int) (hnd, error) {
	var out C.mlxs_array
	p, keep := i32s(reps)
	err := ck(C.mlxs_tile(&out, ca(a), p, C.int(len(reps))))
	_ = keep
	return out.ctx, err
}

func libArange(start, stop, step float64, dt Dtype) (hnd, error) {
	var out C.mlxs_array
	err := ck(C.mlxs_arange(&out, C.double(start), C.double(stop), C.double(step), C.int(dt)))
	return out.ctx, err
}

func libFull(shape []int, value hnd, dt Dtype) (hnd, error) {
	var out C.mlxs_array
	p, keep := i64s(shape)
	err := ck(C.mlxs_full(&out, p, C.int(len(shape)), ca(value), C.int(dt)))
	_ = keep
	return out.ctx, err
}

func libCumsum(a hnd, axis int, reverse, inclusive bool) (hnd, error) {
	var out C.mlxs_array
	err := ck(C.mlxs_cumsum(&out, ca(a), C.int(axis), C.bool(reverse), C.bool(inclusive)))
	return out.ctx, err
}

func libTri(a hnd, k int, upper bool) (hnd, error) {
	var out C.mlxs_array
	err := ck(C.mlxs_tri(&out, ca(a), C.int(k), C.bool(upper)))
	return out.ctx, err
}

func libSoftmax(a hnd, axes []int, precise bool) (hnd, error) {
	var out C.mlxs_array
	p, keep := i32s(axes)
	err := ck(C.mlxs_softmax(&out, ca(a), p, C.int(len(axes)), C.bool(precise)))
	_ = keep
	return out.ctx, err
}

// optional turns a nil handle into a NULL pointer for the shim's optional
// arguments.
func optional(h hnd) *C.mlxs_array {
	if h == nil {
		return nil
	}
	return &C.mlxs_array{ctx: h}
}

func libLayerNorm(x, w, b hnd, eps float32) (hnd, error) {
	var out C.mlxs_array
	err := ck(C.mlxs_layer_norm(&out, ca(x), optional(w), optional(b), C.float(eps)))
	return out.ctx, err
}

func libRMSNorm(x, w hnd, eps float32) (hnd, error) {
	var out C.mlxs_array
	err := ck(C.mlxs_rms_norm(&out, ca(x), optional(w), C.float(eps)))
	return out.ctx, err
}

func libSDPA(q, k, v hnd, scale float32, mask hnd) (hnd, error) {
	var out C.mlxs_array
	err := ck(C.mlxs_sdpa(&out, ca(q), ca(k), ca(v), C.float(scale), optional(mask)))
	return out.ctx, err
}

// ---- functions ----

func libClosureNew(token uintptr) (hnd, error) {
	var out C.mlxs_function
	err := ck(C.mlxs_closure_new(&out, C.uintptr_t(token)))
	return out.ctx, err
}

func libFunctionFree(h hnd) { C.mlxs_function_free(C.mlxs_function{ctx: h}) }

func libCompile(f hnd, shapeless bool) (hnd, error) {
	var out C.mlxs_function
	err := ck(C.mlxs_compile(&out, C.mlxs_function{ctx: f}, C.bool(shapeless)))
	return out.ctx, err
}

func libCall(f hnd, in []hnd) ([]hnd, error) {
	p, keep := handles(in)
	var outs *C.mlxs_array
	var n C.int
	err := ck(C.mlxs_function_call(C.mlxs_function{ctx: f}, p, C.int(len(in)), &outs, &n))
	_ = keep
	if err != nil {
		return nil, err
	}
	defer C.mlxs_handles_free(outs)
	cs := unsafe.Slice(outs, int(n))
	hs := make([]hnd, n)
	for i := range cs {
		hs[i] = cs[i].ctx
	}
	return hs, nil
}

func libTakeDeadTokens() []uintptr {
	var buf [64]C.uintptr_t
	var out []uintptr
	for {
		var n C.int
		if C.mlxs_take_dead_tokens(&buf[0], C.int(len(buf)), &n) != 0 || n == 0 {
			return out
		}
		for i := 0; i < int(n); i++ {
			out = append(out, uintptr(buf[i]))
		}
	}
}

func libExport(path string, f hnd, args []hnd, shapeless bool) error {
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	p, keep := handles(args)
	err := ck(C.mlxs_export_function(cp, C.mlxs_function{ctx: f}, p, C.int(len(args)), C.bool(shapeless)))
	_ = keep
	return err
}

func libImport(path string) (hnd, error) {
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	var out C.mlxs_function
	err := ck(C.mlxs_import_function(&out, cp))
	return out.ctx, err
}

//export mlxsGoClosureCall
func mlxsGoClosureCall(token C.uintptr_t, in *C.mlxs_array, nin C.int, outs **C.mlxs_array, nout *C.int, errp **C.char) C.int {
	ins := make([]hnd, int(nin))
	if nin > 0 {
		for i, h := range unsafe.Slice(in, int(nin)) {
			ins[i] = h.ctx
		}
	}
	res, err := runClosure(uintptr(token), ins)
	if err != nil {
		*errp = C.CString(err.Error())
		*nout = 0
		*outs = nil
		return 1
	}
	if len(res) > 0 {
		p := (*C.mlxs_array)(C.malloc(C.size_t(len(res)) * C.size_t(unsafe.Sizeof(C.mlxs_array{}))))
		cs := unsafe.Slice(p, len(res))
		for i, h := range res {
			cs[i].ctx = h
		}
		*outs = p
	} else {
		*outs = nil
	}
	*nout = C.int(len(res))
	return 0
}

// ---- safetensors ----

func libLoadSafetensors(path string) ([]string, []hnd, map[string]string, error) {
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	var st C.mlxs_st
	if err := ck(C.mlxs_load_safetensors(&st, cp)); err != nil {
		return nil, nil, nil, err
	}
	defer C.mlxs_st_free(st)
	var na, nm C.int
	if err := ck(C.mlxs_st_counts(st, &na, &nm)); err != nil {
		return nil, nil, nil, err
	}
	names := make([]string, na)
	hs := make([]hnd, na)
	for i := 0; i < int(na); i++ {
		var name *C.char
		var a C.mlxs_array
		if err := ck(C.mlxs_st_array(st, C.int(i), &name, &a)); err != nil {
			for _, h := range hs[:i] {
				libFree(h)
			}
			return nil, nil, nil, err
		}
		names[i], hs[i] = C.GoString(name), a.ctx
	}
	meta := make(map[string]string, nm)
	for i := 0; i < int(nm); i++ {
		var k, v *C.char
		if C.mlxs_st_meta(st, C.int(i), &k, &v) == 0 {
			meta[C.GoString(k)] = C.GoString(v)
		}
	}
	return names, hs, meta, nil
}

func libSaveSafetensors(path string, names []string, hs []hnd, meta map[string]string) error {
	var cstrs []*C.char
	defer func() {
		for _, s := range cstrs {
			C.free(unsafe.Pointer(s))
		}
	}()
	cs := func(s string) *C.char {
		p := C.CString(s)
		cstrs = append(cstrs, p)
		return p
	}
	// Arrays of C string pointers live in C memory so cgo's pointer checks pass.
	carr := func(n int) []*C.char {
		if n == 0 {
			return nil
		}
		p := (**C.char)(C.malloc(C.size_t(n) * C.size_t(unsafe.Sizeof((*C.char)(nil)))))
		cstrs = append(cstrs, (*C.char)(unsafe.Pointer(p)))
		return unsafe.Slice(p, n)
	}
	cn := carr(len(names))
	for i, n := range names {
		cn[i] = cs(n)
	}
	mk, mv := carr(len(meta)), carr(len(meta))
	i := 0
	for k, v := range meta {
		mk[i], mv[i] = cs(k), cs(v)
		i++
	}
	ptr := func(s []*C.char) **C.char {
		if len(s) == 0 {
			return nil
		}
		return &s[0]
	}
	cp := cs(path)
	p, keep := handles(hs)
	err := ck(C.mlxs_save_safetensors(cp, ptr(cn), p, C.int(len(hs)), ptr(mk), ptr(mv), C.int(len(meta))))
	_ = keep
	return err
}
