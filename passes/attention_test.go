package passes

import (
	"fmt"
	"math"
	"testing"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/runtime/ref"
)

// Attention written the ways real exports and hand-written models write it.
// Each graph is triangle attention (starting node) on a pair tensor
// x: [N, N, cz] with H heads of width c: the mask bias [N,1,1,N] and the
// triangle bias [1,H,N,N] broadcast differently, which is what makes the
// case interesting.
const (
	tH, tC, tCz = 2, 4, 8
)

var attentionStyles = []string{
	"of3",        // q/sqrt(c) as Div, kᵀ as Transpose, biases added one by one
	"einsum",     // Einsum for both products, scale as Mul on the scores
	"sdpa",       // √scale on q and on kᵀ, Where(mask, 0, −inf) bias
	"presum",     // biases summed first, then added to the scores
	"boolcast",   // bool mask through Cast, (m − 1)·1e9
	"scale-on-k", // scale applied to k before the transpose
	"bias-first", // bias + (bias + scores): any order and association
	"mask-mul-sub",
	"sdpa-shape", // torch's SDPA export: the scale computed from Shape(q) at run time, √ on both sides
	"einsum-ellipsis",
}

func buildTriAttention(t *testing.T, style string) *graph.Graph {
	t.Helper()
	return buildTriAttentionT(t, style, graph.Float32)
}

