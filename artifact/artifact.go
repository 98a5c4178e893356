// Package artifact is the .of3 compiled-model format: the container
// (sectioned, checksummed), its manifest, and the safetensors weights
// section. It sits above graph and importer (the graph section is ONNX)
// and below the driver; codegen does not depend on it.
package artifact

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/importer"
	"github.com/of3c/of3c/internal/safefile"
)

// The .of3 container:
//
//	offset 0   magic "OF3C\x00\r\n\x1a" (8 bytes: the CR-LF and ^Z catch
//	           text-mode transfers, as PNG's signature does)
//	       8   format version, uint32 LE
//	      12   section count n, uint32 LE (1..maxSections)
//	      16   n section entries of 64 bytes:
//	             name [16]byte (ASCII, zero padded)
//	             offset uint64 LE, length uint64 LE (from the file start)
//	             sha256 of the section [32]byte
//	  16+64n   sha256 of bytes [0, 16+64n) — the header's own checksum
//	           sections, each starting on a 64-byte boundary
//
// Sections: "manifest" (JSON, Manifest), "graph" (the optimized graph as an
// ONNX ModelProto with of3c-domain ops and no weight data) and "weights"
// (safetensors holding the constants the graph section omits). Readers
// refuse unknown format versions; unknown extra sections are ignored so a
// later writer may add some (e.g. MLX-exported functions) compatibly.

// FormatVersion is the container version this package writes and reads.
const FormatVersion = 1

var magic = [8]byte{'O', 'F', '3', 'C', 0, '\r', '\n', 0x1a}

const (
	maxSections  = 16
	entrySize    = 64
	sectionAlign = 64
)

// Section names.
const (
	SectionManifest = "manifest"
	SectionGraph    = "graph"
	SectionWeights  = "weights"
)

// TensorSig is one input or output of the compiled model: its dtype and
// shape with symbolic dims as text (e.g. ["N", "N", "128"]).
type TensorSig struct {
	Name  string   `json:"name"`
	DType string   `json:"dtype"`
	Shape []string `json:"shape"`
}

// Type parses the signature back into a graph type.
func (s TensorSig) Type() (graph.Type, error) {
	return graph.ParseType(s.DType + "[" + strings.Join(s.Shape, ",") + "]")
}

// SigOf describes a graph value.
func SigOf(v *graph.Value) TensorSig {
	s := TensorSig{Name: v.Name, DType: v.Type.DType.String(), Shape: []string{}}
	for _, d := range v.Type.Shape {
		s.Shape = append(s.Shape, d.String())
	}
	return s
}

// CompileOptions are the options a model was compiled with, as recorded in
// the manifest.
type CompileOptions struct {
	Device         string   `json:"device"`
	Precision      string   `json:"precision"`
	MemoryBudget   int64    `json:"memory_budget,omitempty"`
	ChunkThreshold int64    `json:"chunk_threshold,omitempty"`
	ChunkSize      int64    `json:"chunk_size,omitempty"`
	LMAKVChunk     int64    `json:"lma_kv_chunk,omitempty"`
	Passes         []string `json:"passes,omitempty"`
}

// Manifest describes an artifact.
type Manifest struct {
	FormatVersion int    `json:"format_version"`
	Of3cVersion   string `json:"of3c_version"`
	MLXVersion    string `json:"mlx_version"`

	SourceName   string `json:"source_name"`
	SourceSHA256 string `json:"source_sha256"`
	SourceBytes  int64  `json:"source_bytes"`

	Options CompileOptions `json:"options"`
	Inputs  []TensorSig    `json:"inputs"`
	Outputs []TensorSig    `json:"outputs"`

	// Buckets are the sizes token dims are padded up to at run time
	// (ascending); TokenDims names the symbolic dims that are token axes.
	Buckets   []int64  `json:"buckets,omitempty"`
	TokenDims []string `json:"token_dims,omitempty"`

	// PassLog and MemoryPlan are the optimizer's records (passes.Log and
	// passes.MemoryPlan as JSON), kept raw so that an artifact stays
	// readable when those types grow fields.
	PassLog    json.RawMessage `json:"pass_log,omitempty"`
	MemoryPlan json.RawMessage `json:"memory_plan,omitempty"`

	OpCounts map[string]int `json:"op_counts,omitempty"`

	// Lowerings are the lowering paths planned for the fused nodes on
	// Options.Device (codegen.PlanLowerings, from the graph's types; a run
	// decides again for its concrete shapes). Absent in artifacts written
	// before the field existed.
	Lowerings []Lowering `json:"lowerings,omitempty"`
}

// Lowering is one fused node's lowering path, e.g. {"attention_3",
// "of3c.Attention", "attention/gpu-sdpa"} (docs/architecture.md lists the
// paths).
type Lowering struct {
	Node string `json:"node"`
	Op   string `json:"op"`
	Path string `json:"path"`
}

