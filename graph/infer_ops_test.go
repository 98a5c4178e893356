package graph

import (
	"strings"
	"testing"
)

func TestInferSliceSplitPadTile(t *testing.T) {
	big := int64(1<<63 - 1)
	runInferCases(t, []inferCase{
		{name: "slice static", op: "Slice", ins: []in{ty("f32[10,8]"), ci(2), ci(-1), ci(0)}, want: []string{"f32[7,8]"}},
		{name: "slice step", op: "Slice", ins: []in{ty("f32[10,8]"), ci(1), ci(big), ci(1), ci(3)}, want: []string{"f32[10,3]"}},
		{name: "slice reverse", op: "Slice", ins: []in{ty("f32[10]"), ci(-1), ci(-big), ci(0), ci(-1)}, want: []string{"f32[10]"}},
		{name: "slice reverse step 2", op: "Slice", ins: []in{ty("f32[10]"), ci(8), ci(1), ci(0), ci(-2)}, want: []string{"f32[4]"}},
		{name: "slice clamp", op: "Slice", ins: []in{ty("f32[5]"), ci(-100), ci(100)}, want: []string{"f32[5]"}},
		{name: "slice empty", op: "Slice", ins: []in{ty("f32[5]"), ci(4), ci(2)}, want: []string{"f32[0]"}},
		{name: "slice sym tail", op: "Slice", ins: []in{ty("f32[N,4]"), ci(1), ci(big), ci(0)}, want: []string{"f32[N-1,4]"}},
		{name: "slice sym drop last", op: "Slice", ins: []in{ty("f32[N,4]"), ci(0), ci(-1), ci(0)}, want: []string{"f32[N-1,4]"}},
		{name: "slice sym last two", op: "Slice", ins: []in{ty("f32[N]"), ci(-2), ci(big)}, want: []string{"f32[2]"}},
		{name: "slice sym head", op: "Slice", ins: []in{ty("f32[N]"), ci(0), ci(3)}, want: []string{"f32[?]"}},
		{name: "slice sym end", op: "Slice", ins: []in{ty("f32[N,8]"), ci(0), sv("i64[1]", Shape{S("N")}), ci(0)}, want: []string{"f32[N,8]"}},
		{name: "slice unknown args", op: "Slice", ins: []in{ty("f32[N,8]"), ty("i64[1]"), ty("i64[1]"), ci(1)}, want: []string{"f32[N,?]"}},
		{name: "slice step 0", op: "Slice", ins: []in{ty("f32[5]"), ci(0), ci(2), ci(0), ci(0)}, err: "step 0"},
		{name: "slice attrs opset 9", op: "Slice", opset: 9, ins: []in{ty("f32[5,6]")}, attrs: attrs("starts", ais(1, 2), "ends", ais(3, 100)), want: []string{"f32[2,4]"}},
		{name: "slice sv", op: "Slice", ins: []in{sv("i64[4]", Shape{S("B"), S("N"), D(4), D(32)}), ci(-2), ci(big)}, want: []string{"i64[2]"}, sv: []string{"[4,32]"}},
		{name: "slice sv step", op: "Slice", ins: []in{sv("i64[4]", Shape{S("B"), S("N"), D(4), D(32)}), ci(-1), ci(-big), ci(0), ci(-2)}, want: []string{"i64[2]"}, sv: []string{"[32,N]"}},

		{name: "split equal", op: "Split", opset: 13, ins: []in{ty("f32[N,8]")}, attrs: attrs("axis", ai(1)), nout: 2, want: []string{"f32[N,4]", "f32[N,4]"}},
		{name: "split input", op: "Split", opset: 13, ins: []in{ty("f32[N,8]"), ci(3, 5)}, attrs: attrs("axis", ai(-1)), nout: 2, want: []string{"f32[N,3]", "f32[N,5]"}},
		{name: "split attr", op: "Split", opset: 11, ins: []in{ty("f32[6,N]")}, attrs: attrs("split", ais(1, 5)), nout: 2, want: []string{"f32[1,N]", "f32[5,N]"}},
		{name: "split num_outputs", op: "Split", opset: 18, ins: []in{ty("f32[7]")}, attrs: attrs("num_outputs", ai(3)), nout: 3, want: []string{"f32[3]", "f32[3]", "f32[1]"}},
		{name: "split num_outputs symbolic", op: "Split", opset: 18, ins: []in{ty("f32[2*N]")}, attrs: attrs("num_outputs", ai(2)), nout: 2, want: []string{"f32[N]", "f32[N]"}},
		{name: "split num_outputs mismatch", op: "Split", opset: 18, ins: []in{ty("f32[6]")}, attrs: attrs("num_outputs", ai(3)), nout: 2, err: "num_outputs=3"},
		{name: "split uneven", op: "Split", opset: 13, ins: []in{ty("f32[7]")}, nout: 2, err: "does not split evenly"},
		{name: "split bad sum", op: "Split", opset: 13, ins: []in{ty("f32[7]"), ci(3, 3)}, nout: 2, err: "sums to 6"},
		{name: "split symbolic unknown", op: "Split", opset: 13, ins: []in{ty("f32[N]")}, nout: 2, want: []string{"f32[?]", "f32[?]"}},
		{name: "split both", op: "Split", opset: 18, ins: []in{ty("f32[6]"), ci(3, 3)}, attrs: attrs("num_outputs", ai(2)), nout: 2, err: "both given"},

		{name: "pad input", op: "Pad", ins: []in{ty("f32[N,4]"), ci(0, 1, 0, 2)}, want: []string{"f32[N,7]"}},
		{name: "pad symbolic", op: "Pad", ins: []in{ty("f32[N,4]"), ci(1, 0, 1, 0)}, want: []string{"f32[N+2,4]"}},
		{name: "pad negative", op: "Pad", ins: []in{ty("f32[N,4]"), ci(0, -1, 0, -1)}, want: []string{"f32[N,2]"}},
		{name: "pad too negative", op: "Pad", ins: []in{ty("f32[3]"), ci(-2, -2)}, err: "negative"},
		{name: "pad axes", op: "Pad", ins: []in{ty("f32[N,4,5]"), ci(1, 1), cs(0), ci(-1)}, want: []string{"f32[N,4,7]"}},
		{name: "pad attr opset 2", op: "Pad", opset: 2, ins: []in{ty("f32[3,4]")}, attrs: attrs("pads", ais(1, 1, 1, 1)), want: []string{"f32[5,6]"}},
		{name: "pad count", op: "Pad", ins: []in{ty("f32[3,4]"), ci(1, 1)}, err: "pads has 2 entries, want 4"},
		{name: "pad mode", op: "Pad", ins: []in{ty("f32[3,4]"), ci(1, 1, 1, 1)}, attrs: attrs("mode", astr("circular")), err: "mode"},
		{name: "pad unknown", op: "Pad", ins: []in{ty("f32[3,4]"), ty("i64[4]")}, want: []string{"f32[?,?]"}},

		{name: "tile", op: "Tile", ins: []in{ty("f32[N,4]"), ci(2, 3)}, want: []string{"f32[2*N,12]"}},
		{name: "tile count", op: "Tile", ins: []in{ty("f32[N,4]"), ci(2)}, err: "repeats has 1 entries"},
		{name: "tile unknown", op: "Tile", ins: []in{ty("f32[N,4]"), ty("i64[2]")}, want: []string{"f32[?,?]"}},
	})
}

