// Command conformance runs ONNX backend node tests on an of3c backend and
// prints a per-op table and the closing line
// "conformance: N passed, N failed, N skipped". It exits 1 on any failure not
// listed (with a reason) in tests/conformance/expected_failures.txt, and on an
// expected failure that now passes.
//
//	go run ./tests/conformance/cmd [-backend ref] [-run REGEX] [-v] [-j N] [-gen] [-data DIR]... [-rtol R -atol A]
//
// The OF3 fixtures have the same layout:
//
//	go run ./tests/conformance/cmd -data models/of3/testdata -rtol 0 -atol 1e-4
//
// Tests from Debian's ONNX 1.12 data keep their bare names (test_add); tests
// from other folders are named LABEL/test_add (e.g. onnx-1.23.2/test_add),
// so the expected-failures list can tell the data versions apart.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/passes"
	"github.com/of3c/of3c/tests/conformance"
)

type dirList []string

func (d *dirList) String() string     { return strings.Join(*d, ",") }
func (d *dirList) Set(v string) error { *d = append(*d, v); return nil }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("conformance", flag.ContinueOnError)
	fs.SetOutput(stderr)
	backendName := fs.String("backend", "ref", "backend to run: "+strings.Join(conformance.BackendNames(), ", "))
	runRe := fs.String("run", "", "only run tests whose name matches this regular expression")
	verbose := fs.Bool("v", false, "print every test's result")
	jobs := fs.Int("j", 0, "tests run in parallel (0: GOMAXPROCS)")
	expectedPath := fs.String("expected", "", "expected-failures list (default tests/conformance/expected_failures.txt for ref, expected_failures_BACKEND.txt for others)")
	rtol := fs.Float64("rtol", conformance.RTol, "relative tolerance for floats")
	atol := fs.Float64("atol", conformance.ATol, "absolute tolerance for floats (fixtures: -rtol 0 -atol 1e-4)")
	timeout := fs.Duration("timeout", conformance.DefaultTimeout, "limit per test")
	optimize := fs.Bool("passes", false, "run the default optimization passes (with the verifier) on every graph first")
	gen := fs.Bool("gen", false, "first write the installed onnx package's node tests to "+conformance.GeneratedDir+" (needs .venv)")
	var dirs dirList
	fs.Var(&dirs, "data", "node-test folder (repeatable; default: Debian's libonnx-testdata, the onnx wheel's data and "+conformance.GeneratedDir+", where present)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	backend, err := conformance.LookupBackend(*backendName)
	if err != nil {
		fmt.Fprintln(stderr, "conformance:", err)
		return 2
	}
	if r, ok := backend.(interface{ Ready() error }); ok {
		if err := r.Ready(); err != nil {
			fmt.Fprintf(stderr, "conformance: backend %s: %v\n", *backendName, err)
			return 2
		}
	}
	var filter *regexp.Regexp
	if *runRe != "" {
		if filter, err = regexp.Compile(*runRe); err != nil {
			fmt.Fprintln(stderr, "conformance: -run:", err)
			return 2
		}
	}
	if *expectedPath == "" {
		*expectedPath = "tests/conformance/expected_failures.txt"
		if *backendName != "ref" {
			*expectedPath = "tests/conformance/expected_failures_" + *backendName + ".txt"
		}
	}
	expected, err := conformance.ReadExpected(*expectedPath)
	if errors.Is(err, os.ErrNotExist) && *backendName != "ref" {
		fmt.Fprintf(stdout, "expected failures: %s absent, none expected\n", *expectedPath)
		expected, err = map[string]string{}, nil
	}
	if err != nil {
		fmt.Fprintln(stderr, "conformance:", err)
		return 2
	}

	if *gen {
		if err := conformance.GenerateNodeTests(".", stdout); err != nil {
			fmt.Fprintln(stderr, "conformance: -gen:", err)
			return 2
		}
	}
	var sources []conformance.Source
	if len(dirs) == 0 {
		sources = conformance.DefaultSources(".", stdout)
	} else {
		for _, d := range dirs {
			sources = append(sources, conformance.SourceFor(d))
		}
	}
	var cases []conformance.Case
	seen := map[string]bool{}
	for _, src := range sources {
		cs, err := conformance.Discover(src.Dir, src.Label)
		if err != nil {
			fmt.Fprintln(stderr, "conformance:", err)
			return 2
		}
		for _, c := range cs {
			if seen[c.Name] {
				fmt.Fprintf(stderr, "conformance: %s appears twice (give the data folders distinct labels)\n", c.Name)
				return 2
			}
			seen[c.Name] = true
			cases = append(cases, c)
		}
	}

	opts := conformance.Options{Backend: backend, Expected: expected, Filter: filter, Jobs: *jobs,
		Tol: conformance.Tolerance{RTol: *rtol, ATol: *atol}, Timeout: *timeout}
	if *optimize {
		opts.Prepare = func(g *graph.Graph) error {
			_, err := passes.Run(g, passes.Options{Verify: true})
			return err
		}
	}
	results := conformance.RunAll(cases, opts)
	for _, r := range results {
		switch {
		case *verbose:
			line := fmt.Sprintf("%-5s %s", r.Status, r.Name)
			if r.Reason != "" {
				line += ": " + r.Reason
			}
			fmt.Fprintln(stdout, line)
		case r.Status == conformance.Fail || r.Status == conformance.UnexpectedPass:
			fmt.Fprintf(stdout, "%-5s %s: %s\n", r.Status, r.Name, r.Reason)
		}
	}
	s := conformance.Summarize(results)
	printTable(stdout, s)
	printSkips(stdout, s, *verbose)
	if len(sources) > 1 {
		for _, src := range sources {
			var part []conformance.Result
			for _, r := range results {
				if r.Source == src.Label {
					part = append(part, r)
				}
			}
			ps := conformance.Summarize(part)
			label := src.Label
			if label == "" {
				label = "debian"
			}
			fmt.Fprintf(stdout, "  source %s: %d passed, %d expected failures, %d unexpected, %d skipped\n",
				label, ps.Passed, ps.ExpectedFailed, ps.Unexpected, ps.Skipped)
		}
	}
	// Expected failures the run did not reach (filtered out or skipped)
	// stay listed; a name that matches no test at all is a stale entry.
	ranLabels := map[string]bool{}
	for _, src := range sources {
		ranLabels[src.Label] = true
	}
	for name := range expected {
		label, _, hasLabel := strings.Cut(name, "/")
		if !hasLabel {
			label = ""
		}
		if ranLabels[label] && !seen[name] {
			fmt.Fprintf(stdout, "note: expected failure %s names no test\n", name)
		}
	}
	fmt.Fprintf(stdout, "backend %s: %d expected failures (listed in %s), %d unexpected\n",
		*backendName, s.ExpectedFailed, *expectedPath, s.Unexpected)
	// The closing line counts as failed only what the expected-failures
	// list does not explain (like pytest's xfail): expected failures are
	// reported, with their reasons in the list, on the line above.
	fmt.Fprintf(stdout, "conformance: %d passed, %d failed, %d skipped\n", s.Passed, s.Unexpected, s.Skipped)
	if s.Unexpected > 0 {
		return 1
	}
	return 0
}

