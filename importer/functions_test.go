package importer

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/importer/onnxpb"
)

const fnDomain = "custom.fn"

// linearAct is a local function: T = Pair(X, B){alpha: @alpha, k: @k}; Y = Same(T).
func linearAct() *onnxpb.FunctionProto {
	return &onnxpb.FunctionProto{
		Name:      proto.String("LinearAct"),
		Domain:    proto.String(fnDomain),
		Input:     []string{"X", "B"},
		Output:    []string{"Y"},
		Attribute: []string{"alpha", "k"},
		Node: []*onnxpb.NodeProto{
			{Name: proto.String("pair"), OpType: proto.String("Pair"), Domain: proto.String(testDomain),
				Input: []string{"X", "B"}, Output: []string{"T"},
				Attribute: []*onnxpb.AttributeProto{refAttr("alpha", "alpha", onnxpb.AttributeProto_INT), refAttr("kk", "k", onnxpb.AttributeProto_INT)}},
			{OpType: proto.String("Same"), Domain: proto.String(testDomain), Input: []string{"T"}, Output: []string{"Y"}},
		},
		OpsetImport: []*onnxpb.OperatorSetIdProto{opset(testDomain, 1), opset("", 17)},
	}
}

// appendUnknown adds a length-delimited field that the ONNX 1.12 schema does
// not know (as newer exporters write it).
func appendUnknown(m proto.Message, num protowire.Number, payload []byte) {
	r := m.ProtoReflect()
	b := append([]byte{}, r.GetUnknown()...)
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = protowire.AppendBytes(b, payload)
	r.SetUnknown(b)
}

func fnModel(fns ...*onnxpb.FunctionProto) *onnxpb.ModelProto {
	m := model(&onnxpb.GraphProto{
		Input:  []*onnxpb.ValueInfoProto{tensorVI("x", graph.Float32, "N")},
		Output: []*onnxpb.ValueInfoProto{tensorVI("y", graph.Float32, "N")},
		Node: []*onnxpb.NodeProto{
			node(fnDomain, "LinearAct", []string{"x", "x"}, []string{"a"}, intAttr("alpha", 2)),
			node(fnDomain, "LinearAct", []string{"a"}, []string{"y"}, intAttr("alpha", 3), intAttr("k", 5)),
		},
	})
	m.OpsetImport = append(m.OpsetImport, opset(fnDomain, 1))
	m.Functions = fns
	return m
}

func TestFunctionInlining(t *testing.T) {
	fn := linearAct()
	def := &onnxpb.AttributeProto{Name: proto.String("k"), Type: attrT(onnxpb.AttributeProto_INT), I: proto.Int64(7)}
	appendUnknown(fn, functionAttrProtoField, marshal(t, def))
	g := mustLoad(t, fnModel(fn), Options{})
	got := describe(g)
	want := strings.Join([]string{
		"graph g opsets map[:17 custom.fn:1 importer.test:1]",
		"input x: f32[N]",
		"n_a/T:f32[*] = importer.test.Pair@1[n_a/pair](x,x) alpha=int:20\"\"[][][] kk=int:70\"\"[][][]",
		"a:f32[*] = importer.test.Same@1[](n_a/T)",
		"n_y/T:f32[*] = importer.test.Pair@1[n_y/pair](a) alpha=int:30\"\"[][][] kk=int:50\"\"[][][]",
		"y:f32[N] = importer.test.Same@1[](n_y/T)",
		"output y: f32[N]",
		"",
	}, "\n")
	if got != want {
		t.Errorf("inlined graph:\n%s\nwant:\n%s", got, want)
	}

	// Without a default, an attribute the call does not set is absent.
	g = mustLoad(t, fnModel(linearAct()), Options{})
	if _, ok := g.Nodes[0].Attrs["kk"]; ok {
		t.Errorf("unset attribute without default should be absent:\n%s", describe(g))
	}
	if g.Nodes[2].AttrInt("kk", 0) != 5 {
		t.Errorf("second call's k lost:\n%s", describe(g))
	}
}

func TestFunctionNamesStayUnique(t *testing.T) {
	m := fnModel(linearAct())
	// The main graph already uses the name inlining would pick first.
	m.Graph.Node = append([]*onnxpb.NodeProto{node(testDomain, "Same", []string{"x"}, []string{"n_a/T"})}, m.Graph.Node...)
	m.Graph.Output = append(m.Graph.Output, tensorVI("n_a/T", graph.Float32, "N"))
	g := mustLoad(t, m, Options{})
	seen := map[string]bool{}
	for _, v := range g.AllValues() {
		if seen[v.Name] {
			t.Errorf("value name %q used twice:\n%s", v.Name, describe(g))
		}
		seen[v.Name] = true
	}
	if !seen["n_a_1/T"] && !seen["n_a/T_1"] {
		t.Errorf("expected a renamed internal value:\n%s", describe(g))
	}
}

