package passes

import (
	"errors"
	"strings"
	"testing"

	"github.com/of3c/of3c/graph"
)

// fusionRules are all the rules the pass table runs.
var fusionRules = []*FusionRule{layerNormRule, attentionRule, swigluRule, outerProductRule, triangleMulRule}

// Matching must only read the graph: every rule's Match at every anchor of
// every fixture (as the graph is when the fusions start) leaves the graph's
// text unchanged, whether it matches or not. (Attention used to add k's
// transposes while matching, leaving debris when the match failed.)
func TestFusionMatchIsReadOnly(t *testing.T) {
	for _, f := range loadFixtures(t) {
		if f.Preset != "tiny" {
			continue
		}
		t.Run(f.Name, func(t *testing.T) {
			g := loadFixtureGraph(t, f)
			if _, err := Run(g, Options{Passes: []string{"infer-shapes", "fold-constants", "remove-noops", "canonicalize", "cse", "dce"}}); err != nil {
				t.Fatal(err)
			}
			before := graph.Format(g)
			matched := 0
			for _, r := range fusionRules {
				anchors := map[string]bool{}
				for _, a := range r.Anchors {
					anchors[a] = true
				}
				m := NewMatcher(g)
				for _, n := range g.Nodes {
					if anchors[n.QualifiedOp()] {
						if fu, _ := r.Match(m, n); fu != nil {
							matched++
						}
					}
				}
			}
			if after := graph.Format(g); after != before {
				t.Errorf("matching changed the graph (%d matches)", matched)
			}
			if matched == 0 {
				t.Errorf("no rule matched anywhere in %s", f.Name)
			}
		})
	}
}

// A Build that fails, or builds something of the wrong type, is rolled back:
// the graph keeps no node or constant of it, and the explanation says why.
func TestFusionBuildRollsBack(t *testing.T) {
	g, err := graph.Parse(`graph g opsets(ai.onnx=17) {
  input %x:f32[N,4]
  %y:f32[N,4] = Relu(%x)
  output %y
}`)
	if err != nil {
		t.Fatal(err)
	}
	before := graph.Format(g)
	for _, c := range []struct {
		name  string
		build func(g *graph.Graph) (*graph.Value, error)
		want  string
	}{
		{"error", func(g *graph.Graph) (*graph.Value, error) {
			g.AddConst(g.UniqueName("junk"), graph.NewTensorF32([]int64{1}, []float32{1}))
			if _, err := addOp(g, "Neg", nil, g.Inputs[0]); err != nil {
				return nil, err
			}
			return nil, errors.New("no fit")
		}, "no fit"},
		{"wrong type", func(g *graph.Graph) (*graph.Value, error) {
			return addOp(g, "ReduceSum", map[string]graph.Attr{"keepdims": {Kind: graph.AttrInt, Int: 0}}, g.Inputs[0])
		}, "where the graph has f32[N,4]"},
	} {
		rule := &FusionRule{Name: "test", Anchors: []string{"Relu"}, Match: func(m *Matcher, n *graph.Node) (*Fusion, *Miss) {
			return &Fusion{Replace: n.Outputs[0], Build: c.build}, nil
		}}
		entry := &PassLog{Name: "test"}
		ctx := &Context{G: g, Opts: &Options{Explain: true}, entry: entry, log: &Log{}}
		if err := runFusion(ctx, rule); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if after := graph.Format(g); after != before {
			t.Errorf("%s: the graph kept parts of a failed build:\n%s", c.name, after)
		}
		if len(ctx.log.Explanations) != 1 || !strings.Contains(ctx.log.Explanations[0].Reason, c.want) {
			t.Errorf("%s: explanations %v, want one saying %q", c.name, ctx.log.Explanations, c.want)
		}
		if len(entry.Rewrites) != 0 {
			t.Errorf("%s: counted %v", c.name, entry.Rewrites)
		}
	}
}