func TestInferShapeTensors(t *testing.T) {
	runInferCases(t, []inferCase{
		{name: "shape", op: "Shape", ins: []in{ty("f32[N,N,128]")}, want: []string{"i64[3]"}, sv: []string{"[N,N,128]"}},
		{name: "shape start end", op: "Shape", opset: 15, ins: []in{ty("f32[B,N,4,32]")}, attrs: attrs("start", ai(1), "end", ai(-1)), want: []string{"i64[2]"}, sv: []string{"[N,4]"}},
		{name: "shape start past end", op: "Shape", opset: 15, ins: []in{ty("f32[B,N]")}, attrs: attrs("start", ai(5)), want: []string{"i64[0]"}, sv: []string{"[]"}},
		{name: "shape unranked", op: "Shape", ins: []in{ty("f32[*]")}, want: []string{"i64[?]"}},
		{name: "size", op: "Size", ins: []in{ty("f32[N,N,4]")}, want: []string{"i64[]"}, sv: []string{"[4*N*N]"}},
		{name: "constant of shape", op: "ConstantOfShape", ins: []in{sv("i64[2]", Shape{S("N"), D(3)})}, want: []string{"f32[N,3]"}},
		{name: "constant of shape value", op: "ConstantOfShape", ins: []in{ci(3)}, attrs: attrs("value", at(NewTensorI64([]int64{1}, []int64{-1}))), want: []string{"i64[3]"}, sv: []string{"[-1,-1,-1]"}},
		{name: "constant of shape negative", op: "ConstantOfShape", ins: []in{ci(3, -2)}, err: "negative"},
		{name: "constant of shape unknown", op: "ConstantOfShape", ins: []in{ty("i64[2]")}, want: []string{"f32[?,?]"}},
		{name: "constant of huge shape", op: "ConstantOfShape", ins: []in{ci(1 << 40)}, attrs: attrs("value", at(NewTensorI64([]int64{1}, []int64{0}))), want: []string{"i64[1099511627776]"}, sv: []string{""}},
		{name: "constant value", op: "Constant", attrs: attrs("value", at(NewTensorI64([]int64{2}, []int64{0, -1}))), want: []string{"i64[2]"}, sv: []string{"[0,-1]"}},
		{name: "constant value_ints", op: "Constant", attrs: attrs("value_ints", ais(4, 5, 6)), want: []string{"i64[3]"}, sv: []string{"[4,5,6]"}},
		{name: "constant value_int", op: "Constant", attrs: attrs("value_int", ai(7)), want: []string{"i64[]"}, sv: []string{"[7]"}},
		{name: "constant value_float", op: "Constant", attrs: attrs("value_float", af(1.5)), want: []string{"f32[]"}},
		{name: "constant value_floats", op: "Constant", attrs: attrs("value_floats", Attr{Kind: AttrFloats, Floats: []float32{1, 2}}), want: []string{"f32[2]"}},
		{name: "constant none", op: "Constant", err: "exactly one value attribute"},
		{name: "constant two", op: "Constant", attrs: attrs("value_int", ai(1), "value_float", af(1)), err: "found 2"},
		{name: "range int", op: "Range", ins: []in{cs(0), cs(10), cs(3)}, want: []string{"i64[4]"}, sv: []string{"[0,3,6,9]"}},
		{name: "range down", op: "Range", ins: []in{cs(10), cs(4), cs(-2)}, want: []string{"i64[3]"}, sv: []string{"[10,8,6]"}},
		{name: "range empty", op: "Range", ins: []in{cs(5), cs(1), cs(1)}, want: []string{"i64[0]"}, sv: []string{"[]"}},
		{name: "range float", op: "Range", ins: []in{{c: NewTensorF32(nil, []float32{0})}, {c: NewTensorF32(nil, []float32{1})}, {c: NewTensorF32(nil, []float32{0.25})}}, want: []string{"f32[4]"}},
		{name: "range symbolic", op: "Range", ins: []in{cs(0), sv("i64[]", Shape{S("N")}), cs(1)}, want: []string{"i64[N]"}},
		{name: "range huge", op: "Range", ins: []in{cs(0), cs(1 << 40), cs(1)}, want: []string{"i64[1099511627776]"}, sv: []string{""}},
		{name: "range unknown", op: "Range", ins: []in{cs(0), ty("i64[]"), cs(1)}, want: []string{"i64[?]"}},
		{name: "range delta 0", op: "Range", ins: []in{cs(0), cs(4), cs(0)}, err: "delta is 0"},
		{name: "range types", op: "Range", ins: []in{cs(0), ty("i32[]"), cs(1)}, err: "i32"},
	})
}

