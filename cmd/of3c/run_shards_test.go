package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/of3c/of3c/internal/mlx"
)

// `run --shards P` re-executes os.Executable() as its ranks; under `go test`
// that is this test binary, which then acts as the of3c command.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "run" && slices.Contains(os.Args, "--shard-worker") {
		os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func TestRunShards(t *testing.T) {
	if !mlx.Available() || !mlx.DistAvailable("ring") {
		t.Skip("MLX without the ring backend")
	}
	fx := "../../models/of3/testdata/pairformer_block_tiny_torchscript"
	set := filepath.Join(fx, "test_data_set_1") // N = 19: uneven rows over 2 ranks
	out := filepath.Join(t.TempDir(), "out.npz")
	code, stdout, stderr := run(t, "run", filepath.Join(fx, "model.onnx"), "--inputs", set, "--check", set,
		"--atol", "1e-5", "--shards", "2", "-o", out)
	if code != 0 {
		t.Fatalf("run --shards 2: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "wrote 2 outputs") || strings.Count(stdout, ": ok") != 2 {
		t.Errorf("rank 0's report missing:\n%s", stdout)
	}
	if !strings.Contains(stderr, "[rank 1]") {
		t.Errorf("rank 1's stderr not relayed:\n%s", stderr)
	}
	if _, err := os.Stat(out); err != nil {
		t.Error(err)
	}
	// Usage errors.
	if code, _, errs := run(t, "run", filepath.Join(fx, "model.onnx"), "--inputs", set, "--shards", "2", "--device", "ref"); code != 2 || !strings.Contains(errs, "reference executor") {
		t.Errorf("--shards with --device ref: exit %d %q", code, errs)
	}
	if code, _, errs := run(t, "run", filepath.Join(fx, "model.onnx"), "--inputs", set, "--shards", "2", "--device", "gpu"); code != 2 || !strings.Contains(errs, "CPU only") {
		t.Errorf("--shards with --device gpu: exit %d %q", code, errs)
	}
	if code, _, _ := run(t, "run", filepath.Join(fx, "model.onnx"), "--inputs", set, "--shards", "1"); code != 2 {
		t.Errorf("--shards 1: exit %d, want 2", code)
	}
}

func TestInspectShards(t *testing.T) {
	fx := "../../models/of3/testdata/pairformer_block_tiny_torchscript/model.onnx"
	code, stdout, stderr := run(t, "inspect", fx, "--shards", "2", "--shard-dims", "N=2048")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"shard plan: 2 ranks", "all_to_all", "all_gather", "per rank", "N=2048"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("plan lacks %q:\n%s", want, stdout)
		}
	}
	if code, _, _ := run(t, "inspect", fx, "--shard-dims", "N=8"); code != 2 {
		t.Errorf("--shard-dims without --shards: exit %d", code)
	}
}
