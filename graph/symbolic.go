package graph

// Symbolic dimension arithmetic.
//
// A symbolic Dim's Sym is the canonical text of a polynomial with integer
// coefficients over atoms. An atom is a dim_param name such as N or s0, or,
// for a dim_param this file cannot read as a polynomial (e.g. "floor(s0/2)"),
// the whole text taken as one opaque name. Canonical text sorts the factors of
// each term by name, puts terms of higher degree first (ties by text), the
// constant last, and writes coefficients only when they are not 1:
//
//	N*N   2*N   N+1   N*S   N*N+2*N-1   2*(floor(s0/2))
//
// Opaque atoms are parenthesised inside a larger expression so that the text
// reads back to the same polynomial. Because the form is canonical, two dims
// are equal exactly when their Sym strings are equal (Dim.Equal), which is
// what lets Reshape [N,N,H,c] → [N*N,H*c] → [N,N,H,c] round-trip.
//
// Inside a ShapeValue (the known contents of a dims tensor) a known negative
// number n, such as Reshape's -1, is written Dim{Val: n, Sym: "n"}: Dim has
// no other way to hold a negative size, and the text is still the canonical
// form of the constant polynomial n. Such dims never appear in a Type.

import (
	"fmt"
	"math"
	"math/bits"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"
)

// Limits that keep symbolic expressions small: past them a result becomes
// Unknown instead of growing without bound (e.g. repeated squaring of sums).
const (
	maxPolyTerms  = 32
	maxPolyDegree = 8
	maxSymLen     = 256
)

// poly is a polynomial: canonical monomial key → term. The zero polynomial
// has no terms. Polys are immutable once built.
type poly struct {
	terms map[string]polyTerm
}

type polyTerm struct {
	coef  int64
	atoms []string // sorted; empty for the constant term
}

func monoKey(atoms []string) string { return strings.Join(atoms, "\x00") }

func constPoly(c int64) *poly {
	p := &poly{terms: map[string]polyTerm{}}
	if c != 0 {
		p.terms[""] = polyTerm{coef: c}
	}
	return p
}

func atomPoly(name string) *poly {
	return &poly{terms: map[string]polyTerm{monoKey([]string{name}): {coef: 1, atoms: []string{name}}}}
}

// constant returns the value of a constant polynomial.
func (p *poly) constant() (int64, bool) {
	switch len(p.terms) {
	case 0:
		return 0, true
	case 1:
		if t, ok := p.terms[""]; ok {
			return t.coef, true
		}
	}
	return 0, false
}

func addInt(a, b int64) (int64, bool) {
	s := a + b
	if (a > 0 && b > 0 && s < 0) || (a < 0 && b < 0 && s >= 0) {
		return 0, false
	}
	return s, true
}

func mulInt(a, b int64) (int64, bool) {
	if a == 0 || b == 0 {
		return 0, true
	}
	hi, lo := bits.Mul64(uint64(absInt(a)), uint64(absInt(b)))
	if hi != 0 || lo > math.MaxInt64 || a == math.MinInt64 || b == math.MinInt64 {
		return 0, false
	}
	r := int64(lo)
	if (a < 0) != (b < 0) {
		r = -r
	}
	return r, true
}

func absInt(a int64) int64 {
	if a < 0 {
		return -a
	}
	return a
}

// addScaled returns p + k*q, or false on overflow or when the result grows
// past the size limits.
func addScaled(p, q *poly, k int64) (*poly, bool) {
	r := &poly{terms: make(map[string]polyTerm, len(p.terms)+len(q.terms))}
	for key, t := range p.terms {
		r.terms[key] = t
	}
	for key, t := range q.terms {
		c, ok := mulInt(t.coef, k)
		if !ok {
			return nil, false
		}
		if old, ok2 := r.terms[key]; ok2 {
			c, ok = addInt(old.coef, c)
			if !ok {
				return nil, false
			}
		}
		if c == 0 {
			delete(r.terms, key)
		} else {
			r.terms[key] = polyTerm{coef: c, atoms: t.atoms}
		}
	}
	if len(r.terms) > maxPolyTerms {
		return nil, false
	}
	return r, true
}