func TestInferShapeValueArithmetic(t *testing.T) {
	nn := Shape{S("N"), S("N"), D(128)}
	runInferCases(t, []inferCase{
		{name: "gather one", op: "Gather", ins: []in{sv("i64[3]", nn), cs(0)}, want: []string{"i64[]"}, sv: []string{"[N]"}},
		{name: "gather many", op: "Gather", ins: []in{sv("i64[3]", nn), ci(2, -3)}, want: []string{"i64[2]"}, sv: []string{"[128,N]"}},
		{name: "gather oob", op: "Gather", ins: []in{sv("i64[3]", nn), cs(3)}, err: "out of range"},
		{name: "mul", op: "Mul", ins: []in{sv("i64[]", Shape{S("N")}), sv("i64[]", Shape{S("N")})}, want: []string{"i64[]"}, sv: []string{"[N*N]"}},
		{name: "mul broadcast", op: "Mul", ins: []in{sv("i64[2]", Shape{S("N"), D(3)}), cs(2)}, want: []string{"i64[2]"}, sv: []string{"[2*N,6]"}},
		{name: "add", op: "Add", ins: []in{sv("i64[1]", Shape{S("N")}), ci(1)}, want: []string{"i64[1]"}, sv: []string{"[N+1]"}},
		{name: "sub", op: "Sub", ins: []in{sv("i64[1]", Shape{S("N")}), ci(1)}, want: []string{"i64[1]"}, sv: []string{"[N-1]"}},
		{name: "div exact", op: "Div", ins: []in{sv("i64[]", Shape{S("4*H")}), cs(4)}, want: []string{"i64[]"}, sv: []string{"[H]"}},
		{name: "div inexact", op: "Div", ins: []in{sv("i64[]", Shape{S("N")}), cs(4)}, want: []string{"i64[]"}, sv: []string{"[?]"}},
		{name: "div trunc", op: "Div", ins: []in{ci(-7, 7), ci(2)}, want: []string{"i64[2]"}, sv: []string{"[-3,3]"}},
		{name: "mod", op: "Mod", ins: []in{ci(-7, 7), ci(3)}, want: []string{"i64[2]"}, sv: []string{"[2,1]"}},
		{name: "neg", op: "Neg", ins: []in{sv("i64[1]", Shape{S("N")})}, want: []string{"i64[1]"}, sv: []string{"[-N]"}},
		{name: "float no sv", op: "Mul", ins: []in{sv("f32[]", Shape{S("N")}), sv("f32[]", Shape{S("N")})}, want: []string{"f32[]"}, sv: []string{""}},
		{name: "equal -1", op: "Equal", ins: []in{sv("i64[3]", nn), ci(-1)}, want: []string{"bool[3]"}, sv: []string{"[0,0,0]"}},
		{name: "equal undecidable", op: "Equal", ins: []in{sv("i64[2]", Shape{S("N"), D(4)}), ci(4)}, want: []string{"bool[2]"}, sv: []string{"[?,1]"}},
		{name: "where", op: "Where", ins: []in{{c: &Tensor{DType: Bool, Shape: []int64{3}, Data: []byte{1, 0, 1}}}, ci(-1, -1, -1), sv("i64[3]", nn)}, want: []string{"i64[3]"}, sv: []string{"[-1,N,-1]"}},
		{name: "max", op: "Max", ins: []in{ci(1, 5), sv("i64[2]", Shape{D(3), S("N")})}, want: []string{"i64[2]"}, sv: []string{"[3,?]"}},
		{name: "cast", op: "Cast", ins: []in{sv("i64[2]", Shape{S("N"), D(3)})}, attrs: attrs("to", ai(int64(Int32))), want: []string{"i32[2]"}, sv: []string{"[N,3]"}},
		{name: "cast float", op: "Cast", ins: []in{sv("i64[2]", Shape{S("N"), D(3)})}, attrs: attrs("to", ai(int64(Float32))), want: []string{"f32[2]"}, sv: []string{""}},
		{name: "concat", op: "Concat", ins: []in{sv("i64[2]", Shape{S("N"), S("N")}), ci(4, -1)}, attrs: attrs("axis", ai(0)), want: []string{"i64[4]"}, sv: []string{"[N,N,4,-1]"}},
		{name: "identity", op: "Identity", ins: []in{sv("i64[2]", Shape{S("N"), S("N")})}, want: []string{"i64[2]"}, sv: []string{"[N,N]"}},
		{name: "expand sv", op: "Expand", ins: []in{cs(1), ci(3)}, want: []string{"i64[3]"}, sv: []string{"[1,1,1]"}},
	})
}

