//go:build cgo && !nomlx

package mlx

/*
#include <stdlib.h>
#include "distributed.h"
*/
import "C"

import (
	"errors"
	"unsafe"
)

func dck(rc C.int) error {
	if rc != 0 {
		return errors.New(C.GoString(C.mlxs_dist_last_error()))
	}
	return nil
}

func libDistAvailable(backend string) bool {
	cs := C.CString(backend)
	defer C.free(unsafe.Pointer(cs))
	var ok C.bool
	if C.mlxs_dist_is_available(cs, &ok) != 0 {
		return false
	}
	return bool(ok)
}

func libDistInit(backend string, timeoutMS int) (int, int, error) {
	cs := C.CString(backend)
	defer C.free(unsafe.Pointer(cs))
	var r, n C.int
	err := dck(C.mlxs_dist_init(cs, C.int(timeoutMS), &r, &n))
	return int(r), int(n), err
}

func libDistGroup() (int, int) {
	var r, n C.int
	if C.mlxs_dist_group(&r, &n) != 0 {
		return 0, 1
	}
	return int(r), int(n)
}

func libDistAllSum(x hnd) (hnd, error) {
	var out C.mlxs_array
	err := dck(C.mlxs_dist_all_sum(&out, ca(x)))
	return out.ctx, err
}

func libDistAllGather(x hnd, axis int) (hnd, error) {
	var out C.mlxs_array
	err := dck(C.mlxs_dist_all_gather(&out, ca(x), C.int(axis)))
	return out.ctx, err
}

func libDistAllToAll(x hnd, split, concat int) (hnd, error) {
	var out C.mlxs_array
	err := dck(C.mlxs_dist_all_to_all(&out, ca(x), C.int(split), C.int(concat)))
	return out.ctx, err
}

func libDistSend(x hnd, dst int) (hnd, error) {
	var out C.mlxs_array
	err := dck(C.mlxs_dist_send(&out, ca(x), C.int(dst)))
	return out.ctx, err
}

func libDistRecv(shape []int, dt Dtype, src int) (hnd, error) {
	var out C.mlxs_array
	sp, keep := i64s(shape)
	err := dck(C.mlxs_dist_recv(&out, sp, C.int(len(shape)), C.int(dt), C.int(src)))
	_ = keep
	return out.ctx, err
}
