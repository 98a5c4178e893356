package graph

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// JSON form of a graph, for tools and `of3c inspect --format json`. Shapes
// are lists whose entries are numbers (static dims), strings (symbolic dims,
// and "?" for unknown), or null for unknown rank. Float attributes are
// written with the shortest text that reads back to the same float32; NaN
// and infinities, which JSON lacks, as the strings "nan", "inf", "-inf".

// JSONGraph is the JSON form of a graph.
type JSONGraph struct {
	Name      string            `json:"name"`
	Opsets    map[string]int64  `json:"opsets"` // "ai.onnx" for the default domain
	Meta      map[string]string `json:"meta,omitempty"`
	Inputs    []JSONValue       `json:"inputs"`
	Outputs   []JSONValue       `json:"outputs"`
	Constants []JSONConst       `json:"constants"`
	Nodes     []JSONNode        `json:"nodes"`
	// Values lists every value the graph defines (inputs, constants, node
	// outputs) with its type.
	Values []JSONValue `json:"values"`
}

// JSONValue is a value's name and type.
type JSONValue struct {
	Name  string `json:"name"`
	DType string `json:"dtype"`
	Shape []any  `json:"shape"`
}

// JSONConst summarizes a constant: its type, size and contents as the text
// form prints them (all values when small, else fill/random/checksum).
type JSONConst struct {
	JSONValue
	Elements int64  `json:"elements"`
	Bytes    int64  `json:"bytes"`
	Summary  string `json:"summary"`
}

// JSONNode is one node; omitted optional inputs and outputs are "".
type JSONNode struct {
	Name    string         `json:"name,omitempty"`
	Op      string         `json:"op"`
	Domain  string         `json:"domain"`
	Opset   int64          `json:"opset"`
	Inputs  []string       `json:"inputs"`
	Outputs []string       `json:"outputs"`
	Attrs   map[string]any `json:"attrs,omitempty"`
}

// ToJSON converts g to its JSON form.
func ToJSON(g *Graph) *JSONGraph {
	p := &txtPrinter{opts: FormatOptions{InlineMax: DefaultInlineMax}}
	return toJSON(g, p)
}

// FormatJSON returns g as indented JSON.
func FormatJSON(g *Graph) ([]byte, error) {
	return json.MarshalIndent(ToJSON(g), "", "  ")
}

// MarshalJSON makes encoding/json write a Graph in its JSON form.
func (g *Graph) MarshalJSON() ([]byte, error) { return json.Marshal(ToJSON(g)) }

func toJSON(g *Graph, p *txtPrinter) *JSONGraph {
	j := &JSONGraph{
		Name:      g.Name,
		Opsets:    map[string]int64{},
		Meta:      g.Meta,
		Inputs:    jsonValues(g.Inputs),
		Outputs:   jsonValues(g.Outputs),
		Constants: []JSONConst{},
		Nodes:     make([]JSONNode, 0, len(g.Nodes)),
	}
	for d, v := range g.Opsets {
		if d == DefaultDomain {
			d = "ai.onnx"
		}
		j.Opsets[d] = v
	}
	for _, c := range g.Consts {
		if c == nil {
			continue
		}
		jc := JSONConst{JSONValue: jsonValue(c)}
		if c.Const != nil {
			jc.Elements = c.Const.NumElements()
			jc.Bytes = int64(len(c.Const.Data))
		}
		jc.Summary = p.tensorText(c.Const)
		j.Constants = append(j.Constants, jc)
	}
	for _, n := range g.Nodes {
		if n == nil {
			continue
		}
		jn := JSONNode{Name: n.Name, Op: n.Op, Domain: txtNormDomain(n.Domain), Opset: n.Opset,
			Inputs: jsonNames(n.Inputs), Outputs: jsonNames(n.Outputs)}
		if len(n.Attrs) > 0 {
			jn.Attrs = make(map[string]any, len(n.Attrs))
			for k, a := range n.Attrs {
				jn.Attrs[k] = jsonAttr(a, p)
			}
		}
		j.Nodes = append(j.Nodes, jn)
	}
	j.Values = jsonValues(g.AllValues())
	return j
}

// tensorText is the constant body the text form prints.
func (p *txtPrinter) tensorText(t *Tensor) string {
	p.sb.Reset()
	p.tensorBody(t)
	return p.sb.String()
}

func jsonValues(vs []*Value) []JSONValue {
	out := make([]JSONValue, 0, len(vs))
	for _, v := range vs {
		if v != nil {
			out = append(out, jsonValue(v))
		}
	}
	return out
}

func jsonValue(v *Value) JSONValue {
	return JSONValue{Name: v.Name, DType: txtFormatDType(v.Type.DType), Shape: jsonShape(v.Type)}
}

