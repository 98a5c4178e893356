// Package npy reads and writes NumPy's .npy and .npz files as graph.Tensors,
// for model inputs, reference outputs and test data.
//
// Supported element types: float16/32/64, int8/16/32/64, uint8/16/32/64 and
// bool, in either byte order on read (always little-endian on write); arrays
// must be C-ordered (fortran_order True is refused rather than transposed, so
// a tensor's bytes are always the file's bytes). Every size in a file is
// checked before memory is allocated: a header that declares a huge array
// costs nothing unless the data is actually there.
package npy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/of3c/of3c/graph"
)

const (
	magic = "\x93NUMPY"
	// maxHeaderLen bounds the header dict: real headers are under 200
	// bytes, version 2 allows 4 GiB.
	maxHeaderLen = 1 << 20
	// MaxElements bounds an array's element count (64 GiB of float32).
	MaxElements = int64(1) << 34
	// headerAlign is the alignment NumPy gives the data that follows the
	// header (64 since NumPy 1.24, which lets readers map it directly).
	headerAlign = 64
	// readChunk bounds how much is allocated ahead of data actually read.
	readChunk = 64 << 20
)

// descrs maps the type part of a descr ("f4") to a dtype.
var descrs = map[string]graph.DType{
	"f2": graph.Float16, "f4": graph.Float32, "f8": graph.Float64,
	"i1": graph.Int8, "i2": graph.Int16, "i4": graph.Int32, "i8": graph.Int64,
	"u1": graph.Uint8, "u2": graph.Uint16, "u4": graph.Uint32, "u8": graph.Uint64,
	"b1": graph.Bool,
}

// Read reads one .npy array.
func Read(r io.Reader) (*graph.Tensor, error) {
	return ReadWith(r, Limits{Size: -1})
}

// Limits bound what ReadWith may allocate. Every check runs on the header,
// before the data is read or its buffer allocated.
type Limits struct {
	// Size is the number of bytes the stream holds (the file's size or a
	// zip entry's uncompressed size; < 0: unknown). A header that declares
	// more data than that is refused as truncated, without reading.
	Size int64
	// MaxBytes bounds the array's data in bytes (0: only MaxElements);
	// Why names the bound in the error (e.g. "the available memory").
	MaxBytes int64
	Why      string
	// Check, when set, is called with the dtype and shape of the header,
	// e.g. to compare them with what a model expects.
	Check func(dt graph.DType, shape []int64) error
}

// TooLargeError is an array whose data exceeds Limits.MaxBytes.
type TooLargeError struct {
	DType graph.DType
	Shape []int64
	Bytes int64
	Limit int64
	Why   string
}

func (e *TooLargeError) Error() string {
	why := ""
	if e.Why != "" {
		why = ", " + e.Why
	}
	return fmt.Sprintf("npy: %s%v needs %d bytes, more than the limit of %d bytes%s", e.DType, e.Shape, e.Bytes, e.Limit, why)
}

// ReadWith reads one .npy array under lim.
func ReadWith(r io.Reader, lim Limits) (*graph.Tensor, error) {
	br := bufio.NewReader(r)
	pre := make([]byte, len(magic)+2)
	if _, err := io.ReadFull(br, pre); err != nil {
		return nil, fmt.Errorf("npy: not a .npy file: %v", noEOF(err))
	}
	if string(pre[:len(magic)]) != magic {
		return nil, errors.New("npy: not a .npy file (bad magic)")
	}
	major := pre[len(magic)]
	var hlen int64
	switch major {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return nil, fmt.Errorf("npy: truncated header: %v", noEOF(err))
		}
		hlen = int64(binary.LittleEndian.Uint16(b[:]))
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return nil, fmt.Errorf("npy: truncated header: %v", noEOF(err))
		}
		hlen = int64(binary.LittleEndian.Uint32(b[:]))
	default:
		return nil, fmt.Errorf("npy: format version %d.%d is not supported", major, pre[len(magic)+1])
	}
	if hlen > maxHeaderLen {
		return nil, fmt.Errorf("npy: header of %d bytes is too large", hlen)
	}
	hdr := make([]byte, hlen)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return nil, fmt.Errorf("npy: truncated header: %v", noEOF(err))
	}
	h, err := parseHeader(string(hdr))
	if err != nil {
		return nil, fmt.Errorf("npy: %v", err)
	}
	dt, order, err := parseDescr(h.descr)
	if err != nil {
		return nil, fmt.Errorf("npy: %v", err)
	}
	if h.fortran {
		return nil, errors.New("npy: fortran_order arrays are not supported (save with np.ascontiguousarray)")
	}
	n := int64(1)
	for _, d := range h.shape {
		if d < 0 {
			return nil, fmt.Errorf("npy: negative dimension in shape %v", h.shape)
		}
		if d > 0 && n > MaxElements/d {
			return nil, fmt.Errorf("npy: shape %v has more than %d elements", h.shape, MaxElements)
		}
		n *= d
	}
	size := int64(dt.Size())
	nbytes := n * size // n ≤ MaxElements = 2^34, size ≤ 8: no overflow
	if lim.MaxBytes > 0 && nbytes > lim.MaxBytes {
		return nil, &TooLargeError{DType: dt, Shape: h.shape, Bytes: nbytes, Limit: lim.MaxBytes, Why: lim.Why}
	}
	if lim.Check != nil {
		if err := lim.Check(dt, h.shape); err != nil {
			return nil, err
		}
	}
	var data []byte
	if hdrEnd := int64(len(pre)) + hlenBytes(major) + hlen; lim.Size >= 0 {
		// The stream's size is known: refuse a short one before
		// allocating, then read the data into one buffer of its size.
		if have := lim.Size - hdrEnd; have < nbytes {
			return nil, fmt.Errorf("npy: %s%v: truncated data: have %d bytes, want %d", dt, h.shape, max(have, 0), nbytes)
		}
		data = make([]byte, nbytes)
		if k, err := io.ReadFull(br, data); err != nil {
			return nil, fmt.Errorf("npy: %s%v: truncated data: have %d bytes, want %d", dt, h.shape, k, nbytes)
		}
	} else {
		data, err = readN(br, nbytes)
	}
	if err != nil {
		return nil, fmt.Errorf("npy: %s%v: %v", dt, h.shape, err)
	}
	if order == binary.ByteOrder(binary.BigEndian) && size > 1 {
		swapBytes(data, int(size))
	}
	return &graph.Tensor{DType: dt, Shape: h.shape, Data: data}, nil
}

