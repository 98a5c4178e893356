//go:build !cgo || nomlx

package mlx

// Without MLX the public API still compiles; Do returns ErrUnavailable before
// any of these can run, so they only satisfy the type checker.

import "unsafe"

const available = false

type hnd = unsafe.Pointer

func libVersion() string                                  { return "unavailable" }
func libDeviceCount(DeviceType) (int, error)              { return 0, ErrUnavailable }
func libDeviceAvailable(DeviceType, int) (bool, error)    { return false, ErrUnavailable }
func libDefaultDevice() (Device, error)                   { return Device{}, ErrUnavailable }
func libSetDefaultDevice(Device) error                    { return ErrUnavailable }
func libDeviceName(Device) string                         { return "" }
func libBLAS() string                                     { return "" }
func libGPUMemInfo() (int64, int64, bool)                 { return 0, 0, false }
func libGPUIO() string                                    { return "" }
func libSetGPUIO(string) error                            { return ErrUnavailable }
func libGPUIOSelfTest(int, int, int, int) (int, error)    { return 0, ErrUnavailable }
func libGPUSoftmaxBias(hnd, []hnd) (hnd, error)           { return nil, ErrUnavailable }
func libGPULayerNorm(hnd, hnd, hnd, float32) (hnd, error) { return nil, ErrUnavailable }
func libGPUFlashAttention(hnd, hnd, hnd, []hnd, float32, Dtype, bool) (hnd, error) {
	return nil, ErrUnavailable
}
func libGPUBiasSum([]int, Dtype, bool, []hnd) (hnd, error)       { return nil, ErrUnavailable }
func libSynchronize() error                                      { return ErrUnavailable }
func libMemory() (MemoryStats, error)                            { return MemoryStats{}, ErrUnavailable }
func libResetPeakMemory() error                                  { return ErrUnavailable }
func libSetMemoryLimit(uint64) (uint64, error)                   { return 0, ErrUnavailable }
func libSetCacheLimit(uint64) (uint64, error)                    { return 0, ErrUnavailable }
func libClearCache() error                                       { return ErrUnavailable }
func libSetCompileEnabled(bool) error                            { return ErrUnavailable }
func libFree(hnd)                                                {}
func libCopyHandle(hnd) (hnd, error)                             { return nil, ErrUnavailable }
func libFromData(unsafe.Pointer, int, []int, Dtype) (hnd, error) { return nil, ErrUnavailable }
func libScalar(float64, Dtype) (hnd, error)                      { return nil, ErrUnavailable }
func libShape(hnd) []int                                         { return nil }
func libNdim(hnd) int                                            { return 0 }
func libDtype(hnd) Dtype                                         { return -1 }
func libSize(hnd) int                                            { return 0 }
func libRead(hnd, unsafe.Pointer, int) error                     { return ErrUnavailable }
func libEval([]hnd) error                                        { return ErrUnavailable }
func libUnary(int, hnd) (hnd, error)                             { return nil, ErrUnavailable }
func libBinary(int, hnd, hnd) (hnd, error)                       { return nil, ErrUnavailable }
func libReduce(int, hnd, []int, bool, bool) (hnd, error)         { return nil, ErrUnavailable }
func libWhere(hnd, hnd, hnd) (hnd, error)                        { return nil, ErrUnavailable }
func libContiguous(hnd) (hnd, error)                             { return nil, ErrUnavailable }
func libDepends(hnd, hnd) (hnd, error)                           { return nil, ErrUnavailable }
func libAsType(hnd, Dtype) (hnd, error)                          { return nil, ErrUnavailable }
func libClip(hnd, hnd, hnd) (hnd, error)                         { return nil, ErrUnavailable }
func libEinsum(string, []hnd) (hnd, error)                       { return nil, ErrUnavailable }
func libReshape(hnd, []int) (hnd, error)                         { return nil, ErrUnavailable }
func libTranspose(hnd, []int) (hnd, error)                       { return nil, ErrUnavailable }
func libBroadcastTo(hnd, []int) (hnd, error)                     { return nil, ErrUnavailable }
func libExpandDims(hnd, []int) (hnd, error)                      { return nil, ErrUnavailable }
func libSqueeze(hnd, []int, bool) (hnd, error)                   { return nil, ErrUnavailable }
func libSlice(hnd, []int, []int, []int) (hnd, error)             { return nil, ErrUnavailable }
func libSliceUpdate(hnd, hnd, []int, []int, []int) (hnd, error)  { return nil, ErrUnavailable }
func libConcatenate([]hnd, int) (hnd, error)                     { return nil, ErrUnavailable }
func libStack([]hnd, int) (hnd, error)                           { return nil, ErrUnavailable }
func libSplit(hnd, []int, int) ([]hnd, error)                    { return nil, ErrUnavailable }
func libTake(hnd, hnd, int) (hnd, error)                         { return nil, ErrUnavailable }
func libTakeAlongAxis(hnd, hnd, int) (hnd, error)                { return nil, ErrUnavailable }
func libPutAlongAxis(hnd, hnd, hnd, int) (hnd, error)            { return nil, ErrUnavailable }
func libGather(hnd, []hnd, []int, []int) (hnd, error)            { return nil, ErrUnavailable }
func libScatter(hnd, []hnd, hnd, []int, int) (hnd, error)        { return nil, ErrUnavailable }
func libPad(hnd, []int, []int, hnd) (hnd, error)                 { return nil, ErrUnavailable }
func libTile(hnd, []int) (hnd, error)                            { return nil, ErrUnavailable }
func libArange(float64, float64, float64, Dtype) (hnd, error)    { return nil, ErrUnavailable }
func libFull([]int, hnd, Dtype) (hnd, error)                     { return nil, ErrUnavailable }
func libCumsum(hnd, int, bool, bool) (hnd, error)                { return nil, ErrUnavailable }
func libTri(hnd, int, bool) (hnd, error)                         { return nil, ErrUnavailable }
func libSoftmax(hnd, []int, bool) (hnd, error)                   { return nil, ErrUnavailable }
func libLayerNorm(hnd, hnd, hnd, float32) (hnd, error)           { return nil, ErrUnavailable }
func libRMSNorm(hnd, hnd, float32) (hnd, error)                  { return nil, ErrUnavailable }
func libSDPA(hnd, hnd, hnd, float32, hnd) (hnd, error)           { return nil, ErrUnavailable }
func libClosureNew(uintptr) (hnd, error)                         { return nil, ErrUnavailable }
func libFunctionFree(hnd)                                        {}
func libCompile(hnd, bool) (hnd, error)                          { return nil, ErrUnavailable }
func libCall(hnd, []hnd) ([]hnd, error)                          { return nil, ErrUnavailable }
func libTakeDeadTokens() []uintptr                               { return nil }
func libExport(string, hnd, []hnd, bool) error                   { return ErrUnavailable }
func libImport(string) (hnd, error)                              { return nil, ErrUnavailable }
func libLoadSafetensors(string) ([]string, []hnd, map[string]string, error) {
	return nil, nil, nil, ErrUnavailable
}
func libSaveSafetensors(string, []string, []hnd, map[string]string) error { return ErrUnavailable }
