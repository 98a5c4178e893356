// Package graph is of3c's intermediate representation: a dataflow graph of
// ONNX-style nodes over typed values, in topological order.
//
// A Graph owns Values and Nodes. A Value is defined exactly once: by a graph
// input, by a constant (Const != nil, e.g. an initializer), or as an output of
// one Node (Producer). Nodes are kept in a slice in topological order; passes
// that rewrite the graph call Graph.Compact/TopoSort to restore the invariants
// and Verify to check them.
package graph

import (
	"fmt"
	"sort"
)

// DefaultDomain is the ONNX operator domain "ai.onnx", written "" in ONNX.
const DefaultDomain = ""

// FusedDomain is the domain of of3c's own fused ops (see docs/ops.md).
const FusedDomain = "of3c"

// Value is an edge of the graph: a tensor with a name and a static type.
type Value struct {
	Name string
	Type Type

	// Const holds the contents of a constant value (an initializer or a folded
	// result). A constant has no Producer.
	Const *Tensor

	// Producer is the node whose output this value is, nil for graph inputs
	// and constants.
	Producer *Node

	// ShapeValue, when non-nil, is what shape inference knows about the
	// contents of a small 1-D (or scalar) int64 value that holds dimensions,
	// e.g. the output of Shape(x) for x: f32[N,N,128] is [N,N,128]. It lets
	// Shape→Gather→Concat→Reshape chains resolve with symbolic dims.
	ShapeValue Shape

	// Doc is an optional free-text annotation (ONNX doc_string).
	Doc string
}

func (v *Value) String() string { return "%" + v.Name }

// IsConst reports whether v has known contents.
func (v *Value) IsConst() bool { return v != nil && v.Const != nil }

// AttrKind is the type of an attribute, numbered as ONNX's
// AttributeProto.AttributeType.
type AttrKind int32

const (
	AttrUndefined AttrKind = 0
	AttrFloat     AttrKind = 1
	AttrInt       AttrKind = 2
	AttrString    AttrKind = 3
	AttrTensor    AttrKind = 4
	AttrGraph     AttrKind = 5
	AttrFloats    AttrKind = 6
	AttrInts      AttrKind = 7
	AttrStrings   AttrKind = 8
)

func (k AttrKind) String() string {
	switch k {
	case AttrFloat:
		return "float"
	case AttrInt:
		return "int"
	case AttrString:
		return "string"
	case AttrTensor:
		return "tensor"
	case AttrGraph:
		return "graph"
	case AttrFloats:
		return "floats"
	case AttrInts:
		return "ints"
	case AttrStrings:
		return "strings"
	}
	return fmt.Sprintf("attr(%d)", int32(k))
}

// Attr is a typed node attribute. Only the field matching Kind is meaningful.
type Attr struct {
	Kind    AttrKind
	Float   float32
	Int     int64
	Str     string
	Tensor  *Tensor
	Graph   *Graph
	Floats  []float32
	Ints    []int64
	Strings []string
}

// Node is one operation.
type Node struct {
	Name   string
	Domain string // "" for ai.onnx, "of3c" for fused ops
	Op     string // op type, e.g. "MatMul"

	// Inputs may contain nil for an omitted optional input (ONNX's "").
	Inputs  []*Value
	Outputs []*Value
	Attrs   map[string]Attr

	// Opset is the version of Domain that the node was written against.
	Opset int64
}

// QualifiedOp is "Op" for ai.onnx and "domain.Op" otherwise (e.g. "of3c.Attention").
func (n *Node) QualifiedOp() string {
	if n.Domain == "" || n.Domain == "ai.onnx" {
		return n.Op
	}
	return n.Domain + "." + n.Op
}

// Input returns input i, or nil if it is absent or omitted.
func (n *Node) Input(i int) *Value {
	if i < 0 || i >= len(n.Inputs) {
		return nil
	}
	return n.Inputs[i]
}

// AttrInt returns an int attribute or def when absent.
func (n *Node) AttrInt(name string, def int64) int64 {
	if a, ok := n.Attrs[name]; ok && a.Kind == AttrInt {
		return a.Int
	}
	return def
}

// AttrFloat returns a float attribute or def when absent.
func (n *Node) AttrFloat(name string, def float32) float32 {
	if a, ok := n.Attrs[name]; ok && a.Kind == AttrFloat {
		return a.Float
	}
	return def
}

// AttrString returns a string attribute or def when absent.
func (n *Node) AttrString(name string, def string) string {
	if a, ok := n.Attrs[name]; ok && a.Kind == AttrString {
		return a.Str
	}
	return def
}

