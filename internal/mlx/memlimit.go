package mlx

// SetMemoryLimit sets MLX's memory limit from inside Do (the package-level
// SetMemoryLimit runs its own Do) and returns the previous limit. MLX's eval
// waits for running ops whenever its active memory is above the limit, so
// the limit bounds how far allocation runs ahead of execution (see
// passes/memory_limit.go).
func (s *Scope) SetMemoryLimit(n uint64) uint64 {
	prev, err := libSetMemoryLimit(n)
	if err != nil {
		s.failf("set_memory_limit", err)
	}
	return prev
}
