// Package hostile runs the of3c binary on hostile and careless input: each
// case gives the command line, the exit status and a fragment of the
// message it must print, and an address-space cap (prlimit --as, or the
// shell's ulimit -v) the process runs under, so that an allocation sized by
// the input instead of checked against it fails the case (Go reports
// "fatal error: out of memory", a non-1 status). Every case also must not
// panic, crash or hang (a time limit kills it), and an error is one line.
//
// The cases come from issue 12: npz bombs and sparse .npy files, /dev/zero
// and FIFOs as models, external data and inputs, bucket and --repeat
// overflows, 100k-node graphs, -o naming an input or a FIFO, artifacts
// the loader would reject, unknown IR versions and opsets, repeated
// --input, interrupted writes.
package hostile

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/of3c/of3c/artifact"
	"github.com/of3c/of3c/internal/mlx"
)

const (
	MiB = int64(1) << 20
	GiB = int64(1) << 30
)

// bin is the of3c binary built for the suite (TestMain), or the one
// OF3C_HOSTILE_BIN names (to run the suite against another build).
var bin string

func TestMain(m *testing.M) {
	if b := os.Getenv("OF3C_HOSTILE_BIN"); b != "" {
		bin = b
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "of3c-hostile-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "of3c")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/of3c/of3c/cmd/of3c")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building of3c:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one run of the binary.
type result struct {
	code           int // exit status; -1 when killed by a signal
	stdout, stderr string
	timedOut       bool
}

// run runs of3c with args in dir under an address-space cap of as bytes.
func run(t *testing.T, dir string, as int64, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := capped(ctx, as, args)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "MALLOC_ARENA_MAX=2") // fewer 64 MiB malloc arenas per thread
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	r := result{stdout: so.String(), stderr: se.String(), timedOut: ctx.Err() != nil}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("of3c %v: %v", args, err)
	}
	return r
}

// capped is the command that runs of3c with args under RLIMIT_AS = as.
func capped(ctx context.Context, as int64, args []string) *exec.Cmd {
	if p, err := exec.LookPath("prlimit"); err == nil {
		return exec.CommandContext(ctx, p, append([]string{fmt.Sprintf("--as=%d", as), "--", bin}, args...)...)
	}
	sh := fmt.Sprintf(`ulimit -v %d && exec "$0" "$@"`, as/1024)
	return exec.CommandContext(ctx, "/bin/sh", append([]string{"-c", sh, bin}, args...)...)
}

// check asserts the exit status, a fragment of stderr (exit ≠ 0) or stdout
// (exit 0), and the rules every case shares.
func check(t *testing.T, r result, code int, frag string) {
	t.Helper()
	if r.timedOut {
		t.Fatalf("hung (killed after the time limit); stderr: %s", r.stderr)
	}
	for _, bad := range []string{"panic:", "fatal error", "goroutine ", "SIGSEGV", "runtime error", "terminate called"} {
		if strings.Contains(r.stderr, bad) {
			t.Fatalf("crashed (%q in stderr):\n%s", bad, clip(r.stderr))
		}
	}
	if r.code != code {
		t.Fatalf("exit status %d, want %d; stderr: %s", r.code, code, clip(r.stderr))
	}
	out := r.stdout
	if code != 0 {
		out = r.stderr
		// Progress lines ("of3c: loading …") aside, the error is one line.
		var lines []string
		for _, l := range strings.Split(strings.TrimRight(r.stderr, "\n"), "\n") {
			if !strings.HasPrefix(l, "of3c: ") {
				lines = append(lines, l)
			}
		}
		if code == 1 && len(lines) != 1 {
			t.Errorf("error is not one line:\n%s", r.stderr)
		}
	}
	if !strings.Contains(out, frag) {
		t.Errorf("output does not mention %q:\n%s", frag, clip(out))
	}
}

func clip(s string) string {
	if len(s) > 2000 {
		return s[:2000] + "…"
	}
	return s
}

func sha(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// leftovers lists hidden temporary files of3c may leave in dir.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out
}

// Address-space caps. The binary reserves about 2 GiB of address space
// before it allocates anything (MLX, BLAS and Go runtime reservations), so
// the cap is 3 GiB; the inputs below make the unchecked code allocate
// 2.7 GiB or more on top of that.
const (
	capSmall = 3 * GiB
	capDeep  = 5 * GiB
)

