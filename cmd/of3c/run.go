package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"time"

	"of3c/codegen"
	"of3c/driver"
	"of3c/graph"
	"of3c/internal/units"
	"of3c/runtime/mlx"
)

// inputFlags collects repeated --input NAME=FILE flags.
type inputFlags []string

func (f *inputFlags) String() string     { return strings.Join(*f, " ") }
func (f *inputFlags) Set(s string) error { *f = append(*f, s); return nil }

func cmdRun(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("run", stderr, "run MODEL.of3|MODEL.onnx [--input NAME=FILE]... [--inputs FILE.npz|DIR] [-o FILE.npz|DIR] [options]")
	var inputs inputFlags
	fs.Var(&inputs, "input", "an input as NAME=FILE (.npy, .safetensors or TensorProto .pb); repeatable")
	bundle := fs.String("inputs", "", "all inputs from an .npz archive or an ONNX test_data_set folder (input_K.pb)")
	out := fs.String("o", "", "write outputs to FILE.npz or to a new folder of output_K.pb files")
	device := fs.String("device", "", "executor: cpu|gpu|ref (default: the artifact's device)")
	bucketList := fs.String("buckets", "", "override the artifact's bucket sizes, e.g. 256,512 (\"none\" turns bucketing off)")
	repeat := fs.Int("repeat", 1, "with N > 1: after the first call, run N more times and print on stderr the first-call time, the median of the N runs and peak memory")
	check := fs.String("check", "", "compare the outputs with output_K.pb files in this folder and print the max abs error")
	precision := fs.String("precision", "", "compute precision for ONNX models compiled on the fly (fp32|bf16|fp16)")
	explain := fs.Bool("explain", false, "print on stderr the lowering path each fused node took (docs/architecture.md lists them)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("run takes one model file (got %d arguments)", len(pos))
	}
	if *repeat < 1 {
		return usagef("--repeat %d: want ≥ 1", *repeat)
	}
	if *device != "" && !listHas(driver.Devices, *device) {
		return usagef("--device %q: want cpu|gpu|ref", *device)
	}
	if len(inputs) == 0 && *bundle == "" {
		return usagef("no inputs: give --inputs FILE.npz|DIR or --input NAME=FILE")
	}
	opts := driver.Options{Device: *device, Precision: *precision, Of3cVersion: version}
	switch *bucketList {
	case "":
	case "none":
		opts.Buckets = []int64{}
	default:
		if opts.Buckets, err = parseBuckets(*bucketList); err != nil {
			return err
		}
	}
	prog := newProgress(stderr)
	prog.say("loading %s", pos[0])
	sess, err := driver.Open(pos[0], opts)
	if err != nil {
		prog.done()
		return err
	}
	defer sess.Close()

	in := map[string]*graph.Tensor{}
	if *bundle != "" {
		if in, err = driver.ReadBundle(*bundle, sess.Graph.Inputs); err != nil {
			prog.done()
			return err
		}
	}
	for _, spec := range inputs {
		name, file, ok := strings.Cut(spec, "=")
		if !ok || name == "" || file == "" {
			prog.done()
			return usagef("--input %q: want NAME=FILE", spec)
		}
		t, err := driver.ReadTensor(file, name)
		if err != nil {
			prog.done()
			return err
		}
		in[name] = t
	}
	if _, err := sess.CheckInputs(in); err != nil {
		prog.done()
		return err
	}

	if *device != "ref" && mlx.Available() {
		_ = mlx.ResetPeakMemory()
	}
	var outs map[string]*graph.Tensor
	var first time.Duration
	var steady, compute, transfer []time.Duration
	var firstCompiled bool
	var firstStats driver.RunStats
	runs := 1
	if *repeat > 1 {
		runs = 1 + *repeat
	}
	for i := 0; i < runs; i++ {
		if i == 0 {
			prog.say("running on %s (the first call traces and compiles)", sess.Device())
		} else {
			prog.say("run %d/%d", i, *repeat)
		}
		start := time.Now()
		o, st, err := sess.Run(in)
		el := time.Since(start)
		if err != nil {
			prog.done()
			return err
		}
		if i == 0 {
			first, firstCompiled, outs, firstStats = el, st.FirstCall, o, st
		} else {
			steady = append(steady, el)
			compute = append(compute, st.Compute)
			transfer = append(transfer, st.Upload+st.Download)
		}
	}
	prog.done()
	if *explain {
		printLowerings(stderr, sess)
	}

	if *repeat > 1 {
		note := ""
		if firstCompiled {
			note = " (includes tracing and MLX compile)"
		}
		fmt.Fprintf(stderr, "first call %.1f ms%s\n", ms(first), note)
		fmt.Fprintf(stderr, "median %.3f ms over %d runs (min %.3f ms, max %.3f ms)\n", ms(median(steady)), len(steady), ms(minDur(steady)), ms(maxDur(steady)))
		if *device != "ref" {
			fmt.Fprintf(stderr, "  of which: compute median %.3f ms (min %.3f ms; inputs already on the device), inputs in + outputs out median %.3f ms\n",
				ms(median(compute)), ms(minDur(compute)), ms(median(transfer)))
		}
		if *device != "ref" && mlx.Available() {
			if m, err := mlx.Memory(); err == nil {
				fmt.Fprintf(stderr, "peak memory: MLX %s, process RSS %s\n", units.FormatBytes(int64(m.Peak)), units.FormatBytes(driver.PeakRSS()))
			}
		} else {
			fmt.Fprintf(stderr, "peak memory: process RSS %s\n", units.FormatBytes(driver.PeakRSS()))
		}
	}

	order := make([]string, len(sess.Graph.Outputs))
	for i, o := range sess.Graph.Outputs {
		order[i] = o.Name
	}
	if *out != "" {
		if err := driver.WriteOutputs(*out, order, outs); err != nil {
			return fmt.Errorf("writing outputs: %w", err)
		}
		fmt.Fprintf(stdout, "wrote %d outputs to %s\n", len(order), *out)
	}
	if *check != "" {
		want, err := driver.ReadExpected(*check, sess.Graph.Outputs)
		if err != nil {
			return err
		}
		worst := 0.0
		for _, name := range order {
			w := want[name]
			if w == nil {
				fmt.Fprintf(stdout, "check %s: no expected output in %s\n", name, *check)
				continue
			}
			d, err := maxAbsErr(outs[name], w)
			if err != nil {
				return fmt.Errorf("check %s: %w", name, err)
			}
			worst = math.Max(worst, d)
			fmt.Fprintf(stdout, "check %s %v: max abs err %.3g\n", name, outs[name].Shape, d)
		}
		fmt.Fprintf(stdout, "max abs err %.3g\n", worst)
		for _, d := range sortedKeys(firstStats.Dims) {
			if firstStats.Padded[d] != firstStats.Dims[d] {
				fmt.Fprintf(stdout, "note: %s=%d ran padded to the bucket %d; tokens whose mask is 0 attend uniformly over the padding too, so their outputs differ from an unpadded run (use --buckets none to compare every element)\n",
					d, firstStats.Dims[d], firstStats.Padded[d])
			}
		}
	}
	if *out == "" && *check == "" {
		for _, name := range order {
			fmt.Fprintf(stdout, "%s\n", describe(name, outs[name]))
		}
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration{}, ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func minDur(ds []time.Duration) time.Duration {
	m := time.Duration(math.MaxInt64)
	for _, d := range ds {
		m = min(m, d)
	}
	if len(ds) == 0 {
		return 0
	}
	return m
}

func maxDur(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

// maxAbsErr compares two numeric tensors of the same shape as float64.
func maxAbsErr(got, want *graph.Tensor) (float64, error) {
	if got == nil {
		return 0, errors.New("no output")
	}
	if fmt.Sprint(got.Shape) != fmt.Sprint(want.Shape) {
		return 0, fmt.Errorf("shape %v, expected %v", got.Shape, want.Shape)
	}
	g, err := got.Float64s()
	if err != nil {
		return 0, err
	}
	w, err := want.Float64s()
	if err != nil {
		return 0, err
	}
	d := 0.0
	for i := range g {
		switch {
		case g[i] == w[i], math.IsNaN(g[i]) && math.IsNaN(w[i]):
		case math.IsNaN(g[i]) || math.IsNaN(w[i]):
			return math.Inf(1), nil
		default:
			d = math.Max(d, math.Abs(g[i]-w[i]))
		}
	}
	return d, nil
}

// describe summarises an output for the terminal.
func describe(name string, t *graph.Tensor) string {
	vals, err := t.Float64s()
	if err != nil || len(vals) == 0 {
		return fmt.Sprintf("%s %s%v", name, t.DType, t.Shape)
	}
	lo, hi, sum := math.Inf(1), math.Inf(-1), 0.0
	for _, v := range vals {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
		sum += v
	}
	return fmt.Sprintf("%s %s%v min %.4g max %.4g mean %.4g", name, t.DType, t.Shape, lo, hi, sum/float64(len(vals)))
}

// progress writes a transient status line to stderr when it is a terminal
// and nothing otherwise (logs stay clean).
type progress struct {
	w   io.Writer
	tty bool
	n   int
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) say(format string, a ...any) {
	if !p.tty {
		return
	}
	msg := fmt.Sprintf(format, a...)
	fmt.Fprintf(p.w, "\r%s\r%s…", strings.Repeat(" ", p.n), msg)
	p.n = len(msg) + 3
}

func (p *progress) done() {
	if p.tty && p.n > 0 {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.n))
		p.n = 0
	}
}

// printLowerings writes the lowering path each fused node took in the
// session's latest run, with what the compile planned when it differs.
func printLowerings(w io.Writer, sess *driver.Session) {
	ls := sess.Lowerings()
	if len(ls) == 0 {
		fmt.Fprintf(w, "lowering: no fused nodes lowered on %s\n", sess.Device())
		return
	}
	planned := map[string]string{}
	for _, l := range sess.Manifest.Lowerings {
		planned[l.Node] = l.Path
	}
	fmt.Fprintf(w, "lowering paths on %s: %s\n", sess.Device(), codegen.FormatLowerings(ls))
	for _, l := range ls {
		note := ""
		if l.Block > 0 {
			note = fmt.Sprintf(" (CPU blocks of %d)", l.Block)
		}
		if p, ok := planned[l.Node]; ok && p != string(l.Path) && sess.Device() == sess.Manifest.Options.Device {
			note += fmt.Sprintf(" (compile planned %s)", p)
		}
		fmt.Fprintf(w, "  %-40s %-30s %s%s\n", l.Node, l.Op, l.Path, note)
	}
}
