package passes

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/runtime/ref"
)

// Golden tests: each passes/testdata/*.txt holds an input graph in IR text,
// the pass list, and the graph expected after those passes:
//
//	# what the test shows
//	passes: remove-noops, dce
//	-- input --
//	graph … { … }
//	-- want --
//	graph … { … }
//
// `go test ./passes -run Golden -update` rewrites the want sections; review
// the diff before committing it.
var update = flag.Bool("update", false, "rewrite the want sections of passes/testdata/*.txt")

type goldenCase struct {
	header string // comments and the passes line, verbatim
	passes []string
	input  string
	want   string
}

func parseGolden(text string) (goldenCase, bool) {
	var c goldenCase
	head, rest, ok := strings.Cut(text, "-- input --\n")
	if !ok {
		return c, false
	}
	c.header = head
	c.input, c.want, ok = strings.Cut(rest, "-- want --\n")
	if !ok {
		c.input = rest
	}
	for _, line := range strings.Split(head, "\n") {
		if after, ok := strings.CutPrefix(strings.TrimSpace(line), "passes:"); ok {
			for _, p := range strings.Split(after, ",") {
				if p = strings.TrimSpace(p); p != "" {
					c.passes = append(c.passes, p)
				}
			}
		}
	}
	return c, len(c.passes) > 0
}

func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no golden tests in testdata/")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			c, ok := parseGolden(string(data))
			if !ok {
				t.Fatalf("%s: want a 'passes:' line and '-- input --' / '-- want --' sections", file)
			}
			g, err := graph.Parse(c.input)
			if err != nil {
				t.Fatalf("input: %v", err)
			}
			if err := graph.Verify(g); err != nil {
				t.Fatalf("input does not verify: %v", err)
			}
			orig := graph.Clone(g)
			if _, err := Run(g, Options{Passes: c.passes, Verify: true}); err != nil {
				t.Fatalf("passes %v: %v", c.passes, err)
			}
			// Every rewrite must keep the numbers: both graphs on the
			// reference executor at small dims.
			inputs := testInputs(t, orig, map[string]int64{"N": 3, "S": 2, "M": 5}, 1)
			want, err := ref.Run(orig, inputs)
			if err != nil {
				t.Fatalf("reference run of the input: %v", err)
			}
			after, err := ref.Run(g, inputs)
			if err != nil {
				t.Fatalf("reference run after the passes: %v", err)
			}
			if d, err := maxDiff(want, after, false); err != nil || d > 1e-5 {
				t.Errorf("outputs changed by the passes: %g %v", d, err)
			}
			got := graph.FormatWith(g, graph.FormatOptions{InlineMax: -1})
			if *update {
				out := c.header + "-- input --\n" + c.input
				if !strings.HasSuffix(out, "\n") {
					out += "\n"
				}
				out += "-- want --\n" + got
				if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if strings.TrimSpace(got) != strings.TrimSpace(c.want) {
				t.Errorf("after %v:\n%s\nwant:\n%s", c.passes, got, c.want)
			}
			// The expected text must itself be a valid graph.
			if wg, err := graph.Parse(c.want); err != nil {
				t.Errorf("want section does not parse: %v", err)
			} else if err := graph.Verify(wg); err != nil {
				t.Errorf("want section does not verify: %v", err)
			}
		})
	}
}
