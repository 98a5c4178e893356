package hostile

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/importer"
	"github.com/of3c/of3c/importer/npy"
	"github.com/of3c/of3c/importer/onnxpb"
)

// The fixtures are built here, in Go, into the suite's folder: small
// models, crafted .npy/.npz files, FIFOs.

func writeModel(t *testing.T, path string, g *graph.Graph, edit func(m *onnxpb.ModelProto)) {
	t.Helper()
	data, err := importer.Encode(g, importer.EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		var m onnxpb.ModelProto
		if err := proto.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		edit(&m)
		if data, err = proto.Marshal(&m); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func build(t *testing.T, b *graph.Builder) *graph.Graph {
	t.Helper()
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// chainModel is x: f32[4] through n nodes of op.
func chainModel(t *testing.T, path, op string, n int) {
	b := graph.NewBuilder("chain", 17)
	x := b.Input("x", "f32[4]")
	for i := 0; i < n; i++ {
		x = b.Op(op, x)
	}
	b.Output(x)
	writeModel(t, path, build(t, b), nil)
}

// vecModel is y = Relu(x) with x: f32[N] (a token dim, so it buckets) or
// f32[4] (static).
func vecModel(t *testing.T, path, typ string) {
	b := graph.NewBuilder("vec", 17)
	b.Output(b.Op("Relu", b.Input("x", typ)))
	writeModel(t, path, build(t, b), nil)
}

// hugeReshapeModel reshapes x: f32[N] to [2^40, 2^40], a target the
// importer cannot see (a Cast of floats) but constant folding finds, so the
// optimized graph has a shape the importer refuses when the artifact is
// loaded back.
func hugeReshapeModel(t *testing.T, path string) {
	b := graph.NewBuilder("reshape", 17)
	x := b.Input("x", "f32[N]")
	target := b.Op("Cast", b.ConstF32("target", []int64{2}, 1<<40, 1<<40), graph.AInt("to", int64(graph.Int64)))
	y := b.Op("Reshape", x, target)
	b.Output(b.Op("Relu", y))
	writeModel(t, path, build(t, b), nil)
}

// externalModel writes dir/name: y = x + w, x and w f32[n], w's data
// stored externally in dir/loc (which the caller makes).
func externalModel(t *testing.T, dir, name, loc string, n int64) {
	b := graph.NewBuilder("ext", 17)
	x := b.Input("x", fmt.Sprintf("f32[%d]", n))
	w := b.ConstF32("w", []int64{1}, 1)
	b.Output(b.Op("Add", x, w))
	writeModel(t, filepath.Join(dir, name), build(t, b), func(m *onnxpb.ModelProto) {
		for _, tp := range m.Graph.Initializer {
			if tp.GetName() == "w" {
				ext := onnxpb.TensorProto_EXTERNAL
				tp.RawData, tp.FloatData = nil, nil
				tp.DataLocation = &ext
				tp.Dims = []int64{n}
				tp.ExternalData = []*onnxpb.StringStringEntryProto{
					{Key: proto.String("location"), Value: proto.String(loc)},
					{Key: proto.String("length"), Value: proto.String(fmt.Sprint(4 * n))},
				}
			}
		}
	})
}

func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeNPY(t *testing.T, path string, tensor *graph.Tensor) {
	t.Helper()
	var buf bytes.Buffer
	if err := npy.Write(&buf, tensor); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// npyHeader is a version 1.0 .npy header for a little-endian float32
// array of the given shape text, e.g. "(268435456,)".
func npyHeader(shape string) []byte {
	dict := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': %s, }", shape)
	pad := 64 - (10+len(dict)+1)%64
	hdr := append([]byte("\x93NUMPY\x01\x00"), 0, 0)
	binary.LittleEndian.PutUint16(hdr[8:], uint16(len(dict)+pad+1))
	hdr = append(hdr, dict...)
	hdr = append(hdr, bytes.Repeat([]byte(" "), pad)...)
	return append(hdr, '\n')
}

// sparseNPY writes a .npy declaring f32[n] whose data is a hole: the file
// has its full size, but no disk blocks.
func sparseNPY(t *testing.T, path string, n int64) {
	t.Helper()
	hdr := npyHeader(fmt.Sprintf("(%d,)", n))
	if err := os.WriteFile(path, hdr, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, int64(len(hdr))+4*n); err != nil {
		t.Fatal(err)
	}
}

// npzBomb writes an .npz whose one member, x.npy, declares f32[n] and
// holds n zeros, deflated (a few hundred KiB per GiB).
func npzBomb(t *testing.T, path string, n int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) { return flate.NewWriter(w, flate.BestSpeed) })
	w, err := zw.CreateHeader(&zip.FileHeader{Name: "x.npy", Method: zip.Deflate})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(npyHeader(fmt.Sprintf("(%d,)", n))); err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 1<<20)
	for left := 4 * n; left > 0; left -= int64(len(zeros)) {
		if _, err := w.Write(zeros[:min(left, int64(len(zeros)))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}

// bigWeightsModel is y = x + w with w: f32[n] (random), so that writing its
// artifact takes a while.
func bigWeightsModel(t *testing.T, path string, n int64) {
	b := graph.NewBuilder("big", 17)
	x := b.Input("x", fmt.Sprintf("f32[%d]", n))
	w := b.Random("w", fmt.Sprintf("f32[%d]", n), 1)
	b.Output(b.Op("Add", x, w))
	writeModel(t, path, build(t, b), nil)
}

// newF32 is f32[n] holding vals (zeros when none are given).
func newF32(n int64, vals ...float32) *graph.Tensor {
	v := make([]float32, n)
	copy(v, vals)
	return graph.NewTensorF32([]int64{n}, v)
}

// writeFutureModels writes Relu models stamped with opset 99 and IR
// versions 99, 0 and -5.
func writeFutureModels(t *testing.T, dir string) {
	b := graph.NewBuilder("future", 17)
	b.Output(b.Op("Relu", b.Input("x", "f32[4]")))
	g := build(t, b)
	writeModel(t, filepath.Join(dir, "opset99.onnx"), g, func(m *onnxpb.ModelProto) {
		for _, op := range m.OpsetImport {
			if op.GetDomain() == "" || op.GetDomain() == "ai.onnx" {
				op.Version = proto.Int64(99)
			}
		}
	})
	for name, v := range map[string]int64{"ir99.onnx": 99, "ir0.onnx": 0, "irm5.onnx": -5} {
		writeModel(t, filepath.Join(dir, name), g, func(m *onnxpb.ModelProto) { m.IrVersion = proto.Int64(v) })
	}
}
