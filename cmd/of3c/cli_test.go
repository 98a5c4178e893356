package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const fixture = "../../models/of3/testdata/tri_att_start_tiny_torchscript/model.onnx"

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = realMain(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestUsageErrors(t *testing.T) {
	if code, _, errs := run(t); code != 2 || !strings.Contains(errs, "usage") {
		t.Errorf("no args: code %d, stderr %q", code, errs)
	}
	if code, _, errs := run(t, "frobnicate"); code != 2 || !strings.Contains(errs, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: code %d, stderr %q", code, errs)
	}
	if code, _, _ := run(t, "inspect"); code != 2 {
		t.Errorf("inspect without a model: code %d, want 2", code)
	}
	if code, _, errs := run(t, "inspect", fixture, "--format", "xml"); code != 2 || !strings.Contains(errs, "xml") {
		t.Errorf("bad format: code %d, stderr %q", code, errs)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, "version")
	if code != 0 || !strings.HasPrefix(out, "of3c ") || !strings.Contains(out, "mlx ") {
		t.Fatalf("version: code %d, output %q", code, out)
	}
}

func TestInspectFormats(t *testing.T) {
	code, out, errs := run(t, "inspect", fixture)
	if code != 0 || !strings.Contains(out, "input %z:f32[1,N,N,16]") || !strings.Contains(out, "Softmax(") {
		t.Fatalf("text: code %d stderr %q output starts %q", code, errs, head(out))
	}
	code, out, _ = run(t, "inspect", "--format", "dot", fixture)
	if code != 0 || !strings.HasPrefix(out, "digraph") {
		t.Fatalf("dot: code %d, output starts %q", code, head(out))
	}
	code, out, _ = run(t, "inspect", fixture, "--format", "json")
	if code != 0 || !json.Valid([]byte(out)) {
		t.Fatalf("json: code %d, valid %v", code, json.Valid([]byte(out)))
	}
}

func TestInspectStatsAfterAll(t *testing.T) {
	code, out, errs := run(t, "inspect", fixture, "--after", "all", "--stats", "--format", "json")
	if code != 0 {
		t.Fatalf("code %d: %s", code, errs)
	}
	var st struct {
		Nodes    int            `json:"nodes"`
		OpCounts map[string]int `json:"op_counts"`
		Inputs   []any          `json:"inputs"`
		Outputs  []any          `json:"outputs"`
		Params   int64          `json:"params"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if st.OpCounts["of3c.Attention"] != 1 || st.OpCounts["Softmax"] != 0 {
		t.Errorf("op counts after all passes: %v", st.OpCounts)
	}
	if st.Nodes == 0 || len(st.Inputs) != 2 || len(st.Outputs) != 1 || st.Params == 0 {
		t.Errorf("stats: %+v", st)
	}
}

func TestInspectAfterUnknownPass(t *testing.T) {
	code, _, errs := run(t, "inspect", fixture, "--after", "no-such-pass")
	if code != 2 || !strings.Contains(errs, "no-such-pass") {
		t.Errorf("code %d, stderr %q", code, errs)
	}
}

func TestInspectBadFiles(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.onnx")
	os.WriteFile(garbage, []byte("this is not a protobuf \xff\xff\xff\xff"), 0o644)
	data, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.onnx")
	os.WriteFile(truncated, data[:len(data)/2], 0o644)
	for _, path := range []string{garbage, truncated, filepath.Join(dir, "missing.onnx")} {
		code, out, errs := run(t, "inspect", path)
		if code != 1 || out != "" {
			t.Errorf("%s: code %d, stdout %q", filepath.Base(path), code, head(out))
		}
		if lines := strings.Count(strings.TrimSpace(errs), "\n") + 1; lines != 1 || !strings.HasPrefix(errs, "of3c inspect: ") {
			t.Errorf("%s: want one error line, got %q", filepath.Base(path), errs)
		}
	}
}

func head(s string) string {
	if len(s) > 200 {
		return s[:200]
	}
	return s
}

// `inspect --memory N=… --device gpu` prints the GPU plan on any machine:
// the triangle attention runs as the flash kernel, so no [N,H,N,N] logits
// appear; without --device the generic lowering's logits dominate (inside
// the attention, or inside the row-chunked region around it). A budget
// below the GPU estimate is refused with the numbers.
func TestInspectMemoryGPU(t *testing.T) {
	code, gen, errs := run(t, "inspect", fixture, "--memory", "N=2048", "--budget", "1TiB")
	if code != 0 || !strings.Contains(gen, "inside of3c.Attention") && !strings.Contains(gen, "inside of3c.ChunkMap") {
		t.Fatalf("generic plan: code %d stderr %q\n%s", code, errs, gen)
	}
	code, gpu, errs := run(t, "inspect", fixture, "--memory", "N=2048", "--device", "gpu", "--budget", "1TiB")
	if code != 0 || !strings.Contains(gpu, "memory plan for N=2048") || strings.Contains(gpu, "inside of3c.Attention") {
		t.Fatalf("gpu plan: code %d stderr %q\n%s", code, errs, gpu)
	}
	// Without --budget on the GPU: the lean plan, the one compile --buckets
	// writes into the artifact (same peak). On the PairFormerBlock the
	// regions the plan leaves whole are dissolved and the graph planned
	// again, which one planner call alone does not show (1.57 against
	// compile's 1.82 GiB at N = 2048 before inspect ran the passes).
	block := filepath.Join(tinyBlock, "model.onnx")
	code, lean, errs := run(t, "inspect", block, "--memory", "N=2048", "--device", "gpu")
	if code != 0 || !strings.Contains(lean, "budget none") {
		t.Fatalf("gpu lean plan: code %d stderr %q\n%s", code, errs, lean)
	}
	code, comp, errs := run(t, "compile", block, "-o", filepath.Join(t.TempDir(), "m.of3"), "--device", "gpu", "--buckets", "2048")
	var peak string
	for _, l := range strings.Split(lean, "\n") {
		if f := strings.Fields(l); len(f) >= 4 && f[0] == "peak" && f[1] == "after" {
			peak = f[2] + " " + f[3]
		}
	}
	if code != 0 || peak == "" || !strings.Contains(comp, "→ "+peak+" lean") {
		t.Errorf("inspect's lean peak %q is not compile's (code %d, stderr %q):\n%s", peak, code, errs, comp)
	}
	code, _, errs = run(t, "inspect", fixture, "--memory", "N=2048", "--device", "gpu", "--budget", "64MiB")
	if code == 0 || !strings.Contains(errs, "does not fit") {
		t.Errorf("gpu plan under 64 MiB: code %d, stderr %q", code, errs)
	}
	if code, _, errs = run(t, "inspect", fixture, "--memory", "N=64", "--device", "tpu"); code != 2 || !strings.Contains(errs, "tpu") {
		t.Errorf("--device tpu: code %d, stderr %q", code, errs)
	}
}
