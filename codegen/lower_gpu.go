package codegen

import "of3c/runtime/mlx"

// gpuWeights is softmax(scale·q·kᵀ + Σ biases) on the GPU through
// runtime/mlx's custom CUDA kernel (GPUSoftmaxBias): the GEMM writes the
// logits once and one kernel reads them with every bias in place through
// broadcast strides and writes the weights. MLX's own ops need a
// broadcast-add kernel over the full [.., Q, K] logits (strided 4-D
// indexing: 4.5 ms of a 17 ms PairformerBlock at N = 384 on an H200) and a
// softmax pass after it (docs/GPU.md). The numerics are the unfused path's:
// q scaled before the GEMM, the −1e9-clamped biases added in order in f32,
// a max-subtracted softmax. nil when it does not apply (not the GPU, not
// f32, bias_only mode, no bias or more than 4, rank over 8, a bias that
// would enlarge the logits, or Options.NoFastKernels); the caller then
// takes the unfused path.
func (at *attention) gpuWeights() *mlx.Array {
	t, s := at.t, at.t.s
	if t.p.opts.Device != "gpu" || t.p.opts.NoFastKernels || at.q == nil || len(at.biases) == 0 || len(at.biases) > 4 {
		return nil
	}
	if at.q.Dtype() != mlx.Float32 || at.k.Dtype() != mlx.Float32 {
		return nil
	}
	qs, ks := shapeOf(at.q), shapeOf(at.k)
	batch, err := broadcastShapes(qs[:len(qs)-2], ks[:len(ks)-2])
	if err != nil {
		return nil
	}
	L := append(batch, qs[len(qs)-2], ks[len(ks)-2])
	if len(L) > 8 {
		return nil
	}
	for _, b := range at.biases {
		if b == nil || b.Dtype() != mlx.Float32 {
			return nil
		}
		bs := shapeOf(b)
		if len(bs) > len(L) {
			return nil
		}
		for i, d := range bs {
			if l := L[len(L)-len(bs)+i]; d != 1 && d != l {
				return nil
			}
		}
	}
	q := at.q
	if at.scale != 1 {
		q = s.Mul(q, s.Scalar(at.scale, q.Dtype()))
	}
	return s.GPUSoftmaxBias(s.MatMul(q, s.Transpose(at.k, swapLast(at.k.Ndim())...)), at.biases...)
}
