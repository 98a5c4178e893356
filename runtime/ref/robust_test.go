package ref

import (
	"math"
	"math/rand"
	"testing"

	"github.com/of3c/of3c/graph"
)

// TestKernelsNeverPanic feeds every kernel random combinations of awkward
// inputs (empty, scalar, wrong dtype, huge or negative integers) and
// attributes. Errors are expected; a panic is a bug.
func TestKernelsNeverPanic(t *testing.T) {
	h := graph.Float32ToHalf(1.5)
	pool := []*graph.Tensor{
		f32(sh(), 1),
		f32(sh(2, 3), 1, -2, 3, float32(math.NaN()), float32(math.Inf(-1)), 0),
		f32(sh(0, 3)),
		f32(sh(1, 2, 2, 2), 1, 2, 3, 4, 5, 6, 7, 8),
		i64(sh(1), 1e12),
		i64(sh(2), -5, 3),
		i64(sh(), -1),
		i64(sh(4), 0, 1, 1, 0),
		boolT(sh(2, 3), true, false, true, false, true, true),
		tensorOf(t, graph.Int32, sh(3), 0, 1, 2),
		{DType: graph.Float16, Shape: sh(2), Data: []byte{byte(h), byte(h >> 8), byte(h), byte(h >> 8)}},
		nil,
	}
	attrSets := []attrs{
		nil,
		{"axis": intA(-1), "keepdims": intA(0)},
		{"axis": intA(7)},
		{"perm": ints(1, 0), "axes": ints(0)},
		{"axes": ints(0, 0)},
		{"equation": strA("ij,jk->ik")},
		{"equation": strA("...i,...i")},
		{"equation": strA("ii->")},
		{"to": intA(int64(graph.Int8))},
		{"to": intA(99)},
		{"mode": strA("reflect"), "reduction": strA("mul")},
		{"mode": strA("bias_only"), "batch_chunk": intA(1), "query_chunk": intA(1), "kv_chunk": intA(1)},
		{"num_outputs": intA(3), "split": ints(1, 1)},
		{"value": tensorA(i64(sh(1), 3)), "batch_dims": intA(1)},
		{"start": intA(-100), "end": intA(100), "upper": intA(0)},
		{"q_num_heads": intA(2), "kv_num_heads": intA(1), "is_causal": intA(1)},
	}
	rng := rand.New(rand.NewSource(7))
	for _, op := range Ops() {
		for trial := 0; trial < 400; trial++ {
			nIn := rng.Intn(5)
			ins := make([]*graph.Tensor, nIn)
			for k := range ins {
				ins[k] = pool[rng.Intn(len(pool))]
			}
			a := attrSets[rng.Intn(len(attrSets))]
			nOut := 1 + rng.Intn(3)
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("%s panicked (inputs %v, attrs %v): %v", op, describe(ins), a, r)
					}
				}()
				n := node(op, nOut, a)
				if d, o, ok := splitQualified(op); ok {
					n.Domain, n.Op = d, o
				}
				n.Opset = []int64{0, 9, 11, 13, 18, 23}[rng.Intn(6)]
				EvalNode(n, ins)
			}()
		}
	}
}

func describe(ins []*graph.Tensor) []string {
	out := make([]string, len(ins))
	for k, t := range ins {
		if t == nil {
			out[k] = "nil"
			continue
		}
		out[k] = t.Type().String()
	}
	return out
}
