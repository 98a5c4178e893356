//go:build cgo && !nomlx

package mlx

import (
	"slices"
	"strings"
	"testing"
)

// GPUSoftmaxBias is checked numerically on the GPU by the fixtures' --check
// runs (docs/notes/GPU.md); here: its argument errors, and that asking for it where
// MLX has no CUDA backend is an error, not a crash.
func TestGPUKernelErrors(t *testing.T) {
	cases := []struct {
		name string
		run  func(s *Scope) *Array
		want string
	}{
		{"no-bias", func(s *Scope) *Array { return s.GPUSoftmaxBias(s.Zeros(Float32, 2, 3)) }, "1 to 4 biases"},
		{"five-biases", func(s *Scope) *Array {
			b := s.Zeros(Float32, 3)
			return s.GPUSoftmaxBias(s.Zeros(Float32, 2, 3), b, b, b, b, b)
		}, "1 to 4 biases"},
		{"f16-logits", func(s *Scope) *Array {
			return s.GPUSoftmaxBias(s.Zeros(Float16, 2, 3), s.Zeros(Float32, 3))
		}, "logits must be float32"},
		{"f16-bias", func(s *Scope) *Array {
			return s.GPUSoftmaxBias(s.Zeros(Float32, 2, 3), s.Zeros(Float16, 3))
		}, "biases must be float32"},
		{"bias-rank", func(s *Scope) *Array {
			return s.GPUSoftmaxBias(s.Zeros(Float32, 2, 3), s.Zeros(Float32, 1, 2, 3))
		}, "more axes"},
		{"bias-shape", func(s *Scope) *Array {
			return s.GPUSoftmaxBias(s.Zeros(Float32, 2, 3), s.Zeros(Float32, 4))
		}, "gpu_softmax_bias"},
		{"sum-no-bias", func(s *Scope) *Array { return s.GPUBiasSum([]int{2, 3}, Float32, false) }, "1 to 4 biases"},
		{"sum-int-dtype", func(s *Scope) *Array {
			return s.GPUBiasSum([]int{2, 3}, Int32, false, s.Zeros(Float32, 3))
		}, "float32, float16 or bfloat16"},
		{"sum-f16-bias", func(s *Scope) *Array {
			return s.GPUBiasSum([]int{2, 3}, Float16, true, s.Zeros(Float16, 3))
		}, "biases must be float32"},
		{"sum-bias-rank", func(s *Scope) *Array {
			return s.GPUBiasSum([]int{3}, Float32, false, s.Zeros(Float32, 2, 3))
		}, "more axes"},
		{"sum-bias-shape", func(s *Scope) *Array {
			return s.GPUBiasSum([]int{2, 3}, Float32, false, s.Zeros(Float32, 4))
		}, "gpu_bias_sum"},
		{"flash-q-without-k", func(s *Scope) *Array {
			return s.GPUFlashAttention(s.Zeros(Float32, 2, 4, 8), nil, s.Zeros(Float32, 2, 4, 8), nil, 1, Float32)
		}, "q and k go together"},
		{"flash-bias-only-no-bias", func(s *Scope) *Array {
			return s.GPUFlashAttention(nil, nil, s.Zeros(Float32, 2, 4, 8), nil, 1, Float32)
		}, "1 to 4 without q and k"},
		{"flash-head-65", func(s *Scope) *Array {
			x := s.Zeros(Float32, 2, 4, 65)
			return s.GPUFlashAttention(x, x, x, nil, 1, Float32)
		}, "head size must be 1..64"},
		{"flash-f16-bias", func(s *Scope) *Array {
			x := s.Zeros(BFloat16, 2, 4, 8)
			return s.GPUFlashAttention(x, x, x, []*Array{s.Zeros(Float16, 4, 4)}, 1, BFloat16)
		}, "biases must be float32"},
		{"flash-bias-enlarges", func(s *Scope) *Array {
			x := s.Zeros(Float32, 2, 4, 8)
			return s.GPUFlashAttention(x, x, x, []*Array{s.Zeros(Float32, 3, 2, 4, 4)}, 1, Float32)
		}, "enlarges the logits"},
		{"flash-int-out", func(s *Scope) *Array {
			x := s.Zeros(Float32, 2, 4, 8)
			return s.GPUFlashAttention(x, x, x, nil, 1, Int32)
		}, "f32, f16 or bf16"},
		{"flash-mma-f32", func(s *Scope) *Array {
			x := s.Zeros(Float32, 2, 4, 16)
			return s.GPUFlashAttentionMMA(x, x, x, nil, 1)
		}, "one dtype, bf16 or f16"},
		{"flash-mma-mixed", func(s *Scope) *Array {
			x := s.Zeros(BFloat16, 2, 4, 16)
			return s.GPUFlashAttentionMMA(x, x, s.Zeros(Float16, 2, 4, 16), nil, 1)
		}, "one dtype, bf16 or f16"},
		{"flash-mma-no-k", func(s *Scope) *Array {
			return s.GPUFlashAttentionMMA(nil, nil, s.Zeros(BFloat16, 2, 4, 16), []*Array{s.Zeros(Float32, 4, 4)}, 1)
		}, "needs q and k"},
		{"flash-kv-mismatch", func(s *Scope) *Array {
			x := s.Zeros(Float32, 2, 4, 8)
			return s.GPUFlashAttention(x, x, s.Zeros(Float32, 2, 5, 8), nil, 1, Float32)
		}, "key counts differ"},
		{"ln-int-x", func(s *Scope) *Array { return s.GPULayerNorm(s.Zeros(Int32, 2, 8), nil, nil, 1e-5) }, "f32, f16 or bf16"},
		{"ln-too-wide", func(s *Scope) *Array { return s.GPULayerNorm(s.Zeros(BFloat16, 2, 1025), nil, nil, 1e-5) }, "1..1024 elements"},
		{"ln-weight-size", func(s *Scope) *Array {
			return s.GPULayerNorm(s.Zeros(BFloat16, 2, 8), s.Zeros(Float32, 7), nil, 1e-5)
		}, "normalised axis' size"},
		{"ln-bias-dtype", func(s *Scope) *Array {
			return s.GPULayerNorm(s.Zeros(BFloat16, 2, 8), s.Zeros(Float32, 8), s.Zeros(BFloat16, 8), 1e-5)
		}, "must be f32"},
		{"ln-weight-rank", func(s *Scope) *Array {
			return s.GPULayerNorm(s.Zeros(Float16, 2, 8), s.Zeros(Float32, 1, 8), nil, 1e-5)
		}, "must be f32"},
	}
	do(t, func(s *Scope) {
		for _, c := range cases {
			got := c.run(s)
			err := s.ResetErr()
			if err == nil || got != nil {
				t.Errorf("%s: got %v, error %v", c.name, got, err)
				continue
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: error %q does not contain %q", c.name, err, c.want)
			}
		}
		if available, _ := libDeviceAvailable(GPU, 0); !available {
			// A well-formed call on the CPU: MLX refuses the CUDA kernel
			// when it is built or evaluated; either way an error.
			y := s.GPUSoftmaxBias(s.Ones(Float32, 2, 3), s.Zeros(Float32, 1, 3))
			if y != nil {
				s.Eval(y)
			}
			if err := s.ResetErr(); err == nil {
				t.Errorf("GPUSoftmaxBias on the CPU: no error")
			}
		}
		// Empty logits / masks launch nothing, on any device.
		if y := s.GPUSoftmaxBias(s.Zeros(Float32, 0, 3), s.Zeros(Float32, 3)); s.Err() != nil || y == nil || y.Size() != 0 {
			t.Errorf("empty GPUSoftmaxBias: %v %v", y, s.ResetErr())
		}
		if y := s.GPUBiasSum([]int{2, 0}, BFloat16, false, s.Zeros(Float32, 1)); s.Err() != nil || y == nil || y.Size() != 0 || y.Dtype() != BFloat16 {
			t.Errorf("empty GPUBiasSum: %v %v", y, s.ResetErr())
		}
		if y := s.GPULayerNorm(s.Zeros(BFloat16, 0, 128), s.Ones(Float32, 128), nil, 1e-5); s.Err() != nil || y == nil || y.Size() != 0 ||
			y.Dtype() != BFloat16 || !slices.Equal(y.Shape(), []int{0, 128}) {
			t.Errorf("empty GPULayerNorm: %v %v", y, s.ResetErr())
		}
		if available, _ := libDeviceAvailable(GPU, 0); !available {
			y := s.GPULayerNorm(s.Ones(BFloat16, 2, 8), nil, nil, 1e-5)
			if y != nil {
				s.Eval(y)
			}
			if err := s.ResetErr(); err == nil {
				t.Errorf("GPULayerNorm on the CPU: no error")
			}
		}
		// Bias-only mode takes Q from the biases: [2, 3 queries, 4 keys] → [2, 3, 8].
		// Without a CUDA backend MLX refuses the kernel: an error, not a crash.
		y := s.GPUFlashAttention(nil, nil, s.Zeros(Float32, 2, 4, 8), []*Array{s.Zeros(Float32, 1, 3, 4)}, 1, BFloat16)
		if available, _ := libDeviceAvailable(GPU, 0); available {
			if s.Err() != nil || y == nil || !slices.Equal(y.Shape(), []int{2, 3, 8}) || y.Dtype() != BFloat16 {
				t.Errorf("bias-only GPUFlashAttention shape: %v %v", y, s.ResetErr())
			}
		} else if y != nil || s.Err() == nil {
			t.Errorf("GPUFlashAttention without CUDA: %v, no error", y)
		}
		s.ResetErr()
		if y := s.GPUFlashAttention(s.Zeros(Float32, 0, 4, 8), s.Zeros(Float32, 1, 4, 8), s.Zeros(Float32, 1, 4, 16), nil, 1, Float32); s.Err() != nil || y == nil ||
			!slices.Equal(y.Shape(), []int{0, 4, 16}) {
			t.Errorf("empty GPUFlashAttention: %v %v", y, s.ResetErr())
		}
		if v := s.Float32s(s.Add(s.Ones(Float32, 2), s.Ones(Float32, 2))); s.Err() != nil || v[0] != 2 {
			t.Fatalf("scope broken afterwards: %v %v", v, s.Err())
		}
	})
}
