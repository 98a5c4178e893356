//go:build cgo && !nomlx

package mlx

/*
#include "fastcpu.h"
*/
import "C"

import "errors"

// The Go op codes must match fastcpu.h's enums (see capi_cgo.go).
const (
	_ = uint(C.MLXS_FAST_UNARY_END - fastUnaryEnd)
	_ = uint(fastUnaryEnd - C.MLXS_FAST_UNARY_END)
	_ = uint(C.MLXS_FAST_BINARY_END - fastBinaryEnd)
	_ = uint(fastBinaryEnd - C.MLXS_FAST_BINARY_END)
	_ = uint(C.MLXS_FAST_SOFTMAX - fastSoftmax)
	_ = uint(fastSoftmax - C.MLXS_FAST_SOFTMAX)
)

func fck(rc C.int) error {
	if rc != 0 {
		return errors.New(C.GoString(C.mlxs_fast_last_error()))
	}
	return nil
}

func libFastUnary(op int, a hnd) (hnd, error) {
	var out C.mlxs_array
	err := fck(C.mlxs_fast_unary(C.int(op), &out, ca(a)))
	return out.ctx, err
}

func libFastBinary(op int, a, b hnd) (hnd, error) {
	var out C.mlxs_array
	err := fck(C.mlxs_fast_binary(C.int(op), &out, ca(a), ca(b)))
	return out.ctx, err
}

func libFastLayerNorm(x, w, b hnd, eps float32) (hnd, error) {
	var out C.mlxs_array
	err := fck(C.mlxs_fast_layer_norm(&out, ca(x), optional(w), optional(b), C.float(eps)))
	return out.ctx, err
}

func libFastSoftmaxBias(x hnd, scale float32, bs []hnd) (hnd, error) {
	var out C.mlxs_array
	var p *C.mlxs_array
	if len(bs) > 0 {
		arr := make([]C.mlxs_array, len(bs))
		for i, h := range bs {
			arr[i].ctx = h
		}
		p = &arr[0]
	}
	err := fck(C.mlxs_fast_softmax_bias(&out, ca(x), C.float(scale), p, C.int(len(bs))))
	return out.ctx, err
}

func libFastCheckDevice(t DeviceType) error { return fck(C.mlxs_fast_check_device(C.int(t))) }

func libFastISA() string {
	var p *C.char
	if C.mlxs_fast_isa(&p) != 0 {
		return ""
	}
	return C.GoString(p)
}

func libFastSetISA(isa int) error { return fck(C.mlxs_fast_set_isa(C.int(isa))) }

func libFastThreads() int {
	var n C.int
	if C.mlxs_fast_threads(&n) != 0 {
		return 1
	}
	return int(n)
}

func libFastAttention(q, k, v hnd, scale float32, bs []hnd, headsInner bool) (hnd, error) {
	var out C.mlxs_array
	var p *C.mlxs_array
	if len(bs) > 0 {
		arr := make([]C.mlxs_array, len(bs))
		for i, h := range bs {
			arr[i].ctx = h
		}
		p = &arr[0]
	}
	hi := C.int(0)
	if headsInner {
		hi = 1
	}
	err := fck(C.mlxs_fast_attention(&out, ca(q), ca(k), ca(v), C.float(scale), p, C.int(len(bs)), hi))
	return out.ctx, err
}

func libFastContiguous(x hnd) (hnd, error) {
	var out C.mlxs_array
	err := fck(C.mlxs_fast_contiguous(&out, ca(x)))
	return out.ctx, err
}

func libFastMatMul(a, b hnd) (hnd, error) {
	var out C.mlxs_array
	err := fck(C.mlxs_fast_matmul(&out, ca(a), ca(b)))
	return out.ctx, err
}
