package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/of3c/of3c/codegen"
	"github.com/of3c/of3c/driver"
	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/mlx"
)

// inputFlags collects repeated --input NAME=FILE flags.
type inputFlags []string

func (f *inputFlags) String() string     { return strings.Join(*f, " ") }
func (f *inputFlags) Set(s string) error { *f = append(*f, s); return nil }

const runSynopsis = "run MODEL.of3|MODEL.onnx [--input NAME=FILE]... [--inputs FILE.npz|DIR | --shapes N=SIZE,...] [-o FILE.npz|FILE.npy|DIR] [--check FILE.npz|DIR] [options]"

func cmdRun(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("run", stderr, runSynopsis)
	var inputs inputFlags
	fs.Var(&inputs, "input", "an input as NAME=FILE (.npy, .safetensors or TensorProto .pb); repeatable")
	bundle := fs.String("inputs", "", "all inputs from an .npz archive or an ONNX test_data_set folder (input_K.pb)")
	shapes := fs.String("shapes", "", "run on generated inputs at these symbol sizes, e.g. N=1024,S=64 (seeded normal floats; inputs named *mask get 0/1)")
	seed := fs.Uint64("seed", 0, "seed for --shapes")
	out := fs.String("o", "", "write outputs to FILE.npz, FILE.npy (a model with one output) or a new folder of output_K.pb files")
	device := fs.String("device", "", "executor: cpu|gpu|ref (default: the artifact's device)")
	bucketList := fs.String("buckets", "", "override the artifact's bucket sizes, e.g. 256,512 (\"none\" turns bucketing off)")
	warmup := fs.Int("warmup", 0, "untimed runs after the first call, before the timed ones")
	iterations := fs.Int("iterations", 0, "timed runs after the first call (and the warm-up); prints min/mean/median/p90/p99/max and peak memory on stderr")
	repeat := fs.Int("repeat", 0, "the same as --iterations (kept for older scripts)")
	report := fs.String("report", "", "write the timing, memory and check report as JSON to `FILE` (also spelled --report json FILE)")
	check := fs.String("check", "", "compare the outputs with expected ones (output_K.pb files in a folder, or an .npz); exit status 1 when any element is outside the tolerance")
	atol := fs.Float64("atol", 1e-4, "absolute tolerance for --check")
	rtol := fs.Float64("rtol", 0, "relative tolerance for --check: an element passes when |got − want| ≤ atol + rtol·|want|")
	precision := fs.String("precision", "", "compute precision for ONNX models compiled on the fly (fp32|bf16|fp16)")
	explain := fs.Bool("explain", false, "print on stderr the lowering path each fused node took (docs/architecture.md lists them)")
	sharding := addShardFlags(fs)
	pos, err := parseInterleaved(fs, joinReportJSON(args))
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("run takes one model file (got %d arguments)", len(pos))
	}
	if *warmup < 0 || *iterations < 0 || *repeat < 0 {
		return usagef("--warmup, --iterations and --repeat want counts ≥ 0")
	}
	if *warmup > maxRepeat || *iterations > maxRepeat || *repeat > maxRepeat {
		return usagef("--warmup, --iterations and --repeat want counts ≤ %d", maxRepeat)
	}
	if *repeat > 0 && *iterations > 0 && *repeat != *iterations {
		return usagef("--repeat is another name for --iterations; give one of them")
	}
	if *repeat > 1 {
		*iterations = *repeat
	}
	if *warmup > 0 && *iterations == 0 {
		return usagef("--warmup needs --iterations")
	}
	if *device != "" && !listHas(driver.Devices, *device) {
		return usagef("--device %q: the valid choices are %s", *device, strings.Join(driver.Devices, ", "))
	}
	if *precision != "" && !listHas(codegen.Precisions, *precision) {
		return usagef("--precision %q: the valid choices are %s", *precision, strings.Join(codegen.Precisions, ", "))
	}
	if *atol < 0 || *rtol < 0 || math.IsNaN(*atol) || math.IsNaN(*rtol) {
		return usagef("--atol and --rtol want values ≥ 0")
	}
	if *shapes != "" && (len(inputs) > 0 || *bundle != "") {
		return usagef("--shapes generates every input; give it without --input/--inputs")
	}
	if len(inputs) == 0 && *bundle == "" && *shapes == "" {
		return usagef("no inputs: give --inputs FILE.npz|DIR, --input NAME=FILE or --shapes N=SIZE,...")
	}
	if err := sharding.check(*device); err != nil {
		return err
	}
	if *sharding.shards > 1 && *sharding.worker == 0 {
		return sharding.launch(args, stdout, stderr)
	}
	var shapeDims map[string]int64
	if *shapes != "" {
		if shapeDims, err = parseDims(*shapes); err != nil {
			return usagef("--shapes: %v", err)
		}
	}
	seen := map[string]bool{}
	for _, spec := range inputs {
		name, file, ok := strings.Cut(spec, "=")
		if !ok || name == "" || file == "" {
			return usagef("--input %q: want NAME=FILE", spec)
		}
		if seen[name] {
			return usagef("--input %s given twice", name)
		}
		seen[name] = true
	}
	if *out != "" {
		ins := []string{pos[0], *bundle, *check}
		for _, spec := range inputs {
			_, file, _ := strings.Cut(spec, "=")
			ins = append(ins, file)
		}
		ext := strings.ToLower(filepath.Ext(*out))
		if err := checkOutput(*out, ext != ".npz" && ext != ".npy", ins...); err != nil {
			return err
		}
	}
	if *report != "" {
		ins := []string{pos[0], *bundle, *check, *out}
		for _, spec := range inputs {
			_, file, _ := strings.Cut(spec, "=")
			ins = append(ins, file)
		}
		if err := checkOutput(*report, false, ins...); err != nil {
			return fmt.Errorf("--report: %w", err)
		}
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
	defer prog.done()
	prog.say("loading %s", pos[0])
	var sess *driver.Session
	rank := 0
	if *sharding.worker > 1 {
		sess, rank, err = sharding.open(pos[0], opts)
	} else {
		sess, err = driver.Open(pos[0], opts)
	}
	if err != nil {
		return err
	}
	defer sess.Close()

	in, err := gatherInputs(sess, inputs, *bundle, shapeDims, *seed)
	if err != nil {
		return err
	}
	if _, err := sess.CheckInputs(in); err != nil {
		return err
	}

	useMLX := sess.Device() != "ref" && mlx.Available()
	if useMLX {
		_ = mlx.ResetPeakMemory()
	}
	prog.say("running on %s (the first call traces and compiles)", sess.Device())
	start := time.Now()
	outs, firstStats, err := sess.Run(in)
	first := time.Since(start)
	if err != nil {
		return err
	}
	if firstStats.Planned != "" {
		prog.note("%s", firstStats.Planned)
	}
	var steady, compute, transfer []time.Duration
	if *iterations > 0 {
		if *warmup > 0 {
			prog.say("warm-up: %d runs", *warmup)
		}
		for i := 0; i < *warmup; i++ {
			if _, _, err := sess.Run(in); err != nil {
				return err
			}
		}
		prog.say("timing %d runs", *iterations)
		for i := 0; i < *iterations; i++ {
			prog.step("run %d/%d", i+1, *iterations)
			start := time.Now()
			_, st, err := sess.Run(in)
			el := time.Since(start)
			if err != nil {
				return err
			}
			steady = append(steady, el)
			compute = append(compute, st.Compute)
			transfer = append(transfer, st.Upload+st.Download)
		}
	}
	prog.done()
	if rank > 0 { // rank 0 reports and writes the (gathered) outputs
		return nil
	}
	if *explain {
		printLowerings(stderr, sess)
	}

	rep := &runReport{
		Model: pos[0], Device: sess.Device(), Of3cVersion: version,
		FirstCallMS: ms(first), FirstCallCompiled: firstStats.FirstCall,
		Warmup: *warmup, Iterations: *iterations,
		Dims: firstStats.Dims, Padded: firstStats.Padded,
	}
	if *iterations > 0 {
		l := driver.Summarize(steady)
		rep.Latency = &l
		if sess.Device() != "ref" {
			c, t := driver.Summarize(compute), driver.Summarize(transfer)
			rep.Compute, rep.Transfer = &c, &t
		}
	}
	rep.PeakRSSBytes = driver.PeakRSS()
	if useMLX {
		if m, err := mlx.Memory(); err == nil {
			rep.PeakMLXBytes = int64(m.Peak)
		}
	}
	if *iterations > 0 {
		rep.print(stderr)
	}

	order := make([]string, len(sess.Graph.Outputs))
	for i, o := range sess.Graph.Outputs {
		order[i] = o.Name
	}
	if *out != "" {
		if err := driver.WriteOutputs(*out, order, outs); err != nil {
			var npyErr *driver.NPYError
			if errors.As(err, &npyErr) {
				return usageError{npyErr.Error()}
			}
			return fmt.Errorf("writing outputs: %w", err)
		}
		fmt.Fprintf(stdout, "wrote %d outputs to %s\n", len(order), *out)
	}
	var checkErr error
	if *check != "" {
		want, err := driver.ReadExpected(*check, sess.Graph.Outputs)
		if err != nil {
			return err
		}
		res, err := driver.Compare(order, outs, want, driver.Tolerance{Atol: *atol, Rtol: *rtol})
		if err != nil {
			return err
		}
		rep.Check = res
		for i := range res.Outputs {
			fmt.Fprintln(stdout, res.Outputs[i].String())
		}
		fmt.Fprintf(stdout, "max abs err %.3g\n", res.MaxAbsErr)
		checkErr = res.Err()
		if checkErr != nil {
			for _, d := range sortedKeys(firstStats.Dims) {
				if firstStats.Padded[d] != firstStats.Dims[d] {
					fmt.Fprintf(stdout, "note: %s=%d ran padded to the bucket %d; tokens whose mask is 0 attend uniformly over the padding too, so their outputs differ from an unpadded run (use --buckets none to compare every element)\n",
						d, firstStats.Dims[d], firstStats.Padded[d])
				}
			}
		}
	}
	if *report != "" {
		if err := rep.write(*report); err != nil {
			return fmt.Errorf("writing the report: %w", err)
		}
	}
	if checkErr != nil {
		return checkErr
	}
	if *out == "" && *check == "" {
		for _, name := range order {
			fmt.Fprintf(stdout, "%s\n", describe(name, outs[name]))
		}
	}
	return nil
}

