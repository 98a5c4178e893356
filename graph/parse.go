package graph

// Parse reads the text form written by Format. Grammar (NL = newline; spaces,
// tabs and "# comments" are ignored; newlines are also ignored inside (), []
// and {} lists):
//
//	file    = NL* graph NL* EOF
//	graph   = "graph" name ["opsets" "(" [domain "=" int {"," domain "=" int}] ")"] "{" NL {stmt NL+} "}"
//	stmt    = "meta" key "=" string
//	        | "input" valdef
//	        | "output" ref {"," ref}
//	        | valdef "=" "const" body
//	        | outs "=" op ["<" int ">"] "(" [ref {"," ref}] ")" ["{" attr {"," attr} "}"] ["@" name]
//	outs    = "(" ")" | outdef {"," outdef}
//	outdef  = "_" | valdef
//	valdef  = "%" name [":" type]                  e.g. %x:f32[N,64], %"onnx::Add_3":i64[*]
//	ref     = "%" name | "_"                        ("_" = omitted optional input)
//	op      = [domain "."] Op                       e.g. MatMul, of3c.Attention
//	attr    = key "=" value
//	value   = int | float | string | list | "ints[]" | "floats[]" | "strings[]"
//	        | "tensor" "<" type ">" body | graph | "kind" "(" int ")"
//	body    = "[" [elem {"," elem}] "]"             every element, row-major
//	        | "fill" "(" elem ")"                   every element equal
//	        | "random" "(" seed ["," lo "," hi] ")" uniform in [lo, hi), see RandomTensor
//
// Floats are told from ints by a '.', an exponent, nan or inf (1.0 vs 1).
// Names that are not bare (letters, digits, _ . / -) are Go-quoted strings.

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ParseError is a syntax or reference error at a 1-based line and column
// (columns count characters).
type ParseError struct {
	Line, Col int
	Msg       string
}

func (e *ParseError) Error() string { return fmt.Sprintf("%d:%d: %s", e.Line, e.Col, e.Msg) }

// Limits that keep hostile or mistaken text from exhausting memory or stack.
const (
	// MaxParsedConstElements bounds a constant stated in text (fill/random
	// included): 4M elements, 16 MiB of float32. Tests state small graphs;
	// the bound keeps a typo like f32[100000,100000] from taking the machine.
	MaxParsedConstElements = 1 << 22
	maxParseDepth          = 64
)

// Parse reads one graph in the text form of Format.
func Parse(text string) (*Graph, error) {
	p := &txtParser{src: text}
	g, err := p.file()
	if err != nil {
		return nil, err
	}
	return g, nil
}

// MustParse is Parse for tests and fixed texts in code: it panics on error,
// which for a literal in a test is a bug in the test.
func MustParse(text string) *Graph {
	g, err := Parse(text)
	if err != nil {
		panic("graph.MustParse: " + err.Error())
	}
	return g
}

type txtParser struct {
	src    string
	pos    int
	scopes []map[string]*Value // innermost last: nested graphs see outer values
	depth  int
}

// txtAbort carries a ParseError up through the recursive descent; it is
// recovered in file() and never escapes Parse.
type txtAbort struct{ err *ParseError }

func (p *txtParser) fail(pos int, format string, args ...any) {
	line, col := 1, 1
	if pos > len(p.src) {
		pos = len(p.src)
	}
	lineStart := 0
	for i := 0; i < pos; i++ {
		if p.src[i] == '\n' {
			line++
			lineStart = i + 1
		}
	}
	col = utf8.RuneCountInString(p.src[lineStart:pos]) + 1
	panic(txtAbort{&ParseError{Line: line, Col: col, Msg: fmt.Sprintf(format, args...)}})
}

func (p *txtParser) file() (g *Graph, err error) {
	defer func() {
		if r := recover(); r != nil {
			a, ok := r.(txtAbort)
			if !ok {
				panic(r)
			}
			g, err = nil, a.err
		}
	}()
	p.skipAll()
	if !p.word("graph") {
		p.fail(p.pos, "expected %q at the start", "graph")
	}
	g = p.graphRest()
	p.skipAll()
	if p.pos < len(p.src) {
		p.fail(p.pos, "unexpected text after the graph's closing }")
	}
	return g, nil
}

