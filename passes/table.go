package passes

// PassInfo describes one entry of the pipeline, for documentation
// (docs/architecture.md prints the table from it).
type PassInfo struct {
	Name    string
	Desc    string
	After   []string // passes that must run before it when both run
	Default bool     // false: runs only when named (or asked for)
}

// Table returns the pipeline, in order.
func Table() []PassInfo {
	out := make([]PassInfo, len(pipeline))
	for i, p := range pipeline {
		out[i] = PassInfo{Name: p.Name, Desc: p.Desc, After: append([]string(nil), p.After...), Default: p.Default}
	}
	return out
}
