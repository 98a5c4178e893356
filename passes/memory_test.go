package passes

import (
	"strings"
	"testing"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/runtime/ref"
)

func TestPlanMemoryChunksToFit(t *testing.T) {
	g := buildTriAttention(t, "of3")
	if _, err := Run(g, Options{Verify: true}); err != nil {
		t.Fatal(err)
	}
	dims := map[string]int64{"N": 1024}
	const budget = 1 << 30
	plan, err := PlanMemory(g, dims, budget, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Unchunked, the logits alone are [N,H,N,N] f32 twice over: 16 GiB.
	if plan.PeakBefore < 16<<30 {
		t.Errorf("peak before %d, want ≥ 16 GiB", plan.PeakBefore)
	}
	if plan.PeakAfter > budget {
		t.Errorf("peak after %d > budget", plan.PeakAfter)
	}
	if len(plan.Chunks) != 1 || plan.Chunks[0].Op != "of3c.Attention" || plan.Chunks[0].Attrs["batch_chunk"] == 0 {
		t.Errorf("chunks %+v, want the attention chunked along its batch (pair rows)", plan.Chunks)
	}
	text := plan.Format()
	for _, want := range []string{"peak before", "peak after", "batch_chunk=", "largest live"} {
		if !strings.Contains(text, want) {
			t.Errorf("Format() lacks %q:\n%s", want, text)
		}
	}
	// The plan applies to the graph; the chunked graph computes the same at
	// small N.
	if err := plan.Apply(g); err != nil {
		t.Fatal(err)
	}
	if err := graph.Verify(g); err != nil {
		t.Fatal(err)
	}
}

func TestPlanMemoryRefusesWithNumbers(t *testing.T) {
	g := buildTriAttention(t, "of3")
	if _, err := Run(g, Options{Verify: true}); err != nil {
		t.Fatal(err)
	}
	// The pair activations alone ([N,N,34] f32 ≈ 136 MiB at N=1024) do not fit
	// in 64 MiB, however the attention is chunked.
	_, err := PlanMemory(g, map[string]int64{"N": 1024}, 64<<20, Options{})
	if err == nil || !strings.Contains(err.Error(), "does not fit") || !strings.Contains(err.Error(), "MiB") {
		t.Errorf("err = %v, want a refusal with the numbers", err)
	}
	_, err = PlanMemory(g, map[string]int64{"S": 3}, 1<<30, Options{})
	if err == nil || !strings.Contains(err.Error(), "N") {
		t.Errorf("unbound N: %v", err)
	}
}

func TestPlanMemoryPassAndLMA(t *testing.T) {
	// Plain attention over heads ([H,N,c], biases [H,N,N] and [N]): at the
	// smallest budget that fits, with a low LMA threshold, the planner must
	// chunk heads, then queries, then keys (LMA) — and the result still
	// computes what the unfused graph does.
	text := readFile(t, "testdata/attention_einsum.txt")
	c, _ := parseGolden(text)
	g := mustParse(t, c.input)
	dims := map[string]int64{"N": 37}
	inputs := testInputs(t, g, dims, 9)
	want, err := ref.Run(graph.Clone(g), inputs)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{ChunkThreshold: 2, LMAKVChunk: 16}
	probe := graph.Clone(g)
	if _, err := Run(probe, Options{}); err != nil {
		t.Fatal(err)
	}
	first, err := PlanMemory(probe, dims, 1<<40, opts)
	if err != nil {
		t.Fatal(err)
	}
	// Binary search for the smallest budget that still fits.
	lo, budget := int64(1), first.PeakBefore
	for lo < budget {
		mid := (lo + budget) / 2
		if _, err := PlanMemory(probe, dims, mid, opts); err != nil {
			lo = mid + 1
		} else {
			budget = mid
		}
	}
	opts.Verify, opts.MemoryBudget, opts.Dims = true, budget, dims
	log, err := Run(g, opts)
	if err != nil {
		t.Fatal(err)
	}
	if log.Plan == nil || log.Plan.PeakAfter > budget {
		t.Fatalf("plan %+v", log.Plan)
	}
	att := findOp(g, "of3c.Attention")
	for _, k := range []string{"batch_chunk", "query_chunk", "kv_chunk"} {
		if att.AttrInt(k, 0) == 0 {
			t.Errorf("%s not set at the tightest budget:\n%s", k, log.Plan.Format())
		}
	}
	got, err := ref.Run(g, inputs)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := maxDiff(want, got, false); err != nil || d > 1e-5 {
		t.Errorf("planned graph differs: %g %v", d, err)
	}
}

// A graph whose outputs are inputs or constants runs no node: the planner
// must return a plan (weights only, no run limit), not index an empty
// schedule (the ONNX node test test_constant crashed the MLX runtime so).
func TestPlanMemoryNoNodes(t *testing.T) {
	g := mustParse(t, `graph c opsets(ai.onnx=17) {
  input %x:f32[N,4]
  %w:f32[4,4] = const fill(0.5)
  output %w, %x
}`)
	plan, err := PlanMemory(g, map[string]int64{"N": 3}, 1<<30, Options{Device: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	if plan.Weights != 64 || plan.PeakAfter != 64 || plan.RunLimit != 0 || len(plan.Chunks) != 0 {
		t.Errorf("plan %+v, want weights-only (64 bytes), no run limit, no chunks", plan)
	}
	_ = plan.Format()
}
