package capi

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/of3c/of3c/driver"
	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/mlx"
)

const triAtt = "../../models/of3/testdata/tri_att_start_tiny_torchscript"

func compiled(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "m.of3")
	if err := Compile(filepath.Join(triAtt, "model.onnx"), out, `{"buckets": [8, 16]}`); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSessionSignatureRun(t *testing.T) {
	art := compiled(t)
	if _, err := Open(art, "cuda", ""); err == nil || !strings.Contains(err.Error(), "cpu, gpu, ref") {
		t.Errorf("bad device: %v", err)
	}
	if _, err := Open(art, "", `{"bukets": []}`); err == nil {
		t.Error("misspelt option accepted")
	}
	dev := "ref"
	if mlx.Available() {
		dev = "cpu"
	}
	id, err := Open(art, dev, `{"buckets": []}`)
	if err != nil {
		t.Fatal(err)
	}
	defer Close(id)
	sig, err := Signature(id)
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Device  string `json:"device"`
		Buckets []int64
		Inputs  []struct {
			Name      string   `json:"name"`
			ONNXDType int      `json:"onnx_dtype"`
			Shape     []string `json:"shape"`
		} `json:"inputs"`
	}
	if err := json.Unmarshal([]byte(sig), &s); err != nil {
		t.Fatal(err)
	}
	if s.Device != dev || len(s.Inputs) != 2 || s.Inputs[0].Name != "z" || s.Inputs[0].ONNXDType != 1 || strings.Join(s.Inputs[0].Shape, ",") != "1,N,N,16" || s.Buckets == nil {
		t.Errorf("signature %s", sig)
	}
	in, err := driver.RandomInputs(sessions[id].s.Graph.Inputs, map[string]int64{"N": 6}, 1)
	if err != nil {
		t.Fatal(err)
	}
	var ins []Input
	for _, name := range []string{"z", "pair_mask"} {
		x := in[name]
		ins = append(ins, Input{Name: name, DType: x.DType, Shape: x.Shape, Data: x.Data})
	}
	// Concurrent runs of one session agree and all come back.
	var wg sync.WaitGroup
	rids := make([]int64, 4)
	errs := make([]error, 4)
	for k := range rids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rids[k], errs[k] = Run(id, ins)
		}()
	}
	wg.Wait()
	var first *graph.Tensor
	for k, rid := range rids {
		if errs[k] != nil {
			t.Fatal(errs[k])
		}
		r, err := GetResult(rid)
		if err != nil || len(r.Tensors) != 1 || r.Names[0] != "z_update" {
			t.Fatalf("result %d: %v %+v", rid, err, r)
		}
		if first == nil {
			first = r.Tensors[0]
		} else if string(first.Data) != string(r.Tensors[0].Data) {
			t.Error("concurrent runs disagree")
		}
		FreeResult(rid)
	}
	if _, err := GetResult(rids[0]); err == nil {
		t.Error("freed result still there")
	}
	if _, err := Run(id, ins[:1]); err == nil || !strings.Contains(err.Error(), "pair_mask") {
		t.Errorf("missing input: %v", err)
	}
	if _, err := Run(id, append(ins, ins[0])); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("duplicate input: %v", err)
	}
	bad := ins[0]
	bad.Data = bad.Data[:5]
	if _, err := Run(id, []Input{bad, ins[1]}); err == nil {
		t.Error("short buffer accepted")
	}
	Close(id)
	if _, err := Signature(id); err == nil {
		t.Error("closed session still answers")
	}
	Close(id) // twice is harmless

	// An ONNX model is compiled on open.
	oid, err := Open(filepath.Join(triAtt, "model.onnx"), "ref", "")
	if err != nil {
		t.Fatal(err)
	}
	defer Close(oid)
	if sig, err := Signature(oid); err != nil || !strings.Contains(sig, `"z_update"`) {
		t.Errorf("onnx signature %s %v", sig, err)
	}
}

// The shared library and its header from C, with two threads on one
// session (cmd/libof3c/testdata/smoke.c).
func TestSharedLibraryFromC(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the shared library")
	}
	if !mlx.Available() {
		t.Skip("needs cgo and MLX")
	}
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler")
	}
	dir := t.TempDir()
	lib := filepath.Join(dir, "libof3c.so")
	if out, err := exec.Command("go", "build", "-buildmode=c-shared", "-o", lib, "../../cmd/libof3c").CombinedOutput(); err != nil {
		t.Fatalf("go build -buildmode=c-shared: %v\n%s", err, out)
	}
	smoke := filepath.Join(dir, "smoke")
	if out, err := exec.Command(cc, "-Wall", "-Werror", "-o", smoke, "../../cmd/libof3c/testdata/smoke.c", "-L"+dir, "-lof3c", "-lpthread", "-Wl,-rpath,"+dir).CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	// The hand-written header declares what the library exports.
	gen, err := os.ReadFile(filepath.Join(dir, "libof3c.h"))
	if err != nil {
		t.Fatal(err)
	}
	hdr, err := os.ReadFile("../../cmd/libof3c/of3c.h")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(gen), "\n") {
		if name, ok := strings.CutPrefix(line, "extern "); ok && strings.Contains(name, "of3c_") {
			fn := name[strings.Index(name, "of3c_"):strings.Index(name, "(")]
			if !strings.Contains(string(hdr), " "+fn+"(") && !strings.Contains(string(hdr), "*"+fn+"(") {
				t.Errorf("of3c.h does not declare %s", fn)
			}
		}
	}
	out, err := exec.Command(smoke, compiled(t)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok\n") {
		t.Fatalf("smoke: %v\n%s", err, out)
	}
}
