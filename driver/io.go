package driver

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/of3c/of3c/artifact"
	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/importer"
	"github.com/of3c/of3c/importer/npy"
	"github.com/of3c/of3c/internal/safefile"
	"github.com/of3c/of3c/internal/units"
)

// InputGate bounds what reading inputs may allocate. Each tensor's dtype
// and shape are checked, from the file's header where the format has one
// (.npy, .npz members), against the model's declared input, and the bytes
// of all inputs together against Limit — before the data is read. Formats
// without a separate header (.pb, .safetensors) are first held to Limit by
// their file size. A nil *InputGate checks nothing beyond the files' sizes.
type InputGate struct {
	// Limit is the bytes all inputs together may take (0: no limit); Why
	// names it in errors (e.g. "the available memory").
	Limit int64
	Why   string
	// Types are the declared input types by name (nil: not checked).
	Types map[string]graph.Type
	used  int64
}

// InputGate is the gate for this session's inputs: their declared types,
// and the memory limit the pre-run check uses (the compile-time budget or
// the memory available); no byte limit when the memory check is off.
func (s *Session) InputGate() *InputGate {
	g := &InputGate{Types: s.types}
	if !s.opts.SkipMemoryCheck {
		g.Limit, g.Why = s.memoryLimit()
	}
	return g
}

// remaining is what Limit leaves for the next file (0: unlimited).
func (g *InputGate) remaining() (int64, string) {
	if g == nil || g.Limit <= 0 {
		return 0, ""
	}
	return max(g.Limit-g.used, 1), g.Why
}

// check admits input name of dtype dt and shape, counting its bytes.
// Admit checks input name of dtype dt and shape against the gate, counting
// its bytes, before its data is read or made.
func (g *InputGate) Admit(name string, dt graph.DType, shape []int64) error {
	return g.check(name, dt, shape)
}

func (g *InputGate) check(name string, dt graph.DType, shape []int64) error {
	if g == nil {
		return nil
	}
	if typ, ok := g.Types[name]; ok {
		if dt != typ.DType {
			return inputErrorf("input %q is %s, the model wants %s (%s)", name, dt, typ.DType, typ)
		}
		if typ.Ranked {
			if len(shape) != len(typ.Shape) {
				return inputErrorf("input %q has rank %d (shape %v), the model wants rank %d (%s)", name, len(shape), shape, len(typ.Shape), typ)
			}
			for i, d := range typ.Shape {
				if d.Sym == "" && d.Val >= 0 && d.Val != shape[i] {
					return inputErrorf("input %q has shape %v, the model wants %s", name, shape, typ)
				}
			}
		}
	}
	n := int64(dt.Size())
	for _, d := range shape {
		if d < 0 {
			return inputErrorf("input %q has a negative dim in %v", name, shape)
		}
		if d > 0 && n > math.MaxInt64/d {
			return inputErrorf("input %q: shape %v overflows int64 bytes", name, shape)
		}
		n *= d
	}
	if g.Limit > 0 && (n > g.Limit || g.used+n > g.Limit) {
		return &MemoryError{fmt.Sprintf("input %q (%s%v) needs %s; with the inputs read before it that is %s, more than %s %s",
			name, dt, shape, units.FormatBytes(n), units.FormatBytes(satAdd(g.used, n)), g.Why, units.FormatBytes(g.Limit))}
	}
	g.used += n
	return nil
}

func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// readLimited reads a whole file of at most the gate's remaining bytes
// (plus slack for the format's own bytes), refusing special files.
func (g *InputGate) readFile(path string) ([]byte, error) {
	lim, why := g.remaining()
	if lim > 0 {
		lim = satAdd(lim, fileSlack)
	}
	return safefile.ReadFile(path, lim, why)
}

// fileSlack is what a tensor file may hold beyond its tensor's bytes
// (headers, names, protobuf framing).
const fileSlack = 1 << 20

