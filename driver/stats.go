package driver

import (
	"math"
	"slices"
	"time"
)

// Latency summarises repeated timings, in milliseconds.
type Latency struct {
	Count  int     `json:"count"`
	Min    float64 `json:"min_ms"`
	Mean   float64 `json:"mean_ms"`
	Median float64 `json:"median_ms"`
	P90    float64 `json:"p90_ms"`
	P99    float64 `json:"p99_ms"`
	Max    float64 `json:"max_ms"`
}

// Summarize computes the latency statistics of ds (zero for none).
// Percentiles interpolate linearly between order statistics, as numpy's
// default percentile does.
func Summarize(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	v := make([]float64, len(ds))
	sum := 0.0
	for i, d := range ds {
		v[i] = float64(d) / float64(time.Millisecond)
		sum += v[i]
	}
	slices.Sort(v)
	return Latency{
		Count: len(v), Min: v[0], Max: v[len(v)-1], Mean: sum / float64(len(v)),
		Median: percentile(v, 50), P90: percentile(v, 90), P99: percentile(v, 99),
	}
}

// percentile of sorted values, p in [0, 100].
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 1 {
		return sorted[0]
	}
	pos := p / 100 * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	if lo >= len(sorted)-1 {
		return sorted[len(sorted)-1]
	}
	f := pos - float64(lo)
	return sorted[lo] + f*(sorted[lo+1]-sorted[lo])
}
