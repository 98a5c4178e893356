package passes

import (
	"github.com/of3c/of3c/graph"
)

// Leading unit axes. OpenFold3 keeps a batch axis of size 1 in front of every
// trunk tensor ([1, N, N, c], [1, S, N, c]); other implementations drop it.
// The fused pair ops are specified on the unbatched layout, so a fusion
// that finds k leading axes of static size 1 wraps the fused op in a
// Squeeze of those axes and an Unsqueeze back — both free views — instead of
// each fused op growing a batch axis it would never use at more than 1.

// unitLead reports whether the first k dims of every value are static 1 (and
// each value has rank > k).
func unitLead(k int, vs ...*graph.Value) bool {
	for _, v := range vs {
		if v == nil {
			continue
		}
		if !v.Type.Ranked || v.Type.Rank() <= k {
			return false
		}
		for i := 0; i < k; i++ {
			if !v.Type.Shape[i].Equal(graph.D(1)) {
				return false
			}
		}
	}
	return true
}

// leadAxes is [0, 1, …, k-1].
func leadAxes(k int) []int64 {
	ax := make([]int64, k)
	for i := range ax {
		ax[i] = int64(i)
	}
	return ax
}

// squeezeLead drops the first k (unit) axes of v; v itself when k is 0.
func squeezeLead(g *graph.Graph, v *graph.Value, k int) (*graph.Value, error) {
	if v == nil || k == 0 {
		return v, nil
	}
	return addAxesOp(g, "Squeeze", v, leadAxes(k))
}

// unsqueezeLead puts k unit axes in front of v; v itself when k is 0.
func unsqueezeLead(g *graph.Graph, v *graph.Value, k int) (*graph.Value, error) {
	if k == 0 {
		return v, nil
	}
	return addAxesOp(g, "Unsqueeze", v, leadAxes(k))
}

// addAxesOp adds Squeeze/Unsqueeze with its axes in the form of the graph's
// opset: an input from opset 13, an attribute before.
func addAxesOp(g *graph.Graph, op string, v *graph.Value, axes []int64) (*graph.Value, error) {
	if g.Opsets[graph.DefaultDomain] >= 13 {
		a := g.AddConst(g.UniqueName(v.Name+"_axes"), graph.NewTensorI64([]int64{int64(len(axes))}, axes))
		return addOp(g, op, nil, v, a)
	}
	return addOp(g, op, map[string]graph.Attr{"axes": graph.IntsAttr(axes...)}, v)
}

// dropLeadPerm turns a perm over k leading unit axes plus the rest into a
// perm over the rest, if it keeps the leading axes in place.
func dropLeadPerm(p []int64, k int) ([]int64, bool) {
	if len(p) < k {
		return nil, false
	}
	for i := 0; i < k; i++ {
		if p[i] != int64(i) {
			return nil, false
		}
	}
	out := make([]int64, len(p)-k)
	for i := range out {
		out[i] = p[k+i] - int64(k)
	}
	return out, true
}
