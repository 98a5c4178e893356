package graph

import (
	"strings"
	"testing"
)

func TestCanonDim(t *testing.T) {
	cases := []struct{ in, want string }{
		{"N", "N"},
		{"s0 + 1", "s0+1"},
		{"1+s0", "s0+1"},
		{"N*S", "N*S"},
		{"S*N", "N*S"},
		{"2*3", "6"},
		{"N-N", "0"},
		{"N*N+N*2-1", "N*N+2*N-1"},
		{"(N+1)*(N-1)", "N*N-1"},
		{"2*(s0+3)", "2*s0+6"},
		{"floor(s0/2)", "floor(s0/2)"},
		{"batch size", "batch size"},
		{"-N+5", "-N+5"},
		{"N**2", "N**2"}, // a power is not read as a polynomial: opaque
	}
	for _, c := range cases {
		got := CanonDim(S(c.in)).String()
		if got != c.want {
			t.Errorf("CanonDim(%q) = %q, want %q", c.in, got, c.want)
		}
		// Canonical text must be a fixed point.
		if again := CanonDim(S(got)).String(); again != got {
			t.Errorf("CanonDim(%q) = %q is not canonical (→ %q)", c.in, got, again)
		}
	}
}

func TestDimArithmetic(t *testing.T) {
	N, S2, H := S("N"), S("S"), S("H")
	cases := []struct {
		name string
		got  Dim
		want string
	}{
		{"N*N", DimMul(N, N), "N*N"},
		{"2*N", DimMul(D(2), N), "2*N"},
		{"N*2", DimMul(N, D(2)), "2*N"},
		{"N+1", DimAdd(N, D(1)), "N+1"},
		{"1+N", DimAdd(D(1), N), "N+1"},
		{"S*N", DimMul(S2, N), "N*S"},
		{"N*S==S*N", DimMul(N, S2), "N*S"},
		{"N+N", DimAdd(N, N), "2*N"},
		{"(N+1)-1", DimSub(DimAdd(N, D(1)), D(1)), "N"},
		{"0*N", DimMul(D(0), N), "0"},
		{"0*?", DimMul(Unknown, D(0)), "0"},
		{"?+1", DimAdd(Unknown, D(1)), "?"},
		{"3-5", DimSub(D(3), D(5)), "-2"},
		{"product", DimProduct(N, N, H, D(32)), "32*H*N*N"},
		{"floordiv static", DimFloorDiv(D(7), D(2)), "3"},
		{"floordiv neg", DimFloorDiv(IntDim(-7), D(2)), "-4"},
		{"floordiv exact", DimFloorDiv(DimMul(N, D(4)), D(2)), "2*N"},
		{"floordiv inexact", DimFloorDiv(N, D(2)), "?"},
		{"opaque*2", DimMul(S("floor(s0/2)"), D(2)), "2*(floor(s0/2))"},
	}
	for _, c := range cases {
		if c.got.String() != c.want {
			t.Errorf("%s = %s, want %s", c.name, c.got, c.want)
		}
	}
	if !DimMul(N, S2).Equal(DimMul(S2, N)) {
		t.Error("N*S and S*N are not Equal")
	}
	if d := DimMul(S("floor(s0/2)"), D(2)); !CanonDim(d).Equal(d) {
		t.Errorf("opaque product %s does not read back to itself", d)
	}
}

func TestDimDivExact(t *testing.T) {
	N, H := S("N"), S("H")
	cases := []struct {
		a, b Dim
		want string
		ok   bool
	}{
		{D(12), D(4), "3", true},
		{D(12), D(5), "?", false},
		{D(12), D(0), "?", false},
		{DimProduct(N, N, H, D(8)), DimMul(H, D(8)), "N*N", true},
		{DimProduct(N, N, H, D(8)), N, "8*H*N", true},
		{DimMul(N, D(6)), D(4), "?", false},
		{DimMul(N, D(6)), D(3), "2*N", true},
		{N, H, "?", false},
		{N, N, "1", true},
		{S("N*N-1"), S("N+1"), "N-1", true},
		{S("N*N+1"), S("N+1"), "?", false},
		{Unknown, D(1), "?", false},
	}
	for _, c := range cases {
		got, ok := DimDivExact(c.a, c.b)
		if ok != c.ok || got.String() != c.want {
			t.Errorf("DimDivExact(%s, %s) = %s, %v; want %s, %v", c.a, c.b, got, ok, c.want, c.ok)
		}
	}
}