func mulPoly(p, q *poly) (*poly, bool) {
	r := &poly{terms: map[string]polyTerm{}}
	for _, a := range p.terms {
		for _, b := range q.terms {
			if len(a.atoms)+len(b.atoms) > maxPolyDegree {
				return nil, false
			}
			atoms := make([]string, 0, len(a.atoms)+len(b.atoms))
			atoms = append(append(atoms, a.atoms...), b.atoms...)
			sort.Strings(atoms)
			c, ok := mulInt(a.coef, b.coef)
			if !ok {
				return nil, false
			}
			key := monoKey(atoms)
			if old, ok2 := r.terms[key]; ok2 {
				if c, ok = addInt(old.coef, c); !ok {
					return nil, false
				}
			}
			if c == 0 {
				delete(r.terms, key)
			} else {
				r.terms[key] = polyTerm{coef: c, atoms: atoms}
			}
		}
	}
	if len(r.terms) > maxPolyTerms {
		return nil, false
	}
	return r, true
}

// sortedTerms orders terms canonically: higher degree first, then by text,
// the constant last.
func (p *poly) sortedTerms() []polyTerm {
	ts := make([]polyTerm, 0, len(p.terms))
	for _, t := range p.terms {
		ts = append(ts, t)
	}
	sort.Slice(ts, func(i, j int) bool {
		if len(ts[i].atoms) != len(ts[j].atoms) {
			return len(ts[i].atoms) > len(ts[j].atoms)
		}
		return monoKey(ts[i].atoms) < monoKey(ts[j].atoms)
	})
	return ts
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z'):
		case i > 0 && (r >= '0' && r <= '9'):
		default:
			return false
		}
	}
	return true
}

func atomText(a string) string {
	if isIdent(a) {
		return a
	}
	return "(" + a + ")"
}

func (p *poly) String() string {
	ts := p.sortedTerms()
	if len(ts) == 0 {
		return "0"
	}
	if len(ts) == 1 && ts[0].coef == 1 && len(ts[0].atoms) == 1 {
		return ts[0].atoms[0] // a lone opaque atom reads back as itself
	}
	var b strings.Builder
	for i, t := range ts {
		c := t.coef
		if c < 0 {
			b.WriteByte('-')
			c = -c
		} else if i > 0 {
			b.WriteByte('+')
		}
		if len(t.atoms) == 0 {
			b.WriteString(strconv.FormatInt(c, 10))
			continue
		}
		if c != 1 {
			b.WriteString(strconv.FormatInt(c, 10))
			b.WriteByte('*')
		}
		for k, a := range t.atoms {
			if k > 0 {
				b.WriteByte('*')
			}
			b.WriteString(atomText(a))
		}
	}
	return b.String()
}

// polyCache memoises parsing: shape inference over a large model meets the
// same few symbolic strings many thousands of times. It stops growing at
// maxPolyCache entries so that a long-running process fed ever new symbols
// (or a fuzzer) does not hold them all.
var (
	polyCache     sync.Map // string → *poly
	polyCacheSize atomic.Int64
)

const maxPolyCache = 1 << 16

// parseSym reads a Sym string as a polynomial; text it cannot read becomes a
// single opaque atom, so every string has a polynomial.
func parseSym(s string) *poly {
	if p, ok := polyCache.Load(s); ok {
		return p.(*poly)
	}
	ps := &symParser{s: s}
	p, ok := ps.expr()
	ps.skipSpace()
	if !ok || ps.pos != len(s) {
		p = atomPoly(strings.TrimSpace(s))
	}
	if polyCacheSize.Load() < maxPolyCache {
		if _, loaded := polyCache.LoadOrStore(s, p); !loaded {
			polyCacheSize.Add(1)
		}
	}
	return p
}

type symParser struct {
	s   string
	pos int
}

// skipSpace skips what strings.TrimSpace trims, so that an opaque atom
// (kept trimmed) never reads back differently.
func (ps *symParser) skipSpace() {
	for ps.pos < len(ps.s) {
		r, size := utf8.DecodeRuneInString(ps.s[ps.pos:])
		if !unicode.IsSpace(r) {
			return
		}
		ps.pos += size
	}
}

func (ps *symParser) peek() byte {
	ps.skipSpace()
	if ps.pos < len(ps.s) {
		return ps.s[ps.pos]
	}
	return 0
}

func (ps *symParser) expr() (*poly, bool) {
	p, ok := ps.term()
	if !ok {
		return nil, false
	}
	for {
		c := ps.peek()
		if c != '+' && c != '-' {
			return p, true
		}
		ps.pos++
		q, ok := ps.term()
		if !ok {
			return nil, false
		}
		k := int64(1)
		if c == '-' {
			k = -1
		}
		if p, ok = addScaled(p, q, k); !ok {
			return nil, false
		}
	}
}