// AttrInts returns an ints attribute; ok is false when absent.
func (n *Node) AttrInts(name string) (vals []int64, ok bool) {
	a, ok := n.Attrs[name]
	if !ok || a.Kind != AttrInts {
		return nil, false
	}
	return a.Ints, true
}

// AttrFloats returns a floats attribute; ok is false when absent.
func (n *Node) AttrFloats(name string) (vals []float32, ok bool) {
	a, ok := n.Attrs[name]
	if !ok || a.Kind != AttrFloats {
		return nil, false
	}
	return a.Floats, true
}

// AttrTensor returns a tensor attribute or nil.
func (n *Node) AttrTensor(name string) *Tensor {
	if a, ok := n.Attrs[name]; ok && a.Kind == AttrTensor {
		return a.Tensor
	}
	return nil
}

// SetAttr sets an attribute, allocating the map on first use.
func (n *Node) SetAttr(name string, a Attr) {
	if n.Attrs == nil {
		n.Attrs = map[string]Attr{}
	}
	n.Attrs[name] = a
}

// AttrNames returns the attribute names in sorted order (for stable output).
func (n *Node) AttrNames() []string {
	names := make([]string, 0, len(n.Attrs))
	for k := range n.Attrs {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

func (n *Node) String() string {
	name := n.Name
	if name == "" && len(n.Outputs) > 0 && n.Outputs[0] != nil {
		name = "→" + n.Outputs[0].Name
	}
	return fmt.Sprintf("%s(%s)", n.QualifiedOp(), name)
}

// Graph is a model's computation.
type Graph struct {
	Name    string
	Inputs  []*Value // graph inputs (never constants)
	Outputs []*Value
	Nodes   []*Node // topological order

	// Consts lists constant values (initializers and folded constants) in a
	// stable order; each has Const != nil and no Producer.
	Consts []*Value

	// Opsets maps an operator domain ("" = ai.onnx) to the model's opset
	// version for it.
	Opsets map[string]int64

	// Meta holds model-level metadata worth keeping (producer, ir_version, ...).
	Meta map[string]string

	// ImportNotes says what the importer read differently from the file
	// (out-of-spec attributes with one meaning, repaired); the pass log
	// shows them as its "import" entry.
	ImportNotes []string

	names map[string]int // name → use count, for Unique names
}

// New returns an empty graph with the given ai.onnx opset.
func New(name string, opset int64) *Graph {
	return &Graph{Name: name, Opsets: map[string]int64{"": opset}}
}

// UniqueName returns base, or base_K, unused so far in this graph.
func (g *Graph) UniqueName(base string) string {
	if g.names == nil {
		g.names = map[string]int{}
		for _, v := range g.AllValues() {
			g.names[v.Name] = 1
		}
		for _, n := range g.Nodes {
			if n.Name != "" {
				g.names[n.Name] = 1
			}
		}
	}
	if base == "" {
		base = "v"
	}
	name := base
	for k := g.names[base]; g.names[name] > 0; k++ {
		name = fmt.Sprintf("%s_%d", base, k)
	}
	g.names[name] = 1
	g.names[base]++
	return name
}

// reserve records an externally chosen name so UniqueName never reuses it.
func (g *Graph) reserve(name string) {
	if g.names != nil && name != "" {
		g.names[name]++
	}
}

// AddInput adds a graph input.
func (g *Graph) AddInput(name string, t Type) *Value {
	g.reserve(name)
	v := &Value{Name: name, Type: t}
	g.Inputs = append(g.Inputs, v)
	return v
}

// AddConst adds a constant value.
func (g *Graph) AddConst(name string, t *Tensor) *Value {
	if name == "" {
		name = g.UniqueName("const")
	} else {
		g.reserve(name)
	}
	v := &Value{Name: name, Type: t.Type(), Const: t}
	g.Consts = append(g.Consts, v)
	return v
}

// AddNode appends a node with fresh output values of unknown type (shape
// inference fills them in) and returns it. Output names are made unique.
func (g *Graph) AddNode(domain, op string, inputs []*Value, outNames []string, attrs map[string]Attr) *Node {
	n := &Node{Domain: domain, Op: op, Inputs: inputs, Attrs: attrs, Opset: g.Opsets[domain]}
	for _, name := range outNames {
		out := &Value{Name: g.UniqueName(name), Producer: n}
		n.Outputs = append(n.Outputs, out)
	}
	g.Nodes = append(g.Nodes, n)
	return n
}

// AllValues returns every value of the graph (inputs, constants, node outputs)
// once, in definition order.
func (g *Graph) AllValues() []*Value {
	vals := make([]*Value, 0, len(g.Inputs)+len(g.Consts)+2*len(g.Nodes))
	vals = append(vals, g.Inputs...)
	vals = append(vals, g.Consts...)
	for _, n := range g.Nodes {
		for _, o := range n.Outputs {
			if o != nil {
				vals = append(vals, o)
			}
		}
	}
	return vals
}

// Uses maps each value to the nodes that read it (a node reading a value
// twice appears twice). Graph outputs are not nodes; see IsOutput.
func (g *Graph) Uses() map[*Value][]*Node {
	uses := make(map[*Value][]*Node)
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			if in != nil {
				uses[in] = append(uses[in], n)
			}
		}
	}
	return uses
}