func TestInferGatherFamily(t *testing.T) {
	runInferCases(t, []inferCase{
		{name: "gather embed", op: "Gather", ins: []in{ty("f32[32,64]"), ty("i64[N,S]")}, want: []string{"f32[N,S,64]"}},
		{name: "gather axis", op: "Gather", ins: []in{ty("f32[N,8,4]"), ty("i64[3]")}, attrs: attrs("axis", ai(1)), want: []string{"f32[N,3,4]"}},
		{name: "gather scalar", op: "Gather", ins: []in{ty("f32[N,8,4]"), cs(-1)}, attrs: attrs("axis", ai(-1)), want: []string{"f32[N,8]"}},
		{name: "gather bad index", op: "Gather", ins: []in{ty("f32[N,8,4]"), cs(4)}, attrs: attrs("axis", ai(2)), err: "out of range"},
		{name: "gather bad axis", op: "Gather", ins: []in{ty("f32[N,8,4]"), cs(0)}, attrs: attrs("axis", ai(3)), err: "axis 3"},
		{name: "gather index type", op: "Gather", ins: []in{ty("f32[4]"), ty("f32[2]")}, err: "indices are f32"},
		{name: "gather elements", op: "GatherElements", ins: []in{ty("f32[N,8]"), ty("i64[N,3]")}, attrs: attrs("axis", ai(1)), want: []string{"f32[N,3]"}},
		{name: "gather elements rank", op: "GatherElements", ins: []in{ty("f32[N,8]"), ty("i64[3]")}, err: "rank"},
		{name: "gathernd", op: "GatherND", ins: []in{ty("f32[4,5,6]"), ty("i64[N,2]")}, want: []string{"f32[N,6]"}},
		{name: "gathernd batch", op: "GatherND", ins: []in{ty("f32[B,5,6]"), ty("i64[B,3,1]")}, attrs: attrs("batch_dims", ai(1)), want: []string{"f32[B,3,6]"}},
		{name: "gathernd too deep", op: "GatherND", ins: []in{ty("f32[4,5]"), ty("i64[2,3]")}, err: "address 3 dims"},
		{name: "scatternd", op: "ScatterND", ins: []in{ty("f32[N,8]"), ty("i64[K,1]"), ty("f32[K,8]")}, want: []string{"f32[N,8]"}},
		{name: "scatternd bad updates", op: "ScatterND", ins: []in{ty("f32[4,8]"), ty("i64[2,1]"), ty("f32[2,7]")}, err: "updates have shape"},
		{name: "scatter elements", op: "ScatterElements", ins: []in{ty("f32[N,8]"), ty("i64[N,2]"), ty("f32[N,2]")}, attrs: attrs("axis", ai(1)), want: []string{"f32[N,8]"}},
		{name: "onehot", op: "OneHot", ins: []in{ty("i64[N]"), cs(10), ty("f32[2]")}, want: []string{"f32[N,10]"}},
		{name: "onehot axis", op: "OneHot", ins: []in{ty("i64[N,S]"), {c: NewTensorF32(nil, []float32{5})}, ty("i32[2]")}, attrs: attrs("axis", ai(1)), want: []string{"i32[N,5,S]"}},
		{name: "onehot depth unknown", op: "OneHot", ins: []in{ty("i64[N]"), ty("i64[]"), ty("f32[2]")}, want: []string{"f32[N,?]"}},
		{name: "nonzero", op: "NonZero", ins: []in{ty("f32[N,3]")}, want: []string{"i64[2,?]"}},
		{name: "topk", op: "TopK", ins: []in{ty("f32[N,10]"), ci(3)}, nout: 2, want: []string{"f32[N,3]", "i64[N,3]"}},
		{name: "topk attr", op: "TopK", opset: 9, ins: []in{ty("f32[N,10]")}, attrs: attrs("k", ai(2), "axis", ai(0)), nout: 2, want: []string{"f32[2,10]", "i64[2,10]"}},
		{name: "topk too big", op: "TopK", ins: []in{ty("f32[N,10]"), ci(11)}, nout: 2, err: "larger"},
		{name: "trilu", op: "Trilu", ins: []in{ty("f32[N,N]"), cs(1)}, want: []string{"f32[N,N]"}},
		{name: "trilu rank", op: "Trilu", ins: []in{ty("f32[N]")}, err: "rank 1"},
		{name: "cumsum", op: "CumSum", ins: []in{ty("f32[N,4]"), cs(1)}, want: []string{"f32[N,4]"}},
		{name: "cumsum axis", op: "CumSum", ins: []in{ty("f32[N,4]"), cs(2)}, err: "axis 2"},
	})
}

