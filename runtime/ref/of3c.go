package ref

import (
	"fmt"
	"math"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/shapes"
)

// Kernels for of3c's fused ops, following docs/ops.md (the contract). The
// chunked forms run the same loops the MLX lowering runs, so numeric tests of
// chunking exercise real block boundaries here.

func init() {
	register(kernelAttention, graph.FusedDomain+".Attention")
	register(kernelSwiGLU, graph.FusedDomain+".SwiGLU")
}

// maskedLogit is what a −inf bias element is read as (docs/ops.md, "Masks and −inf").
const maskedLogit = -1e9

// accType is the accumulation type A of docs/ops.md: f64 for f64 inputs, f32
// otherwise.
func accType(dt graph.DType) graph.DType {
	if dt == graph.Float64 {
		return graph.Float64
	}
	return graph.Float32
}

// toAcc copies a into an f64-held array whose values are exact in A (inputs
// of type T ⊆ A already are).
func toAcc(a *array) *array {
	if a == nil {
		return nil
	}
	return &array{dt: graph.Float64, shape: append([]int64{}, a.shape...), f: append([]float64{}, a.f...)}
}

// roundAcc rounds every element to A in place (a no-op for f64).
func roundAcc(a *array, acc graph.DType) *array {
	if acc == graph.Float32 {
		for k, v := range a.f {
			a.f[k] = float64(float32(v))
		}
	}
	return a
}

func chunkAttr(n *graph.Node, name string) (int64, error) {
	a, ok := n.Attrs[name]
	if !ok {
		return 0, nil
	}
	if a.Kind != graph.AttrInt || a.Int < 0 {
		return 0, fmt.Errorf("attribute %s must be an int ≥ 0", name)
	}
	return a.Int, nil
}

// attention holds one of3c.Attention evaluation: inputs in A (as f64-held
// arrays) and the attributes.
type attention struct {
	q, k, v  *array // q and k nil in bias_only mode
	biases   []*array
	scale    float64
	acc      graph.DType
	batch    int64
	query    int64
	kv       int64
	biasOnly bool
}

func kernelAttention(n *graph.Node, in []*array) ([]*array, error) {
	mode := n.AttrString("mode", graph.AttentionModeQK)
	at := &attention{}
	switch mode {
	case graph.AttentionModeQK:
	case graph.AttentionModeBiasOnly:
		at.biasOnly = true
	default:
		return nil, fmt.Errorf("unknown mode %q", mode)
	}
	v, err := need(n, in, 2)
	if err != nil {
		return nil, err
	}
	if v.dt != graph.Float32 && v.dt != graph.Float16 && v.dt != graph.BFloat16 && v.dt != graph.Float64 {
		return nil, fmt.Errorf("element type %s unsupported", v.dt)
	}
	for k, x := range in {
		if x != nil && x.dt != v.dt {
			return nil, fmt.Errorf("input %d is %s, v is %s", k, x.dt, v.dt)
		}
	}
	if at.biasOnly {
		if opt(in, 0) != nil || opt(in, 1) != nil {
			return nil, fmt.Errorf("mode bias_only takes no q or k")
		}
		if len(in) < 4 {
			return nil, fmt.Errorf("mode bias_only needs a bias")
		}
	} else {
		q, err := need(n, in, 0)
		if err != nil {
			return nil, err
		}
		k, err := need(n, in, 1)
		if err != nil {
			return nil, err
		}
		if q.rank() < 2 || k.rank() < 2 {
			return nil, fmt.Errorf("q and k need rank ≥ 2, have shapes %v and %v", q.shape, k.shape)
		}
		if q.shape[q.rank()-1] != k.shape[k.rank()-1] {
			return nil, fmt.Errorf("q %v and k %v differ in head dim", q.shape, k.shape)
		}
		at.q, at.k = toAcc(q), toAcc(k)
		at.scale = 1 / math.Sqrt(float64(q.shape[q.rank()-1]))
		if a, ok := n.Attrs["scale"]; ok {
			if a.Kind != graph.AttrFloat {
				return nil, fmt.Errorf("attribute scale must be a float")
			}
			at.scale = float64(a.Float)
		}
	}
	if v.rank() < 2 {
		return nil, fmt.Errorf("v has shape %v, want rank ≥ 2", v.shape)
	}
	at.v = toAcc(v)
	for k := 3; k < len(in); k++ {
		b, err := need(n, in, k)
		if err != nil {
			return nil, err
		}
		if b.rank() < 1 {
			return nil, fmt.Errorf("bias %d is a scalar", k-3)
		}
		bb := toAcc(b)
		for e, x := range bb.f {
			if math.IsInf(x, -1) {
				bb.f[e] = maskedLogit
			}
		}
		at.biases = append(at.biases, bb)
	}
	at.acc = accType(v.dt)
	if at.batch, err = chunkAttr(n, "batch_chunk"); err != nil {
		return nil, err
	}
	if at.query, err = chunkAttr(n, "query_chunk"); err != nil {
		return nil, err
	}
	if at.kv, err = chunkAttr(n, "kv_chunk"); err != nil {
		return nil, err
	}
	out, err := at.run()
	if err != nil {
		return nil, err
	}
	out.dt = v.dt // rounded to T by the dispatcher's normalize
	return []*array{out}, nil
}