// buildTriAttentionT builds the graph in float type dt.
func buildTriAttentionT(t *testing.T, style string, dt graph.DType) *graph.Graph {
	t.Helper()
	ds := dt.String()
	fill := func(b *graph.Builder, name string, shape string, v float64) *graph.Value {
		return b.Fill(name, ds+shape, v)
	}
	b := graph.NewBuilder("tri_att_"+style, 17)
	nc := 0
	cn := func() string { nc++; return fmt.Sprintf("c%d", nc) }
	x := b.Input("x", fmt.Sprintf(ds+"[N,N,%d]", tCz))
	var maskIn *graph.Value
	if style == "sdpa" || style == "boolcast" {
		maskIn = b.Input("pair_mask", "bool[N,N]")
	} else {
		maskIn = b.Input("pair_mask", ds+"[N,N]")
	}
	w := func(name string, cols int, seed uint64) *graph.Value {
		return b.Random(name, fmt.Sprintf(ds+"[%d,%d]", tCz, cols), seed)
	}
	heads := func(p *graph.Value) *graph.Value { // [N,N,H*c] → [N,H,N,c]
		r := b.Op("Reshape", p, b.ConstI64(cn(), []int64{4}, 0, 0, tH, tC))
		return b.Op("Transpose", r, graph.AInts("perm", 0, 2, 1, 3))
	}
	q := heads(b.Op("MatMul", x, w("wq", tH*tC, 1)))
	k := heads(b.Op("MatMul", x, w("wk", tH*tC, 2)))
	v := heads(b.Op("MatMul", x, w("wv", tH*tC, 3)))
	scale := 1 / math.Sqrt(tC)

	// Mask bias [N,1,1,N].
	var mb *graph.Value
	switch style {
	case "sdpa":
		where := b.Op("Where", maskIn, fill(b, cn(), "[]", float64(0)), fill(b, cn(), "[]", float64(float32(math.Inf(-1)))))
		mb = b.Op("Unsqueeze", where, b.ConstI64(cn(), []int64{2}, 1, 2))
	case "boolcast":
		m := b.Op("Cast", maskIn, graph.AInt("to", int64(dt)))
		mb = b.Op("Unsqueeze", b.Op("Mul", b.Op("Sub", m, fill(b, cn(), "[]", float64(1))), fill(b, cn(), "[]", float64(1e9))), b.ConstI64(cn(), []int64{2}, 1, 2))
	case "mask-mul-sub":
		mb = b.Op("Unsqueeze", b.Op("Sub", b.Op("Mul", maskIn, fill(b, cn(), "[]", float64(1e9))), fill(b, cn(), "[]", float64(1e9))), b.ConstI64(cn(), []int64{2}, 1, 2))
	default:
		mb = b.Op("Unsqueeze", b.Op("Mul", fill(b, cn(), "[]", float64(1e9)), b.Op("Sub", maskIn, fill(b, cn(), "[]", float64(1)))), b.ConstI64(cn(), []int64{2}, 1, 2))
	}
	// Triangle bias [1,H,N,N].
	tri := b.Op("Unsqueeze", b.Op("Transpose", b.Op("MatMul", x, w("wz", tH, 4)), graph.AInts("perm", 2, 0, 1)), b.ConstI64(cn(), []int64{1}, 0))

	var scores *graph.Value
	kT := func(k *graph.Value) *graph.Value { return b.Op("Transpose", k, graph.AInts("perm", 0, 1, 3, 2)) }
	switch style {
	case "einsum":
		scores = b.Op("Mul", b.Op("Einsum", q, k, graph.AString("equation", "bhqc,bhkc->bhqk")), fill(b, cn(), "[]", float64(float32(scale))))
	case "sdpa":
		s := fill(b, cn(), "[1]", float64(float32(math.Sqrt(scale))))
		scores = b.Op("MatMul", b.Op("Mul", q, s), b.Op("Mul", kT(k), s))
	case "sdpa-shape":
		// 1/sqrt(c) from the shape, as torch's symbolic writes it, then √ of it
		// on q and on kᵀ.
		c := b.Op("Cast", b.Op("Slice", b.Op("Shape", q), b.ConstI64(cn(), []int64{1}, -1), b.ConstI64(cn(), []int64{1}, math.MaxInt64)), graph.AInt("to", int64(dt)))
		s := b.Op("Sqrt", b.Op("Div", fill(b, cn(), "[]", float64(1)), b.Op("Sqrt", c)))
		scores = b.Op("MatMul", b.Op("Mul", q, s), b.Op("Mul", kT(k), s))
	case "einsum-ellipsis":
		scores = b.Op("Einsum", b.Op("Mul", q, fill(b, cn(), "[]", float64(float32(scale)))), k, graph.AString("equation", "...qc,...kc->...qk"))
	case "scale-on-k":
		scores = b.Op("MatMul", q, kT(b.Op("Mul", k, fill(b, cn(), "[]", float64(float32(scale))))))
	default:
		scores = b.Op("MatMul", b.Op("Div", q, fill(b, cn(), "[]", float64(float32(math.Sqrt(tC))))), kT(k))
	}
	var logits *graph.Value
	switch style {
	case "presum":
		logits = b.Op("Add", scores, b.Op("Add", mb, tri))
	case "bias-first":
		logits = b.Op("Add", mb, b.Op("Add", tri, scores))
	default:
		logits = b.Op("Add", b.Op("Add", scores, mb), tri)
	}
	var p *graph.Value
	if style == "softmax-upcast" {
		up := b.Op("Cast", logits, graph.AInt("to", int64(graph.Float32)))
		p = b.Op("Cast", b.Op("Softmax", up, graph.AInt("axis", -1)), graph.AInt("to", int64(dt)))
	} else {
		p = b.Op("Softmax", logits, graph.AInt("axis", -1))
	}
	var o *graph.Value
	switch style {
	case "einsum":
		o = b.Op("Einsum", p, v, graph.AString("equation", "bhqk,bhkc->bhqc"))
	case "einsum-ellipsis":
		o = b.Op("Einsum", p, v, graph.AString("equation", "...qk,...kc->...qc"))
	default:
		o = b.Op("MatMul", p, v)
	}
	o = b.Op("Reshape", b.Op("Transpose", o, graph.AInts("perm", 0, 2, 1, 3)), b.ConstI64(cn(), []int64{3}, 0, 0, tH*tC))
	o = b.Op("Mul", o, b.Op("Sigmoid", b.Op("MatMul", x, w("wg", tH*tC, 5))))
	out := b.Op("MatMul", o, b.Random("wo", fmt.Sprintf(ds+"[%d,%d]", tH*tC, tCz), 6), graph.Out("z_update"))
	b.Output(out)
	g, err := b.Build()
	if err != nil {
		t.Fatalf("%s: %v", style, err)
	}
	return g
}

