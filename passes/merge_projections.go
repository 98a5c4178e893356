package passes

import (
	"strings"

	"of3c/graph"
)

// mergeProjections turns k ≥ 2 MatMuls of one activation x by constant
// weights [c_in, n_i] into one MatMul by [W_1 | … | W_k] and a Split.
//
// When it is a win (the rule): x is read once instead of k times and one
// GEMM of width Σn_i replaces k thin ones (OF3's projections are 8–128
// columns per head group: far too thin to fill a GPU or a CPU's cores on
// their own). The cost is that the merged product is allocated as one
// buffer, so its parts cannot be freed one by one. The pass therefore merges
// only when
//   - x has rank ≥ 2 and every weight is 2-D, constant, of x's type, with
//     c_in rows (a bias, if any, stays a separate Add after the Split);
//   - there are at least 2 such MatMuls;
//   - the merged width is at most maxMergedWidthFactor · c_in, so the merged
//     buffer stays within a small multiple of x itself (OF3's widest case, the
//     triangle multiplication's 4 projections and gate, is 5·c_z).
//
// Run it after the fusions: SwiGLU merges its own pair of weights, and the
// attention pattern is simpler to read before the Splits appear.
const maxMergedWidthFactor = 8

func mergeProjections(c *Context) error {
	g := c.G
	// Group candidate MatMuls by their activation, in node order.
	var order []*graph.Value
	groups := map[*graph.Value][]*graph.Node{}
	for _, n := range g.Nodes {
		if n.Op != "MatMul" || n.Domain != graph.DefaultDomain || len(n.Outputs) != 1 {
			continue
		}
		x, w := n.Input(0), n.Input(1)
		if x == nil || w == nil || x.IsConst() || !w.IsConst() || len(w.Const.Shape) != 2 ||
			!x.Type.Ranked || x.Type.Rank() < 2 || w.Const.DType != x.Type.DType {
			continue
		}
		if cin := x.Type.Shape[x.Type.Rank()-1]; !cin.Equal(graph.D(w.Const.Shape[0])) {
			continue
		}
		if _, seen := groups[x]; !seen {
			order = append(order, x)
		}
		groups[x] = append(groups[x], n)
	}
	for _, x := range order {
		mms := groups[x]
		if len(mms) < 2 {
			continue
		}
		cin := x.Type.Shape[x.Type.Rank()-1].Val
		var ws []*graph.Tensor
		var widths []int64
		var total int64
		for _, mm := range mms {
			t := mm.Inputs[1].Const
			ws = append(ws, t)
			widths = append(widths, t.Shape[1])
			total += t.Shape[1]
		}
		if total > maxMergedWidthFactor*cin {
			c.Notef("kept %d projections of %s apart: merged width %d > %d·%d", len(mms), x.Name, total, maxMergedWidthFactor, cin)
			continue
		}
		w, err := concatLastAxis(ws)
		if err != nil {
			return err
		}
		var names []string
		for _, mm := range mms {
			names = append(names, mm.Inputs[1].Name)
		}
		wv := g.AddConst(g.UniqueName(x.Name+"_merged_w"), w)
		merged, err := addOp(g, "MatMul", nil, x, wv)
		if err != nil {
			return err
		}
		var parts []*graph.Value
		splitAttrs := map[string]graph.Attr{"axis": {Kind: graph.AttrInt, Int: -1}}
		if g.Opsets[graph.DefaultDomain] >= 13 {
			parts, err = addOpN(g, "Split", len(mms), splitAttrs, merged, i64Const(g, x.Name+"_split", widths...))
		} else {
			splitAttrs["split"] = graph.Attr{Kind: graph.AttrInts, Ints: widths}
			parts, err = addOpN(g, "Split", len(mms), splitAttrs, merged)
		}
		if err != nil {
			return err
		}
		ok := true
		for i, mm := range mms {
			if !parts[i].Type.Equal(mm.Outputs[0].Type) {
				ok = false
			}
		}
		if !ok {
			// Left dead; removed below.
			c.Notef("kept projections of %s apart: the merged form types differently", x.Name)
			continue
		}
		for i, mm := range mms {
			replaceValue(g, mm.Outputs[0], parts[i])
		}
		c.Count("merge-projections")
		c.Notef("%s: %d projections (%s) → one MatMul of width %d", x.Name, len(mms), strings.Join(names, ", "), total)
	}
	if _, err := removeDead(g); err != nil {
		return err
	}
	return nil
}