func (ps *symParser) term() (*poly, bool) {
	p, ok := ps.factor()
	if !ok {
		return nil, false
	}
	for ps.peek() == '*' {
		ps.pos++
		if ps.peek() == '*' { // "**" (power) is not a polynomial product here
			return nil, false
		}
		q, ok := ps.factor()
		if !ok {
			return nil, false
		}
		if p, ok = mulPoly(p, q); !ok {
			return nil, false
		}
	}
	return p, true
}

func (ps *symParser) factor() (*poly, bool) {
	c := ps.peek()
	switch {
	case c == '-':
		ps.pos++
		p, ok := ps.factor()
		if !ok {
			return nil, false
		}
		return addScaled(constPoly(0), p, -1)
	case c >= '0' && c <= '9':
		start := ps.pos
		for ps.pos < len(ps.s) && ps.s[ps.pos] >= '0' && ps.s[ps.pos] <= '9' {
			ps.pos++
		}
		v, err := strconv.ParseInt(ps.s[start:ps.pos], 10, 64)
		if err != nil {
			return nil, false
		}
		return constPoly(v), true
	case c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'):
		start := ps.pos
		for ps.pos < len(ps.s) {
			r := ps.s[ps.pos]
			if r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
				ps.pos++
				continue
			}
			break
		}
		return atomPoly(ps.s[start:ps.pos]), true
	case c == '(':
		// Find the matching parenthesis; the inside is either an expression
		// or, if it does not parse, an opaque atom (see atomText).
		depth, end := 0, -1
		for i := ps.pos; i < len(ps.s); i++ {
			if ps.s[i] == '(' {
				depth++
			} else if ps.s[i] == ')' {
				depth--
				if depth == 0 {
					end = i
					break
				}
			}
		}
		if end < 0 {
			return nil, false
		}
		inner := ps.s[ps.pos+1 : end]
		ps.pos = end + 1
		sub := &symParser{s: inner}
		if p, ok := sub.expr(); ok {
			sub.skipSpace()
			if sub.pos == len(inner) {
				return p, true
			}
		}
		inner = strings.TrimSpace(inner)
		if inner == "" {
			return nil, false
		}
		return atomPoly(inner), true
	}
	return nil, false
}

// dimPoly returns d as a polynomial; false for an unknown dim.
func dimPoly(d Dim) (*poly, bool) {
	switch {
	case d.Sym != "":
		return parseSym(d.Sym), true
	case d.Val >= 0:
		return constPoly(d.Val), true
	}
	return nil, false
}

// polyDim turns a polynomial back into a Dim: a number when constant (see
// the package comment for negative numbers), else its canonical text.
func polyDim(p *poly, ok bool) Dim {
	if !ok {
		return Unknown
	}
	if c, isConst := p.constant(); isConst {
		return IntDim(c)
	}
	s := p.String()
	if len(s) > maxSymLen {
		return Unknown
	}
	return S(s)
}

// IntDim returns the dim for a known integer: static when v >= 0, and the
// ShapeValue form of a negative number otherwise.
func IntDim(v int64) Dim {
	if v >= 0 {
		return D(v)
	}
	return Dim{Val: v, Sym: strconv.FormatInt(v, 10)}
}

// DimInt returns the number a dim is known to be (static, or a negative
// number in ShapeValue form, or a symbolic text that is a constant).
func DimInt(d Dim) (int64, bool) {
	if d.Sym == "" {
		return d.Val, d.Val >= 0
	}
	return parseSym(d.Sym).constant()
}

// CanonDim rewrites a dim into canonical form, e.g. S("s0 + 1") → S("s0+1"),
// S("2*3") → D(6). Importers should pass dim_params through it.
func CanonDim(d Dim) Dim {
	if d.Sym == "" {
		return d
	}
	return polyDim(parseSym(d.Sym), true)
}

// CanonShape applies CanonDim to every dim.
func CanonShape(s Shape) Shape {
	if s == nil {
		return nil
	}
	out := make(Shape, len(s))
	for i, d := range s {
		out[i] = CanonDim(d)
	}
	return out
}

// sameSym reports whether two symbolic dims have the same canonical form
// (imported dim_params need not be canonical, e.g. "s0 + 1").
func sameSym(a, b Dim) bool {
	if a.Sym == b.Sym {
		return true
	}
	return CanonDim(a) == CanonDim(b)
}