// LoweringSummary renders the lowerings as "path×count" per path, sorted,
// e.g. "attention/cpu-fused×4 swiglu/cpu-fused×2" ("" when none).
func (m *Manifest) LoweringSummary() string {
	count := map[string]int{}
	for _, l := range m.Lowerings {
		count[l.Path]++
	}
	keys := make([]string, 0, len(count))
	for p := range count {
		keys = append(keys, p)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s×%d", k, count[k])
	}
	return strings.Join(parts, " ")
}

// Artifact is a loaded .of3 file.
type Artifact struct {
	Manifest Manifest
	Graph    *graph.Graph
	// Sections lists the sections found, with their sizes (for inspect).
	Sections []SectionInfo
}

// SectionInfo describes one section of a container.
type SectionInfo struct {
	Name   string
	Offset int64
	Length int64
	SHA256 [32]byte
}

// Encode serializes m and g into the container bytes. Constants
// larger than the graph section's inline limit go to the weights section.
func Encode(m *Manifest, g *graph.Graph) ([]byte, error) {
	const small = 1024
	gb, err := importer.Encode(g, importer.EncodeOptions{OmitWeights: true, SmallConstBytes: small, ProducerVersion: m.Of3cVersion})
	if err != nil {
		return nil, fmt.Errorf("artifact: encoding the graph: %w", err)
	}
	weights := map[string]*graph.Tensor{}
	for _, c := range g.Consts {
		if c.Const != nil && int64(len(c.Const.Data)) > small {
			weights[c.Name] = c.Const
		}
	}
	wb, err := EncodeSafetensors(weights, map[string]string{"format": "of3c"})
	if err != nil {
		return nil, fmt.Errorf("artifact: encoding the weights: %w", err)
	}
	mm := *m
	mm.FormatVersion = FormatVersion
	mb, err := json.MarshalIndent(&mm, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("artifact: encoding the manifest: %w", err)
	}
	return encodeContainer([]section{{SectionManifest, mb}, {SectionGraph, gb}, {SectionWeights, wb}})
}

type section struct {
	name string
	data []byte
}

func align(n int64) int64 { return (n + sectionAlign - 1) / sectionAlign * sectionAlign }

func encodeContainer(secs []section) ([]byte, error) {
	if len(secs) == 0 || len(secs) > maxSections {
		return nil, fmt.Errorf("artifact: %d sections", len(secs))
	}
	hdrLen := int64(16 + entrySize*len(secs))
	off := align(hdrLen + sha256.Size)
	total := off
	offs := make([]int64, len(secs))
	for i, s := range secs {
		total = align(total)
		offs[i] = total
		total += int64(len(s.data))
	}
	out := make([]byte, total)
	copy(out, magic[:])
	binary.LittleEndian.PutUint32(out[8:], FormatVersion)
	binary.LittleEndian.PutUint32(out[12:], uint32(len(secs)))
	for i, s := range secs {
		if len(s.name) == 0 || len(s.name) > 16 {
			return nil, fmt.Errorf("artifact: bad section name %q", s.name)
		}
		e := out[16+entrySize*i:]
		copy(e[:16], s.name)
		binary.LittleEndian.PutUint64(e[16:], uint64(offs[i]))
		binary.LittleEndian.PutUint64(e[24:], uint64(len(s.data)))
		sum := sha256.Sum256(s.data)
		copy(e[32:64], sum[:])
		copy(out[offs[i]:], s.data)
	}
	hsum := sha256.Sum256(out[:hdrLen])
	copy(out[hdrLen:], hsum[:])
	return out, nil
}

// Write encodes and atomically writes an artifact.
func Write(path string, m *Manifest, g *graph.Graph) error {
	data, err := Encode(m, g)
	if err != nil {
		return err
	}
	if err := safefile.WriteFileAtomic(path, data); err != nil {
		return fmt.Errorf("artifact: writing %s: %w", path, err)
	}
	return nil
}

// ErrNotArtifact is returned (wrapped) for a file without the .of3 magic.
var ErrNotArtifact = errors.New("not an of3c artifact (bad magic)")

