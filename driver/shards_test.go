package driver

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/mlx"
)

// The sharded-run tests launch this test binary as the P ranks
// (`-test.run=^TestShardWorker$ -- shard-worker MODE FIXTURE SET`) over
// MLX's ring backend on loopback, through LaunchShards.

func shardWorkers(t *testing.T, parts int, args ...string) (string, error) {
	t.Helper()
	var stderr bytes.Buffer
	err := LaunchShards(ShardLaunch{
		Parts: parts,
		Command: func(rank int) *exec.Cmd {
			a := append([]string{"-test.run=^TestShardWorker$", "-test.count=1", "--", "shard-worker"}, args...)
			c := exec.Command(os.Args[0], a...)
			c.Stdout = &syncBuf{mu: &stderrMu, b: &stderr}
			return c
		},
		Timeout: 3 * time.Minute,
		Stderr:  &syncBuf{mu: &stderrMu, b: &stderr},
	})
	stderrMu.Lock()
	defer stderrMu.Unlock()
	return stderr.String(), err
}

func ringReady(t *testing.T) {
	t.Helper()
	if !mlx.Available() || !mlx.DistAvailable(ShardBackend) {
		t.Skip("MLX without the ring backend")
	}
}

// A 2-process ring run of the real PairFormerBlock (both exporters, both
// test sets: N = 12 splits evenly, N = 19 is padded to 20) equals the
// single-process run within 1e-5 on both ranks.
func TestShardedPairFormerBlock(t *testing.T) {
	ringReady(t)
	for _, fx := range []string{"pairformer_block_tiny_torchscript", "pairformer_block_tiny_dynamo"} {
		for _, set := range []string{"test_data_set_0", "test_data_set_1"} {
			t.Run(fx+"/"+set, func(t *testing.T) {
				out, err := shardWorkers(t, 2, "compare", fx, set)
				if err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
				for r := 0; r < 2; r++ {
					if !strings.Contains(out, fmt.Sprintf("rank %d SHARD OK", r)) {
						t.Errorf("rank %d did not report a match:\n%s", r, out)
					}
				}
				t.Log(strings.TrimSpace(out))
			})
		}
	}
}

// A rank that dies mid-run is an error of the launch (and of its peer),
// not a hang.
func TestShardedKilledPeer(t *testing.T) {
	ringReady(t)
	start := time.Now()
	out, err := shardWorkers(t, 2, "die", "pairformer_block_tiny_torchscript", "test_data_set_0")
	if err == nil {
		t.Fatalf("launch succeeded although rank 1 died:\n%s", out)
	}
	if !strings.Contains(err.Error(), "rank 1") && !strings.Contains(err.Error(), "rank 0") {
		t.Errorf("error does not name the failed rank: %v", err)
	}
	t.Logf("after %v: %v\n%s", time.Since(start).Round(time.Millisecond), err, out)
}

func TestLaunchShardsErrors(t *testing.T) {
	if err := LaunchShards(ShardLaunch{Parts: 1}); err == nil {
		t.Error("1 rank accepted")
	}
	// A worker that never finishes is killed at the timeout.
	err := LaunchShards(ShardLaunch{Parts: 2, Timeout: 500 * time.Millisecond,
		Command: func(int) *exec.Cmd { return exec.Command("sleep", "30") }})
	if err == nil || !strings.Contains(err.Error(), "did not finish") {
		t.Errorf("hung workers: %v", err)
	}
	if _, err := OpenSharded("x.onnx", Options{Device: "ref"}, 2); err == nil {
		t.Error("ref device accepted")
	}
}

// TestShardWorker is one rank, run only by the tests above.
func TestShardWorker(t *testing.T) {
	args := flag.Args()
	if len(args) < 4 || args[0] != "shard-worker" {
		t.Skip("run as a child process by the sharded-run tests")
	}
	mode, fx, set := args[1], args[2], args[3]
	fail := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "SHARD ERROR: "+format+"\n", a...)
		os.Exit(1)
	}
	g, err := JoinShards(2, 30*time.Second)
	if err != nil {
		fail("%v", err)
	}
	dir := filepath.Join("..", "models", "of3", "testdata", fx)
	model := filepath.Join(dir, "model.onnx")
	sess, err := OpenSharded(model, Options{Device: "cpu"}, 2)
	if err != nil {
		fail("%v", err)
	}
	in, err := ReadBundle(filepath.Join(dir, set), sess.Graph.Inputs)
	if err != nil {
		fail("%v", err)
	}
	if mode == "die" && g.Rank == 1 {
		fmt.Fprintln(os.Stderr, "rank 1 exiting on purpose")
		os.Exit(7)
	}
	got, _, err := sess.Run(in)
	if err != nil {
		fail("%v", err)
	}
	one, err := Open(model, Options{Device: "cpu"})
	if err != nil {
		fail("%v", err)
	}
	want, _, err := one.Run(in)
	if err != nil {
		fail("%v", err)
	}
	torch, err := ReadExpected(filepath.Join(dir, set), one.Graph.Outputs)
	if err != nil {
		fail("%v", err)
	}
	var worst, worstTorch float64
	for _, o := range one.Graph.Outputs {
		d, err := tensorDiff(want[o.Name], got[o.Name])
		if err != nil {
			fail("%s: %v", o.Name, err)
		}
		worst = math.Max(worst, d)
		dt, err := tensorDiff(torch[o.Name], got[o.Name])
		if err != nil {
			fail("%s vs PyTorch: %v", o.Name, err)
		}
		worstTorch = math.Max(worstTorch, dt)
	}
	if worst > 1e-5 || worstTorch > 1e-4 {
		fail("rank %d: sharded vs single-process max |diff| %g, vs PyTorch %g", g.Rank, worst, worstTorch)
	}
	fmt.Fprintf(os.Stderr, "rank %d SHARD OK: max |diff| vs single process %.3g, vs PyTorch %.3g (N=%v)\n",
		g.Rank, worst, worstTorch, in[sess.Graph.Inputs[1].Name].Shape)
}

func tensorDiff(a, b *graph.Tensor) (float64, error) {
	if a == nil || b == nil {
		return 0, fmt.Errorf("missing tensor")
	}
	if fmt.Sprint(a.Shape) != fmt.Sprint(b.Shape) {
		return 0, fmt.Errorf("shapes %v and %v", a.Shape, b.Shape)
	}
	x, err := a.Float64s()
	if err != nil {
		return 0, err
	}
	y, err := b.Float64s()
	if err != nil {
		return 0, err
	}
	var d float64
	for i := range x {
		if v := math.Abs(x[i] - y[i]); v > d || math.IsNaN(v) {
			d = v
			if math.IsNaN(v) {
				return math.Inf(1), nil
			}
		}
	}
	return d, nil
}

var stderrMu sync.Mutex

type syncBuf struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