// DimAdd returns a+b (Unknown if either is unknown).
func DimAdd(a, b Dim) Dim {
	if a.IsStatic() && b.IsStatic() {
		s, ok := addInt(a.Val, b.Val)
		if !ok {
			return Unknown
		}
		return D(s)
	}
	pa, ok1 := dimPoly(a)
	pb, ok2 := dimPoly(b)
	if !ok1 || !ok2 {
		return Unknown
	}
	return polyDim(addScaled(pa, pb, 1))
}

// DimSub returns a-b (Unknown if either is unknown).
func DimSub(a, b Dim) Dim {
	if a.IsStatic() && b.IsStatic() {
		return IntDim(a.Val - b.Val)
	}
	pa, ok1 := dimPoly(a)
	pb, ok2 := dimPoly(b)
	if !ok1 || !ok2 {
		return Unknown
	}
	return polyDim(addScaled(pa, pb, -1))
}

// DimMul returns a*b. A static 0 times anything is 0.
func DimMul(a, b Dim) Dim {
	if (a.IsStatic() && a.Val == 0) || (b.IsStatic() && b.Val == 0) {
		return D(0)
	}
	if a.IsStatic() && b.IsStatic() {
		p, ok := mulInt(a.Val, b.Val)
		if !ok {
			return Unknown
		}
		return D(p)
	}
	pa, ok1 := dimPoly(a)
	pb, ok2 := dimPoly(b)
	if !ok1 || !ok2 {
		return Unknown
	}
	return polyDim(mulPoly(pa, pb))
}

// DimProduct multiplies dims (1 for none).
func DimProduct(dims ...Dim) Dim {
	p := D(1)
	for _, d := range dims {
		p = DimMul(p, d)
	}
	return p
}

// DimDivExact returns a/b when b is known to divide a for every value of the
// symbols (e.g. (N*N*H*c)/(H*c) = N*N); ok is false otherwise, including
// division by zero.
func DimDivExact(a, b Dim) (Dim, bool) {
	if a.IsStatic() && b.IsStatic() {
		if b.Val == 0 || a.Val%b.Val != 0 {
			return Unknown, false
		}
		return D(a.Val / b.Val), true
	}
	pa, ok1 := dimPoly(a)
	pb, ok2 := dimPoly(b)
	if !ok1 || !ok2 {
		return Unknown, false
	}
	q, ok := divPoly(pa, pb)
	if !ok {
		return Unknown, false
	}
	d := polyDim(q, true)
	return d, !d.IsUnknown()
}

