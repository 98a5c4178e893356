package npy

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/of3c/of3c/graph"
)

func sample(dt graph.DType, shape ...int64) *graph.Tensor {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	vals := make([]float64, n)
	for i := range vals {
		vals[i] = float64(i%7) - 3
		if dt == graph.Bool {
			vals[i] = float64(i % 2)
		} else if dt == graph.Uint8 || dt == graph.Uint16 || dt == graph.Uint32 || dt == graph.Uint64 {
			vals[i] = float64(i % 200)
		}
	}
	t, err := graph.NewTensorFromFloat64s(dt, shape, vals)
	if err != nil {
		panic(err)
	}
	return t
}

var allDTypes = []graph.DType{graph.Float16, graph.Float32, graph.Float64, graph.Int8, graph.Int16, graph.Int32, graph.Int64,
	graph.Uint8, graph.Uint16, graph.Uint32, graph.Uint64, graph.Bool}

func sameTensor(a, b *graph.Tensor) bool {
	if a.DType != b.DType || len(a.Shape) != len(b.Shape) || !bytes.Equal(a.Data, b.Data) {
		return false
	}
	for i := range a.Shape {
		if a.Shape[i] != b.Shape[i] {
			return false
		}
	}
	return true
}

func TestRoundTrip(t *testing.T) {
	for _, dt := range allDTypes {
		for _, shape := range [][]int64{{}, {5}, {2, 3, 4}, {0, 3}} {
			want := sample(dt, shape...)
			var buf bytes.Buffer
			if err := Write(&buf, want); err != nil {
				t.Fatal(err)
			}
			if hl := int(binary.LittleEndian.Uint16(buf.Bytes()[8:])); (10+hl)%64 != 0 {
				t.Errorf("%s%v: data starts at %d, not 64-aligned", dt, shape, 10+hl)
			}
			got, err := Read(&buf)
			if err != nil {
				t.Fatalf("%s%v: %v", dt, shape, err)
			}
			if !sameTensor(got, want) {
				t.Errorf("%s%v: round trip changed the tensor", dt, shape)
			}
		}
	}
	if err := Write(&bytes.Buffer{}, &graph.Tensor{DType: graph.BFloat16, Shape: []int64{1}, Data: []byte{0, 0}}); err == nil {
		t.Error("bfloat16 has no NumPy dtype; Write should refuse it")
	}
}

func npyBytes(header string, data []byte) []byte {
	b := []byte(magic + "\x01\x00")
	b = binary.LittleEndian.AppendUint16(b, uint16(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

func TestReadVariants(t *testing.T) {
	be := make([]byte, 8)
	binary.BigEndian.PutUint32(be, math.Float32bits(1.5))
	binary.BigEndian.PutUint32(be[4:], math.Float32bits(-2))
	got, err := Read(bytes.NewReader(npyBytes("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }\n", be)))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := got.Float64s(); v[0] != 1.5 || v[1] != -2 {
		t.Errorf("big-endian f4: %v", v)
	}
	// Python 2 style long dims and double quotes.
	got, err = Read(bytes.NewReader(npyBytes(`{"descr": "|u1", "shape": (2L, 1L), "fortran_order": False}`, []byte{7, 8})))
	if err != nil || got.DType != graph.Uint8 || got.Shape[0] != 2 || got.Shape[1] != 1 {
		t.Errorf("variant header: %v %v", got, err)
	}
}

func TestReadErrors(t *testing.T) {
	cases := map[string]struct {
		data []byte
		want string
	}{
		"empty":        {nil, "not a .npy file"},
		"bad magic":    {[]byte("PK\x03\x04 not npy at all"), "bad magic"},
		"version":      {[]byte(magic + "\x09\x00"), "version 9"},
		"short header": {append([]byte(magic+"\x01\x00"), 0xff, 0x00, '{'), "truncated header"},
		"fortran":      {npyBytes("{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }", make([]byte, 4)), "fortran_order"},
		"structured":   {npyBytes("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", make([]byte, 4)), "structured"},
		"object":       {npyBytes("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", make([]byte, 8)), `"O"`},
		"truncated":    {npyBytes("{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }", make([]byte, 9)), "have 9 bytes, want 32"},
		"huge":         {npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1048576, 1048576), }", nil), "more than"},
		"huge ok dims": {npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (65536, 65536), }", make([]byte, 100)), "have 100 bytes, want 17179869184"},
		"overflow":     {npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", nil), "bad dimension"},
		"no shape":     {npyBytes("{'descr': '<f4', 'fortran_order': False}", nil), `no "shape"`},
		"not dict":     {npyBytes("descr", nil), "not a dict"},
		"unknown key":  {npyBytes("{'descr': '<f4', 'order': 'C'}", nil), `unknown key "order"`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(c.data))
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("got %v, want an error mentioning %q", err, c.want)
			}
		})
	}
}

