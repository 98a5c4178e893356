package driver

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/of3c/of3c/artifact"
	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/importer"
	"github.com/of3c/of3c/passes"
	"github.com/of3c/of3c/runtime/ref"
)

// A compile under a memory budget forms row-chunked regions and the planner
// chunks some of them; the artifact (whose graph holds the regions' bodies)
// reads back, and the run on MLX and on the reference executor reproduces
// PyTorch's outputs.
func TestCompileWithRegions(t *testing.T) {
	fx := "../models/of3/testdata/pairformer_block_tiny_torchscript"
	g, m, err := Compile(CompileRequest{Source: filepath.Join(fx, "model.onnx"), Buckets: []int64{12},
		Options: artifact.CompileOptions{Device: "cpu", Precision: "fp32", MemoryBudget: 1_300 << 10}})
	if err != nil {
		t.Fatal(err)
	}
	chunked := 0
	for _, n := range g.Nodes {
		if n.QualifiedOp() == "of3c.ChunkMap" && n.AttrInt("chunk", 0) > 0 {
			chunked++
		}
	}
	if chunked == 0 {
		t.Fatalf("no region chunked under 1.3 MiB")
	}
	art := filepath.Join(t.TempDir(), "m.of3")
	if err := artifact.Write(art, m, g); err != nil {
		t.Fatal(err)
	}
	for _, dev := range []string{"cpu", "ref"} {
		sess, err := Open(art, Options{Device: "cpu", MemoryLimit: 1 << 30})
		if err != nil {
			t.Fatal(err)
		}
		in, err := ReadBundle(filepath.Join(fx, "test_data_set_0"), sess.Graph.Inputs)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]*graph.Tensor
		if dev == "cpu" {
			got, _, err = sess.Run(in)
		} else {
			// The artifact's graph on the reference executor directly
			// (a ref session checks the run against the compile-time
			// budget with its own estimate).
			got, err = ref.Run(sess.Graph, in)
		}
		if err != nil {
			t.Fatalf("%s: %v", dev, err)
		}
		for i, o := range sess.Graph.Outputs {
			_, w, err := importer.ReadTensorFile(filepath.Join(fx, "test_data_set_0", fmt.Sprintf("output_%d.pb", i)))
			if err != nil {
				t.Fatal(err)
			}
			name := o.Name
			a, _ := w.Float64s()
			b, _ := got[name].Float64s()
			worst := 0.0
			for i := range a {
				worst = max(worst, abs(a[i]-b[i]))
			}
			if worst > 1e-4 {
				t.Errorf("%s: %s max abs err %g", dev, name, worst)
			}
		}
		sess.Close()
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// A GPU compile with buckets and no budget is planned lean: regions formed
// and chunked, the plan's peak below the unplanned one; without buckets
// (no size to plan for) the graph stays unplanned — the session plans each
// size when it runs (lean.go, TestSessionPlansEachSizeLean) — and a CPU compile with
// buckets is never planned without a budget.
func TestCompileGPULeanDefault(t *testing.T) {
	t.Setenv("OF3C_GPU_LEAN_BLOCK", "1KiB") // the tiny fixture is below the default block floor
	src := "../models/of3/testdata/pairformer_block_tiny_torchscript/model.onnx"
	count := func(g *graph.Graph) (regions, chunked int) {
		for _, n := range g.Nodes {
			if n.QualifiedOp() == "of3c.ChunkMap" {
				regions++
				if n.AttrInt("chunk", 0) > 0 {
					chunked++
				}
			}
		}
		return
	}
	g, m, err := Compile(CompileRequest{Source: src, Buckets: []int64{64},
		Options: artifact.CompileOptions{Device: "gpu", Precision: "fp32"}})
	if err != nil {
		t.Fatal(err)
	}
	if r, c := count(g); r == 0 || c == 0 {
		t.Errorf("gpu with buckets: %d regions, %d chunked; want lean chunks", r, c)
	}
	var plan passes.MemoryPlan
	if err := json.Unmarshal(m.MemoryPlan, &plan); err != nil {
		t.Fatalf("no memory plan in the manifest: %v", err)
	}
	if plan.Budget != 0 || plan.PeakAfter <= 0 || plan.PeakAfter >= plan.PeakBefore {
		t.Errorf("lean plan: budget %d, peak %d → %d; want no budget and a lower peak", plan.Budget, plan.PeakBefore, plan.PeakAfter)
	}
	for _, c := range []struct {
		dev     string
		buckets []int64
	}{{"gpu", nil}, {"cpu", []int64{64}}} {
		g, _, err := Compile(CompileRequest{Source: src, Buckets: c.buckets,
			Options: artifact.CompileOptions{Device: c.dev, Precision: "fp32"}})
		if err != nil {
			t.Fatal(err)
		}
		if r, _ := count(g); r != 0 {
			t.Errorf("%s buckets %v: %d regions; want none without a budget", c.dev, c.buckets, r)
		}
	}
}

// The lean GPU plan holds bf16 attention to its memory: the tensor-core
// flash kernel instead of MLX's SDPA, whose summed [.., H, Q, K] mask the
// plan does not hold (measured: SDPA peaked at 2.4× OpenFold3's chunk+LMA
// path at N = 2048); unplanned, SDPA stays the bf16 default.
func TestLeanBF16AttentionTakesFlash(t *testing.T) {
	src := "../models/of3/testdata/pairformer_block_tiny_torchscript/model.onnx"
	paths := func(buckets []int64) map[string]int {
		_, m, err := Compile(CompileRequest{Source: src, Buckets: buckets,
			Options: artifact.CompileOptions{Device: "gpu", Precision: "bf16"}})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, l := range m.Lowerings {
			if l.Op == "of3c.Attention" {
				out[l.Path]++
			}
		}
		return out
	}
	if p := paths([]int64{64}); p["attention/gpu-flash-mma"] == 0 || p["attention/gpu-sdpa"] != 0 {
		t.Errorf("lean bf16: attention paths %v; want gpu-flash-mma, no gpu-sdpa", p)
	}
	// Unplanned too: SDPA would write each attention's full-size summed mask.
	if p := paths(nil); p["attention/gpu-flash-mma"] == 0 || p["attention/gpu-sdpa"] != 0 {
		t.Errorf("unplanned bf16: attention paths %v; want gpu-flash-mma, no gpu-sdpa", p)
	}
}
