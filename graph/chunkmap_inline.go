package graph

import "fmt"

// InlineChunkMaps replaces every of3c.ChunkMap node of g for which which
// returns true (all when which is nil) by its body run once on the whole
// inputs — the same result, since a region's chunk changes how it is
// evaluated, never what. Reshape targets in a body copy the row dim (0),
// so they hold for the whole extent too. The planner dissolves the regions
// it leaves unchunked this way; the ONNX export inlines them all.
func InlineChunkMaps(c *Graph, which func(*Node) bool) error {
	var nodes []*Node
	changed := false
	for _, n := range c.Nodes {
		if n.QualifiedOp() != FusedDomain+".ChunkMap" || (which != nil && !which(n)) {
			nodes = append(nodes, n)
			continue
		}
		changed = true
		body, _, _, err := ChunkMapBody(n)
		if err != nil {
			return fmt.Errorf("node %s: %w", n, err)
		}
		vmap := map[*Value]*Value{}
		for i, v := range body.Inputs {
			vmap[v] = n.Inputs[i]
		}
		for j, v := range body.Outputs {
			vmap[v] = n.Outputs[j]
		}
		for _, v := range body.Consts {
			vmap[v] = c.AddConst(c.UniqueName(trimChunkSuffix(v.Name)), v.Const)
		}
		val := func(v *Value) *Value {
			if v == nil {
				return nil
			}
			if m, ok := vmap[v]; ok {
				return m
			}
			m := &Value{Name: c.UniqueName(trimChunkSuffix(v.Name))}
			vmap[v] = m
			return m
		}
		for _, bn := range body.Nodes {
			nn := &Node{Name: bn.Name, Domain: bn.Domain, Op: bn.Op, Opset: bn.Opset, Attrs: bn.Attrs}
			for _, in := range bn.Inputs {
				nn.Inputs = append(nn.Inputs, val(in))
			}
			for _, o := range bn.Outputs {
				m := val(o)
				if m != nil {
					m.Producer = nn
				}
				nn.Outputs = append(nn.Outputs, m)
			}
			nodes = append(nodes, nn)
		}
	}
	if !changed {
		return nil
	}
	c.Nodes = nodes
	if err := c.TopoSort(); err != nil {
		return err
	}
	return InferShapes(c)
}

// trimChunkSuffix drops the "@chunk" passes/chunk_regions.go gives body values.
func trimChunkSuffix(name string) string {
	const suf = "@chunk"
	if len(name) > len(suf) && name[len(name)-len(suf):] == suf {
		return name[:len(name)-len(suf)]
	}
	return name
}
