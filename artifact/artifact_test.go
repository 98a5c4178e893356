package artifact

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/runtime/ref"
)

func smallModel(t testing.TB) *graph.Graph {
	b := graph.NewBuilder("small", 17)
	b.Opset(graph.FusedDomain, 1)
	x := b.Input("x", "f32[N,16]")
	w := b.Random("w", "f32[16,64]", 1)
	bias := b.Random("bias", "f32[32]", 2)
	y := b.Op("of3c.SwiGLU", x, w)
	z := b.Op("Add", y, bias)
	b.Output(b.Op("LayerNormalization", z, b.Fill("g", "f32[32]", 1), graph.AFloat("epsilon", 1e-5), graph.AInt("axis", -1)))
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func testManifest(g *graph.Graph) *Manifest {
	m := &Manifest{Of3cVersion: "test", MLXVersion: "test", SourceName: "small.onnx", SourceSHA256: strings.Repeat("ab", 32),
		Options: CompileOptions{Device: "cpu", Precision: "fp32"}, Buckets: []int64{8, 16}, TokenDims: []string{"N"},
		Lowerings: []Lowering{{"swiglu", "of3c.SwiGLU", "swiglu/cpu-fused"}, {"ln", "LayerNormalization", "layernorm/cpu-fused"}}}
	for _, v := range g.Inputs {
		m.Inputs = append(m.Inputs, SigOf(v))
	}
	for _, v := range g.Outputs {
		m.Outputs = append(m.Outputs, SigOf(v))
	}
	return m
}

func TestArtifactRoundTrip(t *testing.T) {
	g := smallModel(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "m.of3")
	if err := Write(path, testManifest(g), g); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temp files left behind: %v", entries)
	}
	a, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if a.Manifest.FormatVersion != FormatVersion || a.Manifest.Inputs[0].Shape[0] != "N" || len(a.Manifest.Buckets) != 2 {
		t.Errorf("manifest: %+v", a.Manifest)
	}
	if got := a.Manifest.LoweringSummary(); got != "layernorm/cpu-fused×1 swiglu/cpu-fused×1" {
		t.Errorf("lowerings: %q", got)
	}
	if got, want := len(a.Graph.Nodes), len(g.Nodes); got != want {
		t.Errorf("graph has %d nodes, want %d", got, want)
	}
	for _, c := range g.Consts {
		var found *graph.Value
		for _, d := range a.Graph.Consts {
			if d.Name == c.Name {
				found = d
			}
		}
		if found == nil || !bytes.Equal(found.Const.Data, c.Const.Data) {
			t.Errorf("constant %q did not survive", c.Name)
		}
	}
	// The decoded graph computes what the original does (the reference
	// executor, so this runs without MLX).
	x, err := graph.RandomTensor(graph.Float32, []int64{5, 16}, 3, -1, 1)
	if err != nil {
		t.Fatal(err)
	}
	in := map[string]*graph.Tensor{"x": x}
	o1, err := ref.Run(g, in)
	if err != nil {
		t.Fatal(err)
	}
	o2, err := ref.Run(a.Graph, in)
	if err != nil {
		t.Fatal(err)
	}
	for k := range o1 {
		if !bytes.Equal(o1[k].Data, o2[k].Data) {
			t.Errorf("output %q differs after the round trip", k)
		}
	}
}

