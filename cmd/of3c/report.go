package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/of3c/of3c/driver"
	"github.com/of3c/of3c/internal/safefile"
	"github.com/of3c/of3c/internal/units"
)

// runReport is what `run --report FILE` writes (JSON) and, for the timing
// part, what `run --iterations N` prints on stderr.
type runReport struct {
	Model             string           `json:"model"`
	Device            string           `json:"device"`
	Of3cVersion       string           `json:"of3c_version"`
	Dims              map[string]int64 `json:"dims"`
	Padded            map[string]int64 `json:"padded"`
	FirstCallMS       float64          `json:"first_call_ms"`
	FirstCallCompiled bool             `json:"first_call_compiled"`
	Warmup            int              `json:"warmup"`
	Iterations        int              `json:"iterations"`
	// Latency is the whole Run (inputs in, compute, outputs out); Compute
	// and Transfer split it on MLX. Absent without --iterations.
	Latency      *driver.Latency     `json:"latency,omitempty"`
	Compute      *driver.Latency     `json:"compute,omitempty"`
	Transfer     *driver.Latency     `json:"transfer,omitempty"`
	PeakMLXBytes int64               `json:"peak_mlx_bytes,omitempty"`
	PeakRSSBytes int64               `json:"peak_rss_bytes"`
	Check        *driver.CheckResult `json:"check,omitempty"`
}

func (r *runReport) print(w io.Writer) {
	note := ""
	if r.FirstCallCompiled {
		note = " (includes tracing and MLX compile)"
	}
	fmt.Fprintf(w, "first call %.1f ms%s\n", r.FirstCallMS, note)
	if l := r.Latency; l != nil {
		fmt.Fprintf(w, "%d runs after %d warm-up: min %.3f  mean %.3f  median %.3f  p90 %.3f  p99 %.3f  max %.3f ms\n",
			l.Count, r.Warmup, l.Min, l.Mean, l.Median, l.P90, l.P99, l.Max)
	}
	if r.Compute != nil && r.Transfer != nil {
		fmt.Fprintf(w, "  of which: compute median %.3f ms (min %.3f ms; inputs already on the device), inputs in + outputs out median %.3f ms\n",
			r.Compute.Median, r.Compute.Min, r.Transfer.Median)
	}
	if r.PeakMLXBytes > 0 {
		fmt.Fprintf(w, "peak memory: MLX %s, process RSS %s\n", units.FormatBytes(r.PeakMLXBytes), units.FormatBytes(r.PeakRSSBytes))
	} else {
		fmt.Fprintf(w, "peak memory: process RSS %s\n", units.FormatBytes(r.PeakRSSBytes))
	}
}

// write saves the report as JSON, atomically (no partial file on failure).
func (r *runReport) write(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return safefile.WriteFileAtomic(path, append(b, '\n'))
}
