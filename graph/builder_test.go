package graph

import (
	"strings"
	"testing"
)

func TestBuilderBuildsWhatTheTextSays(t *testing.T) {
	b := NewBuilder("g", 17)
	x := b.Input("x", "f32[N,64]")
	w := b.Random("w", "f32[64,64]", 3)
	scale := b.ConstF32("scale", nil, 0.5, 2)
	axes := b.ConstI64("axes", []int64{1}, 1)
	y := b.Op("MatMul", x, w, Typed("f32[N,64]"))
	parts := b.OpN("Split", 2, y, nil, AInt("axis", 1), Out("lo", "hi"), Typed("f32[N,32]", "f32[N,32]"))
	z := b.Op("of3c.Thing", parts[0], parts[1], scale, axes, AFloat("alpha", 1), AInts("perm", 1, 0),
		AString("mode", "fast"), AFloats("fs"), NodeName("thing0"))
	b.Output(z, parts[1])
	g, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	want := `graph g opsets(ai.onnx=17, of3c=1) {
  input %x:f32[N,64]
  %w:f32[64,64] = const random(3)
  %scale:f32[2] = const [0.5, 2]
  %axes:i64[1] = const [1]
  %matmul:f32[N,64] = MatMul(%x, %w)
  %lo:f32[N,32], %hi:f32[N,32] = Split(%matmul, _) {axis=1}
  %thing = of3c.Thing(%lo, %hi, %scale, %axes) {alpha=1.0, fs=floats[], mode="fast", perm=[1, 0]} @thing0
  output %thing, %hi
}
`
	if got := Format(g); got != want {
		t.Errorf("builder graph:\n%s", lineDiff(want, got))
	}
	if parts[0].Producer != g.Nodes[1] || g.Nodes[2].Opset != 1 || g.Nodes[0].Opset != 17 {
		t.Error("producers or opsets not set")
	}
}

