package graph

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"sync"
)

// Constant generators shared by the text form (fill(v), random(seed)) and the
// Builder, so that a weight stated either way has the same bytes.

// RandomDefaultRange is the range random(seed) draws from when none is given:
// [-1, 1) for floats, the integers 0..9 for integer types, false/true for bool.
func RandomDefaultRange(dt DType) (lo, hi float64) {
	switch {
	case dt.IsFloat():
		return -1, 1
	case dt == Bool:
		return 0, 2
	}
	return 0, 10
}

// RandomTensor fills a tensor with values drawn uniformly from [lo, hi)
// (integers: lo..hi-1) by splitmix64 seeded with seed. The stream is defined
// here, not by math/rand, so the same seed gives the same weights on every
// Go version.
func RandomTensor(dt DType, shape []int64, seed uint64, lo, hi float64) (*Tensor, error) {
	n, ok := txtCheckedCount(shape)
	if !ok || n > math.MaxInt32 {
		return nil, fmt.Errorf("random: shape %v is too large", shape)
	}
	r, err := newTxtRandom(dt, seed, lo, hi)
	if err != nil {
		return nil, err
	}
	b := make([]byte, int(n)*dt.Size())
	for i := 0; i < int(n); i++ {
		if err := txtPutElem(dt, b, i, r.next()); err != nil {
			return nil, err
		}
	}
	return &Tensor{DType: dt, Shape: append([]int64{}, shape...), Data: b}, nil
}

// txtRandom is the value stream behind RandomTensor.
type txtRandom struct {
	dt       DType
	state    uint64
	lo, hi   float64
	integral bool
}

func newTxtRandom(dt DType, seed uint64, lo, hi float64) (*txtRandom, error) {
	if !(hi > lo) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		return nil, fmt.Errorf("random: empty or infinite range [%v, %v)", lo, hi)
	}
	if dt.Size() == 0 || !txtPrintableDType(dt) {
		return nil, fmt.Errorf("random: cannot build a %s tensor", txtFormatDType(dt))
	}
	r := &txtRandom{dt: dt, state: seed, lo: lo, hi: hi, integral: !dt.IsFloat()}
	if r.integral {
		r.lo, r.hi = math.Ceil(lo), math.Ceil(hi)
		if !(r.hi > r.lo) {
			return nil, fmt.Errorf("random: no integer in [%v, %v)", lo, hi)
		}
	}
	return r, nil
}

// txtUniform advances a splitmix64 state and returns a draw in [0, 1) with 53
// random bits.
func txtUniform(state *uint64) float64 {
	*state += 0x9e3779b97f4a7c15
	z := *state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return float64(z>>11) / (1 << 53)
}

func (r *txtRandom) next() txtNum { return r.value(txtUniform(&r.state)) }

// value maps a uniform draw in [0, 1) to an element of r's range.
func (r *txtRandom) value(draw float64) txtNum {
	u := r.lo + (r.hi-r.lo)*draw
	if !r.integral {
		return txtNum{f: u}
	}
	v := math.Floor(u)
	if v >= r.hi {
		v = r.hi - 1
	}
	if v > math.MaxInt64 {
		return txtNum{isInt: true, isUint: true, u: uint64(v), f: v}
	}
	return txtNum{isInt: true, i: int64(v), f: v}
}

// txtRandomSeedLimit bounds the seeds the printer tries when recognizing a
// constant as random(seed): tests use small seeds.
const txtRandomSeedLimit = 1024

// txtFirstDraws holds the first three uniform draws of every seed below
// txtRandomSeedLimit, so that recognizing a constant rejects a wrong seed
// with a table lookup and a comparison (a model has thousands of weights).
var txtFirstDraws = sync.OnceValue(func() *[txtRandomSeedLimit][3]float64 {
	var tab [txtRandomSeedLimit][3]float64
	for seed := range tab {
		st := uint64(seed)
		for k := range tab[seed] {
			tab[seed][k] = txtUniform(&st)
		}
	}
	return &tab
})