// TestHostileInputs: inputs whose sizes are untrusted are refused from
// their headers, before their data is allocated.
func TestHostileInputs(t *testing.T) {
	dir := t.TempDir()
	vecModel(t, filepath.Join(dir, "vec.onnx"), "f32[N]")
	vecModel(t, filepath.Join(dir, "fixed.onnx"), "f32[4]")
	check(t, run(t, dir, capSmall, "compile", "vec.onnx", "-o", "vec.of3"), 0, "compiled")
	check(t, run(t, dir, capSmall, "compile", "vec.onnx", "-o", "budget.of3", "--buckets", "16", "--memory-budget", "4MiB"), 0, "compiled")
	check(t, run(t, dir, capSmall, "compile", "fixed.onnx", "-o", "fixed.of3"), 0, "compiled")
	npzBomb(t, filepath.Join(dir, "bomb.npz"), 256<<20)   // 1 GiB of zeros in ~1 MiB
	sparseNPY(t, filepath.Join(dir, "sparse.npy"), 1<<30) // 4 GiB, all hole
	mkfifo(t, filepath.Join(dir, "fifo.npy"))
	writeNPY(t, filepath.Join(dir, "x12.npy"), newF32(12))
	if st, _ := os.Stat(filepath.Join(dir, "bomb.npz")); st.Size() > 16*MiB {
		t.Fatalf("bomb.npz is %d bytes", st.Size())
	}

	cases := []struct {
		name string
		args []string
		code int
		frag string
	}{
		// The member's header says f32[268435456]; the model wants f32[4].
		{"npz bomb, static input", []string{"run", "fixed.of3", "--inputs", "bomb.npz"}, 1, "the model wants"},
		// N is symbolic: the budget (4 MiB) refuses the 1 GiB member.
		{"npz bomb, budget", []string{"run", "budget.of3", "--inputs", "bomb.npz"}, 1, "compile-time memory budget"},
		// A 4 GiB sparse .npy: refused by its header, not read in full.
		{"sparse npy, budget", []string{"run", "budget.of3", "--input", "x=sparse.npy"}, 1, "compile-time memory budget"},
		{"sparse npy, static input", []string{"run", "fixed.of3", "--input", "x=sparse.npy"}, 1, "the model wants"},
		{"fifo input", []string{"run", "vec.of3", "--input", "x=fifo.npy"}, 1, "not a regular file"},
		{"fifo model", []string{"run", "fifo.npy", "--input", "x=x12.npy"}, 1, "not a regular file"},
		{"compile /dev/zero", []string{"compile", "/dev/zero", "-o", "zero.of3"}, 1, "not a regular file"},
		{"inspect /dev/zero", []string{"inspect", "/dev/zero"}, 1, "not a regular file"},
		// Padding to a bucket is checked before it allocates.
		// Padded to 2^30, x would take 4 GiB: refused before padding.
		{"bucket 2^30 over budget", []string{"run", "budget.of3", "--input", "x=x12.npy", "--buckets", "1073741824"}, 1, "refusing to run at N=1073741824"},
		{"bucket 2^30", []string{"run", "vec.of3", "--input", "x=x12.npy", "--buckets", "1073741824", "--device", "ref"}, 1, "refusing to run at N=1073741824"},
		{"bucket 2^63-1", []string{"run", "vec.of3", "--input", "x=x12.npy", "--buckets", "9223372036854775807"}, 1, "refusing to run"},
		{"bucket 2^62 with budget", []string{"compile", "vec.onnx", "-o", "b62.of3", "--buckets", "4611686018427387904", "--memory-budget", "1GiB"}, 1, "beyond what any run can hold"},
		{"inspect N=2^62", []string{"inspect", "vec.onnx", "--memory", "N=4611686018427387904", "--budget", "1GiB"}, 1, "beyond what any run can hold"},
		{"inspect --memory without --budget", []string{"inspect", "vec.onnx", "--memory", "N=1024"}, 0, "budget none"},
		{"repeat 2^63-1", []string{"run", "vec.of3", "--input", "x=x12.npy", "--repeat", "9223372036854775807"}, 2, "--repeat"},
		{"repeated --input", []string{"run", "vec.of3", "--input", "x=x12.npy", "--input", "x=x12.npy"}, 2, "--input x given twice"},
		{"iterations 2^63-1", []string{"run", "vec.of3", "--input", "x=x12.npy", "--iterations", "9223372036854775807"}, 2, "--iterations"},
		// Generated inputs are held to the same limits as read ones.
		{"--shapes N=2^40", []string{"run", "vec.of3", "--shapes", "N=1099511627776"}, 1, "more than the available memory"},
		{"--shapes over budget", []string{"run", "budget.of3", "--shapes", "N=268435456"}, 1, "compile-time memory budget"},
		{"--report the model", []string{"run", "vec.of3", "--input", "x=x12.npy", "--report", "vec.of3"}, 1, "is the input vec.of3"},
		{"--report the -o", []string{"run", "vec.of3", "--input", "x=x12.npy", "-o", "o.npz", "--report", "o.npz"}, 1, "is the input o.npz"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			check(t, run(t, dir, capSmall, c.args...), c.code, c.frag)
		})
	}
	if l := leftovers(t, dir); len(l) > 0 {
		t.Errorf("temporary files left: %v", l)
	}
}

