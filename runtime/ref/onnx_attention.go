package ref

import (
	"fmt"
	"math"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/shapes"
)

// ONNX Attention (opset 23+): scaled dot-product attention with optional
// mask, KV cache, causal masking, grouped-query heads and softcap. The
// semantics follow the ONNX operator text and its reference implementation:
// bool masks mean "attend", a mask shorter than the key axis is padded with
// −inf, causal masking is aligned bottom-right by the cache length, softcap
// applies before the mask, and a query row whose mask is entirely −inf gives
// zero weights (hence Y = 0) rather than NaN.

func init() {
	register(kernelONNXAttention, "Attention")
}

// heads4D turns a 3-D [B, S, H·d] input into [B, H, S, d].
func heads4D(x *array, heads int64, what string) (*array, error) {
	if heads <= 0 || x.shape[2]%heads != 0 {
		return nil, fmt.Errorf("%s hidden size %d is not a multiple of %d heads", what, x.shape[2], heads)
	}
	r := x.reshaped([]int64{x.shape[0], x.shape[1], heads, x.shape[2] / heads})
	return permute(r, []int{0, 2, 1, 3}), nil
}

// repeatHeads repeats every head reps times in place ([h0, h0, h1, h1, …]).
func repeatHeads(x *array, reps int64) *array {
	shape := append([]int64{}, x.shape...)
	shape[1] *= reps
	r := newArray(x.dt, shape)
	outer, mid, inner := splitAt(x.shape, 1)
	pos := 0
	for o := 0; o < outer; o++ {
		for h := 0; h < mid; h++ {
			src := x.f[(o*mid+h)*inner : (o*mid+h+1)*inner]
			for k := int64(0); k < reps; k++ {
				copy(r.f[pos:], src)
				pos += inner
			}
		}
	}
	return r
}

