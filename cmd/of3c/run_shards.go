package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/of3c/of3c/driver"
)

// shardFlags are run's options for a sharded run (docs/cli.md): --shards P
// launches P local processes of this executable, each with --shard-worker P,
// joined by MLX's ring backend on loopback; rank 0 writes the outputs.
type shardFlags struct {
	shards  *int
	worker  *int
	timeout *time.Duration
}

func addShardFlags(fs interface {
	Int(string, int, string) *int
	Duration(string, time.Duration, string) *time.Duration
}) *shardFlags {
	return &shardFlags{
		shards:  fs.Int("shards", 0, "run on `P` local processes sharing the pair stack by rows (dynamic axial parallelism over MLX's ring backend on loopback); rank 0 writes the outputs"),
		worker:  fs.Int("shard-worker", 0, "internal: this process is one rank of a sharded run of `P` processes (set by --shards; MLX_RANK and MLX_HOSTFILE give the rank and the ring)"),
		timeout: fs.Duration("shard-timeout", 10*time.Minute, "with --shards: the longest the sharded run (and each rank's wait for its peers) may take before every process is killed"),
	}
}

func (f *shardFlags) check(device string) error {
	if *f.shards == 1 || *f.shards < 0 || *f.worker < 0 || *f.worker == 1 {
		return usagef("--shards wants 2 or more processes")
	}
	if (*f.shards > 1 || *f.worker > 1) && device == "ref" {
		return usagef("--shards runs on MLX; the reference executor (--device ref) runs one process")
	}
	if (*f.shards > 1 || *f.worker > 1) && device == "gpu" {
		return usagef("--shards runs on the CPU only (MLX's ring backend); several GPUs would need NCCL, which is untested")
	}
	if *f.timeout <= 0 {
		return usagef("--shard-timeout wants a positive duration")
	}
	return nil
}

// launch runs this command again as the P ranks and waits for them.
func (f *shardFlags) launch(args []string, stdout, stderr io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("--shards: finding this executable: %w", err)
	}
	p := *f.shards
	wargs := append([]string{"run"}, args...)
	wargs = append(wargs, "--shard-worker", strconv.Itoa(p))
	return driver.LaunchShards(driver.ShardLaunch{
		Parts: p,
		Command: func(rank int) *exec.Cmd {
			c := exec.Command(self, wargs...)
			if rank == 0 {
				c.Stdout = stdout
			}
			return c
		},
		Timeout: *f.timeout,
		Stderr:  stderr,
	})
}

// open joins the group and opens the sharded session of one rank.
func (f *shardFlags) open(model string, opts driver.Options) (*driver.Session, int, error) {
	g, err := driver.JoinShards(*f.worker, *f.timeout)
	if err != nil {
		return nil, 0, err
	}
	sess, err := driver.OpenSharded(model, opts, *f.worker)
	return sess, g.Rank, err
}