func TestEvalDim(t *testing.T) {
	env := map[string]int64{"N": 5, "S": 3, "floor(s0/2)": 4}
	cases := []struct {
		d    Dim
		want int64
		err  string
	}{
		{D(7), 7, ""},
		{S("N"), 5, ""},
		{S("N*N+2*N-1"), 34, ""},
		{S("N*S"), 15, ""},
		{DimMul(S("floor(s0/2)"), D(2)), 8, ""},
		{S("M"), 0, `symbol "M" has no value`},
		{Unknown, 0, "unknown"},
		{S("S-N"), 0, "evaluates to -2"},
		{S("N*N*N*N*N*N*N*N"), 390625, ""},
	}
	for _, c := range cases {
		got, err := EvalDim(c.d, env)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("EvalDim(%s) error = %v, want %q", c.d, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("EvalDim(%s) = %d, %v; want %d", c.d, got, err, c.want)
		}
	}
	if _, err := EvalDim(S("N*N*N*N"), map[string]int64{"N": 1 << 20}); err == nil || !strings.Contains(err.Error(), "overflow") {
		t.Errorf("EvalDim overflow error = %v", err)
	}
	got, err := EvalShape(Shape{S("N"), D(2), S("N*S")}, env)
	if err != nil || len(got) != 3 || got[0] != 5 || got[1] != 2 || got[2] != 15 {
		t.Errorf("EvalShape = %v, %v", got, err)
	}
	if _, err := EvalShape(Shape{S("N"), Unknown}, env); err == nil || !strings.Contains(err.Error(), "dim 1") {
		t.Errorf("EvalShape with unknown dim: error %v", err)
	}
}

func TestBindShape(t *testing.T) {
	env := map[string]int64{}
	if err := BindShape(Shape{S("N"), S("N"), D(4)}, []int64{3, 3, 4}, env); err != nil {
		t.Fatal(err)
	}
	if env["N"] != 3 {
		t.Errorf("N bound to %d", env["N"])
	}
	if err := BindShape(Shape{S("N"), D(4)}, []int64{5, 4}, env); err == nil {
		t.Error("rebinding N to another size was accepted")
	}
	if err := BindShape(Shape{S("N*N")}, []int64{9}, env); err != nil {
		t.Errorf("N*N = 9: %v", err)
	}
	if err := BindShape(Shape{S("N*N")}, []int64{8}, env); err == nil {
		t.Error("N*N = 8 accepted with N = 3")
	}
	if err := BindShape(Shape{S("2*M+1")}, []int64{9}, env); err != nil || env["M"] != 4 {
		t.Errorf("2*M+1 = 9: M = %d, %v", env["M"], err)
	}
	if err := BindShape(Shape{S("2*K")}, []int64{7}, env); err == nil {
		t.Error("2*K = 7 accepted")
	}
	if err := BindShape(Shape{S("M+1")}, []int64{6}, env); err == nil {
		t.Error("M+1 = 6 accepted with M = 4")
	}
	if err := BindShape(Shape{D(2)}, []int64{3}, env); err == nil {
		t.Error("static mismatch accepted")
	}
	if err := BindShape(Shape{D(2)}, []int64{2, 2}, env); err == nil {
		t.Error("rank mismatch accepted")
	}
}

func TestSymbolicLimits(t *testing.T) {
	// Repeated squaring of a sum must stop growing, not blow up.
	d := S("a+b+c+d")
	for i := 0; i < 6; i++ {
		d = DimMul(d, d)
	}
	if !d.IsUnknown() {
		t.Errorf("huge polynomial kept: %d chars", len(d.Sym))
	}
	// Coefficient overflow gives Unknown.
	big := DimMul(S("N"), D(1<<62))
	if got := DimMul(big, D(4)); !got.IsUnknown() {
		t.Errorf("overflowing coefficient gave %s", got)
	}
}

func FuzzCanonDim(f *testing.F) {
	for _, s := range []string{"N", "s0 + 1", "(N+1)*(N-1)", "floor(s0/2)", "((a", "2*(x)", "-(-N)", "a*(b+(c*d))"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := CanonDim(S(s))
		if d.IsSymbolic() {
			if again := CanonDim(d); again != d {
				t.Fatalf("CanonDim(%q) = %q, not a fixed point (%q)", s, d.Sym, again.Sym)
			}
		}
		_, _ = EvalDim(d, map[string]int64{"N": 3})
		_, _ = DimDivExact(d, S("N+1"))
	})
}
