package graph

import (
	"strings"
	"testing"
)

// fuzzBytes hands out fuzz input a byte at a time (zeros once exhausted).
type fuzzBytes struct {
	b []byte
	i int
}

func (f *fuzzBytes) next() int {
	if f.i >= len(f.b) {
		return 0
	}
	f.i++
	return int(f.b[f.i-1])
}

func (f *fuzzBytes) small() int64 { return int64(f.next()%9) - 3 } // -3..5

func (f *fuzzBytes) dim() Dim {
	switch f.next() % 8 {
	case 0:
		return S("N")
	case 1:
		return Unknown
	case 2:
		return D(1 << 40)
	case 3:
		return S("N*N")
	default:
		return D(int64(f.next() % 5))
	}
}

func (f *fuzzBytes) ints() []int64 {
	out := make([]int64, f.next()%5)
	for i := range out {
		if f.next()%16 == 0 {
			out[i] = 1 << 40
		} else {
			out[i] = f.small()
		}
	}
	return out
}

// FuzzInferNode builds random nodes of every registered op with random
// types, constant inputs and attributes: inference must return types or an
// error, never panic, and never a negative dim.
func FuzzInferNode(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{40, 2, 1, 3, 3, 0, 2, 7, 1, 1, 200, 3, 4})
	f.Add([]byte{77, 3, 2, 1, 0, 5, 5, 5, 9, 9, 9, 1, 2, 3, 4, 5, 6})
	var ops []string
	for _, name := range SupportedOps() {
		if !strings.Contains(name, ".") {
			ops = append(ops, name)
		}
	}
	dtypes := []DType{Float32, Int64, Bool, Int32, Float16, Undefined}
	opsets := []int64{7, 9, 11, 13, 18, 23}
	attrNames := []string{"axis", "axes", "perm", "keepdims", "split", "num_outputs", "to", "starts", "ends",
		"pads", "k", "allowzero", "noop_with_empty_axes", "batch_dims", "transA", "transB", "start", "end",
		"q_num_heads", "kv_num_heads", "value", "value_ints", "equation", "mode", "stash_type"}
	equations := []string{"ij,jk->ik", "...ij", "ii", "bhqc,bhkc->bhqk", "i,i", "ab->", ".."}
	f.Fuzz(func(t *testing.T, data []byte) {
		fb := &fuzzBytes{b: data}
		def := LookupOp("", ops[fb.next()%len(ops)])
		g := New("f", opsets[fb.next()%len(opsets)])
		maxIn := def.MaxInputs
		if maxIn < 0 || maxIn > def.MinInputs+3 {
			maxIn = def.MinInputs + 3
		}
		nin := def.MinInputs + fb.next()%(maxIn-def.MinInputs+1)
		ins := make([]*Value, nin)
		for i := range ins {
			switch fb.next() % 6 {
			case 0:
				vals := fb.ints()
				ins[i] = g.AddConst("", NewTensorI64([]int64{int64(len(vals))}, vals))
			case 1:
				ins[i] = g.AddConst("", NewTensorI64(nil, []int64{fb.small()}))
			case 2:
				if i >= def.MinInputs {
					continue // omitted optional input
				}
				fallthrough
			default:
				typ := Type{DType: dtypes[fb.next()%len(dtypes)]}
				if fb.next()%8 != 0 {
					typ.Ranked = true
					typ.Shape = Shape{}
					for r := fb.next() % 5; r > 0; r-- {
						typ.Shape = append(typ.Shape, fb.dim())
					}
				}
				ins[i] = g.AddInput(g.UniqueName("x"), typ)
				if fb.next()%4 == 0 {
					sv := Shape{}
					for k := fb.next() % 4; k > 0; k-- {
						sv = append(sv, fb.dim())
					}
					ins[i].ShapeValue = sv
				}
			}
		}
		attrs := map[string]Attr{}
		for k := fb.next() % 4; k > 0; k-- {
			name := attrNames[fb.next()%len(attrNames)]
			switch name {
			case "axes", "perm", "split", "starts", "ends", "pads", "value_ints":
				attrs[name] = Attr{Kind: AttrInts, Ints: fb.ints()}
			case "value":
				vals := fb.ints()
				attrs[name] = Attr{Kind: AttrTensor, Tensor: NewTensorI64([]int64{int64(len(vals))}, vals)}
			case "equation":
				attrs[name] = Attr{Kind: AttrString, Str: equations[fb.next()%len(equations)]}
			case "mode":
				attrs[name] = Attr{Kind: AttrString, Str: []string{"constant", "edge", "bogus"}[fb.next()%3]}
			default:
				attrs[name] = Attr{Kind: AttrInt, Int: fb.small()}
			}
		}
		maxOut := def.MaxOutputs
		if maxOut < 0 || maxOut > def.MinOutputs+2 {
			maxOut = def.MinOutputs + 2
		}
		nout := def.MinOutputs + fb.next()%(maxOut-def.MinOutputs+1)
		outs := make([]string, nout)
		for i := range outs {
			outs[i] = "y"
		}
		n := g.AddNode("", def.Op, ins, outs, attrs)
		types, _, err := InferNode(n)
		if err != nil {
			return
		}
		for i, typ := range types {
			if !typ.Ranked && typ.Shape != nil {
				t.Errorf("%s output %d: unranked type with shape %s", def.Op, i, typ.Shape)
			}
			for _, d := range typ.Shape {
				if v, ok := DimInt(d); ok && v < 0 {
					t.Errorf("%s output %d: negative dim in %s", def.Op, i, typ)
				}
			}
		}
	})
}
