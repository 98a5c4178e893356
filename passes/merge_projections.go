package passes

import (
	"sort"
	"strings"

	"github.com/of3c/of3c/graph"
)

// mergeProjections turns k ≥ 2 MatMuls of one activation x by constant
// weights [c_in, n_i] into one MatMul by [W_1 | … | W_k] and a Split.
//
// When it is a win (the rule): x is read once instead of k times and one
// GEMM of width Σn_i replaces k thin ones (OF3's projections are 4–128
// columns per head group: too thin to fill a GPU or a CPU's cores on their
// own). The cost is memory: the merged product is one buffer (the Split
// parts are views of it under MLX), allocated when the first part is needed
// and freed when the last part dies. So the pass merges only projections
// whose results are live at the same time anyway — there is a step of the
// (unmerged) schedule where all of them are allocated and not yet dead — and
// at that step merging costs nothing. Concretely, for each x:
//   - candidates: MatMul(x, W) with W constant, 2-D, of x's type, c_in rows,
//     x of rank ≥ 2 (a bias stays a separate Add after the Split);
//   - each candidate's lifetime runs from its MatMul to the last reader of
//     its result, looking through views (Reshape, Transpose, …);
//   - the largest set of candidates whose lifetimes share a step is merged,
//     if it has ≥ 2 members, then the rest is considered again.
// In OF3 this merges q, k, v and the triangle bias of an attention (all read
// by the fused op) but not its gate (computed after it), and in the triangle
// multiplication a_g with a_p and b_g with b_p, not all five: merging all
// five would hold a [N, N, 5·c_z] buffer (2.5 GiB at N = 1024) where at most
// two of its parts are needed at once.
//
// Run it after the fusions: SwiGLU merges its own pair of weights, and the
// attention pattern is simpler to read before the Splits appear.

// lastUseThroughViews is the index of the last node that reads v or a view
// of it; len(nodes) for a graph output.
func lastUseThroughViews(g *graph.Graph, uses map[*graph.Value][]*graph.Node, index map[*graph.Node]int, v *graph.Value) int {
	if g.IsOutput(v) {
		return len(g.Nodes)
	}
	last := -1
	for _, u := range uses[v] {
		l := index[u]
		if isView(u) && u.Input(0) == v {
			for _, o := range u.Outputs {
				if o != nil {
					l = max(l, lastUseThroughViews(g, uses, index, o))
				}
			}
		}
		last = max(last, l)
	}
	return last
}

// overlappingSets splits intervals into groups sharing a common point,
// largest first; groups of one are dropped.
func overlappingSets(start, end []int) [][]int {
	left := make([]bool, len(start))
	for i := range left {
		left[i] = true
	}
	var sets [][]int
	for {
		var best []int
		for _, i := range sortedIdx(start) {
			if !left[i] {
				continue
			}
			p := start[i]
			var set []int
			for j := range start {
				if left[j] && start[j] <= p && p <= end[j] {
					set = append(set, j)
				}
			}
			if len(set) > len(best) {
				best = set
			}
		}
		if len(best) < 2 {
			return sets
		}
		for _, j := range best {
			left[j] = false
		}
		sets = append(sets, best)
	}
}

func sortedIdx(xs []int) []int {
	idx := make([]int, len(xs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return xs[idx[a]] < xs[idx[b]] })
	return idx
}

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
	uses := g.Uses()
	index := map[*graph.Node]int{}
	for i, n := range g.Nodes {
		index[n] = i
	}
	var batches [][]*graph.Node
	for _, x := range order {
		all := groups[x]
		if len(all) < 2 {
			continue
		}
		start := make([]int, len(all))
		end := make([]int, len(all))
		for i, mm := range all {
			start[i] = index[mm]
			end[i] = lastUseThroughViews(g, uses, index, mm.Outputs[0])
		}
		sets := overlappingSets(start, end)
		if kept := len(all) - countMembers(sets); kept > 0 && len(sets) > 0 {
			c.Notef("%s: %d projections not live together with the others stay apart", x.Name, kept)
		}
		for _, set := range sets {
			sort.Ints(set)
			var mms []*graph.Node
			for _, i := range set {
				mms = append(mms, all[i])
			}
			batches = append(batches, mms)
		}
	}
	for _, mms := range batches {
		x := mms[0].Inputs[0]
		var ws []*graph.Tensor
		var widths []int64
		var total int64
		for _, mm := range mms {
			t := mm.Inputs[1].Const
			ws = append(ws, t)
			widths = append(widths, t.Shape[1])
			total += t.Shape[1]
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

func countMembers(sets [][]int) int {
	n := 0
	for _, s := range sets {
		n += len(s)
	}
	return n
}
