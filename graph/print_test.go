package graph

import (
	"flag"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update", false, "rewrite golden files in testdata/ from the current output")

// readGolden returns testdata/name, or writes got there under -update.
func readGolden(t *testing.T, name, got string) string {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *updateGolden {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(want)
}

func TestTextRoundTripGolden(t *testing.T) {
	src, err := os.ReadFile("testdata/text/roundtrip.txt")
	if err != nil {
		t.Fatal(err)
	}
	g, err := Parse(string(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := Format(g); got != string(src) {
		t.Errorf("Format(Parse(text)) differs from the text:\n%s", lineDiff(string(src), got))
	}
	// Spot-check what the parser built, so the round trip is not
	// trivially satisfied by a parser and printer that agree on nonsense.
	if g.Name != "main" || g.Opsets[""] != 17 || g.Opsets["of3c"] != 1 || g.Meta["producer_name"] != "pytorch" {
		t.Errorf("header: name %q opsets %v meta %v", g.Name, g.Opsets, g.Meta)
	}
	if len(g.Inputs) != 4 || len(g.Consts) != 7 || len(g.Nodes) != 7 || len(g.Outputs) != 3 {
		t.Fatalf("counts: %d inputs %d consts %d nodes %d outputs", len(g.Inputs), len(g.Consts), len(g.Nodes), len(g.Outputs))
	}
	if in := g.Inputs[3].Type; in.Shape[0] != S("batch size") || !in.Shape[1].IsUnknown() || in.Shape[2] != S("N*N+1") {
		t.Errorf("input z type %v", in)
	}
	if g.Inputs[2].Name != "onnx::Shape_3" || g.Inputs[2].Type.Ranked {
		t.Errorf("input 2: %q %v", g.Inputs[2].Name, g.Inputs[2].Type)
	}
	h, _ := g.Consts[4].Const.Float64s()
	if h[0] != 0.5 || !math.IsInf(h[1], -1) || !math.IsNaN(h[2]) {
		t.Errorf("f16 const %v", h)
	}
	if u := g.Consts[6].Const.Data; string(u) != "\xff\xff\xff\xff\xff\xff\xff\xff" {
		t.Errorf("u64 max const bytes %x", u)
	}
	split := g.Nodes[2]
	if split.Op != "Split" || split.Opset != 13 || split.Inputs[1] != nil || split.Outputs[1].Producer != split {
		t.Errorf("split node %+v", split)
	}
	if g.Nodes[0].Opset != 17 || g.Nodes[0].Name != "/layers.0/MatMul" {
		t.Errorf("matmul opset %d name %q", g.Nodes[0].Opset, g.Nodes[0].Name)
	}
	att := g.Nodes[3]
	if att.Domain != "of3c" || att.Op != "Attention" || att.Inputs[3] != nil || att.Inputs[4] != g.Inputs[1] {
		t.Errorf("attention node %s inputs %v", att.QualifiedOp(), att.Inputs)
	}
	if a := att.Attrs["scale"]; a.Kind != AttrFloat || a.Float != float32(0.17677669) {
		t.Errorf("scale attr %+v", a)
	}
	drop := g.Nodes[4]
	if drop.Outputs[1] != nil || drop.Attrs["mode"].Str != "x\ty" || drop.Attrs["ratio"].Kind != AttrFloat ||
		drop.Attrs["names"].Kind != AttrStrings || drop.Attrs["t"].Tensor.NumElements() != 2 {
		t.Errorf("dropout node %+v", drop)
	}
	if sk := findNode(g, "sink node"); sk == nil || sk.Domain != "com.microsoft" || sk.Op != "Sink" || len(sk.Outputs) != 0 {
		t.Errorf("sink node %+v", sk)
	}
	body := findNodeByOp(g, "Loop").Attrs["body"].Graph
	if body == nil || body.Nodes[0].Inputs[1] != g.Consts[3] {
		t.Errorf("loop body does not read the outer %%axes")
	}
}

func findNode(g *Graph, name string) *Node {
	for _, n := range g.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

func findNodeByOp(g *Graph, op string) *Node {
	for _, n := range g.Nodes {
		if n.Op == op {
			return n
		}
	}
	return nil
}

// lineDiff shows the first differing line of two texts.
func lineDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return "line " + strconv.Itoa(i+1) + ":\n want: " + w + "\n  got: " + g
		}
	}
	return "(no line differs)"
}

func TestFormatShapeValues(t *testing.T) {
	g := MustParse("graph g {\n  input %x:f32[N,64]\n  %s:i64[2] = Shape(%x)\n  %t:i64[2] = Shape(%x)\n  output %s, %t\n}\n")
	g.Nodes[0].Outputs[0].ShapeValue = Shape{S("N"), D(64)}
	g.Nodes[1].Outputs[0].ShapeValue = Shape{{Val: -1, Sym: "-1"}, S("a b")}
	text := FormatWith(g, FormatOptions{ShapeValues: true})
	for _, want := range []string{"%s:i64[2] = Shape(%x) # %s = [N,64]\n", `%t:i64[2] = Shape(%x) # %t = [-1,"a b"]` + "\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %q in\n%s", want, text)
		}
	}
	g2, err := Parse(text)
	if err != nil || Format(g2) != Format(g) {
		t.Errorf("the comments do not parse away: %v", err)
	}
}