// Lexical helpers.

// skip skips spaces, tabs, carriage returns and comments, not newlines.
func (p *txtParser) skip() {
	for p.pos < len(p.src) {
		switch c := p.src[p.pos]; c {
		case ' ', '\t', '\r':
			p.pos++
		case '#':
			for p.pos < len(p.src) && p.src[p.pos] != '\n' {
				p.pos++
			}
		default:
			return
		}
	}
}

// skipAll also skips newlines.
func (p *txtParser) skipAll() {
	for {
		p.skip()
		if p.pos < len(p.src) && p.src[p.pos] == '\n' {
			p.pos++
			continue
		}
		return
	}
}

func (p *txtParser) peek() byte {
	if p.pos < len(p.src) {
		return p.src[p.pos]
	}
	return 0
}

// accept consumes c (after skipping blanks) if it is next.
func (p *txtParser) accept(c byte) bool {
	p.skip()
	if p.peek() == c {
		p.pos++
		return true
	}
	return false
}

func (p *txtParser) expect(c byte, what string) {
	p.skip()
	if p.peek() != c {
		p.fail(p.pos, "expected %q %s, found %s", string(c), what, p.found())
	}
	p.pos++
}

// found describes the text at the current position for error messages.
func (p *txtParser) found() string {
	if p.pos >= len(p.src) {
		return "end of text"
	}
	if p.src[p.pos] == '\n' {
		return "end of line"
	}
	end := p.pos
	for end < len(p.src) && end-p.pos < 20 && p.src[end] != '\n' && p.src[end] != ' ' {
		end++
	}
	if end == p.pos {
		end = p.pos + 1
	}
	return strconv.Quote(p.src[p.pos:end])
}

// word consumes the identifier w if it is next as a whole word.
func (p *txtParser) word(w string) bool {
	p.skip()
	if !strings.HasPrefix(p.src[p.pos:], w) {
		return false
	}
	end := p.pos + len(w)
	if end < len(p.src) && (txtIsAlnum(p.src[end]) || p.src[end] == '_') {
		return false
	}
	p.pos = end
	return true
}

// ident reads [A-Za-z_][A-Za-z0-9_]* (plus dots when dotted), or "" if none.
func (p *txtParser) ident(dotted bool) string {
	p.skip()
	start := p.pos
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		if txtIsLetter(c) || c == '_' || (p.pos > start && (txtIsDigit(c) || (dotted && c == '.'))) {
			p.pos++
			continue
		}
		break
	}
	return p.src[start:p.pos]
}

// quoted reads a Go-quoted string starting at the current position.
func (p *txtParser) quoted() string {
	p.skip()
	start := p.pos
	if p.peek() != '"' {
		p.fail(p.pos, "expected a quoted string, found %s", p.found())
	}
	i := p.pos + 1
	for ; i < len(p.src); i++ {
		c := p.src[i]
		if c == '\\' {
			i++
			continue
		}
		if c == '"' || c == '\n' {
			break
		}
	}
	if i >= len(p.src) || p.src[i] != '"' {
		p.fail(start, "unterminated string")
	}
	s, err := strconv.Unquote(p.src[start : i+1])
	if err != nil {
		p.fail(start, "bad string literal: %v", err)
	}
	p.pos = i + 1
	return s
}

// nameOrQuoted reads a bare name (class bare) or a quoted string.
func (p *txtParser) nameOrQuoted(what string, bareChar func(byte) bool) string {
	p.skip()
	if p.peek() == '"' {
		return p.quoted()
	}
	start := p.pos
	for p.pos < len(p.src) && bareChar(p.src[p.pos]) {
		p.pos++
	}
	if p.pos == start {
		p.fail(p.pos, "expected %s, found %s", what, p.found())
	}
	return p.src[start:p.pos]
}

func txtBareNameChar(c byte) bool {
	return txtIsAlnum(c) || c == '_' || c == '.' || c == '/' || c == '-'
}