// TestHostileModels: models that are deep, wide, from the future, or point
// at things that are not files.
func TestHostileModels(t *testing.T) {
	dir := t.TempDir()
	chainModel(t, filepath.Join(dir, "relu100k.onnx"), "Relu", 100_000)
	chainModel(t, filepath.Join(dir, "id100k.onnx"), "Identity", 100_000)
	hugeReshapeModel(t, filepath.Join(dir, "reshape.onnx"))
	ext := filepath.Join(dir, "ext")
	if err := os.Mkdir(ext, 0o755); err != nil {
		t.Fatal(err)
	}
	externalModel(t, ext, "fifo.onnx", "fifo.bin", 2)
	mkfifo(t, filepath.Join(ext, "fifo.bin"))
	// 8 GiB of weights, all hole: more than the process may allocate.
	externalModel(t, ext, "sparse.onnx", "sparse.bin", 1<<31)
	if err := os.WriteFile(filepath.Join(ext, "sparse.bin"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(ext, "sparse.bin"), 4<<31); err != nil {
		t.Fatal(err)
	}
	externalModel(t, ext, "small.onnx", "small.bin", 2)
	if err := os.WriteFile(filepath.Join(ext, "small.bin"), make([]byte, 8), 0o644); err != nil {
		t.Fatal(err)
	}
	vecModel(t, filepath.Join(dir, "vec.onnx"), "f32[N]")
	writeFutureModels(t, dir)
	writeNPY(t, filepath.Join(dir, "x.npy"), newF32(4, 1, -2, 3, -4))

	t.Run("100k Relu chain compiles and runs", func(t *testing.T) {
		check(t, run(t, dir, capDeep, "compile", "relu100k.onnx", "-o", "relu100k.of3"), 0, "compiled")
		args := []string{"run", "relu100k.of3", "--input", "x=x.npy"}
		if !mlx.Available() { // a build without MLX runs the reference executor
			args = append(args, "--device", "ref")
		}
		check(t, run(t, dir, capDeep, args...), 0, "min 0 max 3 mean 1")
	})
	t.Run("100k Identity chain", func(t *testing.T) {
		check(t, run(t, dir, capDeep, "compile", "id100k.onnx", "-o", "id100k.of3"), 0, "identity×99999")
	})
	cases := []struct {
		name string
		args []string
		code int
		frag string
	}{
		{"reshape to 2^80 elements", []string{"compile", "reshape.onnx", "-o", "reshape.of3"}, 1, "would not load"},
		{"fifo external data", []string{"compile", "ext/fifo.onnx", "-o", "ext.of3"}, 1, "not a regular file"},
		{"sparse 8 GiB external data", []string{"compile", "ext/sparse.onnx", "-o", "ext.of3"}, 1, "bytes available"},
		{"compile -o the external data", []string{"compile", "ext/small.onnx", "-o", "ext/small.bin"}, 1, "is the input ext/small.bin"},
		{"opset 99", []string{"compile", "opset99.onnx", "-o", "o.of3"}, 1, "opset 99"},
		{"IR version 99", []string{"compile", "ir99.onnx", "-o", "o.of3"}, 1, "IR version 99"},
		{"IR version 0", []string{"inspect", "ir0.onnx"}, 1, "IR version 0"},
		{"IR version -5", []string{"inspect", "irm5.onnx"}, 1, "IR version -5"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			check(t, run(t, dir, capSmall, c.args...), c.code, c.frag)
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "reshape.of3")); err == nil {
		t.Error("an artifact the loader rejects was written")
	}
	if b, err := os.ReadFile(filepath.Join(ext, "small.bin")); err != nil || !bytes.Equal(b, make([]byte, 8)) {
		t.Errorf("the external data file was overwritten (%d bytes, %v)", len(b), err)
	}
	if l := leftovers(t, dir); len(l) > 0 {
		t.Errorf("temporary files left: %v", l)
	}
}

// TestOutputSafety: -o never destroys an input or a special file, and is
// checked before any work.
func TestOutputSafety(t *testing.T) {
	dir := t.TempDir()
	vecModel(t, filepath.Join(dir, "vec.onnx"), "f32[N]")
	writeNPY(t, filepath.Join(dir, "x.npy"), newF32(3, 1, 2, 3))
	check(t, run(t, dir, capSmall, "compile", "vec.onnx", "-o", "vec.of3"), 0, "compiled")
	if err := os.Link(filepath.Join(dir, "vec.onnx"), filepath.Join(dir, "hardlink.onnx")); err != nil {
		t.Fatal(err)
	}
	mkfifo(t, filepath.Join(dir, "fifo.of3"))
	srcSum, artSum := sha(t, filepath.Join(dir, "vec.onnx")), sha(t, filepath.Join(dir, "vec.of3"))

	cases := []struct {
		name string
		args []string
		frag string
	}{
		{"compile -o the model", []string{"compile", "vec.onnx", "-o", "vec.onnx"}, "is the input vec.onnx"},
		{"compile -o a hard link to the model", []string{"compile", "vec.onnx", "-o", "hardlink.onnx"}, "is the input vec.onnx"},
		{"compile -o ./model", []string{"compile", "vec.onnx", "-o", "./vec.onnx"}, "is the input"},
		{"compile -o a FIFO", []string{"compile", "vec.onnx", "-o", "fifo.of3"}, "not a regular file"},
		{"compile -o a folder", []string{"compile", "vec.onnx", "-o", "."}, "is a folder"},
		// Checked before the model is read: /dev/zero would be refused
		// otherwise, with another message.
		{"compile -o in a missing folder", []string{"compile", "/dev/zero", "-o", "nope/m.of3"}, "cannot write in nope"},
		{"run -o the artifact", []string{"run", "vec.of3", "--input", "x=x.npy", "-o", "vec.of3"}, "is the input vec.of3"},
		{"run -o the input", []string{"run", "vec.of3", "--input", "x=x.npy", "-o", "x.npy"}, "is the input x.npy"},
		{"run -o a FIFO", []string{"run", "vec.of3", "--input", "x=x.npy", "-o", "fifo.of3"}, "not a regular file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			check(t, run(t, dir, capSmall, c.args...), 1, c.frag)
		})
	}
	if sha(t, filepath.Join(dir, "vec.onnx")) != srcSum || sha(t, filepath.Join(dir, "vec.of3")) != artSum {
		t.Error("an input was modified")
	}
	if st, err := os.Lstat(filepath.Join(dir, "fifo.of3")); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the FIFO was replaced: %v %v", st, err)
	}
	if l := leftovers(t, dir); len(l) > 0 {
		t.Errorf("temporary files left: %v", l)
	}
}

