// Package conformance runs ONNX backend node tests (a model.onnx plus
// test_data_set_*/input_K.pb and output_K.pb per test folder) against an of3c
// backend and compares the outputs with the ONNX backend-test tolerances.
//
// Backends register by name; "ref" (the pure-Go reference executor) is built
// in, and other executors (MLX) register themselves from their own packages.
package conformance

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/importer"
	"github.com/of3c/of3c/runtime/ref"
)

// Backend executes a whole graph on named inputs and returns every graph
// output by name.
type Backend interface {
	Run(g *graph.Graph, inputs map[string]*graph.Tensor) (map[string]*graph.Tensor, error)
}

// NodeChecker is optionally implemented by a backend that supports fewer ops
// than graph registers; a non-nil error skips the test with that reason.
type NodeChecker interface {
	CheckNode(n *graph.Node) error
}

// BackendFunc adapts a function to Backend.
type BackendFunc func(g *graph.Graph, inputs map[string]*graph.Tensor) (map[string]*graph.Tensor, error)

func (f BackendFunc) Run(g *graph.Graph, inputs map[string]*graph.Tensor) (map[string]*graph.Tensor, error) {
	return f(g, inputs)
}

var (
	backendsMu sync.Mutex
	backends   = map[string]Backend{}
)

// Register makes a backend available under name (for the -backend flag).
func Register(name string, b Backend) {
	backendsMu.Lock()
	defer backendsMu.Unlock()
	if _, dup := backends[name]; dup {
		panic("conformance: backend registered twice: " + name)
	}
	backends[name] = b
}

// LookupBackend returns the backend registered under name.
func LookupBackend(name string) (Backend, error) {
	backendsMu.Lock()
	defer backendsMu.Unlock()
	if b, ok := backends[name]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("unknown backend %q (have %s)", name, strings.Join(backendNames(), ", "))
}

// BackendNames lists the registered backends, sorted.
func BackendNames() []string {
	backendsMu.Lock()
	defer backendsMu.Unlock()
	return backendNames()
}

