package passes

import (
	"fmt"

	"github.com/of3c/of3c/graph"
)

// Fusions as data. Each fusion is a FusionRule value — the ops it is tried
// at, a match that only reads the graph, and a build step — and one driver,
// runFusion, does everything else the same way for all of them: the anchor
// walk, the closed-subgraph check (nothing outside the matched nodes may read
// their intermediates), building, type-checking the result against the
// value it replaces and rolling the graph back when it does not fit,
// counting, pass-log notes, explanations of near misses, dead-code removal
// and refreshing the matcher. The rules:
//
//	layerNormRule      fuse_layernorm.go   decomposed LayerNorm → LayerNormalization
//	attentionRule      fuse_attention.go   softmax(scale·q·kᵀ + Σ biases)·v → of3c.Attention
//	swigluRule         fuse_swiglu.go      silu(x·Wa) ⊙ (x·Wb) [· W_out] → of3c.SwiGLU
//	outerProductRule   fuse_opm.go         Σ_s a⊗b · W_out [+ b] → of3c.OuterProductMean
//	triangleMulRule    fuse_trimul.go      gated projections + triangle product → of3c.TriangleMultiplication
//
// Adding a fusion is adding a rule value, its entry in the pass table
// (passes.go) and a golden test (testdata/*.txt).

// FusionRule is one fusion.
type FusionRule struct {
	// Name is what the pass log counts and explanations say.
	Name string
	// Anchors are the qualified ops ("Softmax", "of3c.Attention") the match
	// is tried at, in graph order.
	Anchors []string
	// Match looks at the graph around anchor n and returns the rewrite it
	// would make, or why not. It must not change the graph: everything that
	// adds nodes or constants belongs in Fusion.Build. A nil Fusion with a nil
	// Miss means n is not a candidate at all (nothing to explain).
	Match func(m *Matcher, n *graph.Node) (*Fusion, *Miss)
}

// Fusion is a matched rewrite, not yet applied.
type Fusion struct {
	// Replace is the value the fused computation stands for; its readers are
	// moved to Build's result.
	Replace *graph.Value
	// Closed are matched patterns whose interior values must have no reader
	// outside the pattern (checked by the driver before Build).
	Closed []*Match
	// Build adds the fused nodes (and any constants) and returns the value
	// that replaces Replace. An error, or a result whose type differs from
	// Replace's, rolls back everything Build added.
	Build func(g *graph.Graph) (*graph.Value, error)
	// Counts are the pass-log counters to bump (the rule and its variant).
	Counts []string
	// Note says what fused, for the pass log, given the built value.
	Note func(out *graph.Value) string
}

// Miss says why a rule did not fire at an anchor.
type Miss struct {
	Reason string
	Detail *Failure
}

// missf is a Miss with a formatted reason.
func missf(format string, args ...any) *Miss { return &Miss{Reason: fmt.Sprintf(format, args...)} }

// fusionPass is the pass that runs one rule over the graph.
func fusionPass(r *FusionRule) func(*Context) error {
	return func(c *Context) error { return runFusion(c, r) }
}

// runFusion applies r at every anchor, in graph order, once.
func runFusion(c *Context, r *FusionRule) error {
	g := c.G
	m := NewMatcher(g)
	anchors := map[string]bool{}
	for _, a := range r.Anchors {
		anchors[a] = true
	}
	alive := nodeSet(g)
	for _, n := range append([]*graph.Node(nil), g.Nodes...) {
		if !anchors[n.QualifiedOp()] || !alive[n] {
			continue
		}
		f, miss := r.Match(m, n)
		if f == nil {
			if miss != nil {
				c.Explain(r.Name, n, miss.Reason, miss.Detail)
			}
			continue
		}
		var escaped *graph.Value
		for _, mt := range f.Closed {
			if esc, ok := m.Closed(mt); !ok {
				escaped = esc
				break
			}
		}
		if escaped != nil {
			c.Explain(r.Name, n, fmt.Sprintf("%s is read outside the pattern", escaped), nil)
			continue
		}
		nodes, consts := len(g.Nodes), len(g.Consts)
		out, err := f.Build(g)
		if err == nil && (out == nil || !out.Type.Equal(f.Replace.Type)) {
			err = fmt.Errorf("fused op would give %s where the graph has %s", typeOf(out), f.Replace.Type)
		}
		if err != nil {
			// Everything Build added goes again (AddNode and AddConst append).
			g.Nodes, g.Consts = g.Nodes[:nodes], g.Consts[:consts]
			c.Explain(r.Name, n, err.Error(), nil)
			continue
		}
		replaceValue(g, f.Replace, out)
		for _, k := range f.Counts {
			c.Count(k)
		}
		if f.Note != nil {
			c.Notef("%s", f.Note(out))
		}
		if _, err := removeDead(g); err != nil {
			return err
		}
		m.Refresh()
		alive = nodeSet(g)
	}
	return nil
}

func nodeSet(g *graph.Graph) map[*graph.Node]bool {
	s := make(map[*graph.Node]bool, len(g.Nodes))
	for _, n := range g.Nodes {
		s[n] = true
	}
	return s
}

func typeOf(v *graph.Value) string {
	if v == nil {
		return "nothing"
	}
	return v.Type.String()
}
