// Package onnxexport writes an optimized graph as a self-contained ONNX
// model: every fused op of the of3c domain (docs/ops.md) becomes a call of a
// model-local ONNX function, in the of3c domain, whose body is the op's
// decomposition into standard ONNX ops. onnx.checker accepts the result and
// onnxruntime runs it (inlining the functions), so the compiled graph can be
// viewed (Netron) and its numbers reproduced outside of3c.
//
// ONNX functions take no attribute values unless declared and referenced,
// and the decompositions depend on input ranks, dtypes and which optional
// inputs are present; so each distinct (op, inputs, attributes) signature
// gets its own specialised function (Attention, Attention_2, …) with the
// attribute values folded into its body. The call keeps the node's
// attributes (declared by the function, unused by its body) for viewers.
// Chunking attributes change how of3c evaluates an op, never its result, so
// the bodies ignore them.
package onnxexport

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/importer"
	"github.com/of3c/of3c/importer/onnxpb"
)

// MinOpset is the lowest ai.onnx opset the function bodies are written for.
const MinOpset = 13

// Options control Export.
type Options struct {
	ProducerVersion string
	// ExternalData, when set, receives the constants larger than 1 KiB
	// (ONNX external data, aligned), and the model names ExternalLocation,
	// a file name relative to the model's folder. Needed above 2 GiB of
	// weights, protobuf's limit for one message.
	ExternalData     io.Writer
	ExternalLocation string
}

// Export encodes g with its weights inline and a function for every fused
// op signature. The graph must have ranked, typed inputs on every fused op.
func Export(g *graph.Graph, opts Options) ([]byte, error) {
	g, err := inlineChunkMaps(g)
	if err != nil {
		return nil, fmt.Errorf("onnxexport: %w", err)
	}
	var raw []byte
	raw, err = importer.Encode(g, importer.EncodeOptions{ProducerName: "of3c", ProducerVersion: opts.ProducerVersion,
		ExternalData: opts.ExternalData, ExternalLocation: opts.ExternalLocation})
	if err != nil {
		return nil, err
	}
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(raw, m); err != nil {
		return nil, fmt.Errorf("onnxexport: re-reading the encoded model: %w", err)
	}
	if len(m.Graph.Node) != len(g.Nodes) {
		return nil, fmt.Errorf("onnxexport: encoder wrote %d nodes for %d", len(m.Graph.Node), len(g.Nodes))
	}
	opset := int64(0)
	for _, o := range m.OpsetImport {
		if o.GetDomain() == "" || o.GetDomain() == "ai.onnx" {
			opset = o.GetVersion()
		}
	}
	e := &exporter{opset: opset, bySig: map[string]string{}, count: map[string]int{}}
	for i, n := range g.Nodes {
		if n.Domain != graph.FusedDomain {
			continue
		}
		if opset < MinOpset {
			return nil, fmt.Errorf("onnxexport: the model imports ai.onnx opset %d; the fused-op functions need ≥ %d", opset, MinOpset)
		}
		if err := e.call(n, m.Graph.Node[i]); err != nil {
			return nil, fmt.Errorf("onnxexport: node %s: %w", n, err)
		}
	}
	m.Functions = e.funcs
	if len(e.funcs) > 0 {
		has := false
		for _, o := range m.OpsetImport {
			has = has || o.GetDomain() == graph.FusedDomain
		}
		if !has {
			m.OpsetImport = append(m.OpsetImport, &onnxpb.OperatorSetIdProto{Domain: proto.String(graph.FusedDomain), Version: proto.Int64(1)})
		}
	}
	return proto.Marshal(m)
}

type exporter struct {
	opset int64
	funcs []*onnxpb.FunctionProto
	bySig map[string]string // signature → function name
	count map[string]int    // op → functions made
}

