//go:build cgo && !nomlx

// Host <-> GPU transfers for MLX's CUDA backend without managed-memory page
// faults.
//
// MLX 0.32.4 (CUDA) builds arrays made from host data in managed memory
// (cudaMallocManaged) and kernel outputs in device memory (cudaMallocAsync).
// Left alone, the first kernel that reads an input migrates it page by page
// through GPU page faults, and reading an output on the host first copies it
// into fresh managed memory (Buffer::raw_ptr -> move_to_unified_memory),
// which the host then faults back in. On an H200 that cost 84 ms of a 120 ms
// PairformerBlock call at N = 384 (docs/GPU.md).
//
// Here, with the CUDA driver API that libmlx already loaded (libcuda.so.1,
// found with dlopen(RTLD_NOLOAD), never loaded by us):
//   - cuda_prefetch: after an input's bytes are copied into its managed
//     buffer, prefetch the buffer to the GPU in one bulk transfer;
//   - cuda_read: read an evaluated, contiguous device-memory array with one
//     cuMemcpyDtoH straight into the caller's buffer.
// Both report false when they do not apply (CPU build, CPU stream, another
// MLX version, non-contiguous array, any driver error) and the caller falls
// back to MLX's own path, so correctness never depends on them.
// OF3C_GPU_DIRECT_IO=0 switches them off (for A/B measurements).

#include "cuda_io.h"

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

namespace {

namespace mx = mlx::core;

// Mirrors mlx::core::cu::CudaBuffer of MLX 0.32.4
// (mlx/backend/cuda/allocator.h: data, size, device; device -1 = managed).
// The header itself needs cuda_runtime.h, which the CPU build lacks; the
// layout is only trusted when the linked MLX reports exactly this version.
struct CudaBufferMirror {
  void* data;
  size_t size;
  int device;
};
constexpr const char* kMirroredVersion = "0.32.4";

using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
using CUcontext = void*;
using CUstream = void*;
struct CUmemLocation {
  int type;  // CU_MEM_LOCATION_TYPE_DEVICE = 1
  int id;
};

struct Driver {
  bool ok = false;
  CUresult (*ctxGetCurrent)(CUcontext*) = nullptr;
  CUresult (*ctxSetCurrent)(CUcontext) = nullptr;
  CUresult (*deviceGet)(CUdevice*, int) = nullptr;
  CUresult (*primaryCtxRetain)(CUcontext*, CUdevice) = nullptr;
  CUresult (*memcpyDtoH)(void*, CUdeviceptr, size_t) = nullptr;
  CUresult (*prefetchV2)(CUdeviceptr, size_t, CUmemLocation, unsigned, CUstream) = nullptr;
  CUresult (*prefetchV1)(CUdeviceptr, size_t, CUdevice, CUstream) = nullptr;
  CUresult (*streamSynchronize)(CUstream) = nullptr;
};

const Driver& driver() {
  static Driver d;
  static std::once_flag once;
  std::call_once(once, [] {
    const char* env = std::getenv("OF3C_GPU_DIRECT_IO");
    if (env && std::string(env) == "0") return;
    if (mx::version() != kMirroredVersion) return;
    // Only a libcuda that MLX itself loaded: the CPU build never has one.
    void* h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    if (!h) return;
    auto sym = [h](const char* name) { return dlsym(h, name); };
    d.ctxGetCurrent = reinterpret_cast<decltype(d.ctxGetCurrent)>(sym("cuCtxGetCurrent"));
    d.ctxSetCurrent = reinterpret_cast<decltype(d.ctxSetCurrent)>(sym("cuCtxSetCurrent"));
    d.deviceGet = reinterpret_cast<decltype(d.deviceGet)>(sym("cuDeviceGet"));
    d.primaryCtxRetain = reinterpret_cast<decltype(d.primaryCtxRetain)>(sym("cuDevicePrimaryCtxRetain"));
    d.memcpyDtoH = reinterpret_cast<decltype(d.memcpyDtoH)>(sym("cuMemcpyDtoH_v2"));
    d.prefetchV2 = reinterpret_cast<decltype(d.prefetchV2)>(sym("cuMemPrefetchAsync_v2"));
    d.prefetchV1 = reinterpret_cast<decltype(d.prefetchV1)>(sym("cuMemPrefetchAsync"));
    d.streamSynchronize = reinterpret_cast<decltype(d.streamSynchronize)>(sym("cuStreamSynchronize"));
    d.ok = d.ctxGetCurrent && d.ctxSetCurrent && d.deviceGet && d.primaryCtxRetain && d.memcpyDtoH &&
           (d.prefetchV2 || d.prefetchV1) && d.streamSynchronize;
  });
  return d;
}

// ensureContext makes the device's primary context (the one the CUDA
// runtime, hence MLX, uses) current on this thread.
bool ensureContext(const Driver& d, CUdevice* dev) {
  if (d.deviceGet(dev, 0) != 0) return false;
  CUcontext ctx = nullptr;
  if (d.ctxGetCurrent(&ctx) == 0 && ctx != nullptr) return true;
  if (d.primaryCtxRetain(&ctx, *dev) != 0 || ctx == nullptr) return false;
  return d.ctxSetCurrent(ctx) == 0;
}

bool onGPU() { return mx::default_device() == mx::Device::gpu; }

}  // namespace

namespace mlxs {

bool cuda_prefetch(mx::array& a) {
  const Driver& d = driver();
  if (!d.ok || !onGPU() || a.nbytes() < (1 << 20)) return false;
  auto* cb = static_cast<CudaBufferMirror*>(a.buffer().ptr());
  if (cb == nullptr || cb->device != -1 || cb->data == nullptr || cb->size < a.nbytes()) return false;
  CUdevice dev;
  if (!ensureContext(d, &dev)) return false;
  auto ptr = reinterpret_cast<CUdeviceptr>(cb->data);
  CUresult r = d.prefetchV2 ? d.prefetchV2(ptr, cb->size, CUmemLocation{1, dev}, 0, nullptr)
                            : d.prefetchV1(ptr, cb->size, dev, nullptr);
  if (r != 0) return false;
  return d.streamSynchronize(nullptr) == 0;
}

bool cuda_read(mx::array& a, void* dst, size_t nbytes) {
  const Driver& d = driver();
  if (!d.ok || nbytes == 0 || a.nbytes() != nbytes) return false;
  if (!a.flags().row_contiguous || a.data_size() != a.size()) return false;
  auto* cb = static_cast<CudaBufferMirror*>(a.buffer().ptr());
  if (cb == nullptr || cb->device < 0 || cb->data == nullptr) return false;
  if (a.offset() < 0 || static_cast<size_t>(a.offset()) + nbytes > cb->size) return false;
  CUdevice dev;
  if (!ensureContext(d, &dev)) return false;
  auto src = reinterpret_cast<CUdeviceptr>(static_cast<char*>(cb->data) + a.offset());
  return d.memcpyDtoH(dst, src, nbytes) == 0;
}

}  // namespace mlxs
