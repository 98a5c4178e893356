package importer

import (
	"encoding/binary"
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/importer/onnxpb"
	"github.com/of3c/of3c/internal/safefile"
)

// DefaultMaxElements bounds the element count of any tensor or statically
// shaped value the importer accepts (2^34 elements is 64 GiB of float32, far
// beyond anything of3c runs). Shapes above it come from corrupt or hostile
// files, and refusing them early keeps later stages from planning absurd
// allocations.
const DefaultMaxElements = int64(1) << 34

// supportedTensorDType reports whether of3c can hold tensors of ONNX data type
// dt: the fixed-width numeric types and bool.
func supportedTensorDType(dt int32) bool {
	switch graph.DType(dt) {
	case graph.Float32, graph.Float16, graph.BFloat16, graph.Float64,
		graph.Int8, graph.Int16, graph.Int32, graph.Int64,
		graph.Uint8, graph.Uint16, graph.Uint32, graph.Uint64, graph.Bool:
		return true
	}
	return false
}

// newerDTypeNames names the data types ONNX added after the 1.12 schema the
// Go types come from (none of which of3c supports).
var newerDTypeNames = map[int32]string{
	17: "FLOAT8E4M3FN", 18: "FLOAT8E4M3FNUZ", 19: "FLOAT8E5M2", 20: "FLOAT8E5M2FNUZ",
	21: "UINT4", 22: "INT4", 23: "FLOAT4E2M1", 24: "FLOAT8E8M0", 25: "UINT2", 26: "INT2",
	27: "FLOAT6E2M3", 28: "FLOAT6E3M2",
}

// dtypeName names an ONNX data type for error messages, including the ones
// of3c does not support (so the message says "FLOAT8E4M3FN", not "17").
func dtypeName(dt int32) string {
	if supportedTensorDType(dt) {
		return graph.DType(dt).String()
	}
	if name, ok := onnxpb.TensorProto_DataType_name[dt]; ok {
		return name
	}
	if name, ok := newerDTypeNames[dt]; ok {
		return name
	}
	return fmt.Sprintf("data type %d", dt)
}

// MaxRank bounds the rank of tensors and declared types. Real models stay
// under 10; a rank in the thousands only comes from corrupt files and would
// make later per-dimension work needlessly expensive.
const MaxRank = 64

// numElements multiplies dims, refusing negative dims, overflow, counts
// above max and ranks above MaxRank.
func numElements(dims []int64, max int64) (int64, error) {
	if len(dims) > MaxRank {
		return 0, fmt.Errorf("rank %d is more than %d", len(dims), MaxRank)
	}
	n := int64(1)
	for _, d := range dims {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in %v", dims)
		}
		if d > 0 && n > max/d {
			return 0, fmt.Errorf("shape %v has more than %d elements", dims, max)
		}
		n *= d
	}
	return n, nil
}

// tensorReader turns TensorProtos into graph.Tensors. ext resolves external
// data; nil means external data is refused (a TensorProto file or a model
// loaded from memory without a folder).
type tensorReader struct {
	maxElements int64
	ext         *externalData
}

// convert decodes one TensorProto. The element count is checked against the
// data actually present before anything is allocated, so a tensor that
// declares 2^40 elements costs nothing.
func (r *tensorReader) convert(tp *onnxpb.TensorProto) (*graph.Tensor, error) {
	dt := tp.GetDataType()
	if !supportedTensorDType(dt) {
		return nil, fmt.Errorf("tensor %q has unsupported element type %s", tp.GetName(), dtypeName(dt))
	}
	if tp.Segment != nil {
		return nil, fmt.Errorf("tensor %q is segmented, which is not supported", tp.GetName())
	}
	maxEl := r.maxElements
	if maxEl <= 0 {
		maxEl = DefaultMaxElements
	}
	n, err := numElements(tp.GetDims(), maxEl)
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %v", tp.GetName(), err)
	}
	t := &graph.Tensor{DType: graph.DType(dt), Shape: append([]int64{}, tp.GetDims()...)}
	size := int64(t.DType.Size())
	nbytes := n * size // n ≤ 2^34 and size ≤ 8: no overflow

	if tp.GetDataLocation() == onnxpb.TensorProto_EXTERNAL {
		if r.ext == nil {
			return nil, fmt.Errorf("tensor %q uses external data, which is not allowed here", tp.GetName())
		}
		data, err := r.ext.read(tp, nbytes)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %v", tp.GetName(), err)
		}
		t.Data = data
		return t, nil
	}
	if tp.RawData != nil {
		if int64(len(tp.RawData)) != nbytes {
			return nil, fmt.Errorf("tensor %q %s%v: raw_data has %d bytes, want %d", tp.GetName(), t.DType, t.Shape, len(tp.RawData), nbytes)
		}
		t.Data = tp.RawData
		return t, nil
	}
	data, err := typedData(tp, t.DType, n)
	if err != nil {
		return nil, fmt.Errorf("tensor %q %s%v: %v", tp.GetName(), t.DType, t.Shape, err)
	}
	t.Data = data
	return t, nil
}

