package importer

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/of3c/of3c/importer/onnxpb"
	"github.com/of3c/of3c/internal/safefile"
)

// externalData reads tensor data stored beside the model (ONNX "external
// data": location, offset, length keys on the TensorProto).
//
// A model file is untrusted input, and its locations are paths chosen by
// whoever wrote it. Only files inside the model's folder may be read:
// absolute locations and ".." are refused with a message that says so, and
// the files are opened through an os.Root, which also refuses symlinks
// (at any path component) that resolve outside the folder.
type externalData struct {
	dir   string
	root  *os.Root
	files map[string]*os.File

	// Reads are shared by (location, offset, length), and their total is
	// capped at the total size of the files: a small hostile model that
	// points a thousand tensors at one large file must not make the importer
	// allocate a thousand copies of it.
	chunks    map[chunkKey][]byte
	allocated int64 // bytes allocated for external data so far
	fileBytes int64 // total size of the files opened

	maxBytes int64             // Options.MaxExternalBytes
	onOpen   func(path string) // Options.OnExternalFile
}

type chunkKey struct {
	loc            string
	offset, length int64
}

func newExternalData(dir string) *externalData {
	return &externalData{dir: dir, files: map[string]*os.File{}, chunks: map[chunkKey][]byte{}}
}

func (e *externalData) close() {
	for _, f := range e.files {
		f.Close()
	}
	if e.root != nil {
		e.root.Close()
	}
}

// checkLocation refuses locations that name anything outside the model
// folder, before touching the file system.
func checkLocation(loc string) error {
	switch {
	case loc == "":
		return errors.New("external data has no location")
	case strings.ContainsRune(loc, 0):
		return fmt.Errorf("external data location %q contains a NUL byte", loc)
	case filepath.IsAbs(loc) || strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, `\`) ||
		(len(loc) >= 2 && loc[1] == ':'):
		return fmt.Errorf("external data location %q is absolute; only paths inside the model's folder are allowed", loc)
	}
	// Backslashes are path separators for models written on Windows.
	for _, part := range strings.FieldsFunc(loc, func(r rune) bool { return r == '/' || r == '\\' }) {
		if part == ".." {
			return fmt.Errorf("external data location %q leaves the model's folder", loc)
		}
	}
	return nil
}

func (e *externalData) open(loc string) (*os.File, error) {
	if f, ok := e.files[loc]; ok {
		return f, nil
	}
	if e.dir == "" {
		return nil, fmt.Errorf("external data %q: no model folder to read it from", loc)
	}
	if e.root == nil {
		root, err := os.OpenRoot(e.dir)
		if err != nil {
			return nil, fmt.Errorf("external data: %v", err)
		}
		e.root = root
	}
	// Opened without blocking and only if a regular file: a FIFO named
	// as external data would otherwise block the import forever, and a
	// device (/dev/zero through a symlink inside the folder) has no size.
	f, size, err := safefile.OpenIn(e.root, filepath.FromSlash(strings.ReplaceAll(loc, `\`, "/")))
	if err != nil {
		if errors.Is(err, safefile.ErrNotRegular) {
			return nil, fmt.Errorf("external data %q is not a regular file", loc)
		}
		var pe *fs.PathError
		if errors.As(err, &pe) && !errors.Is(err, fs.ErrNotExist) && strings.Contains(pe.Err.Error(), "escapes") {
			return nil, fmt.Errorf("external data location %q resolves outside the model's folder", loc)
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("external data file %q not found in %s", loc, e.dir)
		}
		return nil, fmt.Errorf("external data %q: %v", loc, err)
	}
	e.files[loc] = f
	e.fileBytes += size
	if e.onOpen != nil {
		e.onOpen(filepath.Join(e.dir, filepath.FromSlash(strings.ReplaceAll(loc, `\`, "/"))))
	}
	return f, nil
}

// read returns the nbytes of tp's data. Offset and length are checked against
// the file's size before the buffer is allocated.
func (e *externalData) read(tp *onnxpb.TensorProto, nbytes int64) ([]byte, error) {
	var loc string
	offset, length := int64(0), int64(-1)
	for _, kv := range tp.GetExternalData() {
		var err error
		switch kv.GetKey() {
		case "location":
			loc = kv.GetValue()
		case "offset":
			offset, err = strconv.ParseInt(kv.GetValue(), 10, 64)
		case "length":
			length, err = strconv.ParseInt(kv.GetValue(), 10, 64)
		}
		if err != nil || offset < 0 || (kv.GetKey() == "length" && length < 0) {
			return nil, fmt.Errorf("external data %s %q is not a non-negative integer", kv.GetKey(), kv.GetValue())
		}
	}
	if err := checkLocation(loc); err != nil {
		return nil, err
	}
	f, err := e.open(loc)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("external data %q: %v", loc, err)
	}
	size := st.Size()
	if offset > size {
		return nil, fmt.Errorf("external data %q: offset %d is past the end of the file (%d bytes)", loc, offset, size)
	}
	if length < 0 {
		length = size - offset
	}
	if length > size-offset {
		return nil, fmt.Errorf("external data %q: offset %d + length %d is past the end of the file (%d bytes)", loc, offset, length, size)
	}
	if length != nbytes {
		return nil, fmt.Errorf("external data %q: length %d, but the tensor needs %d bytes", loc, length, nbytes)
	}
	key := chunkKey{loc, offset, length}
	if buf, ok := e.chunks[key]; ok {
		return buf, nil
	}
	if e.allocated+nbytes > e.fileBytes {
		return nil, fmt.Errorf("external data %q: tensors overlap; they would need more bytes than the data files hold", loc)
	}
	if e.maxBytes > 0 && e.allocated+nbytes > e.maxBytes {
		return nil, fmt.Errorf("external data %q: %d bytes (%d with the tensors read before), more than the %d bytes available", loc, nbytes, e.allocated+nbytes, e.maxBytes)
	}
	buf := make([]byte, nbytes)
	if _, err := f.ReadAt(buf, offset); err != nil && !(err == io.EOF && nbytes == 0) {
		return nil, fmt.Errorf("external data %q: %v", loc, err)
	}
	e.allocated += nbytes
	e.chunks[key] = buf
	return buf, nil
}
