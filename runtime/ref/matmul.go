package ref

import (
	"fmt"
	"sort"
	"strings"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/shapes"
)

func init() {
	register(kernelMatMul, "MatMul")
	register(kernelGemm, "Gemm")
	register(kernelEinsum, "Einsum")
}

// matmul multiplies with numpy semantics: 1-D operands are promoted (and the
// added dim removed afterwards) and the batch dims broadcast. Accumulation is
// in float64 (int64 for integer operands).
func matmul(a, b *array) (*array, error) {
	if a.dt != b.dt {
		return nil, fmt.Errorf("MatMul operands differ in dtype: %s vs %s", a.dt, b.dt)
	}
	if a.dt == graph.Bool {
		return nil, fmt.Errorf("MatMul does not take bool")
	}
	if a.rank() == 0 || b.rank() == 0 {
		return nil, fmt.Errorf("MatMul does not take scalars (shapes %v, %v)", a.shape, b.shape)
	}
	as, bs := a.shape, b.shape
	if a.rank() == 1 {
		as = []int64{1, as[0]}
	}
	if b.rank() == 1 {
		bs = []int64{bs[0], 1}
	}
	m, ka := as[len(as)-2], as[len(as)-1]
	kb, nn := bs[len(bs)-2], bs[len(bs)-1]
	if ka != kb {
		return nil, fmt.Errorf("MatMul inner dims differ: %v × %v", a.shape, b.shape)
	}
	batch, err := broadcastShapes(as[:len(as)-2], bs[:len(bs)-2])
	if err != nil {
		return nil, fmt.Errorf("MatMul batch dims: %w", err)
	}
	outShape := append(append([]int64{}, batch...), m, nn)
	if err := checkShape(outShape); err != nil {
		return nil, err
	}
	r := newArray(a.dt, outShape)
	M, K, N := int(m), int(ka), int(nn)
	// Walk batches with the broadcast index helper over the batch dims: each
	// visit gives the batch offsets (in matrices) of a and b.
	aBatch := as[:len(as)-2]
	bBatch := bs[:len(bs)-2]
	if isFloat(a.dt) {
		acc := make([]float64, N)
		broadcastIndex(batch, [][]int64{aBatch, bBatch}, func(o int, idx []int) {
			am := a.f[idx[0]*M*K:]
			bm := b.f[idx[1]*K*N:]
			rm := r.f[o*M*N:]
			for i := 0; i < M; i++ {
				clear(acc)
				// i-k-j order: the inner loop streams rows of b and acc.
				for k := 0; k < K; k++ {
					x := am[i*K+k]
					row := bm[k*N : k*N+N]
					for j, y := range row {
						acc[j] += x * y
					}
				}
				copy(rm[i*N:i*N+N], acc)
			}
		})
	} else {
		broadcastIndex(batch, [][]int64{aBatch, bBatch}, func(o int, idx []int) {
			am := a.i[idx[0]*M*K:]
			bm := b.i[idx[1]*K*N:]
			rm := r.i[o*M*N:]
			for i := 0; i < M; i++ {
				for k := 0; k < K; k++ {
					x := am[i*K+k]
					for j := 0; j < N; j++ {
						rm[i*N+j] += x * bm[k*N+j]
					}
				}
			}
		})
	}
	// Drop the dims added for 1-D operands.
	final := append([]int64{}, batch...)
	if a.rank() != 1 {
		final = append(final, m)
	}
	if b.rank() != 1 {
		final = append(final, nn)
	}
	r.shape = final
	return r, nil
}

func kernelMatMul(n *graph.Node, in []*array) ([]*array, error) {
	a, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	b, err := need(n, in, 1)
	if err != nil {
		return nil, err
	}
	r, err := matmul(a, b)
	if err != nil {
		return nil, err
	}
	return []*array{r}, nil
}

// transpose2 returns the transpose of a 2-D array.
func transpose2(a *array) *array {
	m, n := int(a.shape[0]), int(a.shape[1])
	r := newArray(a.dt, []int64{int64(n), int64(m)})
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			copyElem(r, j*m+i, a, i*n+j)
		}
	}
	return r
}

