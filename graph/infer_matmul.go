package graph

import (
	"fmt"
	"sort"
	"strings"
)

// Contractions: MatMul (numpy matmul semantics, all opsets), Gemm, Einsum.

func init() {
	reg("MatMul", 1, 2, 2, 1, 1, func(n *Node) ([]Type, []Shape, error) {
		a, err := input(n, 0)
		if err != nil {
			return nil, nil, err
		}
		b, err := input(n, 1)
		if err != nil {
			return nil, nil, err
		}
		dt, err := sameDType(n, 0, 1)
		if err != nil {
			return nil, nil, err
		}
		if !a.Ranked || !b.Ranked {
			return one(unranked(dt)), nil, nil
		}
		s, err := matmulShape(a.Shape, b.Shape)
		if err != nil {
			return nil, nil, err
		}
		return one(TensorType(dt, s)), nil, nil
	})

	// Gemm: C broadcasting is unidirectional from opset 7, and C is optional
	// from opset 11 (an omitted C is accepted at any version).
	reg("Gemm", 7, 2, 3, 1, 1, func(n *Node) ([]Type, []Shape, error) {
		a, err := input(n, 0)
		if err != nil {
			return nil, nil, err
		}
		b, err := input(n, 1)
		if err != nil {
			return nil, nil, err
		}
		dt, err := sameDType(n, 0, 1, 2)
		if err != nil {
			return nil, nil, err
		}
		if !a.Ranked || !b.Ranked {
			return one(unranked(dt)), nil, nil
		}
		if len(a.Shape) != 2 || len(b.Shape) != 2 {
			return nil, nil, fmt.Errorf("A %s and B %s must be matrices", a.Shape, b.Shape)
		}
		m, k1 := a.Shape[0], a.Shape[1]
		if n.AttrInt("transA", 0) != 0 {
			m, k1 = k1, m
		}
		k2, nn := b.Shape[0], b.Shape[1]
		if n.AttrInt("transB", 0) != 0 {
			k2, nn = nn, k2
		}
		if _, err := mergeDim(k1, k2); err != nil {
			return nil, nil, fmt.Errorf("inner dims of A %s and B %s: %w", a.Shape, b.Shape, err)
		}
		out := TensorType(dt, Shape{m, nn})
		if c := n.Input(2); c != nil {
			if err := unidirectional(c.Type, out, "C"); err != nil {
				return nil, nil, err
			}
		}
		return one(out), nil, nil
	})

	reg("Einsum", 12, 1, -1, 1, 1, func(n *Node) ([]Type, []Shape, error) {
		eq := n.AttrString("equation", "")
		if eq == "" {
			return nil, nil, fmt.Errorf("attribute equation is required")
		}
		idx := make([]int, len(n.Inputs))
		shapes := make([]Shape, len(n.Inputs))
		ranked := true
		for i := range n.Inputs {
			t, err := input(n, i)
			if err != nil {
				return nil, nil, err
			}
			idx[i], shapes[i] = i, t.Shape
			ranked = ranked && t.Ranked
		}
		dt, err := sameDType(n, idx...)
		if err != nil {
			return nil, nil, err
		}
		if !ranked {
			return one(unranked(dt)), nil, nil
		}
		s, err := einsumShape(eq, shapes)
		if err != nil {
			return nil, nil, err
		}
		return one(TensorType(dt, s)), nil, nil
	})
}

// matmulShape is numpy matmul: 1-D operands are promoted to matrices and the
// added dim dropped again; batch dims broadcast.
func matmulShape(a, b Shape) (Shape, error) {
	if len(a) == 0 || len(b) == 0 {
		return nil, fmt.Errorf("MatMul of a scalar (shapes %s and %s)", a, b)
	}
	aVec, bVec := len(a) == 1, len(b) == 1
	if aVec {
		a = Shape{D(1), a[0]}
	}
	if bVec {
		b = Shape{b[0], D(1)}
	}
	ka, kb := a[len(a)-1], b[len(b)-2]
	if _, err := mergeDim(ka, kb); err != nil {
		return nil, fmt.Errorf("inner dims of %s and %s: %w", a, b, err)
	}
	batch, err := broadcastShapes(a[:len(a)-2], b[:len(b)-2])
	if err != nil {
		return nil, fmt.Errorf("batch dims: %w", err)
	}
	out := append(Shape{}, batch...)
	if !aVec {
		out = append(out, a[len(a)-2])
	}
	if !bVec {
		out = append(out, b[len(b)-1])
	}
	return out, nil
}

