package codegen

import (
	"testing"

	"github.com/of3c/of3c/graph"
)

func TestPairOps(t *testing.T) {
	needMLX(t)
	if graph.LookupOp(graph.FusedDomain, "TriangleMultiplication") == nil {
		t.Skip("of3c.TriangleMultiplication not registered")
	}
	for _, dir := range []string{"outgoing", "incoming"} {
		for _, rc := range []int64{0, 3} {
			b := graph.NewBuilder("tm", 17)
			b.Opset(graph.FusedDomain, 1)
			x := b.Input("x", "f32[N,N,6]")
			m := b.Input("m", "f32[N,N,1]")
			w := b.Random("w", "f32[6,16]", 7)
			b.Output(b.Op("of3c.TriangleMultiplication", x, m, w, graph.AString("direction", dir), graph.AInt("row_chunk", rc)))
			mv := make([]float32, 49)
			for i := range mv {
				if i%5 != 2 {
					mv[i] = 1
				}
			}
			in := map[string]*graph.Tensor{"x": randT(t, graph.Float32, []int64{7, 7, 6}, 3, -1, 1), "m": graph.NewTensorF32([]int64{7, 7, 1}, mv)}
			checkVsRef(t, build(t, b), in, 2e-6)
		}
	}
	for _, rc := range []int64{0, 2} {
		b := graph.NewBuilder("opm", 17)
		b.Opset(graph.FusedDomain, 1)
		a := b.Input("a", "f32[S,N,3]")
		bb := b.Input("b", "f32[S,N,4]")
		w := b.Random("w", "f32[12,5]", 8)
		bias := b.Random("bias", "f32[5]", 9)
		b.Output(b.Op("of3c.OuterProductMean", a, bb, w, bias, graph.AInt("row_chunk", rc)))
		in := map[string]*graph.Tensor{"a": randT(t, graph.Float32, []int64{4, 5, 3}, 1, -1, 1), "b": randT(t, graph.Float32, []int64{4, 5, 4}, 2, -1, 1)}
		checkVsRef(t, build(t, b), in, 2e-6)
	}
}
