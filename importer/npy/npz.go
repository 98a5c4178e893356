package npy

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"of3c/graph"
)

// maxNPZEntries bounds the number of arrays in one archive.
const maxNPZEntries = 1 << 16

// ReadNPZ reads every array of an .npz archive (as np.savez or
// np.savez_compressed write it). names lists the arrays in archive order,
// without the ".npy" suffix. Errors are prefixed with the path.
func ReadNPZ(path string) (names []string, tensors map[string]*graph.Tensor, err error) {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: not an .npz archive: %v", path, err)
	}
	defer zr.Close()
	if len(zr.File) > maxNPZEntries {
		return nil, nil, fmt.Errorf("%s: %d entries, more than %d", path, len(zr.File), maxNPZEntries)
	}
	tensors = map[string]*graph.Tensor{}
	for _, f := range zr.File {
		name, ok := strings.CutSuffix(f.Name, ".npy")
		if !ok {
			return nil, nil, fmt.Errorf("%s: entry %q is not an .npy array", path, f.Name)
		}
		if _, dup := tensors[name]; dup {
			return nil, nil, fmt.Errorf("%s: array %q appears twice", path, name)
		}
		t, err := readEntry(f)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: array %q: %v", path, name, err)
		}
		names = append(names, name)
		tensors[name] = t
	}
	return names, tensors, nil
}

func readEntry(f *zip.File) (*graph.Tensor, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	// The zip header's size bounds what the entry may decompress to; reading
	// through a LimitReader keeps a lying header from feeding more.
	t, err := Read(io.LimitReader(rc, int64(min(f.UncompressedSize64, 1<<62))))
	if err != nil {
		return nil, err
	}
	return t, nil
}

// WriteNPZ writes the named tensors, in the order of names, as an
// uncompressed .npz archive (what np.savez writes). The file is written to
// a temporary name and renamed, so readers never see a partial archive.
func WriteNPZ(path string, names []string, tensors map[string]*graph.Tensor) (err error) {
	seen := map[string]bool{}
	for _, name := range names {
		if name == "" {
			return errors.New("npz: empty array name")
		}
		if seen[name] {
			return fmt.Errorf("npz: array %q listed twice", name)
		}
		seen[name] = true
		if tensors[name] == nil {
			return fmt.Errorf("npz: no tensor for %q", name)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// CreateTemp makes the file private; an npz is ordinary data.
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	zw := zip.NewWriter(tmp)
	for _, name := range names {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name + ".npy", Method: zip.Store})
		if err != nil {
			return err
		}
		if err := Write(w, tensors[name]); err != nil {
			return fmt.Errorf("npz: array %q: %v", name, err)
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
