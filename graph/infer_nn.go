package graph

import (
	"fmt"

	"github.com/of3c/of3c/internal/shapes"
)

// Neural-network layers: LayerNormalization, RMSNormalization,
// BatchNormalization (inference), Dropout (inference) and Attention.

func init() {
	// LayerNormalization: Y, and optionally Mean and InvStdDev, which keep
	// the leading dims and have 1 for each normalised dim, in stash_type
	// (float32 by default).
	reg("LayerNormalization", 17, 2, 3, 1, 3, func(n *Node) ([]Type, []Shape, error) {
		x, err := input(n, 0)
		if err != nil {
			return nil, nil, err
		}
		dt, err := sameDType(n, 0, 1, 2)
		if err != nil {
			return nil, nil, err
		}
		stash := DType(n.AttrInt("stash_type", int64(Float32)))
		if !stash.IsFloat() {
			return nil, nil, fmt.Errorf("stash_type %d is not a float type", int64(stash))
		}
		if !x.Ranked {
			outs := []Type{unranked(dt), unranked(stash), unranked(stash)}
			return outs[:len(n.Outputs)], nil, nil
		}
		axis, err := shapes.NormAxis(n.AttrInt("axis", -1), len(x.Shape))
		if err != nil {
			return nil, nil, err
		}
		norm := TensorType(dt, x.Shape[axis:])
		for i, what := range []string{"", "Scale", "B"} {
			if v := n.Input(i); i > 0 && v != nil {
				if err := unidirectional(v.Type, norm, what); err != nil {
					return nil, nil, err
				}
			}
		}
		stat := x.Shape.Clone()
		for i := axis; i < len(stat); i++ {
			stat[i] = D(1)
		}
		outs := []Type{TensorType(dt, x.Shape.Clone()), TensorType(stash, stat), TensorType(stash, stat.Clone())}
		return outs[:len(n.Outputs)], nil, nil
	})

	reg("RMSNormalization", 23, 2, 2, 1, 1, func(n *Node) ([]Type, []Shape, error) {
		x, err := input(n, 0)
		if err != nil {
			return nil, nil, err
		}
		if !x.Ranked {
			return one(x), nil, nil
		}
		axis, err := shapes.NormAxis(n.AttrInt("axis", -1), len(x.Shape))
		if err != nil {
			return nil, nil, err
		}
		if st := DType(n.AttrInt("stash_type", int64(Float32))); !st.IsFloat() {
			return nil, nil, fmt.Errorf("stash_type %d is not a float type", int64(st))
		}
		if err := unidirectional(n.Input(1).Type, TensorType(x.DType, x.Shape[axis:]), "scale"); err != nil {
			return nil, nil, err
		}
		return one(withDType(x, x.DType)), nil, nil
	})

	// BatchNormalization in inference form: Y has X's type. Opset 7-13 may
	// list the training outputs (running mean/var, saved mean/var); they
	// are per-channel vectors.
	reg("BatchNormalization", 7, 5, 5, 1, 5, func(n *Node) ([]Type, []Shape, error) {
		x, err := input(n, 0)
		if err != nil {
			return nil, nil, err
		}
		if n.Opset >= 14 && len(n.Outputs) != 1 && len(n.Outputs) != 3 {
			return nil, nil, fmt.Errorf("%d outputs, want 1 or 3", len(n.Outputs))
		}
		c := Unknown
		if x.Ranked {
			if len(x.Shape) < 2 {
				return nil, nil, fmt.Errorf("input has rank %d, want at least 2", len(x.Shape))
			}
			c = x.Shape[1]
		}
		for i := 1; i < 5; i++ {
			v := n.Input(i)
			if v == nil {
				return nil, nil, fmt.Errorf("input %d is missing", i)
			}
			if v.Type.Ranked {
				if len(v.Type.Shape) != 1 {
					return nil, nil, fmt.Errorf("input %d has shape %s, want [C]", i, v.Type.Shape)
				}
				m, err := mergeDim(c, v.Type.Shape[0])
				if err != nil {
					return nil, nil, fmt.Errorf("input %d: channels %w", i, err)
				}
				c = m
			}
		}
		outs := []Type{withDType(x, x.DType)}
		for i := 1; i < len(n.Outputs); i++ {
			dt := x.DType
			if v := n.Input(3); i <= 2 && v != nil && v.Type.DType != Undefined {
				dt = v.Type.DType // running mean/var follow the mean input
			}
			outs = append(outs, TensorType(dt, Shape{c}))
		}
		return outs, nil, nil
	})

	// Dropout: output as input; the optional mask has the input's type
	// before opset 10 and is bool from 10. ratio and training_mode became
	// inputs in opset 12.
	reg("Dropout", 7, 1, 3, 1, 2, func(n *Node) ([]Type, []Shape, error) {
		x, err := input(n, 0)
		if err != nil {
			return nil, nil, err
		}
		if n.Opset != 0 && n.Opset < 12 && len(n.Inputs) > 1 {
			return nil, nil, fmt.Errorf("opset %d Dropout takes ratio as an attribute, not an input", n.Opset)
		}
		for i := 1; i < 3; i++ {
			if v := n.Input(i); v != nil && v.Type.Ranked && len(v.Type.Shape) != 0 {
				return nil, nil, fmt.Errorf("input %d has shape %s, want a scalar", i, v.Type.Shape)
			}
		}
		outs := []Type{withDType(x, x.DType)}
		if len(n.Outputs) > 1 {
			mask := Bool
			if n.Opset != 0 && n.Opset < 10 {
				mask = x.DType
			}
			outs = append(outs, withDType(x, mask))
		}
		sv, _ := shapeValue(n.Input(0))
		return outs, svOut(sv), nil
	})

	reg("Attention", 23, 3, 7, 1, 4, inferAttention)
}

