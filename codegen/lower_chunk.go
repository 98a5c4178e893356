package codegen

import (
	"fmt"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/mlx"
	"github.com/of3c/of3c/internal/shapes"
)

// A lowering of of3c.TriangleMultiplication that keeps the memory contract
// of docs/ops.md under row_chunk (path trimul/blocked): x·W, a and b are
// computed per block of R pair rows (outgoing) or columns (incoming), b's
// blocks stay separate GEMM operands, and each output row block is the
// concatenation of its aᵀ·b products — so no [N, N, 4h] projection and no
// whole a exist. TriangleMultiplicationPath takes it whenever row_chunk
// splits the rows; otherwise lower_pair.go computes x·W, a and b whole.
// Measured peaks (MLX CPU, f32, c = h = 128, the op alone;
// TestTriangleMultiplicationChunkedPeak), whole / blocked at row_chunk 0 /
// blocked at row_chunk 64: N = 512 1537 / 1282 / 1250 MiB; N = 384 865 /
// 721 / 805 MiB; N = 256 384 / 321 / 512 MiB. (Before the blocked form,
// the one-shot lowering chunking only the final GEMM peaked at 2561 MiB at
// N = 512, row_chunk 64.) MLX evaluates the lazy graph without sequencing
// the blocks, so the lowering orders them (each block's inputs depending on
// the previous block's result); even so, small blocks at small N cost more
// than they save.

// pairRowBlocks splits n rows into [lo, hi) blocks of chunk (0 or ≥ n: one).
func pairRowBlocks(n, chunk int64) [][2]int64 {
	if chunk <= 0 || chunk >= n {
		return [][2]int64{{0, n}}
	}
	var out [][2]int64
	for lo := int64(0); lo < n; lo += chunk {
		out = append(out, [2]int64{lo, min(lo+chunk, n)})
	}
	return out
}

// lowerTriangleMultiplicationBlocked: a, b = mask·σ(x Wg)·(x Wp) computed per block
// of pair rows (outgoing) or columns (incoming); b's blocks are kept as GEMM
// operands [B, h, K, Rj] and never concatenated; each block of output rows is
// the concatenation of aᵀ-block · b-block products over j.
func lowerTriangleMultiplicationBlocked(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	s := t.s
	x, w := in[0], in[2]
	mask := in[1]
	if x == nil || w == nil {
		return nil, fmt.Errorf("x and W are required")
	}
	dir := n.AttrString("direction", graph.TriangleOutgoing)
	if dir != graph.TriangleOutgoing && dir != graph.TriangleIncoming {
		return nil, fmt.Errorf("unknown direction %q", dir)
	}
	r := x.rank()
	if r < 3 || x.shape[r-3] != x.shape[r-2] {
		return nil, fmt.Errorf("x %v: want [*, N, N, c]", x.shape)
	}
	lead := x.shape[:r-3]
	B := shapes.Prod(lead)
	N, C := x.shape[r-2], x.shape[r-1]
	if w.rank() != 2 || w.shape[0] != C || w.shape[1]%4 != 0 {
		return nil, fmt.Errorf("W %v: want [%d, 4h]", w.shape, C)
	}
	H := w.shape[1] / 4
	dt := x.dt
	xa := s.Reshape(t.toF32(t.arr(x)), int(B), int(N), int(N), int(C))
	wa := t.toF32(t.arr(w))
	wA := t.sliceAxis(wa, []int64{C, 4 * H}, 1, 0, 2*H)
	wB := t.sliceAxis(wa, []int64{C, 4 * H}, 1, 2*H, 4*H)
	var ma *mlx.Array
	if mask != nil {
		full := append(intsOf(lead), int(N), int(N), 1)
		ma = s.Reshape(s.BroadcastTo(t.toF32(t.arr(mask)), full...), int(B), int(N), int(N), 1)
	}
	// The block axis of x (and the mask): rows for outgoing, columns for
	// incoming; both a and b are sliced along it.
	axis := 1
	permA, permB := []int{0, 3, 1, 2}, []int{0, 3, 2, 1}
	if dir == graph.TriangleIncoming {
		axis = 2
		permA, permB = permB, permA
	}
	gated := func(lo, hi int64, wp *mlx.Array) *mlx.Array {
		xb, mb := xa, ma
		if hi-lo != N {
			xb = t.sliceAxis(xa, shapeOf(xa), axis, lo, hi)
			if mb != nil {
				mb = t.sliceAxis(ma, shapeOf(ma), axis, lo, hi)
			}
		}
		y := s.MatMul(xb, wp) // [B, ·, ·, 2h]
		ys := shapeOf(y)
		p := t.sliceAxis(y, ys, 3, 0, H)
		g := t.sigmoid(t.sliceAxis(y, ys, 3, H, 2*H))
		if mb != nil {
			g = s.Mul(mb, g)
		}
		return s.Mul(g, p)
	}
	blocks := pairRowBlocks(N, n.AttrInt("row_chunk", 0))
	bT := make([]*mlx.Array, len(blocks))
	for k, blk := range blocks {
		bT[k] = s.Transpose(gated(blk[0], blk[1], wB), permB...) // [B, h, K, Rj]
	}
	var rows []*mlx.Array
	for _, blk := range blocks {
		aT := s.Transpose(gated(blk[0], blk[1], wA), permA...) // [B, h, R, K]
		var cols []*mlx.Array
		for _, bj := range bT {
			cols = append(cols, s.MatMul(aT, bj)) // [B, h, R, Rj]
		}
		row := cols[0]
		if len(cols) > 1 {
			row = s.Concatenate(3, cols...)
		}
		rows = append(rows, s.Transpose(row, 0, 2, 3, 1)) // [B, R, N, h]
	}
	out := rows[0]
	if len(rows) > 1 {
		out = s.Concatenate(1, rows...)
	}
	out = s.Reshape(out, append(intsOf(lead), int(N), int(N), int(H))...)
	if md := t.ddt(dt); out != nil && out.Dtype() != md {
		out = s.AsType(out, md)
	}
	return t.one(out, dt)
}
