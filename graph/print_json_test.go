package graph

import (
	"encoding/json"
	"strings"
	"testing"
)

const jsonSrc = `graph main opsets(ai.onnx=17, of3c=1) {
  input %x:f32[N,?]
  input %m:bool[*]
  %w:f32[4,8] = const random(2)
  %c:i64[2] = const [1, 2]
  %y:f32[N,8] = MatMul(%x, %w) @mm
  %a = of3c.Attention(%y, %y, %y, _, %m) {scale=0.5, bad=nan, fs=[1.0, inf], chunk=[8, 16], mode="lma", t=tensor<i64[2]> [3, 4]}
  %b = of3c.Attention(%a, %a, %a)
  %z = MatMul(%b, %w)
  output %z, %y
}
`

func TestFormatJSON(t *testing.T) {
	g := MustParse(jsonSrc)
	data, err := FormatJSON(g)
	if err != nil {
		t.Fatal(err)
	}
	var back JSONGraph
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatalf("output is not valid JSON: %v\n%s", err, data)
	}
	if back.Name != "main" || back.Opsets["ai.onnx"] != 17 || back.Opsets["of3c"] != 1 {
		t.Errorf("header %q %v", back.Name, back.Opsets)
	}
	if len(back.Inputs) != 2 || back.Inputs[0].String() != "%x:f32[N,?]" || back.Inputs[1].Shape != nil {
		t.Errorf("inputs %+v", back.Inputs)
	}
	if len(back.Constants) != 2 || back.Constants[0].Summary != "random(2)" || back.Constants[0].Bytes != 128 ||
		back.Constants[1].Summary != "[1, 2]" || back.Constants[1].Elements != 2 {
		t.Errorf("constants %q %q", back.Constants[0].Summary, back.Constants[1].Summary)
	}
	if len(back.Nodes) != 4 || len(back.Values) != 2+2+4 {
		t.Fatalf("%d nodes %d values", len(back.Nodes), len(back.Values))
	}
	att := back.Nodes[1]
	if att.Domain != "of3c" || att.Op != "Attention" || att.Inputs[3] != "" || att.Inputs[4] != "m" || back.Nodes[0].Name != "mm" {
		t.Errorf("attention node %+v", att)
	}
	// Floats keep their float32 text; non-finite ones become strings.
	if !strings.Contains(string(data), `"scale": 0.5`) || !strings.Contains(string(data), `"bad": "nan"`) ||
		!strings.Contains(string(data), `"inf"`) || !strings.Contains(string(data), `"mode": "lma"`) {
		t.Errorf("attrs in JSON:\n%s", data)
	}
	if tensor, ok := att.Attrs["t"].(map[string]any); !ok || tensor["summary"] != "[3, 4]" {
		t.Errorf("tensor attr %v", att.Attrs["t"])
	}
	// encoding/json uses Graph.MarshalJSON.
	direct, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(direct), `{"name":"main"`) {
		t.Errorf("json.Marshal(g) = %.80s", direct)
	}
}

func TestComputeStats(t *testing.T) {
	s := ComputeStats(MustParse(jsonSrc))
	if s.Nodes != 4 || s.OpCounts["MatMul"] != 2 || s.OpCounts["of3c.Attention"] != 2 || len(s.OpCounts) != 2 ||
		s.Params != 34 || s.ParamBytes != 128+16 || s.Constants != 2 {
		t.Errorf("stats %+v", s)
	}
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"nodes":4,"op_counts":{"MatMul":2,"of3c.Attention":2},"inputs":[{"name":"x","dtype":"f32","shape":["N","?"]},{"name":"m","dtype":"bool","shape":null}],"outputs":[{"name":"z","dtype":"undef","shape":null},{"name":"y","dtype":"f32","shape":["N",8]}],"params":34,"param_bytes":144,"constants":2}`
	if string(data) != want {
		t.Errorf("stats JSON\n got %s\nwant %s", data, want)
	}
	text := s.String()
	for _, line := range []string{"nodes: 4\n", "params: 34 (144 bytes)\n", "input: %x:f32[N,?]\n", "input: %m:bool[*]\n", "  MatMul "} {
		if !strings.Contains(text, line) {
			t.Errorf("stats text lacks %q:\n%s", line, text)
		}
	}
}

func TestFormatDOT(t *testing.T) {
	g := MustParse(jsonSrc)
	g.Nodes[0].Name = `quote " and \ backslash`
	dot := FormatDOT(g)
	for _, want := range []string{
		"digraph \"main\" {",
		`in0 [label="%x\nf32[N,?]"`,
		`c0 [label="%w\nf32[4,8]"`,
		`n0 [label="MatMul\nquote \" and \\ backslash"]`,
		`n1 [label="of3c.Attention", style=filled`,
		`in0 -> n0 [label="%x f32[N,?]"]`,
		`c0 -> n0 [label="%w f32[4,8]"]`,
		`n3 -> out0 [label="%z undef[*]"]`,
		`n0 -> out1`,
	} {
		if !strings.Contains(dot, want) {
			t.Errorf("DOT lacks %s:\n%s", want, dot)
		}
	}
	if strings.Count(dot, "->") != 13 {
		t.Errorf("%d edges:\n%s", strings.Count(dot, "->"), dot)
	}
	hidden := FormatDOTWith(g, DOTOptions{HideConsts: true})
	if strings.Contains(hidden, "%w") || strings.Count(hidden, "->") != 11 {
		t.Errorf("constants not hidden:\n%s", hidden)
	}
	// Values defined outside the graph get a dashed node instead of a
	// dangling edge.
	g.Nodes[3].Inputs[0] = &Value{Name: "ghost"}
	if d := FormatDOT(g); !strings.Contains(d, `u0 [label="%ghost", shape=ellipse, style=dashed]`) || !strings.Contains(d, "u0 -> n3") {
		t.Errorf("dangling value:\n%s", d)
	}
}
