package conformance

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Source is a folder of node tests and the label that prefixes its test
// names ("" keeps bare names: Debian's data, the baseline).
type Source struct {
	Dir   string
	Label string
}

// GeneratedDir is where gen_node_tests.py writes the installed onnx
// package's node tests; its parent holds a VERSION file ("onnx 1.23.2").
const GeneratedDir = ".cache/onnx-node-tests/node"

// SourceFor labels a node-test folder: Debian's keeps bare names, a
// generated folder is labelled by the onnx version it came from, anything
// else by its parent folder's name.
func SourceFor(dir string) Source {
	clean := filepath.Clean(dir)
	if clean == filepath.Clean(DefaultDebianDir) {
		return Source{Dir: clean}
	}
	parent := filepath.Dir(clean)
	if v, err := os.ReadFile(filepath.Join(parent, "VERSION")); err == nil {
		if f := strings.Fields(string(v)); len(f) == 2 {
			return Source{Dir: clean, Label: f[0] + "-" + f[1]}
		}
	}
	return Source{Dir: clean, Label: filepath.Base(parent)}
}

// DefaultSources lists the node-test folders present under the repository
// root and says on w which are used and which are absent.
func DefaultSources(root string, w io.Writer) []Source {
	var out []Source
	if st, err := os.Stat(DefaultDebianDir); err == nil && st.IsDir() {
		fmt.Fprintf(w, "node tests: Debian libonnx-testdata (ONNX 1.12) at %s\n", DefaultDebianDir)
		out = append(out, Source{Dir: DefaultDebianDir})
	} else {
		fmt.Fprintf(w, "node tests: %s absent (make setup installs libonnx-testdata)\n", DefaultDebianDir)
	}
	if wheel := WheelNodeDir(root); wheel != "" {
		fmt.Fprintf(w, "node tests: onnx wheel data at %s\n", wheel)
		out = append(out, Source{Dir: wheel, Label: "onnx-wheel"})
	} else {
		fmt.Fprintln(w, "node tests: the onnx wheel in .venv ships no test data (onnx/backend/test/data/node absent)")
	}
	gen := filepath.Join(root, GeneratedDir)
	if st, err := os.Stat(gen); err == nil && st.IsDir() {
		src := SourceFor(gen)
		fmt.Fprintf(w, "node tests: generated from the onnx package's case generators at %s (%s/…)\n", gen, src.Label)
		out = append(out, src)
	} else {
		fmt.Fprintf(w, "node tests: newer ONNX tests not generated (run with -gen to write them to %s)\n", GeneratedDir)
	}
	return out
}

// GenerateNodeTests runs gen_node_tests.py with the repository's virtual
// environment, unless GeneratedDir already holds the tests of the installed
// onnx version.
func GenerateNodeTests(root string, w io.Writer) error {
	python := filepath.Join(root, ".venv", "bin", "python")
	if _, err := os.Stat(python); err != nil {
		return fmt.Errorf("no Python at %s (run make setup)", python)
	}
	out, err := exec.Command(python, "-c", "import onnx; print('onnx', onnx.__version__)").Output()
	if err != nil {
		return fmt.Errorf("cannot import onnx: %v", err)
	}
	want := strings.TrimSpace(string(out))
	gen := filepath.Join(root, GeneratedDir)
	versionFile := filepath.Join(filepath.Dir(gen), "VERSION")
	if have, err := os.ReadFile(versionFile); err == nil && strings.TrimSpace(string(have)) == want {
		return nil
	}
	// Start clean so tests dropped by the new version do not linger.
	if err := os.RemoveAll(gen); err != nil {
		return err
	}
	cmd := exec.Command(python, "-W", "ignore", filepath.Join(root, "tests", "conformance", "gen_node_tests.py"), gen)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("gen_node_tests.py: %v", err)
	}
	return os.WriteFile(versionFile, []byte(want+"\n"), 0o644)
}
