package graph

import (
	"fmt"
	"strings"
)

// Builder states a graph in Go, mainly for tests:
//
//	b := graph.NewBuilder("g", 17)
//	x := b.Input("x", "f32[N,64]")
//	w := b.Random("w", "f32[64,64]", 1)
//	y := b.Op("MatMul", x, w)
//	z := b.Op("Softmax", y, graph.AInt("axis", -1))
//	parts := b.OpN("Split", 2, z, graph.AInt("axis", 1), graph.Out("lo", "hi"))
//	b.Output(parts...)
//	g, err := b.Build()
//
// Operands of Op are *Value (nil is an omitted optional input) and
// options: attributes (AInt, AFloat, ...), output names (Out), a node name
// (NodeName) or explicit output types (Typed). Output types come from the
// op's shape rule when it is registered and no Typed is given.
//
// Mistakes (bad type text, unknown operand kinds, a failing shape rule) do not
// panic: the first one is kept and returned by Build, and later calls still
// return usable values so that test code reads straight through.
type Builder struct {
	g     *Graph
	err   error
	names map[string]bool // value names taken so far
}

// NewBuilder starts a graph with the given ai.onnx opset.
func NewBuilder(name string, opset int64) *Builder {
	return &Builder{g: New(name, opset)}
}

// Graph returns the graph built so far (without Build's error check).
func (b *Builder) Graph() *Graph { return b.g }

// Err returns the first mistake recorded, if any.
func (b *Builder) Err() error { return b.err }

// Build returns the graph and the first mistake made while building it.
func (b *Builder) Build() (*Graph, error) {
	if b.err != nil {
		return nil, b.err
	}
	return b.g, nil
}

func (b *Builder) fail(format string, args ...any) {
	if b.err == nil {
		b.err = fmt.Errorf("graph builder: "+format, args...)
	}
}

// Opset sets the opset version of a domain (e.g. "of3c", 1).
func (b *Builder) Opset(domain string, version int64) *Builder {
	b.g.Opsets[txtNormDomain(domain)] = version
	return b
}

func (b *Builder) parseType(what, typ string) Type {
	t, err := ParseTypeText(typ)
	if err != nil {
		b.fail("%s: %v", what, err)
	}
	return t
}

// Input adds a graph input of the given type text, e.g. "f32[N,64]".
func (b *Builder) Input(name, typ string) *Value {
	return b.g.AddInput(b.fresh(name), b.parseType("input "+name, typ))
}

// fresh returns name, or a unique variant when it is taken (recording the
// clash as a mistake: tests name things on purpose).
func (b *Builder) fresh(name string) string {
	if b.names == nil {
		b.names = map[string]bool{}
	}
	if b.names[name] {
		b.fail("value name %q used twice", name)
		name = b.g.UniqueName(name)
	}
	b.names[name] = true
	return name
}

// Const adds a constant holding t.
func (b *Builder) Const(name string, t *Tensor) *Value {
	if t == nil {
		b.fail("constant %s: nil tensor", name)
		t = &Tensor{DType: Float32, Shape: []int64{0}}
	} else if err := t.Validate(); err != nil {
		b.fail("constant %s: %v", name, err)
	}
	return b.g.AddConst(b.fresh(name), t)
}

// ConstF32 adds a float32 constant; shape nil means a 1-D tensor of the values.
func (b *Builder) ConstF32(name string, shape []int64, vals ...float32) *Value {
	if shape == nil {
		shape = []int64{int64(len(vals))}
	}
	return b.Const(name, NewTensorF32(shape, vals))
}

// ConstI64 adds an int64 constant; shape nil means a 1-D tensor of the values.
func (b *Builder) ConstI64(name string, shape []int64, vals ...int64) *Value {
	if shape == nil {
		shape = []int64{int64(len(vals))}
	}
	return b.Const(name, NewTensorI64(shape, vals))
}

