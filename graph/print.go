package graph

// The text form of a graph: stable (sorted attributes, sorted opsets, nodes in
// their stored order) so that two printings diff line by line, and readable
// back by Parse. Example:
//
//	graph main opsets(ai.onnx=17, of3c=1) {
//	  input %x:f32[N,64]
//	  %w:f32[64,64] = const random(1)
//	  %e:f32[64,64] = const dense<crc32c:1a2b3c4d> {mean=0.0012, std=0.577, min=-0.999, max=0.998}
//	  %b:f32[2] = const [0.5, -1]
//	  %y:f32[N,64] = MatMul(%x, %w) @/layer0/MatMul
//	  %a:f32[N,32], %c:f32[N,32] = Split(%y, _) {axis=1, num_outputs=2}
//	  output %a, %c
//	}
//
// Round trip: Format(Parse(Format(g))) == Format(g) whenever every constant
// prints in a readable form: few elements (all values), all equal (fill),
// or made by random(seed[, lo, hi]) with a small seed. Other large constants
// print as a checksum and statistics, which Parse refuses with a clear
// error; FormatWith(g, FormatOptions{InlineMax: -1}) prints them in full and
// always round-trips. Value docs and shape values are not printed.
//
// The grammar is in parse.go.

import (
	"encoding/binary"
	"hash/crc32"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultInlineMax is how many elements a constant may have and still be
// printed value by value; larger ones print as a summary unless all their
// elements are equal (then fill(v)).
const DefaultInlineMax = 16

// FormatOptions tunes Format.
type FormatOptions struct {
	// InlineMax: constants with at most this many elements print every
	// value. 0 means DefaultInlineMax; a negative value prints every constant
	// in full (the text then always parses back to an identical graph).
	InlineMax int
	// ShapeValues appends what shape inference knows about the contents
	// of small dims tensors (Value.ShapeValue) as a trailing comment,
	// e.g. "# %s = [N,N,128]"; Parse ignores it.
	ShapeValues bool
}

// Format returns the text form of g with default options.
func Format(g *Graph) string { return FormatWith(g, FormatOptions{}) }

// Text is Format(g).
func (g *Graph) Text() string { return Format(g) }

// FormatWith returns the text form of g.
func FormatWith(g *Graph, opts FormatOptions) string {
	if opts.InlineMax == 0 {
		opts.InlineMax = DefaultInlineMax
	}
	p := &txtPrinter{opts: opts}
	p.sb.Grow(64 * (len(g.Nodes) + len(g.Consts) + 4))
	p.graph(g, 0)
	p.sb.WriteByte('\n')
	return p.sb.String()
}

type txtPrinter struct {
	sb   strings.Builder
	opts FormatOptions
	// opsets of the graph being printed: a node written against it needs
	// no explicit <N>.
	opsets map[string]int64
}

func (p *txtPrinter) indent(depth int) {
	for i := 0; i < depth; i++ {
		p.sb.WriteString("  ")
	}
}

// graph prints "graph NAME opsets(...) {" ... "}" with the body indented one
// level deeper than depth; the closing brace is left without a newline so
// that a nested graph can be followed by more attributes.
func (p *txtPrinter) graph(g *Graph, depth int) {
	sb := &p.sb
	outer := p.opsets
	p.opsets = g.Opsets
	defer func() { p.opsets = outer }()
	sb.WriteString("graph ")
	sb.WriteString(txtQuoteIfNeeded(g.Name, txtIsIdent))
	if len(g.Opsets) > 0 {
		sb.WriteString(" opsets(")
		for i, d := range txtSortedDomains(g.Opsets) {
			if i > 0 {
				sb.WriteString(", ")
			}
			name := d
			if d == DefaultDomain {
				name = "ai.onnx"
			}
			sb.WriteString(txtQuoteIfNeeded(name, txtIsDomain))
			sb.WriteByte('=')
			sb.WriteString(strconv.FormatInt(g.Opsets[d], 10))
		}
		sb.WriteByte(')')
	}
	sb.WriteString(" {\n")
	inner := depth + 1

	metaKeys := make([]string, 0, len(g.Meta))
	for k := range g.Meta {
		metaKeys = append(metaKeys, k)
	}
	sort.Strings(metaKeys)
	for _, k := range metaKeys {
		p.indent(inner)
		sb.WriteString("meta ")
		sb.WriteString(txtQuoteIfNeeded(k, txtIsIdent))
		sb.WriteByte('=')
		sb.WriteString(strconv.Quote(g.Meta[k]))
		sb.WriteByte('\n')
	}
	for _, v := range g.Inputs {
		p.indent(inner)
		sb.WriteString("input ")
		p.valueDef(v)
		sb.WriteByte('\n')
	}
	for _, v := range g.Consts {
		p.indent(inner)
		p.valueDef(v)
		sb.WriteString(" = const ")
		p.tensorBody(v.Const)
		sb.WriteByte('\n')
	}
	for _, n := range g.Nodes {
		p.indent(inner)
		if n == nil {
			sb.WriteString("# <nil node>\n")
			continue
		}
		p.node(n, inner)
		sb.WriteByte('\n')
	}
	if len(g.Outputs) > 0 {
		p.indent(inner)
		sb.WriteString("output ")
		for i, v := range g.Outputs {
			if i > 0 {
				sb.WriteString(", ")
			}
			p.valueRef(v)
		}
		sb.WriteByte('\n')
	}
	p.indent(depth)
	sb.WriteByte('}')
}

func txtSortedDomains(m map[string]int64) []string {
	ds := make([]string, 0, len(m))
	for d := range m {
		ds = append(ds, d)
	}
	sort.Strings(ds) // "" (ai.onnx) sorts first
	return ds
}

func (p *txtPrinter) valueRef(v *Value) {
	if v == nil {
		p.sb.WriteByte('_')
		return
	}
	p.sb.WriteByte('%')
	p.sb.WriteString(txtQuoteIfNeeded(v.Name, txtIsBareName))
}

// valueDef prints %name:type, leaving out the type when nothing is known.
func (p *txtPrinter) valueDef(v *Value) {
	p.valueRef(v)
	if v == nil || (v.Type.DType == Undefined && !v.Type.Ranked) {
		return
	}
	p.sb.WriteByte(':')
	p.typ(v.Type)
}

func (p *txtPrinter) typ(t Type) { p.sb.WriteString(txtFormatType(t)) }

// txtFormatType is Type.String with symbolic dims quoted when their text would
// not read back (commas, brackets, quotes, digits only, ...).
func txtFormatType(t Type) string {
	var sb strings.Builder
	sb.WriteString(txtFormatDType(t.DType))
	if !t.Ranked {
		sb.WriteString("[*]")
		return sb.String()
	}
	sb.WriteByte('[')
	for i, d := range t.Shape {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(txtFormatDim(d))
	}
	sb.WriteByte(']')
	return sb.String()
}

func txtFormatDType(d DType) string {
	if s, ok := dtypeNames[d]; ok {
		return s
	}
	return "dtype" + strconv.FormatInt(int64(d), 10)
}

func txtFormatDim(d Dim) string {
	switch {
	case d.Sym != "":
		if txtIsBareSym(d.Sym) {
			return d.Sym
		}
		return strconv.Quote(d.Sym)
	case d.Val >= 0:
		return strconv.FormatInt(d.Val, 10)
	}
	return "?"
}

func (p *txtPrinter) node(n *Node, depth int) {
	sb := &p.sb
	if len(n.Outputs) == 0 {
		sb.WriteString("()")
	}
	for i, o := range n.Outputs {
		if i > 0 {
			sb.WriteString(", ")
		}
		p.valueDef(o)
	}
	sb.WriteString(" = ")
	p.opName(n.Domain, n.Op)
	if n.Opset != p.opsets[txtNormDomain(n.Domain)] {
		sb.WriteByte('<')
		sb.WriteString(strconv.FormatInt(n.Opset, 10))
		sb.WriteByte('>')
	}
	sb.WriteByte('(')
	for i, in := range n.Inputs {
		if i > 0 {
			sb.WriteString(", ")
		}
		p.valueRef(in)
	}
	sb.WriteByte(')')
	if len(n.Attrs) > 0 {
		sb.WriteString(" {")
		for i, name := range n.AttrNames() {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(txtQuoteIfNeeded(name, txtIsIdent))
			sb.WriteByte('=')
			p.attr(n.Attrs[name], depth)
		}
		sb.WriteByte('}')
	}
	if n.Name != "" {
		sb.WriteString(" @")
		sb.WriteString(txtQuoteIfNeeded(n.Name, txtIsBareName))
	}
	if p.opts.ShapeValues {
		for _, o := range n.Outputs {
			if o == nil || o.ShapeValue == nil {
				continue
			}
			sb.WriteString(" # ")
			p.valueRef(o)
			sb.WriteString(" = [")
			for i, d := range o.ShapeValue {
				if i > 0 {
					sb.WriteByte(',')
				}
				sb.WriteString(txtFormatShapeValueDim(d))
			}
			sb.WriteByte(']')
		}
	}
}

// txtFormatShapeValueDim prints a dim of a shape value, where a known
// negative number (Reshape's -1) is a Dim with that Val and Sym.
func txtFormatShapeValueDim(d Dim) string {
	if d.Sym != "" && strings.Trim(d.Sym, "0123456789-") == "" {
		return d.Sym
	}
	return txtFormatDim(d)
}

// txtNormDomain maps ONNX's two spellings of the default domain to one.
func txtNormDomain(d string) string {
	if d == "ai.onnx" {
		return DefaultDomain
	}
	return d
}

func (p *txtPrinter) opName(domain, op string) {
	if domain == "ai.onnx" {
		domain = ""
	}
	if txtIsOpIdent(op) && (domain == "" || txtIsDomain(domain)) {
		if domain != "" {
			p.sb.WriteString(domain)
			p.sb.WriteByte('.')
		}
		p.sb.WriteString(op)
		return
	}
	if domain != "" {
		p.sb.WriteString(strconv.Quote(domain))
		p.sb.WriteByte('.')
	}
	p.sb.WriteString(strconv.Quote(op))
}

func (p *txtPrinter) attr(a Attr, depth int) {
	sb := &p.sb
	switch a.Kind {
	case AttrInt:
		sb.WriteString(strconv.FormatInt(a.Int, 10))
	case AttrFloat:
		sb.WriteString(txtFormatFloatAttr(a.Float))
	case AttrString:
		sb.WriteString(strconv.Quote(a.Str))
	case AttrInts:
		if len(a.Ints) == 0 {
			sb.WriteString("ints")
		}
		sb.WriteByte('[')
		for i, v := range a.Ints {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(strconv.FormatInt(v, 10))
		}
		sb.WriteByte(']')
	case AttrFloats:
		if len(a.Floats) == 0 {
			sb.WriteString("floats")
		}
		sb.WriteByte('[')
		for i, v := range a.Floats {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(txtFormatFloatAttr(v))
		}
		sb.WriteByte(']')
	case AttrStrings:
		if len(a.Strings) == 0 {
			sb.WriteString("strings")
		}
		sb.WriteByte('[')
		for i, v := range a.Strings {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(strconv.Quote(v))
		}
		sb.WriteByte(']')
	case AttrTensor:
		if a.Tensor == nil {
			sb.WriteString("tensor<undef[*]> <nil>")
			return
		}
		sb.WriteString("tensor<")
		sb.WriteString(txtFormatType(a.Tensor.Type()))
		sb.WriteString("> ")
		p.tensorBody(a.Tensor)
	case AttrGraph:
		if a.Graph == nil {
			sb.WriteString("graph <nil>")
			return
		}
		p.graph(a.Graph, depth)
	default:
		// Kinds of3c has no field for (sparse tensors, type protos) keep
		// their number so that the text still says what was there.
		sb.WriteString("kind(")
		sb.WriteString(strconv.FormatInt(int64(a.Kind), 10))
		sb.WriteByte(')')
	}
}

// txtFormatFloatAttr writes the shortest text that reads back to f, marked as a
// float (1.0, not 1) so that the parser can tell float from int attributes.
func txtFormatFloatAttr(f float32) string {
	s := txtFormatFloat(float64(f), 32)
	if strings.ContainsAny(s, ".eni") { // 1.5, 1e-05, nan, inf
		return s
	}
	return s + ".0"
}

func txtFormatFloat(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	return strconv.FormatFloat(f, 'g', -1, bits)
}

// tensorBody prints a constant's contents: every value when there are few;
// otherwise fill(v) when all are equal, random(seed[, lo, hi]) when they are
// what RandomTensor gives for a small seed (see txtFindRandom), or else a
// summary (checksum and statistics), which Parse refuses.
func (p *txtPrinter) tensorBody(t *Tensor) {
	sb := &p.sb
	if t == nil {
		sb.WriteString("<nil>")
		return
	}
	if err := t.Validate(); err != nil {
		sb.WriteString("invalid<")
		sb.WriteString(strconv.Quote(err.Error()))
		sb.WriteByte('>')
		return
	}
	n := t.NumElements()
	if !txtPrintableDType(t.DType) {
		p.summary(t, false)
		return
	}
	if p.opts.InlineMax < 0 || n <= int64(p.opts.InlineMax) {
		sb.WriteByte('[')
		for i := int64(0); i < n; i++ {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(txtFormatElem(t, int(i)))
		}
		sb.WriteByte(']')
		return
	}
	if txtAllEqual(t) {
		sb.WriteString("fill(")
		sb.WriteString(txtFormatElem(t, 0))
		sb.WriteByte(')')
		return
	}
	if seed, lo, hi, custom, ok := txtFindRandom(t); ok {
		sb.WriteString("random(")
		sb.WriteString(strconv.FormatUint(seed, 10))
		if custom {
			sb.WriteString(", ")
			sb.WriteString(txtFormatFloat(lo, 64))
			sb.WriteString(", ")
			sb.WriteString(txtFormatFloat(hi, 64))
		}
		sb.WriteByte(')')
		return
	}
	p.summary(t, true)
}

func txtPrintableDType(d DType) bool {
	switch d {
	case Float32, Float64, Float16, BFloat16, Bool, Int8, Int16, Int32, Int64, Uint8, Uint16, Uint32, Uint64:
		return true
	}
	return false
}

var txtCrcTable = crc32.MakeTable(crc32.Castagnoli)

// summary prints dense<crc32c:XXXXXXXX> {mean=…, std=…, min=…, max=…}. CRC-32C
// is hardware-accelerated, so summarizing hundreds of MB of weights stays
// fast; it is a change detector, not a cryptographic identity.
func (p *txtPrinter) summary(t *Tensor, stats bool) {
	sb := &p.sb
	sb.WriteString("dense<crc32c:")
	var buf [8]byte
	crc := crc32.Checksum(t.Data, txtCrcTable)
	const hexd = "0123456789abcdef"
	for i := 7; i >= 0; i-- {
		buf[i] = hexd[crc&0xf]
		crc >>= 4
	}
	sb.Write(buf[:])
	sb.WriteByte('>')
	if !stats || t.NumElements() == 0 {
		return
	}
	mean, std, lo, hi := txtTensorStats(t)
	sb.WriteString(" {mean=")
	sb.WriteString(strconv.FormatFloat(mean, 'g', 4, 64))
	sb.WriteString(", std=")
	sb.WriteString(strconv.FormatFloat(std, 'g', 4, 64))
	sb.WriteString(", min=")
	sb.WriteString(strconv.FormatFloat(lo, 'g', 4, 64))
	sb.WriteString(", max=")
	sb.WriteString(strconv.FormatFloat(hi, 'g', 4, 64))
	sb.WriteByte('}')
}

// txtTensorStats computes mean, standard deviation, min and max in one pass
// without materializing a float64 copy (weights can be large).
func txtTensorStats(t *Tensor) (mean, std, lo, hi float64) {
	n := int(t.NumElements())
	lo, hi = math.Inf(1), math.Inf(-1)
	var sum, sumSq float64
	// Plain comparisons rather than math.Min/Max: this loop runs over every
	// weight of a model, and NaNs (which they would propagate) already show
	// in the mean.
	acc := func(v float64) {
		sum += v
		sumSq += v * v
		if v < lo {
			lo = v
		}
		if v > hi {
			hi = v
		}
	}
	if t.DType == Float32 {
		data := t.Data[:4*n]
		for i := 0; i < len(data); i += 4 {
			acc(float64(math.Float32frombits(binary.LittleEndian.Uint32(data[i:]))))
		}
	} else {
		for i := 0; i < n; i++ {
			acc(txtElemFloat(t, i))
		}
	}
	mean = sum / float64(n)
	variance := sumSq/float64(n) - mean*mean
	if variance < 0 { // rounding
		variance = 0
	}
	return mean, math.Sqrt(variance), lo, hi
}

// txtElemFloat decodes element i of a numeric tensor (bool as 0/1).
func txtElemFloat(t *Tensor, i int) float64 {
	le := binary.LittleEndian
	b := t.Data
	switch t.DType {
	case Float32:
		return float64(math.Float32frombits(le.Uint32(b[4*i:])))
	case Float64:
		return math.Float64frombits(le.Uint64(b[8*i:]))
	case Float16:
		return float64(HalfToFloat32(le.Uint16(b[2*i:])))
	case BFloat16:
		return float64(BF16ToFloat32(le.Uint16(b[2*i:])))
	case Bool:
		if b[i] != 0 {
			return 1
		}
		return 0
	case Uint64:
		return float64(le.Uint64(b[8*i:]))
	}
	return float64(txtElemInt(t, i))
}

func txtElemInt(t *Tensor, i int) int64 {
	le := binary.LittleEndian
	b := t.Data
	switch t.DType {
	case Int64, Uint64:
		return int64(le.Uint64(b[8*i:]))
	case Int32:
		return int64(int32(le.Uint32(b[4*i:])))
	case Uint32:
		return int64(le.Uint32(b[4*i:]))
	case Int16:
		return int64(int16(le.Uint16(b[2*i:])))
	case Uint16:
		return int64(le.Uint16(b[2*i:]))
	case Int8:
		return int64(int8(b[i]))
	case Uint8, Bool:
		return int64(b[i])
	}
	return 0
}

// txtFormatElem prints element i exactly: floats in their shortest round-trip
// form for their width, integers in decimal, bools as true/false.
func txtFormatElem(t *Tensor, i int) string {
	switch t.DType {
	case Float32, Float16, BFloat16:
		// Half and bfloat16 values are exact float32 values, so the
		// float32 shortest form reads back to the same bits (NaN payloads
		// aside).
		return txtFormatFloat(txtElemFloat(t, i), 32)
	case Float64:
		return txtFormatFloat(txtElemFloat(t, i), 64)
	case Bool:
		if t.Data[i] != 0 {
			return "true"
		}
		return "false"
	case Uint64:
		return strconv.FormatUint(binary.LittleEndian.Uint64(t.Data[8*i:]), 10)
	}
	return strconv.FormatInt(txtElemInt(t, i), 10)
}

// txtAllEqual reports whether every element has the same bytes, or for bool the
// same truth value.
func txtAllEqual(t *Tensor) bool {
	sz := t.DType.Size()
	if len(t.Data) < sz {
		return true
	}
	if t.DType == Bool {
		first := t.Data[0] != 0
		for _, b := range t.Data {
			if (b != 0) != first {
				return false
			}
		}
		return true
	}
	first := t.Data[:sz]
	for off := sz; off < len(t.Data); off += sz {
		if string(t.Data[off:off+sz]) != string(first) {
			return false
		}
	}
	return true
}

// Name classes. A name outside its class is printed as a Go-quoted string.

func txtQuoteIfNeeded(s string, bare func(string) bool) string {
	if bare(s) {
		return s
	}
	return strconv.Quote(s)
}

// txtIsBareName: value and node names such as x, 12, /layers.0/MatMul_output_0.
func txtIsBareName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(txtIsAlnum(c) || c == '_' || c == '.' || c == '/' || c == '-') {
			return false
		}
	}
	return true
}

