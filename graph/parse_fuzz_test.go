package graph

import (
	"os"
	"testing"
)

// FuzzParse feeds arbitrary text to Parse. Whatever it accepts must print,
// print in full, parse back, and print identically (the round-trip
// property); every consumer of a parsed graph (Verify, Clone, the DOT and
// JSON printers) must cope with it without panicking. Seeds: the inline ones
// below plus testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	for _, path := range []string{"testdata/text/roundtrip.txt"} {
		if src, err := os.ReadFile(path); err == nil {
			f.Add(string(src))
		}
	}
	f.Add(verifyOK)
	f.Add(jsonSrc)
	f.Add("graph g {\n  input %x:f32[N,4]\n  %y = Relu(%x)\n  output %y\n}\n")
	f.Add("graph g {\n  %c:f16[2,3] = const [1, -2, 0.5, inf, -inf, nan]\n  %r:i8[40] = const random(3, -4, 4)\n}\n")
	f.Add("graph g {\n  %y, _ = \"x.y\".\"op\"<3>(_) {a=kind(11), b=\"s\\n\", c=strings[\"a\"], d=tensor<u8[2]> fill(7)} @\"n m\"\n}\n")
	f.Fuzz(func(t *testing.T, src string) {
		g, err := Parse(src)
		if err != nil {
			if _, ok := err.(*ParseError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		text := Format(g)
		_ = FormatDOT(g)
		if _, err := FormatJSON(g); err != nil {
			t.Fatalf("FormatJSON: %v", err)
		}
		_ = Verify(g)
		c := Clone(g)
		if Format(c) != text {
			t.Fatalf("clone prints differently")
		}
		// Printing every value of a large constant is slow and says
		// nothing new; the round trip is checked on graphs of modest size.
		var elems int64
		for _, v := range g.Consts {
			elems += v.Const.NumElements()
		}
		if elems > 1<<16 {
			return
		}
		full := FormatWith(g, FormatOptions{InlineMax: -1})
		g2, err := Parse(full)
		if err != nil {
			t.Fatalf("printed text does not parse: %v\ninput:\n%q\nprinted:\n%s", err, src, full)
		}
		if again := FormatWith(g2, FormatOptions{InlineMax: -1}); again != full {
			t.Fatalf("round trip differs:\n%s\ninput:\n%q", lineDiff(full, again), src)
		}
		if Format(g2) != text {
			t.Fatalf("default printing differs after a round trip:\n%s", lineDiff(text, Format(g2)))
		}
	})
}
