package importer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/importer/onnxpb"
)

func TestLoadBasic(t *testing.T) {
	m := sameModel()
	m.ProducerName = proto.String("pytorch")
	m.ProducerVersion = proto.String("2.11")
	m.ModelVersion = proto.Int64(3)
	m.MetadataProps = []*onnxpb.StringStringEntryProto{{Key: proto.String("fixture"), Value: proto.String("pairformer")}}
	g := mustLoad(t, m, Options{})
	if len(g.Inputs) != 1 || len(g.Outputs) != 1 || len(g.Nodes) != 1 {
		t.Fatalf("graph:\n%s", describe(g))
	}
	want := graph.TensorType(graph.Float32, graph.Shape{graph.S("N"), graph.D(4)})
	if !g.Inputs[0].Type.Equal(want) || !g.Outputs[0].Type.Equal(want) {
		t.Errorf("types: in %s out %s, want %s", g.Inputs[0].Type, g.Outputs[0].Type, want)
	}
	n := g.Nodes[0]
	if n.Domain != testDomain || n.Op != "Same" || n.Opset != 1 || n.Name != "n_y" || n.Inputs[0] != g.Inputs[0] || n.Outputs[0] != g.Outputs[0] {
		t.Errorf("node: %+v", n)
	}
	if g.Opsets[""] != 17 || g.Opsets[testDomain] != 1 {
		t.Errorf("opsets %v", g.Opsets)
	}
	for k, v := range map[string]string{"producer_name": "pytorch", "producer_version": "2.11", "ir_version": "8",
		"model_version": "3", "metadata.fixture": "pairformer"} {
		if g.Meta[k] != v {
			t.Errorf("Meta[%q] = %q, want %q", k, g.Meta[k], v)
		}
	}
}

func TestLoadDims(t *testing.T) {
	m := model(&onnxpb.GraphProto{
		Input: []*onnxpb.ValueInfoProto{
			tensorVI("x", graph.Float32, "N", "?", 3),
			{Name: proto.String("u"), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
				TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(graph.Float16))}}}},
		},
		Output: []*onnxpb.ValueInfoProto{tensorVI("x2", graph.Float32, "N", "?", 3)},
		Node:   []*onnxpb.NodeProto{node(testDomain, "Same", []string{"x"}, []string{"x2"})},
	})
	g := mustLoad(t, m, Options{})
	if got := g.Inputs[0].Type.String(); got != "f32[N,?,3]" {
		t.Errorf("x: %s", got)
	}
	if u := g.Inputs[1].Type; u.Ranked || u.DType != graph.Float16 {
		t.Errorf("u: %s, want f16[*]", u)
	}
}

// TestDeclaredTypesFillInference checks that value_info and output types fill
// what a rule leaves unknown.
func TestDeclaredTypesFillInference(t *testing.T) {
	m := model(&onnxpb.GraphProto{
		Input:     []*onnxpb.ValueInfoProto{tensorVI("x", graph.Float32, 2)},
		Output:    []*onnxpb.ValueInfoProto{tensorVI("b", graph.Float32, "M", 5)},
		ValueInfo: []*onnxpb.ValueInfoProto{tensorVI("a", graph.Float32, 7)},
		Node:      []*onnxpb.NodeProto{node(testDomain, "Pair", []string{"x"}, []string{"a", "b"})},
	})
	g := mustLoad(t, m, Options{})
	a, b := g.Nodes[0].Outputs[0], g.Nodes[0].Outputs[1]
	if a.Type.String() != "f32[7]" || b.Type.String() != "f32[M,5]" {
		t.Errorf("a %s, b %s", a.Type, b.Type)
	}
}

func TestOmittedOptionalValues(t *testing.T) {
	m := model(&onnxpb.GraphProto{
		Input:  []*onnxpb.ValueInfoProto{tensorVI("x", graph.Float32, 2)},
		Output: []*onnxpb.ValueInfoProto{tensorVI("b", graph.Float32, 2)},
		Node: []*onnxpb.NodeProto{
			node(testDomain, "Pair", []string{"x", "", ""}, []string{"", "b", ""}),
		},
	})
	g := mustLoad(t, m, Options{})
	n := g.Nodes[0]
	if len(n.Inputs) != 1 || len(n.Outputs) != 2 || n.Outputs[0] != nil || n.Outputs[1] != g.Outputs[0] {
		t.Errorf("trailing omitted values should be trimmed, inner ones nil:\n%s", describe(g))
	}
}

