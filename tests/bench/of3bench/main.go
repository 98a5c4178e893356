// Command of3bench compares of3c (MLX on the CPU) with onnxruntime (CPU, all
// graph optimizations, the same thread count) on the same ONNX files, in one
// run: the OF3-width PairformerBlock and TriangleAttention fixtures at
// several token counts N, with inputs generated here (the fixtures have a
// dynamic N). It is a program, not a test: timings depend on the machine.
//
//	go run ./tests/bench/of3bench [-threads 2] [-repeat 5] [-pairformer 64,128,256,384] [-triatt 128,256] [-md FILE]
//
// Every measurement runs in a fresh child process (of3bench -child for
// of3c, tests/bench/of3bench/ort_bench.py for onnxruntime) so that peak RSS
// (VmHWM / ru_maxrss) belongs to that one model and size. The first call
// (session creation, tracing and MLX compilation for of3c) is reported
// apart from the steady-state median. Both sides' outputs are compared.
//
//	of3bench -iobench 64,512,2048 -device gpu [-iomodes managed,direct,staged,registered] [-ioreps 10]
//
// instead times host↔GPU transfers of f32 arrays of those sizes (MiB) in
// each transfer mode (OF3C_GPU_IO_MODE), in one process (iobench.go).
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/of3c/of3c/artifact"
	"github.com/of3c/of3c/codegen"
	"github.com/of3c/of3c/driver"
	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/importer/npy"
	"github.com/of3c/of3c/internal/mlx"
	"github.com/of3c/of3c/internal/safefile"
	"github.com/of3c/of3c/internal/units"
	"github.com/of3c/of3c/passes"
)

const (
	// The real-width block is generated on demand (models/of3/README.md:
	// scripts/gpu/export_fixtures.sh on a machine with torch).
	pairformerModel = "models/of3/generated/testdata/pairformer_block_of3_torchscript/model.onnx"
	triAttModel     = "models/of3/testdata/tri_att_start_of3_torchscript/model.onnx"
	ortScript       = "tests/bench/of3bench/ort_bench.py"
	python          = ".venv/bin/python"
)

// result is what one child reports.
type result struct {
	FirstMS  float64 `json:"first_ms"`
	MedianMS float64 `json:"median_ms"`
	MinMS    float64 `json:"min_ms"`
	PeakRSS  int64   `json:"peak_rss"`
	MLXPeak  int64   `json:"mlx_peak,omitempty"`
	Chunks   string  `json:"chunks,omitempty"`
	Err      string  `json:"error,omitempty"`
}

func main() {
	child := flag.Bool("child", false, "internal: time of3c on one model in this process")
	model := flag.String("model", "", "internal (-child): ONNX model")
	inputs := flag.String("inputs", "", "internal (-child): inputs .npz")
	out := flag.String("out", "", "internal (-child): outputs .npz")
	budget := flag.Int64("budget", 0, "internal (-child): memory budget in bytes (plans chunking)")
	threads := flag.Int("threads", 2, "threads for both runtimes (BLAS and onnxruntime intra-op)")
	repeat := flag.Int("repeat", 5, "steady-state runs per measurement (median reported)")
	pf := flag.String("pairformer", "64,128,256,384", "PairformerBlock token counts")
	ta := flag.String("triatt", "128,256", "TriangleAttention token counts")
	md := flag.String("md", "", "also write the table (markdown) to this file")
	profile := flag.String("profile", "", "instead of the table: per-op times of this ONNX model at -n (eager, each node evaluated)")
	pn := flag.Int64("n", 128, "token count for -profile")
	pdev := flag.String("device", "cpu", "device for -profile: cpu or gpu")
	pprec := flag.String("precision", "fp32", "precision for -profile: fp32, bf16 or fp16")
	iob := flag.String("iobench", "", "instead of the table: time moving f32 arrays of these many MiB (a list: 64,512,2048) to -device and back")
	iomodes := flag.String("iomodes", strings.Join(mlx.GPUTransferModes, ","), "with -iobench -device gpu: the transfer modes to compare (OF3C_GPU_IO_MODE values)")
	ioreps := flag.Int("ioreps", 10, "with -iobench: repetitions per size and mode (median reported)")
	flag.Parse()
	if *iob != "" {
		if err := runIOBench(*pdev, sizes(*iob), strings.Split(*iomodes, ","), *ioreps); err != nil {
			fmt.Fprintln(os.Stderr, "of3bench:", err)
			os.Exit(1)
		}
		return
	}
	if *profile != "" {
		if err := runProfile(*profile, *pn, *budget, *pdev, *pprec); err != nil {
			fmt.Fprintln(os.Stderr, "of3bench:", err)
			os.Exit(1)
		}
		return
	}
	if *child {
		r := runChild(*model, *inputs, *out, *budget, *repeat)
		json.NewEncoder(os.Stdout).Encode(r)
		return
	}
	if err := run(*threads, *repeat, sizes(*pf), sizes(*ta), *md); err != nil {
		fmt.Fprintln(os.Stderr, "of3bench:", err)
		os.Exit(1)
	}
}

