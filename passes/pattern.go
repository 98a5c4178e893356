package passes

import (
	"fmt"
	"math"
	"strings"

	"github.com/of3c/of3c/graph"
)

// Pattern is a declarative description of the computation that produces a
// value, matched against the graph by a Matcher. Patterns are built with Op,
// Any and Const and refined with methods; they are immutable once built and
// are meant to be package-level data, e.g.
//
//	silu := Op("Mul", Any("a"), Op("Sigmoid", Any("a")))
//
// matches a·sigmoid(a) in either operand order (Mul is commutative) and binds
// "a" to the one value both operands read.
type Pattern struct {
	ops     []string // qualified op alternatives; empty for Any/Const
	args    []*Pattern
	capture string // binds the matched value (and node) under this name

	isConst   bool
	constPred func(*graph.Tensor) bool
	constDesc string

	oneUse   bool
	optional bool
	where    []nodeCheck
	variadic bool // args[0] is matched against every input of the node

	alts []*Pattern // OneOf: the first alternative that matches

	notConst bool // the value must not be a constant

	scaleName string // Scaled: binds the product of the peeled scalar factors

	addTree  bool     // AddTree: leaves of a tree of single-use Adds
	listName string   // AddTree: binds the other leaves, in order
	special  *Pattern // AddTree: at most one leaf matching this (optional)
}

type nodeCheck struct {
	desc string
	fn   func(*graph.Node) bool
}

// commutative ops get their two operands tried in both orders.
var commutative = map[string]bool{"Add": true, "Mul": true, "Max": true, "Min": true, "Sum": true, "And": true, "Or": true, "Equal": true}

// Op matches a node whose qualified op is one of the "|"-separated names
// (e.g. "Mul|Div") and whose inputs match args in order (both orders for a
// commutative op with two inputs). A node with more inputs than args matches
// only when the extra inputs are omitted; use Any for inputs to ignore.
func Op(ops string, args ...*Pattern) *Pattern {
	return &Pattern{ops: strings.Split(ops, "|"), args: args}
}

// Any matches any value and binds it to name ("" binds nothing). A name
// bound twice in one pattern must bind the same value both times.
func Any(name string) *Pattern { return &Pattern{capture: name} }

// OneOf matches the first of the alternatives that matches (backtracking
// into the next when the rest of the pattern fails).
func OneOf(alts ...*Pattern) *Pattern { return &Pattern{alts: alts} }

// Const matches a constant value satisfying pred (nil: any constant); desc
// names the condition in explanations.
func Const(name, desc string, pred func(*graph.Tensor) bool) *Pattern {
	return &Pattern{capture: name, isConst: true, constPred: pred, constDesc: desc}
}

// ScalarConst matches a constant with exactly one element.
func ScalarConst(name string) *Pattern {
	return Const(name, "a one-element constant", func(t *graph.Tensor) bool { return t.NumElements() == 1 })
}

// ConstNear matches a one-element float or int constant within tol of want.
func ConstNear(name string, want, tol float64) *Pattern {
	return Const(name, fmt.Sprintf("the constant %g", want), func(t *graph.Tensor) bool {
		x, ok := scalarValue(t)
		return ok && math.Abs(x-want) <= tol*math.Max(1, math.Abs(want))
	})
}

// Scaled matches p under any number of multiplications and divisions by
// one-element constants that keep the shape and type (x·c, c·x, x/c), and
// binds the product of the factors under name (1 when there are none; read
// it with Match.Scalar). The scaling nodes are covered by the match. Factors
// are peeled greedily: a scaled value is never matched as p itself.
func Scaled(name string, p *Pattern) *Pattern {
	return &Pattern{scaleName: name, args: []*Pattern{p}}
}

// AddTree matches a sum: the leaves of a tree of Add nodes (the root's Add
// may have any readers, inner ones exactly one). At most one leaf may match
// special (the first that does, in leaf order; none is allowed); the other
// leaves, in order, are bound as a list under name (Match.List). A value that
// is not an Add is a tree of one leaf.
func AddTree(name string, special *Pattern) *Pattern {
	return &Pattern{addTree: true, listName: name, special: special}
}

func (p *Pattern) clone() *Pattern {
	q := *p
	q.where = append([]nodeCheck(nil), p.where...)
	return &q
}

// As binds the matched value (and its producer) to name.
func (p *Pattern) As(name string) *Pattern { q := p.clone(); q.capture = name; return q }

