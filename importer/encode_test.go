package importer

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/importer/onnxpb"
)

// fullText formats g with every constant in full, so equal text means equal
// graphs (including weights). The fields that Encode sets itself (IR version,
// producer) are left out.
func fullText(g *graph.Graph) string { return textOf(g, -1) }

// textOf formats g without the Encode-set metadata; inlineMax as in
// graph.FormatOptions (large constants print with a checksum by default).
func textOf(g *graph.Graph, inlineMax int) string {
	meta := g.Meta
	g.Meta = map[string]string{}
	for k, v := range meta {
		switch k {
		case "ir_version", "producer_name", "producer_version":
		default:
			g.Meta[k] = v
		}
	}
	defer func() { g.Meta = meta }()
	return graph.FormatWith(g, graph.FormatOptions{InlineMax: inlineMax})
}

// encodeTestGraph builds a graph with every attribute kind, symbolic and
// unknown dims, an omitted optional input, a large and a small constant and
// an of3c-domain node.
func encodeTestGraph(t *testing.T) *graph.Graph {
	t.Helper()
	g := graph.New("enc", 17)
	g.Opsets[testDomain] = 1
	g.Meta = map[string]string{"metadata.note": "kept", "doc_string": "a model", "model_version": "4"}
	x := g.AddInput("x", graph.TensorType(graph.Float32, graph.Shape{graph.S("N"), graph.Unknown, graph.D(4)}))
	big := make([]float32, 600)
	for i := range big {
		big[i] = float32(i) / 7
	}
	w := g.AddConst("w", graph.NewTensorF32([]int64{600}, big))
	w.Doc = "weights"
	s := g.AddConst("s", graph.NewTensorI64([]int64{2}, []int64{-1, 4}))
	p := g.AddNode(testDomain, "Pair", []*graph.Value{x}, []string{"p", "q"}, map[string]graph.Attr{
		"f":  {Kind: graph.AttrFloat, Float: 0.25},
		"i":  {Kind: graph.AttrInt, Int: -3},
		"s":  {Kind: graph.AttrString, Str: "mode"},
		"t":  {Kind: graph.AttrTensor, Tensor: graph.NewTensorI64([]int64{3}, []int64{1, 2, 3})},
		"fs": {Kind: graph.AttrFloats, Floats: []float32{1, 2.5}},
		"is": {Kind: graph.AttrInts, Ints: []int64{0, 1}},
		"ss": {Kind: graph.AttrStrings, Strings: []string{"a", ""}},
	})
	p.Name = "pair0"
	p.Outputs[0] = nil // an omitted optional output
	q := p.Outputs[1]
	q.Type = graph.TensorType(graph.Float32, graph.Shape{graph.S("N"), graph.D(2)})
	y := g.AddNode(testDomain, "Pair", []*graph.Value{q, w}, []string{"y"}, nil)
	z := g.AddNode(testDomain, "Same", []*graph.Value{s}, []string{"z"}, nil)
	g.Outputs = []*graph.Value{y.Outputs[0], z.Outputs[0]}
	y.Outputs[0].Type = graph.TensorType(graph.Float32, graph.Shape{graph.S("N*2")})
	z.Outputs[0].Type = graph.TensorType(graph.Int64, graph.StaticShape(2))
	return g
}

