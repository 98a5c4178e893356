package codegen

import (
	"math"
	"os"
	"strings"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/mlx"
	"github.com/of3c/of3c/internal/units"
	"github.com/of3c/of3c/passes"
)

// runLimit is the MLX memory limit a run with inputs args is given
// (0: none): passes.RunLimit of the memory planner's estimate at the
// inputs' dims. MLX allocates each op's buffers when it encodes the op,
// ahead of the thread (CPU) or command buffers (GPU) that run it, and only
// its memory limit holds that run-ahead back; with the limit a CPU run's
// peak stays within the planner's estimate (passes/memory_limit.go;
// docs/notes/PERFORMANCE.md, "Memory planner").
//
// Where it applies: on the GPU always — the planner has no GPU model yet
// (it plans the generic lowering in the graph's dtypes), but the brake
// works the same way: OF3 PairformerBlock N = 384 on an H200 peaked at
// 6.14 GiB without and 2.27 GiB (fp32) / 1.66 GiB (bf16) with it, at the
// same compute time (docs/notes/GPU.md). On the CPU only when the graph was
// compiled under a memory budget (Options.Budgeted): there it made runs
// 12–35 % slower (2-core VM, of3bench: TriangleAttention N = 256 452/428 ms
// against 335/312 ms without, PairformerBlock N = 256 1688/1680 against
// 1508/1357 ms) for about the same process RSS.
//
// OF3C_MLX_MEMORY_LIMIT=off runs without it, =SIZE (units.ParseBytes: 4096,
// 512M, 8GiB) with that limit instead. Plans are cached per input signature; callers hold p.mu.
func (p *Program) runLimit(sig string, args []*graph.Tensor) int64 {
	if e := os.Getenv("OF3C_MLX_MEMORY_LIMIT"); e != "" {
		// "off": no limit; a byte count: that limit (measurements; on
		// the GPU too, where the planner has no model of its own yet).
		// Anything else that does not parse (e.g. "off") is 0: no limit.
		v, _ := units.ParseBytes(e)
		return v
	}
	if p.opts.Device == "cpu" && !p.opts.Budgeted {
		return 0
	}
	if lim, ok := p.limits[sig]; ok {
		return lim
	}
	dims := map[string]int64{}
	for i, v := range p.g.Inputs {
		for j, d := range v.Type.Shape {
			if d.Sym != "" && j < len(args[i].Shape) {
				if syms := graph.DimSymbols(d); len(syms) == 1 && syms[0] == d.Sym {
					dims[d.Sym] = args[i].Shape[j]
				}
			}
		}
	}
	var lim int64
	if plan, err := passes.PlanMemory(p.g, dims, math.MaxInt64/4, passes.Options{Device: p.opts.Device}); err == nil {
		lim = plan.RunLimit
	}
	if p.limits == nil {
		p.limits = map[string]int64{}
	}
	p.limits[sig] = lim
	return lim
}

// evalLimited evaluates res with MLX's memory limit set to lim (0: as it
// is), then restores the limit. Should internal/mlx's guard refuse a buffer
// larger than lim — the planner's model missed an allocation — it evaluates
// again without the limit rather than fail the run.
func evalLimited(s *mlx.Scope, lim int64, res []*mlx.Array) {
	if lim <= 0 {
		s.Eval(res...)
		return
	}
	prev := s.SetMemoryLimit(uint64(lim))
	s.Eval(res...)
	s.SetMemoryLimit(prev)
	if err := s.Err(); err != nil && strings.Contains(err.Error(), "bytes are available (memory limit") {
		s.ResetErr()
		s.Eval(res...)
	}
}