// OneUse requires the matched value to have exactly one reader and not be a
// graph output: a fusion that absorbs the node must not leave others
// recomputing or holding it.
func (p *Pattern) OneUse() *Pattern { q := p.clone(); q.oneUse = true; return q }

// Optional lets the node be absent: the value may instead match the
// pattern's first argument directly (e.g. an optional Cast).
func (p *Pattern) Optional() *Pattern { q := p.clone(); q.optional = true; return q }

// Where adds a condition on the matched node, named desc in explanations.
func (p *Pattern) Where(desc string, fn func(*graph.Node) bool) *Pattern {
	q := p.clone()
	q.where = append(q.where, nodeCheck{desc, fn})
	return q
}

// NotConst requires the matched value not to be a constant (q and k of an
// attention, not a projection's weight).
func (p *Pattern) NotConst() *Pattern { q := p.clone(); q.notConst = true; return q }

// Variadic makes the single argument pattern match every input of the node
// (e.g. Concat of anything), instead of input 0 only.
func (p *Pattern) Variadic() *Pattern { q := p.clone(); q.variadic = true; return q }

// String renders the pattern in an s-expression form for explanations.
func (p *Pattern) String() string {
	var b strings.Builder
	p.write(&b)
	return b.String()
}

func (p *Pattern) write(b *strings.Builder) {
	switch {
	case p.scaleName != "":
		b.WriteString("(scaled:" + p.scaleName + " ")
		p.args[0].write(b)
		b.WriteString(")")
		return
	case p.addTree:
		b.WriteString("(addtree:" + p.listName)
		if p.special != nil {
			b.WriteString(" ")
			p.special.write(b)
		}
		b.WriteString(")")
		return
	case len(p.alts) > 0:
		b.WriteString("(oneof")
		for _, a := range p.alts {
			b.WriteString(" ")
			a.write(b)
		}
		b.WriteString(")")
		return
	case p.isConst:
		b.WriteString("const")
		if p.capture != "" {
			b.WriteString(":" + p.capture)
		}
		return
	case len(p.ops) == 0:
		if p.capture == "" {
			b.WriteString("_")
		} else {
			b.WriteString(p.capture)
		}
		return
	}
	b.WriteString("(" + strings.Join(p.ops, "|"))
	if p.optional {
		b.WriteString("?")
	}
	if p.capture != "" {
		b.WriteString(":" + p.capture)
	}
	for _, a := range p.args {
		b.WriteString(" ")
		a.write(b)
	}
	if p.variadic {
		b.WriteString("…")
	}
	b.WriteString(")")
}

// Match is a successful match: captured values and the nodes that produced
// them, plus every node the pattern covered (root first).
type Match struct {
	Values  map[string]*graph.Value
	Nodes   map[string]*graph.Node
	All     []*graph.Node
	Lists   map[string][]*graph.Value // AddTree's other leaves
	Scalars map[string]float64        // Scaled's factors
}

// List returns the values an AddTree bound under name, in leaf order.
func (m *Match) List(name string) []*graph.Value { return m.Lists[name] }

// Scalar returns the factor a Scaled bound under name (1 when absent).
func (m *Match) Scalar(name string) float64 {
	if f, ok := m.Scalars[name]; ok {
		return f
	}
	return 1
}

// Value returns a captured value (nil when absent, e.g. in a skipped optional).
func (m *Match) Value(name string) *graph.Value { return m.Values[name] }

// Node returns the producer of a captured value, nil when it has none.
func (m *Match) Node(name string) *graph.Node { return m.Nodes[name] }

// Failure records why the deepest attempt at a match stopped: how many
// pattern nodes matched before it, where in the pattern, and the condition.
type Failure struct {
	Matched int    `json:"matched"`
	At      string `json:"at"`     // the value the failing sub-pattern was tried on
	Want    string `json:"want"`   // the sub-pattern
	Reason  string `json:"reason"` // the condition that failed
}

func (f Failure) String() string {
	return fmt.Sprintf("after %d matched nodes, %s against %s: %s", f.Matched, f.Want, f.At, f.Reason)
}

// Matcher matches patterns against one graph. It caches the use lists, so
// call Refresh after changing the graph.
type Matcher struct {
	g    *graph.Graph
	uses map[*graph.Value][]*graph.Node
	outs map[*graph.Value]bool

	best    Failure // deepest failure of the last Match
	hasBest bool
}

// NewMatcher prepares a matcher for g.
func NewMatcher(g *graph.Graph) *Matcher {
	m := &Matcher{g: g}
	m.Refresh()
	return m
}

