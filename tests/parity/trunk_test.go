package parity

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/of3c/of3c/codegen"
	"github.com/of3c/of3c/driver"
	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/mlx"
)

// The whole trunk as one artifact: the 48-block PairFormerStack of the
// openfold3 package at its own widths (147 M parameters, 594 MB), generated on
// demand into models/of3/generated (models/of3/README.md; too large to
// commit), compiled into one program and run end to end on MLX's CPU at the
// exporter's small test sizes. The relative L2 error against PyTorch is
// reported and bounded; 48 blocks compound rounding, so the bound is on the
// whole output, not per element. Skipped when the export is absent.
func TestWholeTrunkGenerated(t *testing.T) {
	if !mlx.Available() {
		t.Skip("MLX not linked")
	}
	root := filepath.Join(fixturesDir, "generated")
	data, err := os.ReadFile(filepath.Join(root, "fixtures.json"))
	if err != nil {
		t.Skipf("no generated fixtures (scripts/gpu/run_gpu.sh export makes them): %v", err)
	}
	var doc struct {
		Fixtures []fixture `json:"fixtures"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	// Blocks per generated export: the whole stack, and the single block
	// (the same code path at one block, for a quick check).
	blocks := map[string]int{
		"pairformer_stack_of3_torchscript": 48, "pairformer_stack_of3_dynamo": 48,
		"pairformer_block_of3_torchscript": 1, "pairformer_block_of3_dynamo": 1,
	}
	ran := 0
	for _, f := range doc.Fixtures {
		nb := blocks[f.Name]
		if nb == 0 {
			continue
		}
		ran++
		t.Run(f.Name, func(t *testing.T) {
			dir := filepath.Join(root, f.Path)
			if _, err := os.Stat(filepath.Join(dir, "model.onnx")); err != nil {
				t.Skipf("indexed but not here: %v", err)
			}
			g, _, err := driver.Compile(driver.CompileRequest{Source: filepath.Join(dir, "model.onnx"), Of3cVersion: "parity"})
			if err != nil {
				t.Fatal(err)
			}
			if c := g.OpCounts(); c["of3c.Attention"] != 3*nb || c["of3c.TriangleMultiplication"] != 2*nb || c["of3c.SwiGLU"] != 2*nb || c["Softmax"] != 0 {
				t.Errorf("%d blocks fused to %d attentions, %d triangle multiplications, %d SwiGLUs, %d softmaxes left; want %d, %d, %d, 0",
					nb, c["of3c.Attention"], c["of3c.TriangleMultiplication"], c["of3c.SwiGLU"], c["Softmax"], 3*nb, 2*nb, 2*nb)
			}
			p, err := codegen.NewProgram(g, codegen.Options{Device: "cpu", Precision: "fp32"})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			for _, set := range f.Sets {
				sd := filepath.Join(dir, set.Dir)
				in, want := readSet(t, sd, g)
				got, _, err := p.Run(in)
				if err != nil {
					t.Fatalf("%s: %v", set.Dir, err)
				}
				for _, o := range g.Outputs {
					rel, mx := relL2(t, got[o.Name], want[o.Name]), maxAbs(t, got[o.Name], want[o.Name])
					t.Logf("%s %s %v: relative L2 error %.3g, max abs %.3g", set.Dir, o.Name, set.Dims, rel, mx)
					if rel > 1e-5 || mx > 1e-3 {
						t.Errorf("%s %s: relative L2 error %.3g (bound 1e-5), max abs %.3g (bound 1e-3)", set.Dir, o.Name, rel, mx)
					}
				}
			}
		})
	}
	if ran == 0 {
		t.Skip("no generated of3-width pairformer export")
	}
}

// relL2 is ‖got − want‖₂ / ‖want‖₂.
func relL2(t *testing.T, got, want *graph.Tensor) float64 {
	t.Helper()
	g, err := got.Float64s()
	if err != nil {
		t.Fatal(err)
	}
	w, err := want.Float64s()
	if err != nil {
		t.Fatal(err)
	}
	if len(g) != len(w) {
		t.Fatalf("%d elements, want %d", len(g), len(w))
	}
	var num, den float64
	for i := range g {
		d := g[i] - w[i]
		num += d * d
		den += w[i] * w[i]
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}