// kernelGemm: alpha·A'·B' + beta·C with C broadcast to [M, N].
func kernelGemm(n *graph.Node, in []*array) ([]*array, error) {
	a, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	b, err := need(n, in, 1)
	if err != nil {
		return nil, err
	}
	if a.rank() != 2 || b.rank() != 2 {
		return nil, fmt.Errorf("Gemm takes 2-D A and B, got %v and %v", a.shape, b.shape)
	}
	if n.AttrInt("transA", 0) != 0 {
		a = transpose2(a)
	}
	if n.AttrInt("transB", 0) != 0 {
		b = transpose2(b)
	}
	r, err := matmul(a, b)
	if err != nil {
		return nil, err
	}
	alpha, beta := attrF(n, "alpha", 1), attrF(n, "beta", 1)
	var c *array
	if c = opt(in, 2); c != nil {
		if c.dt != r.dt {
			return nil, fmt.Errorf("Gemm C is %s, A is %s", c.dt, r.dt)
		}
		if c, err = broadcastTo(c, r.shape); err != nil {
			return nil, fmt.Errorf("Gemm C: %w", err)
		}
	}
	for k := 0; k < r.size(); k++ {
		v := alpha * r.float(k)
		if c != nil {
			v += beta * c.float(k)
		}
		r.set(k, v)
	}
	return []*array{r}, nil
}

// einsumTerm is one operand's subscripts: labels, with ellipsis expanded to
// the reserved labels '0'..'9' (right-aligned, shared across operands).
type einsumTerm []byte

// parseEinsum splits an equation into operand terms and the output term.
// ranks are the operands' ranks (needed to expand "...").
func parseEinsum(eq string, ranks []int) ([]einsumTerm, einsumTerm, error) {
	eq = strings.ReplaceAll(eq, " ", "")
	lhs, rhs, explicit := strings.Cut(eq, "->")
	parts := strings.Split(lhs, ",")
	if len(parts) != len(ranks) {
		return nil, nil, fmt.Errorf("einsum %q has %d operand terms, but %d inputs", eq, len(parts), len(ranks))
	}
	ellRank := 0
	terms := make([]einsumTerm, len(parts))
	for k, p := range parts {
		t, er, err := expandTerm(p, ranks[k], true)
		if err != nil {
			return nil, nil, fmt.Errorf("einsum %q operand %d: %w", eq, k, err)
		}
		terms[k] = t
		ellRank = max(ellRank, er)
	}
	var out einsumTerm
	if explicit {
		t, _, err := expandTerm(rhs, ellRank, false)
		if err != nil {
			return nil, nil, fmt.Errorf("einsum %q output: %w", eq, err)
		}
		seen := map[byte]bool{}
		for _, c := range t {
			if seen[c] {
				return nil, nil, fmt.Errorf("einsum %q: output label %c repeated", eq, c)
			}
			seen[c] = true
		}
		out = t
	} else {
		// Implicit output: broadcast dims, then labels used exactly once, sorted.
		count := map[byte]int{}
		for _, t := range terms {
			for _, c := range t {
				count[c]++
			}
		}
		for d := 0; d < ellRank; d++ {
			out = append(out, ellLabel(ellRank, d))
		}
		var once []byte
		for c, k := range count {
			if k == 1 && !isEllLabel(c) {
				once = append(once, c)
			}
		}
		sort.Slice(once, func(i, j int) bool { return once[i] < once[j] })
		out = append(out, once...)
	}
	return terms, out, nil
}

func isEllLabel(c byte) bool { return c >= '0' && c <= '9' }

// ellLabel names broadcast dim d of ellRank such dims; labels are aligned
// from the right so that operands with fewer ellipsis dims share the last ones.
func ellLabel(ellRank, d int) byte { return byte('0' + 10 - ellRank + d) }

// expandTerm replaces "..." in one term. For an operand term, rank is the
// operand's rank and the number of ellipsis dims is derived from it; for the
// output term, rank is the ellipsis rank itself.
func expandTerm(s string, rank int, operand bool) (einsumTerm, int, error) {
	pre, post, hasEll := strings.Cut(s, "...")
	if strings.Contains(post, "...") {
		return nil, 0, fmt.Errorf("more than one ellipsis")
	}
	for _, c := range pre + post {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return nil, 0, fmt.Errorf("bad subscript %q", c)
		}
	}
	ell := 0
	if hasEll {
		ell = rank
		if operand {
			ell = rank - len(pre) - len(post)
		}
		if ell < 0 || ell > 10 {
			return nil, 0, fmt.Errorf("term %q does not fit rank %d", s, rank)
		}
	} else if operand && len(pre) != rank {
		return nil, 0, fmt.Errorf("term %q has %d labels for rank %d", s, len(pre), rank)
	}
	t := einsumTerm(pre)
	for d := 0; d < ell; d++ {
		t = append(t, ellLabel(ell, d))
	}
	t = append(t, post...)
	return t, ell, nil
}