func backendNames() []string {
	names := make([]string, 0, len(backends))
	for n := range backends {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// refBackend checks kernels as well as the registry, so a missing kernel is
// a skip with a reason rather than a failure.
type refBackend struct{}

func (refBackend) Run(g *graph.Graph, inputs map[string]*graph.Tensor) (map[string]*graph.Tensor, error) {
	return ref.Run(g, inputs)
}

func (refBackend) CheckNode(n *graph.Node) error {
	if !ref.HasKernel(n.QualifiedOp()) {
		return &graph.UnsupportedOpError{Domain: n.Domain, Op: n.Op, Opset: n.Opset, Node: n.Name, Reason: "no reference kernel"}
	}
	return nil
}

func init() { Register("ref", refBackend{}) }

// DefaultDebianDir is where Debian's libonnx-testdata puts the node tests.
const DefaultDebianDir = "/usr/share/libonnx-testdata/data/node"

// WheelNodeDir finds the node tests shipped inside the onnx Python package of
// the virtual environment under root, or "" when there are none (the onnx
// 1.23 wheel no longer ships them).
func WheelNodeDir(root string) string {
	matches, _ := filepath.Glob(filepath.Join(root, ".venv/lib/python3*/site-packages/onnx/backend/test/data/node"))
	for _, m := range matches {
		if st, err := os.Stat(m); err == nil && st.IsDir() {
			return m
		}
	}
	return ""
}

// Case is one node test.
type Case struct {
	Name   string // folder name, e.g. test_add_bcast, prefixed "label/" outside Debian's data
	Dir    string
	Source string // the label of the data it came from ("" for Debian's)
}

// Discover lists the folders under root that hold a model.onnx (test_* in
// ONNX's data, fixture names in models/of3/testdata);
// with a non-empty label, names are "label/test_x".
func Discover(root, label string) ([]Case, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var cases []Case
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(root, e.Name())
		if _, err := os.Stat(filepath.Join(dir, "model.onnx")); err != nil {
			continue
		}
		name := e.Name()
		if label != "" {
			name = label + "/" + name
		}
		cases = append(cases, Case{Name: name, Dir: dir, Source: label})
	}
	return cases, nil
}

// Status is a test outcome.
type Status int

const (
	Pass           Status = iota
	Fail                  // an unexpected failure
	Skip                  // uses something of3c does not support
	ExpectedFail          // failed, and listed in the expected failures
	UnexpectedPass        // listed as an expected failure, but passed
)

func (s Status) String() string {
	return [...]string{"PASS", "FAIL", "SKIP", "XFAIL", "XPASS"}[s]
}

// Result is the outcome of one case.
type Result struct {
	Case
	Ops    []string // distinct qualified ops of the model, sorted
	Status Status
	Reason string // why it failed or was skipped
}

// Options configure a run.
type Options struct {
	Backend  Backend
	Expected map[string]string // test name → reason it is known to fail
	Filter   *regexp.Regexp    // nil runs every case
	Jobs     int               // parallel cases; ≤ 0 means GOMAXPROCS
	// Tol is the float tolerance; the zero value means ONNX's (RTol, ATol).
	Tol Tolerance
	// Timeout bounds one case (all its data sets); 0 means DefaultTimeout. A
	// case that runs longer fails with "timed out" (its goroutine is left
	// behind), so a hung backend or pass cannot hang the whole run.
	Timeout time.Duration
	// Prepare, when set, transforms each imported graph before it runs
	// (e.g. the optimization passes, so every node test also checks that
	// they preserve the graph's meaning). Its error fails the test.
	Prepare func(g *graph.Graph) error
}

// Tolerance bounds float differences: |got − want| ≤ ATol + RTol·|want|.
type Tolerance struct{ RTol, ATol float64 }

// ONNXTolerance is what ONNX's backend tests use.
var ONNXTolerance = Tolerance{RTol: RTol, ATol: ATol}

// RunAll runs the cases (those matching the filter) and returns their
// results in the cases' order.
func RunAll(cases []Case, opts Options) []Result {
	var selected []Case
	for _, c := range cases {
		if opts.Filter == nil || opts.Filter.MatchString(c.Name) {
			selected = append(selected, c)
		}
	}
	jobs := opts.Jobs
	if jobs <= 0 {
		jobs = runtime.GOMAXPROCS(0)
	}
	results := make([]Result, len(selected))
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < jobs; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				results[i] = RunCase(selected[i], opts)
			}
		}()
	}
	for i := range selected {
		next <- i
	}
	close(next)
	wg.Wait()
	return results
}

// DefaultTimeout is the per-case limit: node tests take milliseconds, the
// OF3 fixtures well under a second.
const DefaultTimeout = 2 * time.Minute

// RunCase runs one node test on every one of its data sets.
func RunCase(c Case, opts Options) Result {
	limit := opts.Timeout
	if limit <= 0 {
		limit = DefaultTimeout
	}
	done := make(chan Result, 1)
	go func() { done <- runCaseNow(c, opts) }()
	select {
	case r := <-done:
		return r
	case <-time.After(limit):
		return classify(c, opts, Result{Case: c, Status: Fail, Reason: fmt.Sprintf("timed out after %v", limit)})
	}
}

// classify turns failures and passes of listed tests into XFAIL and XPASS.
func classify(c Case, opts Options, res Result) Result {
	if reason, listed := opts.Expected[c.Name]; listed {
		switch res.Status {
		case Fail:
			res.Status, res.Reason = ExpectedFail, reason+" ("+res.Reason+")"
		case Pass:
			res.Status, res.Reason = UnexpectedPass, "listed as an expected failure but passes: remove it from the list"
		}
	}
	return res
}

