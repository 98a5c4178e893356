package importer

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"of3c/graph"
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
				var ue *graph.UnsupportedOpError
				if opts.AllowUnsupported && errors.As(err, &ue) && ue.Reason == "" {
					t.Fatalf("AllowUnsupported still failed on an unsupported op: %v", err)
				}
				continue
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