// inputs lists q, k, v and the biases (q, k nil in bias_only mode).
func (at *attention) inputs() []*array {
	return append([]*array{at.q, at.k, at.v}, at.biases...)
}

// with returns a copy of at with new inputs (same order as inputs()).
func (at *attention) with(ins []*array) *attention {
	c := *at
	c.q, c.k, c.v = ins[0], ins[1], ins[2]
	c.biases = ins[3:]
	return &c
}

// run applies batch_chunk, then query_chunk, then kv_chunk (docs/ops.md,
// "Attributes combine"), each as a loop over blocks.
func (at *attention) run() (*array, error) {
	switch {
	case at.batch > 0:
		return at.batchChunks()
	case at.query > 0:
		return at.queryChunks()
	case at.kv > 0:
		return at.lma()
	}
	return at.plain()
}

// logits computes L = scale·q·kᵀ + b'_0 + … in A, rounding after each step
// so masked logits saturate at −1e9 as in an unfused f32 graph.
func (at *attention) logits() (*array, error) {
	var l *array
	if !at.biasOnly {
		rank := at.k.rank()
		perm := make([]int, rank)
		for d := range perm {
			perm[d] = d
		}
		perm[rank-2], perm[rank-1] = rank-1, rank-2
		s, err := matmul(at.q, permute(at.k, perm))
		if err != nil {
			return nil, fmt.Errorf("q·kᵀ: %w", err)
		}
		for e := range s.f {
			s.f[e] *= at.scale
		}
		l = roundAcc(s, at.acc)
	}
	for k, b := range at.biases {
		if l == nil {
			l = b.clone()
			continue
		}
		sum, err := applyBinary(opAdd, "Add", l, b)
		if err != nil {
			return nil, fmt.Errorf("bias %d: %w", k, err)
		}
		l = roundAcc(sum, at.acc)
	}
	if l.rank() < 2 {
		return nil, fmt.Errorf("logits have shape %v, want rank ≥ 2", l.shape)
	}
	if !at.biasOnly && l.shape[l.rank()-1] != at.k.shape[at.k.rank()-2] {
		return nil, fmt.Errorf("a bias widens the key axis to %d (k has %d keys)", l.shape[l.rank()-1], at.k.shape[at.k.rank()-2])
	}
	if vk := at.v.shape[at.v.rank()-2]; vk != l.shape[l.rank()-1] {
		return nil, fmt.Errorf("v has %d keys, the logits %d", vk, l.shape[l.rank()-1])
	}
	return l, nil
}

// plain is the unchunked math: softmax over the key axis at L's own shape,
// then P·v with MatMul broadcasting.
func (at *attention) plain() (*array, error) {
	l, err := at.logits()
	if err != nil {
		return nil, err
	}
	kk := int(l.shape[l.rank()-1])
	for r := 0; r+kk <= len(l.f) && kk > 0; r += kk {
		softmaxRow(l.f[r : r+kk])
	}
	p := roundAcc(l, at.acc)
	out, err := matmul(p, at.v)
	if err != nil {
		return nil, fmt.Errorf("P·v: %w", err)
	}
	return out, nil
}

// keyCount is K: k's axis -2, or in bias_only mode the broadcast last dim of
// the biases.
func (at *attention) keyCount() int64 {
	if !at.biasOnly {
		return at.k.shape[at.k.rank()-2]
	}
	var kk int64 = 1
	for _, b := range at.biases {
		if d := b.shape[b.rank()-1]; d != 1 {
			kk = d
		}
	}
	return kk
}

