package graph

import (
	"fmt"
	"strings"
)

// MaxVerifyProblems is how many problems a VerifyError lists; the rest are
// only counted (one broken pass can produce thousands).
const MaxVerifyProblems = 20

// VerifyError lists what Verify found wrong, each problem naming the node or
// value involved.
type VerifyError struct {
	Graph    string
	Problems []string // the first MaxVerifyProblems
	Omitted  int      // problems found beyond those
}

func (e *VerifyError) Error() string {
	var sb strings.Builder
	total := len(e.Problems) + e.Omitted
	fmt.Fprintf(&sb, "graph %q: %d problem", e.Graph, total)
	if total != 1 {
		sb.WriteByte('s')
	}
	for _, p := range e.Problems {
		sb.WriteString("\n  ")
		sb.WriteString(p)
	}
	if e.Omitted > 0 {
		fmt.Fprintf(&sb, "\n  ... and %d more", e.Omitted)
	}
	return sb.String()
}

// Verify checks the invariants every pass must keep, and returns a
// *VerifyError listing all problems found (the first MaxVerifyProblems):
//   - structure: nodes in topological order (every use after its
//     definition; a cycle is reported as such), every value defined once,
//     value names unique, node names unique when set, no input that nothing
//     defines, graph outputs defined, Producer links right;
//   - constants: Const set, data matching its shape, type equal to the data's;
//   - ops: every op supported at its opset (CheckSupported), and each node's
//     recorded output types compatible with its shape rule (InferNode): a
//     dtype, rank or dim known on both sides must agree; a side that does not
//     know it (unknown dim, unranked, undefined dtype) is no contradiction.
//
// Nested graphs (attributes of kind graph) are checked too, seeing the
// values of the enclosing graphs that are defined before their node.
func Verify(g *Graph) error { return verify(g, true) }

// VerifyStructure runs only the structural and constant checks of Verify,
// for graphs that may hold ops of3c does not support (e.g. to print them).
func VerifyStructure(g *Graph) error { return verify(g, false) }

func verify(g *Graph, ops bool) error {
	if g == nil {
		return &VerifyError{Problems: []string{"nil graph"}}
	}
	v := &verifier{err: &VerifyError{Graph: g.Name}, ops: ops}
	v.graph(g, "", nil)
	if len(v.err.Problems) == 0 {
		return nil
	}
	return v.err
}

type verifier struct {
	err *VerifyError
	ops bool
}

func (v *verifier) add(prefix, format string, args ...any) {
	if len(v.err.Problems) >= MaxVerifyProblems {
		v.err.Omitted++
		return
	}
	v.err.Problems = append(v.err.Problems, prefix+fmt.Sprintf(format, args...))
}

// verifyScope is what a graph's nodes may read: its own values defined so
// far, and those of the enclosing graphs visible at the nested graph's node.
type verifyScope struct {
	defined map[*Value]bool
	outer   *verifyScope
}

func (s *verifyScope) has(val *Value) bool {
	for ; s != nil; s = s.outer {
		if s.defined[val] {
			return true
		}
	}
	return false
}

func nodeDesc(n *Node) string {
	return fmt.Sprintf("node %q (%s)", nodeLabel(n), n.QualifiedOp())
}

