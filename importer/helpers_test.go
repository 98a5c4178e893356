package importer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/importer/onnxpb"
)

// testDomain holds ops registered by these tests, so that import tests do not
// depend on which ai.onnx shape rules exist yet.
const testDomain = "importer.test"

func init() {
	// Same: one input, one output of the input's type.
	graph.RegisterOp(graph.OpDef{Domain: testDomain, Op: "Same", MinInputs: 1, MaxInputs: 1, MinOutputs: 1, MaxOutputs: 1,
		Infer: func(n *graph.Node) ([]graph.Type, []graph.Shape, error) {
			return []graph.Type{n.Inputs[0].Type}, nil, nil
		}})
	// Pair: two inputs (the second optional), two outputs of the first
	// input's dtype with unknown shape, so declared types show through.
	graph.RegisterOp(graph.OpDef{Domain: testDomain, Op: "Pair", MinInputs: 1, MaxInputs: 2, MinOutputs: 1, MaxOutputs: 2,
		Infer: func(n *graph.Node) ([]graph.Type, []graph.Shape, error) {
			out := make([]graph.Type, len(n.Outputs))
			for i := range out {
				out[i] = graph.Type{DType: n.Inputs[0].Type.DType}
			}
			return out, nil, nil
		}})
	// Boom: its rule panics (a rule bug the importer must contain).
	graph.RegisterOp(graph.OpDef{Domain: testDomain, Op: "Boom", MinInputs: 0, MaxInputs: -1, MinOutputs: 1, MaxOutputs: 1,
		Infer: func(n *graph.Node) ([]graph.Type, []graph.Shape, error) {
			var shape graph.Shape
			return []graph.Type{{Shape: graph.Shape{shape[3]}}}, nil, nil
		}})
	// Fail: its rule always fails (not an unsupported op).
	graph.RegisterOp(graph.OpDef{Domain: testDomain, Op: "Fail", MinInputs: 0, MaxInputs: -1, MinOutputs: 1, MaxOutputs: 1,
		Infer: func(n *graph.Node) ([]graph.Type, []graph.Shape, error) {
			return nil, nil, fmt.Errorf("rule refuses")
		}})
}

// Small builders for ModelProtos.

func tensorVI(name string, dt graph.DType, dims ...any) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range dims {
		dim := &onnxpb.TensorShapeProto_Dimension{}
		switch d := d.(type) {
		case int:
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}
		case string:
			if d != "?" {
				dim.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d}
			}
		}
		shape.Dim = append(shape.Dim, dim)
	}
	return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(dt)), Shape: shape}}}}
}

func node(domain, op string, ins, outs []string, attrs ...*onnxpb.AttributeProto) *onnxpb.NodeProto {
	n := &onnxpb.NodeProto{OpType: proto.String(op), Input: ins, Output: outs, Attribute: attrs}
	if domain != "" {
		n.Domain = proto.String(domain)
	}
	if len(outs) > 0 {
		n.Name = proto.String("n_" + outs[0])
	}
	return n
}

func attrT(t onnxpb.AttributeProto_AttributeType) *onnxpb.AttributeProto_AttributeType { return &t }

func intAttr(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: attrT(onnxpb.AttributeProto_INT), I: proto.Int64(v)}
}

func refAttr(name, ref string, t onnxpb.AttributeProto_AttributeType) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), RefAttrName: proto.String(ref), Type: attrT(t)}
}

func opset(domain string, v int64) *onnxpb.OperatorSetIdProto {
	return &onnxpb.OperatorSetIdProto{Domain: proto.String(domain), Version: proto.Int64(v)}
}

// model wraps a graph with the ai.onnx opset 17 and the test domain.
func model(gp *onnxpb.GraphProto) *onnxpb.ModelProto {
	if gp.Name == nil {
		gp.Name = proto.String("g")
	}
	return &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{opset("", 17), opset(testDomain, 1)},
		Graph:       gp,
	}
}

// sameModel is x -> Same -> y with x: f32[N,4].
func sameModel() *onnxpb.ModelProto {
	return model(&onnxpb.GraphProto{
		Input:  []*onnxpb.ValueInfoProto{tensorVI("x", graph.Float32, "N", 4)},
		Output: []*onnxpb.ValueInfoProto{tensorVI("y", graph.Float32, "N", 4)},
		Node:   []*onnxpb.NodeProto{node(testDomain, "Same", []string{"x"}, []string{"y"})},
	})
}

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loadModel(t testing.TB, m *onnxpb.ModelProto, opts Options) (*graph.Graph, error) {
	t.Helper()
	return Load(marshal(t, m), "", opts)
}

func mustLoad(t testing.TB, m *onnxpb.ModelProto, opts Options) *graph.Graph {
	t.Helper()
	g, err := loadModel(t, m, opts)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// wantErr checks err is one line mentioning every fragment.
func wantErr(t testing.TB, err error, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one mentioning %q", fragments)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Errorf("error spans lines: %q", msg)
	}
	for _, f := range fragments {
		if !strings.Contains(msg, f) {
			t.Errorf("error %q does not mention %q", msg, f)
		}
	}
}

// describe is a plain text form of a graph (independent of graph's printer)
// for comparing graphs in tests.
func describe(g *graph.Graph) string {
	var b strings.Builder
	fmt.Fprintf(&b, "graph %s opsets %v\n", g.Name, g.Opsets)
	for _, v := range g.Inputs {
		fmt.Fprintf(&b, "input %s: %s\n", v.Name, v.Type)
	}
	for _, v := range g.Consts {
		fmt.Fprintf(&b, "const %s: %s = %x\n", v.Name, v.Type, v.Const.Data)
	}
	for _, n := range g.Nodes {
		var ins, outs []string
		for _, v := range n.Inputs {
			if v == nil {
				ins = append(ins, "_")
			} else {
				ins = append(ins, v.Name)
			}
		}
		for _, v := range n.Outputs {
			if v == nil {
				outs = append(outs, "_")
			} else {
				outs = append(outs, v.Name+":"+v.Type.String())
			}
		}
		fmt.Fprintf(&b, "%s = %s@%d[%s](%s)", strings.Join(outs, ","), n.QualifiedOp(), n.Opset, n.Name, strings.Join(ins, ","))
		for _, k := range n.AttrNames() {
			a := n.Attrs[k]
			fmt.Fprintf(&b, " %s=%s:%v%v%q%v%v%v", k, a.Kind, a.Int, a.Float, a.Str, a.Ints, a.Floats, a.Strings)
			if a.Tensor != nil {
				fmt.Fprintf(&b, "%s%v%x", a.Tensor.DType, a.Tensor.Shape, a.Tensor.Data)
			}
		}
		b.WriteString("\n")
	}
	for _, v := range g.Outputs {
		fmt.Fprintf(&b, "output %s: %s\n", v.Name, v.Type)
	}
	return b.String()
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