// txtIsIdent: graph names, attribute names, meta keys.
func txtIsIdent(s string) bool {
	if s == "" || !(txtIsLetter(s[0]) || s[0] == '_') {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !(txtIsAlnum(s[i]) || s[i] == '_') {
			return false
		}
	}
	return !txtIsKeyword(s)
}

// txtIsOpIdent: op types (no dots; the dot separates the domain).
func txtIsOpIdent(s string) bool {
	return txtIsIdent(s) && s != "const"
}

// txtIsDomain: dotted identifiers such as of3c or com.microsoft.
func txtIsDomain(s string) bool {
	if s == "" {
		return false
	}
	for _, part := range strings.Split(s, ".") {
		if part == "" || !(txtIsLetter(part[0]) || part[0] == '_') {
			return false
		}
		for i := 1; i < len(part); i++ {
			if !(txtIsAlnum(part[i]) || part[i] == '_') {
				return false
			}
		}
	}
	return true
}

// txtIsBareSym: symbolic dims in the canonical form of symbolic.go (N, N*N+1,
// 2*(floor(s0/2))) print as they are; anything that would not read back
// inside [ , ] is quoted.
func txtIsBareSym(s string) bool {
	if s == "" || s == "?" || s == "*" || strings.TrimSpace(s) != s {
		return false
	}
	if strings.Trim(s, "0123456789+-") == "" {
		return false // reads as a number (or a malformed one)
	}
	depth := 0
	for _, r := range s {
		switch {
		case r == '(':
			depth++
		case r == ')':
			depth--
			if depth < 0 {
				return false
			}
		case r < utf8.RuneSelf && (txtIsAlnum(byte(r)) || strings.IndexByte("_.+-*/%^", byte(r)) >= 0):
		case r >= utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r)):
		default:
			return false
		}
	}
	return depth == 0 && s[0] != '"'
}

func txtIsKeyword(s string) bool {
	switch s {
	case "graph", "input", "output", "const", "meta", "opsets", "tensor", "ints", "floats", "strings",
		"fill", "random", "dense", "kind", "true", "false", "nan", "inf", "_":
		return true
	}
	return false
}

func txtIsLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func txtIsDigit(c byte) bool  { return c >= '0' && c <= '9' }
func txtIsAlnum(c byte) bool  { return txtIsLetter(c) || txtIsDigit(c) }