// IsOutput reports whether v is a graph output.
func (g *Graph) IsOutput(v *Value) bool {
	for _, o := range g.Outputs {
		if o == v {
			return true
		}
	}
	return false
}

// ReplaceAllUses makes every node input and graph output that reads old read
// new instead.
func (g *Graph) ReplaceAllUses(old, new *Value) {
	for _, n := range g.Nodes {
		for i, in := range n.Inputs {
			if in == old {
				n.Inputs[i] = new
			}
		}
	}
	for i, o := range g.Outputs {
		if o == old {
			g.Outputs[i] = new
		}
	}
}

// RemoveDead drops nodes whose outputs are unused and constants nobody reads.
// It returns the number of nodes removed.
func (g *Graph) RemoveDead() int {
	live := map[*Value]bool{}
	for _, o := range g.Outputs {
		live[o] = true
	}
	keep := make([]bool, len(g.Nodes))
	for i := len(g.Nodes) - 1; i >= 0; i-- {
		n := g.Nodes[i]
		for _, o := range n.Outputs {
			if o != nil && live[o] {
				keep[i] = true
				break
			}
		}
		if keep[i] {
			for _, in := range n.Inputs {
				if in != nil {
					live[in] = true
				}
			}
		}
	}
	nodes := g.Nodes[:0]
	removed := 0
	for i, n := range g.Nodes {
		if keep[i] {
			nodes = append(nodes, n)
		} else {
			removed++
		}
	}
	for i := len(nodes); i < len(g.Nodes); i++ {
		g.Nodes[i] = nil
	}
	g.Nodes = nodes
	consts := g.Consts[:0]
	for _, c := range g.Consts {
		if live[c] {
			consts = append(consts, c)
		}
	}
	g.Consts = consts
	return removed
}

// TopoSort reorders Nodes so every node comes after the producers of its
// inputs, keeping the existing order where it is already valid. It fails on
// a cycle or on an input that nothing defines.
func (g *Graph) TopoSort() error {
	defined := map[*Value]bool{}
	for _, v := range g.Inputs {
		defined[v] = true
	}
	for _, v := range g.Consts {
		defined[v] = true
	}
	producer := map[*Value]*Node{}
	for _, n := range g.Nodes {
		for _, o := range n.Outputs {
			if o != nil {
				producer[o] = n
			}
		}
	}
	state := map[*Node]int{} // 0 new, 1 on stack, 2 done
	order := make([]*Node, 0, len(g.Nodes))
	var visit func(n *Node) error
	visit = func(n *Node) error {
		// Iterative deepening would avoid Go stack growth on 10^5-node
		// chains; Go stacks grow dynamically, so recursion is fine here.
		switch state[n] {
		case 1:
			return fmt.Errorf("graph has a cycle through %s", n)
		case 2:
			return nil
		}
		state[n] = 1
		for _, in := range n.Inputs {
			if in == nil || defined[in] {
				continue
			}
			p, ok := producer[in]
			if !ok {
				return fmt.Errorf("%s reads %s, which nothing defines", n, in)
			}
			if err := visit(p); err != nil {
				return err
			}
		}
		state[n] = 2
		order = append(order, n)
		return nil
	}
	for _, n := range g.Nodes {
		if err := visit(n); err != nil {
			return err
		}
	}
	g.Nodes = order
	return nil
}

// OpCounts counts nodes by qualified op type.
func (g *Graph) OpCounts() map[string]int {
	c := map[string]int{}
	for _, n := range g.Nodes {
		c[n.QualifiedOp()]++
	}
	return c
}

// NumParams is the total element count of all constants.
func (g *Graph) NumParams() int64 {
	var p int64
	for _, c := range g.Consts {
		p += c.Const.NumElements()
	}
	return p
}