// Refresh recomputes use lists after the graph changed.
func (m *Matcher) Refresh() {
	m.uses = usesWithNested(m.g)
	m.outs = map[*graph.Value]bool{}
	for _, o := range m.g.Outputs {
		m.outs[o] = true
	}
}

// Uses returns the nodes reading v.
func (m *Matcher) Uses(v *graph.Value) []*graph.Node { return m.uses[v] }

// SingleUse reports whether v has exactly one reader and is not a graph output.
func (m *Matcher) SingleUse(v *graph.Value) bool {
	return len(m.uses[v]) == 1 && !m.outs[v]
}

// LastFailure is why the last unsuccessful Match stopped, with ok false when
// it never got past the root (nothing worth explaining).
func (m *Matcher) LastFailure() (Failure, bool) { return m.best, m.hasBest && m.best.Matched > 0 }

// bindings is a persistent list, so backtracking is free.
type bindings struct {
	name   string
	val    *graph.Value
	node   *graph.Node // a matched node (name may be "")
	list   []*graph.Value
	scalar float64
	kind   int // 0 value, 1 list, 2 scalar
	next   *bindings
	count  int // matched nodes in this list
}

func (b *bindings) lookup(name string) (*graph.Value, bool) {
	for ; b != nil; b = b.next {
		if b.kind == 0 && b.name == name && b.val != nil {
			return b.val, true
		}
	}
	return nil, false
}

func (b *bindings) nodes() int {
	if b == nil {
		return 0
	}
	return b.count
}

func (b *bindings) pushList(name string, l []*graph.Value) *bindings {
	return &bindings{name: name, list: l, kind: 1, next: b, count: b.nodes()}
}

func (b *bindings) pushScalar(name string, f float64) *bindings {
	return &bindings{name: name, scalar: f, kind: 2, next: b, count: b.nodes()}
}

func (b *bindings) push(name string, v *graph.Value, n *graph.Node) *bindings {
	c := b.nodes()
	if n != nil {
		c++
	}
	return &bindings{name: name, val: v, node: n, next: b, count: c}
}

// Match tries p against v.
func (m *Matcher) Match(p *Pattern, v *graph.Value) (*Match, bool) {
	m.hasBest = false
	m.best = Failure{}
	var res *bindings
	ok := m.match(p, v, nil, func(b *bindings) bool { res = b; return true })
	if !ok {
		return nil, false
	}
	out := &Match{Values: map[string]*graph.Value{}, Nodes: map[string]*graph.Node{},
		Lists: map[string][]*graph.Value{}, Scalars: map[string]float64{}}
	seen := map[*graph.Node]bool{}
	var all []*graph.Node
	for b := res; b != nil; b = b.next {
		if b.kind == 1 {
			if _, dup := out.Lists[b.name]; !dup {
				out.Lists[b.name] = b.list
			}
			continue
		}
		if b.kind == 2 {
			if _, dup := out.Scalars[b.name]; !dup {
				out.Scalars[b.name] = b.scalar
			}
			continue
		}
		if b.name != "" {
			if _, dup := out.Values[b.name]; !dup {
				out.Values[b.name] = b.val
				if b.val != nil && b.val.Producer != nil {
					out.Nodes[b.name] = b.val.Producer
				}
			}
		}
		if b.node != nil && !seen[b.node] {
			seen[b.node] = true
			all = append(all, b.node)
		}
	}
	// The list is newest first; the root was matched first.
	for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 {
		all[i], all[j] = all[j], all[i]
	}
	out.All = all
	return out, true
}

// MatchNode tries p against n's first output.
func (m *Matcher) MatchNode(p *Pattern, n *graph.Node) (*Match, bool) {
	if len(n.Outputs) == 0 || n.Outputs[0] == nil {
		return nil, false
	}
	return m.Match(p, n.Outputs[0])
}

func (m *Matcher) fail(b *bindings, p *Pattern, v *graph.Value, reason string) bool {
	depth := b.nodes()
	if !m.hasBest || depth > m.best.Matched {
		at := "<omitted>"
		if v != nil {
			at = v.String()
			if v.Producer != nil {
				at = v.Producer.QualifiedOp() + " → " + at
			}
		}
		m.best = Failure{Matched: depth, At: at, Want: p.String(), Reason: reason}
		m.hasBest = true
	}
	return false
}

func (m *Matcher) bind(p *Pattern, v *graph.Value, b *bindings) (*bindings, bool) {
	if p.capture == "" {
		return b, true
	}
	if prev, ok := b.lookup(p.capture); ok {
		return b, prev == v
	}
	return b.push(p.capture, v, nil), true
}