// txtFindRandom reports the generator of t when t equals random(seed) over
// the default range or, for float types, random(seed, lo, hi) with bounds
// that are short decimals relative to their range, for a seed below
// txtRandomSeedLimit. A wrong seed is rejected on the first element (default
// range) or the first three (custom range) before any full comparison.
func txtFindRandom(t *Tensor) (seed uint64, lo, hi float64, custom, ok bool) {
	n := int(t.NumElements())
	sz := t.DType.Size()
	if n == 0 || sz == 0 || sz > 8 {
		return 0, 0, 0, false, false
	}
	tab := txtFirstDraws()
	lo, hi = RandomDefaultRange(t.DType)
	first := t.Data[:sz]
	var buf [8]byte
	for s := range tab {
		r := txtRandom{dt: t.DType, lo: lo, hi: hi, integral: !t.DType.IsFloat()}
		v := r.value(tab[s][0])
		if txtPutElem(t.DType, buf[:sz], 0, v) != nil || string(buf[:sz]) != string(first) {
			continue
		}
		if txtMatchesRandom(t, uint64(s), lo, hi) {
			return uint64(s), lo, hi, false, true
		}
	}
	if !t.DType.IsFloat() || n < 3 {
		return 0, 0, 0, false, false
	}
	// Recover lo and hi from the first two elements for each seed, check
	// the third, then snap the bounds to short decimals (as a test writes
	// them) and compare everything.
	v0, v1, v2 := txtElemFloat(t, 0), txtElemFloat(t, 1), txtElemFloat(t, 2)
	tol := 1e-5
	if t.DType == Float16 || t.DType == BFloat16 {
		tol = 1e-2
	}
	for s := range tab {
		u0, u1, u2 := tab[s][0], tab[s][1], tab[s][2]
		if math.Abs(u1-u0) < 1e-3 {
			continue
		}
		scale := (v1 - v0) / (u1 - u0)
		if !(scale > 0) || math.IsInf(scale, 0) {
			continue
		}
		l := v0 - scale*u0
		if math.Abs(l+scale*u2-v2) > tol*scale {
			continue
		}
		// Round both bounds to a decimal quantum relative to the range
		// (so that lo = 0 is found even when recovered as -4e-13),
		// coarsest first.
		top := int(math.Floor(math.Log10(scale)))
		for digits := 1; digits <= 9; digits++ {
			sl, sh := txtRoundDecimal(l, top-digits+1), txtRoundDecimal(l+scale, top-digits+1)
			if sh > sl && txtMatchesRandom(t, uint64(s), sl, sh) {
				return uint64(s), sl, sh, true, true
			}
		}
	}
	return 0, 0, 0, false, false
}

// txtRoundDecimal rounds x to a multiple of 10^e, through decimal text so
// that the result is the float64 a test writer's literal parses to.
func txtRoundDecimal(x float64, e int) float64 {
	var v float64
	if e < 0 {
		v, _ = strconv.ParseFloat(strconv.FormatFloat(x, 'f', -e, 64), 64)
	} else {
		q := math.Pow(10, float64(e))
		v = math.Round(x/q) * q
	}
	if v == 0 {
		return 0 // not -0: the bound prints as a test writer would write it
	}
	return v
}

// txtMatchesRandom compares t with RandomTensor(t.DType, shape, seed, lo, hi)
// element by element, stopping at the first difference.
func txtMatchesRandom(t *Tensor, seed uint64, lo, hi float64) bool {
	r, err := newTxtRandom(t.DType, seed, lo, hi)
	if err != nil {
		return false
	}
	sz := t.DType.Size()
	var buf [16]byte
	for i := 0; i < int(t.NumElements()); i++ {
		if txtPutElem(t.DType, buf[:sz], 0, r.next()) != nil || string(buf[:sz]) != string(t.Data[i*sz:(i+1)*sz]) {
			return false
		}
	}
	return true
}

// FillTensor returns a tensor whose elements all equal v.
func FillTensor(dt DType, shape []int64, v float64) (*Tensor, error) {
	n, ok := txtCheckedCount(shape)
	if !ok || n > math.MaxInt32 {
		return nil, fmt.Errorf("fill: shape %v is too large", shape)
	}
	num := txtNum{f: v}
	if v == math.Trunc(v) && math.Abs(v) < 1<<63 {
		num = txtNum{isInt: true, i: int64(v), f: v}
	}
	return txtFill(dt, shape, n, num)
}

