package main

import (
	"fmt"
	"io"
	"runtime"

	"github.com/of3c/of3c/driver"
	"github.com/of3c/of3c/internal/mlx"
)

func cmdVersion(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("version", stderr, "version")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "of3c %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if !mlx.Available() {
		fmt.Fprintln(stdout, "mlx: unavailable (built without cgo or with -tags nomlx); only --device ref can run models")
		return nil
	}
	fmt.Fprintf(stdout, "mlx %s\n", mlx.Version())
	fmt.Fprintf(stdout, "blas %s\n", mlx.BLAS())
	devs := mlx.Devices()
	if len(devs) == 0 {
		fmt.Fprintln(stdout, "devices: none reported")
	}
	gpu := false
	for _, d := range devs {
		fmt.Fprintf(stdout, "device %s\n", d)
		gpu = gpu || d.Type == mlx.GPU
	}
	if !gpu {
		fmt.Fprintln(stdout, "gpu: none visible (MLX's CPU build, or no NVIDIA GPU and driver); --device gpu needs an NVIDIA GPU and `"+driver.SetupGPUCommand+"`")
	}
	if gpu {
		fmt.Fprintf(stdout, "gpu transfers %s\n", mlx.GPUTransfers())
		if f := mlx.CUDAHomeFix(); f != "" {
			fmt.Fprintf(stdout, "gpu jit %s\n", f)
		}
	}
	return nil
}
