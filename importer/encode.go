package importer

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/importer/onnxpb"
)

// EncodeOptions control how Encode writes constants and model fields.
type EncodeOptions struct {
	// OmitWeights writes constants larger than SmallConstBytes with their
	// dtype and dims but no data (a layout for artifacts that keep the
	// weights elsewhere; Load takes them back through Options.Weights).
	// Viewers show such a model; onnx.checker rejects it.
	OmitWeights bool

	// ExternalData, when set, receives the data of constants larger than
	// SmallConstBytes, each aligned to externalAlign bytes from the start of
	// what Encode writes; the model refers to it as ExternalLocation (a file
	// name relative to the model's folder). Ignored with OmitWeights.
	ExternalData     io.Writer
	ExternalLocation string

	// SmallConstBytes is the size up to which constants always stay inline
	// (shapes, axes, scalars that a reader needs to follow the graph);
	// 0 means 1024, ONNX's usual external-data threshold.
	SmallConstBytes int64

	// ProducerName and ProducerVersion fill the ModelProto fields; the
	// defaults are "of3c" and "".
	ProducerName    string
	ProducerVersion string
}

// encodeIRVersion is the ONNX IR version Encode writes: the schema of the
// generated types (ONNX 1.12), which every current runtime reads.
const encodeIRVersion = 8

// externalAlign aligns external tensors so a reader can map them directly.
const externalAlign = 64

// Encode writes g as a serialized ONNX ModelProto: ir_version 8, one
// opset_import per domain used (domain "of3c" version 1 for fused ops),
// constants as initializers with raw_data, and a value_info for every typed
// intermediate value, symbolic dims as dim_param. Metadata keys of the form
// "metadata.<key>" become metadata_props; domain, model_version, doc_string
// and graph_doc_string are restored from g.Meta.
func Encode(g *graph.Graph, opts EncodeOptions) ([]byte, error) {
	e := &encoder{opts: opts, names: map[string]*graph.Value{}}
	if e.opts.SmallConstBytes <= 0 {
		e.opts.SmallConstBytes = defaultSmallConstBytes
	}
	if e.opts.ExternalData != nil && !e.opts.OmitWeights {
		if err := checkLocation(e.opts.ExternalLocation); err != nil {
			return nil, fmt.Errorf("encode: %v", err)
		}
	}
	m, err := e.model(g)
	if err != nil {
		return nil, fmt.Errorf("encode: %v", err)
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(m)
}

// OmittedWeights returns the constants that Encode with opts leaves without
// data (OmitWeights), by name: exactly what Load needs back in
// Options.Weights. It is empty unless opts.OmitWeights is set.
func OmittedWeights(g *graph.Graph, opts EncodeOptions) map[string]*graph.Tensor {
	out := map[string]*graph.Tensor{}
	if !opts.OmitWeights {
		return out
	}
	limit := opts.SmallConstBytes
	if limit <= 0 {
		limit = defaultSmallConstBytes
	}
	add := func(v *graph.Value) {
		if v != nil && v.Const != nil && v.Producer == nil && int64(len(v.Const.Data)) > limit {
			out[v.Name] = v.Const
		}
	}
	// The same constants Encode writes: the listed ones and any a node or
	// output reads without their being listed.
	for _, c := range g.Consts {
		add(c)
	}
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			add(in)
		}
	}
	for _, o := range g.Outputs {
		add(o)
	}
	return out
}

// defaultSmallConstBytes is ONNX's usual external-data threshold.
const defaultSmallConstBytes = 1024

type encoder struct {
	opts    EncodeOptions
	names   map[string]*graph.Value // name → value, to refuse two values with one name
	written int64                   // bytes written to ExternalData
}

