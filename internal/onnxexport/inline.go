package onnxexport

import (
	"fmt"

	"github.com/of3c/of3c/graph"
)

// inlineChunkMaps returns g with every of3c.ChunkMap (a row-chunked region,
// docs/ops.md) replaced by its body run once on the whole inputs: the
// region's chunk changes how of3c evaluates it, never its result, and the
// body's ops are ordinary ops (the fused ones among them get their
// functions like any other). Reshape targets in a body copy the row dim
// (0), so they hold for the whole extent too. g itself is not changed.
func inlineChunkMaps(g *graph.Graph) (*graph.Graph, error) {
	has := false
	for _, n := range g.Nodes {
		has = has || n.QualifiedOp() == "of3c.ChunkMap"
	}
	if !has {
		return g, nil
	}
	c := graph.Clone(g)
	var nodes []*graph.Node
	for _, n := range c.Nodes {
		if n.QualifiedOp() != "of3c.ChunkMap" {
			nodes = append(nodes, n)
			continue
		}
		body, _, _, err := graph.ChunkMapBody(n)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", n, err)
		}
		vmap := map[*graph.Value]*graph.Value{}
		for i, v := range body.Inputs {
			vmap[v] = n.Inputs[i]
		}
		for j, v := range body.Outputs {
			vmap[v] = n.Outputs[j]
		}
		for _, v := range body.Consts {
			vmap[v] = c.AddConst(c.UniqueName(v.Name), v.Const)
		}
		val := func(v *graph.Value) *graph.Value {
			if v == nil {
				return nil
			}
			if m, ok := vmap[v]; ok {
				return m
			}
			m := &graph.Value{Name: c.UniqueName(v.Name), Type: v.Type}
			vmap[v] = m
			return m
		}
		for _, bn := range body.Nodes {
			nn := &graph.Node{Name: bn.Name, Domain: bn.Domain, Op: bn.Op, Opset: bn.Opset, Attrs: bn.Attrs}
			for _, in := range bn.Inputs {
				nn.Inputs = append(nn.Inputs, val(in))
			}
			for _, o := range bn.Outputs {
				m := val(o)
				if m != nil {
					m.Producer = nn
					// The body's types have the chunk's rows; the whole
					// extent is what the outer graph has (re-inferred
					// below).
					m.Type = graph.Type{}
				}
				nn.Outputs = append(nn.Outputs, m)
			}
			nodes = append(nodes, nn)
		}
	}
	c.Nodes = nodes
	if err := c.TopoSort(); err != nil {
		return nil, err
	}
	if err := graph.InferShapes(c); err != nil {
		return nil, fmt.Errorf("inlined regions: %w", err)
	}
	return c, nil
}
