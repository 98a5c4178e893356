package driver

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"of3c/artifact"
	"of3c/graph"
	"of3c/importer"
	"of3c/importer/npy"
)

// ReadTensor reads one tensor from an .npy, .safetensors (which must hold
// exactly one tensor, or one named like the input) or TensorProto .pb file.
func ReadTensor(path, inputName string) (*graph.Tensor, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".npy":
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		t, err := npy.Read(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return t, nil
	case ".safetensors":
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		ts, _, err := artifact.DecodeSafetensors(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if t, ok := ts[inputName]; ok {
			return t, nil
		}
		if len(ts) == 1 {
			for _, t := range ts {
				return t, nil
			}
		}
		return nil, fmt.Errorf("%s: holds %d tensors and none is named %q", path, len(ts), inputName)
	case ".pb":
		_, t, err := importer.ReadTensorFile(path)
		return t, err
	}
	return nil, fmt.Errorf("%s: unknown tensor file type (want .npy, .safetensors or .pb)", path)
}

var inputPB = regexp.MustCompile(`^input_(\d+)\.pb$`)
var outputPB = regexp.MustCompile(`^output_(\d+)\.pb$`)

// ReadBundle reads every tensor of an .npz archive or an ONNX
// test_data_set folder. In a folder, input_K.pb files are matched to the
// graph's inputs by their TensorProto name, or by position K when unnamed.
func ReadBundle(path string, inputs []*graph.Value) (map[string]*graph.Tensor, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		if strings.ToLower(filepath.Ext(path)) != ".npz" {
			return nil, fmt.Errorf("%s: --inputs takes an .npz file or a test_data_set folder", path)
		}
		_, ts, err := npy.ReadNPZ(path)
		return ts, err
	}
	return readPBDir(path, inputPB, inputs)
}

// ReadExpected reads expected outputs: output_K.pb files of a
// test_data_set folder, matched to the graph's outputs by name or position,
// or an .npz archive whose entries are named like the outputs (as `run -o
// FILE.npz` writes them) or arr_K by position (numpy.savez's default).
func ReadExpected(path string, outputs []*graph.Value) (map[string]*graph.Tensor, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return readPBDir(path, outputPB, outputs)
	}
	if strings.ToLower(filepath.Ext(path)) != ".npz" {
		return nil, fmt.Errorf("%s: --check takes an .npz file or a test_data_set folder", path)
	}
	_, ts, err := npy.ReadNPZ(path)
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

func readPBDir(dir string, re *regexp.Regexp, vals []*graph.Value) (map[string]*graph.Tensor, error) {
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
		name, t, err := importer.ReadTensorFile(filepath.Join(dir, f.name))
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
		return os.Rename(tmp, path)
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
	if err := os.Rename(tmpDir, path); err != nil {
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
	f, err := os.CreateTemp(filepath.Dir(path), ".of3c-out-*.npy")
	if err != nil {
		return err
	}
	tmp := f.Name()
	werr := npy.Write(f, t)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(tmp, 0o644)
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		os.Remove(tmp)
	}
	return werr
}
