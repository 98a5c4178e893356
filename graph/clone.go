package graph

// Clone returns a deep copy of g: new Values, Nodes, attribute slices and
// nested graphs, so that a pass can rewrite one copy and compare it with the
// other. Constant data bytes are shared (tensors are read-only by contract),
// which keeps cloning a model with large weights cheap.
//
// The copy has the same structure even where g is invalid: a value read but
// defined nowhere is copied once, and forward references stay forward.
func Clone(g *Graph) *Graph {
	if g == nil {
		return nil
	}
	return cloneGraph(g, map[*Value]*Value{})
}

// cloneGraph copies g; vmap maps the enclosing graphs' values to their copies
// so that a nested graph's reads of outer values point at the new ones.
func cloneGraph(g *Graph, vmap map[*Value]*Value) *Graph {
	c := &Graph{
		Name:    g.Name,
		Inputs:  make([]*Value, len(g.Inputs)),
		Outputs: make([]*Value, len(g.Outputs)),
		Nodes:   make([]*Node, len(g.Nodes)),
		Consts:  make([]*Value, len(g.Consts)),
	}
	if g.Opsets != nil {
		c.Opsets = make(map[string]int64, len(g.Opsets))
		for k, v := range g.Opsets {
			c.Opsets[k] = v
		}
	}
	if g.Meta != nil {
		c.Meta = make(map[string]string, len(g.Meta))
		for k, v := range g.Meta {
			c.Meta[k] = v
		}
	}
	val := func(v *Value) *Value {
		if v == nil {
			return nil
		}
		if nv, ok := vmap[v]; ok {
			return nv
		}
		nv := &Value{Name: v.Name, Type: cloneType(v.Type), Const: cloneTensor(v.Const),
			ShapeValue: v.ShapeValue.Clone(), Doc: v.Doc}
		vmap[v] = nv
		return nv
	}
	for i, v := range g.Inputs {
		c.Inputs[i] = val(v)
	}
	for i, v := range g.Consts {
		c.Consts[i] = val(v)
	}
	// Nodes and their outputs first, so that every reference (including a
	// forward one in an unsorted graph) finds its copy.
	for i, n := range g.Nodes {
		if n == nil {
			continue
		}
		nn := &Node{Name: n.Name, Domain: n.Domain, Op: n.Op, Opset: n.Opset}
		if n.Outputs != nil {
			nn.Outputs = make([]*Value, len(n.Outputs))
		}
		for j, o := range n.Outputs {
			nn.Outputs[j] = val(o)
			if o != nil && o.Producer == n {
				nn.Outputs[j].Producer = nn
			}
		}
		c.Nodes[i] = nn
	}
	for i, n := range g.Nodes {
		if n == nil {
			continue
		}
		nn := c.Nodes[i]
		if n.Inputs != nil {
			nn.Inputs = make([]*Value, len(n.Inputs))
		}
		for j, in := range n.Inputs {
			nn.Inputs[j] = val(in)
		}
		if n.Attrs != nil {
			nn.Attrs = make(map[string]Attr, len(n.Attrs))
			for k, a := range n.Attrs {
				nn.Attrs[k] = cloneAttr(a, vmap)
			}
		}
	}
	// Producer links of values whose producer is some other node (a broken
	// graph) are pointed at that node's copy when there is one.
	nodeMap := make(map[*Node]*Node, len(g.Nodes))
	for i, n := range g.Nodes {
		if n != nil {
			nodeMap[n] = c.Nodes[i]
		}
	}
	for old, nv := range vmap {
		if old.Producer != nil && nv.Producer == nil {
			if pn, ok := nodeMap[old.Producer]; ok {
				nv.Producer = pn
			}
		}
	}
	for i, v := range g.Outputs {
		c.Outputs[i] = val(v)
	}
	return c
}

func cloneType(t Type) Type {
	t.Shape = t.Shape.Clone()
	return t
}

// cloneTensor copies the tensor header and shares its data bytes.
func cloneTensor(t *Tensor) *Tensor {
	if t == nil {
		return nil
	}
	return &Tensor{DType: t.DType, Shape: append([]int64(nil), t.Shape...), Data: t.Data}
}

func cloneAttr(a Attr, vmap map[*Value]*Value) Attr {
	if a.Floats != nil {
		a.Floats = append([]float32{}, a.Floats...)
	}
	if a.Ints != nil {
		a.Ints = append([]int64{}, a.Ints...)
	}
	if a.Strings != nil {
		a.Strings = append([]string{}, a.Strings...)
	}
	a.Tensor = cloneTensor(a.Tensor)
	if a.Graph != nil {
		a.Graph = cloneGraph(a.Graph, vmap)
	}
	return a
}
