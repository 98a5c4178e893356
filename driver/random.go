package driver

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/of3c/of3c/graph"
)

// RandomInputs makes inputs for the graph's signature at the given symbol
// sizes, reproducibly from seed: floats standard normal, inputs whose name
// ends in "mask" 0/1 (nine in ten are 1), other integers 0/1, bools random.
// Every symbol the inputs use must be in dims, and dims may name no other.
func RandomInputs(inputs []*graph.Value, dims map[string]int64, seed uint64) (map[string]*graph.Tensor, error) {
	used := map[string]bool{}
	for _, v := range inputs {
		if !v.Type.Ranked {
			return nil, fmt.Errorf("input %q has no declared rank; give it as a file", v.Name)
		}
		for _, d := range v.Type.Shape {
			for _, s := range graph.DimSymbols(d) {
				used[s] = true
			}
		}
	}
	var missing, extra []string
	for s := range used {
		if _, ok := dims[s]; !ok {
			missing = append(missing, s)
		}
	}
	for s := range dims {
		if !used[s] {
			extra = append(extra, s)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		return nil, fmt.Errorf("no size for %s (the inputs are %s)", strings.Join(missing, ", "), signature(inputs))
	}
	if len(extra) > 0 {
		return nil, fmt.Errorf("the model's inputs have no dim %s (they are %s)", strings.Join(extra, ", "), signature(inputs))
	}
	r := rand.New(rand.NewPCG(seed, 0x6f6633632d726e64))
	out := map[string]*graph.Tensor{}
	for _, v := range inputs {
		shape, err := graph.EvalShape(v.Type.Shape, dims)
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", v.Name, err)
		}
		n := int64(1)
		for _, d := range shape {
			if d > 0 && n > (1<<40)/d {
				return nil, fmt.Errorf("input %q: shape %v is too large to generate", v.Name, shape)
			}
			n *= d
		}
		isMask := strings.HasSuffix(strings.ToLower(v.Name), "mask")
		vals := make([]float64, n)
		for i := range vals {
			switch {
			case isMask:
				if r.IntN(10) > 0 {
					vals[i] = 1
				}
			case v.Type.DType == graph.Bool || !isFloat(v.Type.DType):
				vals[i] = float64(r.IntN(2))
			default:
				vals[i] = r.NormFloat64()
			}
		}
		t, err := graph.NewTensorFromFloat64s(v.Type.DType, shape, vals)
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", v.Name, err)
		}
		out[v.Name] = t
	}
	return out, nil
}

func isFloat(dt graph.DType) bool {
	switch dt {
	case graph.Float32, graph.Float64, graph.Float16, graph.BFloat16:
		return true
	}
	return false
}

func signature(vals []*graph.Value) string {
	var parts []string
	for _, v := range vals {
		parts = append(parts, v.Name+" "+v.Type.String())
	}
	return strings.Join(parts, ", ")
}
