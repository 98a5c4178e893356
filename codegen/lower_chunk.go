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
// blocks are gathered once into one channel-first GEMM operand, and each
// output row block is one batched GEMM of its aᵀ block with all of b — so
// no [N, N, 4h] projection and no whole a exist, and the GEMMs are few and
// large (a first version multiplied every a block with every b block:
// (N/R)² small GEMMs, 26 ms per op at N = 1024 on an H200 in the eager
// profile, bench_block.sh probe). TriangleMultiplicationPath takes it
// whenever row_chunk splits the rows; otherwise lower_pair.go computes x·W,
// a and b whole. Measured peaks (MLX CPU, f32, c = h = 128, the op alone;
// TestTriangleMultiplicationChunkedPeak), whole / blocked at row_chunk 0 /
// blocked at row_chunk 64: N = 512 1537 / 1282 / 898 MiB (1250 with the
// per-block b operands, 1185 with the blocks not ordered).

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

// lowerTriangleMultiplicationBlocked: a, b = mask·σ(x Wg)·(x Wp) computed per
// block of pair rows (outgoing) or columns (incoming) from x as it is (no
// whole converted copy); b's blocks are gathered once, channel-first, into
// one [B, h, K, N] GEMM operand, and each block of output rows is one
// batched GEMM aᵀ-block · b (batch h, [R, K]·[K, N]). The contraction runs
// in pairGEMMDtype: bf16 on the GPU's tensor cores for bf16 (f32
// accumulation), the accumulation type otherwise.
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
	acc := t.accDType(dt)
	cdt := t.pairGEMMDtype(x)
	xa := s.Reshape(t.arr(x), int(B), int(N), int(N), int(C))
	wa := t.arr(w)
	wA := t.sliceAxis(wa, []int64{C, 4 * H}, 1, 0, 2*H)
	wB := t.sliceAxis(wa, []int64{C, 4 * H}, 1, 2*H, 4*H)
	var ma *mlx.Array
	if mask != nil {
		full := append(intsOf(lead), int(N), int(N), 1)
		ma = s.Reshape(s.BroadcastTo(s.AsType(t.arr(mask), acc), full...), int(B), int(N), int(N), 1)
	}
	// The block axis of x (and the mask): rows for outgoing, columns for
	// incoming; a and b are both built block by block along it, channels
	// first with the two pair axes kept in x's order: the block's gated
	// projection [B, ·, ·, h] moved to [B, h, ·, ·]. For B = 1 that move is
	// a 2-D transpose, which MLX copies with its tiled kernel (a general
	// permutation such as [B, h, K, R] is a strided copy, 5× slower on an
	// H200), and the channel GEMMs read both operands in that layout with
	// a transpose flag, not a copy:
	//
	//	outgoing  a_R [B, h, R, K], b [B, h, N, K]:  out_R = a_R · bᵀ
	//	incoming  a_R [B, h, K, R], b [B, h, K, N]:  out_R = a_Rᵀ · b
	axis := 1
	if dir == graph.TriangleIncoming {
		axis = 2
	}
	// One block's gated projection, channels first in cdt: x·W in x's type
	// (as the unblocked lowering), the gate in the accumulation type. The
	// halves are cast after slicing, so the casts fuse with the gate
	// instead of widening all of x·W first.
	gated := func(lo, hi int64, wp, after *mlx.Array) *mlx.Array {
		xb, mb := xa, ma
		if hi-lo != N {
			xb = t.sliceAxis(xa, shapeOf(xa), axis, lo, hi)
			if mb != nil {
				mb = t.sliceAxis(ma, shapeOf(ma), axis, lo, hi)
			}
		}
		xb = t.after(xb, after)
		y := t.matmul(xb, wp, dt) // [B, ·, ·, 2h]
		ys := shapeOf(y)
		p := s.AsType(t.sliceAxis(y, ys, 3, 0, H), acc)
		g := t.sigmoid(s.AsType(t.sliceAxis(y, ys, 3, H, 2*H), acc))
		if mb != nil {
			g = s.Mul(mb, g)
		}
		gs := shapeOf(g)
		return t.transposed2D(s.Transpose(s.AsType(s.Mul(g, p), cdt), 0, 3, 1, 2), gs[1]*gs[2])
	}
	blocks := pairRowBlocks(N, n.AttrInt("row_chunk", 0))
	bT := make([]*mlx.Array, len(blocks))
	for k, blk := range blocks {
		var after *mlx.Array
		if k > 0 {
			after = bT[k-1]
		}
		bT[k] = gated(blk[0], blk[1], wB, after)
	}
	b := bT[0]
	if len(bT) > 1 {
		b = s.Concatenate(axis+1, bT...) // [B, h, N, K] or [B, h, K, N]
	}
	if dir == graph.TriangleOutgoing {
		b = s.Transpose(b, 0, 1, 3, 2)
	}
	rows := make([]*mlx.Array, 0, len(blocks))
	// Each block of a after all of b, then after the previous row block:
	// MLX evaluates independent branches in no set order, and run ahead
	// they would all be alive at once (the real PairFormerBlock under a
	// 70 % budget, CPU: 63.6 → 54.6 MiB; TestPlannerBoundsMLXPeak).
	var prev *mlx.Array
	if len(blocks) > 1 {
		prev = b
	}
	for _, blk := range blocks {
		aT := gated(blk[0], blk[1], wA, prev)
		if dir == graph.TriangleIncoming {
			aT = s.Transpose(aT, 0, 1, 3, 2)
		}
		// [B, h, R, N] → [B, R, N, h], again a 2-D transpose for B = 1.
		row := t.transposed2D(s.Transpose(s.MatMul(aT, b), 0, 2, 3, 1), H)
		rows = append(rows, row)
		if prev != nil {
			prev = row
		}
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

// pairGEMMDtype is the type the triangle multiplication's channel GEMM
// reads a and b in. On the GPU with bf16 compute it is bf16: the GEMM runs
// on tensor cores with f32 accumulation, and a and b are rounded to bf16
// first, as PyTorch's bf16 OpenFold3 does (its projections are bf16
// Linear outputs). fp16 stays in the accumulation type — OpenFold3 itself
// lifts this product to f32 under fp16, where it can overflow — and so does
// every CPU run, where a bf16 GEMM is no faster. halfPairGEMM lets the CPU
// tests exercise the GPU's choice.
func (t *tracer) pairGEMMDtype(x *val) mlx.Dtype {
	if t.arr(x).Dtype() == mlx.BFloat16 && halfPairGEMM(t.p.opts.Device) {
		return mlx.BFloat16
	}
	return t.accDType(x.dt)
}

var halfPairGEMM = func(device string) bool { return device == "gpu" }
