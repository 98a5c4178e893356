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
		// Pair ops; absent in entries of the project's own (local_) modules,
		// whose expectations are in expectedPairOps.
		TriMul *int `json:"of3c.TriangleMultiplication"`
		OPM    *int `json:"of3c.OuterProductMean"`
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

// chunkEverything sets non-dividing chunk sizes on every fused op, so the
// chunked and LMA forms run on real fixture graphs.
func chunkEverything(g *graph.Graph) {
	for _, n := range g.Nodes {
		set := func(k string, v int64) { n.SetAttr(k, graph.Attr{Kind: graph.AttrInt, Int: v}) }
		switch n.QualifiedOp() {
		case "of3c.Attention":
			if n.Outputs[0].Type.Rank() > 2 {
				set("batch_chunk", 3)
			}
			set("query_chunk", 5)
			set("kv_chunk", 4)
		case "of3c.SwiGLU":
			set("row_chunk", 7)
		}
	}
}

func TestFixtureNumerics(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every fixture on the reference executor")
	}
	for _, f := range loadFixtures(t) {
		t.Run(f.Name, func(t *testing.T) {
			g := loadFixtureGraph(t, f)
			orig := graph.Clone(g)
			type setData struct {
				dir        string
				ins, torch map[string]*graph.Tensor
				unfused    map[string]*graph.Tensor
			}
			var sets []setData
			for _, set := range f.Sets {
				dir := filepath.Join(filepath.Dir(fixtureIndex), f.Path, set.Dir)
				ins, torch := readSet(t, orig, dir, set.NInputs, set.NOutputs)
				before, err := ref.Run(orig, ins)
				if err != nil {
					t.Fatalf("%s: unfused: %v", set.Dir, err)
				}
				if d, err := maxDiff(torch, before, false); err != nil || d > 1e-4 {
					t.Errorf("%s: unfused reference vs PyTorch: %g %v", set.Dir, d, err)
				}
				sets = append(sets, setData{set.Dir, ins, torch, before})
			}
			check := func(what string, g *graph.Graph) {
				t.Helper()
				for _, s := range sets {
					after, err := ref.Run(g, s.ins)
					if err != nil {
						t.Fatalf("%s, %s: %v", what, s.dir, err)
					}
					if d, err := maxDiff(s.unfused, after, false); err != nil || d > 1e-5 {
						t.Errorf("%s, %s: vs unfused: %g %v", what, s.dir, d, err)
					}
					if d, err := maxDiff(s.torch, after, false); err != nil || d > 1e-4 {
						t.Errorf("%s, %s: vs PyTorch: %g %v", what, s.dir, d, err)
					}
				}
			}
			// One pass at a time, numbers checked after each; the of3-width
			// fixtures only at the end (each reference run takes seconds).
			for _, name := range mustSelect(t) {
				if _, err := Run(g, Options{Passes: []string{name}, Verify: true}); err != nil {
					t.Fatalf("pass %s: %v", name, err)
				}
				if f.Preset == "tiny" {
					check("after "+name, g)
				}
			}
			if f.Preset != "tiny" {
				check("after all passes", g)
			}
			chunkEverything(g)
			if err := graph.Verify(g); err != nil {
				t.Fatal(err)
			}
			check("chunked", g)
			// N = 1 (and S = 2): synthetic inputs, fused and chunked vs unfused.
			dims := map[string]int64{"N": 1, "S": 2}
			ins := testInputs(t, orig, dims, 4)
			want, err := ref.Run(orig, ins)
			if err != nil {
				t.Fatalf("N=1 unfused: %v", err)
			}
			got, err := ref.Run(g, ins)
			if err != nil {
				t.Fatalf("N=1 fused: %v", err)
			}
			if d, err := maxDiff(want, got, false); err != nil || d > 1e-5 {
				t.Errorf("N=1: fused+chunked vs unfused: %g %v", d, err)
			}
		})
	}
}

func mustSelect(t *testing.T) []string {
	t.Helper()
	names, err := Select(Options{})
	if err != nil {
		t.Fatal(err)
	}
	return names
}