func TestInferReduce(t *testing.T) {
	runInferCases(t, []inferCase{
		{name: "sum input axes", op: "ReduceSum", opset: 13, ins: []in{ty("f32[N,S,4]"), ci(-1)}, want: []string{"f32[N,S,1]"}},
		{name: "sum no keepdims", op: "ReduceSum", opset: 13, ins: []in{ty("f32[N,S,4]"), ci(0, 2)}, attrs: attrs("keepdims", ai(0)), want: []string{"f32[S]"}},
		{name: "sum attr axes", op: "ReduceSum", opset: 11, ins: []in{ty("f32[N,S,4]")}, attrs: attrs("axes", ais(1)), want: []string{"f32[N,1,4]"}},
		{name: "sum all", op: "ReduceSum", opset: 13, ins: []in{ty("f32[N,S,4]")}, attrs: attrs("keepdims", ai(0)), want: []string{"f32[]"}},
		{name: "sum empty axes noop", op: "ReduceSum", opset: 13, ins: []in{ty("f32[N,S,4]"), ci()}, attrs: attrs("noop_with_empty_axes", ai(1)), want: []string{"f32[N,S,4]"}},
		{name: "sum empty axes reduce", op: "ReduceSum", opset: 13, ins: []in{ty("f32[N,S,4]"), ci()}, want: []string{"f32[1,1,1]"}},
		{name: "sum unknown axes", op: "ReduceSum", opset: 13, ins: []in{ty("f32[N,S,4]"), ty("i64[1]")}, attrs: attrs("keepdims", ai(0)), want: []string{"f32[?,?]"}},
		{name: "sum unknown axes keepdims", op: "ReduceSum", opset: 13, ins: []in{ty("f32[N,1,4]"), ty("i64[1]")}, want: []string{"f32[?,1,?]"}},
		{name: "mean attr opset 17", op: "ReduceMean", opset: 17, ins: []in{ty("f32[N,S,4]")}, attrs: attrs("axes", ais(-1)), want: []string{"f32[N,S,1]"}},
		{name: "mean input opset 18", op: "ReduceMean", opset: 18, ins: []in{ty("f32[N,S,4]"), ci(-1)}, attrs: attrs("keepdims", ai(0)), want: []string{"f32[N,S]"}},
		{name: "mean input too early", op: "ReduceMean", opset: 17, ins: []in{ty("f32[N,S,4]"), ci(-1)}, err: "attribute, not an input"},
		{name: "max dup", op: "ReduceMax", opset: 18, ins: []in{ty("f32[N,S,4]"), ci(1, -2)}, err: "repeated"},
		{name: "l2 range", op: "ReduceL2", opset: 18, ins: []in{ty("f32[N]"), ci(1)}, err: "out of range"},
		{name: "logsumexp", op: "ReduceLogSumExp", opset: 18, ins: []in{ty("f32[N,4]"), ci(1)}, want: []string{"f32[N,1]"}},
		{name: "argmax", op: "ArgMax", ins: []in{ty("f32[N,4]")}, attrs: attrs("axis", ai(1), "keepdims", ai(0)), want: []string{"i64[N]"}},
		{name: "argmin keep", op: "ArgMin", ins: []in{ty("f32[N,4]")}, want: []string{"i64[1,4]"}},
		{name: "softmax", op: "Softmax", ins: []in{ty("f32[N,H,Q,K]")}, want: []string{"f32[N,H,Q,K]"}},
		{name: "softmax axis", op: "Softmax", ins: []in{ty("f32[N,4]")}, attrs: attrs("axis", ai(2)), err: "axis 2"},
		{name: "softmax opset 11", op: "Softmax", opset: 11, ins: []in{ty("f32[N,4,5]")}, want: []string{"f32[N,4,5]"}},
		{name: "logsoftmax", op: "LogSoftmax", ins: []in{ty("f16[N,4]")}, attrs: attrs("axis", ai(0)), want: []string{"f16[N,4]"}},
	})
}

