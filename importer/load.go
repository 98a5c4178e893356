package importer

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/importer/onnxpb"
	"github.com/of3c/of3c/internal/safefile"
)

// Options control how a model is imported.
type Options struct {
	// AllowUnsupported imports models with ops of3c cannot handle (for
	// `of3c inspect`). Shape inference is then best effort: a node that
	// cannot be typed keeps the type declared in the model (value_info or
	// graph outputs), or stays untyped. Without it, the first such node
	// fails the import with a *graph.UnsupportedOpError (wrapped).
	AllowUnsupported bool

	// KeepConstantNodes keeps ONNX Constant nodes as nodes instead of
	// turning them into constants (see the package doc).
	KeepConstantNodes bool

	// Weights supplies the data of initializers stored without any (as
	// Encode writes them with EncodeOptions.OmitWeights), by name. Dtype and
	// shape must match the declaration.
	Weights map[string]*graph.Tensor

	// MaxElements bounds the element count of every tensor and static shape;
	// 0 means DefaultMaxElements.
	MaxElements int64

	// MaxExternalBytes bounds the external data read, all tensors together
	// (0: only the data files' sizes); a caller passes the memory the
	// process may use, so that a model pointing at a huge (sparse) file is
	// refused before the buffers are allocated. OnExternalFile, when set,
	// is called with the path of each external data file opened (e.g. so
	// that an output path can be checked against it).
	MaxExternalBytes int64
	OnExternalFile   func(path string)

	// depth counts the of3c.ChunkMap bodies being loaded around this graph
	// (closedSubgraph), bounded by maxSubgraphDepth.
	depth int
}

// maxSubgraphDepth bounds regions nested in regions' bodies: form-regions
// never nests them, and a hostile model must not make the loader recurse
// (re-encoding each level's subtree) thousands of levels deep.
const maxSubgraphDepth = 4

// minDefaultOpset is the oldest ai.onnx opset accepted. Older opsets have
// different semantics for basic ops (e.g. broadcast attributes on Add before
// opset 7) that no rule in of3c implements.
const minDefaultOpset = 7

// MaxIRVersion and MaxDefaultOpset are the newest ONNX IR version and
// ai.onnx opset the importer accepts (those of ONNX 1.23, the newest
// release of3c is tested against). Newer ones are refused with their
// version in the message, as onnxruntime refuses IR versions it does not
// know: a future opset may change an op's meaning.
const (
	MaxIRVersion    = 14
	MaxDefaultOpset = 28
)

// LoadFile imports the ONNX model at path. External data is read from the
// model's folder. Errors are one line, prefixed with the path; an unsupported
// op is a wrapped *graph.UnsupportedOpError (errors.As finds it).
func LoadFile(path string, opts Options) (*graph.Graph, error) {
	data, err := ReadModelFile(path)
	if err != nil {
		return nil, err
	}
	g, err := load(data, filepath.Dir(path), opts)
	if err != nil {
		return nil, &lineError{prefix: path, err: err}
	}
	return g, nil
}

// MaxModelBytes bounds the size of a model file: protobuf cannot encode a
// message of 2 GiB or more (larger ONNX models keep their weights in
// external data files).
const MaxModelBytes = 2<<30 - 1

// ReadModelFile reads an ONNX model file: a regular file (not a FIFO or a
// device such as /dev/zero) of at most MaxModelBytes.
func ReadModelFile(path string) ([]byte, error) {
	return safefile.ReadFile(path, MaxModelBytes, "protobuf's 2 GiB limit; larger models keep weights in external data")
}

// Load imports a serialized ModelProto. baseDir is the folder that external
// data locations are relative to ("" refuses external data). Errors are
// prefixed with "onnx model".
func Load(data []byte, baseDir string, opts Options) (*graph.Graph, error) {
	g, err := load(data, baseDir, opts)
	if err != nil {
		return nil, &lineError{prefix: "onnx model", err: err}
	}
	return g, nil
}