// lma is low-memory attention: key/value blocks with an online softmax
// (running max m, normaliser l, weighted sum acc; docs/ops.md "kv_chunk").
func (at *attention) lma() (*array, error) {
	kTotal := at.keyCount()
	if vk := at.v.shape[at.v.rank()-2]; vk != kTotal {
		return nil, fmt.Errorf("v has %d keys, the logits %d", vk, kTotal)
	}
	if kTotal == 0 {
		return at.plain()
	}
	var m, l, acc *array // m, l: L's shape without the key axis; acc: out's shape
	for start := int64(0); start < kTotal; start += at.kv {
		length := min(at.kv, kTotal-start)
		ins := at.inputs()
		blk := make([]*array, len(ins))
		for i, x := range ins {
			switch {
			case x == nil:
			case i == 0: // q is whole
				blk[i] = x
			case i <= 2: // k, v: keys on axis -2
				blk[i] = sliceAxis(x, x.rank()-2, start, length)
			case x.shape[x.rank()-1] > 1: // biases: keys on axis -1
				blk[i] = sliceAxis(x, x.rank()-1, start, length)
			default:
				blk[i] = x
			}
		}
		sub := at.with(blk)
		lj, err := sub.logits()
		if err != nil {
			return nil, err
		}
		kb := int(lj.shape[lj.rank()-1])
		rows := len(lj.f) / kb
		if m == nil {
			rowShape := lj.shape[:lj.rank()-1]
			m, l = newArray(graph.Float64, rowShape), newArray(graph.Float64, rowShape)
			for r := range m.f {
				m.f[r] = math.Inf(-1)
			}
		}
		alpha := newArray(graph.Float64, append(append([]int64{}, m.shape...), 1))
		for r := 0; r < rows; r++ {
			row := lj.f[r*kb : (r+1)*kb]
			mNew := m.f[r]
			for _, x := range row {
				if x > mNew || math.IsNaN(x) {
					mNew = x
				}
			}
			alpha.f[r] = math.Exp(m.f[r] - mNew)
			var s float64
			for c, x := range row {
				row[c] = math.Exp(x - mNew)
				s += row[c]
			}
			l.f[r] = alpha.f[r]*l.f[r] + s
			m.f[r] = mNew
		}
		ev, err := matmul(lj, blk[2])
		if err != nil {
			return nil, fmt.Errorf("P·v: %w", err)
		}
		if acc == nil {
			acc = ev
			continue
		}
		scaled, err := applyBinary(opMul, "Mul", acc, alpha)
		if err != nil {
			return nil, err
		}
		if acc, err = applyBinary(opAdd, "Add", scaled, ev); err != nil {
			return nil, err
		}
	}
	lCol := l.reshaped(append(append([]int64{}, l.shape...), 1))
	return applyBinary(opDiv, "Div", acc, lCol)
}

// queryChunks slices q's axis -2 and the biases' axis -2 (where > 1) into
// blocks and concatenates the results along the output's axis -2.
func (at *attention) queryChunks() (*array, error) {
	var qTotal int64 = 1
	if at.q != nil {
		qTotal = at.q.shape[at.q.rank()-2]
	}
	for _, b := range at.biases {
		if b.rank() >= 2 && b.shape[b.rank()-2] > 1 {
			qTotal = b.shape[b.rank()-2]
		}
	}
	var parts []*array
	for start := int64(0); start < qTotal; start += at.query {
		length := min(at.query, qTotal-start)
		ins := at.inputs()
		blk := make([]*array, len(ins))
		for i, x := range ins {
			switch {
			case x == nil:
			case i == 0:
				blk[i] = sliceAxis(x, x.rank()-2, start, length)
			case i >= 3 && x.rank() >= 2 && x.shape[x.rank()-2] > 1:
				if x.shape[x.rank()-2] != qTotal {
					return nil, fmt.Errorf("bias %d has %d queries, q %d", i-3, x.shape[x.rank()-2], qTotal)
				}
				blk[i] = sliceAxis(x, x.rank()-2, start, length)
			default:
				blk[i] = x
			}
		}
		sub := at.with(blk)
		sub.query = 0
		o, err := sub.run()
		if err != nil {
			return nil, err
		}
		parts = append(parts, o)
	}
	if len(parts) == 0 { // no queries at all
		sub := *at
		sub.query = 0
		return sub.run()
	}
	return concatArrays(parts, -2)
}

