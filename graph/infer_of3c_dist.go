package graph

import (
	"fmt"
	"strconv"
	"strings"
)

// Collective ops of a row-sharded (dynamic axial parallelism) graph, made by
// passes/shard.go and lowered on MLX's distributed layer (docs/ops.md,
// "Sharded pair stack"). Every rank runs the same graph; attribute parts is
// the number of ranks, which the run checks against the group.
//
//	y = of3c.ShardSlice(x) {axis, parts}           this rank's chunk of axis (no communication)
//	y = of3c.AllGather(x, like?) {axis, parts, like_axis}
//	                                              every rank's x concatenated along axis
//	y = of3c.AllSum(x) {parts}                    the element-wise sum of every rank's x
//	y = of3c.AllToAll(x, like?) {split_axis, concat_axis, parts, like_axis}
//	                                              re-shard: x sharded on concat_axis, whole on
//	                                              split_axis → sharded on split_axis, whole on concat_axis
//
// Chunks: with c = ⌈n/parts⌉, rank r holds [min(r·c, n), min((r+1)·c, n)) —
// equal when parts divides n, the last ones shorter otherwise. like, when
// given, is any replicated value whose axis like_axis is the whole n (the
// ranks' chunks alone do not tell it); without it the chunks must be equal.
// A sharded dim d is typed ShardDim(d, parts): d/parts when static, a fresh
// symbol "<d>_over<parts>" when symbolic.

func init() {
	RegisterOp(OpDef{Domain: FusedDomain, Op: "ShardSlice", MinInputs: 1, MaxInputs: 1,
		MinOutputs: 1, MaxOutputs: 1, SinceVersion: 1, Infer: inferShardSlice})
	RegisterOp(OpDef{Domain: FusedDomain, Op: "AllGather", MinInputs: 1, MaxInputs: 2,
		MinOutputs: 1, MaxOutputs: 1, SinceVersion: 1, Infer: inferAllGather})
	RegisterOp(OpDef{Domain: FusedDomain, Op: "AllSum", MinInputs: 1, MaxInputs: 1,
		MinOutputs: 1, MaxOutputs: 1, SinceVersion: 1, Infer: inferAllSum})
	RegisterOp(OpDef{Domain: FusedDomain, Op: "AllToAll", MinInputs: 1, MaxInputs: 2,
		MinOutputs: 1, MaxOutputs: 1, SinceVersion: 1, Infer: inferAllToAll})
}

// ShardDim is the type of one of parts equal chunks of d.
func ShardDim(d Dim, parts int64) (Dim, error) {
	switch {
	case parts < 1:
		return Dim{}, fmt.Errorf("parts %d < 1", parts)
	case parts == 1:
		return d, nil
	case d.IsStatic():
		if d.Val%parts != 0 {
			return Dim{}, fmt.Errorf("dim %d does not split into %d equal parts", d.Val, parts)
		}
		return D(d.Val / parts), nil
	case d.IsSymbolic():
		var b strings.Builder
		for _, r := range d.Sym {
			if r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
				b.WriteRune(r)
			} else {
				b.WriteByte('_')
			}
		}
		return S(b.String() + "_over" + strconv.FormatInt(parts, 10)), nil
	}
	return d, nil // unknown stays unknown
}

// UnshardDim inverts ShardDim.
func UnshardDim(d Dim, parts int64) Dim {
	suffix := "_over" + strconv.FormatInt(parts, 10)
	switch {
	case parts == 1:
		return d
	case d.IsStatic():
		return D(d.Val * parts)
	case d.IsSymbolic() && strings.HasSuffix(d.Sym, suffix):
		return S(strings.TrimSuffix(d.Sym, suffix))
	case d.IsSymbolic():
		return DimMul(d, IntDim(parts))
	}
	return d
}

func distAxis(n *Node, name string, rank int) (int, error) {
	a, ok := n.Attrs[name]
	if !ok || a.Kind != AttrInt {
		return 0, fmt.Errorf("int attribute %s is required", name)
	}
	ax := int(a.Int)
	if ax < 0 {
		ax += rank
	}
	if ax < 0 || ax >= rank {
		return 0, fmt.Errorf("%s %d out of range for rank %d", name, a.Int, rank)
	}
	return ax, nil
}

func distParts(n *Node) (int64, error) {
	p := n.AttrInt("parts", 0)
	if p < 1 {
		return 0, fmt.Errorf("attribute parts must be ≥ 1, got %d", p)
	}
	return p, nil
}

func distInput(n *Node) (Type, error) {
	x := n.Input(0)
	if x == nil {
		return Type{}, fmt.Errorf("input is required")
	}
	return x.Type, nil
}

func inferShardSlice(n *Node) ([]Type, []Shape, error) {
	t, err := distInput(n)
	if err != nil || !t.Ranked {
		return []Type{t}, nil, err
	}
	p, err := distParts(n)
	if err != nil {
		return nil, nil, err
	}
	ax, err := distAxis(n, "axis", len(t.Shape))
	if err != nil {
		return nil, nil, err
	}
	s := append(Shape(nil), t.Shape...)
	if s[ax], err = ShardDim(s[ax], p); err != nil {
		return nil, nil, err
	}
	return []Type{TensorType(t.DType, s)}, nil, nil
}

func inferAllGather(n *Node) ([]Type, []Shape, error) {
	t, err := distInput(n)
	if err != nil || !t.Ranked {
		return []Type{t}, nil, err
	}
	p, err := distParts(n)
	if err != nil {
		return nil, nil, err
	}
	ax, err := distAxis(n, "axis", len(t.Shape))
	if err != nil {
		return nil, nil, err
	}
	s := append(Shape(nil), t.Shape...)
	s[ax] = UnshardDim(s[ax], p)
	return []Type{TensorType(t.DType, s)}, nil, nil
}

func inferAllToAll(n *Node) ([]Type, []Shape, error) {
	t, err := distInput(n)
	if err != nil || !t.Ranked {
		return []Type{t}, nil, err
	}
	p, err := distParts(n)
	if err != nil {
		return nil, nil, err
	}
	sa, err := distAxis(n, "split_axis", len(t.Shape))
	if err != nil {
		return nil, nil, err
	}
	ca, err := distAxis(n, "concat_axis", len(t.Shape))
	if err != nil {
		return nil, nil, err
	}
	if sa == ca {
		return nil, nil, fmt.Errorf("split_axis and concat_axis are both %d", sa)
	}
	s := append(Shape(nil), t.Shape...)
	if s[sa], err = ShardDim(s[sa], p); err != nil {
		return nil, nil, err
	}
	s[ca] = UnshardDim(s[ca], p)
	return []Type{TensorType(t.DType, s)}, nil, nil
}

func inferAllSum(n *Node) ([]Type, []Shape, error) {
	t, err := distInput(n)
	if err != nil {
		return nil, nil, err
	}
	if _, err := distParts(n); err != nil {
		return nil, nil, err
	}
	return []Type{t}, nil, nil
}
