package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/of3c/of3c/internal/mlx"
)

// runIOBench times moving one f32 array of each size in mibs (MiB) to the
// device (FromBytes + Eval) and back (Bytes), reps times each, and prints the
// medians. On the GPU it does so once per transfer mode in modes
// (internal/mlx/cuda_io.cc, OF3C_GPU_IO_MODE: managed = MLX's managed-memory
// path, direct = one pageable cuMemcpy, staged = pinned double-buffered
// staging, registered = the caller's buffer pinned in place), in this one
// process, and ends with a markdown table. Every round trip is compared
// byte for byte; a mode that changes the data is reported and the run
// fails after the table. The first repetition of a mode pays its one-time
// setup (pinned buffers, threads); the median leaves it out.
func runIOBench(device string, mibs []int64, modes []string, reps int) error {
	dev := mlx.Device{Type: mlx.CPU}
	if device == "gpu" {
		dev = mlx.Device{Type: mlx.GPU}
	} else {
		modes = []string{""} // the CPU has no transfer modes
	}
	if len(mibs) == 0 || reps < 1 {
		return fmt.Errorf("iobench: need sizes in MiB and at least one repetition")
	}
	type row struct {
		mib          int64
		mode, status string
		in, out      float64 // median ms
		bad          bool
	}
	var rows []row
	var failed []string
	for _, mib := range mibs {
		n := int(mib << 20)
		// Exact under x + 0 (no NaN payloads, no -0), so the kernel output
		// must equal the input bit for bit.
		data := make([]byte, n)
		for i := 0; i+4 <= n; i += 4 {
			binary.LittleEndian.PutUint32(data[i:], math.Float32bits(float32(i>>2&4095)+0.5))
		}
		for _, mode := range modes {
			if mode != "" {
				if err := mlx.SetGPUTransfers(mode); err != nil {
					return err
				}
			}
			r := row{mib: mib, mode: mode}
			var up, down []time.Duration
			err := mlx.Do(func(s *mlx.Scope) error {
				s.SetDefaultDevice(dev)
				for k := 0; k < reps; k++ {
					t0 := time.Now()
					a := s.FromBytes(data, mlx.Float32, n/4)
					s.Eval(a)
					t1 := time.Now()
					b := s.Add(a, s.Scalar(0, mlx.Float32)) // a kernel output, as a model's outputs are
					s.Eval(b)
					t2 := time.Now()
					got := s.Bytes(b)
					t3 := time.Now()
					if err := s.Err(); err != nil {
						return err
					}
					if !bytes.Equal(got, data) {
						r.bad = true
					}
					up, down = append(up, t1.Sub(t0)), append(down, t3.Sub(t2))
					s.Free(a, b)
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("iobench %d MiB, mode %q: %w", mib, mode, err)
			}
			// Read after the run: a mode that hit a driver error says so here.
			r.status = mlx.GPUTransfers()
			r.in, r.out = medianMS(up), medianMS(down)
			if r.bad {
				failed = append(failed, fmt.Sprintf("%d MiB %s", mib, mode))
			}
			rows = append(rows, r)
			fmt.Printf("iobench %s %d MiB ×%d mode %s (gpu transfers: %s): in %.2f ms (%.1f GB/s), out %.2f ms (%.1f GB/s)%s\n",
				device, mib, reps, or(mode, "-"), r.status, r.in, gbs(n, r.in), r.out, gbs(n, r.out), map[bool]string{true: " DATA CHANGED"}[r.bad])
		}
	}
	fmt.Printf("\n| MiB | mode | in ms | in GB/s | out ms | out GB/s |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		n := int(r.mib << 20)
		mode := or(r.mode, device)
		if r.mode != "" && !strings.HasPrefix(r.status, r.mode) {
			mode += " (ran: " + strings.SplitN(r.status, " ", 2)[0] + ")" // off, or direct after a driver error
		}
		if r.bad {
			mode += " DATA CHANGED"
		}
		fmt.Printf("| %d | %s | %.2f | %.1f | %.2f | %.1f |\n", r.mib, mode, r.in, gbs(n, r.in), r.out, gbs(n, r.out))
	}
	if len(failed) > 0 {
		return fmt.Errorf("round trip changed the data: %s", strings.Join(failed, ", "))
	}
	return nil
}

func medianMS(ds []time.Duration) float64 {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return float64(ds[len(ds)/2]) / 1e6
}

func gbs(n int, ms float64) float64 { return float64(n) / ms / 1e6 }

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
