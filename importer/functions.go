package importer

import (
	"fmt"
	"unicode"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/of3c/of3c/importer/onnxpb"
)

// Limits on inlining model-local functions. A function that calls another
// twice, nested k deep, expands to 2^k nodes; these bound what a hostile file
// can make the importer build.
const (
	maxInlineDepth   = 64
	maxInlinedNodes  = 1 << 20
	maxFunctionCount = 1 << 16
)

// Fields that ONNX added after IR 8 (ONNX 1.12, the schema the Go types come
// from). protobuf-go keeps them as unknown fields; the importer reads the two
// that change meaning: function overloads (IR 10) and default attribute
// values of functions (IR 9).
const (
	nodeOverloadField         = 8  // NodeProto.overload
	functionAttrProtoField    = 11 // FunctionProto.attribute_proto
	functionOverloadField     = 13 // FunctionProto.overload
	maxUnknownFieldsInspected = 1 << 16
)

// funcKey identifies a model-local function (domain, name, overload).
type funcKey struct{ domain, name, overload string }

type function struct {
	proto    *onnxpb.FunctionProto
	key      funcKey
	opsets   map[string]int64
	defaults map[string]*onnxpb.AttributeProto
}

// namedAttr is an attribute under the name the node uses. A reference
// (ref_attr_name) resolves to the caller's AttributeProto, whose own name is
// the function's attribute name, so the name is kept beside it.
type namedAttr struct {
	name string
	a    *onnxpb.AttributeProto
}

// flatNode is a node after inlining, with value names final.
type flatNode struct {
	name, domain, op string
	opset            int64
	inputs, outputs  []string
	attrs            []namedAttr
}

func (f *flatNode) label() string {
	if f.name != "" {
		return f.name
	}
	for _, o := range f.outputs {
		if o != "" {
			return o
		}
	}
	return "?"
}

// scope is one inlined function call.
type scope struct {
	fn     *function
	prefix string            // added to node names and internal values
	rename map[string]string // function-local value name → graph value name
	attrs  map[string]*onnxpb.AttributeProto
	opsets map[string]int64
	active map[funcKey]bool // functions on the call stack (recursion check)
}

func (l *loader) readFunctions(m *onnxpb.ModelProto) error {
	if len(m.Functions) > maxFunctionCount {
		return fmt.Errorf("model has %d local functions, more than the %d supported", len(m.Functions), maxFunctionCount)
	}
	l.funcs = map[funcKey]*function{}
	for _, fp := range m.Functions {
		f := &function{
			proto:    fp,
			key:      funcKey{normDomain(fp.GetDomain()), fp.GetName(), unknownString(fp, functionOverloadField)},
			opsets:   map[string]int64{},
			defaults: map[string]*onnxpb.AttributeProto{},
		}
		if f.key.name == "" {
			return fmt.Errorf("local function without a name (domain %q)", fp.GetDomain())
		}
		if l.funcs[f.key] != nil {
			return fmt.Errorf("local function %s is defined twice", f.key)
		}
		for _, op := range fp.OpsetImport {
			f.opsets[normDomain(op.GetDomain())] = op.GetVersion()
		}
		if v, ok := f.opsets[""]; ok && v < minDefaultOpset {
			return fmt.Errorf("local function %s imports ai.onnx opset %d (need %d or newer)", f.key, v, minDefaultOpset)
		}
		for _, raw := range unknownBytes(fp, functionAttrProtoField) {
			a := &onnxpb.AttributeProto{}
			if err := proto.Unmarshal(raw, a); err != nil {
				return fmt.Errorf("local function %s: bad default attribute: %v", f.key, err)
			}
			f.defaults[a.GetName()] = a
		}
		l.funcs[f.key] = f
	}
	return nil
}

func (k funcKey) String() string {
	s := domainLabel(k.domain) + "." + k.name
	if k.overload != "" {
		s += ":" + k.overload
	}
	return fmt.Sprintf("%q", s)
}

