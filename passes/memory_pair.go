package passes

// Workspace estimates of the row-chunked pair ops (docs/ops.md), matching
// what codegen/lower_chunk.go keeps alive at once. R is the row block
// (row_chunk, or all rows), B the product of the leading batch dims, A the
// accumulation type's size.
//
//	OuterProductMean  B·R·J·(2·c·e + c_out)·A   the block's outer products
//	                  [R·c, J·e], their channels-last copy [R, J, c·e] and
//	                  the projected block [R, J, c_out]
//	TriangleMult.     B·(2·N·N·h + 8·R·N·h)·A   b's blocks and their gathered
//	                  copy, then b and the finished output row blocks until
//	                  they are concatenated; plus per block the projections
//	                  [R, N, 2h], a, its transposed copy, the product and
//	                  its channels-last copy

// pairRows is the length of the axis row_chunk splits: I (OuterProductMean:
// a's axis -2; TriangleMultiplication: x's axis -3).
func (p *planner) pairRows(s *planNode) int64 {
	xs := p.shapes[s.n.Inputs[0]]
	if s.n.Op == "OuterProductMean" {
		return xs[len(xs)-2]
	}
	return xs[len(xs)-3]
}

func (p *planner) pairWorkspace(s *planNode) int64 {
	n := s.n
	a := accBytes(n.Outputs[0].Type.DType)
	rows := p.pairRows(s)
	r := chunked(rows, s.chunk["row_chunk"])
	switch n.Op {
	case "OuterProductMean":
		as, bs, ws := p.shapes[n.Inputs[0]], p.shapes[n.Inputs[1]], p.shapes[n.Inputs[2]]
		batch := prod(as[:len(as)-3])
		c, e, j, cout := as[len(as)-1], bs[len(bs)-1], bs[len(bs)-2], ws[1]
		w := mulS(batch, r, j, addS(mulS(2, c, e), cout), a)
		if r < rows {
			w = addS(w, mulS(batch, rows, j, cout, a)) // the blocks, until concatenated
		}
		return w
	case "TriangleMultiplication":
		xs, ws := p.shapes[n.Inputs[0]], p.shapes[n.Inputs[2]]
		batch := prod(xs[:len(xs)-3])
		nn, h := xs[len(xs)-2], ws[1]/4
		if r >= rows {
			// One shot: x·W [N, N, 4h], a, and b's projection and gate
			// made contiguous for the fused gate kernel.
			return mulS(batch, 7, rows, nn, h, a)
		}
		// b whole twice (its blocks and their gathered copy; later b
		// and the finished output row blocks, live until concatenated),
		// and one block's projections, a, copies and products.
		return mulS(batch, addS(mulS(2, rows, nn, h), mulS(8, r, nn, h)), a)
	}
	return 0
}
