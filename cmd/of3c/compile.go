package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/of3c/of3c/artifact"
	"github.com/of3c/of3c/codegen"
	"github.com/of3c/of3c/driver"
	"github.com/of3c/of3c/internal/safefile"
	"github.com/of3c/of3c/internal/units"
	"github.com/of3c/of3c/passes"
)

func cmdCompile(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("compile", stderr, "compile MODEL.onnx -o MODEL.of3 [options]")
	out := fs.String("o", "", "output artifact path (.of3)")
	device := fs.String("device", "cpu", "target device: cpu|gpu")
	precision := fs.String("precision", "fp32", "compute precision: fp32|bf16|fp16")
	budget := fs.String("memory-budget", "", "plan chunking so the largest bucket fits this much memory (e.g. 8GiB); needs --buckets. On --device gpu, --buckets alone plans lean chunks (about the memory of OpenFold3's chunked path)")
	threshold := fs.Int64("chunk-threshold", 0, "attention with fewer keys than this is never chunked along keys (0: planner default)")
	chunk := fs.Int64("chunk-size", 0, "fixed batch/query chunk size for the planner (0: search)")
	lma := fs.Int64("lma-kv-chunk", 0, "key/value block size for low-memory attention (0: planner default)")
	passList := fs.String("passes", "", "comma-separated `PASSES` to run, in order (default: all; docs/architecture.md lists them)")
	dump := fs.String("dump-dir", "", "write the IR after every pass into this folder")
	bucketList := fs.String("buckets", "", "token sizes to pad inputs up to at run time, e.g. 256,512,768")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("compile takes one model file (got %d arguments)", len(pos))
	}
	if *out == "" {
		return usagef("-o MODEL.of3 is required")
	}
	if err := (&codegen.Options{Device: *device, Precision: *precision}).Validate(); err != nil {
		return usagef("%v", err) // --device cuda, --precision fp8: usage errors, as in run
	}
	opts := artifact.CompileOptions{Device: *device, Precision: *precision, ChunkThreshold: *threshold, ChunkSize: *chunk, LMAKVChunk: *lma}
	if *budget != "" {
		if opts.MemoryBudget, err = units.ParseBytes(*budget); err != nil {
			return usagef("--memory-budget: %v", err)
		}
	}
	if *passList != "" {
		opts.Passes = parseList(*passList)
		for _, p := range opts.Passes {
			if !listHas(passes.Names(), p) {
				return usagef("--passes: unknown pass %q (known: %s)", p, strings.Join(passes.Names(), ","))
			}
		}
	}
	for _, v := range []struct {
		name string
		val  int64
	}{{"chunk-threshold", *threshold}, {"chunk-size", *chunk}, {"lma-kv-chunk", *lma}} {
		if v.val < 0 {
			return usagef("--%s %d: want ≥ 0", v.name, v.val)
		}
	}
	buckets, err := parseBuckets(*bucketList)
	if err != nil {
		return err
	}
	if err := checkOutput(*out, false, pos[0]); err != nil {
		return err
	}
	start := time.Now()
	ext := []string{pos[0]}
	g, m, err := driver.Compile(driver.CompileRequest{Source: pos[0], Options: opts, Buckets: buckets, DumpDir: *dump, Of3cVersion: version,
		OnExternalFile: func(p string) { ext = append(ext, p) }})
	if err != nil {
		return err
	}
	// The model's external data files are inputs too.
	if err := checkOutput(*out, false, ext...); err != nil {
		return err
	}
	data, err := driver.EncodeArtifact(m, g)
	if err != nil {
		return err
	}
	if err := safefile.WriteFileAtomic(*out, data); err != nil {
		return fmt.Errorf("writing %s: %w", *out, err)
	}
	printCompileSummary(stdout, pos[0], *out, m, time.Since(start))
	return nil
}

func listHas(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// parseBuckets reads "256,512,768".
func parseBuckets(s string) ([]int64, error) {
	var out []int64
	for _, p := range parseList(s) {
		v, err := strconv.ParseInt(p, 10, 64)
		if err != nil || v <= 0 {
			return nil, usagef("--buckets %q: want positive sizes separated by commas", s)
		}
		out = append(out, v)
	}
	return out, nil
}

func printCompileSummary(w io.Writer, src, out string, m *artifact.Manifest, took time.Duration) {
	fmt.Fprintf(w, "compiled %s → %s in %s (device %s, precision %s)\n", src, out, took.Round(time.Millisecond), m.Options.Device, m.Options.Precision)
	for _, s := range m.Inputs {
		fmt.Fprintf(w, "  input  %-12s %s[%s]\n", s.Name, s.DType, strings.Join(s.Shape, ","))
	}
	for _, s := range m.Outputs {
		fmt.Fprintf(w, "  output %-12s %s[%s]\n", s.Name, s.DType, strings.Join(s.Shape, ","))
	}
	var log passes.Log
	if json.Unmarshal(m.PassLog, &log) == nil {
		var applied []string
		for _, p := range log.Passes {
			var rw []string
			for k, n := range p.Rewrites {
				rw = append(rw, fmt.Sprintf("%s×%d", k, n))
			}
			sort.Strings(rw)
			if len(rw) > 0 {
				applied = append(applied, fmt.Sprintf("%s (%s)", p.Name, strings.Join(rw, " ")))
			}
		}
		if len(applied) > 0 {
			fmt.Fprintf(w, "  passes: %s\n", strings.Join(applied, "; "))
		}
	}
	var ops []string
	for _, k := range sortedKeys(m.OpCounts) {
		if strings.HasPrefix(k, "of3c.") || k == "LayerNormalization" {
			ops = append(ops, fmt.Sprintf("%s×%d", k, m.OpCounts[k]))
		}
	}
	if len(ops) > 0 {
		fmt.Fprintf(w, "  fused: %s\n", strings.Join(ops, " "))
	}
	if l := m.LoweringSummary(); l != "" {
		fmt.Fprintf(w, "  lowering on %s: %s\n", m.Options.Device, l)
	}
	if len(m.Buckets) > 0 {
		fmt.Fprintf(w, "  buckets %v on %s\n", m.Buckets, strings.Join(m.TokenDims, ","))
	}
	if m.Options.Device == "gpu" && len(m.Buckets) == 0 && m.Options.MemoryBudget == 0 && len(m.TokenDims) > 0 {
		fmt.Fprintf(w, "  memory: planned lean at run time, for each size the artifact runs at (OF3C_GPU_LEAN=off: not at all); --buckets N plans it now\n")
	}
	if len(m.MemoryPlan) > 0 {
		var plan passes.MemoryPlan
		if json.Unmarshal(m.MemoryPlan, &plan) == nil {
			goal := "for budget " + units.FormatBytes(plan.Budget)
			if plan.Budget <= 0 {
				goal = "lean (GPU default without a budget)"
			}
			fmt.Fprintf(w, "  memory plan: peak %s → %s %s (%d chunked ops)\n",
				units.FormatBytes(plan.PeakBefore), units.FormatBytes(plan.PeakAfter), goal, len(plan.Chunks))
		}
	}
}
