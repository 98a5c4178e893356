// Package units formats and parses byte counts, the one place the CLI, the
// driver, the planner and the environment settings (OF3C_MLX_MEMORY_LIMIT)
// take them from.
package units

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// FormatBytes renders a byte count with a binary unit: "512 B", "1.5 KiB",
// "12.0 MiB", "3.25 GiB".
func FormatBytes(n int64) string {
	const k = 1024
	switch {
	case n >= k*k*k:
		return fmt.Sprintf("%.2f GiB", float64(n)/(k*k*k))
	case n >= k*k:
		return fmt.Sprintf("%.1f MiB", float64(n)/(k*k))
	case n >= k:
		return fmt.Sprintf("%.1f KiB", float64(n)/k)
	}
	return fmt.Sprintf("%d B", n)
}

// byteUnits are the suffixes ParseBytes accepts, longest first so that
// "GiB" is not read as "B".
var byteUnits = []struct {
	suffix string
	mult   float64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
	{"B", 1},
}

// ParseBytes reads a size: a non-negative number (fractions allowed) with
// an optional unit, case-insensitive, space between allowed.
//
//   - no unit or B: bytes
//   - K, M, G, T and KiB, MiB, GiB, TiB: binary, powers of 1024 ("8G" is
//     8 GiB, as memory sizes are usually meant)
//   - KB, MB, GB, TB: decimal, powers of 1000 (only when spelled so)
//
// The result is truncated to whole bytes; sizes of 2⁶² bytes or more are
// refused.
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := 1.0
	for _, u := range byteUnits {
		if len(t) > len(u.suffix) && strings.EqualFold(t[len(t)-len(u.suffix):], u.suffix) {
			t = strings.TrimSpace(t[:len(t)-len(u.suffix)])
			mult = u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 || math.IsNaN(v) || math.IsInf(v, 0) || v*mult >= 1<<62 {
		return 0, fmt.Errorf("size %q: want a number of bytes with an optional unit (e.g. 8GiB, 512M, 4096)", s)
	}
	return int64(v * mult), nil
}
