package mlx

import "fmt"

// LoadSafetensors reads a .safetensors file. Arrays belong to s (lazy: the
// data is read when they are first evaluated).
func (s *Scope) LoadSafetensors(path string) (map[string]*Array, map[string]string) {
	if !s.ok("load_safetensors") {
		return nil, nil
	}
	names, hs, meta, err := libLoadSafetensors(path)
	if err != nil {
		s.failf("load_safetensors", err)
		return nil, nil
	}
	out := make(map[string]*Array, len(names))
	for i, n := range names {
		out[n] = s.wrap(hs[i])
	}
	return out, meta
}

// SaveSafetensors writes arrays (evaluating them) and string metadata.
func (s *Scope) SaveSafetensors(path string, arrays map[string]*Array, meta map[string]string) {
	if !s.ok("save_safetensors") {
		return
	}
	names := make([]string, 0, len(arrays))
	hs := make([]hnd, 0, len(arrays))
	for n, a := range arrays {
		if a == nil || a.h == nil {
			s.failf("save_safetensors", fmt.Errorf("array %q is nil or released", n))
			return
		}
		names = append(names, n)
		hs = append(hs, a.h)
	}
	if err := libSaveSafetensors(path, names, hs, meta); err != nil {
		s.failf("save_safetensors", err)
	}
}