func TestArtifactCorruption(t *testing.T) {
	g := smallModel(t)
	data, err := Encode(testManifest(g), g)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(data); err != nil {
		t.Fatal(err)
	}
	infos, _, err := ReadSections(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	// A flipped byte anywhere in a section, or in the header, is refused and
	// the error names what is wrong.
	for _, s := range infos {
		for _, at := range []int64{s.Offset, s.Offset + s.Length/2, s.Offset + s.Length - 1} {
			bad := append([]byte{}, data...)
			bad[at] ^= 0x40
			_, err := Decode(bad)
			if err == nil || !strings.Contains(err.Error(), s.Name) {
				t.Errorf("flip in section %s at %d: err = %v", s.Name, at, err)
			}
		}
	}
	for _, at := range []int{20, 40, 90} {
		bad := append([]byte{}, data...)
		bad[at] ^= 1
		if _, err := Decode(bad); err == nil || !strings.Contains(err.Error(), "header") {
			t.Errorf("flip in header at %d: err = %v", at, err)
		}
	}
	bad := append([]byte{}, data...)
	binary.LittleEndian.PutUint32(bad[8:], FormatVersion+1)
	if _, err := Decode(bad); err == nil || !strings.Contains(err.Error(), "format version") {
		t.Errorf("future version: err = %v", err)
	}
	if _, err := Decode([]byte("hello, this is not an artifact")); err == nil || !strings.Contains(err.Error(), "magic") {
		t.Errorf("not an artifact: err = %v", err)
	}
	for _, n := range []int{0, 7, 15, 16, 100, len(data) / 2, len(data) - 1} {
		_, err := Decode(data[:n])
		if err == nil {
			t.Errorf("truncated to %d bytes: accepted", n)
		} else if n > 16 && !strings.Contains(err.Error(), "truncated") {
			t.Errorf("truncated to %d bytes: %v", n, err)
		}
	}
}

func TestSafetensorsRoundTrip(t *testing.T) {
	ts := map[string]*graph.Tensor{
		"a": graph.NewTensorF32([]int64{2, 3}, []float32{1, 2, 3, 4, 5, 6}),
		"b": graph.NewTensorI64(nil, []int64{7}),
		"c": {DType: graph.Bool, Shape: []int64{3}, Data: []byte{1, 0, 1}},
	}
	data, err := EncodeSafetensors(ts, map[string]string{"k": "v"})
	if err != nil {
		t.Fatal(err)
	}
	hlen := binary.LittleEndian.Uint64(data)
	if (8+hlen)%8 != 0 {
		t.Errorf("data not aligned: header %d", hlen)
	}
	got, meta, err := DecodeSafetensors(data)
	if err != nil {
		t.Fatal(err)
	}
	if meta["k"] != "v" || len(got) != 3 {
		t.Fatalf("got %v %v", got, meta)
	}
	for k, v := range ts {
		if !bytes.Equal(got[k].Data, v.Data) || got[k].DType != v.DType || len(got[k].Shape) != len(v.Shape) {
			t.Errorf("tensor %q differs", k)
		}
	}
	// Offsets beyond the data are refused.
	bad := bytes.Replace(data, []byte(`[0,24]`), []byte(`[0,99]`), 1)
	if _, _, err := DecodeSafetensors(bad); err == nil {
		t.Error("bad offsets accepted")
	}
}

func FuzzDecodeArtifact(f *testing.F) {
	g := smallModel(f)
	data, err := Encode(testManifest(g), g)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add(data[:200])
	f.Add([]byte("OF3C\x00\r\n\x1a\x01\x00\x00\x00\x01\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := Decode(b)
		if err == nil && a.Graph == nil {
			t.Fatal("no error and no graph")
		}
	})
}

func FuzzDecodeSafetensors(f *testing.F) {
	d, _ := EncodeSafetensors(map[string]*graph.Tensor{"a": graph.NewTensorF32([]int64{2}, []float32{1, 2})}, nil)
	f.Add(d)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = DecodeSafetensors(b)
	})
}

// FuzzArtifactSections fuzzes what lies behind valid checksums: the
// manifest JSON, the ONNX graph bytes and the safetensors weights.
func FuzzArtifactSections(f *testing.F) {
	g := smallModel(f)
	data, err := Encode(testManifest(g), g)
	if err != nil {
		f.Fatal(err)
	}
	_, secs, err := ReadSections(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(secs[SectionManifest], secs[SectionGraph], secs[SectionWeights])
	f.Fuzz(func(t *testing.T, m, gb, w []byte) {
		c, err := encodeContainer([]section{{SectionManifest, m}, {SectionGraph, gb}, {SectionWeights, w}})
		if err != nil {
			t.Fatal(err)
		}
		_, _ = Decode(c)
	})
}
