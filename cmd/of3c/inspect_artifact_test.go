package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/of3c/of3c/driver"
	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/importer/npy"
)

func TestInspectArtifact(t *testing.T) {
	art := compileFixture(t, tinyBlock, "--buckets", "16,32")
	code, out, errs := run(t, "inspect", art)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"source       model.onnx", "device       cpu", "precision    fp32", "buckets      [16 32] on N",
		"fused ops    LayerNormalization×10 of3c.Attention×3", "fuse-attention", "input        z f32[1,N,N,16]", "sections:", "memory plan",
		// each fused node's lowering path on the artifact's device
		"lowering on cpu: attention/cpu-fused×3", "of3c.TriangleMultiplication  trimul/"} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	code, out, errs = run(t, "inspect", art, "--format", "json")
	if code != 0 {
		t.Fatalf("json: exit %d: %s", code, errs)
	}
	var info struct {
		Manifest struct {
			SourceName string  `json:"source_name"`
			Buckets    []int64 `json:"buckets"`
			Options    struct {
				Device string `json:"device"`
			} `json:"options"`
		} `json:"manifest"`
		Fusions  map[string]int `json:"fusions"`
		OpCounts map[string]int `json:"op_counts"`
		Passes   []struct {
			Name string `json:"name"`
		} `json:"passes"`
		Sections []struct {
			Name  string `json:"name"`
			Bytes int64  `json:"bytes"`
		} `json:"sections"`
		FileBytes int64 `json:"file_bytes"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if info.Manifest.SourceName != "model.onnx" || len(info.Manifest.Buckets) != 2 || info.Manifest.Options.Device != "cpu" ||
		info.Fusions["of3c.Attention"] != 3 || info.OpCounts["Softmax"] != 0 || len(info.Passes) < 5 || len(info.Sections) != 3 || info.FileBytes <= 0 {
		t.Errorf("json: %+v", info)
	}
	// The graph and its statistics, and refused pass options.
	if code, out, _ := run(t, "inspect", art, "--graph"); code != 0 || !strings.Contains(out, "of3c.Attention(") {
		t.Errorf("--graph: exit %d", code)
	}
	if code, out, _ := run(t, "inspect", art, "--format", "dot"); code != 0 || !strings.HasPrefix(out, "digraph") {
		t.Errorf("dot: exit %d", code)
	}
	if code, _, errs := run(t, "inspect", art, "--after", "all"); code != 2 || !strings.Contains(errs, "artifact") {
		t.Errorf("--after on an artifact: exit %d %s", code, errs)
	}
	if code, _, _ := run(t, "inspect", fixture, "--export-onnx", filepath.Join(t.TempDir(), "x.onnx")); code != 2 {
		t.Errorf("--export-onnx on an ONNX model: exit %d, want 2", code)
	}
}

// The exported model passes onnx.checker and onnxruntime reproduces
// `of3c run`'s outputs.
func TestInspectExportONNX(t *testing.T) {
	py, err := filepath.Abs("../../.venv/bin/python")
	if err != nil {
		t.Fatal(err)
	}
	if err := exec.Command(py, "-c", "import onnx, onnxruntime").Run(); err != nil {
		t.Skipf("no onnx/onnxruntime in %s: %v", py, err)
	}
	for _, fx := range []string{tinyBlock, "../../models/of3/testdata/msa_module_block_tiny_dynamo"} {
		art := compileFixture(t, fx, "--buckets", "16")
		dir := t.TempDir()
		x := filepath.Join(dir, "x.onnx")
		if code, _, errs := run(t, "inspect", art, "--export-onnx", x); code != 0 {
			t.Fatalf("%s: export: exit %d: %s", fx, code, errs)
		}
		sd := filepath.Join(fx, "test_data_set_0")
		ours := filepath.Join(dir, "ours.npz")
		if code, _, errs := run(t, "run", art, "--inputs", sd, "--buckets", "none", "--device", "ref", "-o", ours); code != 0 {
			t.Fatalf("run: %d %s", code, errs)
		}
		// Inputs as .npz by name, for the ORT script.
		g, err := loadInputs(art, sd)
		if err != nil {
			t.Fatal(err)
		}
		in := filepath.Join(dir, "in.npz")
		if err := npy.WriteNPZ(in, g.names, g.ts); err != nil {
			t.Fatal(err)
		}
		theirs := filepath.Join(dir, "ort.npz")
		if out, err := exec.Command(py, "../../internal/onnxexport/testdata/ort_run.py", x, in, theirs).CombinedOutput(); err != nil {
			t.Fatalf("%s: onnx.checker/onnxruntime: %v\n%s", fx, err, out)
		}
		if code, out, errs := run(t, "run", art, "--inputs", sd, "--buckets", "none", "--device", "ref", "--check", theirs, "--atol", "1e-4"); code != 0 {
			t.Errorf("%s: onnxruntime differs from of3c:\n%s%s", fx, out, errs)
		}
	}
	if _, err := os.Stat("x.onnx"); err == nil {
		t.Error("stray file")
	}
}

type namedTensors struct {
	names []string
	ts    map[string]*graph.Tensor
}

func loadInputs(art, dir string) (*namedTensors, error) {
	sess, err := driver.Open(art, driver.Options{Device: "ref"})
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	ts, err := driver.ReadBundle(dir, sess.Graph.Inputs)
	if err != nil {
		return nil, err
	}
	nt := &namedTensors{ts: ts}
	for _, v := range sess.Graph.Inputs {
		nt.names = append(nt.names, v.Name)
	}
	return nt, nil
}