// Fill adds a constant of type typ (static shape) with every element v.
func (b *Builder) Fill(name, typ string, v float64) *Value {
	return b.generated(name, typ, func(dt DType, shape []int64) (*Tensor, error) {
		return FillTensor(dt, shape, v)
	})
}

// Random adds a constant of type typ drawn by RandomTensor over the default
// range of its dtype; the same seed gives the same bytes as random(seed) in
// the text form.
func (b *Builder) Random(name, typ string, seed uint64) *Value {
	return b.generated(name, typ, func(dt DType, shape []int64) (*Tensor, error) {
		lo, hi := RandomDefaultRange(dt)
		return RandomTensor(dt, shape, seed, lo, hi)
	})
}

func (b *Builder) generated(name, typ string, gen func(DType, []int64) (*Tensor, error)) *Value {
	t := b.parseType("constant "+name, typ)
	shape, ok := t.Shape.Ints()
	var tensor *Tensor
	var err error
	if !t.Ranked || !ok {
		err = fmt.Errorf("type %s has no static shape", typ)
	} else {
		tensor, err = gen(t.DType, shape)
	}
	if err != nil {
		b.fail("constant %s: %v", name, err)
		tensor = &Tensor{DType: Float32, Shape: []int64{0}}
	}
	return b.g.AddConst(b.fresh(name), tensor)
}

// NamedAttr is an attribute option for Builder.Op.
type NamedAttr struct {
	Name string
	Attr Attr
}

func IntAttr(v int64) Attr                        { return Attr{Kind: AttrInt, Int: v} }
func FloatAttr(v float32) Attr                    { return Attr{Kind: AttrFloat, Float: v} }
func StringAttr(v string) Attr                    { return Attr{Kind: AttrString, Str: v} }
func IntsAttr(v ...int64) Attr                    { return Attr{Kind: AttrInts, Ints: append([]int64{}, v...)} }
func FloatsAttr(v ...float32) Attr                { return Attr{Kind: AttrFloats, Floats: append([]float32{}, v...)} }
func StringsAttr(v ...string) Attr                { return Attr{Kind: AttrStrings, Strings: append([]string{}, v...)} }
func TensorAttr(t *Tensor) Attr                   { return Attr{Kind: AttrTensor, Tensor: t} }
func GraphAttr(g *Graph) Attr                     { return Attr{Kind: AttrGraph, Graph: g} }
func AInt(name string, v int64) NamedAttr         { return NamedAttr{name, IntAttr(v)} }
func AFloat(name string, v float32) NamedAttr     { return NamedAttr{name, FloatAttr(v)} }
func AString(name string, v string) NamedAttr     { return NamedAttr{name, StringAttr(v)} }
func AInts(name string, v ...int64) NamedAttr     { return NamedAttr{name, IntsAttr(v...)} }
func AFloats(name string, v ...float32) NamedAttr { return NamedAttr{name, FloatsAttr(v...)} }
func AStrings(name string, v ...string) NamedAttr { return NamedAttr{name, StringsAttr(v...)} }
func ATensor(name string, t *Tensor) NamedAttr    { return NamedAttr{name, TensorAttr(t)} }
func AGraph(name string, g *Graph) NamedAttr      { return NamedAttr{name, GraphAttr(g)} }

// OutNames names a node's outputs (see Out).
type OutNames []string

// Out names the outputs of the node being built, in order.
func Out(names ...string) OutNames { return OutNames(names) }

// NodeNameOpt sets the node's name (see NodeName).
type NodeNameOpt string

// NodeName names the node being built.
func NodeName(name string) NodeNameOpt { return NodeNameOpt(name) }

// OutTypes states output types instead of running the op's shape rule (see
// Typed).
type OutTypes []string

// Typed gives the output types as text, e.g. Typed("f32[N,64]"); use it for
// ops without a registered rule or to build deliberately ill-typed graphs.
func Typed(types ...string) OutTypes { return OutTypes(types) }