// kernelEinsum evaluates the equation directly: one odometer runs over every
// label (output labels outermost), and each operand is read through per-label
// strides (a repeated label in one operand adds its strides, which walks the
// diagonal; a broadcast size-1 ellipsis dim gets stride 0).
func kernelEinsum(n *graph.Node, in []*array) ([]*array, error) {
	if len(in) == 0 {
		return nil, fmt.Errorf("Einsum needs inputs")
	}
	ranks := make([]int, len(in))
	for k := range in {
		if in[k] == nil {
			return nil, fmt.Errorf("Einsum input %d missing", k)
		}
		if in[k].dt != in[0].dt {
			return nil, fmt.Errorf("Einsum inputs differ in dtype: %s vs %s", in[0].dt, in[k].dt)
		}
		ranks[k] = in[k].rank()
	}
	if in[0].dt == graph.Bool {
		return nil, fmt.Errorf("Einsum does not take bool")
	}
	eq := n.AttrString("equation", "")
	terms, out, err := parseEinsum(eq, ranks)
	if err != nil {
		return nil, err
	}
	size := map[byte]int64{}
	for k, t := range terms {
		for d, c := range t {
			dim := in[k].shape[d]
			prev, seen := size[c]
			switch {
			case !seen || prev == 1 && isEllLabel(c):
				size[c] = dim
			case dim == prev || dim == 1 && isEllLabel(c):
			default:
				return nil, fmt.Errorf("einsum %q: label %c is %d in one place and %d in another", eq, c, prev, dim)
			}
		}
	}
	labels := append(einsumTerm{}, out...)
	inOut := map[byte]bool{}
	for _, c := range out {
		if _, ok := size[c]; !ok {
			return nil, fmt.Errorf("einsum %q: output label %c is not in any operand", eq, c)
		}
		inOut[c] = true
	}
	for _, t := range terms {
		for _, c := range t {
			if !inOut[c] {
				inOut[c] = true
				labels = append(labels, c)
			}
		}
	}
	dims := make([]int64, len(labels))
	for k, c := range labels {
		dims[k] = size[c]
	}
	outShape := dims[:len(out)]
	if err := checkShape(outShape); err != nil {
		return nil, err
	}
	if err := checkShape(dims); err != nil {
		return nil, fmt.Errorf("einsum %q: iteration space %v too large", eq, dims)
	}
	// st[k][l] is operand k's stride for label l.
	st := make([][]int, len(in))
	for k, t := range terms {
		st[k] = make([]int, len(labels))
		ost := strides(in[k].shape)
		for d, c := range t {
			if in[k].shape[d] == 1 && size[c] != 1 {
				continue // broadcast
			}
			for l, lc := range labels {
				if lc == c {
					st[k][l] += int(ost[d])
				}
			}
		}
	}
	r := newArray(in[0].dt, outShape)
	total := int(shapes.Prod(dims))
	inner := int(shapes.Prod(dims[len(out):]))
	// Integer operands accumulate in int64 (exact, wrapping like numpy).
	isInt := !isFloat(in[0].dt)
	counter := make([]int64, len(dims))
	off := make([]int, len(in))
	acc, iacc := 0.0, int64(0)
	for it := 0; it < total; it++ {
		if isInt {
			p := int64(1)
			for k := range in {
				p *= in[k].i[off[k]]
			}
			iacc += p
		} else {
			p := 1.0
			for k := range in {
				p *= in[k].f[off[k]]
			}
			acc += p
		}
		if (it+1)%inner == 0 {
			if isInt {
				r.i[it/inner] = iacc
			} else {
				r.f[it/inner] = acc
			}
			acc, iacc = 0, 0
		}
		for d := len(dims) - 1; d >= 0; d-- {
			counter[d]++
			for k := range off {
				off[k] += st[k][d]
			}
			if counter[d] < dims[d] {
				break
			}
			for k := range off {
				off[k] -= st[k][d] * int(dims[d])
			}
			counter[d] = 0
		}
	}
	return []*array{r}, nil
}