// DimFloorDiv returns floor(a/b): exact for static dims, the exact quotient
// for symbolic ones when it exists, Unknown otherwise.
func DimFloorDiv(a, b Dim) Dim {
	ia, oka := DimInt(a)
	ib, okb := DimInt(b)
	if oka && okb {
		if ib == 0 {
			return Unknown
		}
		return IntDim(floorDiv(ia, ib))
	}
	if q, ok := DimDivExact(a, b); ok {
		return q
	}
	return Unknown
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// leading returns the canonical first term of a non-zero polynomial.
func (p *poly) leading() polyTerm { return p.sortedTerms()[0] }

// divMono divides monomial a by monomial b: ok when every atom of b appears
// in a (with multiplicity) and the coefficients divide.
func divMono(a, b polyTerm) (polyTerm, bool) {
	if b.coef == 0 || a.coef%b.coef != 0 {
		return polyTerm{}, false
	}
	rest := make([]string, 0, len(a.atoms))
	i := 0
	for _, x := range a.atoms {
		if i < len(b.atoms) && b.atoms[i] == x {
			i++
			continue
		}
		rest = append(rest, x)
	}
	if i != len(b.atoms) {
		return polyTerm{}, false
	}
	return polyTerm{coef: a.coef / b.coef, atoms: rest}, true
}

// divPoly divides exactly by repeatedly cancelling the leading term (the
// order is graded, so the leading term of a product is the product of the
// leading terms); it fails when some remainder is left.
func divPoly(a, b *poly) (*poly, bool) {
	if len(b.terms) == 0 {
		return nil, false
	}
	bl := b.leading()
	q := constPoly(0)
	r := a
	for steps := 0; len(r.terms) > 0; steps++ {
		if steps > 4*maxPolyTerms {
			return nil, false
		}
		t, ok := divMono(r.leading(), bl)
		if !ok {
			return nil, false
		}
		tp := &poly{terms: map[string]polyTerm{monoKey(t.atoms): t}}
		if q, ok = addScaled(q, tp, 1); !ok {
			return nil, false
		}
		prod, ok := mulPoly(tp, b)
		if !ok {
			return nil, false
		}
		if r, ok = addScaled(r, prod, -1); !ok {
			return nil, false
		}
	}
	return q, true
}

// DimSymbols lists the atoms (symbol names) a dim depends on, sorted.
func DimSymbols(d Dim) []string {
	if d.Sym == "" {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, t := range parseSym(d.Sym).terms {
		for _, a := range t.atoms {
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	sort.Strings(out)
	return out
}

// EvalDim evaluates a dim with the symbols bound in env. Unknown dims,
// unbound symbols, overflow and negative results are errors.
func EvalDim(d Dim, env map[string]int64) (int64, error) {
	if d.Sym == "" {
		if d.Val < 0 {
			return 0, fmt.Errorf("dimension is unknown")
		}
		return d.Val, nil
	}
	var total int64
	for _, t := range parseSym(d.Sym).sortedTerms() {
		v := t.coef
		for _, a := range t.atoms {
			x, ok := env[a]
			if !ok {
				return 0, fmt.Errorf("dimension %s: symbol %q has no value", d.Sym, a)
			}
			if v, ok = mulInt(v, x); !ok {
				return 0, fmt.Errorf("dimension %s overflows int64", d.Sym)
			}
		}
		var ok bool
		if total, ok = addInt(total, v); !ok {
			return 0, fmt.Errorf("dimension %s overflows int64", d.Sym)
		}
	}
	if total < 0 {
		return 0, fmt.Errorf("dimension %s evaluates to %d", d.Sym, total)
	}
	return total, nil
}

// EvalShape evaluates every dim of s (see EvalDim).
func EvalShape(s Shape, env map[string]int64) ([]int64, error) {
	out := make([]int64, len(s))
	for i, d := range s {
		v, err := EvalDim(d, env)
		if err != nil {
			return nil, fmt.Errorf("dim %d: %w", i, err)
		}
		out[i] = v
	}
	return out, nil
}

// BindShape matches concrete sizes against a declared shape: static dims must
// be equal, a dim that is a single symbol binds it in env (or must agree with
// its existing binding), and compound dims are checked once all their symbols
// are bound (callers bind every input first, then call again to check). An
// unknown dim matches anything.
func BindShape(pattern Shape, dims []int64, env map[string]int64) error {
	if len(pattern) != len(dims) {
		return fmt.Errorf("rank %d, want %d (shape %s)", len(dims), len(pattern), pattern)
	}
	for i, d := range pattern {
		got := dims[i]
		if got < 0 {
			return fmt.Errorf("dim %d is negative (%d)", i, got)
		}
		switch {
		case d.IsUnknown():
		case d.IsStatic():
			if d.Val != got {
				return fmt.Errorf("dim %d is %d, want %d", i, got, d.Val)
			}
		default:
			// A linear dim c*A+k whose symbol A is unbound determines A.
			if a, val, ok := solveLinear(parseSym(d.Sym), got, env); ok {
				if val < 0 {
					return fmt.Errorf("dim %d is %d, which gives %s = %d", i, got, a, val)
				}
				env[a] = val
				continue
			} else if a != "" {
				return fmt.Errorf("dim %d is %d, which %s cannot be for an integer %s", i, got, d.Sym, a)
			}
			want, err := EvalDim(d, env)
			if err != nil {
				continue // not all symbols bound yet
			}
			if want != got {
				return fmt.Errorf("dim %d is %d, want %s = %d", i, got, d.Sym, want)
			}
		}
	}
	return nil
}

// solveLinear solves c*A + k = got for a polynomial of that form whose
// atom A is not yet bound. ok is false when p is not such a polynomial or A
// is bound; a non-empty name with ok false means no integer solves it.
func solveLinear(p *poly, got int64, env map[string]int64) (atom string, val int64, ok bool) {
	var c, k int64
	for _, t := range p.terms {
		switch len(t.atoms) {
		case 0:
			k = t.coef
		case 1:
			if atom != "" {
				return "", 0, false
			}
			atom, c = t.atoms[0], t.coef
		default:
			return "", 0, false
		}
	}
	if atom == "" {
		return "", 0, false
	}
	if _, bound := env[atom]; bound {
		return "", 0, false
	}
	rest := got - k
	if c == 0 || rest%c != 0 {
		return atom, 0, false
	}
	return atom, rest / c, true
}
