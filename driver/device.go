package driver

import (
	"fmt"

	"github.com/of3c/of3c/internal/mlx"
)

// SetupGPUCommand is the set-up command that installs MLX's CUDA build.
const SetupGPUCommand = "make setup MLX=cuda"

// DeviceError: the device asked for is not there. Hint says what to do.
type DeviceError struct {
	Device string
	Reason string
	Hint   string
}

func (e *DeviceError) Error() string {
	return fmt.Sprintf("device %s is not available: %s; %s", e.Device, e.Reason, e.Hint)
}

// HasGPU reports whether MLX sees a GPU.
func HasGPU() bool {
	if !mlx.Available() {
		return false
	}
	for _, d := range mlx.Devices() {
		if d.Type == mlx.GPU {
			return true
		}
	}
	return false
}

// CheckDevice says, before anything is built, whether device can run here,
// with the next step when it cannot.
func CheckDevice(device string) error {
	switch device {
	case "ref":
		return nil
	case "cpu", "gpu":
	default:
		return fmt.Errorf("unknown device %q (want one of cpu, gpu, ref)", device)
	}
	if !mlx.Available() {
		return &DeviceError{Device: device, Reason: "this of3c was built without MLX (no cgo, or -tags nomlx)",
			Hint: "run with --device ref, or build with MLX (make build)"}
	}
	if device == "gpu" && !HasGPU() {
		return &DeviceError{Device: "gpu", Reason: fmt.Sprintf("MLX %s sees no GPU (devices: %v)", mlx.Version(), mlx.Devices()),
			Hint: "run with --device cpu, or on an NVIDIA machine install MLX's CUDA build with `" + SetupGPUCommand + "`"}
	}
	return nil
}
