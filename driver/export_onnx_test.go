package driver

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/of3c/of3c/artifact"
	"github.com/of3c/of3c/importer/npy"
)

// Above the threshold, the weights go to PATH.data and the model still
// passes onnx.checker and runs in onnxruntime, matching the reference
// executor.
func TestExportONNXExternalData(t *testing.T) {
	py, _ := filepath.Abs("../.venv/bin/python")
	if err := exec.Command(py, "-c", "import onnx, onnxruntime").Run(); err != nil {
		t.Skipf("no onnx/onnxruntime: %v", err)
	}
	fx := "../models/of3/testdata/tri_mul_out_tiny_torchscript"
	g, m, err := Compile(CompileRequest{Source: filepath.Join(fx, "model.onnx"), Options: artifact.CompileOptions{Device: "cpu", Precision: "fp32"}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	art := filepath.Join(dir, "m.of3")
	if err := artifact.Write(art, m, g); err != nil {
		t.Fatal(err)
	}
	a, err := artifact.Read(art)
	if err != nil {
		t.Fatal(err)
	}
	defer func(v int64) { ExternalDataAbove = v }(ExternalDataAbove)
	ExternalDataAbove = 0
	x := filepath.Join(dir, "x.onnx")
	if err := ExportONNX(a, x); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(x + ".data"); err != nil || st.Size() == 0 {
		t.Fatalf("no external data: %v", err)
	}
	sess, err := Open(art, Options{Device: "ref"})
	if err != nil {
		t.Fatal(err)
	}
	in, err := ReadBundle(filepath.Join(fx, "test_data_set_0"), sess.Graph.Inputs)
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := sess.Run(in)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range sess.Graph.Inputs {
		names = append(names, v.Name)
	}
	inPath, outPath := filepath.Join(dir, "in.npz"), filepath.Join(dir, "out.npz")
	if err := npy.WriteNPZ(inPath, names, in); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(py, "../internal/onnxexport/testdata/ort_run.py", x, inPath, outPath).CombinedOutput(); err != nil {
		t.Fatalf("onnx.checker/onnxruntime: %v\n%s", err, out)
	}
	_, got, err := npy.ReadNPZ(outPath)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, o := range sess.Graph.Outputs {
		order = append(order, o.Name)
	}
	res, err := Compare(order, got, want, Tolerance{Atol: 1e-5})
	if err != nil || !res.Passed {
		t.Errorf("onnxruntime vs reference: %+v %v", res, err)
	}
	// Only the two files are left.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 5 { // m.of3, x.onnx, x.onnx.data, in.npz, out.npz
		var n []string
		for _, e := range ents {
			n = append(n, e.Name())
		}
		t.Errorf("files: %v", n)
	}
}
