package ref

import (
	"testing"

	"github.com/of3c/of3c/graph"
)

// TestKernelsMatchRegistry keeps the executor and the op registry in step:
// every op graph accepts must run here, and every kernel must be for an op
// graph accepts (otherwise it is dead code no graph can reach).
func TestKernelsMatchRegistry(t *testing.T) {
	registered := map[string]bool{}
	for _, op := range graph.SupportedOps() {
		registered[op] = true
		if !HasKernel(op) {
			t.Errorf("op %s is registered in graph but has no reference kernel", op)
		}
	}
	for _, op := range Ops() {
		if !registered[op] {
			t.Errorf("kernel %s has no op registered in graph", op)
		}
	}
}