// hlenBytes is the size of the header-length field of format version major.
func hlenBytes(major byte) int64 {
	if major == 1 {
		return 2
	}
	return 4
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readN reads exactly n bytes, growing the buffer as data arrives so that a
// truncated stream that declares a huge array fails after reading what is
// there, not after allocating what was declared.
func readN(r io.Reader, n int64) ([]byte, error) {
	first := n
	if first > readChunk {
		first = readChunk
	}
	buf := make([]byte, 0, first)
	for int64(len(buf)) < n {
		want := n - int64(len(buf))
		if want > readChunk {
			want = readChunk
		}
		if int64(cap(buf)-len(buf)) < want {
			grown := make([]byte, len(buf), min(n, 2*int64(cap(buf))+want))
			copy(grown, buf)
			buf = grown
		}
		k, err := io.ReadFull(r, buf[len(buf):len(buf)+int(want)])
		buf = buf[:len(buf)+k]
		if err != nil {
			return nil, fmt.Errorf("truncated data: have %d bytes, want %d", len(buf), n)
		}
	}
	return buf, nil
}

func swapBytes(b []byte, size int) {
	for i := 0; i+size <= len(b); i += size {
		for j, k := i, i+size-1; j < k; j, k = j+1, k-1 {
			b[j], b[k] = b[k], b[j]
		}
	}
}

func parseDescr(s string) (graph.DType, binary.ByteOrder, error) {
	if len(s) < 2 {
		return 0, nil, fmt.Errorf("dtype %q is not supported", s)
	}
	var order binary.ByteOrder = binary.LittleEndian
	switch s[0] {
	case '<', '|', '=':
		// '=' is native order; of3c only runs on little-endian machines.
		s = s[1:]
	case '>':
		order = binary.BigEndian
		s = s[1:]
	}
	if s == "?" {
		s = "b1"
	}
	dt, ok := descrs[s]
	if !ok {
		return 0, nil, fmt.Errorf("dtype %q is not supported", s)
	}
	return dt, order, nil
}

type header struct {
	descr   string
	fortran bool
	shape   []int64
}

// parseHeader reads the Python dict literal NumPy writes, e.g.
// {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }. It accepts
// exactly that grammar: string keys; string, boolean or int-tuple values.
func parseHeader(s string) (header, error) {
	var h header
	p := &dictParser{s: strings.TrimSpace(s)}
	if !p.eat('{') {
		return h, fmt.Errorf("header %q is not a dict", clip(s))
	}
	seen := map[string]bool{}
	for {
		if p.eat('}') {
			break
		}
		key, err := p.str()
		if err != nil {
			return h, fmt.Errorf("header %q: %v", clip(s), err)
		}
		if !p.eat(':') {
			return h, fmt.Errorf("header %q: want ':' after %q", clip(s), key)
		}
		switch key {
		case "descr":
			if h.descr, err = p.str(); err != nil {
				return h, fmt.Errorf("header %q: descr: %v (structured dtypes are not supported)", clip(s), err)
			}
		case "fortran_order":
			if h.fortran, err = p.boolean(); err != nil {
				return h, fmt.Errorf("header %q: fortran_order: %v", clip(s), err)
			}
		case "shape":
			if h.shape, err = p.tuple(); err != nil {
				return h, fmt.Errorf("header %q: shape: %v", clip(s), err)
			}
		default:
			return h, fmt.Errorf("header %q: unknown key %q", clip(s), key)
		}
		seen[key] = true
		if !p.eat(',') {
			if !p.eat('}') {
				return h, fmt.Errorf("header %q: want ',' or '}'", clip(s))
			}
			break
		}
	}
	for _, k := range []string{"descr", "fortran_order", "shape"} {
		if !seen[k] {
			return h, fmt.Errorf("header %q: no %q", clip(s), k)
		}
	}
	if h.shape == nil {
		h.shape = []int64{}
	}
	return h, nil
}

func clip(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

type dictParser struct {
	s string
	i int
}

func (p *dictParser) skip() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n') {
		p.i++
	}
}