// call rewrites one fused node into a call of its specialised function.
func (e *exporter) call(n *graph.Node, np *onnxpb.NodeProto) error {
	var present []int
	for k, v := range n.Inputs {
		if v != nil {
			present = append(present, k)
		}
	}
	sig, err := signature(n, present)
	if err != nil {
		return err
	}
	name, ok := e.bySig[sig]
	if !ok {
		b := &body{}
		var inNames []string
		for _, k := range present {
			inNames = append(inNames, fmt.Sprintf("in%d", k))
		}
		b.in = map[int]string{}
		for _, k := range present {
			b.in[k] = fmt.Sprintf("in%d", k)
		}
		switch n.Op {
		case "Attention":
			err = b.attention(n)
		case "SwiGLU":
			err = b.swiglu(n)
		case "OuterProductMean":
			err = b.outerProductMean(n)
		case "TriangleMultiplication":
			err = b.triangleMul(n)
		default:
			err = fmt.Errorf("no ONNX decomposition for of3c.%s", n.Op)
		}
		if err != nil {
			return err
		}
		e.count[n.Op]++
		name = n.Op
		if c := e.count[n.Op]; c > 1 {
			name = fmt.Sprintf("%s_%d", n.Op, c)
		}
		e.bySig[sig] = name
		e.funcs = append(e.funcs, &onnxpb.FunctionProto{
			Name:        proto.String(name),
			Domain:      proto.String(graph.FusedDomain),
			Input:       inNames,
			Output:      []string{"out"},
			Attribute:   n.AttrNames(),
			Node:        b.nodes,
			OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(e.opset)}},
			DocString:   proto.String(fmt.Sprintf("of3c.%s (docs/ops.md) as standard ONNX ops, for inputs %s", n.Op, sig)),
		})
	}
	np.OpType = proto.String(name)
	np.Domain = proto.String(graph.FusedDomain)
	var keep []string
	for _, in := range np.Input {
		if in != "" {
			keep = append(keep, in)
		}
	}
	np.Input = keep
	return nil
}

// signature names what a function body depends on: op, input positions,
// dtypes and shapes, and the attribute values.
func signature(n *graph.Node, present []int) (string, error) {
	var parts []string
	parts = append(parts, n.Op)
	for _, k := range present {
		v := n.Inputs[k]
		if !v.Type.Ranked || v.Type.DType == graph.Undefined {
			return "", fmt.Errorf("input %d (%s) has no known dtype and rank", k, v.Name)
		}
		parts = append(parts, fmt.Sprintf("%d:%s", k, v.Type))
	}
	for _, a := range n.AttrNames() {
		parts = append(parts, fmt.Sprintf("%s=%v", a, n.Attrs[a]))
	}
	return strings.Join(parts, " "), nil
}

// body builds a function body.
type body struct {
	in    map[int]string // input position → function input name
	nodes []*onnxpb.NodeProto
	n     int
}

func (b *body) op(opType string, inputs []string, attrs ...*onnxpb.AttributeProto) string {
	b.n++
	out := fmt.Sprintf("t%d_%s", b.n, strings.ToLower(opType))
	b.nodes = append(b.nodes, &onnxpb.NodeProto{OpType: proto.String(opType), Input: inputs, Output: []string{out}, Attribute: attrs})
	return out
}

// output renames the last node's output to the function output.
func (b *body) output(name string) {
	for _, n := range b.nodes {
		for i, in := range n.Input {
			if in == name {
				n.Input[i] = "out"
			}
		}
	}
	last := b.nodes[len(b.nodes)-1]
	if last.Output[0] != name {
		b.nodes = append(b.nodes, &onnxpb.NodeProto{OpType: proto.String("Identity"), Input: []string{name}, Output: []string{"out"}})
		return
	}
	last.Output[0] = "out"
}

func intAttr(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

func intsAttr(name string, v ...int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
}

func strAttr(name, v string) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_STRING.Enum(), S: []byte(v)}
}

// scalar is a Constant of dtype dt (f32 or f64) holding v.
func (b *body) scalar(dt graph.DType, v float64) string {
	var data []byte
	switch dt {
	case graph.Float64:
		data = binary.LittleEndian.AppendUint64(nil, math.Float64bits(v))
	default:
		data = binary.LittleEndian.AppendUint32(nil, math.Float32bits(float32(v)))
	}
	t := &onnxpb.TensorProto{DataType: proto.Int32(int32(dt)), RawData: data}
	return b.op("Constant", nil, &onnxpb.AttributeProto{Name: proto.String("value"), Type: onnxpb.AttributeProto_TENSOR.Enum(), T: t})
}