func runCaseNow(c Case, opts Options) (res Result) {
	res.Case = c
	defer func() {
		// A panic anywhere below is a bug worth a failure, not a crashed run.
		if r := recover(); r != nil {
			res.Status, res.Reason = Fail, fmt.Sprintf("panic: %v", r)
		}
		res = classify(c, opts, res)
	}()
	tol := opts.Tol
	if tol == (Tolerance{}) {
		tol = ONNXTolerance
	}
	status, reason := runCase(c, opts.Backend, tol, opts.Prepare, &res)
	res.Status, res.Reason = status, reason
	return res
}

func runCase(c Case, b Backend, tol Tolerance, prepare func(*graph.Graph) error, res *Result) (Status, string) {
	modelPath := filepath.Join(c.Dir, "model.onnx")
	g, err := importer.LoadFile(modelPath, importer.Options{})
	if err != nil {
		// Learn the ops for the per-op table even when the import fails.
		if lg, lerr := importer.LoadFile(modelPath, importer.Options{AllowUnsupported: true}); lerr == nil {
			res.Ops = opsOf(lg)
		}
		if reason, skip := skipReason(err); skip {
			return Skip, reason
		}
		return Fail, "import: " + trimPath(err.Error(), modelPath)
	}
	res.Ops = opsOf(g)
	if prepare != nil {
		if err := prepare(g); err != nil {
			if reason, skip := skipReason(err); skip {
				return Skip, reason
			}
			return Fail, "prepare: " + err.Error()
		}
	}
	if nc, ok := b.(NodeChecker); ok {
		for _, n := range g.Nodes {
			if err := nc.CheckNode(n); err != nil {
				if reason, skip := skipReason(err); skip {
					return Skip, reason
				}
				return Fail, err.Error()
			}
		}
	}
	sets, _ := filepath.Glob(filepath.Join(c.Dir, "test_data_set_*"))
	sort.Strings(sets)
	if len(sets) == 0 {
		return Fail, "no test_data_set_* folders"
	}
	for _, set := range sets {
		inputs, err := readInputs(set, g)
		if err != nil {
			if reason, skip := skipReason(err); skip {
				return Skip, reason
			}
			return Fail, fmt.Sprintf("%s: %v", filepath.Base(set), err)
		}
		want, err := readOutputs(set, g)
		if err != nil {
			if reason, skip := skipReason(err); skip {
				return Skip, reason
			}
			return Fail, fmt.Sprintf("%s: %v", filepath.Base(set), err)
		}
		got, err := b.Run(g, inputs)
		if err != nil {
			if reason, skip := skipReason(err); skip {
				return Skip, reason
			}
			return Fail, fmt.Sprintf("%s: run: %v", filepath.Base(set), err)
		}
		for _, o := range g.Outputs {
			w, ok := want[o.Name]
			if !ok {
				continue // a data set may omit optional outputs
			}
			if err := tol.Compare(got[o.Name], w); err != nil {
				return Fail, fmt.Sprintf("%s: output %q: %v", filepath.Base(set), o.Name, err)
			}
		}
	}
	return Pass, ""
}

func trimPath(msg, path string) string { return strings.TrimPrefix(msg, path+": ") }

// skipReason decides whether an error means "of3c does not support this"
// (a skip) rather than a wrong result or a bug (a failure).
func skipReason(err error) (string, bool) {
	var ue *graph.UnsupportedOpError
	if errors.As(err, &ue) {
		dom := ue.Domain
		if dom == "" {
			dom = "ai.onnx"
		}
		r := fmt.Sprintf("unsupported op %s (%s opset %d)", ue.Op, dom, ue.Opset)
		if ue.Reason != "" {
			r += ": " + ue.Reason
		}
		return r, true
	}
	msg := err.Error()
	// The importer's refusals of whole kinds of input: non-tensor values,
	// string/complex element types, sparse tensors, pre-7 opsets.
	for _, s := range []string{"unsupported element type", "is not a tensor", "is not supported", "sparse"} {
		if strings.Contains(msg, s) {
			return "unsupported: " + lastClause(msg), true
		}
	}
	return "", false
}