func kernelONNXAttention(n *graph.Node, in []*array) ([]*array, error) {
	var qkv [3]*array
	for k := range qkv {
		x, err := need(n, in, k)
		if err != nil {
			return nil, err
		}
		if !isFloat(x.dt) || x.dt != in[0].dt {
			return nil, fmt.Errorf("Q, K, V must share one float type, got %s", x.dt)
		}
		qkv[k] = x
	}
	dt := qkv[0].dt
	mask, pastK, pastV, nonpad := opt(in, 3), opt(in, 4), opt(in, 5), opt(in, 6)
	if (pastK == nil) != (pastV == nil) {
		return nil, fmt.Errorf("past_key and past_value must come together")
	}
	if nonpad != nil && pastK != nil {
		return nil, fmt.Errorf("nonpad_kv_seqlen cannot be combined with a past cache")
	}
	rank := qkv[0].rank()
	if (rank != 3 && rank != 4) || qkv[1].rank() != rank || qkv[2].rank() != rank {
		return nil, fmt.Errorf("Q, K, V must all be 3-D or all 4-D, got %v %v %v", qkv[0].shape, qkv[1].shape, qkv[2].shape)
	}
	q, k, v := toAcc(qkv[0]), toAcc(qkv[1]), toAcc(qkv[2])
	if rank == 3 {
		qh, kvh := n.AttrInt("q_num_heads", 0), n.AttrInt("kv_num_heads", 0)
		var err error
		if q, err = heads4D(q, qh, "Q"); err != nil {
			return nil, err
		}
		if k, err = heads4D(k, kvh, "K"); err != nil {
			return nil, err
		}
		if v, err = heads4D(v, kvh, "V"); err != nil {
			return nil, err
		}
	}
	batch, hq, qLen, head := q.shape[0], q.shape[1], q.shape[2], q.shape[3]
	if k.shape[0] != batch || v.shape[0] != batch || k.shape[3] != head || k.shape[1] != v.shape[1] || k.shape[2] != v.shape[2] {
		return nil, fmt.Errorf("incompatible Q %v, K %v, V %v", q.shape, k.shape, v.shape)
	}
	if pastK != nil {
		pk, pv := toAcc(pastK), toAcc(pastV)
		var err error
		if k, err = concatArrays([]*array{pk, k}, 2); err != nil {
			return nil, fmt.Errorf("past_key: %w", err)
		}
		if v, err = concatArrays([]*array{pv, v}, 2); err != nil {
			return nil, fmt.Errorf("past_value: %w", err)
		}
	}
	presentK, presentV := k, v
	kvLen := k.shape[2]

	bias, err := attentionBias(n, mask, pastK, nonpad, batch, qLen, kvLen)
	if err != nil {
		return nil, err
	}

	if hk := k.shape[1]; hk != hq {
		if hq%hk != 0 {
			return nil, fmt.Errorf("%d query heads are not a multiple of %d key/value heads", hq, hk)
		}
		k, v = repeatHeads(k, hq/hk), repeatHeads(v, hq/hk)
	}
	scale := 1 / math.Sqrt(float64(head))
	if _, ok := n.Attrs["scale"]; ok {
		scale = attrF(n, "scale", 0)
	}
	qk, err := matmul(q, permute(k, []int{0, 1, 3, 2}))
	if err != nil {
		return nil, err
	}
	softcap := attrF(n, "softcap", 0)
	for e, x := range qk.f {
		x *= scale
		if softcap > 0 {
			x = softcap * math.Tanh(x/softcap)
		}
		qk.f[e] = x
	}
	mode := n.AttrInt("qk_matmul_output_mode", 0)
	qkOut := qk
	logits, err := applyBinary(opAdd, "Add", qk, bias)
	if err != nil {
		return nil, fmt.Errorf("mask: %w", err)
	}
	if mode == 2 {
		qkOut = logits.clone()
	}
	kk := int(kvLen)
	for r := 0; r+kk <= len(logits.f) && kk > 0; r += kk {
		row := logits.f[r : r+kk]
		if m := maxOf(row); math.IsInf(m, -1) {
			clear(row) // no attendable key
			continue
		}
		softmaxRow(row)
	}
	// Rows whose bias is all −inf get zero weights whatever the logits are.
	rowMasked := newArray(graph.Float64, append(append([]int64{}, bias.shape[:bias.rank()-1]...), 1))
	bk := int(bias.shape[bias.rank()-1])
	for r := range rowMasked.f {
		if bk > 0 && math.IsInf(maxOf(bias.f[r*bk:(r+1)*bk]), -1) {
			rowMasked.f[r] = 1
		}
	}
	broadcastIndex(logits.shape, [][]int64{logits.shape, rowMasked.shape}, func(o int, idx []int) {
		if rowMasked.f[idx[1]] != 0 {
			logits.f[o] = 0
		}
	})
	if mode == 3 {
		qkOut = logits
	}
	p := logits.clone()
	p.dt = dt
	p.normalize() // the weights are cast to T before the second product
	p.dt = graph.Float64
	y, err := matmul(p, v)
	if err != nil {
		return nil, err
	}
	if rank == 3 {
		y = permute(y, []int{0, 2, 1, 3})
		y = y.reshaped([]int64{y.shape[0], y.shape[1], y.shape[2] * y.shape[3]})
	}
	for _, a := range []*array{y, presentK, presentV, qkOut} {
		a.dt = dt
	}
	return []*array{y, presentK, presentV, qkOut}, nil
}

func maxOf(row []float64) float64 {
	m := math.Inf(-1)
	for _, x := range row {
		if x > m || math.IsNaN(x) {
			m = x
		}
	}
	return m
}

