package main

import (
	"fmt"
	"sort"
	"time"

	"github.com/of3c/of3c/internal/mlx"
)

// runIOBench times moving one f32 array of mib MiB to the device (FromBytes
// + Eval) and back (Bytes), reps times each, and prints the medians. On the
// GPU it shows what internal/mlx's transfer path costs (compare a run with
// OF3C_GPU_DIRECT_IO=0, MLX's managed-memory path).
func runIOBench(device string, mib, reps int) error {
	dev := mlx.Device{Type: mlx.CPU}
	if device == "gpu" {
		dev = mlx.Device{Type: mlx.GPU}
	}
	n := mib << 20
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i * 7)
	}
	var up, down []time.Duration
	err := mlx.Do(func(s *mlx.Scope) error {
		s.SetDefaultDevice(dev)
		for r := 0; r < reps; r++ {
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
			if len(got) != n || got[n-1] != data[n-1] || got[12345] != data[12345] {
				return fmt.Errorf("round trip changed the data")
			}
			up, down = append(up, t1.Sub(t0)), append(down, t3.Sub(t2))
			s.Free(a, b)
		}
		return nil
	})
	if err != nil {
		return err
	}
	med := func(ds []time.Duration) float64 {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return float64(ds[len(ds)/2]) / 1e6
	}
	mu, md := med(up), med(down)
	fmt.Printf("iobench %s %d MiB ×%d (gpu transfers: %s): in %.2f ms (%.1f GB/s), out %.2f ms (%.1f GB/s)\n",
		device, mib, reps, mlx.GPUTransfers(), mu, float64(n)/mu/1e6, md, float64(n)/md/1e6)
	return nil
}
