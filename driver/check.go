package driver

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/of3c/of3c/graph"
)

// Tolerance is the element-wise acceptance test of Compare, numpy.allclose's:
// |got − want| ≤ Atol + Rtol·|want|. NaN matches NaN only.
type Tolerance struct{ Atol, Rtol float64 }

// TensorCheck is the comparison of one output with its expected value.
type TensorCheck struct {
	Name  string  `json:"name"`
	Shape []int64 `json:"shape"`
	// Missing: no expected value was given for this output (not a failure).
	Missing bool `json:"missing,omitempty"`
	// Problem is set when the two cannot be compared element-wise (shape or
	// dtype mismatch); it counts as a failure.
	Problem   string  `json:"problem,omitempty"`
	MaxAbsErr float64 `json:"max_abs_err"`
	MaxRelErr float64 `json:"max_rel_err"`
	// Mismatches counts the elements outside the tolerance; First is the
	// first of them (row-major), Worst the one with the largest excess.
	Mismatches int64     `json:"mismatches"`
	Elements   int64     `json:"elements"`
	First      *Mismatch `json:"first,omitempty"`
	Worst      *Mismatch `json:"worst,omitempty"`
}

// Mismatch locates one element outside the tolerance.
type Mismatch struct {
	Index []int64 `json:"index"`
	Got   float64 `json:"got"`
	Want  float64 `json:"want"`
}

// OK is true when the output matched (or had no expected value).
func (c *TensorCheck) OK() bool { return c.Problem == "" && c.Mismatches == 0 }

// String is one line for the terminal.
func (c *TensorCheck) String() string {
	switch {
	case c.Missing:
		return fmt.Sprintf("check %s: no expected value", c.Name)
	case c.Problem != "":
		return fmt.Sprintf("check %s: FAIL: %s", c.Name, c.Problem)
	case c.Mismatches == 0:
		return fmt.Sprintf("check %s %v: ok, max abs err %.3g, max rel err %.3g", c.Name, c.Shape, c.MaxAbsErr, c.MaxRelErr)
	}
	return fmt.Sprintf("check %s %v: FAIL: %d of %d elements outside the tolerance (max abs err %.3g); first at %v: got %.7g want %.7g; worst at %v: got %.7g want %.7g",
		c.Name, c.Shape, c.Mismatches, c.Elements, c.MaxAbsErr,
		c.First.Index, c.First.Got, c.First.Want, c.Worst.Index, c.Worst.Got, c.Worst.Want)
}

// CheckResult is the comparison of every output.
type CheckResult struct {
	Atol      float64       `json:"atol"`
	Rtol      float64       `json:"rtol"`
	MaxAbsErr float64       `json:"max_abs_err"`
	Outputs   []TensorCheck `json:"outputs"`
	Passed    bool          `json:"passed"`
}

// Failed lists the outputs that did not match.
func (r *CheckResult) Failed() []string {
	var out []string
	for i := range r.Outputs {
		if !r.Outputs[i].OK() {
			out = append(out, r.Outputs[i].Name)
		}
	}
	return out
}

// Err is nil when every output matched, else an error naming the failures.
func (r *CheckResult) Err() error {
	f := r.Failed()
	if len(f) == 0 {
		return nil
	}
	return &CheckError{Failed: f, Atol: r.Atol, Rtol: r.Rtol}
}

// CheckError reports outputs outside the tolerance.
type CheckError struct {
	Failed     []string
	Atol, Rtol float64
}

func (e *CheckError) Error() string {
	return fmt.Sprintf("check failed: %s outside atol %g + rtol %g·|want|", strings.Join(e.Failed, ", "), e.Atol, e.Rtol)
}

// Compare checks outputs (in order) against expected values.
func Compare(order []string, got, want map[string]*graph.Tensor, tol Tolerance) (*CheckResult, error) {
	if tol.Atol < 0 || tol.Rtol < 0 || math.IsNaN(tol.Atol) || math.IsNaN(tol.Rtol) {
		return nil, fmt.Errorf("tolerances must be ≥ 0 (atol %g, rtol %g)", tol.Atol, tol.Rtol)
	}
	res := &CheckResult{Atol: tol.Atol, Rtol: tol.Rtol, Passed: true}
	for _, name := range order {
		c := TensorCheck{Name: name}
		g := got[name]
		if g != nil {
			c.Shape = g.Shape
		}
		w := want[name]
		switch {
		case w == nil:
			c.Missing = true
		case g == nil:
			c.Problem = "the model produced no such output"
		default:
			if err := compareTensor(&c, g, w, tol); err != nil {
				c.Problem = err.Error()
			}
		}
		res.MaxAbsErr = math.Max(res.MaxAbsErr, c.MaxAbsErr)
		if !c.OK() {
			res.Passed = false
		}
		res.Outputs = append(res.Outputs, c)
	}
	return res, nil
}

func compareTensor(c *TensorCheck, got, want *graph.Tensor, tol Tolerance) error {
	if !slices.Equal(got.Shape, want.Shape) {
		return fmt.Errorf("shape %v, expected %v", got.Shape, want.Shape)
	}
	if err := got.Validate(); err != nil {
		return err
	}
	if err := want.Validate(); err != nil {
		return fmt.Errorf("expected value: %w", err)
	}
	g, err := got.Float64s()
	if err != nil {
		return err
	}
	w, err := want.Float64s()
	if err != nil {
		return fmt.Errorf("expected value: %w", err)
	}
	if len(g) != len(w) {
		return errors.New("element counts differ")
	}
	c.Elements = int64(len(g))
	worstExcess := math.Inf(-1)
	for i := range g {
		d := math.Abs(g[i] - w[i])
		bad := false
		switch {
		case math.IsNaN(g[i]) && math.IsNaN(w[i]):
			continue
		case g[i] == w[i]: // equal infinities too
			continue
		case math.IsNaN(d):
			d, bad = math.Inf(1), true
		default:
			bad = d > tol.Atol+tol.Rtol*math.Abs(w[i])
		}
		c.MaxAbsErr = math.Max(c.MaxAbsErr, d)
		if w[i] != 0 {
			c.MaxRelErr = math.Max(c.MaxRelErr, d/math.Abs(w[i]))
		} else if d > 0 {
			c.MaxRelErr = math.Inf(1)
		}
		if !bad {
			continue
		}
		c.Mismatches++
		m := &Mismatch{Index: unravel(int64(i), got.Shape), Got: g[i], Want: w[i]}
		if c.First == nil {
			c.First = m
		}
		if excess := d - tol.Atol - tol.Rtol*math.Abs(w[i]); excess > worstExcess || c.Worst == nil {
			worstExcess, c.Worst = excess, m
		}
	}
	return nil
}

// unravel turns a row-major flat index into a multi-index.
func unravel(i int64, shape []int64) []int64 {
	idx := make([]int64, len(shape))
	for k := len(shape) - 1; k >= 0; k-- {
		if shape[k] > 0 {
			idx[k] = i % shape[k]
			i /= shape[k]
		}
	}
	return idx
}
