package passes

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/runtime/ref"
)

// testInputs makes seeded inputs for g at dims: N(0,1)-ish floats, and for
// inputs whose name contains "mask" 0/1 values where row 1 (or the value at
// index 1 for rank 1) is fully masked and the rest ~80% present.
func testInputs(t *testing.T, g *graph.Graph, dims map[string]int64, seed uint64) map[string]*graph.Tensor {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	in := map[string]*graph.Tensor{}
	for _, v := range g.Inputs {
		shape, err := graph.EvalShape(v.Type.Shape, dims)
		if err != nil {
			t.Fatalf("input %s: %v", v, err)
		}
		n := int64(1)
		for _, d := range shape {
			n *= d
		}
		vals := make([]float64, n)
		isMask := strings.Contains(v.Name, "mask")
		last := int64(1)
		if len(shape) > 0 {
			last = shape[len(shape)-1]
		}
		for i := range vals {
			switch {
			case isMask && len(shape) >= 2 && (int64(i)/last)%shape[len(shape)-2] == 1:
				vals[i] = 0
			case isMask && len(shape) == 1 && i == 1:
				vals[i] = 0
			case isMask && (i == 0 || int64(i)%last == 0):
				vals[i] = 1
			case isMask:
				if r.Float64() < 0.8 {
					vals[i] = 1
				}
			default:
				vals[i] = r.NormFloat64()
			}
		}
		tt, err := graph.NewTensorFromFloat64s(v.Type.DType, shape, vals)
		if err != nil {
			t.Fatal(err)
		}
		in[v.Name] = tt
	}
	return in
}

// maxDiff compares two output maps elementwise; a NaN where want is NaN is
// equal, and so is a finite value where want is NaN when allowNaNWant (the
// fused op's documented behaviour for −inf masks).
func maxDiff(want, got map[string]*graph.Tensor, allowNaNWant bool) (float64, error) {
	worst := 0.0
	for name, w := range want {
		gt, ok := got[name]
		if !ok {
			return 0, fmt.Errorf("output %s missing", name)
		}
		if fmt.Sprint(w.Shape) != fmt.Sprint(gt.Shape) {
			return 0, fmt.Errorf("output %s: shape %v, want %v", name, gt.Shape, w.Shape)
		}
		wv, err := w.Float64s()
		if err != nil {
			return 0, err
		}
		gv, err := gt.Float64s()
		if err != nil {
			return 0, err
		}
		for i := range wv {
			if math.IsNaN(wv[i]) {
				if math.IsNaN(gv[i]) || allowNaNWant {
					continue
				}
				return 0, fmt.Errorf("output %s[%d]: %g, want NaN", name, i, gv[i])
			}
			if math.IsNaN(gv[i]) {
				return 0, fmt.Errorf("output %s[%d]: NaN, want %g", name, i, wv[i])
			}
			d := math.Abs(wv[i]-gv[i]) / math.Max(1, math.Abs(wv[i]))
			worst = math.Max(worst, d)
		}
	}
	return worst, nil
}

// checkFusedMatches runs g on the reference executor before and after the
// passes and requires outputs within tol (relative to max(1,|want|)).
func runBoth(t *testing.T, g *graph.Graph, opts Options, dims map[string]int64, seed uint64) (before, after map[string]*graph.Tensor, optimized *graph.Graph, log *Log) {
	t.Helper()
	inputs := testInputs(t, g, dims, seed)
	orig := graph.Clone(g)
	before, err := ref.Run(orig, inputs)
	if err != nil {
		t.Fatalf("reference run before passes: %v", err)
	}
	opts.Verify = true
	log, err = Run(g, opts)
	if err != nil {
		t.Fatalf("passes: %v", err)
	}
	after, err = ref.Run(g, inputs)
	if err != nil {
		t.Fatalf("reference run after passes: %v\n%s", err, graph.Format(g))
	}
	return before, after, g, log
}