// txtFill encodes v once and repeats its bytes n times.
func txtFill(dt DType, shape []int64, n int64, v txtNum) (*Tensor, error) {
	sz := dt.Size()
	if sz == 0 || !txtPrintableDType(dt) {
		return nil, fmt.Errorf("cannot build a %s tensor", txtFormatDType(dt))
	}
	b := make([]byte, int(n)*sz)
	if n > 0 {
		if err := txtPutElem(dt, b, 0, v); err != nil {
			return nil, err
		}
		for off := sz; off < len(b); off *= 2 {
			copy(b[off:], b[:off])
		}
	}
	return &Tensor{DType: dt, Shape: append([]int64{}, shape...), Data: b}, nil
}

// txtEncode stores literal values as dtype dt, refusing values the type cannot
// hold (a fraction or out-of-range number for an integer type, 2 for bool).
func txtEncode(dt DType, shape []int64, vals []txtNum) (*Tensor, error) {
	if dt.Size() == 0 || !txtPrintableDType(dt) {
		return nil, fmt.Errorf("cannot build a %s tensor", txtFormatDType(dt))
	}
	b := make([]byte, dt.Size()*len(vals))
	for i, v := range vals {
		if err := txtPutElem(dt, b, i, v); err != nil {
			return nil, err
		}
	}
	return &Tensor{DType: dt, Shape: append([]int64{}, shape...), Data: b}, nil
}

// txtPutElem stores v as element i of b in dtype dt.
func txtPutElem(dt DType, b []byte, i int, v txtNum) error {
	le := binary.LittleEndian
	switch dt {
	case Float32:
		le.PutUint32(b[4*i:], math.Float32bits(float32(v.f)))
		return nil
	case Float64:
		le.PutUint64(b[8*i:], math.Float64bits(v.f))
		return nil
	case Float16:
		le.PutUint16(b[2*i:], Float32ToHalf(float32(v.f)))
		return nil
	case BFloat16:
		le.PutUint16(b[2*i:], Float32ToBF16(float32(v.f)))
		return nil
	}
	if !v.isInt {
		return fmt.Errorf("element %d (%s) is not an integer, as %s needs", i, txtNumText(v), txtFormatDType(dt))
	}
	if dt == Uint64 {
		if v.isUint {
			le.PutUint64(b[8*i:], v.u)
			return nil
		}
		if v.i < 0 {
			return fmt.Errorf("element %d (%d) is out of range for u64", i, v.i)
		}
		le.PutUint64(b[8*i:], uint64(v.i))
		return nil
	}
	lo, hi := txtIntRange(dt)
	if v.isUint || v.i < lo || v.i > hi {
		return fmt.Errorf("element %d (%s) is out of range for %s", i, txtNumText(v), txtFormatDType(dt))
	}
	switch dt.Size() {
	case 1:
		b[i] = byte(v.i)
	case 2:
		le.PutUint16(b[2*i:], uint16(v.i))
	case 4:
		le.PutUint32(b[4*i:], uint32(v.i))
	case 8:
		le.PutUint64(b[8*i:], uint64(v.i))
	}
	return nil
}

func txtNumText(v txtNum) string {
	if v.text != "" {
		return v.text
	}
	if v.isInt {
		return fmt.Sprint(v.i)
	}
	return fmt.Sprint(v.f)
}

func txtIntRange(dt DType) (lo, hi int64) {
	switch dt {
	case Bool:
		return 0, 1
	case Int8:
		return math.MinInt8, math.MaxInt8
	case Uint8:
		return 0, math.MaxUint8
	case Int16:
		return math.MinInt16, math.MaxInt16
	case Uint16:
		return 0, math.MaxUint16
	case Int32:
		return math.MinInt32, math.MaxInt32
	case Uint32:
		return 0, math.MaxUint32
	}
	return math.MinInt64, math.MaxInt64
}