// Op adds a single-output node; op may be domain-qualified ("of3c.SwiGLU").
// A domain the graph has no opset for yet is added at version 1. Outputs are
// named after the op (matmul, matmul_1, ...) unless Out names them.
func (b *Builder) Op(op string, args ...any) *Value {
	return b.OpN(op, 1, args...)[0]
}

// OpN adds a node with nOut outputs and returns them.
func (b *Builder) OpN(op string, nOut int, args ...any) []*Value {
	domain, typ := "", op
	if i := strings.LastIndexByte(op, '.'); i >= 0 {
		domain, typ = txtNormDomain(op[:i]), op[i+1:]
	}
	if nOut < 0 {
		b.fail("%s: %d outputs", op, nOut)
		nOut = 0
	}
	var inputs []*Value
	var attrs map[string]Attr
	var names OutNames
	var types OutTypes
	var nodeName string
	for _, a := range args {
		switch a := a.(type) {
		case nil: // an untyped nil: an omitted optional input
			inputs = append(inputs, nil)
		case *Value:
			inputs = append(inputs, a)
		case NamedAttr:
			if attrs == nil {
				attrs = map[string]Attr{}
			}
			if _, dup := attrs[a.Name]; dup {
				b.fail("%s: attribute %q given twice", op, a.Name)
			}
			attrs[a.Name] = a.Attr
		case OutNames:
			names = a
		case OutTypes:
			types = a
		case NodeNameOpt:
			nodeName = string(a)
		default:
			b.fail("%s: operand of unexpected kind %T (want *Value or an option)", op, a)
		}
	}
	if names != nil && len(names) != nOut {
		b.fail("%s: %d output names for %d outputs", op, len(names), nOut)
	}
	if types != nil && len(types) != nOut {
		b.fail("%s: %d output types for %d outputs", op, len(types), nOut)
	}
	if domain != DefaultDomain {
		if _, ok := b.g.Opsets[domain]; !ok {
			b.g.Opsets[domain] = 1
		}
	}
	outNames := make([]string, nOut)
	for i := range outNames {
		if i < len(names) {
			outNames[i] = b.fresh(names[i])
		} else {
			outNames[i] = strings.ToLower(typ)
		}
	}
	n := b.g.AddNode(domain, typ, inputs, outNames, attrs)
	n.Name = nodeName
	for _, o := range n.Outputs {
		if b.names == nil {
			b.names = map[string]bool{}
		}
		b.names[o.Name] = true
	}
	switch {
	case types != nil:
		for i, o := range n.Outputs {
			if i < len(types) {
				o.Type = b.parseType(op+" output", types[i])
			}
		}
	case LookupOp(domain, typ) != nil:
		ts, vals, err := InferNode(n)
		if err != nil {
			b.fail("%v", err)
			break
		}
		for i, o := range n.Outputs {
			o.Type = ts[i]
			if i < len(vals) {
				o.ShapeValue = vals[i]
			}
		}
	}
	return n.Outputs
}

// Output marks values as graph outputs.
func (b *Builder) Output(vs ...*Value) {
	for _, v := range vs {
		if v == nil {
			b.fail("nil graph output")
			continue
		}
		b.g.Outputs = append(b.g.Outputs, v)
	}
}

// ParseTypeText reads a type as the text form writes it: f32[N,64], i64[],
// f32[*], f32[?,4], f32["batch size",4].
func ParseTypeText(s string) (Type, error) {
	p := &txtParser{src: s}
	var t Type
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				a, ok := r.(txtAbort)
				if !ok {
					panic(r)
				}
				err = a.err
			}
		}()
		p.skip()
		t = p.typ()
		p.skip()
		if p.pos < len(p.src) {
			p.fail(p.pos, "unexpected text after the type")
		}
		return nil
	}()
	if err != nil {
		return Type{}, fmt.Errorf("type %q: %v", s, err)
	}
	return t, nil
}