func txtIdentChar(c byte) bool { return txtIsAlnum(c) || c == '_' }

// number reads an integer or float literal (with nan, inf, -inf).
func (p *txtParser) number() txtNum {
	p.skip()
	start := p.pos
	i := p.pos
	if i < len(p.src) && (p.src[i] == '-' || p.src[i] == '+') {
		i++
	}
	for i < len(p.src) && (txtIsAlnum(p.src[i]) || p.src[i] == '.' ||
		((p.src[i] == '-' || p.src[i] == '+') && (p.src[i-1] == 'e' || p.src[i-1] == 'E'))) {
		i++
	}
	text := p.src[start:i]
	if text == "" || text == "-" || text == "+" {
		p.fail(start, "expected a number, found %s", p.found())
	}
	n, err := txtParseNum(text)
	if err != nil {
		p.fail(start, "%v", err)
	}
	p.pos = i
	return n
}

// txtNum is a numeric literal kept exactly: integers as int64 (or uint64 when
// above MaxInt64), floats as float64.
type txtNum struct {
	text    string
	isInt   bool
	isUint  bool // only u above MaxInt64 is meaningful
	i       int64
	u       uint64
	f       float64
	boolean bool // written true/false
}

func txtParseNum(text string) (txtNum, error) {
	switch text {
	case "true":
		return txtNum{text: text, isInt: true, i: 1, f: 1, boolean: true}, nil
	case "false":
		return txtNum{text: text, isInt: true, boolean: true}, nil
	case "nan", "+nan", "-nan":
		return txtNum{text: text, f: math.NaN()}, nil
	case "inf", "+inf":
		return txtNum{text: text, f: math.Inf(1)}, nil
	case "-inf":
		return txtNum{text: text, f: math.Inf(-1)}, nil
	}
	if !strings.ContainsAny(text, ".eEnN") {
		if i, err := strconv.ParseInt(text, 10, 64); err == nil {
			return txtNum{text: text, isInt: true, i: i, f: float64(i)}, nil
		}
		if u, err := strconv.ParseUint(strings.TrimPrefix(text, "+"), 10, 64); err == nil {
			return txtNum{text: text, isInt: true, isUint: true, u: u, f: float64(u)}, nil
		}
		return txtNum{}, fmt.Errorf("integer %q out of range", text)
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return txtNum{}, fmt.Errorf("bad number %q", text)
	}
	return txtNum{text: text, f: f}, nil
}

// endStmt requires the end of a statement: a newline, or the graph's "}".
func (p *txtParser) endStmt() {
	p.skip()
	switch p.peek() {
	case '\n':
		p.pos++
	case '}':
	default:
		p.fail(p.pos, "expected end of line, found %s", p.found())
	}
}

// Graph structure.

// graphRest parses what follows the word "graph".
func (p *txtParser) graphRest() *Graph {
	if p.depth >= maxParseDepth {
		p.fail(p.pos, "graphs nested more than %d deep", maxParseDepth)
	}
	p.depth++
	defer func() { p.depth-- }()

	g := &Graph{Name: p.nameOrQuoted("a graph name", txtIdentChar)}
	if p.word("opsets") {
		g.Opsets = map[string]int64{}
		p.expect('(', "after opsets")
		p.list(')', "opsets", func() {
			at := p.pos
			var dom string
			if p.peek() == '"' {
				dom = p.quoted()
			} else if dom = p.ident(true); dom == "" {
				p.fail(p.pos, "expected a domain name, found %s", p.found())
			}
			dom = txtNormDomain(dom)
			if _, dup := g.Opsets[dom]; dup {
				p.fail(at, "opset for domain %q given twice", dom)
			}
			p.expect('=', "after the domain")
			v := p.number()
			if !v.isInt || v.isUint {
				p.fail(at, "opset version must be an integer")
			}
			g.Opsets[dom] = v.i
		})
	}
	p.expect('{', "to open the graph body")
	p.endStmt()

	p.scopes = append(p.scopes, map[string]*Value{})
	defer func() { p.scopes = p.scopes[:len(p.scopes)-1] }()
	for {
		p.skipAll()
		if p.accept('}') {
			return g
		}
		if p.pos >= len(p.src) {
			p.fail(p.pos, "graph %q: missing closing }", g.Name)
		}
		p.stmt(g)
		p.endStmt()
	}
}

