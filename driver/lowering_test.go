package driver

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/of3c/of3c/artifact"
	"github.com/of3c/of3c/codegen"
)

// A GPU compile of the real OpenFold3 exports (both exporters; the
// OF3-width ones where generated) plans a flash kernel for every attention —
// the tensor-core one in bf16/fp16, where MLX's SDPA would write the summed
// mask of the biases — and the manifest records it. The compile needs no
// GPU: the decision takes the device, the dtypes and the shapes.
func TestGPUAttentionTakesFlashKernels(t *testing.T) {
	for _, fx := range []string{"pairformer_block_tiny_torchscript", "pairformer_block_tiny_dynamo", "tri_att_start_of3_torchscript",
		"tri_att_start_of3_dynamo", "attention_pair_bias_tiny_dynamo"} {
		src := filepath.Join("../models/of3/testdata", fx, "model.onnx")
		if _, err := os.Stat(src); err != nil {
			t.Errorf("fixture %s not present", fx)
			continue
		}
		for _, c := range []struct {
			prec string
			want codegen.Path
		}{{"bf16", codegen.AttentionGPUFlashMMA}, {"fp16", codegen.AttentionGPUFlashMMA}, {"fp32", codegen.AttentionGPUFlash}} {
			_, m, err := Compile(CompileRequest{Source: src, Options: artifact.CompileOptions{Device: "gpu", Precision: c.prec}})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, l := range m.Lowerings {
				if l.Op != "of3c.Attention" {
					continue
				}
				n++
				if l.Path != string(c.want) {
					t.Errorf("%s %s: attention %s takes %s, want %s", fx, c.prec, l.Node, l.Path, c.want)
				}
			}
			if n == 0 || n != m.OpCounts["of3c.Attention"] {
				t.Errorf("%s %s: %d attention lowerings recorded, the graph has %d", fx, c.prec, n, m.OpCounts["of3c.Attention"])
			}
		}
	}
}
