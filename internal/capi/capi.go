// Package capi is the Go side of of3c's C API (cmd/libof3c, header
// cmd/libof3c/of3c.h): sessions and run results addressed by integer
// handles, options as JSON, inputs as raw buffers. cmd/libof3c only converts
// C types and catches panics; everything else is here, testable from Go.
//
// Thread safety: every function may be called from any thread. Runs of one
// session are serialized by a per-session lock; different sessions run
// independently (MLX work itself is serialized by package internal/mlx).
package capi

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unsafe"

	"github.com/of3c/of3c/artifact"
	"github.com/of3c/of3c/driver"
	"github.com/of3c/of3c/graph"
)

// Version is set by cmd/libof3c (the of3c release).
var Version = "0.1.0-dev"

type session struct {
	mu   sync.Mutex
	s    *driver.Session
	sig  string
	path string
}

// Result holds one run's outputs until freed.
type Result struct {
	Names   []string
	Tensors []*graph.Tensor
}

var (
	mu       sync.Mutex
	next     int64
	sessions = map[int64]*session{}
	results  = map[int64]*Result{}
)

func newID() int64 { next++; return next }

// OpenOptions is the JSON object of of3c_open's options argument.
type OpenOptions struct {
	// Buckets overrides the artifact's bucket sizes; [] turns bucketing off.
	Buckets *[]int64 `json:"buckets"`
	// Precision for ONNX models compiled on open (fp32|bf16|fp16).
	Precision string `json:"precision"`
}

func decodeStrict(js string, v any) error {
	if strings.TrimSpace(js) == "" {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("options %s: %w", js, err)
	}
	return nil
}

// Open loads an artifact (or compiles an ONNX model) on a device ("" for
// the artifact's own) and returns its handle.
func Open(path, device, optionsJSON string) (int64, error) {
	var o OpenOptions
	if err := decodeStrict(optionsJSON, &o); err != nil {
		return 0, err
	}
	if device != "" && !contains(driver.Devices, device) {
		return 0, fmt.Errorf("device %q: the valid choices are %s", device, strings.Join(driver.Devices, ", "))
	}
	opts := driver.Options{Device: device, Precision: o.Precision, Of3cVersion: Version}
	if o.Buckets != nil {
		opts.Buckets = append([]int64{}, (*o.Buckets)...)
	}
	s, err := driver.Open(path, opts)
	if err != nil {
		return 0, err
	}
	sig, err := signatureJSON(s)
	if err != nil {
		s.Close()
		return 0, err
	}
	mu.Lock()
	defer mu.Unlock()
	id := newID()
	sessions[id] = &session{s: s, sig: sig, path: path}
	return id, nil
}

// Signature is the session's inputs and outputs as JSON:
// {"device": "cpu", "inputs": [{"name", "dtype", "onnx_dtype", "shape"}], "outputs": [...]},
// shapes as strings (symbolic dims by name, e.g. "N").
func signatureJSON(s *driver.Session) (string, error) {
	type io struct {
		Name      string   `json:"name"`
		DType     string   `json:"dtype"`
		ONNXDType int      `json:"onnx_dtype"`
		Shape     []string `json:"shape"`
	}
	conv := func(vs []*graph.Value) []io {
		out := []io{}
		for _, v := range vs {
			sig := artifact.SigOf(v)
			out = append(out, io{Name: sig.Name, DType: sig.DType, ONNXDType: int(v.Type.DType), Shape: sig.Shape})
		}
		return out
	}
	buckets := s.Buckets()
	if buckets == nil {
		buckets = []int64{}
	}
	b, err := json.Marshal(map[string]any{
		"device": s.Device(), "buckets": buckets,
		"inputs": conv(s.Graph.Inputs), "outputs": conv(s.Graph.Outputs),
	})
	return string(b), err
}

func get(id int64) (*session, error) {
	mu.Lock()
	defer mu.Unlock()
	s := sessions[id]
	if s == nil {
		return nil, fmt.Errorf("no open session %d", id)
	}
	return s, nil
}

// Signature returns the JSON description of a session's inputs and outputs.
func Signature(id int64) (string, error) {
	s, err := get(id)
	if err != nil {
		return "", err
	}
	return s.sig, nil
}