// TestInterruptedCompile: SIGINT while the artifact is being written
// leaves neither the artifact nor its temporary file.
func TestInterruptedCompile(t *testing.T) {
	dir := t.TempDir()
	bigWeightsModel(t, filepath.Join(dir, "big.onnx"), 64<<20) // 256 MiB of weights
	cmd := capped(context.Background(), capDeep, []string{"compile", "big.onnx", "-o", "big.of3"})
	cmd.Dir = dir
	var se bytes.Buffer
	cmd.Stderr = &se
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Wait for the temporary file, freeze the process, signal it, let it go.
	var err error
	caught := false
poll:
	for {
		select {
		case err = <-done:
			break poll
		default:
		}
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".big.of3.tmp-") {
				// prlimit execs of3c in place: cmd.Process is of3c.
				cmd.Process.Signal(syscall.SIGSTOP)
				cmd.Process.Signal(syscall.SIGINT)
				cmd.Process.Signal(syscall.SIGCONT)
				caught = true
				err = <-done
				break poll
			}
		}
		time.Sleep(time.Millisecond)
	}
	if !caught {
		t.Skipf("the compile finished before its temporary file was seen (err %v); nothing to interrupt", err)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Errorf("exit %v, want status 130; stderr: %s", err, se.String())
	}
	if l := leftovers(t, dir); len(l) > 0 {
		t.Errorf("temporary files left: %v", l)
	}
	if _, err := os.Stat(filepath.Join(dir, "big.of3")); err == nil {
		// Only if the rename happened between seeing the temporary file
		// and stopping the process: then the artifact must be whole.
		t.Log("the write finished before the signal")
		if _, err := artifact.Read(filepath.Join(dir, "big.of3")); err != nil {
			t.Errorf("a partial artifact was left: %v", err)
		}
	}
}