func (v *verifier) graph(g *Graph, prefix string, outer *verifyScope) {
	scope := &verifyScope{defined: map[*Value]bool{}, outer: outer}
	byName := map[string]*Value{}
	// define records a definition of val, reporting double definitions and
	// name clashes.
	define := func(val *Value, where string) {
		if scope.defined[val] {
			v.add(prefix, "%%%s is defined more than once (again %s)", val.Name, where)
			return
		}
		scope.defined[val] = true
		if val.Name == "" {
			v.add(prefix, "a value %s has no name", where)
			return
		}
		if other, dup := byName[val.Name]; dup && other != val {
			v.add(prefix, "two values are named %%%s (the second %s)", val.Name, where)
			return
		}
		byName[val.Name] = val
	}

	for i, in := range g.Inputs {
		switch {
		case in == nil:
			v.add(prefix, "graph input %d is nil", i)
			continue
		case in.Const != nil:
			v.add(prefix, "graph input %%%s has constant data (constants belong in Consts)", in.Name)
		case in.Producer != nil:
			v.add(prefix, "graph input %%%s has a producer %s", in.Name, nodeDesc(in.Producer))
		}
		define(in, "as a graph input")
	}
	for i, c := range g.Consts {
		if c == nil {
			v.add(prefix, "constant %d is nil", i)
			continue
		}
		v.checkConst(prefix, c)
		define(c, "as a constant")
	}

	// Where each node output is defined, to tell a use before definition
	// (or a cycle) from a value that nothing defines.
	laterDef := map[*Value]*Node{}
	for _, n := range g.Nodes {
		if n == nil {
			continue
		}
		for _, o := range n.Outputs {
			if o != nil {
				if _, ok := laterDef[o]; !ok {
					laterDef[o] = n
				}
			}
		}
	}

	nodeNames := map[string]bool{}
	// A use before definition may come from a cycle; look for one once (the
	// search covers the whole graph) and report it in place of the first
	// such use.
	cycleSearched := false
	for i, n := range g.Nodes {
		if n == nil {
			v.add(prefix, "node %d is nil", i)
			continue
		}
		if n.Op == "" {
			v.add(prefix, "node %d (%q) has no op type", i, n.Name)
		}
		if n.Name != "" {
			if nodeNames[n.Name] {
				v.add(prefix, "two nodes are named %q", n.Name)
			}
			nodeNames[n.Name] = true
		}
		inputsOK := true
		for j, in := range n.Inputs {
			if in == nil || scope.has(in) {
				continue
			}
			inputsOK = false
			if p, ok := laterDef[in]; ok {
				if !cycleSearched {
					cycleSearched = true
					if cyc := findCycle(g); cyc != "" {
						v.add(prefix, "cycle: %s", cyc)
						continue
					}
				}
				v.add(prefix, "%s input %d reads %%%s before %s defines it", nodeDesc(n), j, in.Name, nodeDesc(p))
			} else if in.Const != nil {
				v.add(prefix, "%s input %d reads constant %%%s, which is not in the graph's Consts", nodeDesc(n), j, in.Name)
			} else {
				v.add(prefix, "%s input %d reads %%%s, which nothing defines (dangling)", nodeDesc(n), j, in.Name)
			}
		}
		for j, o := range n.Outputs {
			if o == nil {
				continue
			}
			if o.Producer != n {
				v.add(prefix, "%s output %d %%%s has Producer %v", nodeDesc(n), j, o.Name, o.Producer)
			}
			if o.Const != nil {
				v.add(prefix, "%s output %%%s has constant data", nodeDesc(n), o.Name)
			}
			define(o, "by "+nodeDesc(n))
		}
		for _, name := range n.AttrNames() {
			a := n.Attrs[name]
			switch {
			case a.Kind == AttrGraph && a.Graph == nil:
				v.add(prefix, "%s attribute %s is a nil graph", nodeDesc(n), name)
			case a.Kind == AttrGraph:
				v.graph(a.Graph, prefix+fmt.Sprintf("%s attribute %s: ", nodeDesc(n), name), scope)
			case a.Kind == AttrTensor && a.Tensor == nil:
				v.add(prefix, "%s attribute %s is a nil tensor", nodeDesc(n), name)
			case a.Kind == AttrTensor:
				if err := a.Tensor.Validate(); err != nil {
					v.add(prefix, "%s attribute %s: %v", nodeDesc(n), name, err)
				}
			}
		}
		if v.ops && inputsOK {
			v.checkOp(prefix, n)
		}
	}
	for i, o := range g.Outputs {
		switch {
		case o == nil:
			v.add(prefix, "graph output %d is nil", i)
		case !scope.has(o):
			v.add(prefix, "graph output %%%s is not defined in the graph", o.Name)
		}
	}
}

