package driver

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/mlx"
	"github.com/of3c/of3c/internal/units"
	"github.com/of3c/of3c/passes"
)

// MemoryError is a refused run: the estimated peak does not fit.
type MemoryError struct{ Msg string }

func (e *MemoryError) Error() string { return e.Msg }

// CheckMemory estimates the peak memory of a run at dims with the graph's
// current chunking and refuses it when it exceeds the compile-time budget
// or the memory the machine has available, naming the numbers and, when the
// planner finds chunk sizes that would fit, the compile options to use.
// Graphs the planner cannot size (unknown ranks) are not refused.
func (s *Session) CheckMemory(dims map[string]int64) error {
	g, err := s.graphAt(dims)
	if err != nil {
		return err
	}
	return s.checkMemory(g, dims)
}

// graphAt is the graph a run at dims executes: the session's, or its lean
// plan for dims (lean.go).
func (s *Session) graphAt(dims map[string]int64) (*graph.Graph, error) {
	if !s.lean {
		return s.Graph, nil
	}
	lp, err := s.planFor(dims)
	if err != nil {
		return nil, err
	}
	return lp.g, nil
}

func (s *Session) checkMemory(g *graph.Graph, dims map[string]int64) error {
	limit, what := s.memoryLimit()
	if limit <= 0 {
		return nil
	}
	popts := passes.Options{Device: s.device}
	cur, err := passes.PlanMemory(g, dims, 0, popts)
	if se := (*passes.SizeError)(nil); errors.As(err, &se) {
		return &MemoryError{fmt.Sprintf("refusing to run at %s: %v", fmtDims(dims), se)}
	}
	if err != nil {
		return nil // cannot estimate: do not block the run
	}
	if cur.PeakBefore <= limit {
		return nil
	}
	msg := fmt.Sprintf("refusing to run at %s: estimated peak %s exceeds %s %s",
		fmtDims(dims), units.FormatBytes(cur.PeakBefore), what, units.FormatBytes(limit))
	fit, err := passes.PlanMemory(g, dims, limit, popts)
	if err != nil {
		msg += "; no chunking fits either (" + err.Error() + ")"
	} else {
		msg += fmt.Sprintf("; chunking brings it to %s: recompile with --memory-budget %dMiB --buckets %s",
			units.FormatBytes(fit.PeakAfter), limit>>20, bucketArg(dims))
		if len(fit.Chunks) > 0 {
			var at []string
			for k, v := range fit.Chunks[0].Attrs {
				at = append(at, fmt.Sprintf("%s=%d", k, v))
			}
			sort.Strings(at)
			msg += fmt.Sprintf(" (e.g. %s on %s)", strings.Join(at, " "), fit.Chunks[0].Node)
		}
	}
	return &MemoryError{msg}
}

// EstimatePeak is the planner's estimate of the peak memory of a run at
// dims with the graph's current chunking (0 when it cannot estimate).
func (s *Session) EstimatePeak(dims map[string]int64) int64 {
	g, err := s.graphAt(dims)
	if err != nil {
		return 0
	}
	p, err := passes.PlanMemory(g, dims, 0, passes.Options{Device: s.device})
	if err != nil {
		return 0
	}
	return p.PeakBefore
}

// memoryLimit is the smaller of the compile-time budget and the memory
// available now (Options.MemoryLimit replaces the latter).
func (s *Session) memoryLimit() (int64, string) {
	avail := s.opts.MemoryLimit
	what := "the memory limit"
	switch {
	case avail > 0:
	case s.device == "gpu":
		avail, what = GPUAvailable()
	default:
		avail = AvailableMemory()
		what = "the available memory"
	}
	if b := s.Manifest.Options.MemoryBudget; b > 0 && (avail <= 0 || b < avail) {
		return b, "the compile-time memory budget"
	}
	return avail, what
}

// GPUAvailable is the memory a GPU run may use: what the device has free
// (cuMemGetInfo, plus what this process's MLX holds already, active or
// cached, which it reuses), capped at MLX's memory limit (by default the
// device's recommended working set; asking for more than the card has can
// hang it, mlx #2821). 0 when neither is known.
func GPUAvailable() (int64, string) {
	if !hasGPU() {
		return 0, "no GPU"
	}
	var limit int64
	if m, err := mlx.Memory(); err == nil && m.Limit > 0 {
		limit = int64(m.Limit)
		if free, _, ok := mlx.GPUMemoryInfo(); ok {
			if f := free + int64(m.Active+m.Cache); f < limit {
				return f, "the GPU's free memory"
			}
		}
		return limit, "the GPU memory limit"
	}
	if free, _, ok := mlx.GPUMemoryInfo(); ok {
		return free, "the GPU's free memory"
	}
	return limit, "the GPU memory limit"
}

// hasGPU reports whether MLX lists a GPU device.
func hasGPU() bool {
	for _, d := range mlx.Devices() {
		if d.Type == mlx.GPU {
			return true
		}
	}
	return false
}

// AvailableMemory is what this process may still allocate, in bytes:
// MemAvailable from /proc/meminfo, less where the process's address-space
// limit (RLIMIT_AS, e.g. prlimit --as or ulimit -v) or its cgroup's memory
// limit leaves less. 0 when none can be read.
func AvailableMemory() int64 {
	avail := procField("/proc/meminfo", "MemAvailable:")
	lower := func(v int64) {
		if v >= 0 && (avail <= 0 || v < avail) {
			avail = max(v, 1)
		}
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_AS, &rl); err == nil && rl.Cur < math.MaxInt64 /* not RLIM_INFINITY */ {
		lower(int64(rl.Cur) - procField("/proc/self/status", "VmSize:"))
	}
	if lim, ok := cgroupValue("/sys/fs/cgroup/memory.max"); ok {
		cur, _ := cgroupValue("/sys/fs/cgroup/memory.current")
		lower(lim - cur)
	}
	return avail
}

// cgroupValue reads a cgroup v2 memory file ("max" is no limit).
func cgroupValue(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return v, err == nil
}

// PeakRSS is the process's peak resident set (VmHWM) in bytes, 0 when
// unknown.
func PeakRSS() int64 { return procField("/proc/self/status", "VmHWM:") }

func procField(path, key string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, key) {
			continue
		}
		fs := strings.Fields(line[len(key):])
		if len(fs) == 0 {
			return 0
		}
		v, err := strconv.ParseInt(fs[0], 10, 64)
		if err != nil {
			return 0
		}
		if len(fs) > 1 && strings.EqualFold(fs[1], "kB") {
			v *= 1024
		}
		return v
	}
	return 0
}

// bucketArg is the --buckets value that plans for dims (the largest size).
func bucketArg(d map[string]int64) string {
	var m int64
	for _, v := range d {
		m = max(m, v)
	}
	return strconv.FormatInt(m, 10)
}

func fmtDims(d map[string]int64) string {
	if len(d) == 0 {
		return "the given sizes"
	}
	return fmtDimsPlain(d)
}

func fmtDimsPlain(d map[string]int64) string {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, d[k]))
	}
	return strings.Join(parts, ",")
}