func sizes(s string) []int64 {
	var out []int64
	for _, p := range strings.Split(s, ",") {
		if v, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64); err == nil && v > 0 {
			out = append(out, v)
		}
	}
	return out
}

type bcase struct {
	name    string
	model   string
	n       int64
	chunked bool
}

func run(threads, repeat int, pf, ta []int64, mdPath string) error {
	for _, p := range []string{pairformerModel, triAttModel, ortScript, python} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s: %v (run from the repository root after `make setup`)", p, err)
		}
	}
	tmp, err := os.MkdirTemp("", "of3bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var cases []bcase
	for _, n := range pf {
		cases = append(cases, bcase{"PairformerBlock", pairformerModel, n, false})
	}
	if len(pf) > 0 {
		cases = append(cases, bcase{"PairformerBlock", pairformerModel, pf[len(pf)-1], true})
	}
	for _, n := range ta {
		cases = append(cases, bcase{"TriangleAttention", triAttModel, n, false})
	}
	if len(ta) > 0 {
		cases = append(cases, bcase{"TriangleAttention", triAttModel, ta[len(ta)-1], true})
	}
	host, _ := os.Hostname()
	header := fmt.Sprintf("machine: %s, %d CPUs (GOMAXPROCS %d), %s; MLX %s (BLAS: %s); threads %d; repeat %d; %s",
		host, runtime.NumCPU(), runtime.GOMAXPROCS(0), cpuModel(), mlx.Version(), mlx.BLAS(), threads, repeat, time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Println(header)
	var rows []string
	rows = append(rows, "| model | N | chunking | of3c median ms | ORT median ms | ORT/of3c | of3c first call ms | ORT first call ms | of3c peak RSS | ORT peak RSS | MLX peak | max abs diff |",
		"|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, c := range cases {
		in := filepath.Join(tmp, fmt.Sprintf("in_%s_%d.npz", c.name, c.n))
		if err := writeInputs(c.model, c.n, in); err != nil {
			return err
		}
		ofOut := filepath.Join(tmp, "of3c_out.npz")
		ortOut := filepath.Join(tmp, "ort_out.npz")
		var budget int64
		chunking := "none"
		if c.chunked {
			// Half the unchunked estimate makes the planner chunk the
			// attention and transition intermediates.
			var est int64
			budget, est = chunkBudget(c.model, c.n)
			chunking = fmt.Sprintf("budget %s (estimate unchunked %s)", units.FormatBytes(budget), units.FormatBytes(est))
		}
		env := threadEnv(threads)
		of := childResult(exec.Command(os.Args[0], "-child", "-model", c.model, "-inputs", in, "-out", ofOut,
			"-budget", strconv.FormatInt(budget, 10), "-repeat", strconv.Itoa(repeat)), env)
		var ort result
		if !c.chunked {
			ort = childResult(exec.Command(python, ortScript, c.model, in, strconv.Itoa(threads), strconv.Itoa(repeat), ortOut), env)
		}
		diff := "—"
		if of.Err == "" && ort.Err == "" && !c.chunked {
			diff = compare(ofOut, ortOut)
		}
		if of.Chunks != "" {
			chunking += " (" + of.Chunks + ")"
		}
		row := fmt.Sprintf("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |", c.name, c.n, chunking,
			ms(of, of.MedianMS), ms(ort, ort.MedianMS), ratio(ort, of, c.chunked), ms(of, of.FirstMS), ms(ort, ort.FirstMS),
			mem(of, of.PeakRSS), mem(ort, ort.PeakRSS), mem(of, of.MLXPeak), diff)
		if c.chunked {
			row = strings.Replace(row, "| — | — |", "| (not run) | — |", 1)
		}
		fmt.Println(row)
		if of.Err != "" {
			fmt.Println("  of3c error:", of.Err)
		}
		if ort.Err != "" {
			fmt.Println("  onnxruntime error:", ort.Err)
		}
		rows = append(rows, row)
	}
	if mdPath != "" {
		cmd := "go run ./tests/bench/of3bench " + strings.Join(os.Args[1:], " ")
		text := header + "\n\ncommand: `" + cmd + "`\n\n" + strings.Join(rows, "\n") + "\n"
		return safefile.WriteFileAtomic(mdPath, []byte(text))
	}
	return nil
}

func threadEnv(threads int) []string {
	t := strconv.Itoa(threads)
	return append(os.Environ(), "OPENBLAS_NUM_THREADS="+t, "OMP_NUM_THREADS="+t, "MKL_NUM_THREADS="+t)
}

func childResult(cmd *exec.Cmd, env []string) result {
	cmd.Env = env
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	var r result
	lines := strings.Split(strings.TrimSpace(so.String()), "\n")
	if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &r); jerr != nil {
		msg := strings.TrimSpace(se.String())
		if err != nil {
			msg = err.Error() + ": " + lastLine(msg)
		}
		return result{Err: msg}
	}
	return r
}