func floatBytes(vals ...float32) []byte {
	b := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

// TestInitializerEncodings checks that typed fields and raw_data give the same
// bytes for every supported dtype.
func TestInitializerEncodings(t *testing.T) {
	le := binary.LittleEndian
	type tc struct {
		dt    graph.DType
		typed func(tp *onnxpb.TensorProto)
		raw   []byte
	}
	i16 := make([]byte, 4)
	le.PutUint16(i16, uint16(0xfffe)) // -2
	le.PutUint16(i16[2:], 7)
	f16 := make([]byte, 4)
	le.PutUint16(f16, graph.Float32ToHalf(1.5))
	le.PutUint16(f16[2:], graph.Float32ToHalf(-2))
	bf := make([]byte, 4)
	le.PutUint16(bf, graph.Float32ToBF16(1.5))
	le.PutUint16(bf[2:], graph.Float32ToBF16(-2))
	i32 := make([]byte, 8)
	le.PutUint32(i32, uint32(0xfffffffe))
	le.PutUint32(i32[4:], 7)
	i64 := make([]byte, 16)
	le.PutUint64(i64, uint64(math.MaxUint64-1))
	le.PutUint64(i64[8:], 7)
	f64 := make([]byte, 16)
	le.PutUint64(f64, math.Float64bits(1.5))
	le.PutUint64(f64[8:], math.Float64bits(-2))
	u32 := make([]byte, 8)
	le.PutUint32(u32, 0xffffffff)
	le.PutUint32(u32[4:], 7)
	cases := []tc{
		{graph.Float32, func(tp *onnxpb.TensorProto) { tp.FloatData = []float32{1.5, -2} }, floatBytes(1.5, -2)},
		{graph.Float16, func(tp *onnxpb.TensorProto) {
			tp.Int32Data = []int32{int32(graph.Float32ToHalf(1.5)), int32(graph.Float32ToHalf(-2))}
		}, f16},
		{graph.BFloat16, func(tp *onnxpb.TensorProto) {
			tp.Int32Data = []int32{int32(graph.Float32ToBF16(1.5)), int32(graph.Float32ToBF16(-2))}
		}, bf},
		{graph.Float64, func(tp *onnxpb.TensorProto) { tp.DoubleData = []float64{1.5, -2} }, f64},
		{graph.Int8, func(tp *onnxpb.TensorProto) { tp.Int32Data = []int32{-2, 7} }, []byte{0xfe, 7}},
		{graph.Uint8, func(tp *onnxpb.TensorProto) { tp.Int32Data = []int32{254, 7} }, []byte{0xfe, 7}},
		{graph.Int16, func(tp *onnxpb.TensorProto) { tp.Int32Data = []int32{-2, 7} }, i16},
		{graph.Int32, func(tp *onnxpb.TensorProto) { tp.Int32Data = []int32{-2, 7} }, i32},
		{graph.Int64, func(tp *onnxpb.TensorProto) { tp.Int64Data = []int64{-2, 7} }, i64},
		{graph.Uint32, func(tp *onnxpb.TensorProto) { tp.Uint64Data = []uint64{0xffffffff, 7} }, u32},
		{graph.Bool, func(tp *onnxpb.TensorProto) { tp.Int32Data = []int32{1, 0} }, []byte{1, 0}},
	}
	for _, c := range cases {
		t.Run(c.dt.String(), func(t *testing.T) {
			typed := &onnxpb.TensorProto{Name: proto.String("w"), Dims: []int64{2}, DataType: proto.Int32(int32(c.dt))}
			c.typed(typed)
			raw := &onnxpb.TensorProto{Name: proto.String("w"), Dims: []int64{2}, DataType: proto.Int32(int32(c.dt)), RawData: c.raw}
			for _, tp := range []*onnxpb.TensorProto{typed, raw} {
				m := model(&onnxpb.GraphProto{
					Initializer: []*onnxpb.TensorProto{tp},
					Output:      []*onnxpb.ValueInfoProto{tensorVI("w", c.dt, 2)},
				})
				g := mustLoad(t, m, Options{})
				if len(g.Consts) != 1 || g.Outputs[0] != g.Consts[0] {
					t.Fatalf("want the initializer as const and output:\n%s", describe(g))
				}
				ct := g.Consts[0].Const
				if ct.DType != c.dt || !equalInts(ct.Shape, []int64{2}) || string(ct.Data) != string(c.raw) {
					t.Errorf("got %s%v %x, want %x", ct.DType, ct.Shape, ct.Data, c.raw)
				}
			}
		})
	}
}

func TestInitializerAlsoInputIsConst(t *testing.T) {
	m := model(&onnxpb.GraphProto{
		Input:       []*onnxpb.ValueInfoProto{tensorVI("x", graph.Float32, 2), tensorVI("w", graph.Float32, 2)},
		Initializer: []*onnxpb.TensorProto{{Name: proto.String("w"), Dims: []int64{2}, DataType: proto.Int32(1), FloatData: []float32{1, 2}}},
		Output:      []*onnxpb.ValueInfoProto{tensorVI("y", graph.Float32, 2)},
		Node:        []*onnxpb.NodeProto{node(testDomain, "Pair", []string{"x", "w"}, []string{"y"})},
	})
	g := mustLoad(t, m, Options{})
	if len(g.Inputs) != 1 || g.Inputs[0].Name != "x" || len(g.Consts) != 1 || g.Nodes[0].Inputs[1] != g.Consts[0] {
		t.Fatalf("w should be a constant, not an input:\n%s", describe(g))
	}
}

func TestConstantNodes(t *testing.T) {
	tensorAttr := &onnxpb.AttributeProto{Name: proto.String("value"), Type: attrT(onnxpb.AttributeProto_TENSOR),
		T: &onnxpb.TensorProto{Dims: []int64{2}, DataType: proto.Int32(1), FloatData: []float32{3, 4}}}
	ints := &onnxpb.AttributeProto{Name: proto.String("value_ints"), Type: attrT(onnxpb.AttributeProto_INTS), Ints: []int64{5, 6, 7}}
	f := &onnxpb.AttributeProto{Name: proto.String("value_float"), Type: attrT(onnxpb.AttributeProto_FLOAT), F: proto.Float32(0.5)}
	m := model(&onnxpb.GraphProto{
		Output: []*onnxpb.ValueInfoProto{tensorVI("c", graph.Float32, 2), tensorVI("d", graph.Int64, 3), tensorVI("e", graph.Float32)},
		Node: []*onnxpb.NodeProto{
			node("", "Constant", nil, []string{"c"}, tensorAttr),
			node("", "Constant", nil, []string{"d"}, ints),
			node("", "Constant", nil, []string{"e"}, f),
		},
	})
	g := mustLoad(t, m, Options{})
	if len(g.Nodes) != 0 || len(g.Consts) != 3 {
		t.Fatalf("Constant nodes should become consts:\n%s", describe(g))
	}
	if got := g.Consts[1].Const; got.DType != graph.Int64 || !equalInts(got.Shape, []int64{3}) {
		t.Errorf("value_ints: %s%v", got.DType, got.Shape)
	}
	if got := g.Consts[2].Const; got.DType != graph.Float32 || len(got.Shape) != 0 || string(got.Data) != string(floatBytes(0.5)) {
		t.Errorf("value_float: %s%v %x", got.DType, got.Shape, got.Data)
	}

	g = mustLoad(t, m, Options{KeepConstantNodes: true, AllowUnsupported: true})
	if len(g.Nodes) != 3 || g.Nodes[0].Op != "Constant" || g.Nodes[0].AttrTensor("value") == nil {
		t.Fatalf("KeepConstantNodes:\n%s", describe(g))
	}
	// Declared output types stay when the Constant rule is missing or fails.
	if g.Nodes[1].Outputs[0].Type.String() != "i64[3]" {
		t.Errorf("declared type lost: %s", g.Nodes[1].Outputs[0].Type)
	}
}

func TestUnsupportedOp(t *testing.T) {
	m := model(&onnxpb.GraphProto{
		Input:     []*onnxpb.ValueInfoProto{tensorVI("x", graph.Float32, 2)},
		Output:    []*onnxpb.ValueInfoProto{tensorVI("z", graph.Float32, 2)},
		ValueInfo: []*onnxpb.ValueInfoProto{tensorVI("y", graph.Float32, 9)},
		Node: []*onnxpb.NodeProto{
			node(testDomain, "NoSuchOp", []string{"x"}, []string{"y"}),
			node(testDomain, "Same", []string{"y"}, []string{"z"}),
		},
	})
	_, err := loadModel(t, m, Options{})
	var ue *graph.UnsupportedOpError
	if !errors.As(err, &ue) || ue.Op != "NoSuchOp" || ue.Domain != testDomain || ue.Opset != 1 || ue.Node != "n_y" {
		t.Fatalf("want UnsupportedOpError for NoSuchOp, got %v", err)
	}
	wantErr(t, err, "onnx model: ", "NoSuchOp", testDomain, "n_y")

	g := mustLoad(t, m, Options{AllowUnsupported: true})
	if g.Nodes[0].Outputs[0].Type.String() != "f32[9]" || g.Nodes[1].Outputs[0].Type.String() != "f32[9]" {
		t.Errorf("AllowUnsupported should keep declared types and go on inferring:\n%s", describe(g))
	}

	// A rule failure is not an unsupported op, but AllowUnsupported tolerates it.
	m.Graph.Node[0].OpType = proto.String("Fail")
	_, err = loadModel(t, m, Options{})
	wantErr(t, err, "rule refuses", "n_y")
	if errors.As(err, &ue) {
		t.Errorf("rule failure reported as unsupported op")
	}
	if _, err := loadModel(t, m, Options{AllowUnsupported: true}); err != nil {
		t.Error(err)
	}

	m.Graph.Node[0].OpType = proto.String("Boom")
	_, err = loadModel(t, m, Options{})
	wantErr(t, err, "n_y", "Boom", "shape rule panicked", "index out of range")
}

func TestSubgraphAttribute(t *testing.T) {
	body := &onnxpb.GraphProto{Name: proto.String("then")}
	m := model(&onnxpb.GraphProto{
		Input:  []*onnxpb.ValueInfoProto{tensorVI("c", graph.Bool)},
		Output: []*onnxpb.ValueInfoProto{tensorVI("y", graph.Float32, 2)},
		Node: []*onnxpb.NodeProto{node("", "If", []string{"c"}, []string{"y"},
			&onnxpb.AttributeProto{Name: proto.String("then_branch"), Type: attrT(onnxpb.AttributeProto_GRAPH), G: body})},
	})
	_, err := loadModel(t, m, Options{})
	var ue *graph.UnsupportedOpError
	if !errors.As(err, &ue) || ue.Op != "If" {
		t.Fatalf("want UnsupportedOpError for If, got %v", err)
	}
	wantErr(t, err, "subgraph", "then_branch")
	g := mustLoad(t, m, Options{AllowUnsupported: true})
	if len(g.Nodes) != 1 || g.Nodes[0].Outputs[0].Type.String() != "f32[2]" {
		t.Errorf("AllowUnsupported:\n%s", describe(g))
	}
}

// TestLoadErrors covers malformed models: each must be one clear error.
func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(m *onnxpb.ModelProto)
		want   []string
	}{
		{"old opset", func(m *onnxpb.ModelProto) { m.OpsetImport[0].Version = proto.Int64(6) }, []string{"opset 6", "7"}},
		{"unimported domain", func(m *onnxpb.ModelProto) { m.OpsetImport = m.OpsetImport[:1] }, []string{"n_y", testDomain, "does not import"}},
		{"undefined input", func(m *onnxpb.ModelProto) { m.Graph.Node[0].Input[0] = "nope" }, []string{"n_y", `"nope"`, "not defined"}},
		{"undefined output", func(m *onnxpb.ModelProto) { m.Graph.Output[0].Name = proto.String("zz") }, []string{`"zz"`, "not defined"}},
		{"cycle", func(m *onnxpb.ModelProto) {
			m.Graph.Node = []*onnxpb.NodeProto{
				node(testDomain, "Pair", []string{"x", "b"}, []string{"a"}),
				node(testDomain, "Same", []string{"a"}, []string{"b"}),
				node(testDomain, "Same", []string{"b"}, []string{"y"}),
			}
		}, []string{"cycle"}},
		{"defined twice", func(m *onnxpb.ModelProto) {
			m.Graph.Node = append(m.Graph.Node, node(testDomain, "Same", []string{"x"}, []string{"y"}))
		}, []string{`"y"`, "already defined"}},
		{"output shadows input", func(m *onnxpb.ModelProto) { m.Graph.Node[0].Output[0] = "x" }, []string{`"x"`, "already defined"}},
		{"no op type", func(m *onnxpb.ModelProto) { m.Graph.Node[0].OpType = nil }, []string{"invalid op_type"}},
		{"newline op type", func(m *onnxpb.ModelProto) { m.Graph.Node[0].OpType = proto.String("A\nB") }, []string{"invalid op_type", `"A\nB"`}},
		{"attr type mismatch", func(m *onnxpb.ModelProto) {
			m.Graph.Node[0].Attribute = []*onnxpb.AttributeProto{{Name: proto.String("axis"), Type: attrT(onnxpb.AttributeProto_INT), F: proto.Float32(1)}}
		}, []string{`"axis"`, "INT", "no INT value"}},
		{"attr ints with floats", func(m *onnxpb.ModelProto) {
			m.Graph.Node[0].Attribute = []*onnxpb.AttributeProto{{Name: proto.String("perm"), Type: attrT(onnxpb.AttributeProto_INTS), Floats: []float32{1}}}
		}, []string{`"perm"`, "INTS"}},
		{"attr twice", func(m *onnxpb.ModelProto) {
			m.Graph.Node[0].Attribute = []*onnxpb.AttributeProto{intAttr("a", 1), intAttr("a", 2)}
		}, []string{`"a"`, "twice"}},
		{"attr ref in main graph", func(m *onnxpb.ModelProto) {
			m.Graph.Node[0].Attribute = []*onnxpb.AttributeProto{refAttr("a", "b", onnxpb.AttributeProto_INT)}
		}, []string{`"a"`, "function bodies"}},
		{"sequence input", func(m *onnxpb.ModelProto) {
			m.Graph.Input[0].Type = &onnxpb.TypeProto{Value: &onnxpb.TypeProto_SequenceType{SequenceType: &onnxpb.TypeProto_Sequence{}}}
		}, []string{`"x"`, "sequence"}},
		{"string input", func(m *onnxpb.ModelProto) {
			m.Graph.Input[0] = tensorVI("x", graph.String, 2)
		}, []string{`"x"`, "STRING"}},
		{"absurd dims", func(m *onnxpb.ModelProto) {
			m.Graph.Input[0] = tensorVI("x", graph.Float32, 1<<20, 1<<20)
		}, []string{`"x"`, "more than"}},
		{"huge rank", func(m *onnxpb.ModelProto) {
			dims := make([]any, 100)
			for i := range dims {
				dims[i] = 1
			}
			m.Graph.Input[0] = tensorVI("x", graph.Float32, dims...)
		}, []string{`"x"`, "rank 100"}},
		{"huge rank initializer", func(m *onnxpb.ModelProto) {
			m.Graph.Initializer = []*onnxpb.TensorProto{{Name: proto.String("w"), Dims: make([]int64, 65), DataType: proto.Int32(1)}}
		}, []string{`"w"`, "rank 65"}},
		{"negative dim", func(m *onnxpb.ModelProto) { m.Graph.Input[0] = tensorVI("x", graph.Float32, -3) }, []string{"negative"}},
		{"absurd initializer", func(m *onnxpb.ModelProto) {
			m.Graph.Initializer = []*onnxpb.TensorProto{{Name: proto.String("w"), Dims: []int64{1 << 40}, DataType: proto.Int32(1), RawData: []byte{1, 2, 3, 4}}}
		}, []string{`"w"`, "more than"}},
		{"initializer short raw", func(m *onnxpb.ModelProto) {
			m.Graph.Initializer = []*onnxpb.TensorProto{{Name: proto.String("w"), Dims: []int64{1 << 20}, DataType: proto.Int32(1), RawData: []byte{1, 2, 3, 4}}}
		}, []string{`"w"`, "raw_data has 4 bytes, want 4194304"}},
		{"initializer few values", func(m *onnxpb.ModelProto) {
			m.Graph.Initializer = []*onnxpb.TensorProto{{Name: proto.String("w"), Dims: []int64{3}, DataType: proto.Int32(1), FloatData: []float32{1}}}
		}, []string{`"w"`, "1 values, want 3"}},
		{"initializer string", func(m *onnxpb.ModelProto) {
			m.Graph.Initializer = []*onnxpb.TensorProto{{Name: proto.String("w"), DataType: proto.Int32(8), StringData: [][]byte{[]byte("a")}}}
		}, []string{`"w"`, "STRING"}},
		{"initializer float8", func(m *onnxpb.ModelProto) {
			m.Graph.Initializer = []*onnxpb.TensorProto{{Name: proto.String("w"), DataType: proto.Int32(17), RawData: []byte{1}}}
		}, []string{`"w"`, "FLOAT8E4M3FN"}},
		{"initializer twice", func(m *onnxpb.ModelProto) {
			w := &onnxpb.TensorProto{Name: proto.String("w"), DataType: proto.Int32(1), FloatData: []float32{1}}
			m.Graph.Initializer = []*onnxpb.TensorProto{w, w}
		}, []string{`"w"`, "twice"}},
		{"sparse initializer", func(m *onnxpb.ModelProto) {
			m.Graph.SparseInitializer = []*onnxpb.SparseTensorProto{{Values: &onnxpb.TensorProto{Name: proto.String("sp")}}}
		}, []string{"sparse", `"sp"`}},
		{"external without folder", func(m *onnxpb.ModelProto) {
			loc := onnxpb.TensorProto_EXTERNAL
			m.Graph.Initializer = []*onnxpb.TensorProto{{Name: proto.String("w"), DataType: proto.Int32(1), DataLocation: &loc,
				ExternalData: []*onnxpb.StringStringEntryProto{{Key: proto.String("location"), Value: proto.String("w.bin")}}}}
		}, []string{`"w"`, "no model folder"}},
		{"no graph", func(m *onnxpb.ModelProto) { m.Graph = nil }, []string{"no graph"}},
		{"input twice", func(m *onnxpb.ModelProto) { m.Graph.Input = append(m.Graph.Input, m.Graph.Input[0]) }, []string{`"x"`, "twice"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := sameModel()
			c.mutate(m)
			_, err := loadModel(t, m, Options{})
			wantErr(t, err, append([]string{"onnx model: "}, c.want...)...)
		})
	}
}

