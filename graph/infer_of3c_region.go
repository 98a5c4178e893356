package graph

import "fmt"

// of3c.ChunkMap (docs/ops.md, "Row-chunked regions"): a subgraph mapped over
// chunks of one axis. Inputs are the region's external inputs; attribute
// body is a graph whose inputs correspond one to one with the node's
// inputs and whose outputs correspond with the node's outputs; in_axes[i]
// is the axis input i is split along (-1: passed whole to every chunk),
// out_axes[j] the axis output j is concatenated along; chunk is the rows
// per chunk (0: one chunk). Every split input has the same extent R on its
// axis; in the body that axis is the symbol ChunkRowsSym.

// ChunkRowsSym is the symbolic size of the mapped axis inside a ChunkMap
// body: the rows of one chunk.
const ChunkRowsSym = "chunk_rows"

func init() {
	RegisterOp(OpDef{Domain: FusedDomain, Op: "ChunkMap", MinInputs: 1, MaxInputs: -1,
		MinOutputs: 1, MaxOutputs: -1, SinceVersion: 1, Infer: of3cInferChunkMap})
}

// ChunkMapBody returns n's body with its axes, checked against n's arity.
func ChunkMapBody(n *Node) (body *Graph, inAxes, outAxes []int64, err error) {
	a, ok := n.Attrs["body"]
	if !ok || a.Kind != AttrGraph || a.Graph == nil {
		return nil, nil, nil, fmt.Errorf("attribute body (a graph) is required")
	}
	body = a.Graph
	inAxes, _ = n.AttrInts("in_axes")
	outAxes, _ = n.AttrInts("out_axes")
	if len(body.Inputs) != len(n.Inputs) || len(inAxes) != len(n.Inputs) {
		return nil, nil, nil, fmt.Errorf("%d inputs, body has %d, in_axes %d: want one each", len(n.Inputs), len(body.Inputs), len(inAxes))
	}
	if len(body.Outputs) != len(n.Outputs) || len(outAxes) != len(n.Outputs) {
		return nil, nil, nil, fmt.Errorf("%d outputs, body has %d, out_axes %d: want one each", len(n.Outputs), len(body.Outputs), len(outAxes))
	}
	if c := n.AttrInt("chunk", 0); c < 0 {
		return nil, nil, nil, fmt.Errorf("chunk %d: want ≥ 0", c)
	}
	return body, inAxes, outAxes, nil
}

// of3cInferChunkMap types the body for the node's current input types (the
// split axis becoming ChunkRowsSym), infers it, and gives each output the
// body output's type with the concatenation axis set to the split extent.
// Re-typing the body here keeps it consistent when a pass changes the
// region's input types.
func of3cInferChunkMap(n *Node) ([]Type, []Shape, error) {
	body, inAxes, outAxes, err := ChunkMapBody(n)
	if err != nil {
		return nil, nil, err
	}
	var rows Dim
	have := false
	for i, in := range n.Inputs {
		if in == nil {
			return nil, nil, fmt.Errorf("input %d is omitted; every input is required", i)
		}
		t := in.Type
		if inAxes[i] >= 0 {
			if !t.Ranked || inAxes[i] >= int64(len(t.Shape)) {
				return nil, nil, fmt.Errorf("input %d %s has no axis %d", i, t, inAxes[i])
			}
			d := t.Shape[inAxes[i]]
			if have && !d.Equal(rows) && !(d.IsUnknown() || rows.IsUnknown()) {
				return nil, nil, fmt.Errorf("input %d splits a dim %v, others %v: the split axes must agree", i, d, rows)
			}
			if !have {
				rows, have = d, true
			}
			t = TensorType(t.DType, append(Shape{}, t.Shape...))
			t.Shape[inAxes[i]] = Dim{Sym: ChunkRowsSym}
		} else if inAxes[i] != -1 {
			return nil, nil, fmt.Errorf("in_axes[%d] = %d: want an axis or -1", i, inAxes[i])
		}
		body.Inputs[i].Type = t
		if in.ShapeValue != nil && inAxes[i] < 0 {
			body.Inputs[i].ShapeValue = in.ShapeValue
		}
	}
	if !have {
		return nil, nil, fmt.Errorf("no input is split (in_axes all -1)")
	}
	if err := InferShapes(body); err != nil {
		return nil, nil, fmt.Errorf("body: %w", err)
	}
	out := make([]Type, len(n.Outputs))
	for j, o := range body.Outputs {
		t := o.Type
		if !t.Ranked {
			out[j] = t
			continue
		}
		ax := outAxes[j]
		if ax < 0 || ax >= int64(len(t.Shape)) {
			return nil, nil, fmt.Errorf("out_axes[%d] = %d: output %s has rank %d", j, ax, o, len(t.Shape))
		}
		if d := t.Shape[ax]; d.Sym != ChunkRowsSym {
			return nil, nil, fmt.Errorf("body output %d %s: axis %d is %v, want the chunk's rows (%s)", j, t, ax, d, ChunkRowsSym)
		}
		s := append(Shape{}, t.Shape...)
		for k, d := range s {
			if d.Sym == ChunkRowsSym && int64(k) != ax {
				return nil, nil, fmt.Errorf("body output %d %s depends on the chunk's rows outside axis %d", j, t, ax)
			}
		}
		s[ax] = rows
		out[j] = TensorType(t.DType, s)
	}
	return out, nil, nil
}