func (e *encoder) model(g *graph.Graph) (*onnxpb.ModelProto, error) {
	gp, err := e.graph(g)
	if err != nil {
		return nil, err
	}
	producer := e.opts.ProducerName
	if producer == "" {
		producer = "of3c"
	}
	m := &onnxpb.ModelProto{
		IrVersion:    proto.Int64(encodeIRVersion),
		ProducerName: proto.String(producer),
		Graph:        gp,
		OpsetImport:  opsetImports(g),
	}
	if e.opts.ProducerVersion != "" {
		m.ProducerVersion = proto.String(e.opts.ProducerVersion)
	}
	if v := g.Meta["domain"]; v != "" {
		m.Domain = proto.String(v)
	}
	if v := g.Meta["model_version"]; v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			m.ModelVersion = proto.Int64(n)
		}
	}
	if v := g.Meta["doc_string"]; v != "" {
		m.DocString = proto.String(v)
	}
	if v := g.Meta["graph_doc_string"]; v != "" {
		gp.DocString = proto.String(v)
	}
	for _, k := range sortedKeys(g.Meta) {
		if key, ok := strings.CutPrefix(k, "metadata."); ok {
			m.MetadataProps = append(m.MetadataProps, &onnxpb.StringStringEntryProto{Key: proto.String(key), Value: proto.String(g.Meta[k])})
		}
	}
	return m, nil
}

// opsetImports lists g.Opsets plus any domain that only nodes name (with the
// newest version they were written against; 1 for of3c's fused ops).
func opsetImports(g *graph.Graph) []*onnxpb.OperatorSetIdProto {
	versions := map[string]int64{}
	for d, v := range g.Opsets {
		versions[normDomain(d)] = v
	}
	for _, n := range g.Nodes {
		d := normDomain(n.Domain)
		if _, ok := g.Opsets[d]; ok {
			continue
		}
		v := n.Opset
		if v <= 0 {
			v = 1
		}
		if v > versions[d] {
			versions[d] = v
		}
	}
	var out []*onnxpb.OperatorSetIdProto
	for _, d := range sortedKeys(versions) {
		out = append(out, &onnxpb.OperatorSetIdProto{Domain: proto.String(d), Version: proto.Int64(versions[d])})
	}
	return out
}

// name checks that v has a name no other value uses and returns it.
func (e *encoder) name(v *graph.Value) (string, error) {
	if v.Name == "" {
		return "", errors.New("a value has no name")
	}
	if prev, ok := e.names[v.Name]; ok && prev != v {
		return "", fmt.Errorf("two values are named %q", v.Name)
	}
	e.names[v.Name] = v
	return v.Name, nil
}

func (e *encoder) graph(g *graph.Graph) (*onnxpb.GraphProto, error) {
	gp := &onnxpb.GraphProto{Name: proto.String(g.Name)}
	if g.Name == "" {
		gp.Name = proto.String("of3c")
	}
	for _, v := range g.Inputs {
		if v == nil {
			return nil, errors.New("nil graph input")
		}
		vi, err := e.valueInfo(v)
		if err != nil {
			return nil, err
		}
		gp.Input = append(gp.Input, vi)
	}

	// Constants: the graph's list, then any constant that a node or output
	// reads without being listed (a pass may have made it).
	seen := map[*graph.Value]bool{}
	addConst := func(v *graph.Value) error {
		if seen[v] {
			return nil
		}
		seen[v] = true
		tp, err := e.initializer(v)
		if err != nil {
			return err
		}
		gp.Initializer = append(gp.Initializer, tp)
		return nil
	}
	for _, c := range g.Consts {
		if c == nil || c.Const == nil {
			return nil, errors.New("a graph constant has no contents")
		}
		if err := addConst(c); err != nil {
			return nil, err
		}
	}
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			if in != nil && in.Const != nil && in.Producer == nil {
				if err := addConst(in); err != nil {
					return nil, err
				}
			}
		}
	}
	for _, o := range g.Outputs {
		if o != nil && o.Const != nil && o.Producer == nil {
			if err := addConst(o); err != nil {
				return nil, err
			}
		}
	}

	outputs := map[*graph.Value]bool{}
	for _, o := range g.Outputs {
		outputs[o] = true
	}
	for _, n := range g.Nodes {
		np, err := e.node(n)
		if err != nil {
			return nil, err
		}
		gp.Node = append(gp.Node, np)
		for _, o := range n.Outputs {
			if o == nil || outputs[o] || (o.Type.DType == graph.Undefined && !o.Type.Ranked) {
				continue
			}
			vi, err := e.valueInfo(o)
			if err != nil {
				return nil, err
			}
			gp.ValueInfo = append(gp.ValueInfo, vi)
		}
	}
	for _, o := range g.Outputs {
		if o == nil {
			return nil, errors.New("nil graph output")
		}
		vi, err := e.valueInfo(o)
		if err != nil {
			return nil, err
		}
		gp.Output = append(gp.Output, vi)
	}
	return gp, nil
}

