package codegen

import (
	"fmt"
	"math"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/mlx"
)

// mlxDType maps a graph dtype to MLX's.
func mlxDType(dt graph.DType) (mlx.Dtype, error) {
	switch dt {
	case graph.Float32:
		return mlx.Float32, nil
	case graph.Float16:
		return mlx.Float16, nil
	case graph.BFloat16:
		return mlx.BFloat16, nil
	case graph.Float64:
		return mlx.Float64, nil
	case graph.Bool:
		return mlx.Bool, nil
	case graph.Int8:
		return mlx.Int8, nil
	case graph.Int16:
		return mlx.Int16, nil
	case graph.Int32:
		return mlx.Int32, nil
	case graph.Int64:
		return mlx.Int64, nil
	case graph.Uint8:
		return mlx.Uint8, nil
	case graph.Uint16:
		return mlx.Uint16, nil
	case graph.Uint32:
		return mlx.Uint32, nil
	case graph.Uint64:
		return mlx.Uint64, nil
	}
	return 0, fmt.Errorf("dtype %s is not supported by MLX", dt)
}

// graphDType is the inverse of mlxDType.
func graphDType(dt mlx.Dtype) (graph.DType, error) {
	switch dt {
	case mlx.Float32:
		return graph.Float32, nil
	case mlx.Float16:
		return graph.Float16, nil
	case mlx.BFloat16:
		return graph.BFloat16, nil
	case mlx.Float64:
		return graph.Float64, nil
	case mlx.Bool:
		return graph.Bool, nil
	case mlx.Int8:
		return graph.Int8, nil
	case mlx.Int16:
		return graph.Int16, nil
	case mlx.Int32:
		return graph.Int32, nil
	case mlx.Int64:
		return graph.Int64, nil
	case mlx.Uint8:
		return graph.Uint8, nil
	case mlx.Uint16:
		return graph.Uint16, nil
	case mlx.Uint32:
		return graph.Uint32, nil
	case mlx.Uint64:
		return graph.Uint64, nil
	}
	return graph.Undefined, fmt.Errorf("MLX dtype %v has no graph dtype", dt)
}

func intsOf(s []int64) []int {
	out := make([]int, len(s))
	for i, v := range s {
		out[i] = int(v)
	}
	return out
}

func int64sOf(s []int) []int64 {
	out := make([]int64, len(s))
	for i, v := range s {
		out[i] = int64(v)
	}
	return out
}

// f16Max is the largest finite float16.
const f16Max = 65504

// convertTensor re-encodes t as dtype to. With clampF16, float values beyond
// the float16 range are clamped to ±65504 instead of becoming ±inf (see the
// package documentation on fp16). Float→int conversion truncates toward
// zero, like a C cast.
func convertTensor(t *graph.Tensor, to graph.DType, clampF16 bool) (*graph.Tensor, error) {
	if t.DType == to {
		return t, nil
	}
	if to.IsFloat() || t.DType.IsFloat() {
		vals, err := t.Float64s()
		if err != nil {
			return nil, err
		}
		if clampF16 && to == graph.Float16 {
			for i, v := range vals {
				if !math.IsInf(v, 0) && !math.IsNaN(v) {
					vals[i] = math.Max(-f16Max, math.Min(f16Max, v))
				}
			}
		}
		if to == graph.Bool {
			for i, v := range vals {
				if v != 0 {
					vals[i] = 1
				}
			}
		}
		return graph.NewTensorFromFloat64s(to, t.Shape, vals)
	}
	ints, err := t.Int64s()
	if err != nil {
		return nil, err
	}
	return intTensor(to, t.Shape, ints)
}

// intTensor encodes int64 values as an integer or bool tensor (wrapping).
func intTensor(dt graph.DType, shape []int64, vals []int64) (*graph.Tensor, error) {
	sz := dt.Size()
	if sz == 0 || !(dt.IsInt() || dt == graph.Bool) {
		return nil, fmt.Errorf("cannot build a %s tensor from integers", dt)
	}
	b := make([]byte, sz*len(vals))
	for i, v := range vals {
		u := uint64(v)
		if dt == graph.Bool && v != 0 {
			u = 1
		}
		for k := 0; k < sz; k++ {
			b[i*sz+k] = byte(u >> (8 * k))
		}
	}
	return &graph.Tensor{DType: dt, Shape: append([]int64{}, shape...), Data: b}, nil
}

// uploadTensor builds an MLX array holding t converted to dtype dev.
func uploadTensor(s *mlx.Scope, t *graph.Tensor, dev graph.DType, opts Options) *mlx.Array {
	if s.Err() != nil {
		return nil
	}
	ct, err := convertTensor(t, dev, opts.Precision == "fp16")
	if err != nil {
		s.Fail(err)
		return nil
	}
	dt, err := mlxDType(dev)
	if err != nil {
		s.Fail(err)
		return nil
	}
	return s.FromBytes(ct.Data, dt, intsOf(ct.Shape)...)
}

// val is a value while tracing: a device array, a host tensor whose
// contents are known in Go, or both (a host value materialised on use).
type val struct {
	a     *mlx.Array
	host  *graph.Tensor
	dt    graph.DType // the graph dtype (before precision mapping)
	shape []int64
}

func (v *val) rank() int { return len(v.shape) }

func (v *val) numel() int64 {
	n := int64(1)
	for _, d := range v.shape {
		n *= d
	}
	return n
}

func hostVal(t *graph.Tensor) *val {
	return &val{host: t, dt: t.DType, shape: append([]int64{}, t.Shape...)}
}