// typedData packs the typed repeated field that ONNX uses for dt into
// little-endian bytes. Which field holds which type follows the comments on
// TensorProto in onnx.proto: 8/16-bit integers, bool, float16 and bfloat16
// live in int32_data (the 16-bit floats as their bit patterns), uint32 and
// uint64 in uint64_data.
func typedData(tp *onnxpb.TensorProto, dt graph.DType, n int64) ([]byte, error) {
	var count int
	switch dt {
	case graph.Float32:
		count = len(tp.FloatData)
	case graph.Float64:
		count = len(tp.DoubleData)
	case graph.Int64:
		count = len(tp.Int64Data)
	case graph.Uint32, graph.Uint64:
		count = len(tp.Uint64Data)
	default:
		count = len(tp.Int32Data)
	}
	if int64(count) != n {
		return nil, fmt.Errorf("has %d values, want %d", count, n)
	}
	out := make([]byte, n*int64(dt.Size()))
	le := binary.LittleEndian
	switch dt {
	case graph.Float32:
		for i, v := range tp.FloatData {
			le.PutUint32(out[4*i:], math.Float32bits(v))
		}
	case graph.Float64:
		for i, v := range tp.DoubleData {
			le.PutUint64(out[8*i:], math.Float64bits(v))
		}
	case graph.Int64:
		for i, v := range tp.Int64Data {
			le.PutUint64(out[8*i:], uint64(v))
		}
	case graph.Uint32:
		for i, v := range tp.Uint64Data {
			le.PutUint32(out[4*i:], uint32(v))
		}
	case graph.Uint64:
		for i, v := range tp.Uint64Data {
			le.PutUint64(out[8*i:], v)
		}
	case graph.Int32:
		for i, v := range tp.Int32Data {
			le.PutUint32(out[4*i:], uint32(v))
		}
	case graph.Int16, graph.Uint16, graph.Float16, graph.BFloat16:
		for i, v := range tp.Int32Data {
			le.PutUint16(out[2*i:], uint16(v))
		}
	case graph.Int8, graph.Uint8:
		for i, v := range tp.Int32Data {
			out[i] = byte(v)
		}
	case graph.Bool:
		for i, v := range tp.Int32Data {
			if v != 0 {
				out[i] = 1
			}
		}
	default:
		return nil, fmt.Errorf("no typed-field layout for %s", dt)
	}
	return out, nil
}

// tensorProto builds a TensorProto with raw_data from t. The data slice is
// shared, not copied.
func tensorProto(name string, t *graph.Tensor) (*onnxpb.TensorProto, error) {
	if t == nil {
		return nil, fmt.Errorf("tensor %q is nil", name)
	}
	if !supportedTensorDType(int32(t.DType)) {
		return nil, fmt.Errorf("tensor %q has unsupported element type %s", name, t.DType)
	}
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("tensor %q: %v", name, err)
	}
	tp := &onnxpb.TensorProto{
		Dims:     append([]int64{}, t.Shape...),
		DataType: proto.Int32(int32(t.DType)),
		RawData:  t.Data,
	}
	if tp.RawData == nil {
		tp.RawData = []byte{} // present but empty: a zero-element tensor
	}
	if name != "" {
		tp.Name = proto.String(name)
	}
	return tp, nil
}

// DecodeTensor decodes a serialized TensorProto, the layout of the ONNX
// node tests' input_K.pb and output_K.pb files. Typed fields and raw_data are
// both accepted; external data is refused (such files carry their data).
func DecodeTensor(data []byte) (string, *graph.Tensor, error) {
	var tp onnxpb.TensorProto
	if err := proto.Unmarshal(data, &tp); err != nil {
		return "", nil, fmt.Errorf("not a TensorProto: %v", err)
	}
	r := tensorReader{maxElements: DefaultMaxElements}
	t, err := r.convert(&tp)
	if err != nil {
		if tp.GetName() == "" {
			// ONNX's SequenceProto, MapProto and OptionalProto (node tests
			// of sequence ops) decode as nameless TensorProtos with
			// nonsense fields; say what the file probably is.
			return "", nil, fmt.Errorf("%v (if the file holds a sequence, map or optional: only tensors are supported)", err)
		}
		return "", nil, err
	}
	return tp.GetName(), t, nil
}

// ReadTensorFile reads a TensorProto file (input_K.pb / output_K.pb).
// Errors are prefixed with the path.
func ReadTensorFile(path string) (name string, t *graph.Tensor, err error) {
	return ReadTensorFileLimit(path, 0, "")
}

// ReadTensorFileLimit is ReadTensorFile for a file of at most limit bytes
// (0: MaxModelBytes, protobuf's limit); why names the limit in the error.
// The file must be a regular file.
func ReadTensorFileLimit(path string, limit int64, why string) (name string, t *graph.Tensor, err error) {
	if limit <= 0 || limit > MaxModelBytes {
		limit, why = MaxModelBytes, "protobuf's 2 GiB limit"
	}
	data, err := safefile.ReadFile(path, limit, why)
	if err != nil {
		return "", nil, err
	}
	name, t, err = DecodeTensor(data)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %v", path, err)
	}
	return name, t, nil
}

// EncodeTensor serializes t as a TensorProto with raw_data, as the ONNX node
// tests store their inputs and outputs.
func EncodeTensor(name string, t *graph.Tensor) ([]byte, error) {
	tp, err := tensorProto(name, t)
	if err != nil {
		return nil, err
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(tp)
}