// Close releases a session (waiting for a run in progress). Unknown
// handles are ignored.
func Close(id int64) {
	mu.Lock()
	s := sessions[id]
	delete(sessions, id)
	mu.Unlock()
	if s != nil {
		s.mu.Lock()
		s.s.Close()
		s.mu.Unlock()
	}
}

// Input is one input buffer. Data may point at caller memory: it is read
// during Run only.
type Input struct {
	Name  string
	DType graph.DType
	Shape []int64
	Data  []byte
}

// Run runs a session and returns the handle of its result.
func Run(id int64, ins []Input) (int64, error) {
	s, err := get(id)
	if err != nil {
		return 0, err
	}
	in := map[string]*graph.Tensor{}
	for _, x := range ins {
		if _, dup := in[x.Name]; dup {
			return 0, fmt.Errorf("input %q given twice", x.Name)
		}
		t := &graph.Tensor{DType: x.DType, Shape: x.Shape, Data: x.Data}
		if err := t.Validate(); err != nil {
			return 0, fmt.Errorf("input %q: %w", x.Name, err)
		}
		in[x.Name] = t
	}
	s.mu.Lock()
	outs, _, err := s.s.Run(in)
	order := make([]string, len(s.s.Graph.Outputs))
	for i, o := range s.s.Graph.Outputs {
		order[i] = o.Name
	}
	s.mu.Unlock()
	if err != nil {
		return 0, err
	}
	r := &Result{Names: order}
	for _, name := range order {
		t := outs[name]
		if t == nil {
			return 0, fmt.Errorf("the model produced no output %q", name)
		}
		// An output may share memory with an input (e.g. a reshaped
		// input on the reference executor); the caller's buffers are not
		// ours to keep, so such outputs are copied.
		for _, x := range ins {
			if overlaps(t.Data, x.Data) {
				t = &graph.Tensor{DType: t.DType, Shape: t.Shape, Data: append([]byte(nil), t.Data...)}
				break
			}
		}
		r.Tensors = append(r.Tensors, t)
	}
	mu.Lock()
	defer mu.Unlock()
	rid := newID()
	results[rid] = r
	return rid, nil
}

func overlaps(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	pa, pb := uintptr(unsafe.Pointer(unsafe.SliceData(a))), uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return pa < pb+uintptr(len(b)) && pb < pa+uintptr(len(a))
}

// GetResult returns a result by handle.
func GetResult(rid int64) (*Result, error) {
	mu.Lock()
	defer mu.Unlock()
	r := results[rid]
	if r == nil {
		return nil, fmt.Errorf("no result %d", rid)
	}
	return r, nil
}

// FreeResult releases a result. Unknown handles are ignored.
func FreeResult(rid int64) {
	mu.Lock()
	defer mu.Unlock()
	delete(results, rid)
}

// CompileOptions is the JSON object of of3c_compile's options argument.
type CompileOptions struct {
	Device         string   `json:"device"`
	Precision      string   `json:"precision"`
	Buckets        []int64  `json:"buckets"`
	MemoryBudget   int64    `json:"memory_budget"`
	ChunkThreshold int64    `json:"chunk_threshold"`
	ChunkSize      int64    `json:"chunk_size"`
	LMAKVChunk     int64    `json:"lma_kv_chunk"`
	Passes         []string `json:"passes"`
}

// Compile compiles an ONNX model into an artifact at out (written
// atomically).
func Compile(src, out, optionsJSON string) error {
	o := CompileOptions{Device: "cpu", Precision: "fp32"}
	if err := decodeStrict(optionsJSON, &o); err != nil {
		return err
	}
	if out == "" {
		return errors.New("no output path")
	}
	g, m, err := driver.Compile(driver.CompileRequest{Source: src, Of3cVersion: Version, Buckets: o.Buckets,
		Options: artifact.CompileOptions{Device: o.Device, Precision: o.Precision, MemoryBudget: o.MemoryBudget,
			ChunkThreshold: o.ChunkThreshold, ChunkSize: o.ChunkSize, LMAKVChunk: o.LMAKVChunk, Passes: o.Passes}})
	if err != nil {
		return err
	}
	return artifact.Write(out, m, g)
}

func contains(list []string, x string) bool {
	for _, v := range list {
		if v == x {
			return true
		}
	}
	return false
}