// checkExpansion computes how many nodes inlining nodes will produce,
// without building them, and refuses graphs over maxInlinedNodes and
// functions that call themselves. Sizes are memoized per function, so this
// costs one visit per function body however often functions are called.
func (l *loader) checkExpansion(nodes []*onnxpb.NodeProto) error {
	size := map[*function]int64{}
	onStack := map[*function]bool{}
	var count func(nodes []*onnxpb.NodeProto, depth int) (int64, error)
	count = func(nodes []*onnxpb.NodeProto, depth int) (int64, error) {
		var total int64
		for _, np := range nodes {
			f := l.funcs[funcKey{normDomain(np.GetDomain()), np.GetOpType(), unknownString(np, nodeOverloadField)}]
			if f == nil {
				total++
			} else {
				if onStack[f] {
					return 0, fmt.Errorf("local function %s calls itself", f.key)
				}
				if depth >= maxInlineDepth {
					return 0, fmt.Errorf("local functions nest more than %d deep", maxInlineDepth)
				}
				n, ok := size[f]
				if !ok {
					onStack[f] = true
					var err error
					if n, err = count(f.proto.Node, depth+1); err != nil {
						return 0, err
					}
					onStack[f] = false
					size[f] = n
				}
				total += n
			}
			if total > maxInlinedNodes {
				return 0, fmt.Errorf("graph has more than %d nodes after inlining local functions", maxInlinedNodes)
			}
		}
		return total, nil
	}
	_, err := count(nodes, 0)
	return err
}

// expand inlines local function calls in nodes (recursively) and returns the
// resulting flat node list. sc is nil for the main graph.
func (l *loader) expand(nodes []*onnxpb.NodeProto, sc *scope, depth int) ([]*flatNode, error) {
	var out []*flatNode
	for _, np := range nodes {
		fn := &flatNode{name: np.GetName(), domain: normDomain(np.GetDomain()), op: np.GetOpType()}
		if !isName(fn.op) || (fn.domain != "" && !isName(fn.domain)) {
			return nil, fmt.Errorf("node %q has an invalid op_type %q or domain %q", np.GetName(), fn.op, fn.domain)
		}
		fn.inputs = make([]string, len(np.Input))
		for i, name := range np.Input {
			fn.inputs[i] = l.mapName(sc, name)
		}
		fn.outputs = make([]string, len(np.Output))
		for i, name := range np.Output {
			fn.outputs[i] = l.mapName(sc, name)
		}
		for _, a := range np.Attribute {
			if ref := a.GetRefAttrName(); ref != "" {
				if sc == nil {
					return nil, fmt.Errorf("node %q (%s): attribute %q refers to %q, but only function bodies may refer to attributes", fn.label(), fn.op, a.GetName(), ref)
				}
				if v := sc.attrs[ref]; v != nil {
					fn.attrs = append(fn.attrs, namedAttr{a.GetName(), v})
				} else if v := sc.fn.defaults[ref]; v != nil {
					fn.attrs = append(fn.attrs, namedAttr{a.GetName(), v})
				}
				// An attribute the caller did not set and that has no
				// default is absent, and the op's own default applies.
				continue
			}
			fn.attrs = append(fn.attrs, namedAttr{a.GetName(), a})
		}
		if sc != nil && fn.name != "" {
			fn.name = sc.prefix + fn.name
		}

		opsets := l.opsets
		if sc != nil {
			opsets = sc.opsets
		}
		key := funcKey{fn.domain, fn.op, unknownString(np, nodeOverloadField)}
		if f := l.funcs[key]; f != nil {
			body, err := l.inline(fn, f, sc, depth)
			if err != nil {
				return nil, err
			}
			out = append(out, body...)
			continue
		}
		v, ok := opsets[fn.domain]
		if !ok {
			return nil, fmt.Errorf("node %q (%s) uses domain %q, which the model does not import", fn.label(), fn.op, domainLabel(fn.domain))
		}
		fn.opset = v
		l.expanded++
		if l.expanded > maxInlinedNodes {
			return nil, fmt.Errorf("graph has more than %d nodes after inlining local functions", maxInlinedNodes)
		}
		out = append(out, fn)
	}
	return out, nil
}

