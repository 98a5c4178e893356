package graph_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/importer"
)

// The ONNX backend node tests carry their expected outputs: inference over
// each model must agree with the dtype and shape of every output tensor.
// (External test: the importer imports graph.)

const nodeTestDir = "/usr/share/libonnx-testdata/data/node"

// inferenceKnownGaps lists node tests whose outputs inference cannot match,
// with the reason. Keep it empty unless a rule is deliberately partial.
var inferenceKnownGaps = map[string]string{}

func TestInferenceMatchesNodeTests(t *testing.T) {
	models, _ := filepath.Glob(filepath.Join(nodeTestDir, "*", "model.onnx"))
	// OF3C_EXTRA_NODE_TESTS names more node-test folders, e.g. newer ONNX
	// test data generated with onnx.backend.test.case.node.collect_testcases.
	for _, dir := range filepath.SplitList(os.Getenv("OF3C_EXTRA_NODE_TESTS")) {
		more, _ := filepath.Glob(filepath.Join(dir, "*", "model.onnx"))
		models = append(models, more...)
	}
	if len(models) == 0 {
		t.Skipf("no ONNX node tests under %s (make setup installs libonnx-testdata)", nodeTestDir)
	}
	sort.Strings(models)
	var checked, unsupported, refused, matched, partial int
	refusals := map[string]int{}
	unsupportedOps := map[string]int{}
	for _, path := range models {
		dir := filepath.Dir(path)
		name := filepath.Base(dir)
		g, err := importer.LoadFile(path, importer.Options{})
		if err != nil {
			var ue *graph.UnsupportedOpError
			switch {
			case errors.As(err, &ue):
				unsupported++
				unsupportedOps[fmt.Sprintf("%s@%d", ue.Op, ue.Opset)]++
			case strings.Contains(err.Error(), "node \""):
				// A supported op whose rule rejected a valid model.
				if _, gap := inferenceKnownGaps[name]; !gap {
					t.Errorf("%s: %v", name, err)
				}
			default:
				refused++ // value kinds the IR does not hold (strings, sequences, ...)
				msg := err.Error()
				if i := strings.LastIndex(msg, ": "); i >= 0 {
					msg = msg[i+2:]
				}
				refusals[msg]++
			}
			continue
		}
		// Type from the inputs alone: the importer fills gaps in inferred
		// types from declared ones, which would hide weak rules.
		for _, n := range g.Nodes {
			for _, o := range n.Outputs {
				if o != nil {
					o.Type, o.ShapeValue = graph.Type{}, nil
				}
			}
		}
		if err := graph.InferShapes(g); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		checked++
		ok := true
		for i, out := range g.Outputs {
			if !out.Type.Ranked || !out.Type.Shape.IsStatic() {
				partial++
				if testing.Verbose() {
					t.Logf("  partial %s output %d: %s", name, i, out.Type)
				}
			}
			file := filepath.Join(dir, "test_data_set_0", fmt.Sprintf("output_%d.pb", i))
			if _, err := os.Stat(file); err != nil {
				continue
			}
			_, want, err := importer.ReadTensorFile(file)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			if msg := typeMismatch(out.Type, want); msg != "" {
				ok = false
				if _, gap := inferenceKnownGaps[name]; !gap {
					t.Errorf("%s: output %d (%s): %s", name, i, out.Name, msg)
				}
			}
		}
		if ok {
			matched++
		}
	}
	t.Logf("node tests: %d typed, %d match (%d outputs not fully static), %d unsupported op, %d refused by the importer",
		checked, matched, partial, unsupported, refused)
	if testing.Verbose() {
		for msg, k := range refusals {
			t.Logf("  refused %d× %s", k, msg)
		}
		for op, k := range unsupportedOps {
			t.Logf("  unsupported %d× %s", k, op)
		}
	}
}

// typeMismatch compares an inferred type with a real tensor: the dtype and
// every known dim must agree (unknown dims and symbols are allowed).
func typeMismatch(got graph.Type, want *graph.Tensor) string {
	// ONNX 1.12's bfloat16 test data stores the expected bits as uint16.
	quirk := got.DType == graph.BFloat16 && want.DType == graph.Uint16
	if got.DType != graph.Undefined && got.DType != want.DType && !quirk {
		return fmt.Sprintf("dtype %s, data is %s", got.DType, want.DType)
	}
	if !got.Ranked {
		return ""
	}
	if len(got.Shape) != len(want.Shape) {
		return fmt.Sprintf("shape %s, data is %v", got.Shape, want.Shape)
	}
	for i, d := range got.Shape {
		if d.IsStatic() && d.Val != want.Shape[i] {
			return fmt.Sprintf("shape %s, data is %v", got.Shape, want.Shape)
		}
	}
	return ""
}

// The OF3 fixtures are exported with symbolic N and S: inference from the
// inputs alone (declared intermediate types discarded) must give every
// output its declared symbolic shape.
func TestInferenceOF3Fixtures(t *testing.T) {
	const root = "../models/of3"
	data, err := os.ReadFile(filepath.Join(root, "fixtures.json"))
	if err != nil {
		t.Skipf("no fixtures index: %v", err)
	}
	var index struct {
		Fixtures []struct {
			Name    string
			Path    string
			Outputs []struct {
				Name  string
				DType string
				Shape []any
			}
		}
	}
	if err := json.Unmarshal(data, &index); err != nil {
		t.Fatal(err)
	}
	checked, nodes := 0, 0
	defer func() { t.Logf("%d fixtures, %d nodes typed", checked, nodes) }()
	dtypes := map[string]graph.DType{"float32": graph.Float32, "float16": graph.Float16, "bfloat16": graph.BFloat16, "int64": graph.Int64, "bool": graph.Bool}
	for _, f := range index.Fixtures {
		g, err := importer.LoadFile(filepath.Join(root, f.Path, "model.onnx"), importer.Options{})
		if err != nil {
			t.Errorf("%s: %v", f.Name, err)
			continue
		}
		for _, n := range g.Nodes {
			for _, o := range n.Outputs {
				if o != nil {
					o.Type, o.ShapeValue = graph.Type{}, nil
				}
			}
		}
		if err := graph.InferShapes(g); err != nil {
			t.Errorf("%s: %v", f.Name, err)
			continue
		}
		unknown := 0
		for _, n := range g.Nodes {
			for _, o := range n.Outputs {
				if o == nil {
					continue
				}
				if !o.Type.Ranked {
					unknown++
					t.Logf("%s: %s %s is unranked", f.Name, n, o)
					continue
				}
				for _, d := range o.Type.Shape {
					if d.IsUnknown() {
						unknown++
						t.Logf("%s: %s %s: %s", f.Name, n, o, o.Type)
						break
					}
				}
			}
		}
		if unknown > 0 {
			t.Errorf("%s: %d values with unknown dims", f.Name, unknown)
		}
		checked++
		nodes += len(g.Nodes)
		for i, want := range f.Outputs {
			if i >= len(g.Outputs) {
				t.Errorf("%s: missing output %s", f.Name, want.Name)
				break
			}
			shape := make(graph.Shape, len(want.Shape))
			for k, d := range want.Shape {
				switch d := d.(type) {
				case string:
					shape[k] = graph.S(d)
				case float64:
					shape[k] = graph.D(int64(d))
				}
			}
			wt := graph.TensorType(dtypes[want.DType], shape)
			if got := g.Outputs[i].Type; !got.Equal(wt) {
				t.Errorf("%s: output %s is %s, want %s", f.Name, want.Name, got, wt)
			}
		}
	}
}
