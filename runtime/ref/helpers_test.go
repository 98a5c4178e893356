package ref

import (
	"math"
	"testing"

	"github.com/of3c/of3c/graph"
)

// node builds a detached node with nOut outputs for EvalNode.
func node(op string, nOut int, attrs map[string]graph.Attr) *graph.Node {
	n := &graph.Node{Op: op, Attrs: attrs, Name: op + "_test"}
	for k := 0; k < nOut; k++ {
		n.Outputs = append(n.Outputs, &graph.Value{Name: op + "_out"})
	}
	return n
}

func f32(shape []int64, vals ...float32) *graph.Tensor { return graph.NewTensorF32(shape, vals) }
func i64(shape []int64, vals ...int64) *graph.Tensor   { return graph.NewTensorI64(shape, vals) }

func tensorOf(t *testing.T, dt graph.DType, shape []int64, vals ...float64) *graph.Tensor {
	t.Helper()
	r, err := graph.NewTensorFromFloat64s(dt, shape, vals)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func boolT(shape []int64, vals ...bool) *graph.Tensor {
	b := make([]byte, len(vals))
	for k, v := range vals {
		if v {
			b[k] = 1
		}
	}
	return &graph.Tensor{DType: graph.Bool, Shape: shape, Data: b}
}

// eval runs one node and fails the test on error.
func eval(t *testing.T, n *graph.Node, ins ...*graph.Tensor) []*graph.Tensor {
	t.Helper()
	outs, err := EvalNode(n, ins)
	if err != nil {
		t.Fatalf("%s: %v", n.Op, err)
	}
	return outs
}

// expect checks dtype, shape and values (within tol; NaN matches NaN).
func expect(t *testing.T, got *graph.Tensor, dt graph.DType, shape []int64, want []float64, tol float64) {
	t.Helper()
	if got == nil {
		t.Fatalf("no output")
	}
	if got.DType != dt {
		t.Fatalf("dtype %s, want %s", got.DType, dt)
	}
	if !equalShape(got.Shape, shape) {
		t.Fatalf("shape %v, want %v", got.Shape, shape)
	}
	vals, err := got.Float64s()
	if err != nil {
		t.Fatal(err)
	}
	if len(vals) != len(want) {
		t.Fatalf("%d values, want %d", len(vals), len(want))
	}
	for k := range vals {
		g, w := vals[k], want[k]
		if math.IsNaN(w) && math.IsNaN(g) {
			continue
		}
		if g == w {
			continue
		}
		if math.Abs(g-w) > tol*(1+math.Abs(w)) || math.IsNaN(g) || math.IsNaN(w) {
			t.Fatalf("element %d = %v, want %v (all: %v, want %v)", k, g, w, vals, want)
		}
	}
}

func ints(v ...int64) graph.Attr         { return graph.Attr{Kind: graph.AttrInts, Ints: v} }
func intA(v int64) graph.Attr            { return graph.Attr{Kind: graph.AttrInt, Int: v} }
func floatA(v float32) graph.Attr        { return graph.Attr{Kind: graph.AttrFloat, Float: v} }
func strA(v string) graph.Attr           { return graph.Attr{Kind: graph.AttrString, Str: v} }
func tensorA(v *graph.Tensor) graph.Attr { return graph.Attr{Kind: graph.AttrTensor, Tensor: v} }

type attrs = map[string]graph.Attr

func fl(v ...float64) []float64 { return v }
func sh(v ...int64) []int64     { return v }

// splitQualified splits "domain.Op" into its parts.
func splitQualified(q string) (domain, op string, ok bool) {
	for k := len(q) - 1; k >= 0; k-- {
		if q[k] == '.' {
			return q[:k], q[k+1:], true
		}
	}
	return "", q, false
}

// zeros is a float32 tensor of n zeros with the given shape.
func zeros(n int, shape ...int64) *graph.Tensor { return f32(shape, make([]float32, n)...) }
