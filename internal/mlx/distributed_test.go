package mlx

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The two-process tests re-execute this test binary as the ring's peers:
// `-test.run=^TestDistPeer$ -- dist-peer MODE`, with MLX's ring environment
// (MLX_RANK, MLX_HOSTFILE) set per process.

// ringHostfile writes MLX's ring hostfile for n ranks on loopback ports that
// were free a moment ago.
func ringHostfile(t *testing.T, n int) string {
	t.Helper()
	hosts := make([][]string, n)
	for i := range hosts {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		hosts[i] = []string{l.Addr().String()}
		l.Close()
	}
	data, _ := json.Marshal(hosts)
	p := filepath.Join(t.TempDir(), "hosts.json")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

type peer struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	err  error
	done chan struct{}
}

func startPeers(t *testing.T, n int, mode string) []*peer {
	t.Helper()
	hf := ringHostfile(t, n)
	ps := make([]*peer, n)
	for r := 0; r < n; r++ {
		p := &peer{done: make(chan struct{})}
		p.cmd = exec.Command(os.Args[0], "-test.run=^TestDistPeer$", "-test.count=1", "--", "dist-peer", mode)
		p.cmd.Env = append(os.Environ(), "MLX_RANK="+strconv.Itoa(r), "MLX_HOSTFILE="+hf)
		p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { p.err = p.cmd.Wait(); close(p.done) }()
		ps[r] = p
	}
	t.Cleanup(func() {
		for _, p := range ps {
			select {
			case <-p.done:
			default:
				p.cmd.Process.Kill()
				<-p.done
			}
		}
	})
	return ps
}

// wait waits for p, failing the test if it takes longer than d (a hang).
func (p *peer) wait(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("peer hung (killed after %v); output:\n%s", d, p.out.String())
	}
}

func TestDistRingTwoProcesses(t *testing.T) {
	if !Available() || !DistAvailable("ring") {
		t.Skip("MLX without the ring backend")
	}
	ps := startPeers(t, 2, "collectives")
	for r, p := range ps {
		p.wait(t, 60*time.Second)
		if p.err != nil || !strings.Contains(p.out.String(), "PEER OK") {
			t.Errorf("rank %d: %v\n%s", r, p.err, p.out.String())
		}
	}
}

// A peer killed while the other waits in a collective: the survivor gets an
// error (or a clear failure) rather than hanging.
func TestDistRingKilledPeer(t *testing.T) {
	if !Available() || !DistAvailable("ring") {
		t.Skip("MLX without the ring backend")
	}
	ps := startPeers(t, 2, "killed")
	// Rank 1 kills itself after init; rank 0 then all_gathers.
	ps[1].wait(t, 60*time.Second)
	ps[0].wait(t, 60*time.Second)
	out := ps[0].out.String()
	if ps[0].err == nil && !strings.Contains(out, "PEER ERROR") {
		t.Fatalf("rank 0 reported no error after its peer died:\n%s", out)
	}
	if !strings.Contains(out, "PEER ERROR") {
		t.Errorf("rank 0 did not report the lost peer as an error (exit %v):\n%s", ps[0].err, out)
	}
	t.Logf("rank 0: %s", strings.TrimSpace(out))
}

// A peer that never starts: init is an error after its timeout, not a hang.
func TestDistRingInitTimeout(t *testing.T) {
	if !Available() || !DistAvailable("ring") {
		t.Skip("MLX without the ring backend")
	}
	hf := ringHostfile(t, 2)
	p := &peer{done: make(chan struct{})}
	p.cmd = exec.Command(os.Args[0], "-test.run=^TestDistPeer$", "-test.count=1", "--", "dist-peer", "init-timeout")
	p.cmd.Env = append(os.Environ(), "MLX_RANK=0", "MLX_HOSTFILE="+hf)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	p.wait(t, 60*time.Second)
	if out := p.out.String(); !strings.Contains(out, "PEER ERROR") || !strings.Contains(out, "did not connect") {
		t.Fatalf("want an init timeout error, got (%v):\n%s", p.err, out)
	}
}

