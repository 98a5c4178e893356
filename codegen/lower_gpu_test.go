package codegen

import (
	"testing"

	"github.com/of3c/of3c/internal/mlx"
	"github.com/of3c/of3c/passes"
)

// contiguousBias on a GPU program (run here on MLX's CPU, where the same
// ops exist) with the grid limit lowered so that a [1, H, Q, K] bias laid
// out keys-apart (a transposed linear(z), as OpenFold3's triangle bias is)
// is copied in blocks of query rows: the values must come through every
// split, and a key axis wider than one copy leaves the bias as it is.
func TestContiguousBiasSplitsQueryRows(t *testing.T) {
	needMLX(t)
	const h, q = 3, 10
	for _, tc := range []struct {
		name    string
		k       int
		gridMax int64
	}{
		{"one copy", 20, 65535},
		{"split in 3 rows (f32: 64 columns a block)", 20, 1},
		{"split in 6 and 4 rows", 20, 2},
		{"keys wider than a copy", 200, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer passes.SetGPUGridYMaxForTest(tc.gridMax)()
			k := tc.k
			z := make([]float32, q*k*h) // [1, Q, K, H]
			for i := range z {
				z[i] = float32(i%97) - 0.5*float32(i%13)
			}
			err := mlx.Do(func(s *mlx.Scope) error {
				tr := &tracer{s: s, p: &Program{opts: Options{Device: "gpu"}}}
				b := s.Transpose(s.FromFloat32s(z, 1, q, k, h), 0, 3, 1, 2) // [1, H, Q, K]
				got := s.Float32s(tr.contiguousBias(b))
				if err := s.Err(); err != nil {
					return err
				}
				if len(got) != h*q*k {
					t.Fatalf("%d values, want %d", len(got), h*q*k)
				}
				for hh := 0; hh < h; hh++ {
					for qq := 0; qq < q; qq++ {
						for kk := 0; kk < k; kk++ {
							if g, w := got[(hh*q+qq)*k+kk], z[(qq*k+kk)*h+hh]; g != w {
								t.Fatalf("[0,%d,%d,%d] = %v, want %v", hh, qq, kk, g, w)
							}
						}
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}
