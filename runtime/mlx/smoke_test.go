package mlx

import "testing"

func TestSmoke(t *testing.T) {
	t.Log(Info())
	err := Do(func(s *Scope) error {
		a := s.FromFloat32s([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
		b := s.Transpose(a)
		c := s.MatMul(a, b)
		t.Log(s.Float32s(c), c.Shape(), s.Float32s(b))
		x := s.Add(a, s.FromFloat32s([]float32{1, 2}, 2))
		t.Log(x, s.Err())
		s.ResetErr()
		f := s.Closure(func(s *Scope, in []*Array) ([]*Array, error) {
			t.Log("trace")
			return []*Array{s.Exp(s.Add(in[0], in[0]))}, nil
		})
		cf := s.Compile(f, false)
		for i := 0; i < 3; i++ {
			t.Log(s.Float32s(s.Call(cf, a)[0]))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := Memory()
	t.Log(m)
}