// ReadTensor reads one tensor from an .npy, .safetensors (which must hold
// exactly one tensor, or one named like the input) or TensorProto .pb file.
// With a gate (at most one), the tensor is checked before its data is read.
func ReadTensor(path, inputName string, gate ...*InputGate) (*graph.Tensor, error) {
	var g *InputGate
	if len(gate) > 0 {
		g = gate[0]
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".npy":
		f, size, err := safefile.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		t, err := npy.ReadWith(f, npy.Limits{Size: size, Check: func(dt graph.DType, shape []int64) error {
			return g.check(inputName, dt, shape)
		}})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return t, nil
	case ".safetensors":
		data, err := g.readFile(path)
		if err != nil {
			return nil, err
		}
		ts, _, err := artifact.DecodeSafetensors(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		var t *graph.Tensor
		if t = ts[inputName]; t == nil && len(ts) == 1 {
			for _, x := range ts {
				t = x
			}
		}
		if t == nil {
			return nil, fmt.Errorf("%s: holds %d tensors and none is named %q", path, len(ts), inputName)
		}
		if err := g.check(inputName, t.DType, t.Shape); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return t, nil
	case ".pb":
		lim, why := g.remaining()
		if lim > 0 {
			lim = satAdd(lim, fileSlack)
		}
		_, t, err := importer.ReadTensorFileLimit(path, lim, why)
		if err != nil {
			return nil, err
		}
		if err := g.check(inputName, t.DType, t.Shape); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return t, err
	}
	return nil, fmt.Errorf("%s: unknown tensor file type (want .npy, .safetensors or .pb)", path)
}

var inputPB = regexp.MustCompile(`^input_(\d+)\.pb$`)
var outputPB = regexp.MustCompile(`^output_(\d+)\.pb$`)

// ReadBundle reads every tensor of an .npz archive or an ONNX
// test_data_set folder. In a folder, input_K.pb files are matched to the
// graph's inputs by their TensorProto name, or by position K when unnamed.
//
// With a gate (at most one), each tensor is checked before its data is read.
func ReadBundle(path string, inputs []*graph.Value, gate ...*InputGate) (map[string]*graph.Tensor, error) {
	var g *InputGate
	if len(gate) > 0 {
		g = gate[0]
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		if strings.ToLower(filepath.Ext(path)) != ".npz" {
			return nil, fmt.Errorf("%s: --inputs takes an .npz file or a test_data_set folder", path)
		}
		_, ts, err := npy.ReadNPZWith(path, g.check)
		return ts, err
	}
	return readPBDir(path, inputPB, inputs, g)
}

// ReadExpected reads expected outputs: output_K.pb files of a
// test_data_set folder, matched to the graph's outputs by name or position,
// or an .npz archive whose entries are named like the outputs (as `run -o
// FILE.npz` writes them) or arr_K by position (numpy.savez's default).
// Together they may take at most the memory available.
func ReadExpected(path string, outputs []*graph.Value) (map[string]*graph.Tensor, error) {
	g := &InputGate{Limit: AvailableMemory(), Why: "the available memory"}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return readPBDir(path, outputPB, outputs, g)
	}
	if strings.ToLower(filepath.Ext(path)) != ".npz" {
		return nil, fmt.Errorf("%s: --check takes an .npz file or a test_data_set folder", path)
	}
	_, ts, err := npy.ReadNPZWith(path, g.check)
	if err != nil {
		return nil, err
	}
	out := map[string]*graph.Tensor{}
	for k, v := range outputs {
		if t, ok := ts[v.Name]; ok {
			out[v.Name] = t
		} else if t, ok := ts[fmt.Sprintf("arr_%d", k)]; ok {
			out[v.Name] = t
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no entry is named like an output of the model (%s) or arr_K", path, signature(outputs))
	}
	return out, nil
}

func readPBDir(dir string, re *regexp.Regexp, vals []*graph.Value, g *InputGate) (map[string]*graph.Tensor, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	type file struct {
		k    int
		name string
	}
	var files []file
	for _, e := range entries {
		m := re.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		k, err := strconv.Atoi(m[1])
		if err != nil {
			continue
		}
		files = append(files, file{k, e.Name()})
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no %s files", dir, strings.Trim(re.String(), "^$\\"))
	}
	sort.Slice(files, func(i, j int) bool { return files[i].k < files[j].k })
	known := map[string]bool{}
	for _, v := range vals {
		known[v.Name] = true
	}
	out := map[string]*graph.Tensor{}
	for _, f := range files {
		lim, why := g.remaining()
		if lim > 0 {
			lim = satAdd(lim, fileSlack)
		}
		name, t, err := importer.ReadTensorFileLimit(filepath.Join(dir, f.name), lim, why)
		if err != nil {
			return nil, err
		}
		if name == "" || !known[name] {
			if f.k >= len(vals) {
				return nil, fmt.Errorf("%s: %s has no name the model knows and position %d is past its %d values", dir, f.name, f.k, len(vals))
			}
			name = vals[f.k].Name
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%s: two files give %q", dir, name)
		}
		if err := g.check(name, t.DType, t.Shape); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, f.name), err)
		}
		out[name] = t
	}
	return out, nil
}

