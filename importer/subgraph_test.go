package importer

import (
	"strings"
	"testing"

	"github.com/of3c/of3c/importer/onnxpb"
	"google.golang.org/protobuf/proto"
)

// of3c.ChunkMap bodies nested deeper than maxSubgraphDepth are refused with
// a message, not loaded by unbounded recursion.
func TestChunkMapNestingBounded(t *testing.T) {
	vi := func(name string) *onnxpb.ValueInfoProto {
		return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
			TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)),
				Shape: &onnxpb.TensorShapeProto{Dim: []*onnxpb.TensorShapeProto_Dimension{
					{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: 4}}}}}}}}
	}
	body := &onnxpb.GraphProto{Name: proto.String("leaf"), Input: []*onnxpb.ValueInfoProto{vi("x")},
		Output: []*onnxpb.ValueInfoProto{vi("y")},
		Node:   []*onnxpb.NodeProto{{OpType: proto.String("Relu"), Input: []string{"x"}, Output: []string{"y"}}}}
	for i := 0; i < 2*maxSubgraphDepth; i++ {
		body = &onnxpb.GraphProto{Name: proto.String("level"), Input: []*onnxpb.ValueInfoProto{vi("x")},
			Output: []*onnxpb.ValueInfoProto{vi("y")},
			Node: []*onnxpb.NodeProto{{OpType: proto.String("ChunkMap"), Domain: proto.String("of3c"),
				Input: []string{"x"}, Output: []string{"y"},
				Attribute: []*onnxpb.AttributeProto{{Name: proto.String("body"), Type: onnxpb.AttributeProto_GRAPH.Enum(), G: body}}}}}
	}
	m := &onnxpb.ModelProto{IrVersion: proto.Int64(8), Graph: body, OpsetImport: []*onnxpb.OperatorSetIdProto{
		{Domain: proto.String(""), Version: proto.Int64(17)}, {Domain: proto.String("of3c"), Version: proto.Int64(1)}}}
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Load(data, t.TempDir(), Options{})
	if err == nil || !strings.Contains(err.Error(), "nested more than") {
		t.Fatalf("Load of %d nested ChunkMap bodies: %v; want the nesting refused", 2*maxSubgraphDepth, err)
	}
}
