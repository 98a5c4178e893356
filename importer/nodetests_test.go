package importer

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/of3c/of3c/graph"
)

const nodeTestDir = "/usr/share/libonnx-testdata/data/node"

func nodeTestModels(t *testing.T) []string {
	t.Helper()
	models, _ := filepath.Glob(filepath.Join(nodeTestDir, "*", "model.onnx"))
	if len(models) == 0 {
		t.Skipf("no ONNX node tests under %s (install libonnx-testdata: make setup)", nodeTestDir)
	}
	return models
}

// TestNodeTestModelsImport loads every ONNX node-test model. Each must either
// import or fail with a clean, single-line error; with AllowUnsupported, only
// models using features of3c refuses outright (sequences, strings, subgraphs
// are counted, not failed) may fail.
func TestNodeTestModelsImport(t *testing.T) {
	models := nodeTestModels(t)
	var ok, unsupported, refused int
	reasons := map[string]int{}
	for _, path := range models {
		g, err := LoadFile(path, Options{})
		if err == nil {
			if err := graph.Verify(g); err != nil {
				t.Errorf("%s: imported graph does not verify: %v", path, err)
			}
			ok++
			if len(g.Outputs) == 0 {
				t.Errorf("%s: no outputs", path)
			}
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("multi-line error: %q", err)
		}
		if !strings.HasPrefix(err.Error(), path+": ") {
			t.Errorf("error not prefixed with the path: %v", err)
		}
		var ue *graph.UnsupportedOpError
		if errors.As(err, &ue) {
			unsupported++
		} else {
			refused++
			msg := err.Error()[len(path)+2:]
			reasons[reasonKey(msg)]++
		}
		// The same model must import for inspection unless it uses a
		// value kind the IR has no place for.
		g, err = LoadFile(path, Options{AllowUnsupported: true})
		if err != nil && !errors.As(err, &ue) && !isRefusedKind(err) {
			t.Errorf("AllowUnsupported: %v", err)
		}
		if err == nil {
			if err := graph.VerifyStructure(g); err != nil {
				t.Errorf("%s: imported graph does not verify: %v", path, err)
			}
		}
	}
	keys := make([]string, 0, len(reasons))
	for k := range reasons {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("refused %4d: %s", reasons[k], k)
	}
	t.Logf("node tests: %d models, %d imported, %d unsupported ops, %d refused", len(models), ok, unsupported, refused)
}

// isRefusedKind reports errors for things of3c's IR cannot hold at all.
func isRefusedKind(err error) bool {
	msg := err.Error()
	for _, s := range []string{"is not a tensor", "unsupported element type", "string constants", "sparse", "not supported"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func reasonKey(msg string) string {
	// Group messages by their text with quoted names removed.
	var b strings.Builder
	inQuote := false
	for _, r := range msg {
		if r == '"' {
			inQuote = !inQuote
			if inQuote {
				b.WriteString("…")
			}
			continue
		}
		if !inQuote {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestNodeTestTensorFiles decodes every input_K.pb/output_K.pb and checks the
// re-encoded tensor decodes to the same thing.
func TestNodeTestTensorFiles(t *testing.T) {
	nodeTestModels(t)
	files, _ := filepath.Glob(filepath.Join(nodeTestDir, "*", "test_data_set_0", "*.pb"))
	var ok, refused int
	for _, path := range files {
		name, tensor, err := ReadTensorFile(path)
		if err != nil {
			if strings.Contains(err.Error(), "\n") || !strings.HasPrefix(err.Error(), path+": ") {
				t.Errorf("bad error: %q", err)
			}
			refused++
			continue
		}
		ok++
		if err := tensor.Validate(); err != nil {
			t.Errorf("%s: %v", path, err)
		}
		data, err := EncodeTensor(name, tensor)
		if err != nil {
			t.Fatalf("%s: encode: %v", path, err)
		}
		name2, t2, err := DecodeTensor(data)
		if err != nil || name2 != name || t2.DType != tensor.DType || !equalInts(t2.Shape, tensor.Shape) || string(t2.Data) != string(tensor.Data) {
			t.Errorf("%s: round trip changed the tensor (err %v)", path, err)
		}
	}
	if ok == 0 {
		t.Fatal("no tensor file decoded")
	}
	t.Logf("tensor files: %d decoded, %d refused (sequences, strings, ...)", ok, refused)
}

func TestReadTensorFileMissing(t *testing.T) {
	_, _, err := ReadTensorFile(filepath.Join(t.TempDir(), "nope.pb"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v, want not-exist", err)
	}
}
