package driver

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/of3c/of3c/artifact"
	"github.com/of3c/of3c/codegen"
	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/mlx"
	"github.com/of3c/of3c/passes"
)

// TestPlannerBoundsMLXPeak compiles OpenFold3 fixtures (both exporters),
// runs them on MLX's CPU at a few sizes, by default and under a memory
// budget, and checks the memory planner's estimate against the peak MLX
// reports (its allocator's high-water mark, reset before each run; two runs
// each, the first one tracing and compiling): the estimate must never be
// below the peak — a budget is a bound — and at most planBoundFactor above
// it. The runtime holds a run to the estimate with MLX's memory limit
// (memory_limit.go) when the graph was compiled under a budget, and on the
// GPU; without it the peaks here would be 1.2–3× higher.
// Peaks depend on the evaluation order MLX picks, not on timing, so this is
// not a timing test.
func TestPlannerBoundsMLXPeak(t *testing.T) {
	if !mlx.Available() {
		t.Skip("MLX not available")
	}
	if testing.Short() {
		t.Skip("runs models on MLX")
	}
	// known: where a bound is known not to hold yet, and why (seen when the
	// fixtures became exports of the real openfold3 package). Such a case
	// still runs and logs its numbers; a violation is logged as known
	// instead of failing. Each is an open planner-model gap.
	cases := []struct {
		fixture string
		dims    map[string]int64
		known   string
	}{
		{"generated/pairformer_block_of3_torchscript", map[string]int64{"N": 96}, ""},
		{"generated/pairformer_block_of3_dynamo", map[string]int64{"N": 128}, ""},
		{"tri_att_start_of3_torchscript", map[string]int64{"N": 128}, ""},
		{"tri_att_start_of3_dynamo", map[string]int64{"N": 160}, "the real package's triangle attention (dynamo export) peaked 11% above the in-order estimate in one of three runs (76 / 88 / 76 MiB against 80 MiB): MLX's order differs from the planner's there"},
		{"tri_mul_out_tiny_torchscript", map[string]int64{"N": 384}, ""},
		{"tri_mul_in_tiny_dynamo", map[string]int64{"N": 320}, ""},
		{"pairformer_stack_tiny_torchscript", map[string]int64{"N": 128}, ""},
		{"template_pair_block_tiny_dynamo", map[string]int64{"N": 160}, "the real package's TemplatePairBlock runs its two templates as two independent chains; MLX peaks at 1.65× the in-order estimate (43 against 26 MiB)"},
		{"msa_module_block_tiny_torchscript", map[string]int64{"N": 128, "S": 64}, ""},
		{"outer_product_mean_tiny_dynamo", map[string]int64{"N": 192, "S": 96}, ""},
		{"msa_pair_weighted_avg_tiny_torchscript", map[string]int64{"N": 256, "S": 128}, ""},
		{"swiglu_transition_tiny_dynamo", map[string]int64{"N": 32768}, "budgeted at 70%, the real SwiGLUTransition's estimate is 1.6× MLX's peak (14.0 against 8.8 MiB): safe, but wasteful"},
		{"attention_pair_bias_tiny_torchscript", map[string]int64{"N": 1024}, ""},
		{"diffusion_transformer_block_tiny_dynamo", map[string]int64{"N": 768}, ""},
	}
	for _, c := range cases {
		// Real-width blocks are generated on demand (models/of3/README.md).
		src := filepath.Join("..", "models", "of3", "testdata", c.fixture, "model.onnx")
		if rest, ok := strings.CutPrefix(c.fixture, "generated/"); ok {
			src = filepath.Join("..", "models", "of3", "generated", "testdata", rest, "model.onnx")
		}
		if _, err := os.Stat(src); err != nil {
			t.Logf("skipping %s: %v", c.fixture, err)
			continue
		}
		def, _, err := Compile(CompileRequest{Source: src, Options: artifact.CompileOptions{Device: "cpu"}})
		if err != nil {
			t.Fatal(err)
		}
		plan, err := passes.PlanMemory(def, c.dims, math.MaxInt64/4, passes.Options{Device: "cpu"})
		if err != nil {
			t.Fatal(err)
		}
		checkPlanBound(t, c.fixture+" default", def, c.dims, plan, c.known)
		// Budgeted: the tightest of a few fractions of the default
		// estimate that the planner can meet by chunking.
		for _, f := range []float64{0.7, 0.8, 0.9} {
			budget := int64(f * float64(plan.PeakAfter))
			var n int64
			for _, v := range c.dims {
				n = max(n, v)
			}
			g, m, err := Compile(CompileRequest{Source: src, Options: artifact.CompileOptions{Device: "cpu", MemoryBudget: budget}, Buckets: []int64{n}})
			if err != nil {
				continue // the planner refuses: nothing chunkable sets the peak
			}
			var bp passes.MemoryPlan
			if err := json.Unmarshal(m.MemoryPlan, &bp); err != nil {
				t.Fatal(err)
			}
			if len(bp.Chunks) == 0 {
				break
			}
			est, err := passes.PlanMemory(g, c.dims, math.MaxInt64/4, passes.Options{Device: "cpu"})
			if err != nil {
				t.Fatal(err)
			}
			if est.PeakAfter > budget {
				t.Errorf("%s: budget %d, planned graph estimated at %d", c.fixture, budget, est.PeakAfter)
			}
			checkPlanBound(t, fmt.Sprintf("%s budget %.0f%%", c.fixture, 100*f), g, c.dims, est, c.known)
			break
		}
	}
}

