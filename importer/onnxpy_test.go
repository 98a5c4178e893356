package importer

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/of3c/of3c/graph"
)

// runPython runs script with the project venv, skipping the test without it.
func runPython(t *testing.T, script string, args ...string) {
	t.Helper()
	py, err := filepath.Abs(filepath.Join("..", ".venv", "bin", "python"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(py); err != nil {
		t.Skip("no .venv (make setup); not checking against the onnx package")
	}
	out, err := exec.Command(py, append([]string{"-c", script}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
}

// TestInliningMatchesONNX builds a model with nested local functions,
// attribute references, a default attribute (IR 9) and an overload (IR 10)
// with the onnx package, then compares our inlining with onnx.inliner's.
func TestInliningMatchesONNX(t *testing.T) {
	dir := t.TempDir()
	script := `
import sys, onnx, onnx.inliner
from onnx import helper as h, TensorProto as T
d = sys.argv[1]
ops = [h.make_opsetid("", 18), h.make_opsetid("local", 1)]
# Scale(X){alpha=2.0 default}: Y = X * alpha, Z = Transpose(Y){perm: @p}
scale = h.make_function("local", "Scale", ["X"], ["Z"], [
    h.make_node("Constant", [], ["a"], value_float=1.0, name="c") ,
    h.make_node("Mul", ["X", "a"], ["Y"], name="mul"),
    h.make_node("Transpose", ["Y"], ["Z"], name="tr"),
], ops, attributes=["p"], attribute_protos=[h.make_attribute("alpha", 2.0)])
# make the Constant take alpha and Transpose take p by reference
scale.node[0].ClearField("attribute")
ref = onnx.AttributeProto(name="value_float", ref_attr_name="alpha", type=onnx.AttributeProto.FLOAT)
scale.node[0].attribute.append(ref)
scale.node[2].attribute.append(onnx.AttributeProto(name="perm", ref_attr_name="p", type=onnx.AttributeProto.INTS))
# Twice(X) = Scale(Scale(X)){p: @q}, overload "v2" uses Relu instead.
twice = h.make_function("local", "Twice", ["X"], ["Y"], [
    h.make_node("Scale", ["X"], ["T"], domain="local", name="s1"),
    h.make_node("Scale", ["T"], ["Y"], domain="local", name="s2"),
], ops, attributes=["q"])
for n in twice.node:
    n.attribute.append(onnx.AttributeProto(name="p", ref_attr_name="q", type=onnx.AttributeProto.INTS))
twice2 = h.make_function("local", "Twice", ["X"], ["Y"], [h.make_node("Relu", ["X"], ["Y"])], ops)
twice2.overload = "v2"
graph = h.make_graph([
    h.make_node("Twice", ["x"], ["t"], domain="local", name="call1", q=[1, 0]),
    h.make_node("Twice", ["t"], ["u"], domain="local", name="call2", overload="v2"),
    h.make_node("Scale", ["u"], ["y"], domain="local", name="call3", p=[1, 0], alpha=0.5),
], "g", [h.make_tensor_value_info("x", T.FLOAT, ["N", 3])], [h.make_tensor_value_info("y", T.FLOAT, [3, "N"])])
m = h.make_model(graph, opset_imports=ops, functions=[scale, twice, twice2], ir_version=10)
onnx.checker.check_model(m)
onnx.save(m, d + "/fn.onnx")
# onnx.inliner (1.23) ignores attribute defaults, which onnxruntime applies;
# compare against a copy that passes alpha explicitly.
for n in m.functions[1].node:
    n.attribute.append(h.make_attribute("alpha", 2.0))
onnx.save(onnx.inliner.inline_local_functions(m), d + "/inlined.onnx")
`
	runPython(t, script, dir)
	ours, err := LoadFile(filepath.Join(dir, "fn.onnx"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := LoadFile(filepath.Join(dir, "inlined.onnx"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if a, b := opSignature(ours), opSignature(theirs); a != b {
		t.Errorf("our inlining:\n%s\nonnx.inliner:\n%s", a, b)
	}
	if !strings.Contains(opSignature(ours), "const f32[] [2]") {
		t.Errorf("default alpha=2 not applied:\n%s", opSignature(ours))
	}
	if !strings.Contains(opSignature(ours), "Relu") {
		t.Errorf("overload v2 not used:\n%s", opSignature(ours))
	}
	for _, v := range ours.Outputs {
		if v.Type.String() != "f32[3,N]" {
			t.Errorf("output %s", v.Type)
		}
	}
}

// opSignature lists ops with attributes and constant values in order, with
// value names left out (the two inliners name values differently).
func opSignature(g *graph.Graph) string {
	var lines []string
	for _, c := range g.Consts {
		vals, _ := c.Const.Float64s()
		lines = append(lines, fmt.Sprintf("const %s %v", c.Type, vals))
	}
	sort.Strings(lines)
	for _, n := range g.Nodes {
		line := n.QualifiedOp()
		for _, k := range n.AttrNames() {
			line += fmt.Sprintf(" %s=%v", k, n.Attrs[k].Ints)
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n")
}

// TestExternalDataFromONNX loads a model whose weights the onnx package
// wrote as external data.
func TestExternalDataFromONNX(t *testing.T) {
	dir := t.TempDir()
	script := `
import sys, numpy as np, onnx
from onnx import helper as h, numpy_helper as nh, TensorProto as T
d = sys.argv[1]
w = nh.from_array(np.arange(2048, dtype=np.float32).reshape(2, 1024), "w")
b = nh.from_array(np.arange(2000, dtype=np.float16), "b")
graph = h.make_graph([h.make_node("Add", ["x", "w"], ["y"])], "g",
    [h.make_tensor_value_info("x", T.FLOAT, [2, 1024])], [h.make_tensor_value_info("y", T.FLOAT, [2, 1024])], [w, b])
m = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
onnx.save_model(m, d + "/m.onnx", save_as_external_data=True, all_tensors_to_one_file=True, location="m.data", size_threshold=1024)
`
	runPython(t, script, dir)
	g, err := LoadFile(filepath.Join(dir, "m.onnx"), Options{AllowUnsupported: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range g.Consts {
		vals, _ := c.Const.Float64s()
		last := vals[len(vals)-1]
		if (c.Name == "w" && last != 2047) || (c.Name == "b" && last != 1999) {
			t.Errorf("%s: last element %v", c.Name, last)
		}
	}
	if len(g.Consts) != 2 {
		t.Errorf("%d consts", len(g.Consts))
	}
}
