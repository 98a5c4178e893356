package driver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/of3c/of3c/artifact"
	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/mlx"
	"github.com/of3c/of3c/passes"
)

// Sharded runs (dynamic axial parallelism, passes/shard.go): P processes
// each run the same sharded graph on their rows of the pair representation
// and exchange data through MLX's distributed layer. LaunchShards starts the
// P processes on one machine over MLX's ring backend (TCP on loopback);
// each process joins the group (JoinShards) and opens its session with
// OpenSharded.

// ShardBackend is the MLX backend sharded runs use: the ring (TCP) on one
// machine. (NCCL, for several GPUs, is untested: no multi-GPU machine was
// available.)
const ShardBackend = "ring"

// JoinShards joins the distributed group of a process started by
// LaunchShards (MLX reads MLX_RANK and MLX_HOSTFILE) and checks its size.
func JoinShards(parts int, timeout time.Duration) (mlx.Group, error) {
	if !mlx.Available() {
		return mlx.Group{}, mlx.ErrUnavailable
	}
	if !mlx.DistAvailable(ShardBackend) {
		return mlx.Group{}, fmt.Errorf("this MLX build has no %s backend", ShardBackend)
	}
	g, err := mlx.DistInit(ShardBackend, timeout)
	if err != nil {
		return g, err
	}
	if g.Size != parts {
		return g, fmt.Errorf("the distributed group has %d ranks, want %d", g.Size, parts)
	}
	return g, nil
}

// OpenSharded opens path like Open and rewrites its optimized graph for
// parts ranks (the shard-pair pass). The process must have joined a group
// of parts ranks. When parts does not divide N the last ranks hold fewer
// rows (graph/infer_of3c_dist.go); nothing is padded.
func OpenSharded(path string, opts Options, parts int) (*Session, error) {
	if parts < 2 {
		return nil, fmt.Errorf("sharding needs 2 or more ranks, got %d", parts)
	}
	if opts.Device == "ref" {
		return nil, errors.New("the reference executor runs one process; sharded runs need MLX (--device cpu or gpu)")
	}
	var g *graph.Graph
	var m *artifact.Manifest
	if strings.HasSuffix(strings.ToLower(path), ".onnx") {
		var err error
		g, m, err = Compile(CompileRequest{Source: path, Options: artifact.CompileOptions{
			Device: deviceForCompile(opts.Device), Precision: opts.Precision}, Buckets: opts.Buckets, Of3cVersion: opts.Of3cVersion})
		if err != nil {
			return nil, err
		}
	} else {
		a, err := artifact.Read(path)
		if err != nil {
			return nil, err
		}
		g, m = a.Graph, &a.Manifest
	}
	sg := graph.Clone(g)
	if _, err := passes.Run(sg, passes.Options{Passes: []string{"shard-pair"}, Shards: parts, Verify: true}); err != nil {
		return nil, err
	}
	if len(m.TokenDims) == 0 {
		return nil, errors.New("the model has no symbolic token dim to shard")
	}
	// The memory check models the whole graph's symbolic sizes; the sharded
	// graph's per-rank dims (N_over2) are not input dims.
	opts.SkipMemoryCheck = true
	s, err := New(sg, m, opts)
	if err != nil {
		return nil, err
	}
	if s.Device() != "cpu" {
		s.Close()
		return nil, fmt.Errorf("sharded runs work on the CPU only (MLX's ring backend); on %s they would need NCCL, which is untested (no multi-GPU machine): use --device cpu", s.Device())
	}
	s.shards = parts
	return s, nil
}

// ShardLaunch describes the P processes of one sharded run on this machine.
type ShardLaunch struct {
	Parts int
	// Command returns the (not yet started) command of rank r; LaunchShards
	// adds MLX's ring environment (MLX_RANK, MLX_HOSTFILE) to its Env
	// (os.Environ() when nil) and sets its stderr.
	Command func(rank int) *exec.Cmd
	// Timeout bounds the whole run (≤ 0: 10 minutes); on expiry every
	// process is killed and LaunchShards returns an error.
	Timeout time.Duration
	// Stderr receives each rank's stderr, prefixed "[rank R] ".
	Stderr io.Writer
}

