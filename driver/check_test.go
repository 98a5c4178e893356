package driver

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/of3c/of3c/graph"
)

func TestCompare(t *testing.T) {
	want := graph.NewTensorF32([]int64{2, 3}, []float32{0, 1, 2, 3, float32(math.NaN()), 5})
	got := graph.NewTensorF32([]int64{2, 3}, []float32{0, 1.5, 2, 3.01, float32(math.NaN()), 9})
	order := []string{"y", "absent"}
	res, err := Compare(order, map[string]*graph.Tensor{"y": got}, map[string]*graph.Tensor{"y": want}, Tolerance{Atol: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Outputs[0]
	if res.Passed || c.Mismatches != 2 || !slices.Equal(c.First.Index, []int64{0, 1}) || c.First.Got != 1.5 || c.First.Want != 1 ||
		!slices.Equal(c.Worst.Index, []int64{1, 2}) || c.MaxAbsErr != 4 {
		t.Errorf("mismatch: %+v first %+v worst %+v", c, c.First, c.Worst)
	}
	if !res.Outputs[1].Missing || !res.Outputs[1].OK() {
		t.Errorf("an output without expected value: %+v", res.Outputs[1])
	}
	if err := res.Err(); err == nil || res.Failed()[0] != "y" {
		t.Errorf("Err() = %v", err)
	}
	// rtol scales with |want|: 4 ≤ 0 + 1·5.
	res, _ = Compare([]string{"y"}, map[string]*graph.Tensor{"y": got}, map[string]*graph.Tensor{"y": want}, Tolerance{Atol: 0, Rtol: 1})
	if !res.Passed {
		t.Errorf("rtol 1: %+v", res.Outputs[0])
	}
	// NaN against a number and shape mismatches fail.
	nan := graph.NewTensorF32([]int64{1}, []float32{float32(math.NaN())})
	one := graph.NewTensorF32([]int64{1}, []float32{1})
	res, _ = Compare([]string{"y"}, map[string]*graph.Tensor{"y": nan}, map[string]*graph.Tensor{"y": one}, Tolerance{Atol: 1e9})
	if res.Passed {
		t.Error("NaN accepted")
	}
	res, _ = Compare([]string{"y"}, map[string]*graph.Tensor{"y": one}, map[string]*graph.Tensor{"y": want}, Tolerance{Atol: 1e9})
	if res.Passed || res.Outputs[0].Problem == "" {
		t.Error("shape mismatch accepted")
	}
	if _, err := Compare(nil, nil, nil, Tolerance{Atol: -1}); err == nil {
		t.Error("negative atol accepted")
	}
}

func TestSummarize(t *testing.T) {
	var ds []time.Duration
	for i := 10; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	l := Summarize(ds)
	if l.Count != 10 || l.Min != 1 || l.Max != 10 || l.Mean != 5.5 || l.Median != 5.5 || math.Abs(l.P90-9.1) > 1e-9 || math.Abs(l.P99-9.91) > 1e-9 {
		t.Errorf("%+v", l)
	}
	if one := Summarize(ds[:1]); one.P99 != 10 || one.Median != 10 {
		t.Errorf("one value: %+v", one)
	}
	if (Summarize(nil) != Latency{}) {
		t.Error("empty")
	}
}

func TestRandomInputs(t *testing.T) {
	g, err := graph.Parse(`graph g {
  input %x:f32[N,2*N]
  input %pair_mask:f32[N,N]
  input %idx:i64[S]
  %y:f32[N,2*N] = Identity(%x)
  output %y
}`)
	if err != nil {
		t.Fatal(err)
	}
	a, err := RandomInputs(g.Inputs, map[string]int64{"N": 4, "S": 3}, 7)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := RandomInputs(g.Inputs, map[string]int64{"N": 4, "S": 3}, 7)
	if !slices.Equal(a["x"].Shape, []int64{4, 8}) || !slices.Equal(a["x"].Data, b["x"].Data) {
		t.Errorf("x: %v, reproducible %v", a["x"].Shape, slices.Equal(a["x"].Data, b["x"].Data))
	}
	m, _ := a["pair_mask"].Float64s()
	for _, v := range m {
		if v != 0 && v != 1 {
			t.Fatalf("mask value %v", v)
		}
	}
	if _, err := RandomInputs(g.Inputs, map[string]int64{"N": 4}, 0); err == nil {
		t.Error("missing S accepted")
	}
	if _, err := RandomInputs(g.Inputs, map[string]int64{"N": 4, "S": 1, "Q": 2}, 0); err == nil {
		t.Error("unknown Q accepted")
	}
}
