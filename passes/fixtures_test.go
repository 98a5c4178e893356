package passes

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"of3c/graph"
	"of3c/importer"
	"of3c/runtime/ref"
)

// The models/of3 fixtures: real exports from both torch exporters. For each,
// the default pipeline must produce exactly the fused ops the index expects,
// with no Softmax left, and the optimized graph must compute what the
// original does (reference executor, 1e-5) and what PyTorch did (1e-4).

// fixtureIndex is the index file; OF3C_FIXTURE_INDEX points the tests at
// another one (e.g. a fixture set being regenerated).
var fixtureIndex = func() string {
	if p := os.Getenv("OF3C_FIXTURE_INDEX"); p != "" {
		return p
	}
	return "../models/of3/fixtures.json"
}()

type fixtureAttention struct {
	Kind     string `json:"kind"`
	Heads    int    `json:"heads"`
	HeadDim  int    `json:"head_dim"`
	NBiases  int    `json:"n_biases"`
	BiasOnly bool   `json:"bias_only"`
}

type fixture struct {
	Name     string `json:"name"`
	Exporter string `json:"exporter"`
	Preset   string `json:"preset"`
	Path     string `json:"path"`
	Sets     []struct {
		Dir      string           `json:"dir"`
		Dims     map[string]int64 `json:"dims"`
		NInputs  int              `json:"n_inputs"`
		NOutputs int              `json:"n_outputs"`
	} `json:"test_data_sets"`
	Expected struct {
		Attention  int                `json:"of3c.Attention"`
		SwiGLU     int                `json:"of3c.SwiGLU"`
		LayerNorm  int                `json:"LayerNormalization"`
		Softmax    int                `json:"softmax_remaining"`
		Attentions []fixtureAttention `json:"attentions"`
	} `json:"expected_fused"`
}

func loadFixtures(t *testing.T) []fixture {
	t.Helper()
	data, err := os.ReadFile(fixtureIndex)
	if err != nil {
		t.Skipf("no fixture index: %v", err)
	}
	var idx struct {
		Fixtures []fixture `json:"fixtures"`
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		t.Fatalf("%s: %v", fixtureIndex, err)
	}
	return idx.Fixtures
}

func loadFixtureGraph(t *testing.T, f fixture) *graph.Graph {
	t.Helper()
	g, err := importer.LoadFile(filepath.Join(filepath.Dir(fixtureIndex), f.Path, "model.onnx"), importer.Options{})
	if err != nil {
		t.Fatalf("%s: import: %v", f.Name, err)
	}
	return g
}

// attentionSignature describes a fused attention node the way the index
// does, for comparing multisets.
func attentionSignature(n *graph.Node) string {
	biasOnly := n.AttrString("mode", graph.AttentionModeQK) == graph.AttentionModeBiasOnly
	v := n.Inputs[2]
	heads, dim := "?", "?"
	if v.Type.Ranked && v.Type.Rank() >= 3 {
		heads = v.Type.Shape[v.Type.Rank()-3].String()
		dim = v.Type.Shape[v.Type.Rank()-1].String()
	}
	return fmt.Sprintf("heads=%s head_dim=%s biases=%d bias_only=%v", heads, dim, len(n.Inputs)-3, biasOnly)
}

func TestFixtureFusionCounts(t *testing.T) {
	for _, f := range loadFixtures(t) {
		t.Run(f.Name, func(t *testing.T) {
			g := loadFixtureGraph(t, f)
			log, err := Run(g, Options{Verify: true, Explain: true})
			if err != nil {
				t.Fatalf("passes: %v", err)
			}
			c := g.OpCounts()
			e := f.Expected
			if c["of3c.Attention"] != e.Attention || c["of3c.SwiGLU"] != e.SwiGLU ||
				c["LayerNormalization"] != e.LayerNorm || c["Softmax"] != e.Softmax {
				t.Errorf("fused ops: Attention %d SwiGLU %d LayerNormalization %d Softmax %d; want %d %d %d %d\n%s",
					c["of3c.Attention"], c["of3c.SwiGLU"], c["LayerNormalization"], c["Softmax"],
					e.Attention, e.SwiGLU, e.LayerNorm, e.Softmax, log.Format())
			}
			var got, want []string
			for _, n := range g.Nodes {
				if n.QualifiedOp() == "of3c.Attention" {
					got = append(got, attentionSignature(n))
				}
			}
			for _, a := range e.Attentions {
				want = append(want, fmt.Sprintf("heads=%d head_dim=%d biases=%d bias_only=%v", a.Heads, a.HeadDim, a.NBiases, a.BiasOnly))
			}
			sort.Strings(got)
			sort.Strings(want)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("attention ops:\n got %v\nwant %v", got, want)
			}
		})
	}
}

// readSet loads a test_data_set's inputs (named as the graph's inputs, in
// order) and outputs.
func readSet(t *testing.T, g *graph.Graph, dir string, nIn, nOut int) (map[string]*graph.Tensor, map[string]*graph.Tensor) {
	t.Helper()
	ins := map[string]*graph.Tensor{}
	outs := map[string]*graph.Tensor{}
	for i := 0; i < nIn; i++ {
		_, tt, err := importer.ReadTensorFile(filepath.Join(dir, fmt.Sprintf("input_%d.pb", i)))
		if err != nil {
			t.Fatal(err)
		}
		ins[g.Inputs[i].Name] = tt
	}
	for i := 0; i < nOut; i++ {
		_, tt, err := importer.ReadTensorFile(filepath.Join(dir, fmt.Sprintf("output_%d.pb", i)))
		if err != nil {
			t.Fatal(err)
		}
		outs[g.Outputs[i].Name] = tt
	}
	return ins, outs
}

func TestFixtureNumerics(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every fixture on the reference executor")
	}
	for _, f := range loadFixtures(t) {
		if f.Preset != "tiny" {
			continue // the of3-width fixtures take minutes on the reference executor
		}
		t.Run(f.Name, func(t *testing.T) {
			g := loadFixtureGraph(t, f)
			orig := graph.Clone(g)
			if _, err := Run(g, Options{Verify: true}); err != nil {
				t.Fatalf("passes: %v", err)
			}
			for _, set := range f.Sets {
				dir := filepath.Join(filepath.Dir(fixtureIndex), f.Path, set.Dir)
				ins, torch := readSet(t, orig, dir, set.NInputs, set.NOutputs)
				before, err := ref.Run(orig, ins)
				if err != nil {
					t.Fatalf("%s: unfused: %v", set.Dir, err)
				}
				after, err := ref.Run(g, ins)
				if err != nil {
					t.Fatalf("%s: fused: %v", set.Dir, err)
				}
				if d, err := maxDiff(before, after, false); err != nil || d > 1e-5 {
					t.Errorf("%s: fused vs unfused: %g %v", set.Dir, d, err)
				}
				if d, err := maxDiff(torch, after, false); err != nil || d > 1e-4 {
					t.Errorf("%s: fused vs PyTorch: %g %v", set.Dir, d, err)
				}
			}
		})
	}
}