// lastClause keeps the informative tail of a wrapped error.
func lastClause(msg string) string {
	if i := strings.LastIndex(msg, ".onnx: "); i >= 0 {
		msg = msg[i+len(".onnx: "):]
	}
	return msg
}

func opsOf(g *graph.Graph) []string {
	seen := map[string]bool{}
	var ops []string
	for _, n := range g.Nodes {
		if q := n.QualifiedOp(); !seen[q] {
			seen[q] = true
			ops = append(ops, q)
		}
	}
	sort.Strings(ops)
	return ops
}

// readTensors reads prefix_K.pb files in K order.
func readTensors(dir, prefix string) (names []string, ts []*graph.Tensor, err error) {
	for k := 0; ; k++ {
		path := filepath.Join(dir, fmt.Sprintf("%s_%d.pb", prefix, k))
		if _, err := os.Stat(path); err != nil {
			return names, ts, nil
		}
		name, t, err := importer.ReadTensorFile(path)
		if err != nil {
			return nil, nil, fmt.Errorf("%s_%d.pb: %w", prefix, k, err)
		}
		names = append(names, name)
		ts = append(ts, t)
	}
}

// bind matches tensor files to graph values: by the name recorded in the
// file when it names one of them, else by position.
func bind(vals []*graph.Value, names []string, ts []*graph.Tensor, what string) (map[string]*graph.Tensor, error) {
	byName := map[string]bool{}
	for _, v := range vals {
		byName[v.Name] = true
	}
	out := map[string]*graph.Tensor{}
	for k, t := range ts {
		name := names[k]
		if !byName[name] {
			if k >= len(vals) {
				return nil, fmt.Errorf("%s file %d has no matching graph %s", what, k, what)
			}
			name = vals[k].Name
		}
		out[name] = bf16View(t, vals, name)
	}
	return out, nil
}

// bf16View works around old test data: numpy has no bfloat16, so ONNX 1.12
// stored bfloat16 tensors as uint16 bit patterns with data_type UINT16. When
// the graph declares the value bfloat16, the same bits are read as bfloat16.
func bf16View(t *graph.Tensor, vals []*graph.Value, name string) *graph.Tensor {
	if t.DType != graph.Uint16 {
		return t
	}
	for _, v := range vals {
		if v.Name == name && v.Type.DType == graph.BFloat16 {
			c := *t
			c.DType = graph.BFloat16
			return &c
		}
	}
	return t
}

func readInputs(set string, g *graph.Graph) (map[string]*graph.Tensor, error) {
	names, ts, err := readTensors(set, "input")
	if err != nil {
		return nil, err
	}
	return bind(g.Inputs, names, ts, "input")
}

func readOutputs(set string, g *graph.Graph) (map[string]*graph.Tensor, error) {
	names, ts, err := readTensors(set, "output")
	if err != nil {
		return nil, err
	}
	return bind(g.Outputs, names, ts, "output")
}

// Tolerances of ONNX's backend tests (numpy.testing.assert_allclose).
const (
	RTol = 1e-3
	ATol = 1e-7
)

// Compare checks got against want with ONNX's tolerances.
func Compare(got, want *graph.Tensor) error { return ONNXTolerance.Compare(got, want) }