func TestLoadGarbage(t *testing.T) {
	good := marshal(t, sameModel())
	inputs := map[string][]byte{
		"empty":       nil,
		"text":        []byte("this is not an onnx model\n"),
		"truncated":   good[:len(good)/2],
		"huge length": {0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2}, // field 7 (graph), 4 GiB declared length
	}
	for name, data := range inputs {
		t.Run(name, func(t *testing.T) {
			_, err := Load(data, "", Options{})
			wantErr(t, err, "onnx model: ")
		})
	}
}

func TestLoadFileErrorPrefix(t *testing.T) {
	path := t.TempDir() + "/bad.onnx"
	writeFile(t, path, []byte("garbage"))
	_, err := LoadFile(path, Options{})
	wantErr(t, err, path+": ")
	if !strings.HasPrefix(err.Error(), path+": ") {
		t.Errorf("error %q not prefixed with the path", err)
	}
}

func TestWeightsOption(t *testing.T) {
	m := model(&onnxpb.GraphProto{
		Initializer: []*onnxpb.TensorProto{{Name: proto.String("w"), Dims: []int64{2}, DataType: proto.Int32(1)}},
		Output:      []*onnxpb.ValueInfoProto{tensorVI("w", graph.Float32, 2)},
	})
	_, err := loadModel(t, m, Options{})
	wantErr(t, err, `"w"`, "has no data", "Options.Weights")
	w := graph.NewTensorF32([]int64{2}, []float32{1, 2})
	g := mustLoad(t, m, Options{Weights: map[string]*graph.Tensor{"w": w}})
	if g.Consts[0].Const != w {
		t.Error("supplied weight not used")
	}
	_, err = loadModel(t, m, Options{Weights: map[string]*graph.Tensor{"w": graph.NewTensorF32([]int64{3}, []float32{1, 2, 3})}})
	wantErr(t, err, `"w"`, "declares f32[2]")
}