func (e *encoder) valueInfo(v *graph.Value) (*onnxpb.ValueInfoProto, error) {
	name, err := e.name(v)
	if err != nil {
		return nil, err
	}
	tt := &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(v.Type.DType))}
	if v.Type.Ranked {
		tt.Shape = &onnxpb.TensorShapeProto{Dim: make([]*onnxpb.TensorShapeProto_Dimension, len(v.Type.Shape))}
		for i, d := range v.Type.Shape {
			dim := &onnxpb.TensorShapeProto_Dimension{}
			switch {
			case d.IsSymbolic():
				dim.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d.Sym}
			case d.IsStatic():
				dim.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d.Val}
			}
			tt.Shape.Dim[i] = dim
		}
	}
	vi := &onnxpb.ValueInfoProto{
		Name: proto.String(name),
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: tt}},
	}
	if v.Doc != "" {
		vi.DocString = proto.String(v.Doc)
	}
	return vi, nil
}

func (e *encoder) initializer(v *graph.Value) (*onnxpb.TensorProto, error) {
	name, err := e.name(v)
	if err != nil {
		return nil, err
	}
	t := v.Const
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("constant %q: %v", name, err)
	}
	big := int64(len(t.Data)) > e.opts.SmallConstBytes
	var tp *onnxpb.TensorProto
	switch {
	case big && e.opts.OmitWeights:
		tp = &onnxpb.TensorProto{Name: proto.String(name), Dims: append([]int64{}, t.Shape...), DataType: proto.Int32(int32(t.DType))}
	case big && e.opts.ExternalData != nil:
		tp, err = e.external(name, t)
	default:
		tp, err = tensorProto(name, t)
	}
	if err != nil {
		return nil, err
	}
	if v.Doc != "" {
		tp.DocString = proto.String(v.Doc)
	}
	return tp, nil
}

// external writes t's data to ExternalData and returns a TensorProto that
// points at it.
func (e *encoder) external(name string, t *graph.Tensor) (*onnxpb.TensorProto, error) {
	if !supportedTensorDType(int32(t.DType)) {
		return nil, fmt.Errorf("constant %q has unsupported element type %s", name, t.DType)
	}
	if pad := (externalAlign - e.written%externalAlign) % externalAlign; pad > 0 {
		if _, err := e.opts.ExternalData.Write(make([]byte, pad)); err != nil {
			return nil, fmt.Errorf("writing external data: %v", err)
		}
		e.written += pad
	}
	offset := e.written
	if _, err := e.opts.ExternalData.Write(t.Data); err != nil {
		return nil, fmt.Errorf("writing external data: %v", err)
	}
	e.written += int64(len(t.Data))
	loc := onnxpb.TensorProto_EXTERNAL
	kv := func(k, v string) *onnxpb.StringStringEntryProto {
		return &onnxpb.StringStringEntryProto{Key: proto.String(k), Value: proto.String(v)}
	}
	return &onnxpb.TensorProto{
		Name:         proto.String(name),
		Dims:         append([]int64{}, t.Shape...),
		DataType:     proto.Int32(int32(t.DType)),
		DataLocation: &loc,
		ExternalData: []*onnxpb.StringStringEntryProto{
			kv("location", e.opts.ExternalLocation),
			kv("offset", strconv.FormatInt(offset, 10)),
			kv("length", strconv.Itoa(len(t.Data))),
		},
	}, nil
}

