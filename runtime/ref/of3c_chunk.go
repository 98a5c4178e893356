package ref

import (
	"fmt"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/shapes"
)

// Kernels for the row-chunked pair ops of docs/ops.md: of3c.OuterProductMean
// and of3c.TriangleMultiplication. Both evaluate output rows i in blocks of
// row_chunk, the loop the MLX lowering runs, so tests of chunk sizes that do
// not divide N exercise real block boundaries. Values are held in float64
// and rounded to the accumulation type A at the stage boundaries docs/ops.md
// names.

func init() {
	register(kernelOuterProductMean, graph.FusedDomain+".OuterProductMean")
	register(kernelTriangleMultiplication, graph.FusedDomain+".TriangleMultiplication")
}

// rowBlocks returns the [start, length) blocks of n rows for a row_chunk
// attribute (0, or ≥ n: one block).
func rowBlocks(n *graph.Node, rows int64) ([][2]int64, error) {
	chunk, err := chunkAttr(n, "row_chunk")
	if err != nil {
		return nil, err
	}
	if chunk == 0 || chunk > rows {
		chunk = max(rows, 1)
	}
	var out [][2]int64
	for s := int64(0); s < rows; s += chunk {
		out = append(out, [2]int64{s, min(chunk, rows-s)})
	}
	return out, nil
}

func sameFloatTypes(in []*array, dt graph.DType) error {
	if dt != graph.Float32 && dt != graph.Float16 && dt != graph.BFloat16 && dt != graph.Float64 {
		return fmt.Errorf("element type %s unsupported", dt)
	}
	for k, a := range in {
		if a != nil && a.dt != dt {
			return fmt.Errorf("input %d is %s, want %s", k, a.dt, dt)
		}
	}
	return nil
}

// kernelOuterProductMean: out[*, i, j, :] = flatten_{c,e}(Σ_s a[*, s, i, c]·b[*, s, j, e]) @ W_out (+ bias).
func kernelOuterProductMean(n *graph.Node, in []*array) ([]*array, error) {
	a, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	b, err := need(n, in, 1)
	if err != nil {
		return nil, err
	}
	w, err := need(n, in, 2)
	if err != nil {
		return nil, err
	}
	bias := opt(in, 3)
	if err := sameFloatTypes(in, a.dt); err != nil {
		return nil, err
	}
	r := a.rank()
	if r < 3 || b.rank() != r || w.rank() != 2 {
		return nil, fmt.Errorf("shapes a %v, b %v, W_out %v: want [*, S, I, c], [*, S, J, e], [c·e, c_out]", a.shape, b.shape, w.shape)
	}
	for i := 0; i < r-2; i++ {
		if a.shape[i] != b.shape[i] {
			return nil, fmt.Errorf("a %v and b %v differ in dim %d", a.shape, b.shape, i)
		}
	}
	S, I, C := a.shape[r-3], a.shape[r-2], a.shape[r-1]
	J, E := b.shape[r-2], b.shape[r-1]
	if w.shape[0] != C*E {
		return nil, fmt.Errorf("W_out %v: want %d input channels", w.shape, C*E)
	}
	CO := w.shape[1]
	if bias != nil && (bias.rank() != 1 || bias.shape[0] != CO) {
		return nil, fmt.Errorf("bias %v: want [%d]", bias.shape, CO)
	}
	batch := shapes.Prod(a.shape[:r-3])
	blocks, err := rowBlocks(n, I)
	if err != nil {
		return nil, err
	}
	acc := accType(a.dt)
	outShape := append(append([]int64{}, a.shape[:r-3]...), I, J, CO)
	out, err := allocArray(a.dt, outShape)
	if err != nil {
		return nil, err
	}
	wa := toAcc(w)
	for bt := int64(0); bt < batch; bt++ {
		af := a.f[bt*S*I*C : (bt+1)*S*I*C]
		bf := b.f[bt*S*J*E : (bt+1)*S*J*E]
		for _, blk := range blocks {
			start, rows := blk[0], blk[1]
			// The block's outer products [rows, J, c·e], the op's only large
			// temporary.
			o := newArray(graph.Float64, []int64{rows * J, C * E})
			for i := int64(0); i < rows; i++ {
				for j := int64(0); j < J; j++ {
					dst := o.f[(i*J+j)*C*E : (i*J+j+1)*C*E]
					for s := int64(0); s < S; s++ {
						arow := af[(s*I+start+i)*C : (s*I+start+i+1)*C]
						brow := bf[(s*J+j)*E : (s*J+j+1)*E]
						for c, av := range arow {
							d := dst[int64(c)*E : (int64(c)+1)*E]
							for e, bv := range brow {
								d[e] += av * bv
							}
						}
					}
				}
			}
			roundAcc(o, acc)
			y, err := matmul(o, wa) // [rows·J, c_out]
			if err != nil {
				return nil, err
			}
			if bias != nil {
				for k := range y.f {
					y.f[k] += bias.f[int64(k)%CO]
				}
			}
			copy(out.f[((bt*I)+start)*J*CO:], y.f)
		}
	}
	return []*array{out}, nil
}

