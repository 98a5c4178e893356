package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/of3c/of3c/driver"
	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/units"
	"github.com/of3c/of3c/passes"
)

// passFlags are inspect's optimization options: which passes to run before
// printing, explanations of fusions that did not fire, and the memory plan.
type passFlags struct {
	after     *string
	passList  *string
	explain   *bool
	showLog   *bool
	dumpDir   *string
	memory    *string
	budget    *string
	device    *string
	threshold *int64
	chunk     *int64
	lmaKV     *int64
	shards    *int
	shardDims *string
}

func addPassFlags(fs *flag.FlagSet) *passFlags {
	return &passFlags{
		after:     fs.String("after", "", "optimize before printing: `PASS` runs the pipeline up to and including PASS; all runs every pass"),
		passList:  fs.String("passes", "", "comma-separated passes to run instead of the default pipeline (implies --after all)"),
		explain:   fs.Bool("explain", false, "say, for each fusion that did not fire, which condition of its pattern failed (implies --after all)"),
		showLog:   fs.Bool("log", false, "print the per-pass log (time, nodes before/after, fusions) on stderr"),
		dumpDir:   fs.String("dump-dir", "", "write the IR after every pass into `DIR`"),
		memory:    fs.String("memory", "", "print the memory plan for concrete dims, e.g. N=1024 (after all passes)"),
		budget:    fs.String("budget", "", "memory budget for --memory, e.g. 8GiB, planned as compile --memory-budget plans it (default: none; with --device gpu the lean plan that compile --buckets and a GPU run make, and on a machine with a GPU whether it fits the memory free)"),
		device:    fs.String("device", "", "for --memory: plan the lowering of this device, cpu or gpu (default: the generic lowering); any machine can plan for either"),
		threshold: fs.Int64("chunk-threshold", 0, "keys below which attention is never LMA-chunked (0: default)"),
		chunk:     fs.Int64("chunk-size", 0, "fix the row/query chunk size instead of letting the planner choose"),
		lmaKV:     fs.Int64("lma-kv-chunk", 0, "key/value chunk size for low-memory attention (0: default)"),
		shards:    fs.Int("shards", 0, "print the plan of the shard-pair pass for `P` ranks (after all passes): which node runs sharded on which axis, the collectives and their bytes"),
		shardDims: fs.String("shard-dims", "", "dims for --shards' byte counts, e.g. N=2048 (default: the pair dim = 1024)"),
	}
}

// apply runs what the flags ask for. It returns the graph to print, or nil
// when it already printed the result (the memory plan).
func (p *passFlags) apply(g *graph.Graph, stdout, stderr io.Writer) (*graph.Graph, error) {
	opts := passes.Options{
		Passes:         parseList(*p.passList),
		DumpDir:        *p.dumpDir,
		Verify:         true,
		Explain:        *p.explain,
		ChunkThreshold: *p.threshold,
		ChunkSize:      *p.chunk,
		LMAKVChunk:     *p.lmaKV,
	}
	after := *p.after
	if *p.shards == 1 || *p.shards < 0 {
		return nil, usagef("--shards %d: want 2 or more ranks", *p.shards)
	}
	if *p.shardDims != "" && *p.shards == 0 {
		return nil, usagef("--shard-dims needs --shards")
	}
	if *p.shards > 1 && *p.memory != "" {
		return nil, usagef("--shards and --memory each print a plan; give one")
	}
	opts.Shards = *p.shards
	if after == "" && (len(opts.Passes) > 0 || opts.Explain || *p.memory != "" || opts.DumpDir != "" || opts.Shards > 1) {
		after = "all"
	}
	if after == "" {
		if *p.budget != "" {
			return nil, usagef("--budget needs --memory")
		}
		return g, nil
	}
	if after != "all" {
		if len(opts.Passes) > 0 {
			return nil, usagef("--after %s and --passes both choose passes; give one", after)
		}
		names, err := passes.Select(opts)
		if err != nil {
			return nil, err
		}
		i := indexOf(names, after)
		if i < 0 {
			return nil, usagef("--after %q: not a pass of the pipeline (passes: %v)", after, names)
		}
		opts.Passes = names[:i+1]
	}
	log, err := passes.Run(g, opts)
	if log != nil && (*p.showLog || *p.explain) {
		fmt.Fprint(stderr, log.Format())
	}
	if err != nil {
		return nil, err
	}
	if opts.Shards > 1 {
		if log == nil || log.Shard == nil {
			return nil, fmt.Errorf("--shards: the shard-pair pass did not run (--after/--passes left it out)")
		}
		dims := map[string]int64{log.Shard.Dim: 1024}
		if *p.shardDims != "" {
			if dims, err = parseDims(*p.shardDims); err != nil {
				return nil, usagef("--shard-dims: %v", err)
			}
		}
		fmt.Fprint(stdout, log.Shard.Format(dims))
		return nil, nil
	}
	if *p.memory == "" {
		if *p.budget != "" {
			return nil, usagef("--budget needs --memory")
		}
		return g, nil
	}
	dims, err := parseDims(*p.memory)
	if err != nil {
		return nil, usagef("--memory: %v", err)
	}
	switch *p.device {
	case "", "cpu", "gpu":
	default:
		return nil, usagef("--device %q: want cpu or gpu", *p.device)
	}
	opts.Device = *p.device
	opts.Dims = dims
	budget := passes.NoBudget
	if *p.budget != "" {
		if budget, err = units.ParseBytes(*p.budget); err != nil {
			return nil, usagef("--budget: %v", err)
		}
	}
	if budget > 0 || *p.device == "gpu" {
		// The plan compile makes (and a GPU run makes at this size when
		// the artifact has none; driver/lean.go): form-regions and
		// plan-memory as passes, regions left whole dissolved and the
		// graph planned again. Without --budget on the GPU, the lean plan.
		popts := opts
		popts.Passes, popts.Verify = []string{"form-regions", "plan-memory"}, true
		popts.MemoryBudget, popts.Lean, popts.LeanBlock = budget, budget == 0, driver.LeanBlock()
		log, err := passes.Run(g, popts)
		if log != nil && log.Plan != nil {
			fmt.Fprint(stdout, log.Plan.Format())
		}
		if err != nil {
			return nil, err
		}
		if log.Plan != nil && *p.device == "gpu" {
			if free, what := driver.GPUAvailable(); free > 0 {
				verdict := "fits"
				if log.Plan.PeakAfter > free {
					verdict = "does not fit (a run is refused; --budget/--memory-budget plans to fit)"
				}
				fmt.Fprintf(stdout, "  %s %s: the plan %s\n", what, units.FormatBytes(free), verdict)
			}
		}
		return nil, nil
	}
	// No budget off the GPU: the estimate of the graph as it is, with the
	// row-chunked regions a planned compile would form (left whole).
	if _, err := passes.Run(g, passes.Options{Passes: []string{"form-regions"}, Verify: true}); err != nil {
		return nil, err
	}
	plan, err := passes.PlanMemory(g, dims, budget, opts)
	if plan != nil {
		fmt.Fprint(stdout, plan.Format())
	}
	if err != nil {
		return nil, err
	}
	return nil, nil
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}