// lineError prefixes an error with the file it is about and keeps it on one
// line: names in a model are arbitrary strings, and a message that quotes one
// containing a newline (in a rule's error, say) must still be one line.
// Unwrap keeps errors.As working (e.g. for *graph.UnsupportedOpError).
type lineError struct {
	prefix string
	err    error
}

func (e *lineError) Error() string {
	msg := e.err.Error()
	if strings.ContainsAny(msg, "\r\n") {
		msg = strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(msg)
	}
	return e.prefix + ": " + msg
}

func (e *lineError) Unwrap() error { return e.err }

func load(data []byte, baseDir string, opts Options) (*graph.Graph, error) {
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("not an ONNX model: %v", err)
	}
	if m.Graph == nil {
		return nil, errors.New("not an ONNX model: no graph")
	}
	if opts.MaxElements <= 0 {
		opts.MaxElements = DefaultMaxElements
	}
	l := &loader{
		opts:   opts,
		tr:     tensorReader{maxElements: opts.MaxElements},
		values: map[string]*graph.Value{},
	}
	l.tr.ext = newExternalData(baseDir) // "" refuses external data
	l.tr.ext.maxBytes, l.tr.ext.onOpen = opts.MaxExternalBytes, opts.OnExternalFile
	defer l.tr.ext.close()
	return l.build(&m)
}

// loader holds the state of one import.
type loader struct {
	opts   Options
	tr     tensorReader
	g      *graph.Graph
	opsets map[string]int64
	funcs  map[funcKey]*function

	// values maps every defined value name to its value.
	values map[string]*graph.Value
	// declared holds types from value_info and graph outputs.
	declared map[string]graph.Type
	// used holds every value name so far, so inlined names stay unique.
	used map[string]bool
	// expanded counts nodes produced by inlining, to stop exponential blowup.
	expanded int
	// attrTensors caches converted tensor attributes (see attrTensor).
	attrTensors map[*onnxpb.TensorProto]*graph.Tensor
}

func normDomain(d string) string {
	if d == "ai.onnx" {
		return ""
	}
	return d
}

func (l *loader) build(m *onnxpb.ModelProto) (*graph.Graph, error) {
	gp := m.Graph
	l.g = &graph.Graph{Name: gp.GetName(), Opsets: map[string]int64{}, Meta: modelMeta(m)}

	if v := m.GetIrVersion(); v < 1 || v > MaxIRVersion {
		// As onnxruntime: a model from a newer ONNX may use what this
		// importer does not know; a missing or negative one is corrupt.
		return nil, fmt.Errorf("ONNX IR version %d is not supported (this of3c reads IR versions 1 to %d)", v, MaxIRVersion)
	}
	if err := l.readOpsets(m); err != nil {
		return nil, err
	}
	if err := l.readFunctions(m); err != nil {
		return nil, err
	}
	if len(gp.SparseInitializer) > 0 {
		return nil, fmt.Errorf("sparse initializer %q is not supported", sparseName(gp.SparseInitializer[0]))
	}

	// Initializers become constants. A graph input with the same name (the
	// IR < 4 convention, or an overridable default) is a constant too: of3c
	// compiles the weights in and never feeds them.
	for _, tp := range gp.Initializer {
		name := tp.GetName()
		if name == "" {
			return nil, errors.New("initializer without a name")
		}
		if l.values[name] != nil {
			return nil, fmt.Errorf("initializer %q is defined twice", name)
		}
		t, err := l.initializer(tp)
		if err != nil {
			return nil, err
		}
		v := &graph.Value{Name: name, Type: t.Type(), Const: t, Doc: tp.GetDocString()}
		l.g.Consts = append(l.g.Consts, v)
		l.values[name] = v
	}
	for _, vi := range gp.Input {
		name := vi.GetName()
		if name == "" {
			return nil, errors.New("graph input without a name")
		}
		if c := l.values[name]; c != nil {
			if c.Const == nil {
				return nil, fmt.Errorf("graph input %q is listed twice", name)
			}
			continue
		}
		t, err := l.valueType(vi, true)
		if err != nil {
			return nil, err
		}
		v := &graph.Value{Name: name, Type: t, Doc: vi.GetDocString()}
		l.g.Inputs = append(l.g.Inputs, v)
		l.values[name] = v
	}

	l.declared = map[string]graph.Type{}
	for _, vi := range gp.ValueInfo {
		if vi.GetName() == "" || vi.Type == nil || vi.Type.GetTensorType() == nil {
			continue // nothing of3c can use (e.g. a sequence type)
		}
		t, err := l.valueType(vi, false)
		if err != nil {
			return nil, err
		}
		l.declared[vi.GetName()] = t
	}
	for _, vi := range gp.Output {
		if vi.GetName() == "" {
			return nil, errors.New("graph output without a name")
		}
		if vi.Type == nil {
			continue
		}
		t, err := l.valueType(vi, true)
		if err != nil {
			return nil, err
		}
		l.declared[vi.GetName()] = t
	}

	// Names used anywhere in the main graph are reserved before inlining
	// invents new ones.
	l.used = map[string]bool{}
	for name := range l.values {
		l.used[name] = true
	}
	for _, np := range gp.Node {
		for _, o := range np.Output {
			l.used[o] = true
		}
	}
	if err := l.checkExpansion(gp.Node); err != nil {
		return nil, err
	}
	flat, err := l.expand(gp.Node, nil, 0)
	if err != nil {
		return nil, err
	}
	if err := l.buildNodes(flat); err != nil {
		return nil, err
	}

	for _, vi := range gp.Output {
		v := l.values[vi.GetName()]
		if v == nil {
			return nil, fmt.Errorf("graph output %q is not defined by any input, initializer or node", vi.GetName())
		}
		if v.Doc == "" {
			v.Doc = vi.GetDocString()
		}
		l.g.Outputs = append(l.g.Outputs, v)
	}
	if err := l.g.TopoSort(); err != nil {
		return nil, err
	}
	if err := l.infer(); err != nil {
		return nil, err
	}
	return l.g, nil
}

