package importer

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/importer/onnxpb"
)

// externalModel has one initializer w: f32[2] stored at loc.
func externalModel(loc string, offset, length int64) *onnxpb.ModelProto {
	dl := onnxpb.TensorProto_EXTERNAL
	kv := []*onnxpb.StringStringEntryProto{{Key: proto.String("location"), Value: proto.String(loc)}}
	if offset >= 0 {
		kv = append(kv, &onnxpb.StringStringEntryProto{Key: proto.String("offset"), Value: proto.String(strconv.FormatInt(offset, 10))})
	}
	if length >= 0 {
		kv = append(kv, &onnxpb.StringStringEntryProto{Key: proto.String("length"), Value: proto.String(strconv.FormatInt(length, 10))})
	}
	return model(&onnxpb.GraphProto{
		Initializer: []*onnxpb.TensorProto{{Name: proto.String("w"), Dims: []int64{2}, DataType: proto.Int32(1),
			DataLocation: &dl, ExternalData: kv}},
		Output: []*onnxpb.ValueInfoProto{tensorVI("w", graph.Float32, 2)},
	})
}

func writeModel(t *testing.T, path string, m *onnxpb.ModelProto) {
	t.Helper()
	writeFile(t, path, marshal(t, m))
}

func TestExternalDataInFolder(t *testing.T) {
	dir := t.TempDir()
	data := append([]byte("pad!"), floatBytes(1.5, -2)...)
	writeFile(t, filepath.Join(dir, "weights", "w.bin"), data)
	for _, c := range []struct {
		name           string
		loc            string
		offset, length int64
	}{
		{"offset+length", "weights/w.bin", 4, 8},
		{"offset only", "weights/w.bin", 4, -1},
		{"dot path", "./weights/../weights/w.bin", 4, 8}, // ".." is refused even when it stays inside
	} {
		t.Run(c.name, func(t *testing.T) {
			writeModel(t, filepath.Join(dir, "model.onnx"), externalModel(c.loc, c.offset, c.length))
			g, err := LoadFile(filepath.Join(dir, "model.onnx"), Options{})
			if c.name == "dot path" {
				wantErr(t, err, "leaves the model's folder")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := g.Consts[0].Const.Data; string(got) != string(floatBytes(1.5, -2)) {
				t.Errorf("data %x", got)
			}
		})
	}

	// A symlink that stays inside the folder is fine.
	if err := os.Symlink("weights/w.bin", filepath.Join(dir, "link.bin")); err != nil {
		t.Skip("symlinks unavailable:", err)
	}
	writeModel(t, filepath.Join(dir, "model.onnx"), externalModel("link.bin", 4, 8))
	if _, err := LoadFile(filepath.Join(dir, "model.onnx"), Options{}); err != nil {
		t.Errorf("in-folder symlink: %v", err)
	}
}

func TestExternalDataRefused(t *testing.T) {
	top := t.TempDir()
	dir := filepath.Join(top, "model")
	secret := filepath.Join(top, "secret.bin")
	writeFile(t, secret, floatBytes(9, 9))
	writeFile(t, filepath.Join(dir, "w.bin"), floatBytes(1, 2))
	if err := os.Symlink(secret, filepath.Join(dir, "out.bin")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(top, filepath.Join(dir, "updir")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A FIFO with no writer: opening it for reading blocks unless the
	// open is non-blocking, so this case hangs (the test times out)
	// when the regular-file check comes after a blocking open.
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "zero")); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name           string
		loc            string
		offset, length int64
		want           string
	}{
		{"absolute", secret, 0, 8, "absolute"},
		{"dotdot", "../secret.bin", 0, 8, "leaves the model's folder"},
		{"dotdot backslash", `sub\..\..\secret.bin`, 0, 8, "leaves the model's folder"},
		{"symlink out", "out.bin", 0, 8, "outside the model's folder"},
		{"symlinked dir out", "updir/secret.bin", 0, 8, "outside the model's folder"},
		{"missing", "nope.bin", 0, 8, "not found"},
		{"directory", "sub", 0, 8, "not a regular file"},
		{"fifo", "fifo", 0, 8, "not a regular file"},
		{"device", "zero", 0, 8, "outside the model's folder"},
		{"offset past end", "w.bin", 9, -1, "past the end"},
		{"length past end", "w.bin", 4, 8, "past the end"},
		{"huge length", "w.bin", 0, 1 << 50, "past the end"},
		{"wrong length", "w.bin", 0, 4, "needs 8 bytes"},
		{"negative offset", "w.bin", -5, 8, "not a non-negative integer"},
		{"no location", "", 0, 8, "no location"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := externalModel(c.loc, c.offset, c.length)
			if c.name == "negative offset" {
				m.Graph.Initializer[0].ExternalData[1].Value = proto.String("-5")
			}
			path := filepath.Join(dir, "model.onnx")
			writeModel(t, path, m)
			_, err := LoadFile(path, Options{})
			wantErr(t, err, path+": ", `"w"`, c.want)
		})
	}
}

// TestExternalDataAmplification: many tensors pointing at the same bytes share
// one read; overlapping ranges beyond the files' size are refused.
func TestExternalDataAmplification(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "w.bin"), floatBytes(1, 2, 3))
	same := externalModel("w.bin", 0, 8)
	w := same.Graph.Initializer[0]
	for i := 0; i < 100; i++ {
		c := proto.Clone(w).(*onnxpb.TensorProto)
		c.Name = proto.String("w" + strconv.Itoa(i))
		same.Graph.Initializer = append(same.Graph.Initializer, c)
	}
	path := filepath.Join(dir, "model.onnx")
	writeModel(t, path, same)
	g, err := LoadFile(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if &g.Consts[0].Const.Data[0] != &g.Consts[100].Const.Data[0] {
		t.Error("identical external ranges should share one buffer")
	}

	// Overlapping ranges 0-8 and 4-12 would need 16 bytes from a 12-byte
	// file: refused (writers never overlap tensors).
	m := externalModel("w.bin", 0, 8)
	c := proto.Clone(m.Graph.Initializer[0]).(*onnxpb.TensorProto)
	c.Name = proto.String("v")
	c.ExternalData[1].Value = proto.String("4")
	m.Graph.Initializer = append(m.Graph.Initializer, c)
	writeModel(t, path, m)
	_, err = LoadFile(path, Options{})
	wantErr(t, err, `"v"`, "overlap")
}
