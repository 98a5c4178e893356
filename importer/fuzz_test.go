package importer

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/of3c/of3c/graph"
)

// FuzzLoad feeds arbitrary bytes to the import path (protobuf decode, model
// checks, inlining, external data from testdata/fuzz/extdata, inference) and
// checks that it errors cleanly or returns a graph that encodes and reloads.
// Seeds: small node-test models (testdata/fuzz/seeds) and models built by
// the tests (local functions, external data).
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "seeds", "*.onnx"))
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add(marshal(f, fnModel(linearAct())))
	f.Add(marshal(f, externalModel("w.bin", 0, 8)))
	f.Add(marshal(f, sameModel()))
	extDir := filepath.Join("testdata", "fuzz", "extdata")
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, opts := range []Options{{}, {AllowUnsupported: true}} {
			g, err := Load(data, extDir, opts)
			if err != nil {
				if strings.Contains(err.Error(), "\n") {
					t.Fatalf("multi-line error: %q", err)
				}
				if strings.Contains(err.Error(), "shape rule panicked") {
					t.Fatalf("%v", err)
				}
				var ue *graph.UnsupportedOpError
				if opts.AllowUnsupported && errors.As(err, &ue) && ue.Reason == "" {
					t.Fatalf("AllowUnsupported still failed on an unsupported op: %v", err)
				}
				continue
			}
			if err := graph.VerifyStructure(g); err != nil {
				t.Fatalf("imported graph does not verify: %v", err)
			}
			if !opts.AllowUnsupported {
				if err := graph.Verify(g); err != nil {
					t.Fatalf("imported graph does not verify: %v", err)
				}
			}
			enc, err := Encode(g, EncodeOptions{})
			if err != nil {
				t.Fatalf("Encode of an imported graph failed: %v", err)
			}
			if _, err := Load(enc, "", Options{AllowUnsupported: true}); err != nil {
				t.Fatalf("reloading an encoded graph failed: %v", err)
			}
		}
	})
}

// FuzzDecodeTensor: TensorProto files (node-test input_K.pb) decode to a
// valid tensor or a one-line error.
func FuzzDecodeTensor(f *testing.F) {
	for _, s := range []string{"test_add", "test_cast_FLOAT_to_FLOAT16", "test_constant"} {
		files, _ := filepath.Glob(filepath.Join(nodeTestDir, s, "test_data_set_0", "*.pb"))
		for _, p := range files {
			if data, err := os.ReadFile(p); err == nil {
				f.Add(data)
			}
		}
	}
	enc, err := EncodeTensor("x", graph.NewTensorI64([]int64{2, 1}, []int64{-1, 7}))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc)
	f.Fuzz(func(t *testing.T, data []byte) {
		name, tensor, err := DecodeTensor(data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error: %q", err)
			}
			return
		}
		if err := tensor.Validate(); err != nil {
			t.Fatalf("decoded an invalid tensor: %v", err)
		}
		again, err := EncodeTensor(name, tensor)
		if err != nil {
			t.Fatalf("re-encoding failed: %v", err)
		}
		if _, t2, err := DecodeTensor(again); err != nil || string(t2.Data) != string(tensor.Data) {
			t.Fatalf("re-decoding changed the tensor: %v", err)
		}
	})
}