// ints is a 1-D int64 Constant.
func (b *body) ints(v ...int64) string {
	data := make([]byte, 0, 8*len(v))
	for _, x := range v {
		data = binary.LittleEndian.AppendUint64(data, uint64(x))
	}
	t := &onnxpb.TensorProto{DataType: proto.Int32(int32(graph.Int64)), Dims: []int64{int64(len(v))}, RawData: data}
	return b.op("Constant", nil, &onnxpb.AttributeProto{Name: proto.String("value"), Type: onnxpb.AttributeProto_TENSOR.Enum(), T: t})
}

func (b *body) cast(x string, to graph.DType) string {
	return b.op("Cast", []string{x}, intAttr("to", int64(to)))
}

// sliceLast takes [lo, hi) of the last axis.
func (b *body) sliceLast(x string, lo, hi int64) string {
	return b.op("Slice", []string{x, b.ints(lo), b.ints(hi), b.ints(-1)})
}

// accum is the accumulation type A of docs/ops.md.
func accum(t graph.DType) graph.DType {
	if t == graph.Float64 {
		return graph.Float64
	}
	return graph.Float32
}

func floatType(dt graph.DType) error {
	switch dt {
	case graph.Float32, graph.Float16, graph.BFloat16, graph.Float64:
		return nil
	}
	return fmt.Errorf("element type %s is not a float type", dt)
}

// lastStatic is the static size of v's last dim.
func lastStatic(v *graph.Value) (int64, error) {
	r := v.Type.Rank()
	if r < 1 || !v.Type.Shape[r-1].IsStatic() {
		return 0, fmt.Errorf("%s: the last dim of %s must be static", v.Name, v.Type)
	}
	return v.Type.Shape[r-1].Val, nil
}

