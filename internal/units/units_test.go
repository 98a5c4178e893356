package units

import "testing"

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{
		"4096": 4096, "0": 0, "12B": 12, "1.5K": 1536, "2k": 2048,
		"8G": 8 << 30, "8GiB": 8 << 30, "8 gib": 8 << 30, "512M": 512 << 20, "512MiB": 512 << 20,
		"1T": 1 << 40, "1TiB": 1 << 40, "3KiB": 3072,
		"1KB": 1000, "2MB": 2e6, "8GB": 8e9, "1TB": 1e12, " 1.5 GB ": 1.5e9,
	} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "G", "GiB", "-1", "-1G", "x", "1X", "NaN", "Inf", "1e30", "8 G B", "4611686018427387904"} {
		if v, err := ParseBytes(bad); err == nil {
			t.Errorf("ParseBytes(%q) = %d, want an error", bad, v)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 12 << 20: "12.0 MiB",
		3<<30 + 1<<28: "3.25 GiB",
	} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
	// What FormatBytes prints, ParseBytes reads back within the rounding.
	for _, n := range []int64{5000, 7 << 20, 9 << 30} {
		v, err := ParseBytes(FormatBytes(n))
		if err != nil || v < n*99/100 || v > n*101/100 {
			t.Errorf("ParseBytes(FormatBytes(%d)) = %d, %v", n, v, err)
		}
	}
}