func TestAttentionFusionStyles(t *testing.T) {
	for _, style := range attentionStyles {
		t.Run(style, func(t *testing.T) {
			g := buildTriAttention(t, style)
			for _, n := range []int64{5, 1} {
				g := graph.Clone(g)
				dims := map[string]int64{"N": n}
				before, after, opt, log := runBoth(t, g, Options{}, dims, 11)
				counts := opt.OpCounts()
				if counts["of3c.Attention"] != 1 || counts["Softmax"] != 0 {
					t.Fatalf("N=%d: ops %v\n%s\n%s", n, counts, log.Format(), graph.Format(opt))
				}
				d, err := maxDiff(before, after, style == "sdpa")
				if err != nil {
					t.Fatalf("N=%d: %v", n, err)
				}
				if d > 1e-5 {
					t.Errorf("N=%d: fused differs from unfused by %g", n, d)
				}
				att := findOp(opt, "of3c.Attention")
				if got := att.AttrFloat("scale", 0); math.Abs(float64(got)-1/math.Sqrt(tC)) > 1e-6 {
					t.Errorf("scale %g, want %g", got, 1/math.Sqrt(tC))
				}
				if len(att.Inputs) != 5 {
					t.Errorf("fused op has %d inputs, want q, k, v and 2 biases", len(att.Inputs))
				}
			}
		})
	}
}

func findOp(g *graph.Graph, op string) *graph.Node {
	for _, n := range g.Nodes {
		if n.QualifiedOp() == op {
			return n
		}
	}
	return nil
}

// In float16 the mask constant 1e9 overflows to inf and the exported graph
// computes NaN for every unmasked element; after the passes, the f16 graph
// must give what the f32 graph gives (to f16 precision), masked rows
// included.
func TestAttentionFloat16Masks(t *testing.T) {
	for _, c := range []struct {
		style string
		dt    graph.DType
		tol   float64
	}{
		{"of3", graph.Float16, 2e-2}, {"boolcast", graph.Float16, 2e-2}, {"sdpa", graph.Float16, 2e-2},
		{"softmax-upcast", graph.Float16, 2e-2}, {"of3", graph.BFloat16, 1e-1}, {"softmax-upcast", graph.BFloat16, 1e-1},
	} {
		style := c.style
		t.Run(style+"/"+c.dt.String(), func(t *testing.T) {
			g32 := buildTriAttentionT(t, style, graph.Float32)
			g16 := buildTriAttentionT(t, style, c.dt)
			dims := map[string]int64{"N": 6}
			in32 := testInputs(t, g32, dims, 2)
			in16 := map[string]*graph.Tensor{}
			for name, tt := range in32 {
				if tt.DType != graph.Float32 {
					in16[name] = tt
					continue
				}
				vals, _ := tt.Float64s()
				h, err := graph.NewTensorFromFloat64s(c.dt, tt.Shape, vals)
				if err != nil {
					t.Fatal(err)
				}
				in16[name] = h
			}
			want, err := ref.Run(g32, in32)
			if err != nil {
				t.Fatal(err)
			}
			log, err := Run(g16, Options{Verify: true})
			if err != nil {
				t.Fatal(err)
			}
			if c := g16.OpCounts(); c["of3c.Attention"] != 1 {
				t.Fatalf("not fused: %v\n%s", c, log.Format())
			}
			got, err := ref.Run(g16, in16)
			if err != nil {
				t.Fatal(err)
			}
			d, err := maxDiff(want, got, style == "sdpa")
			if err != nil {
				t.Fatal(err)
			}
			if d > c.tol {
				t.Errorf("%s fused differs from f32 by %g", c.dt, d)
			}
		})
	}
}
