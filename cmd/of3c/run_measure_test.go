package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/of3c/of3c/driver"
	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/importer/npy"
	"github.com/of3c/of3c/internal/mlx"
)

func runDevices() []string {
	if mlx.Available() {
		return []string{"ref", "cpu"}
	}
	return []string{"ref"}
}

// --check exits 1 on a perturbed reference, naming the output and index, and
// 0 on the right one; both for a test_data_set folder and an .npz.
func TestRunCheckExitStatus(t *testing.T) {
	art := compileFixture(t, tinyBlock)
	sd := filepath.Join(tinyBlock, "test_data_set_0")
	dir := t.TempDir()
	for _, dev := range runDevices() {
		good := filepath.Join(dir, dev+"-good.npz")
		code, _, errs := run(t, "run", art, "--inputs", sd, "--device", dev, "--buckets", "none", "-o", good)
		if code != 0 {
			t.Fatalf("%s: writing outputs: %d %s", dev, code, errs)
		}
		code, out, errs := run(t, "run", art, "--inputs", sd, "--device", dev, "--buckets", "none", "--check", sd, "--atol", "1e-4")
		if code != 0 || !strings.Contains(out, "check z_out [1 12 12 16]: ok") {
			t.Errorf("%s: right reference: exit %d\n%s%s", dev, code, out, errs)
		}
		if code, out, errs := run(t, "run", art, "--inputs", sd, "--device", dev, "--buckets", "none", "--check", good, "--atol", "0"); code != 0 {
			t.Errorf("%s: own .npz outputs: exit %d\n%s%s", dev, code, out, errs)
		}
		// Perturb one element of z_out by 0.5.
		names, ts, err := npy.ReadNPZ(good)
		if err != nil {
			t.Fatal(err)
		}
		z := ts["z_out"]
		vals, _ := z.Float64s()
		flat := (3*12+5)*16 + 7 // z_out [1, 12, 12, 16]: element [0 3 5 7]
		vals[flat] += 0.5
		pz, err := graphTensor(z.DType, z.Shape, vals)
		if err != nil {
			t.Fatal(err)
		}
		ts["z_out"] = pz
		bad := filepath.Join(dir, dev+"-bad.npz")
		if err := npy.WriteNPZ(bad, names, ts); err != nil {
			t.Fatal(err)
		}
		rep := filepath.Join(dir, dev+"-report.json")
		code, out, errs = run(t, "run", art, "--inputs", sd, "--device", dev, "--buckets", "none", "--check", bad, "--atol", "1e-4", "--report", rep)
		// The report is written on a failed check too (CI keeps it).
		if b, err := os.ReadFile(rep); err != nil || !strings.Contains(string(b), `"passed": false`) || !strings.Contains(string(b), `"mismatches": 1`) {
			t.Errorf("%s: report of a failed check: %v\n%s", dev, err, b)
		}
		if code != 1 {
			t.Errorf("%s: perturbed reference: exit %d, want 1\n%s%s", dev, code, out, errs)
		}
		if !strings.Contains(out, "check z_out [1 12 12 16]: FAIL: 1 of 2304 elements") || !strings.Contains(out, "first at [0 3 5 7]") ||
			!strings.Contains(errs, "check failed: z_out") || !strings.Contains(out, "check s_out [1 12 32]: ok") {
			t.Errorf("%s: perturbed reference: output does not say where:\n%s%s", dev, out, errs)
		}
		// A loose tolerance accepts it.
		if code, out, errs := run(t, "run", art, "--inputs", sd, "--device", dev, "--buckets", "none", "--check", bad, "--atol", "0.6"); code != 0 {
			t.Errorf("%s: atol 0.6: exit %d\n%s%s", dev, code, out, errs)
		}
		if code, _, _ := run(t, "run", art, "--inputs", sd, "--device", dev, "--buckets", "none", "--check", bad, "--atol", "0", "--rtol", "10"); code != 0 {
			t.Errorf("%s: rtol 10: exit %d", dev, code)
		}
	}
}