func TestInferNN(t *testing.T) {
	runInferCases(t, []inferCase{
		{name: "layernorm", op: "LayerNormalization", ins: []in{ty("f32[N,N,128]"), ty("f32[128]"), ty("f32[128]")}, want: []string{"f32[N,N,128]"}},
		{name: "layernorm stats", op: "LayerNormalization", ins: []in{ty("bf16[N,S,64]"), ty("bf16[64]")}, nout: 3, want: []string{"bf16[N,S,64]", "f32[N,S,1]", "f32[N,S,1]"}},
		{name: "layernorm axis", op: "LayerNormalization", ins: []in{ty("f32[N,4,8]"), ty("f32[4,8]")}, attrs: attrs("axis", ai(1)), nout: 2, want: []string{"f32[N,4,8]", "f32[N,1,1]"}},
		{name: "layernorm bad scale", op: "LayerNormalization", ins: []in{ty("f32[N,128]"), ty("f32[64]")}, err: "Scale"},
		{name: "layernorm old", op: "LayerNormalization", opset: 16, ins: []in{ty("f32[N,128]"), ty("f32[128]")}, err: "older"},
		{name: "rmsnorm", op: "RMSNormalization", opset: 23, ins: []in{ty("f32[N,128]"), ty("f32[128]")}, want: []string{"f32[N,128]"}},
		{name: "batchnorm", op: "BatchNormalization", opset: 15, ins: []in{ty("f32[N,3,8,8]"), ty("f32[3]"), ty("f32[3]"), ty("f32[3]"), ty("f32[3]")}, want: []string{"f32[N,3,8,8]"}},
		{name: "batchnorm channels", op: "BatchNormalization", opset: 15, ins: []in{ty("f32[N,3,8,8]"), ty("f32[4]"), ty("f32[3]"), ty("f32[3]"), ty("f32[3]")}, err: "channels"},
		{name: "batchnorm training outs", op: "BatchNormalization", opset: 15, ins: []in{ty("f32[N,3,8]"), ty("f32[3]"), ty("f32[3]"), ty("f32[3]"), ty("f32[3]")}, nout: 3, want: []string{"f32[N,3,8]", "f32[3]", "f32[3]"}},
		{name: "dropout", op: "Dropout", opset: 13, ins: []in{ty("f32[N,4]"), none, none}, nout: 2, want: []string{"f32[N,4]", "bool[N,4]"}},
		{name: "dropout 12 inputs", op: "Dropout", opset: 12, ins: []in{ty("f32[N,4]"), ty("f32[]"), ty("bool[]")}, want: []string{"f32[N,4]"}},
		{name: "dropout 11 inputs", op: "Dropout", opset: 11, ins: []in{ty("f32[N,4]"), ty("f32[]")}, err: "attribute, not an input"},
		{name: "dropout ratio shape", op: "Dropout", opset: 13, ins: []in{ty("f32[N,4]"), ty("f32[2]")}, err: "want a scalar"},
		{name: "topk input at opset 9", op: "TopK", opset: 9, ins: []in{ty("f32[N,10]"), ci(3)}, nout: 2, err: "attributes before opset 10"},
		{name: "topk k missing", op: "TopK", opset: 9, ins: []in{ty("f32[N,10]")}, nout: 2, err: "attribute k"},
		{name: "dropout 7", op: "Dropout", opset: 7, ins: []in{ty("f32[N,4]")}, nout: 2, want: []string{"f32[N,4]", "f32[N,4]"}},
		{name: "attention 4d", op: "Attention", opset: 23, ins: []in{ty("f32[B,8,Q,32]"), ty("f32[B,2,K,32]"), ty("f32[B,2,K,16]")}, nout: 1, want: []string{"f32[B,8,Q,16]"}},
		{name: "attention 3d", op: "Attention", opset: 23, ins: []in{ty("f32[B,Q,256]"), ty("f32[B,K,64]"), ty("f32[B,K,32]")}, attrs: attrs("q_num_heads", ai(8), "kv_num_heads", ai(2)), nout: 1, want: []string{"f32[B,Q,128]"}},
		{name: "attention past", op: "Attention", opset: 23, ins: []in{ty("f32[B,8,Q,32]"), ty("f32[B,8,K,32]"), ty("f32[B,8,K,32]"), none, ty("f32[B,8,P,32]"), ty("f32[B,8,P,32]")}, nout: 4, want: []string{"f32[B,8,Q,32]", "f32[B,8,K+P,32]", "f32[B,8,K+P,32]", "f32[B,8,Q,K+P]"}},
		{name: "attention heads", op: "Attention", opset: 23, ins: []in{ty("f32[B,6,Q,32]"), ty("f32[B,4,K,32]"), ty("f32[B,4,K,32]")}, err: "not a multiple"},
		{name: "attention head size", op: "Attention", opset: 23, ins: []in{ty("f32[B,8,Q,32]"), ty("f32[B,8,K,16]"), ty("f32[B,8,K,32]")}, err: "head sizes"},
	})
}

