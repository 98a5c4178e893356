package importer

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// TestGeneratedProtoIsCurrent regenerates importer/onnxpb with
// scripts/gen_onnxpb.sh and fails if the committed file differs, so the
// generated code can never drift from the script or the schema.
func TestGeneratedProtoIsCurrent(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("protoc"); err != nil {
		t.Skip("protoc not installed (apt install protobuf-compiler); not checking importer/onnxpb")
	}
	if _, err := os.Stat(filepath.Join(root, ".bin", "protoc-gen-go")); err != nil {
		if _, err := exec.LookPath("protoc-gen-go"); err != nil {
			t.Skip("protoc-gen-go not installed (make setup); not checking importer/onnxpb")
		}
	}
	if _, err := os.Stat("/usr/include/onnx/onnx.proto"); err != nil && os.Getenv("ONNX_PROTO") == "" {
		t.Skip("onnx.proto not installed (apt install libonnx-dev); not checking importer/onnxpb")
	}
	out := t.TempDir()
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "gen_onnxpb.sh"), out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gen_onnxpb.sh: %v\n%s", err, msg)
	}
	got, err := os.ReadFile(filepath.Join(out, "onnx.pb.go"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(root, "importer", "onnxpb", "onnx.pb.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("importer/onnxpb/onnx.pb.go is stale: run scripts/gen_onnxpb.sh and commit the result")
	}
}

// TestAttrKindsCurrent regenerates attrkinds_gen.go from the venv's onnx
// schemas and fails if the committed file differs.
func TestAttrKindsCurrent(t *testing.T) {
	py := filepath.Join("..", ".venv", "bin", "python")
	if _, err := os.Stat(py); err != nil {
		t.Skip("no .venv (make setup); not checking attrkinds_gen.go")
	}
	gen, err := exec.Command(py, "gen_attrkinds.py").Output()
	if err != nil {
		t.Fatalf("gen_attrkinds.py: %v", err)
	}
	gofmt := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "gofmt"))
	gofmt.Stdin = bytes.NewReader(gen)
	got, err := gofmt.Output()
	if err != nil {
		t.Fatalf("gofmt: %v", err)
	}
	want, err := os.ReadFile("attrkinds_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("attrkinds_gen.go is stale: run .venv/bin/python importer/gen_attrkinds.py | gofmt > importer/attrkinds_gen.go")
	}
}