// batchChunks slices output axis 0 (right-aligned in every input whose
// matching dim is > 1) and concatenates the blocks' results.
func (at *attention) batchChunks() (*array, error) {
	// The output rank is that of broadcast(L[:-2], *v) ++ [Q, cv]; every
	// input's dims align with the output's from the right.
	outRank := 0
	for _, x := range at.inputs() {
		if x != nil {
			outRank = max(outRank, x.rank())
		}
	}
	if outRank <= 2 {
		return nil, fmt.Errorf("batch_chunk needs an output of rank > 2")
	}
	var total int64 = 1
	for _, x := range at.inputs() {
		if x == nil {
			continue
		}
		if ax := x.rank() - outRank; ax >= 0 && x.shape[ax] > 1 {
			if total > 1 && x.shape[ax] != total {
				return nil, fmt.Errorf("inputs disagree on batch axis 0: %d vs %d", total, x.shape[ax])
			}
			total = x.shape[ax]
		}
	}
	var parts []*array
	for start := int64(0); start < total; start += at.batch {
		length := min(at.batch, total-start)
		ins := at.inputs()
		blk := make([]*array, len(ins))
		for i, x := range ins {
			if x == nil {
				continue
			}
			if ax := x.rank() - outRank; ax >= 0 && x.shape[ax] > 1 {
				blk[i] = sliceAxis(x, ax, start, length)
			} else {
				blk[i] = x
			}
		}
		sub := at.with(blk)
		sub.batch = 0
		o, err := sub.run()
		if err != nil {
			return nil, err
		}
		parts = append(parts, o)
	}
	if len(parts) == 0 {
		sub := *at
		sub.batch = 0
		return sub.run()
	}
	return concatArrays(parts, 0)
}

// concatArrays joins arrays of one rank along axis (negative counts from the end).
func concatArrays(parts []*array, axis int) (*array, error) {
	n := &graph.Node{Op: "Concat", Attrs: map[string]graph.Attr{"axis": {Kind: graph.AttrInt, Int: int64(axis)}}}
	outs, err := kernelConcat(n, parts)
	if err != nil {
		return nil, err
	}
	return outs[0], nil
}

// kernelSwiGLU: silu(x·Wa) ⊙ (x·Wb), optionally · W_out, over blocks of
// row_chunk rows of the flattened leading dims.
func kernelSwiGLU(n *graph.Node, in []*array) ([]*array, error) {
	x, err := need(n, in, 0)
	if err != nil {
		return nil, err
	}
	w, err := need(n, in, 1)
	if err != nil {
		return nil, err
	}
	wOut := opt(in, 2)
	if !isFloat(x.dt) {
		return nil, fmt.Errorf("element type %s unsupported", x.dt)
	}
	for k, a := range in {
		if a != nil && a.dt != x.dt {
			return nil, fmt.Errorf("input %d is %s, x is %s", k, a.dt, x.dt)
		}
	}
	if x.rank() < 1 || w.rank() != 2 {
		return nil, fmt.Errorf("x %v must have rank ≥ 1 and W %v rank 2", x.shape, w.shape)
	}
	cin := x.shape[x.rank()-1]
	if w.shape[0] != cin || w.shape[1]%2 != 0 {
		return nil, fmt.Errorf("W %v must be [%d, 2h]", w.shape, cin)
	}
	h := w.shape[1] / 2
	cout := h
	if wOut != nil {
		if wOut.rank() != 2 || wOut.shape[0] != h {
			return nil, fmt.Errorf("W_out %v must be [%d, c_out]", wOut.shape, h)
		}
		cout = wOut.shape[1]
	}
	chunk, err := chunkAttr(n, "row_chunk")
	if err != nil {
		return nil, err
	}
	rows := shapes.Prod(x.shape[:x.rank()-1])
	if chunk == 0 || chunk > rows {
		chunk = max(rows, 1)
	}
	acc := accType(x.dt)
	outShape := append(append([]int64{}, x.shape[:x.rank()-1]...), cout)
	out, err := allocArray(x.dt, outShape)
	if err != nil {
		return nil, err
	}
	flat := toAcc(x).reshaped([]int64{rows, cin})
	wa := toAcc(w)
	var wo *array
	if wOut != nil {
		wo = toAcc(wOut)
	}
	for start := int64(0); start < rows; start += chunk {
		length := min(chunk, rows-start)
		ab, err := matmul(sliceAxis(flat, 0, start, length), wa) // [R, 2h]
		if err != nil {
			return nil, err
		}
		roundAcc(ab, acc)
		y := newArray(graph.Float64, []int64{length, h})
		for r := int64(0); r < length; r++ {
			for c := int64(0); c < h; c++ {
				a, b := ab.f[r*2*h+c], ab.f[r*2*h+h+c]
				y.f[r*h+c] = a * sigmoid(a) * b
			}
		}
		roundAcc(y, acc)
		if wo != nil {
			if y, err = matmul(y, wo); err != nil {
				return nil, err
			}
		}
		copy(out.f[start*cout:], y.f)
	}
	return []*array{out}, nil
}
