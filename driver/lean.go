package driver

import (
	"fmt"
	"os"
	"strings"

	"github.com/of3c/of3c/artifact"
	"github.com/of3c/of3c/codegen"
	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/units"
	"github.com/of3c/of3c/passes"
)

// Lean plans made when a run's size is known. A GPU artifact compiled with
// --buckets carries the lean plan for its largest bucket (Compile); one
// compiled without them has no size to plan for, and unplanned it holds
// every whole [N, N, ·] intermediate (N = 1024, bf16, OpenFold3's
// PairFormerBlock on an H200: 26.6 GiB against 3.3 GiB lean). Such a
// session plans at the first run of each padded size instead: form-regions
// and plan-memory on a copy of the graph at those dims, as `compile
// --buckets N` would, checks the memory of that plan, then builds its
// program. OF3C_GPU_LEAN=off runs the graph as compiled.

// leanPrograms is how many planned sizes a session keeps. Each program
// holds its own copy of the weights on the device, so the least recently
// run is closed beyond this.
const leanPrograms = 2

// leanPlan is the graph, plan and (once memory was checked) program for one
// padded size.
type leanPlan struct {
	key      string
	g        *graph.Graph
	plan     *passes.MemoryPlan
	prog     *codegen.Program
	reported bool // a Run has said it planned this size
}

// leanDevice is the session device that plans per size: the GPU (the
// tests set "cpu" to run the GPU's plan on the CPU executor).
var leanDevice = "gpu"

// plansPerShape reports whether a session on device plans each size lean.
func plansPerShape(device string, m *artifact.Manifest) bool {
	if device != leanDevice || m.Options.MemoryBudget > 0 || len(m.MemoryPlan) > 0 || len(m.TokenDims) == 0 {
		return false
	}
	switch strings.ToLower(os.Getenv("OF3C_GPU_LEAN")) {
	case "off", "0", "false", "no":
		return false
	}
	return true
}

// LeanBlock is OF3C_GPU_LEAN_BLOCK, the smallest working set a lean plan
// leaves a chunked block (passes.Options.LeanBlock); 0 (the planner's
// default) when unset or not a size.
func LeanBlock() int64 {
	v := os.Getenv("OF3C_GPU_LEAN_BLOCK")
	if v == "" {
		return 0
	}
	n, err := units.ParseBytes(v)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// planFor returns the lean plan of the padded dims, planning on first use.
func (s *Session) planFor(dims map[string]int64) (*leanPlan, error) {
	key := fmtDims(dims)
	for i, lp := range s.plans {
		if lp.key == key {
			// Most recently used last.
			s.plans = append(append(s.plans[:i:i], s.plans[i+1:]...), lp)
			return lp, nil
		}
	}
	g := graph.Clone(s.Graph)
	log, err := passes.Run(g, passes.Options{
		Passes: []string{"form-regions", "plan-memory"}, Lean: true, LeanBlock: LeanBlock(), Dims: dims, Device: "gpu", Verify: true})
	if err != nil {
		return nil, fmt.Errorf("planning the GPU memory for %s: %w (OF3C_GPU_LEAN=off runs the graph unplanned)", key, err)
	}
	lp := &leanPlan{key: key, g: g, plan: log.Plan}
	if len(s.plans) >= leanPrograms {
		old := s.plans[0]
		if old.prog != nil {
			if s.prog == old.prog {
				s.prog = nil
			}
			old.prog.Close()
		}
		s.plans = s.plans[1:]
	}
	s.plans = append(s.plans, lp)
	return lp, nil
}

// program builds lp's program (uploading the weights) once.
func (s *Session) program(lp *leanPlan) (*codegen.Program, error) {
	if lp.prog == nil {
		p, err := codegen.NewProgram(lp.g, codegen.Options{Device: s.device, Precision: s.precision(), Budgeted: true})
		if err != nil {
			return nil, err
		}
		lp.prog = p
	}
	return lp.prog, nil
}

// describe is the one line a run prints about a plan it just made.
func (lp *leanPlan) describe() string {
	if lp.plan == nil {
		return fmt.Sprintf("memory: planned lean for %s (nothing to chunk)", lp.key)
	}
	return fmt.Sprintf("memory: planned lean for %s: peak %s → %s (%d chunked ops)", lp.key,
		units.FormatBytes(lp.plan.PeakBefore), units.FormatBytes(lp.plan.PeakAfter), len(lp.plan.Chunks))
}