func (p *dictParser) eat(c byte) bool {
	p.skip()
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *dictParser) str() (string, error) {
	p.skip()
	if p.i >= len(p.s) || (p.s[p.i] != '\'' && p.s[p.i] != '"') {
		return "", errors.New("want a string")
	}
	q := p.s[p.i]
	end := strings.IndexByte(p.s[p.i+1:], q)
	if end < 0 {
		return "", errors.New("unterminated string")
	}
	v := p.s[p.i+1 : p.i+1+end]
	p.i += end + 2
	return v, nil
}

func (p *dictParser) boolean() (bool, error) {
	p.skip()
	switch {
	case strings.HasPrefix(p.s[p.i:], "True"):
		p.i += 4
		return true, nil
	case strings.HasPrefix(p.s[p.i:], "False"):
		p.i += 5
		return false, nil
	}
	return false, errors.New("want True or False")
}

func (p *dictParser) tuple() ([]int64, error) {
	if !p.eat('(') {
		return nil, errors.New("want a tuple")
	}
	dims := []int64{}
	for {
		if p.eat(')') {
			return dims, nil
		}
		p.skip()
		j := p.i
		for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
			j++
		}
		// NumPy writes Python ints; "3L" comes from Python 2 era files.
		v, err := strconv.ParseInt(p.s[p.i:j], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad dimension %q", clip(p.s[p.i:]))
		}
		p.i = j
		if p.i < len(p.s) && p.s[p.i] == 'L' {
			p.i++
		}
		dims = append(dims, v)
		if len(dims) > 64 {
			return nil, errors.New("more than 64 dimensions")
		}
		if !p.eat(',') {
			if !p.eat(')') {
				return nil, errors.New("want ',' or ')'")
			}
			return dims, nil
		}
	}
}

// descrOf is the little-endian descr of dt.
func descrOf(dt graph.DType) (string, error) {
	for k, v := range descrs {
		if v == dt {
			if dt.Size() == 1 {
				return "|" + k, nil
			}
			return "<" + k, nil
		}
	}
	return "", fmt.Errorf("npy: dtype %s cannot be written (NumPy has no such type)", dt)
}

// Write writes t as a version 1.0 .npy (2.0 when the header needs it).
func Write(w io.Writer, t *graph.Tensor) error {
	if t == nil {
		return errors.New("npy: nil tensor")
	}
	descr, err := descrOf(t.DType)
	if err != nil {
		return err
	}
	if err := t.Validate(); err != nil {
		return fmt.Errorf("npy: %v", err)
	}
	var shape strings.Builder
	shape.WriteByte('(')
	for i, d := range t.Shape {
		if i > 0 {
			shape.WriteString(", ")
		}
		shape.WriteString(strconv.FormatInt(d, 10))
	}
	if len(t.Shape) == 1 {
		shape.WriteByte(',') // a Python 1-tuple
	}
	shape.WriteByte(')')
	dict := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape.String())

	var buf bytes.Buffer
	buf.WriteString(magic)
	lenBytes := 2
	if len(dict)+1+len(magic)+4 > 65535 {
		lenBytes = 4
	}
	if lenBytes == 2 {
		buf.Write([]byte{1, 0})
	} else {
		buf.Write([]byte{2, 0})
	}
	total := len(magic) + 2 + lenBytes + len(dict) + 1
	pad := (headerAlign - total%headerAlign) % headerAlign
	hlen := len(dict) + pad + 1
	if lenBytes == 2 {
		buf.Write(binary.LittleEndian.AppendUint16(nil, uint16(hlen)))
	} else {
		buf.Write(binary.LittleEndian.AppendUint32(nil, uint32(hlen)))
	}
	buf.WriteString(dict)
	buf.WriteString(strings.Repeat(" ", pad))
	buf.WriteByte('\n')
	if _, err := w.Write(buf.Bytes()); err != nil {
		return err
	}
	_, err = w.Write(t.Data)
	return err
}