func (p *txtParser) stmt(g *Graph) {
	switch {
	case p.word("meta"):
		at := p.pos
		key := p.nameOrQuoted("a meta key", txtIdentChar)
		p.expect('=', "after the meta key")
		val := p.quoted()
		if g.Meta == nil {
			g.Meta = map[string]string{}
		}
		if _, dup := g.Meta[key]; dup {
			p.fail(at, "meta %q given twice", key)
		}
		g.Meta[key] = val
	case p.word("input"):
		v := p.valDef()
		p.define(v)
		g.Inputs = append(g.Inputs, v.v)
	case p.word("output"):
		for {
			g.Outputs = append(g.Outputs, p.ref())
			if !p.accept(',') {
				break
			}
			p.skipAll() // a long output list may continue on the next line
		}
	default:
		p.assignment(g)
	}
}

// txtDef is a value being defined and where its name was written.
type txtDef struct {
	v  *Value
	at int
}

func (p *txtParser) valDef() txtDef {
	p.skip()
	at := p.pos
	if p.peek() != '%' {
		p.fail(p.pos, "expected a value %%name, found %s", p.found())
	}
	p.pos++
	v := &Value{Name: p.nameOrQuoted("a value name", txtBareNameChar)}
	if p.accept(':') {
		p.skip()
		v.Type = p.typ()
	}
	return txtDef{v: v, at: at}
}

func (p *txtParser) define(d txtDef) {
	scope := p.scopes[len(p.scopes)-1]
	if _, dup := scope[d.v.Name]; dup {
		p.fail(d.at, "%%%s is defined twice", d.v.Name)
	}
	scope[d.v.Name] = d.v
}

// ref reads %name (which must be defined already) or "_".
func (p *txtParser) ref() *Value {
	p.skip()
	at := p.pos
	if p.peek() == '_' && (p.pos+1 >= len(p.src) || !txtBareNameChar(p.src[p.pos+1])) {
		p.pos++
		return nil
	}
	if p.peek() != '%' {
		p.fail(p.pos, "expected %%name or _, found %s", p.found())
	}
	p.pos++
	name := p.nameOrQuoted("a value name", txtBareNameChar)
	for i := len(p.scopes) - 1; i >= 0; i-- {
		if v, ok := p.scopes[i][name]; ok {
			return v
		}
	}
	p.fail(at, "%%%s is used before it is defined", name)
	return nil
}

func (p *txtParser) assignment(g *Graph) {
	var outs []txtDef
	p.skip()
	start := p.pos
	if p.accept('(') {
		p.expect(')', "in () = (a node without outputs)")
	} else {
		for {
			p.skip()
			if p.peek() == '_' {
				p.pos++
				outs = append(outs, txtDef{at: p.pos - 1})
			} else {
				outs = append(outs, p.valDef())
			}
			if !p.accept(',') {
				break
			}
		}
	}
	p.expect('=', "after the defined values")
	if p.word("const") {
		if len(outs) != 1 || outs[0].v == nil {
			p.fail(start, "a constant defines exactly one %%value")
		}
		d := outs[0]
		if !d.v.Type.Ranked {
			p.fail(d.at, "constant %%%s needs a type with a static shape, e.g. %%%s:f32[2,3]", d.v.Name, d.v.Name)
		}
		d.v.Const = p.tensorBody(d.v.Type, d.at)
		p.define(d)
		g.Consts = append(g.Consts, d.v)
		return
	}
	n := &Node{}
	n.Domain, n.Op = p.opName()
	n.Opset = g.Opsets[n.Domain]
	if p.accept('<') {
		v := p.number()
		if !v.isInt || v.isUint {
			p.fail(p.pos, "opset must be an integer")
		}
		n.Opset = v.i
		p.expect('>', "after the opset")
	}
	p.expect('(', "to open the operands")
	p.list(')', "operands", func() { n.Inputs = append(n.Inputs, p.ref()) })
	if p.accept('{') {
		p.attrs(n)
	}
	if p.accept('@') {
		n.Name = p.nameOrQuoted("a node name", txtBareNameChar)
	}
	// Outputs are defined after the operands are resolved, so that a node
	// cannot read its own output.
	for _, d := range outs {
		if d.v == nil {
			n.Outputs = append(n.Outputs, nil)
			continue
		}
		d.v.Producer = n
		p.define(d)
		n.Outputs = append(n.Outputs, d.v)
	}
	g.Nodes = append(g.Nodes, n)
}

