package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/of3c/of3c/artifact"
	"github.com/of3c/of3c/importer/npy"
	"github.com/of3c/of3c/internal/mlx"
)

const tinyBlock = "../../models/of3/testdata/pairformer_block_tiny_torchscript"

func compileFixture(t *testing.T, dir string, extra ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "m.of3")
	var so, se bytes.Buffer
	args := append([]string{filepath.Join(dir, "model.onnx"), "-o", out}, extra...)
	if err := cmdCompile(args, &so, &se); err != nil {
		t.Fatalf("compile: %v\n%s", err, se.String())
	}
	if !strings.Contains(so.String(), "of3c.Attention") {
		t.Errorf("compile summary does not list fusions:\n%s", so.String())
	}
	return out
}

func TestCompileRunCheck(t *testing.T) {
	if _, err := os.Stat(tinyBlock); err != nil {
		t.Skip("fixtures not present")
	}
	devices := []string{"ref"}
	if mlx.Available() {
		devices = append(devices, "cpu")
	}
	art := compileFixture(t, tinyBlock, "--buckets", "16,32")
	for _, dev := range devices {
		for _, set := range []string{"test_data_set_0", "test_data_set_1"} {
			var so, se bytes.Buffer
			sd := filepath.Join(tinyBlock, set)
			// Bucketing changes the outputs of masked tokens (see
			// tests/parity), so this run only reports the error.
			if err := cmdRun([]string{art, "--inputs", sd, "--check", sd, "--device", dev, "--atol", "1e30"}, &so, &se); err != nil {
				t.Fatalf("%s %s: %v", dev, set, err)
			}
			m := regexp.MustCompile(`(?m)^max abs err (\S+)$`).FindStringSubmatch(so.String())
			if m == nil {
				t.Fatalf("%s %s: no max abs err line:\n%s", dev, set, so.String())
			}
			_ = m
		}
		var so, se bytes.Buffer
		sd := filepath.Join(tinyBlock, "test_data_set_0")
		if err := cmdRun([]string{art, "--inputs", sd, "--check", sd, "--device", dev, "--buckets", "none"}, &so, &se); err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`(?m)^max abs err (\S+)$`).FindStringSubmatch(so.String())
		if v, err := strconv.ParseFloat(m[1], 64); err != nil || v > 1e-4 {
			t.Errorf("%s: max abs err %s > 1e-4", dev, m[1])
		}
	}
}

func TestRunOutputsAndRepeat(t *testing.T) {
	if _, err := os.Stat(tinyBlock); err != nil || !mlx.Available() {
		t.Skip("needs fixtures and MLX")
	}
	art := compileFixture(t, tinyBlock)
	dir := t.TempDir()
	npz := filepath.Join(dir, "out.npz")
	sd := filepath.Join(tinyBlock, "test_data_set_0")
	var so, se bytes.Buffer
	if err := cmdRun([]string{art, "--inputs", sd, "-o", npz, "--repeat", "3"}, &so, &se); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"first call", "median", "peak memory"} {
		if !strings.Contains(se.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, se.String())
		}
	}
	names, ts, err := npy.ReadNPZ(npz)
	if err != nil || len(names) != 2 || ts["s_out"] == nil {
		t.Fatalf("npz: %v %v", names, err)
	}
	outDir := filepath.Join(dir, "outs")
	if err := cmdRun([]string{art, "--inputs", sd, "-o", outDir}, &so, &se); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(outDir, "output_1.pb")); err != nil {
		t.Errorf("output folder: %v", err)
	}
	// The folder now holds outputs: a second run refuses to mix files.
	if err := cmdRun([]string{art, "--inputs", sd, "-o", outDir}, &so, &se); err == nil {
		t.Error("writing into a non-empty folder was accepted")
	}
	// Individual inputs by name, from .pb files.
	args := []string{art, "-o", filepath.Join(dir, "o2.npz")}
	for i, n := range []string{"s", "z", "mask", "pair_mask"} {
		args = append(args, "--input", n+"="+filepath.Join(sd, "input_"+strconv.Itoa(i)+".pb"))
	}
	if err := cmdRun(args, &so, &se); err != nil {
		t.Fatal(err)
	}
}

