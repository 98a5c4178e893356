package main

import (
	"fmt"
	"strconv"
	"strings"
)

// parseBytes reads a size such as "8GiB", "512MiB", "1.5G", "4096" (bytes).
// Binary (KiB, MiB, GiB, TiB) and decimal (KB, MB, GB, TB; K, M, G, T) units.
func parseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   float64
	}{
		{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
		{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3},
		{"T", 1e12}, {"G", 1e9}, {"M", 1e6}, {"K", 1e3}, {"B", 1},
	}
	mult := 1.0
	for _, u := range units {
		if strings.HasSuffix(strings.ToUpper(t), strings.ToUpper(u.suffix)) && len(t) > len(u.suffix) {
			// Case-insensitive only for the letters; "gib" and "GiB" agree.
			mult = u.mult
			t = strings.TrimSpace(t[:len(t)-len(u.suffix)])
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 || v*mult > 1<<62 {
		return 0, fmt.Errorf("size %q: want a number of bytes with an optional unit (e.g. 8GiB, 512MiB)", s)
	}
	return int64(v * mult), nil
}

// parseDims reads "N=1024,S=512" (also repeated flags joined by commas).
func parseDims(s string) (map[string]int64, error) {
	dims := map[string]int64{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if !ok || strings.TrimSpace(k) == "" || err != nil || n <= 0 {
			return nil, fmt.Errorf("dims %q: want NAME=SIZE[,NAME=SIZE...] with positive sizes", s)
		}
		dims[strings.TrimSpace(k)] = n
	}
	if len(dims) == 0 {
		return nil, fmt.Errorf("dims %q: empty", s)
	}
	return dims, nil
}

// parseList splits a comma-separated flag value, dropping empty entries.
func parseList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