// opName reads MatMul, of3c.Attention, com.microsoft.X or "dom"."op".
func (p *txtParser) opName() (domain, op string) {
	p.skip()
	if p.peek() == '"' {
		first := p.quoted()
		if p.peek() == '.' {
			p.pos++
			return txtNormDomain(first), p.quoted()
		}
		return "", first
	}
	at := p.pos
	full := p.ident(true)
	if full == "" {
		p.fail(at, "expected an op name, found %s", p.found())
	}
	if strings.HasSuffix(full, ".") {
		p.fail(at, "op name %q ends with a dot", full)
	}
	if i := strings.LastIndexByte(full, '.'); i >= 0 {
		return txtNormDomain(full[:i]), full[i+1:]
	}
	return "", full
}

func (p *txtParser) attrs(n *Node) {
	p.list('}', "attributes", func() {
		at := p.pos
		name := p.nameOrQuoted("an attribute name", txtIdentChar)
		if _, dup := n.Attrs[name]; dup {
			p.fail(at, "attribute %q given twice", name)
		}
		p.expect('=', "after the attribute name")
		n.SetAttr(name, p.attrValue())
	})
}

// list reads comma-separated elements up to close (the opening bracket is
// already read). Newlines may appear anywhere and a trailing comma is allowed,
// so long lists can be written one element per line.
func (p *txtParser) list(close byte, what string, elem func()) {
	for {
		p.skipAll()
		if p.accept(close) {
			return
		}
		elem()
		p.skipAll()
		if p.accept(',') {
			continue
		}
		if !p.accept(close) {
			p.fail(p.pos, "expected \",\" between %s or %q after them, found %s", what, string(close), p.found())
		}
		return
	}
}

func (p *txtParser) attrValue() Attr {
	p.skipAll()
	at := p.pos
	switch c := p.peek(); {
	case c == '"':
		return Attr{Kind: AttrString, Str: p.quoted()}
	case c == '[':
		return p.attrList(AttrUndefined, at)
	case c == '-' || c == '+' || c == '.' || txtIsDigit(c):
		return txtNumAttr(p.number())
	}
	switch {
	case p.word("ints"):
		return p.attrList(AttrInts, at)
	case p.word("floats"):
		return p.attrList(AttrFloats, at)
	case p.word("strings"):
		return p.attrList(AttrStrings, at)
	case p.word("nan"), p.word("inf"):
		p.pos = at
		return txtNumAttr(p.number())
	case p.word("tensor"):
		p.expect('<', "after tensor")
		p.skip()
		tat := p.pos
		t := p.typ()
		p.expect('>', "after the tensor type")
		return Attr{Kind: AttrTensor, Tensor: p.tensorBody(t, tat)}
	case p.word("graph"):
		return Attr{Kind: AttrGraph, Graph: p.graphRest()}
	case p.word("kind"):
		p.expect('(', "after kind")
		v := p.number()
		if !v.isInt || v.isUint || v.i < 0 || v.i > math.MaxInt32 {
			p.fail(at, "kind needs a small non-negative integer")
		}
		if k := AttrKind(v.i); k >= AttrFloat && k <= AttrStrings {
			p.fail(at, "kind(%d) is for attribute kinds without a text form; write the %s value", v.i, k)
		}
		p.expect(')', "after the kind")
		return Attr{Kind: AttrKind(v.i)}
	}
	p.fail(at, "expected an attribute value, found %s", p.found())
	return Attr{}
}

