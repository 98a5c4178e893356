package onnxexport

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/importer/npy"
	"github.com/of3c/of3c/importer/onnxpb"
	"github.com/of3c/of3c/runtime/ref"
)

// python is the project's virtual environment interpreter, when it has onnx
// and onnxruntime.
func python(t *testing.T) string {
	t.Helper()
	py, err := filepath.Abs("../../.venv/bin/python")
	if err != nil {
		t.Skip(err)
	}
	if err := exec.Command(py, "-c", "import onnx, onnxruntime, numpy").Run(); err != nil {
		t.Skipf("%s lacks onnx/onnxruntime: %v", py, err)
	}
	return py
}

// checkWithORT exports g, runs it through onnx.checker and onnxruntime on
// the inputs, and compares with the reference executor.
func checkWithORT(t *testing.T, py string, g *graph.Graph, in map[string]*graph.Tensor, tol float64) {
	t.Helper()
	want, err := ref.Run(g, in)
	if err != nil {
		t.Fatalf("reference: %v", err)
	}
	data, err := Export(g, Options{})
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	dir := t.TempDir()
	model := filepath.Join(dir, "m.onnx")
	if err := os.WriteFile(model, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range g.Inputs {
		names = append(names, v.Name)
	}
	inPath, outPath := filepath.Join(dir, "in.npz"), filepath.Join(dir, "out.npz")
	if err := npy.WriteNPZ(inPath, names, in); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(py, "testdata/ort_run.py", model, inPath, outPath).CombinedOutput(); err != nil {
		t.Fatalf("onnx.checker/onnxruntime: %v\n%s", err, out)
	}
	_, got, err := npy.ReadNPZ(outPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range g.Outputs {
		w, _ := want[o.Name].Float64s()
		gt := got[o.Name]
		if gt == nil {
			t.Fatalf("onnxruntime gave no %s", o.Name)
		}
		gv, _ := gt.Float64s()
		if len(gv) != len(w) {
			t.Fatalf("%s: %d elements, want %d", o.Name, len(gv), len(w))
		}
		worst := 0.0
		for i := range w {
			worst = math.Max(worst, math.Abs(gv[i]-w[i]))
		}
		if worst > tol || math.IsNaN(worst) {
			t.Errorf("%s: onnxruntime vs reference max abs err %g > %g", o.Name, worst, tol)
		}
	}
}

func randomInputs(t *testing.T, g *graph.Graph, dims map[string]int64) map[string]*graph.Tensor {
	in := map[string]*graph.Tensor{}
	for i, v := range g.Inputs {
		shape, err := graph.EvalShape(v.Type.Shape, dims)
		if err != nil {
			t.Fatal(err)
		}
		x, err := graph.RandomTensor(v.Type.DType, shape, uint64(i+1), -1, 1)
		if err != nil {
			t.Fatal(err)
		}
		in[v.Name] = x
	}
	return in
}

// Every fused op form: Attention qk with a −inf bias (f64, attributes for
// chunking), bias_only, SwiGLU with and without W_out, OuterProductMean
// with a bias and batch dims, TriangleMultiplication both ways, with and
// without mask; two nodes of one signature share a function.
func TestExportRunsInORT(t *testing.T) {
	py := python(t)
	g, err := graph.Parse(`graph fused opsets(""=17, of3c=1) {
  input %q:f64[2,N,8]
  input %k:f64[2,N,8]
  input %v:f64[2,N,4]
  input %neg:f64[1,N]
  input %pb:f32[1,N,N]
  input %m:f32[3,N,4]
  input %x:f32[N,6]
  input %z:f32[1,N,N,4]
  input %zm:f32[1,N,N,1]
  input %oa:f32[1,3,N,2]
  input %ob:f32[1,3,N,3]
  %w:f32[6,10] = const random(1, -1, 1)
  %wo:f32[5,3] = const random(2, -1, 1)
  %tw:f32[4,12] = const random(3, -1, 1)
  %opw:f32[6,5] = const random(4, -1, 1)
  %opb:f32[5] = const random(5, -1, 1)
  %att = of3c.Attention(%q, %k, %v, %neg) {scale=0.3, query_chunk=2, kv_chunk=3}
  %att2 = of3c.Attention(%q, %k, %v, %neg) {scale=0.3, query_chunk=2, kv_chunk=3}
  %bo = of3c.Attention(_, _, %m, %pb) {mode="bias_only"}
  %sw = of3c.SwiGLU(%x, %w)
  %sw2 = of3c.SwiGLU(%x, %w, %wo) {row_chunk=2}
  %to = of3c.TriangleMultiplication(%z, %zm, %tw) {direction="outgoing", row_chunk=2}
  %ti = of3c.TriangleMultiplication(%z, _, %tw) {direction="incoming"}
  %op = of3c.OuterProductMean(%oa, %ob, %opw, %opb) {row_chunk=3}
  output %att, %att2, %bo, %sw, %sw2, %to, %ti, %op
}`)
	if err != nil {
		t.Fatal(err)
	}
	if err := graph.InferShapes(g); err != nil {
		t.Fatal(err)
	}
	in := randomInputs(t, g, map[string]int64{"N": 5})
	// −inf in the bias, a whole masked key column: read as −1e9.
	negv, _ := in["neg"].Float64s()
	negv[1], negv[3] = math.Inf(-1), math.Inf(-1)
	in["neg"], _ = graph.NewTensorFromFloat64s(graph.Float64, []int64{1, 5}, negv)
	checkWithORT(t, py, g, in, 2e-5)

	data, err := Export(g, Options{})
	if err != nil {
		t.Fatal(err)
	}
	fns, err := functionsByOp(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(fns["Attention"]) != 2 || len(fns["SwiGLU"]) != 2 || len(fns["TriangleMultiplication"]) != 2 || len(fns["OuterProductMean"]) != 1 {
		t.Errorf("functions: %v (want one per distinct signature)", fns)
	}
}

func TestExportRefusesOldOpset(t *testing.T) {
	g, err := graph.Parse(`graph g opsets(""=17, of3c=1) {
  input %x:f32[N,6]
  %w:f32[6,10] = const random(1, -1, 1)
  %sw = of3c.SwiGLU(%x, %w)
  output %sw
}`)
	if err != nil {
		t.Fatal(err)
	}
	g.Opsets[""] = 11
	if _, err := Export(g, Options{}); err == nil {
		t.Error("opset 11 accepted")
	}
}

// functionsByOp lists the function names of an exported model by op.
func functionsByOp(data []byte) (map[string][]string, error) {
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(data, m); err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, f := range m.Functions {
		op := f.GetName()
		if i := strings.LastIndexByte(op, '_'); i > 0 {
			op = op[:i]
		}
		out[op] = append(out[op], f.GetName())
	}
	for _, v := range out {
		sort.Strings(v)
	}
	return out, nil
}