func TestRunReportJSON(t *testing.T) {
	art := compileFixture(t, tinyBlock)
	sd := filepath.Join(tinyBlock, "test_data_set_0")
	for _, dev := range runDevices() {
		rep := filepath.Join(t.TempDir(), "r.json")
		// The two-word spelling of the issue, and --repeat's successor.
		code, _, errs := run(t, "run", art, "--inputs", sd, "--device", dev, "--warmup", "2", "--iterations", "7",
			"--report", "json", rep, "--check", sd, "--atol", "1e30")
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", dev, code, errs)
		}
		for _, want := range []string{"first call", "7 runs after 2 warm-up: min", "p90", "p99", "peak memory", "of3c: running on " + dev} {
			if !strings.Contains(errs, want) {
				t.Errorf("%s: stderr lacks %q:\n%s", dev, want, errs)
			}
		}
		b, err := os.ReadFile(rep)
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			Device     string           `json:"device"`
			Iterations int              `json:"iterations"`
			Warmup     int              `json:"warmup"`
			Dims       map[string]int64 `json:"dims"`
			Latency    *driver.Latency  `json:"latency"`
			PeakRSS    int64            `json:"peak_rss_bytes"`
			PeakMLX    int64            `json:"peak_mlx_bytes"`
			Check      *struct {
				Passed  bool `json:"passed"`
				Outputs []struct {
					Name string `json:"name"`
				} `json:"outputs"`
			} `json:"check"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("%s: %v\n%s", dev, err, b)
		}
		l := r.Latency
		if r.Device != dev || r.Iterations != 7 || r.Warmup != 2 || r.Dims["N"] != 12 || l == nil || l.Count != 7 || r.PeakRSS <= 0 {
			t.Fatalf("%s: report %s", dev, b)
		}
		if !(l.Min <= l.Median && l.Median <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max && l.Min <= l.Mean && l.Mean <= l.Max && l.Min > 0) {
			t.Errorf("%s: latency order: %+v", dev, *l)
		}
		if dev == "cpu" && r.PeakMLX <= 0 {
			t.Errorf("cpu: no MLX peak in %s", b)
		}
		if r.Check == nil || !r.Check.Passed || len(r.Check.Outputs) != 2 {
			t.Errorf("%s: check part: %s", dev, b)
		}
	}
	// --repeat keeps working as --iterations.
	rep := filepath.Join(t.TempDir(), "r.json")
	if code, _, errs := run(t, "run", art, "--inputs", sd, "--device", "ref", "--repeat", "3", "--report", rep); code != 0 || !strings.Contains(errs, "3 runs after 0 warm-up") {
		t.Errorf("--repeat 3: exit %d\n%s", code, errs)
	}
}

func TestRunShapes(t *testing.T) {
	art := compileFixture(t, tinyBlock)
	for _, dev := range runDevices() {
		code, out, errs := run(t, "run", art, "--shapes", "N=9", "--device", dev, "--buckets", "none")
		if code != 0 || !regexp.MustCompile(`(?m)^z_out f32\[1 9 9 16\] min \S+ max`).MatchString(out) {
			t.Errorf("%s: --shapes N=9: exit %d\n%s%s", dev, code, out, errs)
		}
	}
	// Same seed, same inputs: the outputs written twice are identical.
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.npz"), filepath.Join(dir, "b.npz")
	for _, p := range []string{a, b} {
		if code, _, errs := run(t, "run", art, "--shapes", "N=5", "--seed", "3", "--device", "ref", "-o", p); code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
	}
	if code, out, errs := run(t, "run", art, "--shapes", "N=5", "--seed", "3", "--device", "ref", "--check", a, "--atol", "0"); code != 0 {
		t.Errorf("seeded inputs differ between runs: %s%s", out, errs)
	}
	for _, bad := range [][]string{
		{"--shapes", "M=5"},
		{"--shapes", "N=5,M=3"},
		{"--shapes", "N=x"},
		{"--shapes", "N=5", "--inputs", filepath.Join(tinyBlock, "test_data_set_0")},
	} {
		code, _, errs := run(t, append([]string{"run", art, "--device", "ref"}, bad...)...)
		if code != 2 || !strings.Contains(errs, "--shapes") {
			t.Errorf("%v: exit %d, want 2: %s", bad, code, errs)
		}
	}
	code, _, errs := run(t, "run", art, "--device", "ref", "--shapes", "M=5")
	if !strings.Contains(errs, "no size for N") {
		t.Errorf("missing symbol: exit %d %s", code, errs)
	}
}

func TestRunUsageAndDevices(t *testing.T) {
	if code, out, _ := run(t, "--version"); code != 0 || !strings.HasPrefix(out, "of3c ") {
		t.Errorf("--version: exit %d %q", code, out)
	}
	art := compileFixture(t, tinyBlock)
	sd := filepath.Join(tinyBlock, "test_data_set_0")
	code, _, errs := run(t, "run", art, "--inputs", sd, "--device", "cuda")
	if code != 2 || !strings.Contains(errs, "cpu, gpu, ref") {
		t.Errorf("--device cuda: exit %d: %s", code, errs)
	}
	onnx := filepath.Join(tinyBlock, "model.onnx")
	for _, args := range [][]string{
		{"compile", onnx, "-o", filepath.Join(t.TempDir(), "x.of3"), "--device", "cuda"},
		{"compile", onnx, "-o", filepath.Join(t.TempDir(), "x.of3"), "--precision", "fp8"},
		{"run", onnx, "--inputs", sd, "--precision", "fp8"},
	} {
		if code, _, errs := run(t, args...); code != 2 || !strings.Contains(errs, args[len(args)-1]) {
			t.Errorf("%v: exit %d, want 2: %s", args, code, errs)
		}
	}
	for _, bad := range [][]string{
		{"--iterations", "-1"},
		{"--warmup", "2"},
		{"--atol", "-1", "--check", sd},
		{"--repeat", "2", "--iterations", "3"},
		{"--bogus"},
	} {
		if code, _, errs := run(t, append([]string{"run", art, "--inputs", sd, "--device", "ref"}, bad...)...); code != 2 {
			t.Errorf("%v: exit %d, want 2: %s", bad, code, errs)
		}
	}
	if !driver.HasGPU() {
		code, _, errs := run(t, "run", art, "--inputs", sd, "--device", "gpu")
		if code != 1 || !strings.Contains(errs, "--device cpu") || !strings.Contains(errs, "make setup MLX=cuda") {
			t.Errorf("gpu without a GPU: exit %d: %s", code, errs)
		}
	}
}

func TestRunOutputByExtension(t *testing.T) {
	art := compileFixture(t, tinyBlock)
	sd := filepath.Join(tinyBlock, "test_data_set_0")
	dir := t.TempDir()
	code, _, errs := run(t, "run", art, "--inputs", sd, "--device", "ref", "-o", filepath.Join(dir, "out.npy"))
	if code != 2 || !strings.Contains(errs, "s_out, z_out") || !strings.Contains(errs, ".npz") {
		t.Errorf(".npy with two outputs: exit %d: %s", code, errs)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("refused .npy left files: %v", ents)
	}
	// A one-output model writes one .npy file.
	one := "../../models/of3/testdata/tri_att_start_tiny_torchscript"
	art1 := compileFixture(t, one)
	p := filepath.Join(dir, "z.npy")
	if code, _, errs := run(t, "run", art1, "--inputs", filepath.Join(one, "test_data_set_0"), "--device", "ref", "-o", p); code != 0 {
		t.Fatalf("one output .npy: exit %d: %s", code, errs)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := npy.Read(f)
	if err != nil || len(z.Shape) != 4 || z.Shape[3] != 16 {
		t.Errorf("z.npy: %v %v", z, err)
	}
}

func graphTensor(dt graph.DType, shape []int64, vals []float64) (*graph.Tensor, error) {
	return graph.NewTensorFromFloat64s(dt, shape, vals)
}