func jsonShape(t Type) []any {
	if !t.Ranked {
		return nil
	}
	s := make([]any, len(t.Shape))
	for i, d := range t.Shape {
		switch {
		case d.Sym != "":
			s[i] = d.Sym
		case d.Val >= 0:
			s[i] = d.Val
		default:
			s[i] = "?"
		}
	}
	return s
}

func jsonNames(vs []*Value) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		if v != nil {
			out[i] = v.Name
		}
	}
	return out
}

func jsonFloat(f float32) any {
	switch {
	case math.IsNaN(float64(f)):
		return "nan"
	case math.IsInf(float64(f), 1):
		return "inf"
	case math.IsInf(float64(f), -1):
		return "-inf"
	}
	return json.Number(strconv.FormatFloat(float64(f), 'g', -1, 32))
}

func jsonAttr(a Attr, p *txtPrinter) any {
	switch a.Kind {
	case AttrInt:
		return a.Int
	case AttrFloat:
		return jsonFloat(a.Float)
	case AttrString:
		return a.Str
	case AttrInts:
		return append([]int64{}, a.Ints...)
	case AttrFloats:
		fs := make([]any, len(a.Floats))
		for i, f := range a.Floats {
			fs[i] = jsonFloat(f)
		}
		return fs
	case AttrStrings:
		return append([]string{}, a.Strings...)
	case AttrTensor:
		if a.Tensor == nil {
			return nil
		}
		t := a.Tensor.Type()
		return map[string]any{"dtype": txtFormatDType(t.DType), "shape": jsonShape(t), "summary": p.tensorText(a.Tensor)}
	case AttrGraph:
		if a.Graph == nil {
			return nil
		}
		// A nested graph gets its own printer state: tensorText reuses
		// the builder.
		return toJSON(a.Graph, &txtPrinter{opts: p.opts})
	}
	return map[string]any{"kind": int32(a.Kind)}
}

// Stats is the summary `of3c inspect --stats` prints. Nested graphs (bodies
// of control-flow ops) are not counted.
type Stats struct {
	Nodes      int            `json:"nodes"`
	OpCounts   map[string]int `json:"op_counts"` // by qualified op, e.g. "of3c.Attention"
	Inputs     []JSONValue    `json:"inputs"`
	Outputs    []JSONValue    `json:"outputs"`
	Params     int64          `json:"params"` // elements of all constants
	ParamBytes int64          `json:"param_bytes"`
	Constants  int            `json:"constants"`
}

// ComputeStats counts g's nodes by op and its constants' elements and bytes.
func ComputeStats(g *Graph) Stats {
	s := Stats{OpCounts: map[string]int{}, Inputs: jsonValues(g.Inputs), Outputs: jsonValues(g.Outputs)}
	for _, n := range g.Nodes {
		if n == nil {
			continue
		}
		s.Nodes++
		s.OpCounts[n.QualifiedOp()]++
	}
	for _, c := range g.Consts {
		if c == nil || c.Const == nil {
			continue
		}
		s.Constants++
		s.Params += c.Const.NumElements()
		s.ParamBytes += int64(len(c.Const.Data))
	}
	return s
}

// String prints the stats as text: totals, then op counts, most frequent
// first (ties by name).
func (s Stats) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "nodes: %d\nconstants: %d\nparams: %d (%d bytes)\n", s.Nodes, s.Constants, s.Params, s.ParamBytes)
	for _, io := range []struct {
		what string
		vs   []JSONValue
	}{{"input", s.Inputs}, {"output", s.Outputs}} {
		for _, v := range io.vs {
			fmt.Fprintf(&sb, "%s: %s\n", io.what, v)
		}
	}
	ops := make([]string, 0, len(s.OpCounts))
	for op := range s.OpCounts {
		ops = append(ops, op)
	}
	sort.Slice(ops, func(i, j int) bool {
		if a, b := s.OpCounts[ops[i]], s.OpCounts[ops[j]]; a != b {
			return a > b
		}
		return ops[i] < ops[j]
	})
	for _, op := range ops {
		fmt.Fprintf(&sb, "  %-28s %d\n", op, s.OpCounts[op])
	}
	return sb.String()
}

// String prints the value as the text form does: %name:dtype[dims].
func (v JSONValue) String() string {
	var sb strings.Builder
	sb.WriteByte('%')
	sb.WriteString(txtQuoteIfNeeded(v.Name, txtIsBareName))
	sb.WriteByte(':')
	sb.WriteString(v.DType)
	if v.Shape == nil {
		sb.WriteString("[*]")
		return sb.String()
	}
	sb.WriteByte('[')
	for i, d := range v.Shape {
		if i > 0 {
			sb.WriteByte(',')
		}
		switch d := d.(type) {
		case string:
			if d == "?" {
				sb.WriteString(d)
			} else {
				sb.WriteString(txtFormatDim(S(d)))
			}
		default: // int64, or float64 after a JSON round trip
			fmt.Fprint(&sb, d)
		}
	}
	sb.WriteByte(']')
	return sb.String()
}