func (e *encoder) node(n *graph.Node) (*onnxpb.NodeProto, error) {
	np := &onnxpb.NodeProto{OpType: proto.String(n.Op)}
	if n.Name != "" {
		np.Name = proto.String(n.Name)
	}
	if d := normDomain(n.Domain); d != "" {
		np.Domain = proto.String(d)
	}
	for _, in := range n.Inputs {
		if in == nil {
			np.Input = append(np.Input, "")
			continue
		}
		name, err := e.name(in)
		if err != nil {
			return nil, fmt.Errorf("node %s: %v", n, err)
		}
		np.Input = append(np.Input, name)
	}
	for _, o := range n.Outputs {
		if o == nil {
			np.Output = append(np.Output, "")
			continue
		}
		name, err := e.name(o)
		if err != nil {
			return nil, fmt.Errorf("node %s: %v", n, err)
		}
		np.Output = append(np.Output, name)
	}
	for _, k := range n.AttrNames() {
		if a := n.Attrs[k]; a.Kind == graph.AttrGraph && isChunkMap(n) && a.Graph != nil {
			// of3c.ChunkMap's body is a closed graph (it reads only its
			// own inputs and constants): written as a GRAPH attribute
			// with its own names and its small constants inline.
			sub := &encoder{opts: EncodeOptions{SmallConstBytes: e.opts.SmallConstBytes}, names: map[string]*graph.Value{}}
			gp, err := sub.graph(a.Graph)
			if err != nil {
				return nil, fmt.Errorf("node %s: attribute %q: %v", n, k, err)
			}
			np.Attribute = append(np.Attribute, &onnxpb.AttributeProto{Name: proto.String(k),
				Type: onnxpb.AttributeProto_GRAPH.Enum(), G: gp})
			continue
		}
		ap, err := attrProto(k, n.Attrs[k])
		if err != nil {
			return nil, fmt.Errorf("node %s: attribute %q: %v", n, k, err)
		}
		np.Attribute = append(np.Attribute, ap)
	}
	return np, nil
}

// isChunkMap: the one op whose subgraph attribute of3c writes and reads
// (If/Loop/Scan bodies capture outer values and are not supported).
func isChunkMap(n *graph.Node) bool {
	return normDomain(n.Domain) == graph.FusedDomain && n.Op == "ChunkMap"
}

func attrProto(name string, a graph.Attr) (*onnxpb.AttributeProto, error) {
	ap := &onnxpb.AttributeProto{Name: proto.String(name)}
	typ := func(t onnxpb.AttributeProto_AttributeType) *onnxpb.AttributeProto_AttributeType { return &t }
	switch a.Kind {
	case graph.AttrFloat:
		ap.Type, ap.F = typ(onnxpb.AttributeProto_FLOAT), proto.Float32(a.Float)
	case graph.AttrInt:
		ap.Type, ap.I = typ(onnxpb.AttributeProto_INT), proto.Int64(a.Int)
	case graph.AttrString:
		ap.Type, ap.S = typ(onnxpb.AttributeProto_STRING), []byte(a.Str)
	case graph.AttrTensor:
		tp, err := tensorProto("", a.Tensor)
		if err != nil {
			return nil, err
		}
		ap.Type, ap.T = typ(onnxpb.AttributeProto_TENSOR), tp
	case graph.AttrFloats:
		ap.Type, ap.Floats = typ(onnxpb.AttributeProto_FLOATS), append([]float32{}, a.Floats...)
	case graph.AttrInts:
		ap.Type, ap.Ints = typ(onnxpb.AttributeProto_INTS), append([]int64{}, a.Ints...)
	case graph.AttrStrings:
		ap.Type = typ(onnxpb.AttributeProto_STRINGS)
		for _, s := range a.Strings {
			ap.Strings = append(ap.Strings, []byte(s))
		}
	case graph.AttrGraph:
		return nil, errors.New("subgraph attributes cannot be written")
	default:
		return nil, fmt.Errorf("attribute of kind %s cannot be written", a.Kind)
	}
	return ap, nil
}