// match calls k with the extended bindings for each way p matches v, and
// returns true as soon as some k accepts (backtracking otherwise).
func (m *Matcher) match(p *Pattern, v *graph.Value, b *bindings, k func(*bindings) bool) bool {
	if v == nil {
		return m.fail(b, p, v, "input omitted")
	}
	if p.notConst && v.IsConst() {
		return m.fail(b, p, v, "a constant")
	}
	if p.scaleName != "" {
		return m.matchScaled(p, v, b, 1, k)
	}
	if p.addTree {
		return m.matchAddTree(p, v, b, k)
	}
	if len(p.alts) > 0 {
		for _, a := range p.alts {
			ok := m.match(a, v, b, func(nb *bindings) bool {
				if p.capture != "" {
					if prev, ok := nb.lookup(p.capture); ok && prev != v {
						return false
					}
					nb = nb.push(p.capture, v, nil)
				}
				return k(nb)
			})
			if ok {
				return true
			}
		}
		return false
	}
	if p.isConst {
		if !v.IsConst() {
			return m.fail(b, p, v, "not a constant")
		}
		if p.constPred != nil && !p.constPred(v.Const) {
			return m.fail(b, p, v, "constant is not "+p.constDesc)
		}
		nb, ok := m.bind(p, v, b)
		if !ok {
			return m.fail(b, p, v, "differs from the "+p.capture+" bound earlier")
		}
		return k(nb)
	}
	if len(p.ops) == 0 {
		nb, ok := m.bind(p, v, b)
		if !ok {
			return m.fail(b, p, v, "differs from the "+p.capture+" bound earlier")
		}
		return k(nb)
	}
	if m.matchNode(p, v, b, k) {
		return true
	}
	if p.optional && len(p.args) > 0 {
		// The node is absent: the value itself stands for its first operand.
		return m.match(p.args[0], v, b, func(nb *bindings) bool {
			if p.capture != "" {
				if prev, ok := nb.lookup(p.capture); ok && prev != v {
					return false
				}
				nb = nb.push(p.capture, v, nil)
			}
			return k(nb)
		})
	}
	return false
}

// matchScaled peels scalar factors off v, then matches p.args[0].
func (m *Matcher) matchScaled(p *Pattern, v *graph.Value, b *bindings, f float64, k func(*bindings) bool) bool {
	if n := v.Producer; n != nil && n.Domain == graph.DefaultDomain && len(n.Inputs) == 2 && len(n.Outputs) == 1 && n.Outputs[0] == v {
		switch n.Op {
		case "Mul":
			for ci := 1; ci >= 0; ci-- {
				if c, ok := pureScalarOperand(n, ci); ok {
					return m.matchScaled(p, n.Inputs[1-ci], b.push("", nil, n), f*c, k)
				}
			}
		case "Div":
			if c, ok := pureScalarOperand(n, 1); ok && c != 0 {
				return m.matchScaled(p, n.Inputs[0], b.push("", nil, n), f/c, k)
			}
		}
	}
	return m.match(p.args[0], v, b, func(nb *bindings) bool {
		return k(nb.pushScalar(p.scaleName, f))
	})
}

// matchAddTree collects the leaves of the Add tree at v and tries special on
// each in turn (then none), binding the rest as a list.
func (m *Matcher) matchAddTree(p *Pattern, v *graph.Value, b *bindings, k func(*bindings) bool) bool {
	var leaves []*graph.Value
	var walk func(x *graph.Value, root bool)
	walk = func(x *graph.Value, root bool) {
		n := x.Producer
		if n == nil || n.Op != "Add" || n.Domain != graph.DefaultDomain || len(n.Inputs) != 2 ||
			n.Inputs[0] == nil || n.Inputs[1] == nil || (!root && !m.SingleUse(x)) {
			leaves = append(leaves, x)
			return
		}
		b = b.push("", nil, n)
		walk(n.Inputs[0], false)
		walk(n.Inputs[1], false)
	}
	walk(v, true)
	others := func(skip int) []*graph.Value {
		var out []*graph.Value
		for i, l := range leaves {
			if i != skip {
				out = append(out, l)
			}
		}
		return out
	}
	if p.special != nil {
		for i, leaf := range leaves {
			rest := others(i)
			if m.match(p.special, leaf, b, func(nb *bindings) bool { return k(nb.pushList(p.listName, rest)) }) {
				return true
			}
		}
	}
	return k(b.pushList(p.listName, others(-1)))
}

