package driver

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/of3c/of3c/artifact"
	"github.com/of3c/of3c/codegen"
)

// A GPU bf16 compile of the real OpenFold3 exports (both exporters) plans
// MLX's fused SDPA kernel for every attention, and the manifest records it.
// The compile needs no GPU: the decision takes the device, the dtypes and
// the shapes.
func TestGPUBF16AttentionTakesFusedSDPA(t *testing.T) {
	for _, fx := range []string{"pairformer_block_of3_torchscript", "pairformer_block_of3_dynamo", "tri_att_start_of3_torchscript"} {
		src := filepath.Join("../models/of3/testdata", fx, "model.onnx")
		if _, err := os.Stat(src); err != nil {
			t.Skipf("fixture %s not present", fx)
		}
		for _, c := range []struct {
			prec string
			want codegen.Path
		}{{"bf16", codegen.AttentionGPUSDPA}, {"fp16", codegen.AttentionGPUSDPA}, {"fp32", codegen.AttentionGPUSoftmaxBias}} {
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
