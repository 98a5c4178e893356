package main

import (
	"fmt"
	"strconv"
	"strings"
)

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