// WriteOutputs writes outputs atomically: to an .npz archive, or to a new
// folder holding output_K.pb files (ONNX test_data_set layout, K in graph
// output order). Nothing is left at path when it fails.
//
// An .npy path takes the model's only output; with several it is refused
// (an error naming them), as writing one of them silently would be wrong.
func WriteOutputs(path string, order []string, outs map[string]*graph.Tensor) error {
	if strings.ToLower(filepath.Ext(path)) == ".npy" {
		return writeOneNPY(path, order, outs)
	}
	if strings.ToLower(filepath.Ext(path)) == ".npz" {
		tmpDir, err := os.MkdirTemp(filepath.Dir(path), ".of3c-out-*")
		if err != nil {
			return err
		}
		defer safefile.TrackTemp(tmpDir)() // removed on SIGINT/SIGTERM too
		defer os.RemoveAll(tmpDir)
		tmp := filepath.Join(tmpDir, "out.npz")
		if err := npy.WriteNPZ(tmp, order, outs); err != nil {
			return err
		}
		if f, err := os.Open(tmp); err == nil {
			f.Sync()
			f.Close()
		}
		os.Chmod(tmp, 0o644)
		return safefile.Rename(tmp, path) // tmpDir is tracked; tmp goes with it
	}
	if st, err := os.Stat(path); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s exists and is not a folder (use an .npz name for a file)", path)
		}
		if ents, _ := os.ReadDir(path); len(ents) > 0 {
			return fmt.Errorf("%s exists and is not empty; refusing to mix outputs with its files", path)
		}
	}
	tmpDir, err := os.MkdirTemp(filepath.Dir(filepath.Clean(path)), ".of3c-out-*")
	if err != nil {
		return err
	}
	defer safefile.TrackTemp(tmpDir)() // removed on SIGINT/SIGTERM too
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmpDir)
		}
	}()
	for k, name := range order {
		b, err := importer.EncodeTensor(name, outs[name])
		if err != nil {
			return fmt.Errorf("output %q: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(tmpDir, fmt.Sprintf("output_%d.pb", k)), b, 0o644); err != nil {
			return err
		}
	}
	os.Remove(path) // an empty folder, if any
	if err := safefile.Rename(tmpDir, path); err != nil {
		return err
	}
	os.Chmod(path, 0o755)
	ok = true
	return nil
}

// NPYError: an .npy output was asked for a model with several outputs.
type NPYError struct {
	Path    string
	Outputs []string
}

func (e *NPYError) Error() string {
	return fmt.Sprintf("%s: an .npy file holds one array, but the model has %d outputs (%s); use an .npz name or a folder",
		e.Path, len(e.Outputs), strings.Join(e.Outputs, ", "))
}

func writeOneNPY(path string, order []string, outs map[string]*graph.Tensor) error {
	if len(order) != 1 {
		return &NPYError{Path: path, Outputs: order}
	}
	t := outs[order[0]]
	if t == nil {
		return fmt.Errorf("output %q is missing", order[0])
	}
	return safefile.WriteAtomic(path, func(w io.Writer) error { return npy.Write(w, t) })
}
