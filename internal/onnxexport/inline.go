package onnxexport

import (
	"fmt"

	"github.com/of3c/of3c/graph"
)

// inlineChunkMaps returns g with every of3c.ChunkMap (a row-chunked region,
// docs/ops.md) replaced by its body run once on the whole inputs
// (graph.InlineChunkMaps): the region's chunk changes how of3c evaluates
// it, never its result, and the body's ops are ordinary ops (the fused ones
// among them get their functions like any other). g itself is not changed.
func inlineChunkMaps(g *graph.Graph) (*graph.Graph, error) {
	has := false
	for _, n := range g.Nodes {
		has = has || n.QualifiedOp() == "of3c.ChunkMap"
	}
	if !has {
		return g, nil
	}
	c := graph.Clone(g)
	if err := graph.InlineChunkMaps(c, nil); err != nil {
		return nil, fmt.Errorf("inlining regions: %w", err)
	}
	return c, nil
}