func TestLineError(t *testing.T) {
	inner := &graph.UnsupportedOpError{Op: "X", Node: "n", Reason: "line one\nline two"}
	err := error(&lineError{prefix: "m.onnx", err: inner})
	wantErr(t, err, `m.onnx: `, `line one\nline two`)
	var ue *graph.UnsupportedOpError
	if !errors.As(err, &ue) || ue != inner {
		t.Error("lineError must unwrap to the original error")
	}
}

func TestWrongAttributeType(t *testing.T) {
	m := model(&onnxpb.GraphProto{
		Input:  []*onnxpb.ValueInfoProto{tensorVI("x", graph.Float32, 2, 3)},
		Output: []*onnxpb.ValueInfoProto{tensorVI("y", graph.Float32, 3, 2)},
		Node:   []*onnxpb.NodeProto{node("", "Transpose", []string{"x"}, []string{"y"}, intAttr("perm", 1))},
	})
	_, err := loadModel(t, m, Options{AllowUnsupported: true})
	wantErr(t, err, `"n_y"`, "Transpose", `"perm"`, "type int, want ints")
	m.Graph.Node[0].Attribute[0] = &onnxpb.AttributeProto{Name: proto.String("perm"), Type: attrT(onnxpb.AttributeProto_INTS), Ints: []int64{1, 0}}
	if _, err := loadModel(t, m, Options{AllowUnsupported: true}); err != nil {
		t.Error(err)
	}
}

