package passes

import (
	"fmt"
	"testing"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/runtime/ref"
)

// Chunked and LMA forms of the fused ops must compute what the unfused graph
// does, with chunk sizes that do not divide the axis, with a fully masked
// row (the test mask masks row 1 entirely), and at N = 1.
func TestChunkedAttentionMatchesUnfused(t *testing.T) {
	chunkings := []map[string]int64{
		{"batch_chunk": 2},
		{"query_chunk": 3},
		{"kv_chunk": 2},
		{"kv_chunk": 3, "query_chunk": 2},
		{"batch_chunk": 3, "query_chunk": 4, "kv_chunk": 4},
		{"kv_chunk": 1},
		{"batch_chunk": 100, "query_chunk": 100, "kv_chunk": 100},
	}
	for _, style := range []string{"of3", "presum"} {
		for _, n := range []int64{7, 1} {
			for _, ch := range chunkings {
				t.Run(fmt.Sprintf("%s/N=%d/%v", style, n, ch), func(t *testing.T) {
					g := buildTriAttention(t, style)
					dims := map[string]int64{"N": n}
					inputs := testInputs(t, g, dims, 3)
					want, err := ref.Run(graph.Clone(g), inputs)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := Run(g, Options{Verify: true}); err != nil {
						t.Fatal(err)
					}
					att := findOp(g, "of3c.Attention")
					if att == nil {
						t.Fatal("no fused attention")
					}
					for k, v := range ch {
						att.SetAttr(k, graph.Attr{Kind: graph.AttrInt, Int: v})
					}
					if err := graph.Verify(g); err != nil {
						t.Fatal(err)
					}
					got, err := ref.Run(g, inputs)
					if err != nil {
						t.Fatal(err)
					}
					if d, err := maxDiff(want, got, false); err != nil || d > 1e-5 {
						t.Errorf("chunked differs from unfused: %g %v", d, err)
					}
				})
			}
		}
	}
}

func TestChunkedSwiGLUMatchesUnfused(t *testing.T) {
	for _, rows := range []int64{0, 1, 4, 5, 1000} {
		for _, n := range []int64{3, 1} {
			g := mustParse(t, swigluGraph)
			dims := map[string]int64{"N": n}
			inputs := testInputs(t, g, dims, 5)
			want, err := ref.Run(graph.Clone(g), inputs)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Run(g, Options{Verify: true}); err != nil {
				t.Fatal(err)
			}
			sw := findOp(g, "of3c.SwiGLU")
			if sw == nil || len(sw.Inputs) != 3 {
				t.Fatalf("want a SwiGLU with W_out:\n%s", graph.Format(g))
			}
			if rows > 0 {
				sw.SetAttr("row_chunk", graph.Attr{Kind: graph.AttrInt, Int: rows})
			}
			got, err := ref.Run(g, inputs)
			if err != nil {
				t.Fatal(err)
			}
			if d, err := maxDiff(want, got, false); err != nil || d > 1e-5 {
				t.Errorf("row_chunk=%d N=%d: %g %v", rows, n, d, err)
			}
		}
	}
}

// A SwiGLU transition on a pair tensor: LN, silu(x Wa)·(x Wb), W_out, mask.
const swigluGraph = `graph transition opsets(ai.onnx=17) {
  input %z:f32[N,N,4]
  input %pair_mask:f32[N,N]
  %gamma:f32[4] = const [1, 1.1, 0.9, 1]
  %beta:f32[4] = const [0, 0.1, -0.1, 0.2]
  %wa:f32[4,8] = const random(1, -0.5, 0.5)
  %wb:f32[4,8] = const random(2, -0.5, 0.5)
  %wo:f32[8,4] = const random(3, -0.5, 0.5)
  %ax:i64[1] = const [-1]
  %ln:f32[N,N,4] = LayerNormalization(%z, %gamma, %beta) {axis=-1, epsilon=1e-05}
  %a:f32[N,N,8] = MatMul(%ln, %wa)
  %b:f32[N,N,8] = MatMul(%ln, %wb)
  %sa:f32[N,N,8] = Sigmoid(%a)
  %silu:f32[N,N,8] = Mul(%a, %sa)
  %h:f32[N,N,8] = Mul(%silu, %b)
  %o:f32[N,N,4] = MatMul(%h, %wo)
  %m:f32[N,N,1] = Unsqueeze(%pair_mask, %ax)
  %out:f32[N,N,4] = Mul(%o, %m)
  output %out
}`