func printTable(w io.Writer, s conformance.Summary) {
	ops := make([]string, 0, len(s.PerOp))
	for op, c := range s.PerOp {
		// Ops that only ever appear in skipped tests for other reasons are
		// still listed: the table shows what each op's tests did.
		_ = c
		ops = append(ops, op)
	}
	sort.Strings(ops)
	fmt.Fprintf(w, "%-32s %7s %7s %7s\n", "op", "passed", "failed", "skipped")
	for _, op := range ops {
		c := s.PerOp[op]
		fmt.Fprintf(w, "%-32s %7d %7d %7d\n", op, c.Passed, c.Failed, c.Skipped)
	}
}

func printSkips(w io.Writer, s conformance.Summary, all bool) {
	type kv struct {
		reason string
		n      int
	}
	var list []kv
	for r, n := range s.SkipReasons {
		list = append(list, kv{r, n})
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].n != list[j].n {
			return list[i].n > list[j].n
		}
		return list[i].reason < list[j].reason
	})
	limit := 15
	if all || len(list) < limit {
		limit = len(list)
	}
	fmt.Fprintln(w, "skip reasons (tests):")
	for _, e := range list[:limit] {
		fmt.Fprintf(w, "%6d  %s\n", e.n, e.reason)
	}
	if limit < len(list) {
		fmt.Fprintf(w, "   ... %d more reasons (-v lists all)\n", len(list)-limit)
	}
}