// The chain torch exports for x.view(x.shape[0], x.shape[1], -1): it must
// give symbolic output shapes through whole-graph inference.
func TestInferShapeGatherConcatReshape(t *testing.T) {
	g := New("chain", 18)
	x := g.AddInput("x", TensorType(Float32, Shape{S("N"), S("N"), D(4), D(32)}))
	shp := g.AddNode("", "Shape", []*Value{x}, []string{"shape"}, nil)
	i0 := g.AddConst("i0", NewTensorI64(nil, []int64{0}))
	i1 := g.AddConst("i1", NewTensorI64(nil, []int64{1}))
	ax0 := g.AddConst("ax0", NewTensorI64([]int64{1}, []int64{0}))
	g0 := g.AddNode("", "Gather", []*Value{shp.Outputs[0], i0}, []string{"d0"}, attrs("axis", ai(0)))
	g1 := g.AddNode("", "Gather", []*Value{shp.Outputs[0], i1}, []string{"d1"}, attrs("axis", ai(0)))
	u0 := g.AddNode("", "Unsqueeze", []*Value{g0.Outputs[0], ax0}, []string{"u0"}, nil)
	u1 := g.AddNode("", "Unsqueeze", []*Value{g1.Outputs[0], ax0}, []string{"u1"}, nil)
	m := g.AddNode("", "Mul", []*Value{g0.Outputs[0], g1.Outputs[0]}, []string{"nn"}, nil)
	um := g.AddNode("", "Unsqueeze", []*Value{m.Outputs[0], ax0}, []string{"unn"}, nil)
	minus1 := g.AddConst("minus1", NewTensorI64([]int64{1}, []int64{-1}))
	cat := g.AddNode("", "Concat", []*Value{u0.Outputs[0], u1.Outputs[0], minus1}, []string{"target"}, attrs("axis", ai(0)))
	r := g.AddNode("", "Reshape", []*Value{x, cat.Outputs[0]}, []string{"y"}, nil)
	// Flatten the pair dims and split them back.
	c128 := g.AddConst("c128", NewTensorI64([]int64{1}, []int64{128}))
	cat2 := g.AddNode("", "Concat", []*Value{um.Outputs[0], c128}, []string{"target2"}, attrs("axis", ai(0)))
	r2 := g.AddNode("", "Reshape", []*Value{x, cat2.Outputs[0]}, []string{"flat"}, nil)
	shp2 := g.AddNode("", "Shape", []*Value{x}, []string{"shape2"}, nil)
	r3 := g.AddNode("", "Reshape", []*Value{r2.Outputs[0], shp2.Outputs[0]}, []string{"back"}, nil)
	// ConstantOfShape → Expand, as torch writes x.expand(...).
	ones := g.AddNode("", "ConstantOfShape", []*Value{shp.Outputs[0]}, []string{"ones"}, nil)
	e := g.AddNode("", "Expand", []*Value{g.AddInput("b", TensorType(Float32, Shape{D(1), D(1), D(4), D(1)})), shp.Outputs[0]}, []string{"e"}, nil)
	g.Outputs = []*Value{r.Outputs[0], r2.Outputs[0], r3.Outputs[0], ones.Outputs[0], e.Outputs[0]}
	if err := InferShapes(g); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"y": "f32[N,N,128]", "flat": "f32[N*N,128]", "back": "f32[N,N,4,32]",
		"ones": "f32[N,N,4,32]", "e": "f32[N,N,4,32]", "target": "i64[3]",
	}
	for _, v := range g.AllValues() {
		if w, ok := want[v.Name]; ok && v.Type.String() != w {
			t.Errorf("%s: %s, want %s", v.Name, v.Type, w)
		}
	}
	if got := cat.Outputs[0].ShapeValue.String(); got != "[N,N,-1]" {
		t.Errorf("target shape value %s", got)
	}
}