// modelMeta keeps the model-level fields worth showing (see the package doc
// for the keys).
func modelMeta(m *onnxpb.ModelProto) map[string]string {
	meta := map[string]string{"ir_version": strconv.FormatInt(m.GetIrVersion(), 10)}
	set := func(k, v string) {
		if v != "" {
			meta[k] = v
		}
	}
	set("producer_name", m.GetProducerName())
	set("producer_version", m.GetProducerVersion())
	set("domain", m.GetDomain())
	if m.ModelVersion != nil {
		meta["model_version"] = strconv.FormatInt(m.GetModelVersion(), 10)
	}
	set("doc_string", m.GetDocString())
	set("graph_doc_string", m.Graph.GetDocString())
	for _, kv := range m.MetadataProps {
		meta["metadata."+kv.GetKey()] = kv.GetValue()
	}
	return meta
}

func sparseName(sp *onnxpb.SparseTensorProto) string {
	if sp.GetValues() != nil {
		return sp.GetValues().GetName()
	}
	return ""
}

func (l *loader) readOpsets(m *onnxpb.ModelProto) error {
	l.opsets = l.g.Opsets
	for _, op := range m.OpsetImport {
		d := normDomain(op.GetDomain())
		if prev, ok := l.opsets[d]; ok && prev != op.GetVersion() {
			return fmt.Errorf("opset_import lists domain %q twice (versions %d and %d)", domainLabel(d), prev, op.GetVersion())
		}
		if op.GetVersion() <= 0 {
			return fmt.Errorf("opset_import for domain %q has version %d", domainLabel(d), op.GetVersion())
		}
		l.opsets[d] = op.GetVersion()
	}
	if v, ok := l.opsets[""]; ok && v < minDefaultOpset {
		return fmt.Errorf("ai.onnx opset %d is not supported (need %d or newer; upgrade the model with onnx.version_converter)", v, minDefaultOpset)
	}
	if v, ok := l.opsets[""]; ok && v > MaxDefaultOpset {
		return fmt.Errorf("ai.onnx opset %d is newer than this of3c knows (%d to %d); its ops may mean something else", v, minDefaultOpset, MaxDefaultOpset)
	}
	return nil
}