// Read opens, verifies and decodes an artifact file. Only bytes the
// section table points at, within the file's actual size, are read.
func Read(path string) (*Artifact, error) {
	f, size, err := safefile.Open(path) // a FIFO must not block the open
	if err != nil {
		return nil, err
	}
	defer f.Close()
	a, err := read(f, size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

// Decode decodes an artifact held in memory.
func Decode(data []byte) (*Artifact, error) {
	return read(bytes.NewReader(data), int64(len(data)))
}

// ReadSections verifies the container structure and checksums and returns
// the raw sections by name.
func ReadSections(r io.ReaderAt, size int64) ([]SectionInfo, map[string][]byte, error) {
	var head [16]byte
	if size < 16 {
		return nil, nil, fmt.Errorf("truncated: %d bytes, shorter than the header", size)
	}
	if _, err := r.ReadAt(head[:], 0); err != nil {
		return nil, nil, fmt.Errorf("reading the header: %w", err)
	}
	if !bytes.Equal(head[:8], magic[:]) {
		return nil, nil, ErrNotArtifact
	}
	ver := binary.LittleEndian.Uint32(head[8:])
	if ver != FormatVersion {
		return nil, nil, fmt.Errorf("incompatible artifact: format version %d, this of3c reads version %d (recompile the model)", ver, FormatVersion)
	}
	n := binary.LittleEndian.Uint32(head[12:])
	if n == 0 || n > maxSections {
		return nil, nil, fmt.Errorf("corrupt header: %d sections", n)
	}
	hdrLen := int64(16 + entrySize*int(n))
	if size < hdrLen+sha256.Size {
		return nil, nil, fmt.Errorf("truncated: %d bytes, the section table needs %d", size, hdrLen+sha256.Size)
	}
	hdr := make([]byte, hdrLen+sha256.Size)
	if _, err := r.ReadAt(hdr, 0); err != nil {
		return nil, nil, fmt.Errorf("reading the section table: %w", err)
	}
	if sum := sha256.Sum256(hdr[:hdrLen]); !bytes.Equal(sum[:], hdr[hdrLen:]) {
		return nil, nil, errors.New("corrupt header: section table checksum mismatch")
	}
	infos := make([]SectionInfo, n)
	secs := map[string][]byte{}
	var end uint64
	for i := range infos {
		e := hdr[16+entrySize*i:]
		name := strings.TrimRight(string(e[:16]), "\x00")
		off := binary.LittleEndian.Uint64(e[16:])
		ln := binary.LittleEndian.Uint64(e[24:])
		if name == "" {
			return nil, nil, fmt.Errorf("corrupt header: section %d has no name", i)
		}
		if _, dup := secs[name]; dup {
			return nil, nil, fmt.Errorf("corrupt header: section %q appears twice", name)
		}
		if off < uint64(hdrLen+sha256.Size) || off > uint64(size) || ln > uint64(size)-off {
			return nil, nil, fmt.Errorf("truncated or corrupt: section %q at [%d, +%d) lies outside the %d-byte file", name, off, ln, size)
		}
		end = max(end, off+ln)
		info := SectionInfo{Name: name, Offset: int64(off), Length: int64(ln)}
		copy(info.SHA256[:], e[32:64])
		buf := make([]byte, ln)
		if _, err := r.ReadAt(buf, int64(off)); err != nil && !(errors.Is(err, io.EOF) && ln == 0) {
			return nil, nil, fmt.Errorf("reading section %q: %w", name, err)
		}
		if sum := sha256.Sum256(buf); sum != info.SHA256 {
			return nil, nil, fmt.Errorf("corrupt section %q: sha256 %s, the table says %s", name,
				hex.EncodeToString(sum[:8]), hex.EncodeToString(info.SHA256[:8]))
		}
		infos[i] = info
		secs[name] = buf
	}
	// The last section ends the file: anything after it means the file was
	// appended to or the table is wrong.
	if end != uint64(size) {
		return nil, nil, fmt.Errorf("corrupt: %d bytes after the last section", uint64(size)-end)
	}
	return infos, secs, nil
}

func read(r io.ReaderAt, size int64) (*Artifact, error) {
	infos, secs, err := ReadSections(r, size)
	if err != nil {
		return nil, err
	}
	for _, need := range []string{SectionManifest, SectionGraph, SectionWeights} {
		if _, ok := secs[need]; !ok {
			return nil, fmt.Errorf("corrupt artifact: no %q section", need)
		}
	}
	a := &Artifact{Sections: infos}
	dec := json.NewDecoder(bytes.NewReader(secs[SectionManifest]))
	if err := dec.Decode(&a.Manifest); err != nil {
		return nil, fmt.Errorf("corrupt manifest: %w", err)
	}
	if a.Manifest.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("incompatible artifact: manifest format version %d, want %d", a.Manifest.FormatVersion, FormatVersion)
	}
	weights, _, err := DecodeSafetensors(secs[SectionWeights])
	if err != nil {
		return nil, fmt.Errorf("corrupt weights section: %w", err)
	}
	g, err := importer.Load(secs[SectionGraph], "", importer.Options{Weights: weights})
	if err != nil {
		return nil, fmt.Errorf("corrupt graph section: %w", err)
	}
	a.Graph = g
	if err := checkSignature(a); err != nil {
		return nil, err
	}
	return a, nil
}

// checkSignature makes sure the manifest describes the graph it ships with.
func checkSignature(a *Artifact) error {
	g, m := a.Graph, &a.Manifest
	if len(m.Inputs) != len(g.Inputs) || len(m.Outputs) != len(g.Outputs) {
		return fmt.Errorf("corrupt artifact: manifest lists %d inputs/%d outputs, the graph has %d/%d",
			len(m.Inputs), len(m.Outputs), len(g.Inputs), len(g.Outputs))
	}
	for i, v := range g.Inputs {
		if m.Inputs[i].Name != v.Name {
			return fmt.Errorf("corrupt artifact: manifest input %d is %q, the graph's is %q", i, m.Inputs[i].Name, v.Name)
		}
	}
	for i, v := range g.Outputs {
		if m.Outputs[i].Name != v.Name {
			return fmt.Errorf("corrupt artifact: manifest output %d is %q, the graph's is %q", i, m.Outputs[i].Name, v.Name)
		}
	}
	return nil
}