func lastLine(s string) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	return ls[len(ls)-1]
}

func ms(r result, v float64) string {
	if r.Err != "" || v == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f", v)
}

func mem(r result, v int64) string {
	if r.Err != "" || v == 0 {
		return "—"
	}
	return units.FormatBytes(v)
}

func ratio(ort, of result, chunked bool) string {
	if chunked || ort.Err != "" || of.Err != "" || of.MedianMS == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", ort.MedianMS/of.MedianMS)
}

// writeInputs generates inputs for the model at N: activations uniform in
// [-1, 1], masks all ones except the last 5% of tokens (padding-like).
func writeInputs(model string, n int64, path string) error {
	g, _, err := driver.Compile(driver.CompileRequest{Source: model, Options: artifact.CompileOptions{Passes: []string{"infer-shapes"}}})
	if err != nil {
		return err
	}
	env := map[string]int64{"N": n}
	ts := map[string]*graph.Tensor{}
	var names []string
	for i, v := range g.Inputs {
		shape, err := graph.EvalShape(v.Type.Shape, env)
		if err != nil {
			return fmt.Errorf("input %s: %w", v.Name, err)
		}
		var t *graph.Tensor
		if strings.Contains(v.Name, "mask") {
			cnt := int64(1)
			for _, d := range shape {
				cnt *= d
			}
			vals := make([]float32, cnt)
			valid := n - n/20
			last := shape[len(shape)-1]
			for k := range vals {
				j := int64(k) % last
				i := int64(k) / last % n
				if j < valid && (len(shape) == 1 || i < valid) {
					vals[k] = 1
				}
			}
			t = graph.NewTensorF32(shape, vals)
		} else if t, err = graph.RandomTensor(graph.Float32, shape, uint64(17+i), -1, 1); err != nil {
			return err
		}
		ts[v.Name] = t
		names = append(names, v.Name)
	}
	return npy.WriteNPZ(path, names, ts)
}

// chunkBudget returns the smallest of a few fractions of the unchunked peak
// estimate at N that the planner can meet by chunking (so the chunked run
// shows the largest memory saving the planner finds), and that estimate.
func chunkBudget(model string, n int64) (budget, peak int64) {
	g, _, err := driver.Compile(driver.CompileRequest{Source: model})
	if err != nil {
		return 1 << 30, 0
	}
	dims := map[string]int64{"N": n}
	p, err := passes.PlanMemory(g, dims, math.MaxInt64/4, passes.Options{})
	if err != nil {
		return 1 << 30, 0
	}
	peak = p.PeakBefore
	for _, f := range []float64{0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9} {
		b := int64(f * float64(peak))
		if _, err := passes.PlanMemory(g, dims, b, passes.Options{}); err == nil {
			return b, peak
		}
	}
	return peak, peak
}

// compare reports the max abs difference between two output archives.
func compare(a, b string) string {
	_, ta, err := npy.ReadNPZ(a)
	if err != nil {
		return "?"
	}
	_, tb, err := npy.ReadNPZ(b)
	if err != nil {
		return "?"
	}
	worst := 0.0
	for name, x := range ta {
		y := tb[name]
		if y == nil {
			return "missing " + name
		}
		xv, _ := x.Float64s()
		yv, _ := y.Float64s()
		if len(xv) != len(yv) {
			return "shape mismatch"
		}
		for i := range xv {
			worst = math.Max(worst, math.Abs(xv[i]-yv[i]))
		}
	}
	return fmt.Sprintf("%.1e", worst)
}

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "model name") {
			if _, v, ok := strings.Cut(l, ":"); ok {
				return strings.TrimSpace(v)
			}
		}
	}
	return "unknown CPU"
}