func TestNPZ(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.npz")
	tensors := map[string]*graph.Tensor{"x": sample(graph.Float32, 2, 3), "mask": sample(graph.Bool, 4), "idx": sample(graph.Int64)}
	names := []string{"x", "mask", "idx"}
	if err := WriteNPZ(path, names, tensors); err != nil {
		t.Fatal(err)
	}
	gotNames, got, err := ReadNPZ(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(gotNames, ",") != "x,mask,idx" {
		t.Errorf("names %v", gotNames)
	}
	for _, n := range names {
		if !sameTensor(got[n], tensors[n]) {
			t.Errorf("%s changed", n)
		}
	}
	if err := WriteNPZ(path, []string{"nope"}, tensors); err == nil {
		t.Error("missing tensor accepted")
	}
	if _, _, err := ReadNPZ(filepath.Join(dir, "missing.npz")); err == nil {
		t.Error("missing file accepted")
	}
	bad := filepath.Join(dir, "bad.npz")
	os.WriteFile(bad, []byte("not a zip"), 0o644)
	if _, _, err := ReadNPZ(bad); err == nil || !strings.HasPrefix(err.Error(), bad+": ") {
		t.Errorf("bad npz: %v", err)
	}
}

// TestNumPyInterop writes files with Go and reads them with NumPy and the
// other way round, when the project's Python venv is there.
func TestNumPyInterop(t *testing.T) {
	py, err := filepath.Abs(filepath.Join("..", "..", ".venv", "bin", "python"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(py); err != nil {
		t.Skip("no .venv (make setup); not checking NumPy interop")
	}
	dir := t.TempDir()
	// Go → NumPy: every dtype, checked against values NumPy computes.
	tensors := map[string]*graph.Tensor{}
	var names []string
	for _, dt := range allDTypes {
		name := dt.String()
		tensors[name] = sample(dt, 2, 3)
		names = append(names, name)
		f, err := os.Create(filepath.Join(dir, name+".npy"))
		if err != nil {
			t.Fatal(err)
		}
		if err := Write(f, tensors[name]); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if err := WriteNPZ(filepath.Join(dir, "all.npz"), names, tensors); err != nil {
		t.Fatal(err)
	}
	script := `
import sys, numpy as np
d = sys.argv[1]
names = {"f16": "float16", "f32": "float32", "f64": "float64", "i8": "int8", "i16": "int16", "i32": "int32",
         "i64": "int64", "u8": "uint8", "u16": "uint16", "u32": "uint32", "u64": "uint64", "bool": "bool"}
z = np.load(d + "/all.npz")
assert list(z.keys()) == list(names), list(z.keys())
for k, dt in names.items():
    i = np.arange(6).reshape(2, 3)
    want = (i % 2).astype(dt) if dt == "bool" else ((i % 200) if dt.startswith("u") else (i % 7 - 3)).astype(dt)
    for a in (np.load(d + "/" + k + ".npy"), z[k]):
        assert a.dtype == np.dtype(dt) and a.shape == (2, 3) and (a == want).all(), (k, a)
# NumPy → Go: savez_compressed, a big-endian array, a version 2 file, a fortran array.
np.savez_compressed(d + "/py.npz", a=np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4), b=np.array([True, False]),
                    c=np.array(5, dtype=np.int64))
np.save(d + "/be.npy", np.array([1.5, -2.0], dtype=">f8"))
with open(d + "/v2.npy", "wb") as f:
    np.lib.format.write_array(f, np.arange(5, dtype=np.int16), version=(2, 0))
np.save(d + "/fortran.npy", np.asfortranarray(np.ones((2, 3), np.float32)))
print("ok")
`
	out, err := exec.Command(py, "-c", script, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("numpy: %v\n%s", err, out)
	}
	names, got, err := ReadNPZ(filepath.Join(dir, "py.npz"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(names, ",") != "a,b,c" {
		t.Errorf("names %v", names)
	}
	if a := got["a"]; a.DType != graph.Float32 || len(a.Shape) != 2 || a.Shape[1] != 4 {
		t.Errorf("a: %s%v", a.DType, a.Shape)
	} else if v, _ := a.Float64s(); math.Abs(v[11]-1) > 1e-7 || math.Abs(v[3]-3.0/11) > 1e-7 {
		t.Errorf("a values %v", v)
	}
	if b := got["b"]; b.DType != graph.Bool || !bytes.Equal(b.Data, []byte{1, 0}) {
		t.Errorf("b: %+v", b)
	}
	if c := got["c"]; c.DType != graph.Int64 || len(c.Shape) != 0 {
		t.Errorf("c: %+v", c)
	}
	read := func(name string) (*graph.Tensor, error) {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		return Read(f)
	}
	if be, err := read("be.npy"); err != nil {
		t.Error(err)
	} else if v, _ := be.Float64s(); v[0] != 1.5 || v[1] != -2 {
		t.Errorf("big-endian: %v", v)
	}
	if v2, err := read("v2.npy"); err != nil {
		t.Error(err)
	} else if v, _ := v2.Int64s(); len(v) != 5 || v[4] != 4 {
		t.Errorf("v2: %v", v)
	}
	if _, err := read("fortran.npy"); err == nil || !strings.Contains(err.Error(), "fortran_order") {
		t.Errorf("fortran: %v", err)
	}
}

// FuzzRead: any bytes give a tensor or an error, never a panic, and a tensor
// that comes back is consistent.
func FuzzRead(f *testing.F) {
	var buf bytes.Buffer
	Write(&buf, sample(graph.Float32, 2, 2))
	f.Add(buf.Bytes())
	f.Add(npyBytes("{'descr': '>i2', 'fortran_order': False, 'shape': (3,), }", make([]byte, 6)))
	f.Fuzz(func(t *testing.T, data []byte) {
		tensor, err := Read(bytes.NewReader(data))
		if err == nil {
			if err := tensor.Validate(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// FuzzReadWith: under Limits, a tensor that comes back is no larger than
// the stream and the byte limit, and any other input is an error, never a
// panic (and, the stream size being known, nothing is allocated for data
// the stream does not hold).
func FuzzReadWith(f *testing.F) {
	var buf bytes.Buffer
	Write(&buf, sample(graph.Float32, 2, 2))
	f.Add(buf.Bytes(), int64(1<<20))
	f.Add(npyBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (268435456,), }", make([]byte, 16)), int64(1<<30))
	f.Fuzz(func(t *testing.T, data []byte, maxBytes int64) {
		tensor, err := ReadWith(bytes.NewReader(data), Limits{Size: int64(len(data)), MaxBytes: maxBytes})
		if err != nil {
			return
		}
		if err := tensor.Validate(); err != nil {
			t.Fatal(err)
		}
		if len(tensor.Data) > len(data) || (maxBytes > 0 && int64(len(tensor.Data)) > maxBytes) {
			t.Fatalf("%d data bytes from a %d-byte stream, limit %d", len(tensor.Data), len(data), maxBytes)
		}
	})
}
