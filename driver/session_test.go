package driver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/of3c/of3c/artifact"
	"github.com/of3c/of3c/graph"
)

func TestPadCrop(t *testing.T) {
	x := graph.NewTensorF32([]int64{2, 3}, []float32{1, 2, 3, 4, 5, 6})
	p, err := padAxis(x, 1, 5)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := p.Float64s()
	want := []float64{1, 2, 3, 0, 0, 4, 5, 6, 0, 0}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("padded %v, want %v", got, want)
		}
	}
	c, err := cropAxis(p, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	if string(c.Data) != string(x.Data) {
		t.Error("crop does not undo pad")
	}
	p0, _ := padAxis(x, 0, 4)
	if p0.Shape[0] != 4 || len(p0.Data) != 4*3*4 {
		t.Errorf("pad axis 0: %v", p0.Shape)
	}
	if _, err := padAxis(x, 1, 2); err == nil {
		t.Error("padding down accepted")
	}
	if BucketFor([]int64{16, 32}, 17) != 32 || BucketFor([]int64{16, 32}, 40) != 40 || BucketFor(nil, 5) != 5 {
		t.Error("BucketFor")
	}
}

// A graph over N with a pair input: inputs bind N consistently, and
// bucketing pads both inputs and crops the output.
func pairGraph(t *testing.T) (*graph.Graph, *artifact.Manifest) {
	b := graph.NewBuilder("pair", 17)
	z := b.Input("z", "f32[N,N,4]")
	m := b.Input("mask", "f32[N]")
	mm := b.Op("Unsqueeze", m, b.ConstI64("ax", []int64{2}, 0, 2))
	b.Output(b.Op("Mul", z, mm))
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	man := &artifact.Manifest{Options: artifact.CompileOptions{Device: "ref"}, TokenDims: TokenDims(g)}
	for _, v := range g.Inputs {
		man.Inputs = append(man.Inputs, artifact.SigOf(v))
	}
	for _, v := range g.Outputs {
		man.Outputs = append(man.Outputs, artifact.SigOf(v))
	}
	return g, man
}

func TestCheckInputsAndBuckets(t *testing.T) {
	g, m := pairGraph(t)
	s, err := New(g, m, Options{Device: "ref", Buckets: []int64{8}})
	if err != nil {
		t.Fatal(err)
	}
	z, _ := graph.RandomTensor(graph.Float32, []int64{5, 5, 4}, 1, -1, 1)
	mask := graph.NewTensorF32([]int64{5}, []float32{1, 1, 0, 1, 1})
	out, st, err := s.Run(map[string]*graph.Tensor{"z": z, "mask": mask})
	if err != nil {
		t.Fatal(err)
	}
	if st.Padded["N"] != 8 || st.Dims["N"] != 5 {
		t.Errorf("dims %v padded %v", st.Dims, st.Padded)
	}
	y := out[g.Outputs[0].Name]
	if y.Shape[0] != 5 || y.Shape[1] != 5 {
		t.Errorf("output shape %v, want cropped to 5", y.Shape)
	}
	_, _, err = s.Run(map[string]*graph.Tensor{"z": z, "mask": graph.NewTensorF32([]int64{6}, make([]float32, 6))})
	if err == nil || !strings.Contains(err.Error(), `input "mask"`) {
		t.Errorf("inconsistent N: %v", err)
	}
}

func TestWriteOutputsAtomic(t *testing.T) {
	dir := t.TempDir()
	outs := map[string]*graph.Tensor{"a": graph.NewTensorF32([]int64{2}, []float32{1, 2})}
	if err := WriteOutputs(filepath.Join(dir, "o.npz"), []string{"a"}, outs); err != nil {
		t.Fatal(err)
	}
	od := filepath.Join(dir, "od")
	if err := WriteOutputs(od, []string{"a"}, outs); err != nil {
		t.Fatal(err)
	}
	got, err := ReadExpected(od, []*graph.Value{{Name: "a"}})
	if err != nil || got["a"] == nil {
		t.Fatalf("read back: %v", err)
	}
	// A missing tensor fails without leaving anything behind.
	if err := WriteOutputs(filepath.Join(dir, "bad"), []string{"a", "b"}, outs); err == nil {
		t.Error("missing output accepted")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("left behind: %v", ents)
	}
}
