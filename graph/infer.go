package graph

// Shape inference rules for the ai.onnx ops of3c supports live in
// infer_*.go, one init per op family, registered with RegisterOp:
//
//	infer_elementwise.go  unary math/activations, broadcasting arithmetic,
//	                      comparisons, logic, Max/Min/Sum/Mean, Where, Clip,
//	                      Cast, CastLike, PRelu
//	infer_matmul.go       MatMul, Gemm, Einsum
//	infer_shape.go        Reshape, Transpose, (Un)Squeeze, Expand, Concat,
//	                      Split, Slice, Flatten, Tile, Pad, Identity, Shape,
//	                      Size, ConstantOfShape, Constant, Range
//	infer_gather.go       Gather*, Scatter*, OneHot, NonZero, TopK, Trilu,
//	                      CumSum
//	infer_reduce.go       Reduce*, ArgMax/ArgMin, Softmax, LogSoftmax, Hardmax
//	infer_nn.go           LayerNormalization, RMSNormalization,
//	                      BatchNormalization, Dropout, Attention
//
// Each op has one OpDef whose rule covers every opset from its SinceVersion
// on by looking at Node.Opset (0 means "newest"). The versions where an op's
// interface changed, which the reference executor must follow too:
//
//	Softmax, LogSoftmax,  < 13: flatten to 2-D at axis (default 1) and
//	Hardmax                     normalise rows; >= 13: one axis (default -1)
//	ReduceSum             < 13: axes attribute; >= 13: optional axes input
//	                      and noop_with_empty_axes
//	other Reduce*         < 18: axes attribute; >= 18: as ReduceSum at 13
//	Squeeze, Unsqueeze    < 13: axes attribute; >= 13: axes input
//	Split                 < 13: split attribute; >= 13: split input;
//	                      >= 18: num_outputs (last chunk may be smaller)
//	Slice                 < 10: starts/ends/axes attributes; >= 10: inputs
//	Pad                   < 11: pads/value attributes; >= 11: inputs;
//	                      >= 18: axes input; >= 19: mode "wrap"
//	Clip                  < 11: min/max attributes; >= 11: optional inputs
//	Dropout               < 12: ratio attribute; >= 12: ratio and
//	                      training_mode inputs; mask is T before 10, bool after
//	TopK                  < 10: k attribute; >= 10: K input
//	Shape                 >= 15: start/end attributes
//	Reshape               >= 14: allowzero
//	Gemm                  C optional at every version
//
// Conventions shared by all rules are described in infer_util.go; symbolic
// dimension arithmetic is in symbolic.go.