func (b *body) attention(n *graph.Node) error {
	v := n.Inputs[2]
	T := v.Type.DType
	if err := floatType(T); err != nil {
		return err
	}
	A := accum(T)
	mode := n.AttrString("mode", graph.AttentionModeQK)
	var L string
	switch mode {
	case graph.AttentionModeQK:
		q, k := n.Input(0), n.Input(1)
		if q == nil || k == nil {
			return fmt.Errorf("mode qk without q or k")
		}
		c, err := lastStatic(q)
		if err != nil && n.Attrs["scale"].Kind == 0 {
			return err
		}
		scale := float64(n.AttrFloat("scale", float32(1/math.Sqrt(float64(c)))))
		rk := int64(k.Type.Rank())
		if rk < 2 || q.Type.Rank() < 2 {
			return fmt.Errorf("q and k need rank ≥ 2")
		}
		perm := make([]int64, rk)
		for i := range perm {
			perm[i] = int64(i)
		}
		perm[rk-1], perm[rk-2] = rk-2, rk-1
		kt := b.op("Transpose", []string{b.cast(b.in[1], A)}, intsAttr("perm", perm...))
		s := b.op("MatMul", []string{b.cast(b.in[0], A), kt})
		L = b.op("Mul", []string{s, b.scalar(A, scale)})
	case graph.AttentionModeBiasOnly:
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	for k := 3; k < len(n.Inputs); k++ {
		if n.Inputs[k] == nil {
			continue
		}
		if n.Inputs[k].Type.Rank() == 0 {
			continue // a rank-0 bias does not change a softmax (docs/ops.md)
		}
		ba := b.cast(b.in[k], A)
		isNegInf := b.op("IsInf", []string{ba}, intAttr("detect_positive", 0), intAttr("detect_negative", 1))
		fixed := b.op("Where", []string{isNegInf, b.scalar(A, -1e9), ba})
		if L == "" {
			L = fixed
		} else {
			L = b.op("Add", []string{L, fixed})
		}
	}
	if L == "" {
		return fmt.Errorf("bias_only attention without a bias of rank ≥ 1")
	}
	p := b.op("Softmax", []string{L}, intAttr("axis", -1))
	o := b.op("MatMul", []string{p, b.cast(b.in[2], A)})
	b.output(b.cast(o, T))
	return nil
}

func (b *body) swiglu(n *graph.Node) error {
	x, w := n.Inputs[0], n.Inputs[1]
	T := x.Type.DType
	if err := floatType(T); err != nil {
		return err
	}
	A := accum(T)
	h2, err := lastStatic(w)
	if err != nil {
		return err
	}
	if h2%2 != 0 {
		return fmt.Errorf("W's last dim %d is odd", h2)
	}
	xw := b.op("MatMul", []string{b.cast(b.in[0], A), b.cast(b.in[1], A)})
	a := b.sliceLast(xw, 0, h2/2)
	g := b.sliceLast(xw, h2/2, h2)
	y := b.op("Mul", []string{b.op("Mul", []string{a, b.op("Sigmoid", []string{a})}), g})
	if n.Input(2) != nil {
		y = b.op("MatMul", []string{y, b.cast(b.in[2], A)})
	}
	b.output(b.cast(y, T))
	return nil
}

func (b *body) outerProductMean(n *graph.Node) error {
	a, bb := n.Inputs[0], n.Inputs[1]
	T := a.Type.DType
	if err := floatType(T); err != nil {
		return err
	}
	A := accum(T)
	c, err := lastStatic(a)
	if err != nil {
		return err
	}
	e, err := lastStatic(bb)
	if err != nil {
		return err
	}
	r := a.Type.Rank()
	if r < 3 || bb.Type.Rank() != r {
		return fmt.Errorf("a and b need one rank ≥ 3")
	}
	o := b.op("Einsum", []string{b.cast(b.in[0], A), b.cast(b.in[1], A)}, strAttr("equation", "...sic,...sje->...ijce"))
	shape := make([]int64, r)
	shape[r-1] = c * e // [*, I, J] copied (0), then c·e
	flat := b.op("Reshape", []string{o, b.ints(shape...)})
	y := b.op("MatMul", []string{flat, b.cast(b.in[2], A)})
	if n.Input(3) != nil {
		y = b.op("Add", []string{y, b.cast(b.in[3], A)})
	}
	b.output(b.cast(y, T))
	return nil
}

func (b *body) triangleMul(n *graph.Node) error {
	x, w := n.Inputs[0], n.Inputs[2]
	T := x.Type.DType
	if err := floatType(T); err != nil {
		return err
	}
	A := accum(T)
	h4, err := lastStatic(w)
	if err != nil {
		return err
	}
	if h4%4 != 0 {
		return fmt.Errorf("W's last dim %d is not a multiple of 4", h4)
	}
	h := h4 / 4
	xw := b.op("MatMul", []string{b.cast(b.in[0], A), b.cast(b.in[2], A)})
	ap, ag := b.sliceLast(xw, 0, h), b.sliceLast(xw, h, 2*h)
	bp, bg := b.sliceLast(xw, 2*h, 3*h), b.sliceLast(xw, 3*h, 4*h)
	ga, gb := b.op("Sigmoid", []string{ag}), b.op("Sigmoid", []string{bg})
	if n.Input(1) != nil {
		m := b.cast(b.in[1], A)
		ga = b.op("Mul", []string{m, ga})
		gb = b.op("Mul", []string{m, gb})
	}
	av := b.op("Mul", []string{ga, ap})
	bv := b.op("Mul", []string{gb, bp})
	eq := "...ikh,...jkh->...ijh"
	switch d := n.AttrString("direction", "outgoing"); d {
	case "outgoing":
	case "incoming":
		eq = "...kih,...kjh->...ijh"
	default:
		return fmt.Errorf("unknown direction %q", d)
	}
	p := b.op("Einsum", []string{av, bv}, strAttr("equation", eq))
	b.output(b.cast(p, T))
	return nil
}