func TestEncodeRoundTrip(t *testing.T) {
	g := encodeTestGraph(t)
	data, err := Encode(g, EncodeOptions{ProducerVersion: "test"})
	if err != nil {
		t.Fatal(err)
	}
	g2, err := Load(data, "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Loading ran inference; compare against the same graph re-typed.
	g1, err := Load(mustEncode(t, g2), "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if a, b := fullText(g2), fullText(g1); a != b {
		t.Errorf("Load(Encode(g)) not stable:\n%s\nvs\n%s", a, b)
	}
	if g2.Meta["metadata.note"] != "kept" || g2.Meta["doc_string"] != "a model" || g2.Meta["model_version"] != "4" || g2.Meta["producer_name"] != "of3c" {
		t.Errorf("meta %v", g2.Meta)
	}
	if g2.Consts[0].Doc != "weights" {
		t.Errorf("doc lost")
	}
	// Values and attributes survive exactly.
	for _, frag := range []string{"N*2", "[N,?,4]", "mode", "2.5", "pair0"} {
		if !strings.Contains(fullText(g2), frag) {
			t.Errorf("round trip lost %q:\n%s", frag, fullText(g2))
		}
	}
	if got := describe(g2); got != describe(g) {
		t.Errorf("round trip changed the graph:\n%s\nwant:\n%s", got, describe(g))
	}
}

func mustEncode(t *testing.T, g *graph.Graph) []byte {
	t.Helper()
	data, err := Encode(g, EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestEncodeOpsetImports(t *testing.T) {
	g := graph.New("f", 18)
	x := g.AddInput("x", graph.TensorType(graph.Float32, graph.StaticShape(2)))
	n := g.AddNode(graph.FusedDomain, "SwiGLU", []*graph.Value{x, x}, []string{"y"}, nil)
	g.Outputs = []*graph.Value{n.Outputs[0]}
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(mustEncode(t, g), &m); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, op := range m.OpsetImport {
		got[op.GetDomain()] = op.GetVersion()
	}
	if len(got) != 2 || got[""] != 18 || got["of3c"] != 1 || m.GetIrVersion() != 8 {
		t.Errorf("opset imports %v, ir %d", got, m.GetIrVersion())
	}
}

func TestEncodeErrors(t *testing.T) {
	g := graph.New("e", 17)
	x := g.AddInput("x", graph.TensorType(graph.Float32, graph.StaticShape(2)))
	x2 := g.AddInput("x", graph.TensorType(graph.Float32, graph.StaticShape(2)))
	g.Outputs = []*graph.Value{x, x2}
	_, err := Encode(g, EncodeOptions{})
	wantErr(t, err, "encode: ", `"x"`)

	g = graph.New("e", 17)
	x = g.AddInput("x", graph.TensorType(graph.Float32, graph.StaticShape(2)))
	n := g.AddNode("", "If", []*graph.Value{x}, []string{"y"}, map[string]graph.Attr{"then_branch": {Kind: graph.AttrGraph, Graph: graph.New("b", 17)}})
	g.Outputs = n.Outputs
	_, err = Encode(g, EncodeOptions{})
	wantErr(t, err, "then_branch", "subgraph")

	_, err = Encode(encodeTestGraph(t), EncodeOptions{ExternalData: &bytes.Buffer{}, ExternalLocation: "../w.bin"})
	wantErr(t, err, "leaves the model's folder")
}

func TestEncodeExternalAndOmitted(t *testing.T) {
	g := encodeTestGraph(t)
	dir := t.TempDir()
	var ext bytes.Buffer
	data, err := Encode(g, EncodeOptions{ExternalData: &ext, ExternalLocation: "enc.weights"})
	if err != nil {
		t.Fatal(err)
	}
	if ext.Len() != 2400 || len(data) > 1500 {
		t.Errorf("external data %d bytes, model %d bytes: the 2400-byte constant should be external", ext.Len(), len(data))
	}
	writeFile(t, filepath.Join(dir, "enc.onnx"), data)
	writeFile(t, filepath.Join(dir, "enc.weights"), ext.Bytes())
	g2, err := LoadFile(filepath.Join(dir, "enc.onnx"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if describe(g2) != describe(g) {
		t.Errorf("external round trip:\n%s\nwant\n%s", describe(g2), describe(g))
	}

	omitted, err := Encode(g, EncodeOptions{OmitWeights: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(omitted) > 1500 {
		t.Errorf("omitted model has %d bytes", len(omitted))
	}
	_, err = Load(omitted, "", Options{})
	wantErr(t, err, `"w"`, "has no data")
	weights := OmittedWeights(g, EncodeOptions{OmitWeights: true})
	if len(weights) != 1 || weights["w"] != g.Consts[0].Const {
		t.Fatalf("OmittedWeights = %v, want just w", weights)
	}
	g3, err := Load(omitted, "", Options{Weights: weights})
	if err != nil {
		t.Fatal(err)
	}
	if describe(g3) != describe(g) {
		t.Errorf("omitted + Weights round trip differs")
	}
}

// TestEncodeNodeTests re-encodes every node-test model that imports and
// checks Load(Encode(g)) prints the same, then runs onnx.checker over a
// sample of the encoded models when the Python venv is there.
func TestEncodeNodeTests(t *testing.T) {
	models := nodeTestModels(t)
	dir := t.TempDir()
	var written []string
	n := 0
	for _, path := range models {
		g, err := LoadFile(path, Options{})
		if err != nil {
			continue
		}
		data, err := Encode(g, EncodeOptions{})
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		g2, err := Load(data, "", Options{})
		if err != nil {
			t.Errorf("%s: reload: %v", path, err)
			continue
		}
		if a, b := fullText(g), fullText(g2); a != b {
			t.Errorf("%s: Load(Encode(g)) differs:\n%s\nvs\n%s", path, a, b)
		}
		n++
		out := filepath.Join(dir, filepath.Base(filepath.Dir(path))+".onnx")
		writeFile(t, out, data)
		written = append(written, out)
	}
	t.Logf("%d node-test models round-tripped", n)
	checkWithONNX(t, written)
}

// checkWithONNX runs onnx.checker.check_model on each file.
func checkWithONNX(t *testing.T, files []string) {
	t.Helper()
	py := filepath.Join("..", ".venv", "bin", "python")
	if _, err := os.Stat(py); err != nil {
		t.Skip("no .venv (make setup); not running onnx.checker")
	}
	if len(files) == 0 {
		return
	}
	script := `
import sys, onnx
bad = 0
for p in sys.argv[1:]:
    try:
        onnx.checker.check_model(p, full_check=False)
    except Exception as e:
        bad += 1
        print(p, str(e).splitlines()[0] if str(e) else type(e).__name__)
print("checked", len(sys.argv) - 1, "bad", bad)
sys.exit(1 if bad else 0)
`
	out, err := exec.Command(py, append([]string{"-c", script}, files...)...).CombinedOutput()
	if err != nil {
		t.Errorf("onnx.checker: %v\n%s", err, out)
	} else {
		t.Logf("onnx.checker: %s", strings.TrimSpace(string(out)))
	}
}

func TestEncodeCheckerExternal(t *testing.T) {
	// A graph of standard ops only, so the checker knows every op.
	g := graph.New("ext", 17)
	x := g.AddInput("x", graph.TensorType(graph.Float32, graph.Shape{graph.S("N"), graph.D(600)}))
	big := make([]float32, 600)
	w := g.AddConst("w", graph.NewTensorF32([]int64{600}, big))
	n := g.AddNode("", "Add", []*graph.Value{x, w}, []string{"y"}, nil)
	n.Outputs[0].Type = x.Type
	g.Outputs = n.Outputs
	dir := t.TempDir()
	var ext bytes.Buffer
	data, err := Encode(g, EncodeOptions{ExternalData: &ext, ExternalLocation: "w.bin"})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "m.onnx"), data)
	writeFile(t, filepath.Join(dir, "w.bin"), ext.Bytes())
	// Custom domains (the test ops, of3c's fused ops) pass the checker too.
	writeFile(t, filepath.Join(dir, "custom.onnx"), mustEncode(t, encodeTestGraph(t)))
	checkWithONNX(t, []string{filepath.Join(dir, "m.onnx"), filepath.Join(dir, "custom.onnx")})
}