func TestRunBadInputsLeaveNothing(t *testing.T) {
	if _, err := os.Stat(tinyBlock); err != nil {
		t.Skip("fixtures not present")
	}
	art := compileFixture(t, tinyBlock)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.npz")
	sd0 := filepath.Join(tinyBlock, "test_data_set_0")
	sd1 := filepath.Join(tinyBlock, "test_data_set_1")
	var so, se bytes.Buffer
	// mask from the N=19 set with the N=12 set: inconsistent N.
	err := cmdRun([]string{art, "--device", "ref", "--inputs", sd0, "--input", "mask=" + filepath.Join(sd1, "input_2.pb"), "-o", out}, &so, &se)
	if err == nil || !strings.Contains(err.Error(), `input "mask"`) {
		t.Errorf("inconsistent N: err = %v", err)
	}
	err = cmdRun([]string{art, "--device", "ref", "--inputs", sd0, "--input", "bogus=" + filepath.Join(sd1, "input_2.pb"), "-o", out}, &so, &se)
	if err == nil || !strings.Contains(err.Error(), `unknown input "bogus"`) {
		t.Errorf("unknown input: err = %v", err)
	}
	err = cmdRun([]string{art, "--device", "ref", "--input", "s=" + filepath.Join(sd0, "input_0.pb"), "-o", out}, &so, &se)
	if err == nil || !strings.Contains(err.Error(), "missing input") {
		t.Errorf("missing input: err = %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("failed runs left files: %v", ents)
	}
	// A corrupted artifact is refused with a message naming the section.
	data, err := os.ReadFile(art)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-10] ^= 0xff
	bad := filepath.Join(dir, "bad.of3")
	if err := os.WriteFile(bad, data, 0o644); err != nil {
		t.Fatal(err)
	}
	err = cmdRun([]string{bad, "--device", "ref", "--inputs", sd0}, &so, &se)
	if err == nil || !strings.Contains(err.Error(), "corrupt section") {
		t.Errorf("corrupt artifact: err = %v", err)
	}
	os.Remove(bad)
	// A usage mistake is a usage error.
	var ue usageError
	if err := cmdRun([]string{art}, &so, &se); !errors.As(err, &ue) {
		t.Errorf("no inputs: err = %v, want a usage error", err)
	}
}

func TestCompileFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.onnx")
	if err := os.WriteFile(bad, []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	var so, se bytes.Buffer
	out := filepath.Join(dir, "m.of3")
	if err := cmdCompile([]string{bad, "-o", out}, &so, &se); err == nil {
		t.Fatal("compiling garbage succeeded")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("failed compile left files: %v", ents)
	}
	if err := cmdCompile([]string{bad, "-o", out, "--precision", "fp8"}, &so, &se); err == nil || !strings.Contains(err.Error(), "precision") {
		t.Errorf("bad precision: err = %v", err)
	}
}

// compile prints the planned lowering paths, `run --explain` the ones taken.
func TestLoweringPathsShown(t *testing.T) {
	if _, err := os.Stat(tinyBlock); err != nil || !mlx.Available() {
		t.Skip("needs fixtures and MLX")
	}
	out := filepath.Join(t.TempDir(), "m.of3")
	var so, se bytes.Buffer
	if err := cmdCompile([]string{filepath.Join(tinyBlock, "model.onnx"), "-o", out}, &so, &se); err != nil {
		t.Fatalf("compile: %v\n%s", err, se.String())
	}
	if !regexp.MustCompile(`(?m)^  lowering on cpu: .*attention/cpu-fused×\d+`).MatchString(so.String()) {
		t.Errorf("compile summary lacks the lowering paths:\n%s", so.String())
	}
	so.Reset()
	se.Reset()
	sd := filepath.Join(tinyBlock, "test_data_set_0")
	if err := cmdRun([]string{out, "--inputs", sd, "--explain"}, &so, &se); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(se.String(), "lowering paths on cpu: ") ||
		!regexp.MustCompile(`(?m)^  \S+ +of3c\.Attention +attention/cpu-fused$`).MatchString(se.String()) {
		t.Errorf("run --explain:\n%s", se.String())
	}
}

// --memory-budget reads sizes with the one parser (internal/units): G is
// GiB, GB is 10⁹ — the CLI once read G as 10⁹ while the driver read GiB.
func TestMemoryBudgetUnits(t *testing.T) {
	if _, err := os.Stat(tinyBlock); err != nil {
		t.Skip("fixtures not present")
	}
	for flagVal, want := range map[string]int64{"1G": 1 << 30, "1GiB": 1 << 30, "1GB": 1e9, "1.5M": 3 << 19} {
		art := compileFixture(t, tinyBlock, "--buckets", "16", "--memory-budget", flagVal)
		a, err := artifact.Read(art)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.Manifest.Options.MemoryBudget; got != want {
			t.Errorf("--memory-budget %s: manifest says %d bytes, want %d", flagVal, got, want)
		}
	}
}
