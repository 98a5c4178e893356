package artifact

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"sort"

	"github.com/of3c/of3c/graph"
)

// The safetensors format: an 8-byte little-endian header length, a JSON
// header mapping each tensor name to {dtype, shape, data_offsets} (offsets
// relative to the end of the header) plus an optional "__metadata__" map of
// strings, then the tensor bytes, row-major little-endian.

var stDTypes = map[graph.DType]string{
	graph.Float64: "F64", graph.Float32: "F32", graph.Float16: "F16", graph.BFloat16: "BF16",
	graph.Int64: "I64", graph.Int32: "I32", graph.Int16: "I16", graph.Int8: "I8",
	graph.Uint64: "U64", graph.Uint32: "U32", graph.Uint16: "U16", graph.Uint8: "U8", graph.Bool: "BOOL",
}

type stEntry struct {
	DType       string   `json:"dtype"`
	Shape       []int64  `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// stAlign pads the header so tensor data starts 8-byte aligned (as the
// reference writer does), letting readers view F64/I64 data in place.
const stAlign = 8

// EncodeSafetensors writes tensors (sorted by name) and metadata.
func EncodeSafetensors(tensors map[string]*graph.Tensor, meta map[string]string) ([]byte, error) {
	names := make([]string, 0, len(tensors))
	for n := range tensors {
		if n == "__metadata__" || n == "" {
			return nil, fmt.Errorf("safetensors: invalid tensor name %q", n)
		}
		names = append(names, n)
	}
	sort.Strings(names)
	header := map[string]any{}
	if len(meta) > 0 {
		header["__metadata__"] = meta
	}
	var off int64
	for _, n := range names {
		t := tensors[n]
		if err := t.Validate(); err != nil {
			return nil, fmt.Errorf("safetensors: tensor %q: %w", n, err)
		}
		dt, ok := stDTypes[t.DType]
		if !ok {
			return nil, fmt.Errorf("safetensors: tensor %q: dtype %s has no safetensors name", n, t.DType)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int64{}
		}
		header[n] = stEntry{DType: dt, Shape: shape, DataOffsets: [2]int64{off, off + int64(len(t.Data))}}
		off += int64(len(t.Data))
	}
	hj, err := json.Marshal(header)
	if err != nil {
		return nil, err
	}
	for (8+len(hj))%stAlign != 0 {
		hj = append(hj, ' ')
	}
	var buf bytes.Buffer
	buf.Grow(8 + len(hj) + int(off))
	var lenb [8]byte
	binary.LittleEndian.PutUint64(lenb[:], uint64(len(hj)))
	buf.Write(lenb[:])
	buf.Write(hj)
	for _, n := range names {
		buf.Write(tensors[n].Data)
	}
	return buf.Bytes(), nil
}

// maxSTHeader bounds the JSON header a reader accepts (the reference
// implementation uses 100 MB too).
const maxSTHeader = 100 << 20

// DecodeSafetensors parses a safetensors blob. Tensors share data's memory.
// Every offset, shape and dtype is checked against the blob, so malformed
// input is an error, never a panic or an allocation beyond len(data).
func DecodeSafetensors(data []byte) (map[string]*graph.Tensor, map[string]string, error) {
	if len(data) < 8 {
		return nil, nil, fmt.Errorf("safetensors: %d bytes, too short for a header", len(data))
	}
	hlen := binary.LittleEndian.Uint64(data[:8])
	if hlen > maxSTHeader || hlen > uint64(len(data)-8) {
		return nil, nil, fmt.Errorf("safetensors: header length %d does not fit %d bytes", hlen, len(data))
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data[8:8+hlen], &raw); err != nil {
		return nil, nil, fmt.Errorf("safetensors: header: %w", err)
	}
	body := data[8+hlen:]
	var meta map[string]string
	if m, ok := raw["__metadata__"]; ok {
		if err := json.Unmarshal(m, &meta); err != nil {
			return nil, nil, fmt.Errorf("safetensors: __metadata__: %w", err)
		}
		delete(raw, "__metadata__")
	}
	byName := map[string]graph.DType{}
	for dt, n := range stDTypes {
		byName[n] = dt
	}
	out := make(map[string]*graph.Tensor, len(raw))
	for name, r := range raw {
		var e stEntry
		if err := json.Unmarshal(r, &e); err != nil {
			return nil, nil, fmt.Errorf("safetensors: tensor %q: %w", name, err)
		}
		dt, ok := byName[e.DType]
		if !ok {
			return nil, nil, fmt.Errorf("safetensors: tensor %q: unsupported dtype %q", name, e.DType)
		}
		n := int64(1)
		for _, d := range e.Shape {
			if d < 0 || (d > 0 && n > math.MaxInt64/d) {
				return nil, nil, fmt.Errorf("safetensors: tensor %q: bad shape %v", name, e.Shape)
			}
			n *= d
		}
		lo, hi := e.DataOffsets[0], e.DataOffsets[1]
		if lo < 0 || hi < lo || hi > int64(len(body)) {
			return nil, nil, fmt.Errorf("safetensors: tensor %q: data offsets [%d, %d) outside %d data bytes", name, lo, hi, len(body))
		}
		if n > math.MaxInt64/int64(dt.Size()) || hi-lo != n*int64(dt.Size()) {
			return nil, nil, fmt.Errorf("safetensors: tensor %q: %d bytes for %s%v", name, hi-lo, dt, e.Shape)
		}
		out[name] = &graph.Tensor{DType: dt, Shape: append([]int64{}, e.Shape...), Data: body[lo:hi:hi]}
	}
	return out, meta, nil
}
