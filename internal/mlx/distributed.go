package mlx

import (
	"fmt"
	"time"
)

// MLX's distributed layer (mlx::core::distributed), bound in
// internal/mlx/distributed.cc: one process-wide group and collectives on
// arrays. The collectives are lazy like every op; the communication happens
// when their result is evaluated, on the executor thread.
//
// Backends are MLX's: "ring" (TCP between processes, configured by MLX's
// environment: MLX_RANK and MLX_HOSTFILE, a JSON list with one list of
// "host:port" addresses per rank), "nccl" (CUDA GPUs), "mpi", or "any"
// (the first available, a group of one when none is configured).

// Group is this process's place in the distributed group.
type Group struct{ Rank, Size int }

// DistAvailable reports whether MLX was built with backend.
func DistAvailable(backend string) bool {
	if !available {
		return false
	}
	var ok bool
	_ = Do(func(*Scope) error { ok = libDistAvailable(backend); return nil })
	return ok
}

// DistInit initialises the group of backend once per process (later calls
// return it). A peer that never connects is an error after timeout (≤ 0:
// wait as long as MLX does — for the ring backend, forever); the process
// should exit after such an error, since MLX's initialisation stays blocked
// behind it.
func DistInit(backend string, timeout time.Duration) (Group, error) {
	var g Group
	err := Do(func(*Scope) error {
		r, n, err := libDistInit(backend, int(timeout/time.Millisecond))
		if err != nil {
			return fmt.Errorf("mlx: distributed init: %w", err)
		}
		g = Group{Rank: r, Size: n}
		return nil
	})
	return g, err
}

// DistGroup is the initialised group, or rank 0 of 1 before DistInit.
func DistGroup() Group {
	if !available {
		return Group{Size: 1}
	}
	g := Group{Size: 1}
	_ = Do(func(*Scope) error { g.Rank, g.Size = libDistGroup(); return nil })
	return g
}

// AllSum is the element-wise sum of x over every rank.
func (s *Scope) AllSum(x *Array) *Array {
	if !s.ok("all_sum", x) {
		return nil
	}
	h, err := libDistAllSum(x.h)
	return s.result("all_sum", h, err)
}

// AllGather concatenates every rank's x (one shape everywhere) along axis,
// in rank order.
func (s *Scope) AllGather(x *Array, axis int) *Array {
	if !s.ok("all_gather", x) {
		return nil
	}
	h, err := libDistAllGather(x.h, axis)
	return s.result("all_gather", h, err)
}

// AllToAll splits x along split into Size equal chunks; rank r receives
// chunk r of every rank, concatenated along concat in rank order. It is
// MLX's all_gather followed by a slice (MLX has no all-to-all), so each rank
// receives (Size−1)·|x| bytes rather than (Size−1)/Size·|x|.
func (s *Scope) AllToAll(x *Array, split, concat int) *Array {
	if !s.ok("all_to_all", x) {
		return nil
	}
	h, err := libDistAllToAll(x.h, split, concat)
	return s.result("all_to_all", h, err)
}

// Send sends x to rank dst; the send happens when the result is evaluated.
func (s *Scope) Send(x *Array, dst int) *Array {
	if !s.ok("send", x) {
		return nil
	}
	h, err := libDistSend(x.h, dst)
	return s.result("send", h, err)
}

// Recv receives an array of shape and dtype from rank src.
func (s *Scope) Recv(shape []int, dt Dtype, src int) *Array {
	if !s.ok("recv") {
		return nil
	}
	h, err := libDistRecv(shape, dt, src)
	return s.result("recv", h, err)
}

// DistGroup is DistGroup for code already on the executor (inside Do or a
// traced function), where calling Do again is refused.
func (s *Scope) DistGroup() Group {
	r, n := libDistGroup()
	return Group{Rank: r, Size: n}
}