func domainLabel(d string) string {
	if d == "" {
		return "ai.onnx"
	}
	return d
}

// initializer converts one initializer, taking omitted data from
// Options.Weights.
func (l *loader) initializer(tp *onnxpb.TensorProto) (*graph.Tensor, error) {
	if w, ok := l.opts.Weights[tp.GetName()]; ok && hasNoData(tp) {
		if int32(w.DType) != tp.GetDataType() || !equalInts(w.Shape, tp.GetDims()) {
			return nil, fmt.Errorf("weight %q supplied as %s%v, but the model declares %s%v",
				tp.GetName(), w.DType, w.Shape, dtypeName(tp.GetDataType()), tp.GetDims())
		}
		if err := w.Validate(); err != nil {
			return nil, fmt.Errorf("weight %q: %v", tp.GetName(), err)
		}
		return w, nil
	}
	if hasNoData(tp) && len(tp.GetDims()) > 0 {
		if n, err := numElements(tp.GetDims(), l.opts.MaxElements); err == nil && n > 0 {
			return nil, fmt.Errorf("initializer %q has no data (weights omitted when the model was written?) and Options.Weights does not supply it", tp.GetName())
		}
	}
	return l.tr.convert(tp)
}

func hasNoData(tp *onnxpb.TensorProto) bool {
	return tp.RawData == nil && tp.GetDataLocation() != onnxpb.TensorProto_EXTERNAL &&
		len(tp.FloatData)+len(tp.Int32Data)+len(tp.Int64Data)+len(tp.DoubleData)+len(tp.Uint64Data)+len(tp.StringData) == 0
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// valueType converts a declared type. Graph inputs and outputs (required)
// must be tensors; dim_param becomes a symbol, a dim with neither value nor
// param is unknown, and a tensor type without a shape has unknown rank.
func (l *loader) valueType(vi *onnxpb.ValueInfoProto, required bool) (graph.Type, error) {
	tp := vi.GetType()
	if tp == nil {
		if required {
			return graph.Type{}, fmt.Errorf("value %q has no type", vi.GetName())
		}
		return graph.Type{}, nil
	}
	tt := tp.GetTensorType()
	if tt == nil {
		return graph.Type{}, fmt.Errorf("value %q is not a tensor (%s); only tensors are supported", vi.GetName(), typeKind(tp))
	}
	et := tt.GetElemType()
	if et != 0 && !supportedTensorDType(et) {
		return graph.Type{}, fmt.Errorf("value %q has unsupported element type %s", vi.GetName(), dtypeName(et))
	}
	t := graph.Type{DType: graph.DType(et)}
	if tt.Shape == nil {
		return t, nil
	}
	if len(tt.Shape.Dim) > MaxRank {
		return graph.Type{}, fmt.Errorf("value %q has rank %d, more than %d", vi.GetName(), len(tt.Shape.Dim), MaxRank)
	}
	t.Ranked = true
	t.Shape = make(graph.Shape, 0, len(tt.Shape.Dim))
	static := int64(1)
	for _, d := range tt.Shape.Dim {
		switch {
		case d.GetDimParam() != "":
			t.Shape = append(t.Shape, graph.S(d.GetDimParam()))
		case d.Value != nil:
			v := d.GetDimValue()
			if v < 0 {
				return graph.Type{}, fmt.Errorf("value %q has negative dimension %d", vi.GetName(), v)
			}
			if v > 0 && static > l.opts.MaxElements/v {
				return graph.Type{}, fmt.Errorf("value %q has a shape of more than %d elements", vi.GetName(), l.opts.MaxElements)
			}
			static *= v
			t.Shape = append(t.Shape, graph.D(v))
		default:
			t.Shape = append(t.Shape, graph.Unknown)
		}
	}
	return t, nil
}

func typeKind(tp *onnxpb.TypeProto) string {
	switch {
	case tp.GetSequenceType() != nil:
		return "a sequence"
	case tp.GetMapType() != nil:
		return "a map"
	case tp.GetOptionalType() != nil:
		return "an optional"
	case tp.GetSparseTensorType() != nil:
		return "a sparse tensor"
	}
	return "no type"
}

// buildNodes creates the graph's nodes from the inlined node list: first
// every output (so nodes may come in any order and cycles are caught by
// TopoSort), then the inputs.
func (l *loader) buildNodes(flat []*flatNode) error {
	nodes := make([]*graph.Node, 0, len(flat))
	var wired []*flatNode
	for _, fn := range flat {
		if fn.domain == "" && fn.op == "Constant" && !l.opts.KeepConstantNodes {
			c, err := l.constantNode(fn)
			if err != nil {
				return err
			}
			if err := l.define(c, fn); err != nil {
				return err
			}
			l.g.Consts = append(l.g.Consts, c)
			continue
		}
		n := &graph.Node{Name: fn.name, Domain: fn.domain, Op: fn.op, Opset: fn.opset}
		attrs, err := l.attrs(fn)
		if err != nil {
			return err
		}
		n.Attrs = attrs
		l.g.ImportNotes = append(l.g.ImportNotes, repairNode(n)...)
		outs := trimEmpty(fn.outputs)
		n.Outputs = make([]*graph.Value, len(outs))
		for i, name := range outs {
			if name == "" {
				continue
			}
			v := &graph.Value{Name: name, Producer: n, Type: l.declared[name]}
			if err := l.define(v, fn); err != nil {
				return err
			}
			n.Outputs[i] = v
		}
		nodes = append(nodes, n)
		wired = append(wired, fn)
	}
	for i, n := range nodes {
		fn := wired[i]
		ins := trimEmpty(fn.inputs)
		n.Inputs = make([]*graph.Value, len(ins))
		for j, name := range ins {
			if name == "" {
				continue
			}
			v := l.values[name]
			if v == nil {
				return fmt.Errorf("node %q (%s): input %q is not defined by any input, initializer or node", fn.label(), fn.op, name)
			}
			n.Inputs[j] = v
		}
	}
	uniqueNodeNames(nodes)
	l.g.Nodes = nodes
	return nil
}

// uniqueNodeNames renames nodes that share a name (ONNX allows it; the IR's
// verifier does not, and passes and error messages refer to nodes by name).
// The first node keeps the name, later ones get a _K suffix.
func uniqueNodeNames(nodes []*graph.Node) {
	used := make(map[string]bool, len(nodes))
	var dups []*graph.Node
	for _, n := range nodes {
		if n.Name == "" {
			continue
		}
		if used[n.Name] {
			dups = append(dups, n)
			continue
		}
		used[n.Name] = true
	}
	for _, n := range dups {
		base := n.Name
		for k := 1; used[n.Name]; k++ {
			n.Name = fmt.Sprintf("%s_%d", base, k)
		}
		used[n.Name] = true
	}
}

// trimEmpty drops trailing omitted ("") optional inputs or outputs, which
// ONNX treats like absent ones.
func trimEmpty(names []string) []string {
	for len(names) > 0 && names[len(names)-1] == "" {
		names = names[:len(names)-1]
	}
	return names
}

func (l *loader) define(v *graph.Value, fn *flatNode) error {
	if l.values[v.Name] != nil {
		return fmt.Errorf("node %q (%s): output %q is already defined (ONNX values are assigned once)", fn.label(), fn.op, v.Name)
	}
	l.values[v.Name] = v
	return nil
}

// constantNode turns a Constant node into a constant value.
func (l *loader) constantNode(fn *flatNode) (*graph.Value, error) {
	outs := trimEmpty(fn.outputs)
	if len(outs) != 1 || outs[0] == "" || len(fn.inputs) != 0 {
		return nil, fmt.Errorf("node %q (Constant): want no inputs and one output, have %d and %d", fn.label(), len(fn.inputs), len(outs))
	}
	if len(fn.attrs) != 1 {
		return nil, fmt.Errorf("node %q (Constant): want exactly one value attribute, have %d", fn.label(), len(fn.attrs))
	}
	na := fn.attrs[0]
	a, err := l.attr(na.a)
	if err != nil {
		return nil, fmt.Errorf("node %q (Constant): attribute %q: %v", fn.label(), na.name, err)
	}
	var t *graph.Tensor
	switch {
	case na.name == "value" && a.Kind == graph.AttrTensor:
		t = a.Tensor
	case na.name == "value_float" && a.Kind == graph.AttrFloat:
		t = graph.NewTensorF32(nil, []float32{a.Float})
	case na.name == "value_floats" && a.Kind == graph.AttrFloats:
		t = graph.NewTensorF32([]int64{int64(len(a.Floats))}, a.Floats)
	case na.name == "value_int" && a.Kind == graph.AttrInt:
		t = graph.NewTensorI64(nil, []int64{a.Int})
	case na.name == "value_ints" && a.Kind == graph.AttrInts:
		t = graph.NewTensorI64([]int64{int64(len(a.Ints))}, a.Ints)
	case na.name == "sparse_value":
		return nil, fmt.Errorf("node %q (Constant): sparse constants are not supported", fn.label())
	case na.name == "value_string" || na.name == "value_strings":
		return nil, fmt.Errorf("node %q (Constant): string constants are not supported", fn.label())
	default:
		return nil, fmt.Errorf("node %q (Constant): attribute %q of type %s is not a constant value", fn.label(), na.name, a.Kind)
	}
	return &graph.Value{Name: outs[0], Type: t.Type(), Const: t}, nil
}

// attrs converts a node's attributes. Subgraph attributes (If, Loop, Scan)
// are an unsupported-op error; with AllowUnsupported they are dropped so the
// rest of the graph can still be shown.
func (l *loader) attrs(fn *flatNode) (map[string]graph.Attr, error) {
	if len(fn.attrs) == 0 {
		return nil, nil
	}
	out := make(map[string]graph.Attr, len(fn.attrs))
	for _, na := range fn.attrs {
		if na.name == "" {
			return nil, fmt.Errorf("node %q (%s): attribute without a name", fn.label(), fn.op)
		}
		if _, dup := out[na.name]; dup {
			return nil, fmt.Errorf("node %q (%s): attribute %q is given twice", fn.label(), fn.op, na.name)
		}
		if k := attrKind(na.a); k == onnxpb.AttributeProto_GRAPH && normDomain(fn.domain) == graph.FusedDomain && fn.op == "ChunkMap" {
			body, err := l.closedSubgraph(na.a.GetG())
			if err != nil {
				return nil, fmt.Errorf("node %q (%s): attribute %q: %v", fn.label(), fn.op, na.name, err)
			}
			out[na.name] = graph.Attr{Kind: graph.AttrGraph, Graph: body}
			continue
		}
		if k := attrKind(na.a); k == onnxpb.AttributeProto_GRAPH || k == onnxpb.AttributeProto_GRAPHS {
			if l.opts.AllowUnsupported {
				continue
			}
			return nil, &graph.UnsupportedOpError{Domain: fn.domain, Op: fn.op, Opset: fn.opset, Node: fn.label(),
				Reason: fmt.Sprintf("subgraph attribute %q (control flow) is not supported", na.name)}
		}
		a, err := l.attr(na.a)
		if err != nil {
			return nil, fmt.Errorf("node %q (%s): attribute %q: %v", fn.label(), fn.op, na.name, err)
		}
		if err := checkAttrKind(fn, na.name, a.Kind); err != nil {
			return nil, err
		}
		out[na.name] = a
	}
	return out, nil
}

// closedSubgraph loads of3c.ChunkMap's body: a graph that reads only its
// own inputs and initializers, loaded as a model of its own with this
// model's opsets (and the same limits).
func (l *loader) closedSubgraph(gp *onnxpb.GraphProto) (*graph.Graph, error) {
	if gp == nil {
		return nil, errors.New("no graph")
	}
	m := &onnxpb.ModelProto{IrVersion: proto.Int64(encodeIRVersion), Graph: gp}
	for _, d := range sortedKeys(l.opsets) {
		m.OpsetImport = append(m.OpsetImport, &onnxpb.OperatorSetIdProto{Domain: proto.String(d), Version: proto.Int64(l.opsets[d])})
	}
	data, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	opts := l.opts
	opts.Weights = nil
	if opts.depth++; opts.depth > maxSubgraphDepth {
		return nil, fmt.Errorf("of3c.ChunkMap bodies nested more than %d deep", maxSubgraphDepth)
	}
	return load(data, "", opts)
}

// checkAttrKind refuses an ai.onnx attribute whose type the op's schema
// does not allow (perm given as an int, say). Shape rules read attributes
// with typed getters that treat a wrong type as absent, so without this check
// such a model would silently mean something else. Attributes the schema
// does not list are left to the rules.
func checkAttrKind(fn *flatNode, name string, k graph.AttrKind) error {
	if fn.domain != "" {
		return nil
	}
	allowed, ok := onnxAttrKinds[fn.op][name]
	if !ok || k < 0 || k >= 32 || allowed&(1<<uint(k)) != 0 {
		return nil
	}
	var want []string
	for i := graph.AttrKind(0); i < 32; i++ {
		if allowed&(1<<uint(i)) != 0 {
			want = append(want, i.String())
		}
	}
	return fmt.Errorf("node %q (%s): attribute %q is of type %s, want %s", fn.label(), fn.op, name, k, strings.Join(want, " or "))
}

// attrKind is the attribute's declared type, or for IR 1 files that predate
// the type field, the one value field that is set.
func attrKind(a *onnxpb.AttributeProto) onnxpb.AttributeProto_AttributeType {
	if a.Type != nil && a.GetType() != onnxpb.AttributeProto_UNDEFINED {
		return a.GetType()
	}
	switch {
	case a.F != nil:
		return onnxpb.AttributeProto_FLOAT
	case a.I != nil:
		return onnxpb.AttributeProto_INT
	case a.S != nil:
		return onnxpb.AttributeProto_STRING
	case a.T != nil:
		return onnxpb.AttributeProto_TENSOR
	case a.G != nil:
		return onnxpb.AttributeProto_GRAPH
	case len(a.Floats) > 0:
		return onnxpb.AttributeProto_FLOATS
	case len(a.Ints) > 0:
		return onnxpb.AttributeProto_INTS
	case len(a.Strings) > 0:
		return onnxpb.AttributeProto_STRINGS
	case len(a.Graphs) > 0:
		return onnxpb.AttributeProto_GRAPHS
	}
	return onnxpb.AttributeProto_UNDEFINED
}

// attr converts one attribute value, checking that the field its type names
// is the one that holds data.
func (l *loader) attr(a *onnxpb.AttributeProto) (graph.Attr, error) {
	k := attrKind(a)
	present := func(has bool) error {
		if !has {
			return fmt.Errorf("type %s but no %s value", k, k)
		}
		return nil
	}
	switch k {
	case onnxpb.AttributeProto_FLOAT:
		return graph.Attr{Kind: graph.AttrFloat, Float: a.GetF()}, present(a.F != nil)
	case onnxpb.AttributeProto_INT:
		return graph.Attr{Kind: graph.AttrInt, Int: a.GetI()}, present(a.I != nil)
	case onnxpb.AttributeProto_STRING:
		return graph.Attr{Kind: graph.AttrString, Str: string(a.GetS())}, present(a.S != nil)
	case onnxpb.AttributeProto_TENSOR:
		if a.T == nil {
			return graph.Attr{}, present(false)
		}
		t, err := l.attrTensor(a.T)
		if err != nil {
			return graph.Attr{}, err
		}
		return graph.Attr{Kind: graph.AttrTensor, Tensor: t}, nil
	case onnxpb.AttributeProto_FLOATS:
		if len(a.Ints) > 0 || len(a.Strings) > 0 {
			return graph.Attr{}, errors.New("type FLOATS but holds other values")
		}
		return graph.Attr{Kind: graph.AttrFloats, Floats: append([]float32{}, a.Floats...)}, nil
	case onnxpb.AttributeProto_INTS:
		if len(a.Floats) > 0 || len(a.Strings) > 0 {
			return graph.Attr{}, errors.New("type INTS but holds other values")
		}
		return graph.Attr{Kind: graph.AttrInts, Ints: append([]int64{}, a.Ints...)}, nil
	case onnxpb.AttributeProto_STRINGS:
		if len(a.Ints) > 0 || len(a.Floats) > 0 {
			return graph.Attr{}, errors.New("type STRINGS but holds other values")
		}
		ss := make([]string, len(a.Strings))
		for i, s := range a.Strings {
			ss[i] = string(s)
		}
		return graph.Attr{Kind: graph.AttrStrings, Strings: ss}, nil
	case onnxpb.AttributeProto_UNDEFINED:
		return graph.Attr{}, errors.New("no type and no value")
	}
	return graph.Attr{}, fmt.Errorf("attributes of type %s are not supported", k)
}

// attrTensor converts a tensor attribute once per TensorProto: a function
// body inlined at many calls refers to the same proto each time, and its
// data is shared (read-only) rather than copied per call, so memory stays
// bounded by the file's size however often a function is called.
func (l *loader) attrTensor(tp *onnxpb.TensorProto) (*graph.Tensor, error) {
	if t, ok := l.attrTensors[tp]; ok {
		return &graph.Tensor{DType: t.DType, Shape: append([]int64{}, t.Shape...), Data: t.Data}, nil
	}
	t, err := l.tr.convert(tp)
	if err != nil {
		return nil, err
	}
	if l.attrTensors == nil {
		l.attrTensors = map[*onnxpb.TensorProto]*graph.Tensor{}
	}
	l.attrTensors[tp] = t
	return t, nil
}

// infer types every node output. Declared types (value_info, graph outputs)
// fill in what the rules leave unknown. With AllowUnsupported a node that
// cannot be typed keeps its declared type and import goes on.
func (l *loader) infer() error {
	for _, n := range l.g.Nodes {
		types, vals, err := inferNode(n)
		if err != nil {
			if l.opts.AllowUnsupported {
				continue
			}
			return err
		}
		for i, o := range n.Outputs {
			if o == nil {
				continue
			}
			o.Type = mergeDeclared(types[i], o.Type)
			o.ShapeValue = nil
			if i < len(vals) {
				o.ShapeValue = vals[i]
			}
		}
	}
	return nil
}

// inferNode runs n's shape rule. A rule that panics on a strange model is a
// bug in the rule, but the importer's promise is an error, not a crash, so
// the panic becomes an error naming the node (FuzzLoad fails on it).
func inferNode(n *graph.Node) (types []graph.Type, vals []graph.Shape, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("node %q (%s): shape rule panicked: %v", n.Name, n.QualifiedOp(), r)
		}
	}()
	return graph.InferNode(n)
}

// mergeDeclared keeps the inferred type and fills its gaps (unknown dtype,
// rank or dims) from the declared one when they agree in rank.
func mergeDeclared(inferred, declared graph.Type) graph.Type {
	t := inferred
	if t.DType == graph.Undefined {
		t.DType = declared.DType
	}
	if !t.Ranked {
		if declared.Ranked {
			t.Ranked = true
			t.Shape = declared.Shape.Clone()
		}
		return t
	}
	if declared.Ranked && len(declared.Shape) == len(t.Shape) {
		var shape graph.Shape
		for i, d := range t.Shape {
			if d.IsUnknown() && !declared.Shape[i].IsUnknown() {
				if shape == nil {
					shape = t.Shape.Clone()
				}
				shape[i] = declared.Shape[i]
			}
		}
		if shape != nil {
			t.Shape = shape
		}
	}
	return t
}

// sortedKeys returns a map's keys in order, for deterministic output.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