// attentionBias builds the additive bias from the mask (bool: attend where
// true), causal masking and nonpad_kv_seqlen; it broadcasts to
// [B, H, qLen, kvLen].
func attentionBias(n *graph.Node, mask, pastK, nonpad *array, batch, qLen, kvLen int64) (*array, error) {
	bias := newArray(graph.Float64, []int64{qLen, kvLen})
	if mask != nil {
		if mask.rank() < 1 {
			return nil, fmt.Errorf("attn_mask must have rank ≥ 1")
		}
		m := newArray(graph.Float64, mask.shape)
		for e := range m.f {
			switch {
			case mask.dt == graph.Bool && mask.i[e] == 0:
				m.f[e] = math.Inf(-1)
			case mask.dt == graph.Bool:
			default:
				m.f[e] = mask.float(e)
			}
		}
		// A mask shorter than the key axis is padded with "masked".
		if last := m.shape[m.rank()-1]; last < kvLen {
			shape := append([]int64{}, m.shape...)
			shape[len(shape)-1] = kvLen
			padded := newArray(graph.Float64, shape)
			rows := shapes.Prod(shape[:len(shape)-1])
			for r := int64(0); r < rows; r++ {
				for c := int64(0); c < kvLen; c++ {
					if c < last {
						padded.f[r*kvLen+c] = m.f[r*last+c]
					} else {
						padded.f[r*kvLen+c] = math.Inf(-1)
					}
				}
			}
			m = padded
		}
		var err error
		if bias, err = applyBinary(opAdd, "Add", bias, m); err != nil {
			return nil, fmt.Errorf("attn_mask: %w", err)
		}
	}
	// Causal and sliding-window masks are aligned bottom-right: query i sits
	// at position i + offset, offset being the keys before this query block
	// (the past cache, or per batch nonpad_kv_seqlen − qLen).
	offsets := []int64{0}
	if pastK != nil {
		offsets[0] = pastK.shape[2]
	} else if nonpad != nil {
		if nonpad.size() != int(batch) {
			return nil, fmt.Errorf("nonpad_kv_seqlen has %d entries for batch %d", nonpad.size(), batch)
		}
		offsets = nonpad.ints()
		offsets = append([]int64{}, offsets...)
		for b := range offsets {
			offsets[b] -= qLen
		}
	}
	addFrontier := func(allowed func(pos, j int64) bool) error {
		shape := []int64{qLen, kvLen}
		if len(offsets) > 1 || nonpad != nil && pastK == nil {
			shape = []int64{int64(len(offsets)), 1, qLen, kvLen}
		}
		m := newArray(graph.Float64, shape)
		for b, off := range offsets {
			for i := int64(0); i < qLen; i++ {
				for j := int64(0); j < kvLen; j++ {
					if !allowed(i+off, j) {
						m.f[(int64(b)*qLen+i)*kvLen+j] = math.Inf(-1)
					}
				}
			}
		}
		var err error
		bias, err = applyBinary(opAdd, "Add", bias, m)
		return err
	}
	if n.AttrInt("is_causal", 0) != 0 {
		if err := addFrontier(func(pos, j int64) bool { return j <= pos }); err != nil {
			return nil, err
		}
	}
	left, right := n.AttrInt("left_window_size", -1), n.AttrInt("right_window_size", -1)
	if left < -1 || right < -1 {
		return nil, fmt.Errorf("window sizes must be -1 or ≥ 0, got %d and %d", left, right)
	}
	if left >= 0 || right >= 0 {
		err := addFrontier(func(pos, j int64) bool {
			return (left < 0 || pos-j <= left) && (right < 0 || j-pos <= right)
		})
		if err != nil {
			return nil, err
		}
	}
	if nonpad != nil {
		if nonpad.size() != int(batch) {
			return nil, fmt.Errorf("nonpad_kv_seqlen has %d entries for batch %d", nonpad.size(), batch)
		}
		pad := newArray(graph.Float64, []int64{batch, 1, 1, kvLen})
		lens := nonpad.ints()
		for b := int64(0); b < batch; b++ {
			for j := int64(0); j < kvLen; j++ {
				if j >= lens[b] {
					pad.f[b*kvLen+j] = math.Inf(-1)
				}
			}
		}
		var err error
		if bias, err = applyBinary(opAdd, "Add", bias, pad); err != nil {
			return nil, err
		}
	}
	return bias, nil
}