func (m *Matcher) matchNode(p *Pattern, v *graph.Value, b *bindings, k func(*bindings) bool) bool {
	n := v.Producer
	if n == nil {
		what := "a graph input"
		if v.IsConst() {
			what = "a constant"
		}
		return m.fail(b, p, v, what+", not a node")
	}
	op := n.QualifiedOp()
	found := false
	for _, o := range p.ops {
		if o == op {
			found = true
			break
		}
	}
	if !found {
		return m.fail(b, p, v, "op is "+op)
	}
	if len(n.Outputs) == 0 || n.Outputs[0] != v {
		return m.fail(b, p, v, "not the node's first output")
	}
	if p.oneUse && !m.SingleUse(v) {
		return m.fail(b, p, v, fmt.Sprintf("has %d readers (graph output: %v), the fusion needs exactly one", len(m.uses[v]), m.outs[v]))
	}
	for _, c := range p.where {
		if !c.fn(n) {
			return m.fail(b, p, v, c.desc+" does not hold")
		}
	}
	nb, ok := m.bind(p, v, b)
	if !ok {
		return m.fail(b, p, v, "differs from the "+p.capture+" bound earlier")
	}
	nb = nb.push("", nil, n)

	if p.variadic {
		if len(p.args) != 1 {
			return m.fail(b, p, v, "variadic pattern needs exactly one argument pattern")
		}
		var each func(i int, bb *bindings) bool
		each = func(i int, bb *bindings) bool {
			if i == len(n.Inputs) {
				return k(bb)
			}
			return m.match(p.args[0], n.Inputs[i], bb, func(nb2 *bindings) bool { return each(i+1, nb2) })
		}
		return each(0, nb)
	}
	if len(n.Inputs) < len(p.args) {
		return m.fail(b, p, v, fmt.Sprintf("has %d inputs, the pattern %d", len(n.Inputs), len(p.args)))
	}
	for i := len(p.args); i < len(n.Inputs); i++ {
		if n.Inputs[i] != nil {
			return m.fail(b, p, v, fmt.Sprintf("has input %d, which the pattern does not allow", i))
		}
	}
	orders := [][]int{identityOrder(len(p.args))}
	if commutative[n.Op] && n.Domain == graph.DefaultDomain && len(p.args) == 2 {
		orders = append(orders, []int{1, 0})
	}
	for _, ord := range orders {
		if m.matchArgs(p.args, n.Inputs, ord, 0, nb, k) {
			return true
		}
	}
	return false
}

func identityOrder(n int) []int {
	o := make([]int, n)
	for i := range o {
		o[i] = i
	}
	return o
}

func (m *Matcher) matchArgs(args []*Pattern, inputs []*graph.Value, ord []int, i int, b *bindings, k func(*bindings) bool) bool {
	if i == len(args) {
		return k(b)
	}
	return m.match(args[i], inputs[ord[i]], b, func(nb *bindings) bool {
		return m.matchArgs(args, inputs, ord, i+1, nb, k)
	})
}

// Closed reports whether the match can be replaced as a whole: every matched
// node but the root has readers only among the matched nodes and produces no
// graph output. It returns the first value that escapes otherwise.
func (m *Matcher) Closed(mt *Match) (escape *graph.Value, ok bool) {
	in := map[*graph.Node]bool{}
	for _, n := range mt.All {
		in[n] = true
	}
	for i, n := range mt.All {
		for _, o := range n.Outputs {
			if o == nil {
				continue
			}
			if i == 0 && o == n.Outputs[0] {
				continue
			}
			if m.outs[o] {
				return o, false
			}
			for _, u := range m.uses[o] {
				if !in[u] {
					return o, false
				}
			}
		}
	}
	return nil, true
}

// scalarValue returns the value of a one-element numeric tensor.
func scalarValue(t *graph.Tensor) (float64, bool) {
	if t == nil || t.NumElements() != 1 {
		return 0, false
	}
	vals, err := t.Float64s()
	if err != nil || len(vals) != 1 {
		return 0, false
	}
	return vals[0], true
}

// splatValue returns the value of a constant whose elements are all equal.
func splatValue(t *graph.Tensor) (float64, bool) {
	if t == nil || t.NumElements() == 0 {
		return 0, false
	}
	vals, err := t.Float64s()
	if err != nil {
		return 0, false
	}
	for _, x := range vals[1:] {
		if x != vals[0] && !(math.IsNaN(x) && math.IsNaN(vals[0])) {
			return 0, false
		}
	}
	return vals[0], true
}