// RingHostfile writes MLX's ring hostfile for n ranks on loopback ports that
// were free a moment ago into dir and returns its path.
func RingHostfile(dir string, n int) (string, error) {
	hosts := make([][]string, n)
	for i := range hosts {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", fmt.Errorf("finding a free loopback port: %w", err)
		}
		hosts[i] = []string{l.Addr().String()}
		l.Close()
	}
	data, err := json.Marshal(hosts)
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "mlx-ring-hosts.json")
	return p, os.WriteFile(p, data, 0o600)
}

// prefixWriter writes each line with a prefix.
type prefixWriter struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
	last   *bytes.Buffer // the rank's last lines, for the error
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		line := p.buf[:i+1]
		if p.w != nil {
			p.w.Write(append([]byte(p.prefix), line...))
		}
		p.last.Write(line)
		if p.last.Len() > 4096 {
			p.last.Next(p.last.Len() - 4096)
		}
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

func lastLine(b *bytes.Buffer) string {
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// LaunchShards starts the P processes, waits for all of them, and returns
// nil when every one exited 0. The first to fail (exit status, signal) is
// reported as the error, and the others are killed: a dead peer is an
// error, never a hang.
func LaunchShards(l ShardLaunch) error {
	if l.Parts < 2 {
		return fmt.Errorf("a sharded run needs 2 or more ranks, got %d", l.Parts)
	}
	if l.Timeout <= 0 {
		l.Timeout = 10 * time.Minute
	}
	dir, err := os.MkdirTemp("", "of3c-shards-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	hf, err := RingHostfile(dir, l.Parts)
	if err != nil {
		return err
	}
	type done struct {
		rank int
		err  error
	}
	var mu sync.Mutex
	ch := make(chan done, l.Parts)
	cmds := make([]*exec.Cmd, l.Parts)
	lasts := make([]*bytes.Buffer, l.Parts)
	killAll := func() {
		for _, c := range cmds {
			if c != nil && c.Process != nil {
				c.Process.Kill()
			}
		}
	}
	for r := 0; r < l.Parts; r++ {
		c := l.Command(r)
		if c.Env == nil {
			c.Env = os.Environ()
		}
		c.Env = append(c.Env, "MLX_RANK="+strconv.Itoa(r), "MLX_HOSTFILE="+hf)
		lasts[r] = &bytes.Buffer{}
		c.Stderr = &prefixWriter{mu: &mu, w: l.Stderr, prefix: fmt.Sprintf("[rank %d] ", r), last: lasts[r]}
		// A worker must not outlive the launcher.
		c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := c.Start(); err != nil {
			killAll()
			return fmt.Errorf("starting rank %d: %w", r, err)
		}
		cmds[r] = c
		go func(r int) { ch <- done{r, c.Wait()} }(r)
	}
	timer := time.NewTimer(l.Timeout)
	defer timer.Stop()
	var first error
	for left := l.Parts; left > 0; {
		select {
		case d := <-ch:
			left--
			if d.err != nil && first == nil {
				msg := ""
				mu.Lock()
				if s := lastLine(lasts[d.rank]); s != "" {
					msg = ": " + s
				}
				mu.Unlock()
				first = fmt.Errorf("sharded run: rank %d of %d failed (%v)%s", d.rank, l.Parts, d.err, msg)
				killAll()
			}
		case <-timer.C:
			if first == nil {
				first = fmt.Errorf("sharded run: %d ranks did not finish within %v; killed", l.Parts, l.Timeout)
			}
			killAll()
		}
	}
	return first
}

// Shards is the rank count of a session from OpenSharded (0 otherwise).
func (s *Session) Shards() int { return s.shards }