func TestDistSingleProcess(t *testing.T) {
	if !Available() {
		t.Skip("no MLX")
	}
	// Before any init the group is rank 0 of 1 and collectives refuse.
	if g := DistGroup(); g.Size != 1 || g.Rank != 0 {
		t.Fatalf("group before init = %+v", g)
	}
	err := Do(func(s *Scope) error {
		s.AllGather(s.FromFloat32s([]float32{1}, 1), 0)
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "not initialised") {
		t.Fatalf("all_gather before init: %v", err)
	}
}

// TestDistPeer is one ring peer, run only as a child of the tests above.
func TestDistPeer(t *testing.T) {
	args := flag.Args()
	if len(args) < 2 || args[0] != "dist-peer" {
		t.Skip("run as a child process by the ring tests")
	}
	fail := func(format string, a ...any) {
		fmt.Printf("PEER ERROR: "+format+"\n", a...)
		os.Exit(1)
	}
	mode := args[1]
	timeout := 20 * time.Second
	if mode == "init-timeout" {
		timeout = 2 * time.Second
	}
	g, err := DistInit("ring", timeout)
	if err != nil {
		fail("%v", err)
	}
	if g.Size != 2 {
		fail("size %d", g.Size)
	}
	switch mode {
	case "collectives":
		err = Do(func(s *Scope) error {
			r := float32(g.Rank)
			// x = [[r, r+10, r+20], [r+1, r+11, r+21]]: shape [2, 3].
			x := s.FromFloat32s([]float32{r, r + 10, r + 20, r + 1, r + 11, r + 21}, 2, 3)
			sum := s.Float32s(s.AllSum(x))
			want := []float32{1, 21, 41, 3, 23, 43}
			if fmt.Sprint(sum) != fmt.Sprint(want) {
				return fmt.Errorf("all_sum = %v, want %v", sum, want)
			}
			g1 := s.AllGather(x, 1) // [2, 6]
			got := s.Float32s(g1)
			want = []float32{0, 10, 20, 1, 11, 21, 1, 11, 21, 2, 12, 22}
			if fmt.Sprint(got) != fmt.Sprint(want) || fmt.Sprint(g1.Shape()) != "[2 6]" {
				return fmt.Errorf("all_gather axis 1 = %v %v, want %v", g1.Shape(), got, want)
			}
			// all_to_all: split rows (axis 0), concat columns (axis 1):
			// rank r gets row r of rank 0 then row r of rank 1 → [1, 6].
			a2a := s.AllToAll(x, 0, 1)
			got = s.Float32s(a2a)
			q := float32(g.Rank)
			want = []float32{q, q + 10, q + 20, q + 1, q + 11, q + 21}
			if fmt.Sprint(got) != fmt.Sprint(want) || fmt.Sprint(a2a.Shape()) != "[1 6]" {
				return fmt.Errorf("all_to_all = %v %v, want [1 6] %v", a2a.Shape(), got, want)
			}
			// Point to point: rank 0 sends, rank 1 receives.
			if g.Rank == 0 {
				s.Eval(s.Send(s.FromFloat32s([]float32{7, 8, 9}, 3), 1))
			} else {
				got = s.Float32s(s.Recv([]int{3}, Float32, 0))
				if fmt.Sprint(got) != "[7 8 9]" {
					return fmt.Errorf("recv = %v, want [7 8 9]", got)
				}
			}
			// Uneven split is refused.
			y := s.FromFloat32s([]float32{1, 2, 3}, 3)
			s.AllToAll(y, 0, 0)
			if e := s.ResetErr(); e == nil {
				return fmt.Errorf("all_to_all of 3 into 2 accepted")
			}
			return s.Err()
		})
		if err != nil {
			fail("%v", err)
		}
		fmt.Println("PEER OK")
	case "killed":
		if g.Rank == 1 {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
		time.Sleep(500 * time.Millisecond)
		err = Do(func(s *Scope) error {
			x := s.FromFloat32s(make([]float32, 1<<16), 1<<16)
			s.Eval(s.AllGather(x, 0))
			return s.Err()
		})
		if err != nil {
			fail("%v", err)
		}
		fmt.Println("PEER OK (no error after the peer died)")
	default:
		fail("unknown mode %q", mode)
	}
}