func TestNestedFunctionsAndOverloads(t *testing.T) {
	// Outer(X) = LinearAct(X, X){alpha: @a}; a second overload of Outer
	// (picked by the call's overload field) is Same(X).
	outer := &onnxpb.FunctionProto{
		Name: proto.String("Outer"), Domain: proto.String(fnDomain),
		Input: []string{"X"}, Output: []string{"Z"}, Attribute: []string{"a"},
		Node: []*onnxpb.NodeProto{{OpType: proto.String("LinearAct"), Domain: proto.String(fnDomain), Name: proto.String("inner"),
			Input: []string{"X", "X"}, Output: []string{"Z"},
			Attribute: []*onnxpb.AttributeProto{refAttr("alpha", "a", onnxpb.AttributeProto_INT)}}},
		OpsetImport: []*onnxpb.OperatorSetIdProto{opset(fnDomain, 1)},
	}
	outer2 := &onnxpb.FunctionProto{
		Name: proto.String("Outer"), Domain: proto.String(fnDomain),
		Input: []string{"X"}, Output: []string{"Z"},
		Node:        []*onnxpb.NodeProto{{OpType: proto.String("Same"), Domain: proto.String(testDomain), Input: []string{"X"}, Output: []string{"Z"}}},
		OpsetImport: []*onnxpb.OperatorSetIdProto{opset(testDomain, 1)},
	}
	appendUnknown(outer2, functionOverloadField, []byte("fast"))
	m := fnModel(linearAct(), outer, outer2)
	call := node(fnDomain, "Outer", []string{"x"}, []string{"a"}, intAttr("a", 9))
	call2 := node(fnDomain, "Outer", []string{"a"}, []string{"y"})
	appendUnknown(call2, nodeOverloadField, []byte("fast"))
	m.Graph.Node = []*onnxpb.NodeProto{call, call2}
	g := mustLoad(t, m, Options{})
	if len(g.Nodes) != 3 || g.Nodes[0].Name != "n_a/inner/pair" || g.Nodes[0].AttrInt("alpha", 0) != 9 || g.Nodes[2].Op != "Same" {
		t.Errorf("nested inlining:\n%s", describe(g))
	}
}

func TestFunctionErrors(t *testing.T) {
	self := &onnxpb.FunctionProto{
		Name: proto.String("LinearAct"), Domain: proto.String(fnDomain), Input: []string{"X", "B"}, Output: []string{"Y"},
		Node: []*onnxpb.NodeProto{{OpType: proto.String("LinearAct"), Domain: proto.String(fnDomain), Input: []string{"X"}, Output: []string{"Y"}}},
	}
	_, err := loadModel(t, fnModel(self), Options{})
	wantErr(t, err, "calls itself", "LinearAct")

	_, err = loadModel(t, fnModel(linearAct(), linearAct()), Options{})
	wantErr(t, err, "defined twice")

	m := fnModel(linearAct())
	m.Graph.Node[0].Input = []string{"x", "x", "x"}
	_, err = loadModel(t, m, Options{})
	wantErr(t, err, "3 inputs", "has 2")

	// Exponential expansion: F0 calls F1 twice, ..., F23 is a leaf.
	var fns []*onnxpb.FunctionProto
	const depth = 24
	for i := 0; i < depth; i++ {
		f := &onnxpb.FunctionProto{Name: proto.String("F" + string(rune('A'+i))), Domain: proto.String(fnDomain),
			Input: []string{"X"}, Output: []string{"Y"}, OpsetImport: []*onnxpb.OperatorSetIdProto{opset(testDomain, 1), opset(fnDomain, 1)}}
		if i == depth-1 {
			f.Node = []*onnxpb.NodeProto{{OpType: proto.String("Same"), Domain: proto.String(testDomain), Input: []string{"X"}, Output: []string{"Y"}}}
		} else {
			next := "F" + string(rune('A'+i+1))
			f.Node = []*onnxpb.NodeProto{
				{OpType: proto.String(next), Domain: proto.String(fnDomain), Input: []string{"X"}, Output: []string{"T"}},
				{OpType: proto.String(next), Domain: proto.String(fnDomain), Input: []string{"T"}, Output: []string{"Y"}},
			}
		}
		fns = append(fns, f)
	}
	m = fnModel(fns...)
	m.Graph.Node = []*onnxpb.NodeProto{node(fnDomain, "FA", []string{"x"}, []string{"y"})}
	_, err = loadModel(t, m, Options{})
	wantErr(t, err, "more than", "nodes after inlining")
}

// TestInlinedConstantsShareData: a constant in a function body, inlined at
// several calls, becomes one constant per call sharing one buffer.
func TestInlinedConstantsShareData(t *testing.T) {
	fn := &onnxpb.FunctionProto{
		Name: proto.String("AddC"), Domain: proto.String(fnDomain), Input: []string{"X"}, Output: []string{"Y"},
		Node: []*onnxpb.NodeProto{
			{OpType: proto.String("Constant"), Output: []string{"c"}, Attribute: []*onnxpb.AttributeProto{{
				Name: proto.String("value"), Type: attrT(onnxpb.AttributeProto_TENSOR),
				T: &onnxpb.TensorProto{Dims: []int64{2}, DataType: proto.Int32(1), RawData: floatBytes(1, 2)}}}},
			{OpType: proto.String("Pair"), Domain: proto.String(testDomain), Input: []string{"X", "c"}, Output: []string{"Y"}},
		},
		OpsetImport: []*onnxpb.OperatorSetIdProto{opset("", 17), opset(testDomain, 1)},
	}
	m := fnModel(fn)
	m.Graph.Node = []*onnxpb.NodeProto{
		node(fnDomain, "AddC", []string{"x"}, []string{"a"}),
		node(fnDomain, "AddC", []string{"a"}, []string{"y"}),
	}
	g := mustLoad(t, m, Options{})
	if len(g.Consts) != 2 || g.Consts[0].Name == g.Consts[1].Name {
		t.Fatalf("want two constants:\n%s", describe(g))
	}
	if &g.Consts[0].Const.Data[0] != &g.Consts[1].Const.Data[0] || g.Consts[0].Const == g.Consts[1].Const {
		t.Error("inlined constants should be distinct tensors sharing one buffer")
	}
}