func TestBuilderRecordsMistakes(t *testing.T) {
	cases := []struct {
		name  string
		build func(b *Builder)
		want  string
	}{
		{"bad type", func(b *Builder) { b.Input("x", "f32[N") }, "input x"},
		{"duplicate name", func(b *Builder) { b.Input("x", "f32[1]"); b.Input("x", "f32[1]") }, `value name "x" used twice`},
		{"symbolic const", func(b *Builder) { b.Fill("c", "f32[N]", 1) }, "has no static shape"},
		{"bad operand", func(b *Builder) { b.Op("Relu", 3) }, "operand of unexpected kind int"},
		{"names count", func(b *Builder) { b.OpN("Split", 2, Out("a")) }, "1 output names for 2 outputs"},
		{"dup attr", func(b *Builder) { b.Op("X", AInt("a", 1), AInt("a", 2)) }, `attribute "a" given twice`},
		{"nil output", func(b *Builder) { b.Output(nil) }, "nil graph output"},
		{"bad tensor", func(b *Builder) { b.Const("c", &Tensor{DType: Float32, Shape: []int64{2}, Data: []byte{1}}) }, "1 data bytes, want 8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := NewBuilder("g", 17)
			c.build(b)
			// Building goes on after a mistake without panicking.
			b.Op("Y", b.Input("later", "f32[1]"), Typed("f32[1]"))
			if _, err := b.Build(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Build error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestFormatFullConstantsRoundTrip(t *testing.T) {
	b := NewBuilder("g", 17)
	vals := make([]float32, 64)
	for i := range vals {
		vals[i] = float32(i%7)*0.37 - float32(i%3) // no fill or random(seed) form
	}
	w := NewTensorF32([]int64{8, 8}, vals)
	c := b.Const("w", w)
	h, _ := RandomTensor(Float16, []int64{40}, 5000, -3, 3) // seed beyond what the printer tries
	b.Output(c, b.Const("h", h))
	g, _ := b.Build()
	short := Format(g)
	if !strings.Contains(short, "%w:f32[8,8] = const dense<crc32c:") || !strings.Contains(short, "mean=") ||
		!strings.Contains(short, "%h:f16[40] = const dense<crc32c:") {
		t.Errorf("large constants not summarized:\n%s", short)
	}
	full := FormatWith(g, FormatOptions{InlineMax: -1})
	g2, err := Parse(full)
	if err != nil {
		t.Fatal(err)
	}
	if string(g2.Consts[0].Const.Data) != string(w.Data) || string(g2.Consts[1].Const.Data) != string(h.Data) {
		t.Error("full-precision text does not reproduce the constant bytes")
	}
	if again := FormatWith(g2, FormatOptions{InlineMax: -1}); again != full {
		t.Errorf("second printing differs:\n%s", lineDiff(full, again))
	}
}

// Weights made by random(seed[, lo, hi]) print back as that call, so test
// graphs with large weights round-trip through the default text form.
func TestRandomConstantsPrintAsGenerator(t *testing.T) {
	cases := []struct{ typ, body string }{
		{"f32[64,64]", "random(0)"},
		{"f32[64,64]", "random(1023)"},
		{"f32[17]", "random(12, -0.1, 0.1)"},
		{"f32[100]", "random(7, 0, 0.02)"},
		{"f64[30]", "random(3, -1234.5, 1e+06)"},
		{"f16[50]", "random(9, -3, 3)"},
		{"bf16[50]", "random(1, 0.5, 2)"},
		{"i64[40]", "random(2)"},
		{"bool[40]", "random(8)"},
		{"u8[40]", "random(8, 0, 200)"}, // integer custom ranges are not recognized
	}
	for _, c := range cases {
		src := "graph g {\n  %c:" + c.typ + " = const " + c.body + "\n}\n"
		g, err := Parse(src)
		if err != nil {
			t.Fatalf("%s: %v", c.body, err)
		}
		got := Format(g)
		if c.typ == "u8[40]" {
			if !strings.Contains(got, "dense<") {
				t.Errorf("%s printed as\n%s", c.body, got)
			}
			continue
		}
		if got != src {
			t.Errorf("%s %s printed as\n%s", c.typ, c.body, got)
		}
	}
}

// bigGraph builds a chain shaped like 48 transformer-ish blocks of ~400
// nodes (about 20k nodes) with large weights.
func bigGraph(tb testing.TB) *Graph {
	b := NewBuilder("big", 17)
	x := b.Input("x", "f32[N,N,128]")
	w := b.Const("w", &Tensor{DType: Float32, Shape: []int64{128, 128}, Data: make([]byte, 4*128*128)})
	for blk := 0; blk < 48; blk++ {
		for i := 0; i < 100; i++ {
			y := b.Op("MatMul", x, w, Typed("f32[N,N,128]"))
			y = b.Op("Add", y, x, Typed("f32[N,N,128]"))
			y = b.Op("LayerNormalization", y, w, nil, AInt("axis", -1), AFloat("epsilon", 1e-5), Typed("f32[N,N,128]"))
			x = b.Op("Relu", y, Typed("f32[N,N,128]"))
		}
	}
	b.Output(x)
	g, err := b.Build()
	if err != nil {
		tb.Fatal(err)
	}
	return g
}

func TestFormatLargeGraphRoundTrip(t *testing.T) {
	g := bigGraph(t)
	text := Format(g)
	g2, err := Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	if len(g2.Nodes) != 19200 || Format(g2) != text {
		t.Errorf("large graph: %d nodes after parsing, texts equal: %v", len(g2.Nodes), Format(g2) == text)
	}
}

func BenchmarkFormat20kNodes(b *testing.B) {
	g := bigGraph(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = Format(g)
	}
}

func BenchmarkParse20kNodes(b *testing.B) {
	text := Format(bigGraph(b))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Parse(text); err != nil {
			b.Fatal(err)
		}
	}
}