func TestInferErrorsNameNode(t *testing.T) {
	g := New("t", 18)
	a := g.AddInput("a", TensorType(Float32, StaticShape(2, 3)))
	b := g.AddInput("b", TensorType(Float32, StaticShape(4)))
	n := g.AddNode("", "Add", []*Value{a, b}, []string{"y"}, nil)
	n.Name = "bad_add"
	err := InferShapes(g)
	if err == nil || !strings.Contains(err.Error(), `"bad_add"`) || !strings.Contains(err.Error(), "cannot broadcast") {
		t.Errorf("error %v does not name the node and problem", err)
	}
	// A missing required input is an error, not a panic.
	n2 := &Node{Op: "MatMul", Inputs: []*Value{a, nil}, Outputs: []*Value{{Name: "z"}}, Opset: 18}
	if _, _, err := InferNode(n2); err == nil || !strings.Contains(err.Error(), "input 1 is missing") {
		t.Errorf("missing input: %v", err)
	}
}

func TestRegisteredOps(t *testing.T) {
	ops := SupportedOps()
	if len(ops) < 80 {
		t.Errorf("%d ops registered, want at least 80", len(ops))
	}
	for _, op := range []string{"MatMul", "Gemm", "Einsum", "LayerNormalization", "Attention", "RMSNormalization",
		"Split", "ScatterND", "Gelu", "NonZero", "TopK", "ReduceLogSumExp", "CastLike", "Trilu"} {
		if LookupOp("", op) == nil {
			t.Errorf("%s is not registered", op)
		}
	}
	for _, op := range ops {
		if strings.Contains(op, ".") {
			continue // another domain's op (fused ops, test ops)
		}
		d := LookupOp("", op)
		if d == nil || d.Infer == nil || d.MinInputs < 0 || (d.MaxInputs >= 0 && d.MaxInputs < d.MinInputs) || d.MinOutputs < 1 {
			t.Errorf("%s: bad definition %+v", op, d)
		}
	}
}

// Every rule must cope with inputs of unknown rank and dtype without
// panicking, for every arity it accepts.
func TestInferUnrankedInputsNoPanic(t *testing.T) {
	for _, name := range SupportedOps() {
		if strings.Contains(name, ".") {
			continue
		}
		d := LookupOp("", name)
		if d == nil {
			continue
		}
		maxIn := d.MaxInputs
		if maxIn < 0 {
			maxIn = d.MinInputs + 2
		}
		for nin := d.MinInputs; nin <= maxIn; nin++ {
			for _, typ := range []Type{{}, {DType: Float32}, TensorType(Int64, Shape{}), TensorType(Float32, Shape{S("N"), Unknown})} {
				g := New("t", 23)
				ins := make([]*Value, nin)
				for i := range ins {
					ins[i] = g.AddInput(g.UniqueName("x"), typ)
				}
				outs := make([]string, d.MinOutputs)
				for i := range outs {
					outs[i] = "y"
				}
				n := g.AddNode("", name, ins, outs, nil)
				func() {
					defer func() {
						if r := recover(); r != nil {
							t.Errorf("%s with %d inputs of %s panicked: %v", name, nin, typ, r)
						}
					}()
					_, _, _ = InferNode(n)
				}()
			}
		}
	}
}