// maxRepeat bounds --warmup, --iterations and --repeat (a count beyond it
// is a typo, not a measurement).
const maxRepeat = 1_000_000

// gatherInputs reads the input files, or generates inputs for --shapes.
// Every input is checked against the model's declared type and the memory
// limit (Session.InputGate) before its data is read or generated.
func gatherInputs(sess *driver.Session, inputs inputFlags, bundle string, shapeDims map[string]int64, seed uint64) (map[string]*graph.Tensor, error) {
	gate := sess.InputGate()
	if shapeDims != nil {
		for _, v := range sess.Graph.Inputs {
			if !v.Type.Ranked {
				continue // RandomInputs refuses it
			}
			shape, err := graph.EvalShape(v.Type.Shape, shapeDims)
			if err != nil {
				continue // RandomInputs says which size is missing
			}
			if err := gate.Admit(v.Name, v.Type.DType, shape); err != nil {
				return nil, fmt.Errorf("--shapes: %w", err)
			}
		}
		in, err := driver.RandomInputs(sess.Graph.Inputs, shapeDims, seed)
		if err != nil {
			return nil, usagef("--shapes: %v", err)
		}
		return in, nil
	}
	in := map[string]*graph.Tensor{}
	if bundle != "" {
		var err error
		if in, err = driver.ReadBundle(bundle, sess.Graph.Inputs, gate); err != nil {
			return nil, err
		}
	}
	for _, spec := range inputs {
		name, file, _ := strings.Cut(spec, "=") // checked by cmdRun
		t, err := driver.ReadTensor(file, name, gate)
		if err != nil {
			return nil, err
		}
		in[name] = t
	}
	return in, nil
}