// einsumTerm is one operand's subscripts: labels, with the ellipsis (if any)
// at position ell (-1 when absent).
type einsumTerm struct {
	labels []byte
	ell    int
}

func parseEinsumTerm(s string) (einsumTerm, error) {
	t := einsumTerm{ell: -1}
	s = strings.ReplaceAll(s, " ", "")
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if !strings.HasPrefix(s[i:], "...") || t.ell >= 0 {
				return t, fmt.Errorf("bad ellipsis in %q", s)
			}
			t.ell = len(t.labels)
			i += 2
		case (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'):
			t.labels = append(t.labels, c)
		default:
			return t, fmt.Errorf("bad character %q in %q", c, s)
		}
	}
	return t, nil
}

func einsumShape(eq string, shapes []Shape) (Shape, error) {
	lhs, rhs, explicit := strings.Cut(eq, "->")
	parts := strings.Split(lhs, ",")
	if len(parts) != len(shapes) {
		return nil, fmt.Errorf("equation %q has %d operands, node has %d inputs", eq, len(parts), len(shapes))
	}
	dims := map[byte]Dim{}
	count := map[byte]int{}
	var ellShape Shape
	hasEll := false
	for i, p := range parts {
		t, err := parseEinsumTerm(p)
		if err != nil {
			return nil, fmt.Errorf("equation %q: %w", eq, err)
		}
		s := shapes[i]
		nEll := len(s) - len(t.labels)
		if (t.ell < 0 && nEll != 0) || nEll < 0 {
			return nil, fmt.Errorf("equation %q: operand %d has rank %d, subscripts %q", eq, i, len(s), p)
		}
		pos := 0
		for k, c := range t.labels {
			if k == t.ell {
				pos += nEll
			}
			d := s[pos]
			pos++
			if old, ok := dims[c]; ok {
				m, err := broadcastDim(old, d)
				if err != nil {
					return nil, fmt.Errorf("equation %q: label %c: %w", eq, c, err)
				}
				d = m
			}
			dims[c] = d
			count[c]++
		}
		if t.ell >= 0 {
			hasEll = true
			e := s[t.ell : t.ell+nEll]
			if ellShape, err = broadcastShapes(ellShape, e); err != nil {
				return nil, fmt.Errorf("equation %q: ellipsis dims: %w", eq, err)
			}
		}
	}
	var out einsumTerm
	if explicit {
		t, err := parseEinsumTerm(rhs)
		if err != nil {
			return nil, fmt.Errorf("equation %q: %w", eq, err)
		}
		seen := map[byte]bool{}
		for _, c := range t.labels {
			if _, ok := dims[c]; !ok {
				return nil, fmt.Errorf("equation %q: output label %c is not an input label", eq, c)
			}
			if seen[c] {
				return nil, fmt.Errorf("equation %q: output label %c repeated", eq, c)
			}
			seen[c] = true
		}
		out = t
	} else {
		// Implicit output: the labels used once, in alphabetical order,
		// after the broadcast ellipsis dims.
		var labels []byte
		for c, k := range count {
			if k == 1 {
				labels = append(labels, c)
			}
		}
		sort.Slice(labels, func(i, j int) bool { return labels[i] < labels[j] })
		out = einsumTerm{labels: labels, ell: -1}
		if hasEll {
			out.ell = 0
		}
	}
	res := Shape{}
	for k, c := range out.labels {
		if k == out.ell {
			res = append(res, ellShape...)
		}
		res = append(res, dims[c])
	}
	if out.ell >= 0 && out.ell == len(out.labels) {
		res = append(res, ellShape...)
	}
	return res, nil
}