// kernelTriangleMultiplication: a, b = mask·σ(x Wag)·(x Wap), mask·σ(x Wbg)·(x Wbp);
// outgoing p_ij = Σ_k a_ik ⊙ b_jk, incoming p_ij = Σ_k a_ki ⊙ b_kj.
func kernelTriangleMultiplication(n *graph.Node, in []*array) ([]*array, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	w, err := need(n, in, 2)
	if err != nil {
		return nil, err
	}
	mask := opt(in, 1)
	if err := sameFloatTypes(in, x.dt); err != nil {
		return nil, err
	}
	dir := n.AttrString("direction", graph.TriangleOutgoing)
	if dir != graph.TriangleOutgoing && dir != graph.TriangleIncoming {
		return nil, fmt.Errorf("unknown direction %q", dir)
	}
	r := x.rank()
	if r < 3 || x.shape[r-3] != x.shape[r-2] {
		return nil, fmt.Errorf("x %v: want [*, N, N, c]", x.shape)
	}
	N, C := x.shape[r-2], x.shape[r-1]
	if w.rank() != 2 || w.shape[0] != C || w.shape[1]%4 != 0 {
		return nil, fmt.Errorf("W %v: want [%d, 4h]", w.shape, C)
	}
	H := w.shape[1] / 4
	// Mask strides over x's leading dims (a dim of 1 broadcasts).
	var mstr []int64
	if mask != nil {
		if mask.rank() != r || mask.shape[r-1] != 1 {
			return nil, fmt.Errorf("mask %v: want [*, N, N, 1]", mask.shape)
		}
		mstr = make([]int64, r-1)
		st := int64(1)
		for d := r - 2; d >= 0; d-- {
			switch mask.shape[d] {
			case x.shape[d]:
				mstr[d] = st
			case 1:
			default:
				return nil, fmt.Errorf("mask %v does not broadcast to x %v", mask.shape, x.shape)
			}
			st *= mask.shape[d]
		}
	}
	batch := shapes.Prod(x.shape[:r-3])
	blocks, err := rowBlocks(n, N)
	if err != nil {
		return nil, err
	}
	acc := accType(x.dt)
	out, err := allocArray(x.dt, append(append([]int64{}, x.shape[:r-1]...), H))
	if err != nil {
		return nil, err
	}
	wa := toAcc(w)
	// gated computes mask·σ(x Wg)·(x Wp) for pair rows [start, start+rows)
	// of batch bt, the projection pair at column offset off of W.
	gated := func(bt, start, rows int64, off int64) (*array, error) {
		xs := &array{dt: graph.Float64, shape: []int64{rows * N, C},
			f: x.f[(bt*N+start)*N*C : (bt*N+start+rows)*N*C]}
		xw, err := matmul(xs, wa) // [rows·N, 4h]; only the half at off is used
		if err != nil {
			return nil, err
		}
		roundAcc(xw, acc)
		g := newArray(graph.Float64, []int64{rows, N, H})
		for p := int64(0); p < rows*N; p++ {
			m := 1.0
			if mask != nil {
				// Element (bt, start + p/N, p%N) of x's leading dims.
				idx := []int64{start + p/N, p % N}
				lin := int64(0)
				rem := bt
				for d := r - 4; d >= 0; d-- {
					lin += (rem % x.shape[d]) * mstr[d]
					rem /= x.shape[d]
				}
				lin += idx[0]*mstr[r-3] + idx[1]*mstr[r-2]
				m = mask.f[lin]
			}
			row := xw.f[p*4*H : (p+1)*4*H]
			for c := int64(0); c < H; c++ {
				gate := m * sigmoid(row[off+H+c])
				if acc == graph.Float32 {
					gate = float64(float32(gate))
				}
				g.f[p*H+c] = gate * row[off+c]
			}
		}
		return roundAcc(g, acc), nil
	}
	for bt := int64(0); bt < batch; bt++ {
		// b whole (computed in the same row blocks), then a per block of
		// output rows.
		bAll := newArray(graph.Float64, []int64{N, N, H})
		var aAll *array // incoming: a's columns are the output rows
		if dir == graph.TriangleIncoming {
			aAll = newArray(graph.Float64, []int64{N, N, H})
		}
		for _, blk := range blocks {
			g, err := gated(bt, blk[0], blk[1], 2*H)
			if err != nil {
				return nil, err
			}
			copy(bAll.f[blk[0]*N*H:], g.f)
			if aAll != nil {
				if g, err = gated(bt, blk[0], blk[1], 0); err != nil {
					return nil, err
				}
				copy(aAll.f[blk[0]*N*H:], g.f)
			}
		}
		base := bt * N * N * H
		for _, blk := range blocks {
			start, rows := blk[0], blk[1]
			var aBlk *array
			if dir == graph.TriangleOutgoing {
				if aBlk, err = gated(bt, start, rows, 0); err != nil {
					return nil, err
				}
			}
			sum := make([]float64, H)
			for i := int64(0); i < rows; i++ {
				for j := int64(0); j < N; j++ {
					clear(sum)
					for k := int64(0); k < N; k++ {
						var av, bv []float64
						if dir == graph.TriangleOutgoing {
							av = aBlk.f[(i*N+k)*H : (i*N+k+1)*H] // a[i,k]
							bv = bAll.f[(j*N+k)*H : (j*N+k+1)*H] // b[j,k]
						} else {
							av = aAll.f[(k*N+start+i)*H : (k*N+start+i+1)*H] // a[k,i]
							bv = bAll.f[(k*N+j)*H : (k*N+j+1)*H]             // b[k,j]
						}
						for c := range sum {
							sum[c] += av[c] * bv[c]
						}
					}
					copy(out.f[base+((start+i)*N+j)*H:], sum)
				}
			}
		}
	}
	return []*array{out}, nil
}