// joinReportJSON turns the two-word form `--report json FILE` into
// `--report FILE` (JSON is the only report format).
func joinReportJSON(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if (a == "--report" || a == "-report") && i+2 < len(args) && args[i+1] == "json" && !strings.HasPrefix(args[i+2], "-") {
			out = append(out, a+"="+args[i+2])
			i += 2
			continue
		}
		if a == "--" {
			return append(out, args[i:]...)
		}
		out = append(out, a)
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

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

// progress writes a transient status line to stderr when it is a terminal,
// and plain "of3c: ..." lines otherwise (CI logs show what a long first
// call is doing); per-iteration steps appear only on a terminal.
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
	msg := fmt.Sprintf(format, a...)
	if !p.tty {
		fmt.Fprintf(p.w, "of3c: %s\n", msg)
		return
	}
	fmt.Fprintf(p.w, "\r%s\r%s…", strings.Repeat(" ", p.n), msg)
	p.n = len(msg) + 3
}

// note is a line that stays (on a terminal too, where say's lines are
// overwritten by the next).
func (p *progress) note(format string, a ...any) {
	p.done()
	fmt.Fprintf(p.w, "of3c: %s\n", fmt.Sprintf(format, a...))
}

// step is a progress line shown only on a terminal.
func (p *progress) step(format string, a ...any) {
	if p.tty {
		p.say(format, a...)
	}
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