// How far above MLX's measured peak (the largest of three runs) the
// planner's estimate may be (docs/notes/PERFORMANCE.md, "Memory planner"): where
// the estimate is the in-order peak, planBoundFactor; where it is what MLX's
// allocation may run ahead to under the run's memory limit (a graph whose
// largest array keeps that limit high), runAheadFactor — how far the run
// really gets depends on thread timing.
const (
	planBoundFactor = 1.3
	runAheadFactor  = 1.5
)

// checkPlanBound runs g at dims on MLX's CPU three times and compares each
// run's MLX peak with the plan's estimate.
func checkPlanBound(t *testing.T, what string, g *graph.Graph, dims map[string]int64, plan *passes.MemoryPlan, known string) {
	t.Helper()
	est := plan.PeakAfter
	factor, regime := planBoundFactor, "in order"
	if est > plan.InOrder+1<<20+plan.InOrder/32 {
		factor, regime = runAheadFactor, "run-ahead"
	}
	ins := map[string]*graph.Tensor{}
	for i, v := range g.Inputs {
		shape, err := graph.EvalShape(v.Type.Shape, dims)
		if err != nil {
			t.Fatal(err)
		}
		x, err := graph.RandomTensor(v.Type.DType, shape, uint64(5+i), 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		ins[v.Name] = x
	}
	// Budgeted: held to the run limit, as budgeted CPU compiles and every
	// GPU run are (unbudgeted CPU runs skip it for speed; memory_limit.go).
	p, err := codegen.NewProgram(g, codegen.Options{Device: "cpu", Budgeted: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var peaks []int64
	var hi int64
	for run := 0; run < 3; run++ {
		if err := mlx.ResetPeakMemory(); err != nil {
			t.Fatal(err)
		}
		if _, _, err := p.Run(ins); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		m, err := mlx.Memory()
		if err != nil {
			t.Fatal(err)
		}
		peaks = append(peaks, int64(m.Peak))
		hi = max(hi, int64(m.Peak))
	}
	t.Logf("%-48s estimate %7.2f MiB (%s), MLX peak %7.2f / %7.2f / %7.2f MiB (×%.2f)", what, mib(est), regime,
		mib(peaks[0]), mib(peaks[1]), mib(peaks[2]), float64(est)/float64(hi))
	fail := t.Errorf
	if known != "" {
		fail = func(format string, args ...any) { t.Logf("known gap ("+known+"): "+format, args...) }
	}
	if est < hi {
		fail("%s: estimate %.2f MiB < MLX peak %.2f MiB", what, mib(est), mib(hi))
	}
	if float64(est) > factor*float64(hi) {
		fail("%s: estimate %.2f MiB (%s) > %.2f × MLX peak %.2f MiB", what, mib(est), regime, factor, mib(hi))
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
