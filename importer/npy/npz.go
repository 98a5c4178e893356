package npy

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/safefile"
)

// maxNPZEntries bounds the number of arrays in one archive.
const maxNPZEntries = 1 << 16

// ReadNPZ reads every array of an .npz archive (as np.savez or
// np.savez_compressed write it). names lists the arrays in archive order,
// without the ".npy" suffix. Errors are prefixed with the path.
func ReadNPZ(path string) (names []string, tensors map[string]*graph.Tensor, err error) {
	return ReadNPZWith(path, nil)
}

// ReadNPZWith is ReadNPZ with check, when not nil, called with each
// array's name, dtype and shape before its data is read (an error stops
// the read). Each array's declared size is also checked against what its
// entry can hold (the zip's sizes, bounded by deflate's largest ratio and
// the archive's real size), so a small archive that declares huge arrays
// allocates nothing for them.
func ReadNPZWith(path string, check func(name string, dt graph.DType, shape []int64) error) (names []string, tensors map[string]*graph.Tensor, err error) {
	f, size, err := safefile.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	zr, err := zip.NewReader(f, size)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: not an .npz archive: %v", path, err)
	}
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
		var c func(graph.DType, []int64) error
		if check != nil {
			c = func(dt graph.DType, shape []int64) error { return check(name, dt, shape) }
		}
		t, err := readEntry(f, size, c)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: array %q: %v", path, name, err)
		}
		names = append(names, name)
		tensors[name] = t
	}
	return names, tensors, nil
}

// maxDeflateRatio bounds how much deflate can expand data (its longest
// match, 258 bytes, costs at least two bits: about 1032:1).
const maxDeflateRatio = 1032

func readEntry(f *zip.File, archiveSize int64, check func(graph.DType, []int64) error) (*graph.Tensor, error) {
	// What the entry can hold: the zip header's uncompressed size, but no
	// more than its compressed bytes can expand to, which lie inside the
	// archive. A header that lies about either cannot make Read allocate
	// more than that.
	comp := min(f.CompressedSize64, uint64(archiveSize))
	bound := comp
	if f.Method != zip.Store {
		bound = comp*maxDeflateRatio + 1<<10
	}
	size := int64(min(f.UncompressedSize64, bound, 1<<62))
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	// Reading through a LimitReader keeps a lying header from feeding more.
	t, err := ReadWith(io.LimitReader(rc, size), Limits{Size: size, Check: check})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// WriteNPZ writes the named tensors, in the order of names, as an
// uncompressed .npz archive (what np.savez writes). The file is written to
// a temporary name and renamed, so readers never see a partial archive.
func WriteNPZ(path string, names []string, tensors map[string]*graph.Tensor) error {
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
	return safefile.WriteAtomic(path, func(f io.Writer) error {
		zw := zip.NewWriter(f)
		for _, name := range names {
			w, err := zw.CreateHeader(&zip.FileHeader{Name: name + ".npy", Method: zip.Store})
			if err != nil {
				return err
			}
			if err := Write(w, tensors[name]); err != nil {
				return fmt.Errorf("npz: array %q: %v", name, err)
			}
		}
		return zw.Close()
	})
}
