package graph

import (
	"fmt"
	"sort"
)

// InferFunc computes the output types of n from its input types, attributes
// and constant inputs. It returns one Type per output. When an output is a
// small int64 tensor of dimensions whose contents are known (possibly
// symbolically, e.g. Shape(x)), it also returns them in shapeValues (same
// length as the outputs, nil entries where unknown; shapeValues may be nil).
type InferFunc func(n *Node) (types []Type, shapeValues []Shape, err error)

// OpDef describes an op that of3c understands: its arity and its type/shape
// rule. The rules for every supported op live in infer_*.go.
type OpDef struct {
	Domain     string
	Op         string
	MinInputs  int
	MaxInputs  int // -1: variadic
	MinOutputs int
	MaxOutputs int // -1: variadic
	// SinceVersion is the oldest opset of Domain the rule is written for;
	// nodes with an older opset are refused (semantics changed).
	SinceVersion int64
	Infer        InferFunc
}

var opRegistry = map[string]*OpDef{}

func opKey(domain, op string) string {
	if domain == "ai.onnx" {
		domain = ""
	}
	if domain == "" {
		return op
	}
	return domain + "." + op
}

// RegisterOp adds an op definition; registering the same op twice panics
// (a programming error caught by any test run).
func RegisterOp(def OpDef) {
	k := opKey(def.Domain, def.Op)
	if _, dup := opRegistry[k]; dup {
		panic("graph: op registered twice: " + k)
	}
	d := def
	opRegistry[k] = &d
}

// LookupOp returns the definition of an op, or nil when unsupported.
func LookupOp(domain, op string) *OpDef { return opRegistry[opKey(domain, op)] }

// SupportedOps lists the qualified names of all registered ops, sorted.
func SupportedOps() []string {
	names := make([]string, 0, len(opRegistry))
	for k := range opRegistry {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// UnsupportedOpError names an op that of3c cannot handle and where it is.
type UnsupportedOpError struct {
	Domain string
	Op     string
	Opset  int64
	Node   string
	Reason string
}

func (e *UnsupportedOpError) Error() string {
	dom := e.Domain
	if dom == "" {
		dom = "ai.onnx"
	}
	msg := fmt.Sprintf("unsupported op %s (domain %s, opset %d) at node %q", e.Op, dom, e.Opset, e.Node)
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	return msg
}

// CheckSupported returns an *UnsupportedOpError if n's op is not registered
// or its opset predates the registered rule, or its arity is out of range.
func CheckSupported(n *Node) error {
	def := LookupOp(n.Domain, n.Op)
	if def == nil {
		return &UnsupportedOpError{Domain: n.Domain, Op: n.Op, Opset: n.Opset, Node: nodeLabel(n)}
	}
	if def.SinceVersion > 0 && n.Opset > 0 && n.Opset < def.SinceVersion {
		return &UnsupportedOpError{Domain: n.Domain, Op: n.Op, Opset: n.Opset, Node: nodeLabel(n),
			Reason: fmt.Sprintf("opset %d is older than the supported %d", n.Opset, def.SinceVersion)}
	}
	if len(n.Inputs) < def.MinInputs || (def.MaxInputs >= 0 && len(n.Inputs) > def.MaxInputs) {
		return fmt.Errorf("node %q (%s): %d inputs, want %d..%d", nodeLabel(n), n.QualifiedOp(), len(n.Inputs), def.MinInputs, def.MaxInputs)
	}
	if len(n.Outputs) < def.MinOutputs || (def.MaxOutputs >= 0 && len(n.Outputs) > def.MaxOutputs) {
		return fmt.Errorf("node %q (%s): %d outputs, want %d..%d", nodeLabel(n), n.QualifiedOp(), len(n.Outputs), def.MinOutputs, def.MaxOutputs)
	}
	return nil
}

func nodeLabel(n *Node) string {
	if n.Name != "" {
		return n.Name
	}
	if len(n.Outputs) > 0 && n.Outputs[0] != nil {
		return n.Outputs[0].Name
	}
	return "?"
}

// InferNode computes n's output types without changing the graph.
func InferNode(n *Node) ([]Type, []Shape, error) {
	if err := CheckSupported(n); err != nil {
		return nil, nil, err
	}
	def := LookupOp(n.Domain, n.Op)
	types, vals, err := def.Infer(n)
	if err != nil {
		return nil, nil, fmt.Errorf("node %q (%s): %w", nodeLabel(n), n.QualifiedOp(), err)
	}
	if len(types) != len(n.Outputs) {
		return nil, nil, fmt.Errorf("node %q (%s): rule gave %d output types for %d outputs", nodeLabel(n), n.QualifiedOp(), len(types), len(n.Outputs))
	}
	return types, vals, nil
}

// InferShapes runs InferNode over the graph in order and records the output
// types and shape values on the values. Graph input and constant types are
// taken as given. It stops at the first node it cannot type.
func InferShapes(g *Graph) error {
	for _, n := range g.Nodes {
		types, vals, err := InferNode(n)
		if err != nil {
			return err
		}
		for i, o := range n.Outputs {
			if o == nil {
				continue
			}
			o.Type = types[i]
			o.ShapeValue = nil
			if i < len(vals) {
				o.ShapeValue = vals[i]
			}
		}
	}
	return nil
}
