package conformance

import (
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/of3c/of3c/graph"
)

// TestNodeTestSample runs a quick, broad sample of the node tests on the
// reference backend; `make conformance` runs them all.
func TestNodeTestSample(t *testing.T) {
	if _, err := os.Stat(DefaultDebianDir); err != nil {
		t.Skipf("no node tests at %s (make setup installs libonnx-testdata)", DefaultDebianDir)
	}
	cases, err := Discover(DefaultDebianDir, "")
	if err != nil {
		t.Fatal(err)
	}
	expected, err := ReadExpected("expected_failures.txt")
	if err != nil {
		t.Fatal(err)
	}
	b, err := LookupBackend("ref")
	if err != nil {
		t.Fatal(err)
	}
	filter := regexp.MustCompile(`^test_(add|matmul|gemm|einsum|softmax|logsoftmax|layer_normalization|reduce_sum|reshape|transpose|slice|gather|concat|split|where|cast|expand|pow|cumsum|trilu|pad|range|clip|argmax)`)
	results := RunAll(cases, Options{Backend: b, Expected: expected, Filter: filter})
	s := Summarize(results)
	for _, r := range results {
		if r.Status == Fail || r.Status == UnexpectedPass {
			t.Errorf("%s %s: %s", r.Status, r.Name, r.Reason)
		}
	}
	// The sample is all ops of3c supports; nearly everything must pass.
	if s.Passed < 150 {
		t.Errorf("only %d of %d sampled tests passed", s.Passed, len(results))
	}
	t.Logf("sample: %d passed, %d failed, %d skipped", s.Passed, s.Failed, s.Skipped)
}

func TestCompare(t *testing.T) {
	f := func(v ...float32) *graph.Tensor { return graph.NewTensorF32([]int64{int64(len(v))}, v) }
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	ok := []struct{ got, want *graph.Tensor }{
		{f(1, 2), f(1, 2)},
		{f(1.0009), f(1)},          // within rtol 1e-3
		{f(nan, inf), f(nan, inf)}, // NaN matches NaN
		{f(1e-8), f(0)},            // within atol
	}
	for i, c := range ok {
		if err := Compare(c.got, c.want); err != nil {
			t.Errorf("ok case %d: %v", i, err)
		}
	}
	bad := []struct {
		got, want *graph.Tensor
		msg       string
	}{
		{f(1.002), f(1), "differ"},
		{f(nan), f(1), "differ"},
		{f(1), f(nan), "differ"},
		{f(inf), f(-inf), "differ"},
		{f(1, 2), f(1), "shape"},
		{graph.NewTensorI64([]int64{1}, []int64{1}), f(1), "dtype"},
		{graph.NewTensorI64([]int64{1}, []int64{1 << 60}), graph.NewTensorI64([]int64{1}, []int64{1<<60 + 1}), "element 0"},
		{nil, f(1), "missing"},
	}
	for i, c := range bad {
		err := Compare(c.got, c.want)
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("bad case %d: got %v, want an error about %q", i, err, c.msg)
		}
	}
}

func TestReadExpected(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.txt")
	os.WriteFile(path, []byte("# comment\n\ntest_a  reason one\ntest_b why\n"), 0o644)
	m, err := ReadExpected(path)
	if err != nil || m["test_a"] != "reason one" || m["test_b"] != "why" || len(m) != 2 {
		t.Fatalf("got %v, %v", m, err)
	}
	os.WriteFile(path, []byte("test_a\n"), 0o644)
	if _, err := ReadExpected(path); err == nil {
		t.Fatal("an entry without a reason should be refused")
	}
	os.WriteFile(path, []byte("test_a r\ntest_a r\n"), 0o644)
	if _, err := ReadExpected(path); err == nil {
		t.Fatal("a duplicate entry should be refused")
	}
}

// TestExpectedFailuresListed checks the committed list parses and that the
// bookkeeping turns a listed failure into XFAIL and a listed pass into XPASS.
func TestExpectedFailuresBookkeeping(t *testing.T) {
	if _, err := ReadExpected("expected_failures.txt"); err != nil {
		t.Fatal(err)
	}
	failing := BackendFunc(func(g *graph.Graph, in map[string]*graph.Tensor) (map[string]*graph.Tensor, error) {
		return map[string]*graph.Tensor{}, nil // every output missing
	})
	dir := filepath.Join(DefaultDebianDir, "test_add")
	if _, err := os.Stat(dir); err != nil {
		t.Skip("no node tests")
	}
	c := Case{Name: "test_add", Dir: dir}
	r := RunCase(c, Options{Backend: failing})
	if r.Status != Fail || !strings.Contains(r.Reason, "missing") {
		t.Fatalf("got %s %q, want FAIL (missing output)", r.Status, r.Reason)
	}
	r = RunCase(c, Options{Backend: failing, Expected: map[string]string{"test_add": "known"}})
	if r.Status != ExpectedFail {
		t.Fatalf("got %s, want XFAIL", r.Status)
	}
	ref, _ := LookupBackend("ref")
	r = RunCase(c, Options{Backend: ref, Expected: map[string]string{"test_add": "known"}})
	if r.Status != UnexpectedPass {
		t.Fatalf("got %s, want XPASS", r.Status)
	}
	s := Summarize([]Result{r})
	if s.Unexpected != 1 || s.Passed != 1 {
		t.Fatalf("summary %+v", s)
	}
	panicky := BackendFunc(func(g *graph.Graph, in map[string]*graph.Tensor) (map[string]*graph.Tensor, error) {
		panic("boom")
	})
	if r := RunCase(c, Options{Backend: panicky}); r.Status != Fail || !strings.Contains(r.Reason, "panic") {
		t.Fatalf("a panicking backend gives %s %q, want FAIL with the panic", r.Status, r.Reason)
	}
}

// TestOF3FixturesOnRef runs the OpenFold3 fixtures (PyTorch modules exported
// by both torch exporters, with PyTorch's outputs) on the reference executor
// at the fixture tolerance of DESIGN.md (fp32 ≤ 1e-4 max-abs): the oracle
// must agree with PyTorch before anything is checked against it.
func TestOF3FixturesOnRef(t *testing.T) {
	dir := filepath.Join("..", "..", "models", "of3", "testdata")
	cases, err := Discover(dir, "of3")
	if err != nil || len(cases) == 0 {
		t.Skipf("no fixtures under %s", dir)
	}
	b, _ := LookupBackend("ref")
	results := RunAll(cases, Options{Backend: b, Tol: Tolerance{ATol: 1e-4}})
	for _, r := range results {
		if r.Status != Pass {
			t.Errorf("%s %s: %s", r.Status, r.Name, r.Reason)
		}
	}
}

func TestTimeout(t *testing.T) {
	dir := filepath.Join(DefaultDebianDir, "test_add")
	if _, err := os.Stat(dir); err != nil {
		t.Skip("no node tests")
	}
	block := make(chan struct{})
	defer close(block)
	hung := BackendFunc(func(g *graph.Graph, in map[string]*graph.Tensor) (map[string]*graph.Tensor, error) {
		<-block
		return nil, nil
	})
	r := RunCase(Case{Name: "test_add", Dir: dir}, Options{Backend: hung, Timeout: 50 * time.Millisecond})
	if r.Status != Fail || !strings.Contains(r.Reason, "timed out") {
		t.Fatalf("got %s %q, want a timeout failure", r.Status, r.Reason)
	}
}
