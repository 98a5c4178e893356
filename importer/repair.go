package importer

import (
	"fmt"
	"slices"

	"github.com/of3c/of3c/graph"
)

// Repairs of attributes that break the ONNX spec but mean one thing only.
// Each repair is recorded in graph.ImportNotes, which the pass log shows as
// its "import" entry, so a user can see what of3c read differently from the
// file.

// repairNode applies the repairs that apply to n (an ai.onnx node with its
// attributes converted) and returns a note for each.
func repairNode(n *graph.Node) []string {
	if n.Domain != graph.DefaultDomain {
		return nil
	}
	switch n.Op {
	case "Transpose":
		if note := repairNegativePerm(n); note != "" {
			return []string{note}
		}
	}
	return nil
}

// repairNegativePerm: PyTorch's TorchScript exporter writes tensor.permute
// with negative dims as they were given (OpenFold3's permute_final_dims
// yields perm=[0,-1,-3,-2]). The spec wants 0..r-1; r is len(perm), so a
// negative entry p in [-r, -1] can only mean p+r. The result must still be a
// permutation, or it is left for shape inference to refuse.
func repairNegativePerm(n *graph.Node) string {
	perm, ok := n.AttrInts("perm")
	if !ok || !slices.ContainsFunc(perm, func(p int64) bool { return p < 0 }) {
		return ""
	}
	r := int64(len(perm))
	fixed := make([]int64, len(perm))
	seen := make([]bool, len(perm))
	for i, p := range perm {
		if p < 0 {
			p += r
		}
		if p < 0 || p >= r || seen[p] {
			return ""
		}
		seen[p] = true
		fixed[i] = p
	}
	n.Attrs["perm"] = graph.IntsAttr(fixed...)
	return fmt.Sprintf("node %q (Transpose): negative perm %v read as %v", n.Name, perm, fixed)
}