// inferAttention follows ONNX Attention-23: Q, K, V are either 4-D
// [batch, heads, seq, head_size] or 3-D [batch, seq, heads*head_size] with
// q_num_heads/kv_num_heads attributes. Outputs: Y, present_key,
// present_value (past + current sequence) and qk_matmul_output.
func inferAttention(n *Node) ([]Type, []Shape, error) {
	var ts [3]Type
	for i := range ts {
		t, err := input(n, i)
		if err != nil {
			return nil, nil, err
		}
		ts[i] = t
	}
	dt, err := sameDType(n, 0, 1, 2)
	if err != nil {
		return nil, nil, err
	}
	q, k, v := ts[0], ts[1], ts[2]
	nout := len(n.Outputs)
	if !q.Ranked || !k.Ranked || !v.Ranked {
		outs := []Type{unranked(dt), unranked(dt), unranked(dt), unranked(dt)}
		return outs[:nout], nil, nil
	}
	r := len(q.Shape)
	if r != 3 && r != 4 {
		return nil, nil, fmt.Errorf("Q has rank %d, want 3 or 4", r)
	}
	if len(k.Shape) != r || len(v.Shape) != r {
		return nil, nil, fmt.Errorf("Q, K, V have ranks %d, %d, %d; want equal", r, len(k.Shape), len(v.Shape))
	}
	var batch, qHeads, kvHeads, qSeq, kvSeq, headSize, vHeadSize Dim
	if r == 4 {
		batch, qHeads, qSeq, headSize = q.Shape[0], q.Shape[1], q.Shape[2], q.Shape[3]
		kvHeads, kvSeq = k.Shape[1], k.Shape[2]
		if _, err := mergeDim(headSize, k.Shape[3]); err != nil {
			return nil, nil, fmt.Errorf("Q and K head sizes: %w", err)
		}
		vHeadSize = v.Shape[3]
		if _, err := mergeDim(kvHeads, v.Shape[1]); err != nil {
			return nil, nil, fmt.Errorf("K and V head counts: %w", err)
		}
		if _, err := mergeDim(kvSeq, v.Shape[2]); err != nil {
			return nil, nil, fmt.Errorf("K and V sequence lengths: %w", err)
		}
	} else {
		qh, ok1 := n.Attrs["q_num_heads"]
		kh, ok2 := n.Attrs["kv_num_heads"]
		if !ok1 || !ok2 || qh.Int <= 0 || kh.Int <= 0 {
			return nil, nil, fmt.Errorf("3-D inputs need positive q_num_heads and kv_num_heads")
		}
		batch, qSeq, kvSeq = q.Shape[0], q.Shape[1], k.Shape[1]
		qHeads, kvHeads = D(qh.Int), D(kh.Int)
		var ok bool
		if headSize, ok = DimDivExact(q.Shape[2], qHeads); !ok && q.Shape[2].IsStatic() {
			return nil, nil, fmt.Errorf("Q hidden size %d is not a multiple of q_num_heads %d", q.Shape[2].Val, qh.Int)
		}
		if vHeadSize, ok = DimDivExact(v.Shape[2], kvHeads); !ok && v.Shape[2].IsStatic() {
			return nil, nil, fmt.Errorf("V hidden size %d is not a multiple of kv_num_heads %d", v.Shape[2].Val, kh.Int)
		}
		if _, err := mergeDim(kvSeq, v.Shape[1]); err != nil {
			return nil, nil, fmt.Errorf("K and V sequence lengths: %w", err)
		}
	}
	for _, s := range []Shape{k.Shape, v.Shape} {
		m, err := mergeDim(batch, s[0])
		if err != nil {
			return nil, nil, fmt.Errorf("batch sizes: %w", err)
		}
		batch = m
	}
	if qHeads.IsStatic() && kvHeads.IsStatic() && (kvHeads.Val == 0 || qHeads.Val%kvHeads.Val != 0) {
		return nil, nil, fmt.Errorf("q heads %d is not a multiple of kv heads %d", qHeads.Val, kvHeads.Val)
	}
	totalSeq := kvSeq
	pastK, pastV := n.Input(4), n.Input(5)
	if (pastK == nil) != (pastV == nil) {
		return nil, nil, fmt.Errorf("past_key and past_value must be given together")
	}
	if pastK != nil {
		if !pastK.Type.Ranked || len(pastK.Type.Shape) != 4 {
			totalSeq = Unknown
		} else {
			totalSeq = DimAdd(pastK.Type.Shape[2], kvSeq)
		}
	}
	if m := n.Input(3); m != nil && m.Type.Ranked {
		// The mask broadcasts to [batch, heads, q_seq, total_seq]; its
		// last dim may be shorter than total_seq (padded with -inf).
		ms := m.Type.Shape
		if len(ms) >= 2 {
			if _, err := mergeDim(ms[len(ms)-2], qSeq); err != nil && !(ms[len(ms)-2].IsStatic() && ms[len(ms)-2].Val == 1) {
				return nil, nil, fmt.Errorf("attn_mask rows: %w", err)
			}
		}
	}
	var y Shape
	if r == 4 {
		y = Shape{batch, qHeads, qSeq, vHeadSize}
	} else {
		y = Shape{batch, qSeq, DimMul(qHeads, vHeadSize)}
	}
	outs := []Type{
		TensorType(dt, y),
		TensorType(dt, Shape{batch, kvHeads, totalSeq, headSize}),
		TensorType(dt, Shape{batch, kvHeads, totalSeq, vHeadSize}),
		TensorType(dt, Shape{batch, qHeads, qSeq, totalSeq}),
	}
	return outs[:nout], nil, nil
}
