package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/tests/conformance"
)

func TestRunPrintsClosingLine(t *testing.T) {
	if _, err := os.Stat(conformance.DefaultDebianDir); err != nil {
		t.Skip("no node tests")
	}
	var out, errOut bytes.Buffer
	code := run([]string{"-run", "^test_(add|relu)$", "-expected", "../expected_failures.txt"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	if last != "conformance: 2 passed, 0 failed, 0 skipped" {
		t.Fatalf("closing line %q", last)
	}
	if !regexp.MustCompile(`(?m)^Add\s+1\s+0\s+0$`).MatchString(out.String()) {
		t.Fatalf("no per-op row for Add:\n%s", out.String())
	}
}

func TestRunFailsOnUnexpectedPass(t *testing.T) {
	if _, err := os.Stat(conformance.DefaultDebianDir); err != nil {
		t.Skip("no node tests")
	}
	list := t.TempDir() + "/x.txt"
	os.WriteFile(list, []byte("test_add a stale entry\n"), 0o644)
	var out, errOut bytes.Buffer
	if code := run([]string{"-run", "^test_add$", "-expected", list}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, out.String())
	}
	if !strings.Contains(out.String(), "XPASS test_add") {
		t.Fatalf("no XPASS line:\n%s", out.String())
	}
}

func TestBadFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"-backend", "nope"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "unknown backend") {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	if code := run([]string{"-run", "("}, &out, &errOut); code != 2 {
		t.Fatalf("bad regexp: exit %d", code)
	}
}

func TestSpecializeBindsShapeInputs(t *testing.T) {
	g := graph.New("spec", 17)
	x := g.AddInput("x", graph.TensorType(graph.Float32, graph.Shape{graph.D(2), graph.D(3)}))
	s := g.AddInput("shape", graph.TensorType(graph.Int64, graph.Shape{graph.D(1)}))
	n := g.AddNode("", "Reshape", []*graph.Value{x, s}, []string{"y"}, nil)
	g.Outputs = n.Outputs
	in := map[string]*graph.Tensor{
		"x":     graph.NewTensorF32([]int64{2, 3}, []float32{1, 2, 3, 4, 5, 6}),
		"shape": graph.NewTensorI64([]int64{1}, []int64{6}),
	}
	sg, rest := specialize(g, in)
	if len(sg.Inputs) != 1 || sg.Inputs[0].Name != "x" || len(rest) != 1 || rest["x"] == nil {
		t.Fatalf("inputs %v, rest %v", sg.Inputs, rest)
	}
	if len(g.Inputs) != 2 {
		t.Fatal("specialize changed the original graph")
	}
	var shape *graph.Value
	for _, c := range sg.Consts {
		if c.Name == "shape" {
			shape = c
		}
	}
	if shape == nil || shape.Const == nil {
		t.Fatal("shape input did not become a constant")
	}
}
