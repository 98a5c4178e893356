package passes

import (
	"testing"

	"github.com/of3c/of3c/graph"
)

// TestCleanupScales: the cleanup passes handle 100k-node graphs of the
// shapes that made them quadratic (each replacement rewrote every node:
// 32k Identity nodes took 16 s, 100k over a minute; the test binary's
// timeout bounds it). Long chains of no-ops, duplicate nodes and foldable
// nodes are removed completely, and the results stay correct.
func TestCleanupScales(t *testing.T) {
	if testing.Short() {
		t.Skip("100k-node graphs")
	}
	const n = 100_000
	cases := []struct {
		name  string
		op    func(b *graph.Builder, x *graph.Value, i int) *graph.Value
		pass  string
		nodes int // nodes left
	}{
		{"identity chain", func(b *graph.Builder, x *graph.Value, _ int) *graph.Value { return b.Op("Identity", x) }, "remove-noops", 1},
		{"duplicate nodes", func(b *graph.Builder, x *graph.Value, _ int) *graph.Value {
			// Relu(x) n times, each read by a Max with the previous result.
			return b.Op("Max", x, b.Op("Relu", b.Graph().Inputs[0]))
		}, "cse", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := graph.NewBuilder("g", 17)
			x := b.Input("x", "f32[4]")
			for i := 0; i < n; i++ {
				x = c.op(b, x, i)
			}
			b.Output(x)
			g, err := b.Build()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Run(g, Options{Passes: []string{c.pass}}); err != nil {
				t.Fatal(err)
			}
			if c.nodes > 0 && len(g.Nodes) != c.nodes {
				t.Errorf("%d nodes left, want %d", len(g.Nodes), c.nodes)
			}
			if c.name == "duplicate nodes" {
				relus := g.OpCounts()["Relu"]
				if relus != 1 {
					t.Errorf("%d Relu nodes left, want 1", relus)
				}
			}
		})
	}
}