// Compare checks got against want: same dtype and shape; floats within
// |got − want| ≤ ATol + RTol·|want| with NaN matching NaN and infinities
// matching exactly; integers and bools exactly.
func (tol Tolerance) Compare(got, want *graph.Tensor) error {
	if got == nil {
		return errors.New("missing")
	}
	if got.DType != want.DType {
		return fmt.Errorf("dtype %s, want %s", got.DType, want.DType)
	}
	if !sameShape(got.Shape, want.Shape) {
		return fmt.Errorf("shape %v, want %v", got.Shape, want.Shape)
	}
	if err := got.Validate(); err != nil {
		return err
	}
	if err := want.Validate(); err != nil {
		return fmt.Errorf("expected tensor: %w", err)
	}
	if want.DType.IsFloat() {
		g, _ := got.Float64s()
		w, _ := want.Float64s()
		bad, worst := 0, -1
		for k := range w {
			if !tol.close(g[k], w[k]) {
				if bad == 0 {
					worst = k
				}
				bad++
			}
		}
		if bad > 0 {
			return fmt.Errorf("%d of %d elements differ; first at %d: got %v, want %v", bad, len(w), worst, g[worst], w[worst])
		}
		return nil
	}
	g, err := got.Int64s()
	if err != nil {
		return err
	}
	w, err := want.Int64s()
	if err != nil {
		return err
	}
	for k := range w {
		gv, wv := g[k], w[k]
		if want.DType == graph.Bool {
			gv, wv = b2i(gv != 0), b2i(wv != 0)
		}
		if gv != wv {
			return fmt.Errorf("element %d: got %d, want %d", k, g[k], w[k])
		}
	}
	return nil
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func (tol Tolerance) close(g, w float64) bool {
	switch {
	case math.IsNaN(w) || math.IsNaN(g):
		return math.IsNaN(w) && math.IsNaN(g)
	case math.IsInf(w, 0) || math.IsInf(g, 0):
		return g == w
	}
	return math.Abs(g-w) <= tol.ATol+tol.RTol*math.Abs(w)
}

func sameShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if a[k] != b[k] {
			return false
		}
	}
	return true
}

// ReadExpected parses an expected-failures file: one test name per line
// followed by its reason; blank lines and lines starting with # are ignored.
// Every entry needs a reason.
func ReadExpected(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, reason, _ := strings.Cut(line, " ")
		reason = strings.TrimSpace(reason)
		if reason == "" {
			return nil, fmt.Errorf("%s:%d: %s has no reason", path, i+1, name)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%s:%d: %s listed twice", path, i+1, name)
		}
		out[name] = reason
	}
	return out, nil
}

// Summary counts results overall and per op.
type Summary struct {
	Passed, Failed, Skipped    int // Failed includes expected failures
	ExpectedFailed, Unexpected int // Unexpected: failures and unexpected passes
	PerOp                      map[string]*OpCount
	SkipReasons                map[string]int
}

// OpCount is the per-op row of the table.
type OpCount struct{ Passed, Failed, Skipped int }

// Summarize tallies results; each test counts under every op its model uses.
func Summarize(results []Result) Summary {
	s := Summary{PerOp: map[string]*OpCount{}, SkipReasons: map[string]int{}}
	for _, r := range results {
		for _, op := range r.Ops {
			c := s.PerOp[op]
			if c == nil {
				c = &OpCount{}
				s.PerOp[op] = c
			}
			switch r.Status {
			case Pass:
				c.Passed++
			case Skip:
				c.Skipped++
			default:
				c.Failed++
			}
		}
		switch r.Status {
		case Pass:
			s.Passed++
		case Skip:
			s.Skipped++
			s.SkipReasons[skipKey(r.Reason)]++
		case ExpectedFail:
			s.Failed++
			s.ExpectedFailed++
		case Fail:
			s.Failed++
			s.Unexpected++
		case UnexpectedPass:
			s.Passed++
			s.Unexpected++
		}
	}
	return s
}

// skipKey shortens a skip reason to group similar ones (drops node names).
func skipKey(reason string) string {
	if i := strings.Index(reason, " at node "); i >= 0 {
		rest := reason[i+len(" at node "):]
		if j := strings.Index(rest, ": "); j >= 0 {
			return reason[:i] + ": " + rest[j+2:]
		}
		return reason[:i]
	}
	return reason
}
