package mlx

import (
	"fmt"
	"path/filepath"
	"strings"
)

// DeviceType numbers follow mlx::core::Device::DeviceType.
type DeviceType int

const (
	CPU DeviceType = 0
	GPU DeviceType = 1
)

func (t DeviceType) String() string {
	switch t {
	case CPU:
		return "cpu"
	case GPU:
		return "gpu"
	}
	return fmt.Sprintf("DeviceType(%d)", int(t))
}

// Device is an MLX device; Name is what MLX reports (may be empty on CPU).
type Device struct {
	Type  DeviceType
	Index int
	Name  string
}

func (d Device) String() string {
	s := fmt.Sprintf("%v:%d", d.Type, d.Index)
	if d.Name != "" {
		s += " (" + d.Name + ")"
	}
	return s
}

// MemoryStats are MLX allocator counters in bytes.
type MemoryStats struct {
	Active, Peak, Cache, Limit uint64
}

// Version is the MLX library version this binary is linked against, or
// "unavailable".
func Version() string {
	if !available {
		return "unavailable"
	}
	return libVersion()
}

// Devices lists the devices MLX reports as available (nil without MLX).
func Devices() []Device {
	var out []Device
	_ = Do(func(s *Scope) error {
		out = s.Devices()
		return nil
	})
	return out
}

// Devices lists the available devices.
func (s *Scope) Devices() []Device {
	var out []Device
	for _, t := range []DeviceType{CPU, GPU} {
		n, err := libDeviceCount(t)
		if err != nil {
			continue
		}
		for i := 0; i < n; i++ {
			if ok, err := libDeviceAvailable(t, i); err == nil && ok {
				d := Device{Type: t, Index: i}
				d.Name = libDeviceName(d)
				out = append(out, d)
			}
		}
	}
	return out
}

// BLAS is the file of the BLAS library MLX's CPU GEMM calls in this process
// (the wheel's bundled reference BLAS unless OpenBLAS was interposed; see
// docs/notes/PERFORMANCE.md), or "" when unknown.
func BLAS() string { return libBLAS() }

// GPUTransfers says how inputs reach and outputs leave the GPU with MLX's
// CUDA backend (internal/mlx/cuda_io.cc): the transfer mode and its details,
// "staged (...)", "direct (...)", "registered (...)" or "managed: ...", or
// "off: reason" (MLX's managed-memory path); "" without MLX.
func GPUTransfers() string { return libGPUIO() }

// GPUTransferModes are the transfer modes SetGPUTransfers accepts, as
// OF3C_GPU_IO_MODE does (docs/configuration.md): MLX's managed memory, one
// pageable cuMemcpy, pinned double-buffered staging, the caller's buffer
// registered (pinned in place).
var GPUTransferModes = []string{"managed", "direct", "staged", "registered"}

// SetGPUTransfers switches the transfer mode for the whole process (for
// benchmarks: of3bench -iobench compares the modes in one run). It changes
// nothing where GPUTransfers says "off".
func SetGPUTransfers(mode string) error { return libSetGPUIO(mode) }

// Info is a one-line description for `of3c version`.
func Info() string {
	if !available {
		return "MLX unavailable (built without cgo or with -tags nomlx)"
	}
	ds := Devices()
	names := make([]string, len(ds))
	for i, d := range ds {
		names[i] = d.String()
	}
	s := fmt.Sprintf("MLX %s, devices: %s", Version(), strings.Join(names, ", "))
	if b := BLAS(); b != "" {
		s += ", BLAS: " + filepath.Base(b)
	}
	return s
}

// DefaultDevice is the device new ops run on.
func (s *Scope) DefaultDevice() Device {
	d, err := libDefaultDevice()
	if err != nil {
		s.failf("default_device", err)
	}
	return d
}

// SetDefaultDevice changes the device for ops of later Do calls too (MLX
// keeps it process-wide).
func (s *Scope) SetDefaultDevice(d Device) {
	if !s.ok("set_default_device") {
		return
	}
	if err := libSetDefaultDevice(d); err != nil {
		s.failf("set_default_device", err)
	}
}

// Synchronize waits for all work queued on the default stream.
func (s *Scope) Synchronize() {
	if err := libSynchronize(); err != nil {
		s.failf("synchronize", err)
	}
}

// SetDefaultDevice runs Scope.SetDefaultDevice on the executor.
func SetDefaultDevice(d Device) error {
	return Do(func(s *Scope) error { s.SetDefaultDevice(d); return nil })
}

// Memory returns MLX's allocator counters.
func Memory() (MemoryStats, error) {
	var m MemoryStats
	err := Do(func(s *Scope) error {
		var err error
		m, err = libMemory()
		return err
	})
	return m, err
}

// ResetPeakMemory zeroes the peak counter, on the executor (inside Do).
func (s *Scope) ResetPeakMemory() {
	if err := libResetPeakMemory(); err != nil {
		s.failf("reset peak memory", err)
	}
}

// ResetPeakMemory zeroes the peak counter.
func ResetPeakMemory() error {
	return Do(func(*Scope) error { return libResetPeakMemory() })
}

// SetMemoryLimit sets MLX's memory limit and returns the previous one.
func SetMemoryLimit(n uint64) (uint64, error) {
	var prev uint64
	err := Do(func(*Scope) error {
		var err error
		prev, err = libSetMemoryLimit(n)
		return err
	})
	return prev, err
}

// SetCacheLimit sets the buffer-cache limit (0 disables the cache) and
// returns the previous one.
func SetCacheLimit(n uint64) (uint64, error) {
	var prev uint64
	err := Do(func(*Scope) error {
		var err error
		prev, err = libSetCacheLimit(n)
		return err
	})
	return prev, err
}

// ClearCache returns cached buffers to the system.
func ClearCache() error { return Do(func(*Scope) error { return libClearCache() }) }

// SetCompileEnabled turns mx::compile on or off process-wide (off makes
// compiled functions run their graphs unfused).
func SetCompileEnabled(on bool) error {
	return Do(func(*Scope) error { return libSetCompileEnabled(on) })
}

// Memory returns MLX's allocator counters (for use inside Do).
func (s *Scope) Memory() MemoryStats {
	m, err := libMemory()
	if err != nil {
		s.failf("memory", err)
	}
	return m
}

// ClearCache returns cached buffers to the system (for use inside Do).
func (s *Scope) ClearCache() {
	if err := libClearCache(); err != nil {
		s.failf("clear_cache", err)
	}
}

// GPUMemoryInfo is the free and total memory of GPU 0 as the CUDA driver
// reports them (cuMemGetInfo; what other processes hold is not free); ok
// false where there is no CUDA driver (the CPU build, or no MLX at all).
func GPUMemoryInfo() (free, total int64, ok bool) {
	if !available {
		return 0, 0, false
	}
	return libGPUMemInfo()
}
