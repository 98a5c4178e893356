package driver

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/of3c/of3c/artifact"
	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/onnxexport"
	"github.com/of3c/of3c/internal/safefile"
	"github.com/of3c/of3c/passes"
)

// ArtifactInfo is what `of3c inspect MODEL.of3` shows: the manifest, the
// container's sections and the optimized graph's counts.
type ArtifactInfo struct {
	Path      string             `json:"path"`
	FileBytes int64              `json:"file_bytes"`
	Manifest  *artifact.Manifest `json:"manifest"`
	Sections  []SectionSummary   `json:"sections"`
	Nodes     int                `json:"nodes"`
	OpCounts  map[string]int     `json:"op_counts"`
	Fusions   map[string]int     `json:"fusions"`
	Params    int64              `json:"params"`
	Weights   int64              `json:"weight_bytes"`
	Passes    []passes.PassLog   `json:"passes,omitempty"`
	Plan      *passes.MemoryPlan `json:"memory_plan,omitempty"`
}

// SectionSummary is one section of the .of3 container.
type SectionSummary struct {
	Name   string `json:"name"`
	Offset int64  `json:"offset"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// IsArtifact reports whether path starts like a .of3 artifact (any other
// file, e.g. an ONNX model, gives false; a missing file an error).
func IsArtifact(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	// The first 16 bytes (zero-padded when the file is shorter) go through
	// the container reader, which looks at the magic first: only that
	// answer counts here, anything else wrong with the header is for
	// ReadArtifact to report.
	head := make([]byte, 16)
	n, _ := io.ReadFull(f, head)
	if n < 8 {
		return false, nil
	}
	_, _, err = artifact.ReadSections(bytes.NewReader(head), int64(len(head)))
	return !errors.Is(err, artifact.ErrNotArtifact), nil
}

// InspectArtifact loads an artifact and summarises it.
func InspectArtifact(path string) (*ArtifactInfo, *artifact.Artifact, error) {
	a, err := artifact.Read(path)
	if err != nil {
		return nil, nil, err
	}
	info := &ArtifactInfo{Path: path, Manifest: &a.Manifest, Fusions: map[string]int{}}
	if st, err := os.Stat(path); err == nil {
		info.FileBytes = st.Size()
	}
	for _, s := range a.Sections {
		info.Sections = append(info.Sections, SectionSummary{Name: s.Name, Offset: s.Offset, Bytes: s.Length, SHA256: hex.EncodeToString(s.SHA256[:])})
	}
	st := graph.ComputeStats(a.Graph)
	info.Nodes, info.OpCounts, info.Params, info.Weights = st.Nodes, st.OpCounts, st.Params, st.ParamBytes
	for op, c := range st.OpCounts {
		if strings.HasPrefix(op, graph.FusedDomain+".") || op == "LayerNormalization" {
			info.Fusions[op] = c
		}
	}
	var log passes.Log
	if len(a.Manifest.PassLog) > 0 && json.Unmarshal(a.Manifest.PassLog, &log) == nil {
		info.Passes = log.Passes
	}
	if len(a.Manifest.MemoryPlan) > 0 {
		var plan passes.MemoryPlan
		if json.Unmarshal(a.Manifest.MemoryPlan, &plan) == nil {
			info.Plan = &plan
		}
	}
	return info, a, nil
}

// Format writes the summary as text.
func (info *ArtifactInfo) Format(w io.Writer) {
	m := info.Manifest
	fmt.Fprintf(w, "artifact     %s (%s, format %d)\n", info.Path, fmtSize(info.FileBytes), m.FormatVersion)
	fmt.Fprintf(w, "compiled by  of3c %s, MLX %s\n", m.Of3cVersion, m.MLXVersion)
	sum := m.SourceSHA256
	if len(sum) > 16 {
		sum = sum[:16] + "…"
	}
	fmt.Fprintf(w, "source       %s (%s, sha256 %s)\n", m.SourceName, fmtSize(m.SourceBytes), sum)
	fmt.Fprintf(w, "device       %s\n", m.Options.Device)
	fmt.Fprintf(w, "precision    %s\n", m.Options.Precision)
	for _, s := range m.Inputs {
		fmt.Fprintf(w, "input        %s %s[%s]\n", s.Name, s.DType, strings.Join(s.Shape, ","))
	}
	for _, s := range m.Outputs {
		fmt.Fprintf(w, "output       %s %s[%s]\n", s.Name, s.DType, strings.Join(s.Shape, ","))
	}
	if len(m.Buckets) > 0 {
		fmt.Fprintf(w, "buckets      %v on %s\n", m.Buckets, strings.Join(m.TokenDims, ","))
	} else {
		fmt.Fprintf(w, "buckets      none (token dims: %s)\n", orNone(m.TokenDims))
	}
	o := m.Options
	if o.MemoryBudget > 0 || o.ChunkThreshold > 0 || o.ChunkSize > 0 || o.LMAKVChunk > 0 {
		fmt.Fprintf(w, "memory       budget %s, chunk threshold %d, chunk size %d, LMA kv chunk %d\n", fmtSize(o.MemoryBudget), o.ChunkThreshold, o.ChunkSize, o.LMAKVChunk)
	}
	fmt.Fprintf(w, "graph        %d nodes, %d params (%s of weights)\n", info.Nodes, info.Params, fmtSize(info.Weights))
	if len(info.Fusions) > 0 {
		var fs []string
		for _, k := range sortedMapKeys(info.Fusions) {
			fs = append(fs, fmt.Sprintf("%s×%d", k, info.Fusions[k]))
		}
		fmt.Fprintf(w, "fused ops    %s\n", strings.Join(fs, " "))
	}
	if len(m.Lowerings) > 0 {
		// The path each fused node takes on the artifact's device
		// (docs/architecture.md lists them; `run --explain` shows what a run took).
		fmt.Fprintf(w, "lowering on %s: %s\n", m.Options.Device, m.LoweringSummary())
		for _, l := range m.Lowerings {
			fmt.Fprintf(w, "  %-34s %-28s %s\n", l.Node, l.Op, l.Path)
		}
	}
	if len(info.Passes) > 0 {
		fmt.Fprintln(w, "passes:")
		for _, p := range info.Passes {
			var rw []string
			for _, k := range sortedMapKeys(p.Rewrites) {
				rw = append(rw, fmt.Sprintf("%s×%d", k, p.Rewrites[k]))
			}
			fmt.Fprintf(w, "  %-26s %4d → %4d nodes  %s\n", p.Name, p.NodesBefore, p.NodesAfter, strings.Join(rw, " "))
		}
	} else if len(o.Passes) > 0 {
		fmt.Fprintf(w, "passes       %s\n", strings.Join(o.Passes, ", "))
	}
	fmt.Fprintln(w, "op counts:")
	for _, k := range sortedMapKeys(info.OpCounts) {
		fmt.Fprintf(w, "  %-30s %d\n", k, info.OpCounts[k])
	}
	if info.Plan != nil {
		io.WriteString(w, info.Plan.Format())
	} else {
		fmt.Fprintln(w, "memory plan  none (compiled without --memory-budget)")
	}
	fmt.Fprintln(w, "sections:")
	for _, s := range info.Sections {
		fmt.Fprintf(w, "  %-10s offset %-10d %10s  sha256 %s…\n", s.Name, s.Offset, fmtSize(s.Bytes), s.SHA256[:16])
	}
}

// ExternalDataAbove is the weight size above which ExportONNX writes the
// weights to a second file, PATH.data (ONNX external data): one protobuf
// message cannot exceed 2 GiB.
var ExternalDataAbove int64 = 1 << 30

// ExportONNX writes an artifact's optimized graph as a standalone ONNX model
// (fused ops as ONNX functions; see package onnxexport), weights inline or,
// above ExternalDataAbove, in PATH.data next to it. Nothing is left at path
// (or PATH.data) when it fails.
func ExportONNX(a *artifact.Artifact, path string) error {
	opts := onnxexport.Options{ProducerVersion: a.Manifest.Of3cVersion}
	if graph.ComputeStats(a.Graph).ParamBytes <= ExternalDataAbove {
		data, err := onnxexport.Export(a.Graph, opts)
		if err != nil {
			return err
		}
		return safefile.WriteFileAtomic(path, data)
	}
	dataPath := path + ".data"
	var model []byte
	if err := safefile.WriteAtomic(dataPath, func(w io.Writer) error {
		opts.ExternalData, opts.ExternalLocation = w, filepath.Base(dataPath)
		var err error
		model, err = onnxexport.Export(a.Graph, opts)
		return err
	}); err != nil {
		return err
	}
	if err := safefile.WriteFileAtomic(path, model); err != nil {
		os.Remove(dataPath)
		return err
	}
	return nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ",")
}

func sortedMapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func fmtSize(n int64) string {
	const k = 1024
	switch {
	case n >= k*k*k:
		return fmt.Sprintf("%.2f GiB", float64(n)/(k*k*k))
	case n >= k*k:
		return fmt.Sprintf("%.1f MiB", float64(n)/(k*k))
	case n >= k:
		return fmt.Sprintf("%.1f KiB", float64(n)/k)
	}
	return fmt.Sprintf("%d B", n)
}
