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
// PairformerBlock call at N = 384 (docs/notes/GPU.md).
//
// Here, with the CUDA driver API that libmlx already loaded (libcuda.so.1,
// found with dlopen(RTLD_NOLOAD), never loaded by us):
//   - cuda_upload: let MLX allocate the array in device memory (an evaluated
//     mx::zeros on the GPU stream) and overwrite it with one cuMemcpyHtoD
//     from the caller's buffer, so no managed memory is involved at all;
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
  CUresult (*memcpyHtoD)(CUdeviceptr, const void*, size_t) = nullptr;
  CUresult (*ctxSynchronize)() = nullptr;
  std::string status = "off";
};

const Driver& driver() {
  static Driver d;
  static std::once_flag once;
  std::call_once(once, [] {
    const char* env = std::getenv("OF3C_GPU_DIRECT_IO");
    if (env && std::string(env) == "0") {
      d.status = "off (OF3C_GPU_DIRECT_IO=0): MLX managed memory";
      return;
    }
    if (std::string(mx::version()) != kMirroredVersion) {
      d.status = std::string("off: MLX ") + mx::version() + " is not " + kMirroredVersion + ", whose buffer layout this build knows";
      return;
    }
    // Only a libcuda that MLX itself loaded: the CPU build never has one.
    void* h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    if (!h) {
      d.status = "off: no CUDA driver loaded (CPU build of MLX)";
      return;
    }
    auto sym = [h](const char* name) { return dlsym(h, name); };
    d.ctxGetCurrent = reinterpret_cast<decltype(d.ctxGetCurrent)>(sym("cuCtxGetCurrent"));
    d.ctxSetCurrent = reinterpret_cast<decltype(d.ctxSetCurrent)>(sym("cuCtxSetCurrent"));
    d.deviceGet = reinterpret_cast<decltype(d.deviceGet)>(sym("cuDeviceGet"));
    d.primaryCtxRetain = reinterpret_cast<decltype(d.primaryCtxRetain)>(sym("cuDevicePrimaryCtxRetain"));
    d.memcpyDtoH = reinterpret_cast<decltype(d.memcpyDtoH)>(sym("cuMemcpyDtoH_v2"));
    d.memcpyHtoD = reinterpret_cast<decltype(d.memcpyHtoD)>(sym("cuMemcpyHtoD_v2"));
    d.ctxSynchronize = reinterpret_cast<decltype(d.ctxSynchronize)>(sym("cuCtxSynchronize"));
    d.ok = d.ctxGetCurrent && d.ctxSetCurrent && d.deviceGet && d.primaryCtxRetain && d.memcpyDtoH &&
           d.memcpyHtoD && d.ctxSynchronize;
    d.status = d.ok ? "direct (CUDA driver cuMemcpyHtoD/DtoH into MLX device buffers)"
                    : "off: the loaded CUDA driver lacks cuMemcpy*_v2/cuCtx* entry points";
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

bool cuda_upload(const void* data, size_t nbytes, const mx::Shape& shape, mx::Dtype dt, mx::array* out) {
  const Driver& d = driver();
  if (!d.ok || !onGPU() || nbytes < (1 << 20)) return false;
  // A fresh, evaluated GPU array owns a device-memory buffer of exactly
  // this size that nothing else references: overwrite it.
  mx::array a = mx::zeros(shape, dt);
  a.eval();
  if (a.nbytes() != nbytes || !a.flags().row_contiguous || a.data_size() != a.size() || a.offset() != 0) return false;
  auto* cb = static_cast<CudaBufferMirror*>(a.buffer().ptr());
  if (cb == nullptr || cb->device < 0 || cb->data == nullptr || cb->size < nbytes) return false;
  CUdevice dev;
  if (!ensureContext(d, &dev)) return false;
  if (d.memcpyHtoD(reinterpret_cast<CUdeviceptr>(cb->data), data, nbytes) != 0) return false;
  // A pageable host-to-device copy may return before its DMA finishes, and
  // MLX's streams do not wait for the legacy stream: wait here.
  if (d.ctxSynchronize() != 0) return false;
  *out = std::move(a);
  return true;
}

const char* cuda_io_status() { return driver().status.c_str(); }

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

// cuda_mem_info is cuMemGetInfo on device 0 through the libcuda MLX
// loaded (its primary context made current, cuInit called first: both are
// no-ops once MLX has initialised the device). False without a CUDA driver.
bool cuda_mem_info(int64_t* free_bytes, int64_t* total_bytes) {
  void* h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
  if (!h) return false;
  using Init = CUresult (*)(unsigned);
  using DeviceGet = CUresult (*)(CUdevice*, int);
  using Retain = CUresult (*)(CUcontext*, CUdevice);
  using GetCur = CUresult (*)(CUcontext*);
  using SetCur = CUresult (*)(CUcontext);
  using MemGetInfo = CUresult (*)(size_t*, size_t*);
  auto init = reinterpret_cast<Init>(dlsym(h, "cuInit"));
  auto deviceGet = reinterpret_cast<DeviceGet>(dlsym(h, "cuDeviceGet"));
  auto retain = reinterpret_cast<Retain>(dlsym(h, "cuDevicePrimaryCtxRetain"));
  auto getCur = reinterpret_cast<GetCur>(dlsym(h, "cuCtxGetCurrent"));
  auto setCur = reinterpret_cast<SetCur>(dlsym(h, "cuCtxSetCurrent"));
  auto memGetInfo = reinterpret_cast<MemGetInfo>(dlsym(h, "cuMemGetInfo_v2"));
  if (!init || !deviceGet || !retain || !getCur || !setCur || !memGetInfo) return false;
  if (init(0) != 0) return false;
  CUdevice dev;
  if (deviceGet(&dev, 0) != 0) return false;
  CUcontext ctx = nullptr;
  if (getCur(&ctx) != 0 || ctx == nullptr) {
    if (retain(&ctx, dev) != 0 || ctx == nullptr || setCur(ctx) != 0) return false;
  }
  size_t f = 0, t = 0;
  if (memGetInfo(&f, &t) != 0) return false;
  *free_bytes = static_cast<int64_t>(f);
  *total_bytes = static_cast<int64_t>(t);
  return true;
}

}  // namespace mlxs
