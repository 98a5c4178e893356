package graph

import (
	"strconv"
	"strings"
)

// DOTOptions tunes FormatDOT.
type DOTOptions struct {
	// HideConsts leaves constants out (their edges too): in a model with
	// thousands of weights they bury the dataflow.
	HideConsts bool
}

// FormatDOT returns g as a Graphviz digraph: inputs, outputs and constants as
// ellipses/notes, nodes as boxes labelled with their op (fused of3c ops
// highlighted), edges labelled with the value's name and type.
func FormatDOT(g *Graph) string { return FormatDOTWith(g, DOTOptions{}) }

// FormatDOTWith is FormatDOT with options.
func FormatDOTWith(g *Graph, opts DOTOptions) string {
	var sb strings.Builder
	sb.Grow(128 * (len(g.Nodes) + len(g.Inputs) + len(g.Consts)))
	sb.WriteString("digraph ")
	sb.WriteString(dotQuote(g.Name))
	sb.WriteString(" {\n  rankdir=TB;\n  node [shape=box, fontname=\"Helvetica\", fontsize=10];\n  edge [fontname=\"Helvetica\", fontsize=8];\n")

	// source maps a value to the DOT id of what defines it.
	source := map[*Value]string{}
	for i, v := range g.Inputs {
		if v == nil {
			continue
		}
		id := "in" + strconv.Itoa(i)
		source[v] = id
		dotNode(&sb, id, "%"+v.Name+"\n"+txtFormatType(v.Type), `shape=ellipse, style=filled, fillcolor="#d6e9ff"`)
	}
	if !opts.HideConsts {
		for i, v := range g.Consts {
			if v == nil {
				continue
			}
			id := "c" + strconv.Itoa(i)
			source[v] = id
			dotNode(&sb, id, "%"+v.Name+"\n"+txtFormatType(v.Type), `shape=note, fontsize=8, style=filled, fillcolor="#eeeeee"`)
		}
	}
	for i, n := range g.Nodes {
		if n == nil {
			continue
		}
		for _, o := range n.Outputs {
			if o != nil {
				source[o] = "n" + strconv.Itoa(i)
			}
		}
	}
	isConst := map[*Value]bool{}
	for _, c := range g.Consts {
		isConst[c] = true
	}
	undefined := 0
	// edge writes an edge from v's definition to the DOT node to; values
	// defined nowhere (an outer graph's, or dangling) get a dashed node.
	edge := func(v *Value, to string) {
		if v == nil || (opts.HideConsts && isConst[v]) {
			return
		}
		from, ok := source[v]
		if !ok {
			from = "u" + strconv.Itoa(undefined)
			undefined++
			source[v] = from
			dotNode(&sb, from, "%"+v.Name, "shape=ellipse, style=dashed")
		}
		sb.WriteString("  ")
		sb.WriteString(from)
		sb.WriteString(" -> ")
		sb.WriteString(to)
		sb.WriteString(" [label=")
		sb.WriteString(dotQuote("%" + v.Name + " " + txtFormatType(v.Type)))
		sb.WriteString("];\n")
	}
	for i, n := range g.Nodes {
		if n == nil {
			continue
		}
		id := "n" + strconv.Itoa(i)
		label := n.QualifiedOp()
		if n.Name != "" {
			label += "\n" + n.Name
		}
		for _, name := range n.AttrNames() {
			if n.Attrs[name].Kind == AttrGraph {
				label += "\n(" + name + ": nested graph)"
			}
		}
		style := ""
		if txtNormDomain(n.Domain) == FusedDomain {
			style = `style=filled, fillcolor="#ffd9a8"`
		}
		dotNode(&sb, id, label, style)
		for _, in := range n.Inputs {
			edge(in, id)
		}
	}
	for i, v := range g.Outputs {
		if v == nil {
			continue
		}
		id := "out" + strconv.Itoa(i)
		dotNode(&sb, id, "output %"+v.Name, `shape=ellipse, style=filled, fillcolor="#d9f2d0"`)
		edge(v, id)
	}
	sb.WriteString("}\n")
	return sb.String()
}

func dotNode(sb *strings.Builder, id, label, attrs string) {
	sb.WriteString("  ")
	sb.WriteString(id)
	sb.WriteString(" [label=")
	sb.WriteString(dotQuote(label))
	if attrs != "" {
		sb.WriteString(", ")
		sb.WriteString(attrs)
	}
	sb.WriteString("];\n")
}

// dotQuote writes s as a DOT string: quotes and backslashes escaped (a
// backslash would otherwise start a Graphviz escape like \l), newlines as \n.
func dotQuote(s string) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"', '\\':
			sb.WriteByte('\\')
			sb.WriteRune(r)
		case '\n':
			sb.WriteString(`\n`)
		case '\r':
		default:
			sb.WriteRune(r)
		}
	}
	sb.WriteByte('"')
	return sb.String()
}
