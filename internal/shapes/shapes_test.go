package shapes

import (
	"slices"
	"testing"
)

func TestNormAxis(t *testing.T) {
	for _, c := range []struct {
		axis int64
		rank int
		want int
		ok   bool
	}{{0, 3, 0, true}, {2, 3, 2, true}, {-1, 3, 2, true}, {-3, 3, 0, true}, {3, 3, 0, false}, {-4, 3, 0, false}, {0, 0, 0, false}} {
		got, err := NormAxis(c.axis, c.rank)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("NormAxis(%d, %d) = %d, %v", c.axis, c.rank, got, err)
		}
	}
	if got, err := NormAxes([]int64{-1, 0}, 2); err != nil || !slices.Equal(got, []int{1, 0}) {
		t.Errorf("NormAxes = %v, %v", got, err)
	}
	if _, err := NormAxes([]int64{1, -1}, 2); err == nil {
		t.Error("NormAxes accepted a repeated axis")
	}
}

func TestBroadcast(t *testing.T) {
	for _, c := range []struct{ a, b, want []int64 }{
		{[]int64{2, 1, 4}, []int64{3, 1}, []int64{2, 3, 4}},
		{[]int64{}, []int64{5}, []int64{5}},
		{[]int64{1}, []int64{0}, []int64{0}},
		{[]int64{7, 1}, []int64{7, 6}, []int64{7, 6}},
	} {
		if got, err := Broadcast(c.a, c.b); err != nil || !slices.Equal(got, c.want) {
			t.Errorf("Broadcast(%v, %v) = %v, %v; want %v", c.a, c.b, got, err, c.want)
		}
	}
	if _, err := Broadcast([]int64{2, 3}, []int64{4, 3}); err == nil {
		t.Error("Broadcast accepted 2 against 4")
	}
	if got := Prod([]int64{2, 3, 4}); got != 24 || Prod(nil) != 1 {
		t.Errorf("Prod = %d", got)
	}
}