func TestDuplicateNodeNames(t *testing.T) {
	m := model(&onnxpb.GraphProto{
		Input:  []*onnxpb.ValueInfoProto{tensorVI("x", graph.Float32, 2)},
		Output: []*onnxpb.ValueInfoProto{tensorVI("z", graph.Float32, 2)},
		Node: []*onnxpb.NodeProto{
			node(testDomain, "Same", []string{"x"}, []string{"y"}),
			node(testDomain, "Same", []string{"y"}, []string{"y_1"}),
			node(testDomain, "Same", []string{"y_1"}, []string{"z"}),
		},
	})
	for _, n := range m.Graph.Node {
		n.Name = proto.String("same")
	}
	m.Graph.Node[2].Name = proto.String("same_1")
	g := mustLoad(t, m, Options{})
	var names []string
	for _, n := range g.Nodes {
		names = append(names, n.Name)
	}
	if strings.Join(names, ",") != "same,same_2,same_1" {
		t.Errorf("node names %v", names)
	}
	if err := graph.Verify(g); err != nil {
		t.Error(err)
	}
}

// TestVersionsRefused: IR versions and ai.onnx opsets outside what the
// importer knows are refused with the version in the message (they were
// accepted silently).
func TestVersionsRefused(t *testing.T) {
	for _, ir := range []int64{0, -5, 99, MaxIRVersion + 1} {
		m := sameModel()
		m.IrVersion = proto.Int64(ir)
		_, err := loadModel(t, m, Options{})
		wantErr(t, err, fmt.Sprintf("IR version %d is not supported", ir))
	}
	m := sameModel()
	m.IrVersion = nil
	_, err := loadModel(t, m, Options{})
	wantErr(t, err, "IR version 0")
	for _, v := range []int64{99, MaxDefaultOpset + 1} {
		m := sameModel()
		m.OpsetImport[0] = opset("", v)
		_, err := loadModel(t, m, Options{})
		wantErr(t, err, fmt.Sprintf("ai.onnx opset %d is newer", v))
	}
	m = sameModel()
	m.IrVersion = proto.Int64(MaxIRVersion)
	m.OpsetImport[0] = opset("", MaxDefaultOpset)
	mustLoad(t, m, Options{})
}