func txtNumAttr(v txtNum) Attr {
	if v.isInt && !v.isUint {
		return Attr{Kind: AttrInt, Int: v.i}
	}
	return Attr{Kind: AttrFloat, Float: float32(v.f)}
}

// attrList reads [a, b, ...]; kind is the declared kind (ints[...]) or
// AttrUndefined to take it from the elements.
func (p *txtParser) attrList(kind AttrKind, at int) Attr {
	p.expect('[', "to open the list")
	var nums []txtNum
	var strs []string
	p.list(']', "list elements", func() {
		if p.peek() == '"' {
			if len(nums) > 0 {
				p.fail(p.pos, "list mixes strings and numbers")
			}
			strs = append(strs, p.quoted())
		} else {
			if len(strs) > 0 {
				p.fail(p.pos, "list mixes strings and numbers")
			}
			nums = append(nums, p.number())
		}
	})
	if kind == AttrUndefined {
		switch {
		case len(strs) > 0:
			kind = AttrStrings
		case len(nums) == 0:
			p.fail(at, "an empty list needs its kind: ints[], floats[] or strings[]")
		default:
			kind = AttrInts
			for _, v := range nums {
				if !v.isInt || v.isUint {
					kind = AttrFloats
				}
			}
		}
	}
	switch kind {
	case AttrStrings:
		if len(nums) > 0 {
			p.fail(at, "strings[...] holds quoted strings")
		}
		return Attr{Kind: AttrStrings, Strings: txtNonNil(strs)}
	case AttrInts:
		if len(strs) > 0 {
			p.fail(at, "ints[...] holds integers")
		}
		ints := make([]int64, len(nums))
		for i, v := range nums {
			if !v.isInt || v.isUint {
				p.fail(at, "ints[...] element %q is not an int64", v.text)
			}
			ints[i] = v.i
		}
		return Attr{Kind: AttrInts, Ints: ints}
	default:
		if len(strs) > 0 {
			p.fail(at, "floats[...] holds numbers")
		}
		fs := make([]float32, len(nums))
		for i, v := range nums {
			fs[i] = float32(v.f)
		}
		return Attr{Kind: AttrFloats, Floats: fs}
	}
}

func txtNonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// typ reads dtype[dims] right at the current position.
func (p *txtParser) typ() Type {
	start := p.pos
	for p.pos < len(p.src) && txtIsAlnum(p.src[p.pos]) {
		p.pos++
	}
	dtText := p.src[start:p.pos]
	dt, ok := txtParseDType(dtText)
	if !ok {
		p.fail(start, "unknown dtype %q (want f32, f16, bf16, f64, i64, i32, bool, ...)", dtText)
	}
	if p.peek() != '[' {
		p.fail(p.pos, "expected [dims] after the dtype, found %s", p.found())
	}
	open := p.pos
	p.pos++
	// Collect the dims up to the matching ], splitting at top-level commas;
	// quoted dims may hold any character.
	var dims []string
	var dimAt []int
	cur := p.pos
	depth := 0
	for {
		if p.pos >= len(p.src) || p.src[p.pos] == '\n' {
			p.fail(open, "unterminated [ in type")
		}
		c := p.src[p.pos]
		if c == '"' {
			p.quoted()
			continue
		}
		if c == '(' {
			depth++
		} else if c == ')' {
			depth--
		} else if depth <= 0 && (c == ',' || c == ']') {
			dims = append(dims, p.src[cur:p.pos])
			dimAt = append(dimAt, cur)
			p.pos++
			cur = p.pos
			if c == ']' {
				break
			}
			continue
		}
		p.pos++
	}
	if len(dims) == 1 {
		switch strings.TrimSpace(dims[0]) {
		case "*":
			return Type{DType: dt}
		case "":
			return TensorType(dt, Shape{})
		}
	}
	shape := make(Shape, len(dims))
	for i, raw := range dims {
		d := strings.TrimSpace(raw)
		switch {
		case d == "":
			p.fail(dimAt[i], "empty dim in type")
		case d == "?":
			shape[i] = Unknown
		case d[0] == '"':
			s, err := strconv.Unquote(d)
			if err != nil || s == "" {
				p.fail(dimAt[i], "bad quoted dim %s", d)
			}
			shape[i] = S(s)
		case txtIsDigit(d[0]) || d[0] == '-' || d[0] == '+':
			v, err := strconv.ParseInt(d, 10, 64)
			if err != nil {
				if strings.Trim(d, "0123456789+-") == "" {
					p.fail(dimAt[i], "bad dim %q", d)
				}
				shape[i] = S(d) // an expression such as 2*N
				continue
			}
			if v < 0 {
				p.fail(dimAt[i], "negative dim %d", v)
			}
			shape[i] = D(v)
		default:
			if d == "*" {
				p.fail(dimAt[i], "[*] (unknown rank) cannot be mixed with other dims")
			}
			shape[i] = S(d)
		}
	}
	return TensorType(dt, shape)
}