// runChild compiles and times of3c in this process.
func runChild(model, inputs, out string, budget int64, repeat int) result {
	start := time.Now()
	opts := artifact.CompileOptions{Device: "cpu", Precision: "fp32"}
	var buckets []int64
	_, ts, err := npy.ReadNPZ(inputs)
	if err != nil {
		return result{Err: err.Error()}
	}
	if budget > 0 {
		opts.MemoryBudget = budget
		for _, t := range ts {
			if len(t.Shape) > 0 {
				buckets = []int64{t.Shape[0]}
				break
			}
		}
	}
	g, m, err := driver.Compile(driver.CompileRequest{Source: model, Options: opts, Buckets: buckets})
	if err != nil {
		return result{Err: err.Error()}
	}
	s, err := driver.New(g, m, driver.Options{SkipMemoryCheck: true})
	if err != nil {
		return result{Err: err.Error()}
	}
	defer s.Close()
	outs, _, err := s.Run(ts)
	if err != nil {
		return result{Err: err.Error()}
	}
	r := result{FirstMS: float64(time.Since(start)) / 1e6}
	var times []float64
	for i := 0; i < repeat; i++ {
		t0 := time.Now()
		if _, _, err := s.Run(ts); err != nil {
			return result{Err: err.Error()}
		}
		times = append(times, float64(time.Since(t0))/1e6)
	}
	sort.Float64s(times)
	if len(times) > 0 {
		r.MedianMS = times[len(times)/2]
		if len(times)%2 == 0 {
			r.MedianMS = (times[len(times)/2-1] + times[len(times)/2]) / 2
		}
		r.MinMS = times[0]
	}
	if ms, err := mlx.Memory(); err == nil {
		r.MLXPeak = int64(ms.Peak)
	}
	r.PeakRSS = driver.PeakRSS()
	var order []string
	for _, o := range g.Outputs {
		order = append(order, o.Name)
	}
	if err := npy.WriteNPZ(out, order, outs); err != nil {
		return result{Err: err.Error()}
	}
	var ch []string
	for _, n := range g.Nodes {
		var at []string
		for _, k := range []string{"batch_chunk", "query_chunk", "kv_chunk", "row_chunk"} {
			if v := n.AttrInt(k, 0); v > 0 {
				at = append(at, fmt.Sprintf("%s=%d", k, v))
			}
		}
		if len(at) > 0 {
			ch = append(ch, n.Op+" "+strings.Join(at, ","))
		}
	}
	r.Chunks = strings.Join(ch, "; ")
	return r
}

// runProfile prints where one run's time goes, per op and per node.
func runProfile(model string, n, budget int64, device, precision string) error {
	tmp, err := os.MkdirTemp("", "of3bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	in := filepath.Join(tmp, "in.npz")
	if err := writeInputs(model, n, in); err != nil {
		return err
	}
	_, ts, err := npy.ReadNPZ(in)
	if err != nil {
		return err
	}
	// Compiled as `of3c compile --buckets N` would: on the GPU that is the
	// lean plan (or the budget's), so the profile is of what users run.
	opts := artifact.CompileOptions{Device: device, Precision: precision, MemoryBudget: budget}
	g, m, err := driver.Compile(driver.CompileRequest{Source: model, Options: opts, Buckets: []int64{n}})
	if err != nil {
		return err
	}
	p, err := codegen.NewProgram(g, codegen.Options{Device: device, Precision: precision,
		Budgeted: budget > 0 || len(m.MemoryPlan) > 0})
	if err != nil {
		return err
	}
	defer p.Close()
	if _, _, err := p.Profile(ts); err != nil { // warm-up
		return err
	}
	nodes, ops, err := p.Profile(ts)
	if err != nil {
		return err
	}
	var total time.Duration
	for _, o := range ops {
		total += o.Time
	}
	fmt.Printf("eager total %.1f ms at N=%d (%s, %s)\n", float64(total)/1e6, n, device, precision)
	paths := map[string]int{}
	for _, l := range m.Lowerings {
		paths[l.Path]++
	}
	fmt.Printf("  lowerings %v; memory plan %d bytes of JSON\n", paths, len(m.MemoryPlan))
	for _, o := range ops {
		fmt.Printf("  %-22s %4d× %9.2f ms  %5.1f%%\n", o.Op, o.Count, float64(o.Time)/1e6, 100*float64(o.Time)/float64(total))
	}
	fmt.Println("slowest nodes:")
	for _, o := range nodes[:min(12, len(nodes))] {
		fmt.Printf("  %-22s %-50s %9.2f ms\n", o.Op, o.Name, float64(o.Time)/1e6)
	}
	// Memory: how far MLX's memory rose while each node was evaluated (its
	// outputs and its lowering's workspace), largest first.
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Work > nodes[j].Work })
	fmt.Println("largest memory rise per node (outputs + workspace while evaluated):")
	for _, o := range nodes[:min(12, len(nodes))] {
		fmt.Printf("  %-22s %-50s %10s\n", o.Op, o.Name, units.FormatBytes(int64(o.Work)))
	}
	return nil
}