// inline expands one call of f. The call's actual inputs and outputs replace
// the function's formal ones; every other value of the body gets a fresh
// name under the call's name, so two calls never share internal values.
func (l *loader) inline(call *flatNode, f *function, parent *scope, depth int) ([]*flatNode, error) {
	if depth >= maxInlineDepth {
		return nil, fmt.Errorf("local functions nest more than %d deep at node %q", maxInlineDepth, call.label())
	}
	if parent != nil && parent.active[f.key] {
		return nil, fmt.Errorf("local function %s calls itself (node %q)", f.key, call.label())
	}
	fp := f.proto
	if len(call.inputs) > len(fp.Input) || len(call.outputs) > len(fp.Output) {
		return nil, fmt.Errorf("node %q calls local function %s with %d inputs and %d outputs; it has %d and %d",
			call.label(), f.key, len(call.inputs), len(call.outputs), len(fp.Input), len(fp.Output))
	}
	sc := &scope{
		fn:     f,
		prefix: l.freshName(call.label()) + "/",
		rename: map[string]string{},
		attrs:  map[string]*onnxpb.AttributeProto{},
		opsets: map[string]int64{},
		active: map[funcKey]bool{f.key: true},
	}
	if parent != nil {
		for k := range parent.active {
			sc.active[k] = true
		}
	}
	for d, v := range l.opsets {
		sc.opsets[d] = v
	}
	for d, v := range f.opsets {
		sc.opsets[d] = v
	}
	for i, formal := range fp.Input {
		if i < len(call.inputs) {
			sc.rename[formal] = call.inputs[i]
		} else {
			sc.rename[formal] = "" // an omitted optional input stays omitted
		}
	}
	for i, formal := range fp.Output {
		if i < len(call.outputs) && call.outputs[i] != "" {
			sc.rename[formal] = call.outputs[i]
		}
	}
	for _, na := range call.attrs {
		sc.attrs[na.name] = na.a
	}
	return l.expand(fp.Node, sc, depth+1)
}

// mapName maps a value name used in a function body to its graph name.
func (l *loader) mapName(sc *scope, name string) string {
	if sc == nil || name == "" {
		return name
	}
	if n, ok := sc.rename[name]; ok {
		return n
	}
	n := l.freshName(sc.prefix + name)
	sc.rename[name] = n
	return n
}

// freshName returns base, or base_K, not used by any value so far.
func (l *loader) freshName(base string) string {
	name := base
	for k := 1; l.used[name]; k++ {
		name = fmt.Sprintf("%s_%d", base, k)
	}
	l.used[name] = true
	return name
}

// unknownBytes returns the payloads of length-delimited unknown field num of
// m: fields newer than the generated schema.
func unknownBytes(m proto.Message, num protowire.Number) [][]byte {
	b := m.ProtoReflect().GetUnknown()
	var out [][]byte
	for i := 0; len(b) > 0 && i < maxUnknownFieldsInspected; i++ {
		n, typ, tagLen := protowire.ConsumeTag(b)
		if tagLen < 0 {
			return out
		}
		valLen := protowire.ConsumeFieldValue(n, typ, b[tagLen:])
		if valLen < 0 {
			return out
		}
		if n == num && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(b[tagLen:])
			out = append(out, v)
		}
		b = b[tagLen+valLen:]
	}
	return out
}

// unknownString returns the last value of unknown string field num of m
// (protobuf's rule for a repeated scalar field), or "".
func unknownString(m proto.Message, num protowire.Number) string {
	vals := unknownBytes(m, num)
	if len(vals) == 0 {
		return ""
	}
	return string(vals[len(vals)-1])
}

// isName reports whether s is usable as an op type or domain: non-empty,
// printable, no spaces. ONNX's are identifiers and dotted names; anything
// else is a corrupt file, and refusing it keeps messages that quote op names
// readable.
func isName(s string) bool {
	if s == "" || len(s) > 1024 {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}