func txtParseDType(s string) (DType, bool) {
	if d, err := ParseDType(s); err == nil {
		return d, true
	}
	if rest, ok := strings.CutPrefix(s, "dtype"); ok {
		if v, err := strconv.ParseInt(rest, 10, 32); err == nil && v >= 0 {
			return DType(v), true
		}
	}
	return Undefined, false
}

// tensorBody reads a constant's contents for type t (at: where the type was
// written, for errors about it).
func (p *txtParser) tensorBody(t Type, at int) *Tensor {
	shape, ok := t.Shape.Ints()
	if !t.Ranked || !ok {
		p.fail(at, "constant type %s must have a static shape", txtFormatType(t))
	}
	if !txtPrintableDType(t.DType) {
		p.fail(at, "constants of dtype %s cannot be written in text", txtFormatDType(t.DType))
	}
	n, ok := txtCheckedCount(shape)
	if !ok || n > MaxParsedConstElements {
		p.fail(at, "constant %s is too large for text (limit %d elements)", txtFormatType(t), MaxParsedConstElements)
	}
	p.skip()
	bodyAt := p.pos
	var tensor *Tensor
	var err error
	switch {
	case p.peek() == '[':
		p.pos++
		var vals []txtNum
		p.list(']', "constant elements", func() {
			if int64(len(vals)) >= n {
				p.fail(p.pos, "more than the %d elements of %s", n, txtFormatType(t))
			}
			vals = append(vals, p.number())
		})
		if int64(len(vals)) != n {
			p.fail(bodyAt, "%d elements for %s, which holds %d", len(vals), txtFormatType(t), n)
		}
		tensor, err = txtEncode(t.DType, shape, vals)
	case p.word("fill"):
		p.expect('(', "after fill")
		v := p.number()
		p.expect(')', "after the fill value")
		tensor, err = txtFill(t.DType, shape, n, v)
	case p.word("random"):
		p.expect('(', "after random")
		seed := p.number()
		if !seed.isInt || (seed.i < 0 && !seed.isUint) {
			p.fail(bodyAt, "random needs a non-negative integer seed")
		}
		s := uint64(seed.i)
		if seed.isUint {
			s = seed.u
		}
		lo, hi := RandomDefaultRange(t.DType)
		if p.accept(',') {
			lo = p.number().f
			p.expect(',', "between random's bounds")
			hi = p.number().f
		}
		p.expect(')', "after random's arguments")
		tensor, err = RandomTensor(t.DType, shape, s, lo, hi)
	case p.word("dense"):
		p.fail(bodyAt, "constant data was elided when this text was printed (dense<...>); state it as [values], fill(v) or random(seed), or print with FormatOptions{InlineMax: -1}")
	default:
		p.fail(bodyAt, "expected constant contents ([...], fill(v) or random(seed)), found %s", p.found())
	}
	if err != nil {
		p.fail(bodyAt, "%v", err)
	}
	return tensor
}

func txtCheckedCount(shape []int64) (int64, bool) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 || (d > 0 && n > math.MaxInt64/d) {
			return 0, false
		}
		n *= d
	}
	return n, true
}
