package passes

import (
	"fmt"
	"strings"

	"of3c/graph"
)

// dotText renders g for Graphviz: one box per node labelled with its op,
// edges labelled with the value's type. Constants are left out (weights
// would drown the picture); graph inputs and outputs are ellipses.
func dotText(g *graph.Graph) string {
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %q {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n", g.Name)
	id := map[*graph.Node]int{}
	for i, n := range g.Nodes {
		id[n] = i
		fmt.Fprintf(&b, "  n%d [label=%q];\n", i, n.QualifiedOp())
	}
	for i, v := range g.Inputs {
		fmt.Fprintf(&b, "  in%d [shape=ellipse, label=%q];\n", i, v.Name+"\n"+v.Type.String())
	}
	inIdx := map[*graph.Value]int{}
	for i, v := range g.Inputs {
		inIdx[v] = i
	}
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			if in == nil || in.IsConst() {
				continue
			}
			if p, ok := id[in.Producer]; ok && in.Producer != nil {
				fmt.Fprintf(&b, "  n%d -> n%d [label=%q];\n", p, id[n], in.Type.String())
			} else if k, ok := inIdx[in]; ok {
				fmt.Fprintf(&b, "  in%d -> n%d;\n", k, id[n])
			}
		}
	}
	for i, o := range g.Outputs {
		fmt.Fprintf(&b, "  out%d [shape=ellipse, label=%q];\n", i, o.Name+"\n"+o.Type.String())
		if p, ok := id[o.Producer]; ok && o.Producer != nil {
			fmt.Fprintf(&b, "  n%d -> out%d;\n", p, i)
		}
	}
	b.WriteString("}\n")
	return b.String()
}