func (v *verifier) checkConst(prefix string, c *Value) {
	if c.Const == nil {
		v.add(prefix, "constant %%%s has no data (Const is nil)", c.Name)
		return
	}
	if c.Producer != nil {
		v.add(prefix, "constant %%%s has a producer %s", c.Name, nodeDesc(c.Producer))
	}
	if err := c.Const.Validate(); err != nil {
		v.add(prefix, "constant %%%s: %v", c.Name, err)
		return
	}
	if want := c.Const.Type(); !c.Type.Equal(want) {
		v.add(prefix, "constant %%%s has type %s but its data is %s", c.Name, txtFormatType(c.Type), txtFormatType(want))
	}
}

// checkOp checks that n's op is supported and that its recorded output types
// agree with its shape rule.
func (v *verifier) checkOp(prefix string, n *Node) {
	if err := CheckSupported(n); err != nil {
		v.add(prefix, "%v", err)
		return
	}
	types, err := safeInfer(n)
	if err != nil {
		v.add(prefix, "%v", err)
		return
	}
	for i, o := range n.Outputs {
		if o == nil || i >= len(types) {
			continue
		}
		if why := typeConflict(o.Type, types[i]); why != "" {
			v.add(prefix, "%s output %%%s is recorded as %s, but the rule gives %s (%s)",
				nodeDesc(n), o.Name, txtFormatType(o.Type), txtFormatType(types[i]), why)
		}
	}
}

// safeInfer runs the node's shape rule, turning a panic in the rule into an
// error so that the verifier reports it instead of crashing the caller.
func safeInfer(n *Node) (types []Type, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: shape rule panicked: %v", nodeDesc(n), r)
		}
	}()
	types, _, err = InferNode(n)
	return types, err
}

// typeConflict says why recorded and inferred cannot describe the same
// tensor, or "" when they agree wherever both know something.
func typeConflict(recorded, inferred Type) string {
	if recorded.DType != Undefined && inferred.DType != Undefined && recorded.DType != inferred.DType {
		return "dtype differs"
	}
	if !recorded.Ranked || !inferred.Ranked {
		return ""
	}
	if len(recorded.Shape) != len(inferred.Shape) {
		return "rank differs"
	}
	for i := range recorded.Shape {
		r, f := recorded.Shape[i], inferred.Shape[i]
		if r.IsUnknown() || f.IsUnknown() || r.Equal(f) {
			continue
		}
		return fmt.Sprintf("dim %d differs", i)
	}
	return ""
}

// findCycle looks for a cycle in g's dataflow and describes it as a chain of
// nodes in dataflow order, first node repeated at the end; "" when acyclic.
func findCycle(g *Graph) string {
	producer := map[*Value]*Node{}
	for _, n := range g.Nodes {
		if n == nil {
			continue
		}
		for _, o := range n.Outputs {
			if o != nil {
				producer[o] = n
			}
		}
	}
	const (
		unseen = iota
		onStack
		done
	)
	state := map[*Node]int{}
	var stack []*Node
	var found []*Node
	var visit func(n *Node) bool
	visit = func(n *Node) bool {
		state[n] = onStack
		stack = append(stack, n)
		for _, in := range n.Inputs {
			p := producer[in]
			if in == nil || p == nil {
				continue
			}
			switch state[p] {
			case onStack:
				for i, s := range stack {
					if s == p {
						found = append([]*Node{}, stack[i:]...)
						return true
					}
				}
			case unseen:
				if visit(p) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = done
		return false
	}
	hit := false
	for _, n := range g.Nodes {
		if n != nil && state[n] == unseen && visit(n) {
			hit = true
			break
		}
	}
	if !hit {
		return ""
	}
	// found[k+1] reads an output of found[k]... in reverse: found[k] reads
	// found[k+1]'s output. Print in dataflow order.
	parts := make([]string, 0, len(found)+1)
	for i := len(found) - 1; i >= 0; i-- {
		parts = append(parts, nodeDesc(found[i]))
	}
	parts = append(parts, nodeDesc(found[len(found)-1]))
	return strings.Join(parts, " -> ")
}
