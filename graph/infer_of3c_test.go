package graph

import (
	"strings"
	"testing"
)

// of3cNode builds a fused node over inputs of the given types (nil = omitted).
func of3cNode(op string, attrs map[string]Attr, types ...string) (*Node, error) {
	n := &Node{Domain: FusedDomain, Op: op, Attrs: attrs, Opset: 1}
	for i, ts := range types {
		if ts == "" {
			n.Inputs = append(n.Inputs, nil)
			continue
		}
		t, err := ParseType(ts)
		if err != nil {
			return nil, err
		}
		n.Inputs = append(n.Inputs, &Value{Name: string(rune('a' + i)), Type: t})
	}
	n.Outputs = []*Value{{Name: "out", Producer: n}}
	return n, nil
}

func TestInferOf3cOps(t *testing.T) {
	str := func(s string) Attr { return Attr{Kind: AttrString, Str: s} }
	intA := func(v int64) Attr { return Attr{Kind: AttrInt, Int: v} }
	cases := []struct {
		op    string
		attrs map[string]Attr
		in    []string
		want  string // output type, or "error: substring"
	}{
		// Triangle attention, starting node: q,k,v [I,H,J,c], mask [I,1,1,J], tri [1,H,J,K].
		{"Attention", nil, []string{"f32[N,4,N,32]", "f32[N,4,N,32]", "f32[N,4,N,32]", "f32[N,1,1,N]", "f32[1,4,N,N]"}, "f32[N,4,N,32]"},
		// Pair-bias attention: [H,N,c], mask [1,1,N] broadcasts over heads and queries.
		{"Attention", nil, []string{"f32[16,N,24]", "f32[16,N,24]", "f32[16,N,24]", "f32[1,1,N]", "f32[16,N,N]"}, "f32[16,N,24]"},
		// Cross attention with value width differing from the head dim.
		{"Attention", nil, []string{"f16[2,3,5,8]", "f16[2,3,7,8]", "f16[2,3,7,4]"}, "f16[2,3,5,4]"},
		// A bias with extra leading dims widens the output batch.
		{"Attention", nil, []string{"f32[4,5,8]", "f32[4,7,8]", "f32[4,7,8]", "f32[3,4,5,7]"}, "f32[3,4,5,8]"},
		// MSA pair-weighted averaging: weights [1,H,Q,K] shared by all S rows of v.
		{"Attention", map[string]Attr{"mode": str("bias_only")}, []string{"", "", "f32[S,8,N,8]", "f32[1,8,N,N]", "f32[N,N]"}, "f32[S,8,N,8]"},
		{"Attention", map[string]Attr{"mode": str("bias_only")}, []string{"", "", "f32[S,8,N,8]"}, "error: at least one bias"},
		{"Attention", map[string]Attr{"mode": str("bias_only")}, []string{"f32[8,N,8]", "", "f32[S,8,N,8]", "f32[8,N,N]"}, "error: takes no q or k"},
		{"Attention", map[string]Attr{"mode": str("flash")}, []string{"f32[2,4]", "f32[3,4]", "f32[3,4]"}, "error: unknown mode"},
		{"Attention", nil, []string{"f32[2,4]", "f32[3,5]", "f32[3,4]"}, "error: head dim"},
		{"Attention", nil, []string{"f32[2,4]", "f32[3,4]", "f32[6,4]"}, "error: keys"},
		{"Attention", nil, []string{"f32[2,4]", "f32[3,4]", "f32[3,4]", "f32[2,6]"}, "error: broadcast"},
		{"Attention", nil, []string{"f32[2,4]", "f32[3,4]", "f16[3,4]"}, "error: share one type"},
		{"Attention", nil, []string{"i64[2,4]", "i64[3,4]", "i64[3,4]"}, "error: unsupported"},
		{"Attention", map[string]Attr{"kv_chunk": intA(-1)}, []string{"f32[2,4]", "f32[3,4]", "f32[3,4]"}, "error: kv_chunk"},
		{"Attention", map[string]Attr{"batch_chunk": intA(2)}, []string{"f32[2,4]", "f32[3,4]", "f32[3,4]"}, "error: batch_chunk"},
		{"Attention", map[string]Attr{"batch_chunk": intA(2), "query_chunk": intA(3), "kv_chunk": intA(5)},
			[]string{"f32[N,4,N,32]", "f32[N,4,N,32]", "f32[N,4,N,32]"}, "f32[N,4,N,32]"},
		{"Attention", nil, []string{"f32[*]", "f32[3,4]", "f32[3,4]"}, "f32[*]"},

		{"SwiGLU", nil, []string{"f32[N,N,128]", "f32[128,1024]"}, "f32[N,N,512]"},
		{"SwiGLU", nil, []string{"f32[N,384]", "f32[384,3072]", "f32[1536,384]"}, "f32[N,384]"},
		{"SwiGLU", map[string]Attr{"row_chunk": intA(64)}, []string{"bf16[N,16]", "bf16[16,2*H]"}, "bf16[N,H]"},
		{"SwiGLU", nil, []string{"f32[N,16]", "f32[16,7]"}, "error: even"},
		{"SwiGLU", nil, []string{"f32[N,16]", "f32[8,8]"}, "error: input channels"},
		{"SwiGLU", nil, []string{"f32[N,16]", "f32[16,8]", "f32[5,3]"}, "error: W_out"},
	}
	for _, c := range cases {
		n, err := of3cNode(c.op, c.attrs, c.in...)
		if err != nil {
			t.Fatal(err)
		}
		types, _, err := InferNode(n)
		name := c.op + "(" + strings.Join(c.in, ", ") + ")"
		if msg, isErr := strings.CutPrefix(c.want, "error: "); isErr {
			if err == nil || !strings.Contains(err.Error(), msg) {
				t.Errorf("%s: got %v, %v; want error containing %q", name, types, err, msg)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got := types[0].String(); got != c.want {
			t.Errorf("%s = %s, want %s", name, got, c.want)
		}
	}
}
