package codegen

import (
	"fmt"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/mlx"
)

// Lowerings of the row-chunked pair ops (of3c.TriangleMultiplication and
// of3c.OuterProductMean), following the reference kernels in
// runtime/ref/of3c_chunk.go: products accumulate in f32 (f64 for f64), the
// gates are computed in f32, and the output is rounded to T once. Both
// contractions are batched GEMMs with the channel (or the flattened c·e pair)
// as the batch, which is what MLX's CPU and GPU GEMMs are fast at.

func init() {
	register(lowerTriangleMultiplication, graph.FusedDomain+".TriangleMultiplication")
	register(lowerOuterProductMean, graph.FusedDomain+".OuterProductMean")
}

// perm returns the identity permutation of rank r with the last k axes
// replaced by tail (indices relative to the first of those axes).
func permTail(r int, tail ...int) []int {
	p := make([]int, r)
	lead := r - len(tail)
	for i := 0; i < lead; i++ {
		p[i] = i
	}
	for i, t := range tail {
		p[lead+i] = lead + t
	}
	return p
}

func lowerTriangleMultiplication(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	s := t.s
	x, mask, w := in[0], in[1], in[2]
	dir := n.AttrString("direction", "outgoing")
	if dir != "outgoing" && dir != "incoming" {
		return nil, fmt.Errorf("unknown direction %q", dir)
	}
	r := x.rank()
	if r < 3 || x.shape[r-3] != x.shape[r-2] || w == nil || w.rank() != 2 || w.shape[0] != x.shape[r-1] || w.shape[1]%4 != 0 {
		return nil, fmt.Errorf("shapes x %v, W %v: want [*, N, N, c] and [c, 4h]", x.shape, w.shape)
	}
	h := w.shape[1] / 4
	path := t.choose(n, t.operands(in))
	if path == TriMulBlocked {
		// Under row_chunk the memory contract of docs/ops.md needs the
		// projections and gates computed per block too, not only the
		// final GEMM (lower_chunk.go measures both).
		return lowerTriangleMultiplicationBlocked(t, n, in)
	}
	fused := path == TriMulCPUFused
	acc := t.accDType(x.dt)
	xw := s.AsType(t.matmul(t.arr(x), t.arr(w), x.dt), acc) // [*, N, N, 4h]
	xs := append(append([]int64{}, x.shape[:r-1]...), 4*h)
	var m *mlx.Array
	if mask != nil {
		m = s.AsType(t.arr(mask), acc)
	}
	gated := func(off int64) *mlx.Array {
		p := t.sliceAxis(xw, xs, r-1, off, off+h)
		gl := t.sliceAxis(xw, xs, r-1, off+h, off+2*h)
		if fused {
			a := s.FastSigmoidMul(p, gl)
			if m != nil {
				a = s.Mul(a, m)
			}
			return a
		}
		g := t.sigmoid(gl)
		if m != nil {
			g = s.Mul(m, g)
		}
		return s.Mul(g, p)
	}
	a, b := gated(0), gated(2*h) // [*, N, N, h]
	// Channels become the GEMM batch: [*, h, N, N].
	cl := permTail(r, 2, 0, 1)
	var lhs, rhs *mlx.Array
	if dir == "outgoing" {
		// p[i,j] = Σ_k a[i,k] b[j,k]: a[c,i,k] @ b[c,k,j]
		lhs = s.Transpose(a, cl...)
		rhs = s.Transpose(b, permTail(r, 2, 1, 0)...)
	} else {
		// p[i,j] = Σ_k a[k,i] b[k,j]: a[c,i,k] @ b[c,k,j]
		lhs = s.Transpose(a, permTail(r, 2, 1, 0)...)
		rhs = s.Transpose(b, cl...)
	}
	var p *mlx.Array
	if fused {
		// The channel-first views are gathered into contiguous [*, h, N, N]
		// by internal/mlx's tiled multi-threaded copy (MLX's is one scalar
		// thread), then the h products of N×N·N×N run as single-thread
		// GEMMs spread over the pool (MLX calls OpenBLAS once per channel,
		// each call threaded, with a zeroing pass over its output).
		p = s.FastMatMul(s.FastContiguous(lhs), s.FastContiguous(rhs))
	} else {
		cdt := t.pairGEMMDtype(x) // bf16 on the GPU's tensor cores for bf16
		p = s.MatMul(s.AsType(lhs, cdt), s.AsType(rhs, cdt))
	}
	p = s.Transpose(p, permTail(r, 1, 2, 0)...) // back to [*, N, N, h]
	return t.one(s.AsType(p, t.ddt(x.dt)), x.dt)
}

func lowerOuterProductMean(t *tracer, n *graph.Node, in []*val) ([]*val, error) {
	s := t.s
	a, b, w := in[0], in[1], in[2]
	var bias *val
	if len(in) > 3 {
		bias = in[3]
	}
	r := a.rank()
	if r < 3 || b.rank() != r || w.rank() != 2 {
		return nil, fmt.Errorf("shapes a %v, b %v, W_out %v: want [*, S, I, c], [*, S, J, e], [c·e, c_out]", a.shape, b.shape, w.shape)
	}
	S, I, C := a.shape[r-3], a.shape[r-2], a.shape[r-1]
	J, E := b.shape[r-2], b.shape[r-1]
	if w.shape[0] != C*E || b.shape[r-3] != S {
		return nil, fmt.Errorf("shapes a %v, b %v, W_out %v do not fit", a.shape, b.shape, w.shape)
	}
	CO := w.shape[1]
	acc := t.accDType(a.dt)
	lead := intsOf(a.shape[:r-3])
	// [*, S, I, c] → [*, I·c, S]; [*, S, J, e] → [*, S, J·e]
	aa := s.AsType(t.arr(a), acc)
	aa = s.Reshape(s.Transpose(aa, permTail(r, 1, 2, 0)...), append(append([]int{}, lead...), int(I*C), int(S))...)
	bb := s.Reshape(s.AsType(t.arr(b), acc), append(append([]int{}, lead...), int(S), int(J*E))...)
	wa := s.AsType(t.arr(w), acc)
	var ba *mlx.Array
	if bias != nil {
		ba = s.AsType(t.arr(bias), acc)
	}
	block := func(lo, hi int64) *mlx.Array {
		ab := aa
		if lo != 0 || hi != I {
			ab = t.sliceAxis(aa, shapeOf(aa), len(lead), lo*C, hi*C)
		}
		rows := hi - lo
		o := s.MatMul(ab, bb) // [*, rows·c, J·e]
		o = s.Reshape(o, append(append([]int{}, lead...), int(rows), int(C), int(J), int(E))...)
		o = s.Transpose(o, permTail(len(lead)+4, 0, 2, 1, 3)...) // [*, rows, J, c, e]
		o = s.Reshape(o, append(append([]int{}, lead...), int(rows), int(J), int(C*E))...)
		y := s.MatMul(o, wa)
		if ba != nil {
			y = s.Add(y, ba)
		}
		return y
	}
	rc := n.AttrInt("row_chunk", 0)
	var y *mlx.Array
	if t.choose(n, t.operands(in)) == OPMWhole {
		y = block(0, I)
	} else {
		var parts []*mlx.Array
		for lo := int64(0); lo < I; lo += rc {
			parts = append(parts, block(lo, min(lo+rc, I)))
		}
		y = s.Concatenate(len(lead), parts...)
	}
	_ = CO
	return t.one(s.AsType(y, t.ddt(a.dt)), a.dt)
}
