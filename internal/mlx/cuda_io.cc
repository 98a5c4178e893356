//go:build cgo && !nomlx

// Host <-> GPU transfers for MLX's CUDA backend without managed-memory page
// faults, and faster than pageable copies.
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
//     mx::zeros on the GPU stream) and overwrite it from the caller's buffer;
//   - cuda_read: copy an evaluated, contiguous device-memory array into the
//     caller's buffer.
// How the bytes move is the transfer mode (OF3C_GPU_IO_MODE, Mode below):
//   - direct: one synchronous cuMemcpyHtoD / cuMemcpyDtoH from / to the
//     caller's pageable buffer (the driver stages it itself, ~3 GB/s on an
//     H200 host);
//   - staged (default): through a process-wide pinned staging area of
//     kStagingBuffers buffers of kStagingBytes, in pieces, double-buffered:
//     a few host threads copy piece i+1 between the caller's buffer and one
//     staging buffer while the DMA engine moves piece i on our own
//     non-blocking stream (cuMemcpy*Async), ordered by one event per buffer
//     (staged_h2d / staged_d2h, tested on the CPU with a fake engine);
//   - registered: pin the caller's buffer in place (cuMemHostRegister), one
//     async copy, unpin; if the buffer cannot be registered, staged;
//   - managed: nothing here, MLX's own path (as OF3C_GPU_DIRECT_IO=0).
// Every path reports false when it does not apply (CPU build, CPU stream,
// another MLX version, non-contiguous array, any driver error): staged and
// registered fall back to direct, direct to MLX's own path, so correctness
// never depends on them. A driver error on the async path switches staged
// and registered off for the rest of the process (status says why).
// The staging area, its stream, events and copy threads are created on the
// first staged transfer and never freed (the process keeps them; the driver
// releases pinned memory at exit). One staged or registered transfer runs at
// a time (Staging::mu): sessions share one PCIe link anyway.
// OF3C_GPU_DIRECT_IO=0 switches all of it off (for A/B measurements).

#include "cuda_io.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

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
using CUevent = void*;
constexpr unsigned kStreamNonBlocking = 0x1;   // CU_STREAM_NON_BLOCKING
constexpr unsigned kEventDisableTiming = 0x2;  // CU_EVENT_DISABLE_TIMING

// The staging area: kStagingBuffers pinned buffers of kStagingBytes (64 MiB
// pinned in all). Pieces are at most one buffer; smaller arrays are cut in
// about 4 pieces (piece_bytes) so that copying and DMA overlap for them too.
constexpr int kStagingBuffers = 4;
constexpr size_t kStagingBytes = size_t(16) << 20;
// Host copies are split over at most kCopyThreads threads, in chunks of at
// least kMinChunk bytes (a smaller piece is copied by the calling thread).
constexpr int kCopyThreads = 8;
constexpr size_t kMinChunk = size_t(1) << 20;

enum class Mode : int { managed = 0, direct = 1, staged = 2, registered = 3 };
// staged by measurement of whole runs: the real PairFormerBlock at N = 1024, fp32, on the H200 machine
// (scripts/gpu/bench_block.sh probe, one lease, same artifact): inputs in + outputs out median 99.7 ms staged
// against 454.6 ms direct (whole call 238.8 vs 596.8 ms). The microbenchmark (of3bench -iobench, one array
// at a time) had shown them equal, which made direct the default for one session; docs/notes/GPU.md.
constexpr Mode kDefaultMode = Mode::staged;
const char* const kModeNames[] = {"managed", "direct", "staged", "registered"};

bool parse_mode(const std::string& s, Mode* m) {
  for (int i = 0; i < 4; i++) {
    if (s == kModeNames[i]) {
      *m = static_cast<Mode>(i);
      return true;
    }
  }
  return false;
}

struct Driver {
  bool ok = false;     // direct copies work
  bool async = false;  // staged copies can work (stream, events, pinned memory)
  bool reg = false;    // registered copies can work
  CUresult (*ctxGetCurrent)(CUcontext*) = nullptr;
  CUresult (*ctxSetCurrent)(CUcontext) = nullptr;
  CUresult (*deviceGet)(CUdevice*, int) = nullptr;
  CUresult (*primaryCtxRetain)(CUcontext*, CUdevice) = nullptr;
  CUresult (*memcpyDtoH)(void*, CUdeviceptr, size_t) = nullptr;
  CUresult (*memcpyHtoD)(CUdeviceptr, const void*, size_t) = nullptr;
  CUresult (*ctxSynchronize)() = nullptr;
  CUresult (*memcpyHtoDAsync)(CUdeviceptr, const void*, size_t, CUstream) = nullptr;
  CUresult (*memcpyDtoHAsync)(void*, CUdeviceptr, size_t, CUstream) = nullptr;
  CUresult (*memHostAlloc)(void**, size_t, unsigned) = nullptr;
  CUresult (*memFreeHost)(void*) = nullptr;
  CUresult (*memHostRegister)(void*, size_t, unsigned) = nullptr;
  CUresult (*memHostUnregister)(void*) = nullptr;
  CUresult (*streamCreate)(CUstream*, unsigned) = nullptr;
  CUresult (*streamSynchronize)(CUstream) = nullptr;
  CUresult (*eventCreate)(CUevent*, unsigned) = nullptr;
  CUresult (*eventRecord)(CUevent, CUstream) = nullptr;
  CUresult (*eventSynchronize)(CUevent) = nullptr;
  std::string status = "off";  // when !ok
  // Status per mode when ok (stable strings: cuda_io_status returns them).
  std::string modeStatus[4];
};

// The transfer mode in use: OF3C_GPU_IO_MODE when driver() first runs,
// then whatever cuda_io_set_mode sets.
std::atomic<int> g_mode{static_cast<int>(kDefaultMode)};

const Driver& driver() {
  static Driver d;
  static std::once_flag once;
  std::call_once(once, [] {
    std::string note;
    if (const char* env = std::getenv("OF3C_GPU_IO_MODE"); env && *env) {
      Mode m;
      if (parse_mode(env, &m))
        g_mode.store(static_cast<int>(m));
      else
        note = std::string(" [OF3C_GPU_IO_MODE=") + env + " is not managed, direct, staged or registered]";
    }
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
    d.memcpyHtoDAsync = reinterpret_cast<decltype(d.memcpyHtoDAsync)>(sym("cuMemcpyHtoDAsync_v2"));
    d.memcpyDtoHAsync = reinterpret_cast<decltype(d.memcpyDtoHAsync)>(sym("cuMemcpyDtoHAsync_v2"));
    d.memHostAlloc = reinterpret_cast<decltype(d.memHostAlloc)>(sym("cuMemHostAlloc"));
    d.memFreeHost = reinterpret_cast<decltype(d.memFreeHost)>(sym("cuMemFreeHost"));
    d.memHostRegister = reinterpret_cast<decltype(d.memHostRegister)>(sym("cuMemHostRegister_v2"));
    if (!d.memHostRegister) d.memHostRegister = reinterpret_cast<decltype(d.memHostRegister)>(sym("cuMemHostRegister"));
    d.memHostUnregister = reinterpret_cast<decltype(d.memHostUnregister)>(sym("cuMemHostUnregister"));
    d.streamCreate = reinterpret_cast<decltype(d.streamCreate)>(sym("cuStreamCreate"));
    d.streamSynchronize = reinterpret_cast<decltype(d.streamSynchronize)>(sym("cuStreamSynchronize"));
    d.eventCreate = reinterpret_cast<decltype(d.eventCreate)>(sym("cuEventCreate"));
    d.eventRecord = reinterpret_cast<decltype(d.eventRecord)>(sym("cuEventRecord"));
    d.eventSynchronize = reinterpret_cast<decltype(d.eventSynchronize)>(sym("cuEventSynchronize"));
    d.ok = d.ctxGetCurrent && d.ctxSetCurrent && d.deviceGet && d.primaryCtxRetain && d.memcpyDtoH &&
           d.memcpyHtoD && d.ctxSynchronize;
    d.async = d.ok && d.memcpyHtoDAsync && d.memcpyDtoHAsync && d.memHostAlloc && d.memFreeHost &&
              d.streamCreate && d.streamSynchronize && d.eventCreate && d.eventRecord && d.eventSynchronize;
    d.reg = d.async && d.memHostRegister && d.memHostUnregister;
    if (!d.ok) {
      d.status = "off: the loaded CUDA driver lacks cuMemcpy*_v2/cuCtx* entry points";
      return;
    }
    const std::string direct = "direct (CUDA driver cuMemcpyHtoD/DtoH into MLX device buffers)";
    const std::string noAsync = direct + " [staged needs cuMemcpy*Async_v2, cuMemHostAlloc, cuStream*, cuEvent*]";
    int threads = std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1, kCopyThreads);
    const std::string staged = "staged (pinned staging " + std::to_string(kStagingBuffers) + "x" +
                               std::to_string(kStagingBytes >> 20) + " MiB, " + std::to_string(threads) +
                               " copy threads, cuMemcpy*Async into MLX device buffers)";
    d.modeStatus[int(Mode::managed)] = "managed: MLX's own path (managed memory)" + note;
    d.modeStatus[int(Mode::direct)] = direct + note;
    d.modeStatus[int(Mode::staged)] = (d.async ? staged : noAsync) + note;
    d.modeStatus[int(Mode::registered)] =
        (d.reg ? "registered (cuMemHostRegister of the caller's buffer, cuMemcpy*Async into MLX device buffers; else " +
                     staged + ")"
               : (d.async ? staged + " [registered needs cuMemHostRegister/Unregister]" : noAsync)) +
        note;
  });
  return d;
}

Mode current_mode() { return static_cast<Mode>(g_mode.load(std::memory_order_relaxed)); }

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

// ---- the staged pipeline (no CUDA in it: tested with a fake engine) ----

// CopyPool copies one host buffer to another with a few threads: a single
// thread reaches 5-10 GB/s in a VM, below the PCIe link. One copy at a time
// (the caller holds Staging::mu or owns the pool). Threads that cannot be
// started are done without; the destructor stops and joins the workers (the
// process-wide pool is never destroyed).
class CopyPool {
 public:
  explicit CopyPool(int threads) {
    for (int i = 0; i + 1 < threads; i++) {
      try {
        workers_.emplace_back([this] { loop(); });
      } catch (...) {
        break;
      }
    }
  }
  ~CopyPool() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
      gen_++;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  CopyPool(const CopyPool&) = delete;
  CopyPool& operator=(const CopyPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  void copy(void* dst, const void* src, size_t n) {
    size_t chunks = std::min<size_t>(threads(), std::max<size_t>(1, n / kMinChunk));
    if (chunks < 2) {
      std::memcpy(dst, src, n);
      return;
    }
    size_t chunk = ((n + chunks - 1) / chunks + 63) / 64 * 64;
    {
      std::lock_guard<std::mutex> l(mu_);
      dst_ = static_cast<char*>(dst);
      src_ = static_cast<const char*>(src);
      n_ = n;
      chunk_ = chunk;
      nchunks_ = (n + chunk - 1) / chunk;
      next_.store(0, std::memory_order_relaxed);
      active_ = static_cast<int>(workers_.size());
      gen_++;
    }
    cv_.notify_all();
    work();
    std::unique_lock<std::mutex> l(mu_);
    done_cv_.wait(l, [this] { return active_ == 0; });
  }

 private:
  void work() {
    for (;;) {
      size_t c = next_.fetch_add(1, std::memory_order_relaxed);
      if (c >= nchunks_) return;
      size_t b = c * chunk_;
      std::memcpy(dst_ + b, src_ + b, std::min(chunk_, n_ - b));
    }
  }

  void loop() {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return gen_ != seen; });
        seen = gen_;
        if (stop_) return;
      }
      work();
      {
        std::lock_guard<std::mutex> l(mu_);
        if (--active_ == 0) done_cv_.notify_one();
      }
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  char* dst_ = nullptr;
  const char* src_ = nullptr;
  size_t n_ = 0, chunk_ = 0, nchunks_ = 0;
  std::atomic<size_t> next_{0};
  int active_ = 0;
  uint64_t gen_ = 0;
  bool stop_ = false;
};

// Engine is what the pipeline needs from the device: copies queued on one
// stream, and one event per staging buffer. Every call reports success.
struct Engine {
  virtual ~Engine() = default;
  virtual bool h2d(CUdeviceptr dst, const void* src, size_t n) = 0;  // queued
  virtual bool d2h(void* dst, CUdeviceptr src, size_t n) = 0;        // queued
  virtual bool record(int k) = 0;  // event k: everything queued so far
  virtual bool wait(int k) = 0;    // the host waits for event k
  virtual bool sync() = 0;         // the host waits for everything queued
};

// piece_bytes is the piece size for an n-byte transfer through buffers of
// buf bytes: about n/4 rounded up to whole MiB, at least 1 MiB (or buf) and
// at most buf, so that even a few-MiB array overlaps copying with DMA.
size_t piece_bytes(size_t n, size_t buf) {
  const size_t mib = size_t(1) << 20;
  size_t p = (n / 4 + mib - 1) / mib * mib;
  return std::clamp(p, std::min(mib, buf), buf);
}

// staged_h2d moves n bytes from src to dev: for piece i the host waits until
// the DMA that last read staging buffer i % nbufs is done, copies the piece
// in, and queues its DMA, so the host copy of piece i+1 overlaps the DMA of
// piece i. It always waits for the queue before returning (the buffers are
// reused next call). Returns the number of pieces, or -1 on an engine error.
long staged_h2d(Engine& e, void* const* bufs, int nbufs, size_t buf, CopyPool& pool, CUdeviceptr dev,
                const void* src, size_t n) {
  const size_t piece = piece_bytes(n, buf);
  const size_t npieces = (n + piece - 1) / piece;
  bool ok = true;
  for (size_t i = 0; i < npieces && ok; i++) {
    int k = static_cast<int>(i % nbufs);
    size_t off = i * piece, len = std::min(piece, n - off);
    if (i >= static_cast<size_t>(nbufs) && !(ok = e.wait(k))) break;
    pool.copy(bufs[k], static_cast<const char*>(src) + off, len);
    ok = e.h2d(dev + off, bufs[k], len) && e.record(k);
  }
  bool synced = e.sync();
  return ok && synced ? static_cast<long>(npieces) : -1;
}

// staged_d2h moves n bytes from dev to dst: the DMA of the first nbufs
// pieces is queued at once; then for piece i the host waits for its event,
// copies it out and queues piece i + nbufs into the freed buffer, so the DMA
// runs ahead of the host copies. Returns as staged_h2d.
long staged_d2h(Engine& e, void* const* bufs, int nbufs, size_t buf, CopyPool& pool, void* dst,
                CUdeviceptr dev, size_t n) {
  const size_t piece = piece_bytes(n, buf);
  const size_t npieces = (n + piece - 1) / piece;
  auto queue = [&](size_t i) {
    int k = static_cast<int>(i % nbufs);
    size_t off = i * piece;
    return e.d2h(bufs[k], dev + off, std::min(piece, n - off)) && e.record(k);
  };
  bool ok = true;
  for (size_t i = 0; i < npieces && i < static_cast<size_t>(nbufs) && ok; i++) ok = queue(i);
  for (size_t i = 0; i < npieces && ok; i++) {
    int k = static_cast<int>(i % nbufs);
    size_t off = i * piece;
    if (!(ok = e.wait(k))) break;
    pool.copy(static_cast<char*>(dst) + off, bufs[k], std::min(piece, n - off));
    if (i + nbufs < npieces) ok = queue(i + nbufs);
  }
  bool synced = e.sync();
  return ok && synced ? static_cast<long>(npieces) : -1;
}

// ---- the CUDA side ----

// Staging is the process-wide staging area. Created lazily under mu by the
// first staged (buffers, pool) or registered (stream, events) transfer;
// never freed. broken is set once, after the first driver error on the
// async path, with why saying what failed; from then on staged and
// registered transfers go direct.
struct Staging {
  std::mutex mu;
  bool streamTried = false, streamOK = false;
  bool buffersTried = false, buffersOK = false;
  CUstream stream = nullptr;
  CUevent ev[kStagingBuffers] = {};
  void* buf[kStagingBuffers] = {};
  CopyPool* pool = nullptr;
  std::atomic<bool> broken{false};
  std::atomic<bool> whySet{false};  // why is written (once) before this is set
  std::string why;
};

Staging& staging() {
  static Staging* s = new Staging;
  return *s;
}

constexpr const char* kBrokenStatus =
    "direct (CUDA driver cuMemcpyHtoD/DtoH into MLX device buffers) [staged/registered off after an error]";

// markBroken records the first failure (s.mu held).
void markBroken(Staging& s, const std::string& what) {
  if (s.broken.load()) return;
  try {
    s.why = "direct (CUDA driver cuMemcpyHtoD/DtoH into MLX device buffers) [staged/registered off after " + what + "]";
    s.whySet.store(true);
  } catch (...) {
  }
  s.broken.store(true);
}

bool initStream(const Driver& d, Staging& s) {
  if (s.streamTried) return s.streamOK;
  s.streamTried = true;
  if (d.streamCreate(&s.stream, kStreamNonBlocking) != 0) {
    markBroken(s, "cuStreamCreate failed");
    return false;
  }
  for (auto& e : s.ev) {
    if (d.eventCreate(&e, kEventDisableTiming) != 0) {
      markBroken(s, "cuEventCreate failed");
      return false;
    }
  }
  s.streamOK = true;
  return true;
}

bool initBuffers(const Driver& d, Staging& s) {
  if (s.buffersTried) return s.buffersOK;
  s.buffersTried = true;
  if (!initStream(d, s)) return false;
  for (int i = 0; i < kStagingBuffers; i++) {
    if (d.memHostAlloc(&s.buf[i], kStagingBytes, 0) != 0 || s.buf[i] == nullptr) {
      for (int j = 0; j < i; j++) d.memFreeHost(s.buf[j]);
      markBroken(s, "cuMemHostAlloc of " + std::to_string(kStagingBytes >> 20) + " MiB failed");
      return false;
    }
  }
  try {
    s.pool = new CopyPool(std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1, kCopyThreads));
  } catch (...) {
    for (auto& b : s.buf) d.memFreeHost(b);
    markBroken(s, "no copy threads");
    return false;
  }
  s.buffersOK = true;
  return true;
}

struct CudaEngine : Engine {
  const Driver& d;
  Staging& s;
  CudaEngine(const Driver& d, Staging& s) : d(d), s(s) {}
  bool h2d(CUdeviceptr dst, const void* src, size_t n) override { return d.memcpyHtoDAsync(dst, src, n, s.stream) == 0; }
  bool d2h(void* dst, CUdeviceptr src, size_t n) override { return d.memcpyDtoHAsync(dst, src, n, s.stream) == 0; }
  bool record(int k) override { return d.eventRecord(s.ev[k], s.stream) == 0; }
  bool wait(int k) override { return d.eventSynchronize(s.ev[k]) == 0; }
  bool sync() override { return d.streamSynchronize(s.stream) == 0; }
};

// staged copies n bytes through the staging area (up: host -> device).
bool staged(const Driver& d, bool up, void* host, CUdeviceptr dev, size_t n) {
  Staging& s = staging();
  if (!d.async || s.broken.load()) return false;
  std::lock_guard<std::mutex> l(s.mu);
  if (!initBuffers(d, s)) return false;
  CudaEngine e(d, s);
  long r = up ? staged_h2d(e, s.buf, kStagingBuffers, kStagingBytes, *s.pool, dev, host, n)
              : staged_d2h(e, s.buf, kStagingBuffers, kStagingBytes, *s.pool, host, dev, n);
  if (r < 0) markBroken(s, up ? "a failed staged host-to-device copy" : "a failed staged device-to-host copy");
  return r >= 0;
}

// registered pins the caller's pages in place for one async copy. A buffer
// the driver will not register (read-only or already registered memory) is
// not an error: the caller tries staged.
bool registered(const Driver& d, bool up, void* host, CUdeviceptr dev, size_t n) {
  Staging& s = staging();
  if (!d.reg || s.broken.load()) return false;
  std::lock_guard<std::mutex> l(s.mu);
  if (!initStream(d, s)) return false;
  long ps = sysconf(_SC_PAGESIZE);
  uintptr_t page = ps > 0 ? static_cast<uintptr_t>(ps) : 4096;
  uintptr_t p = reinterpret_cast<uintptr_t>(host);
  uintptr_t base = p & ~(page - 1), end = (p + n + page - 1) & ~(page - 1);
  if (d.memHostRegister(reinterpret_cast<void*>(base), end - base, 0) != 0) return false;
  bool ok = up ? d.memcpyHtoDAsync(dev, host, n, s.stream) == 0 : d.memcpyDtoHAsync(host, dev, n, s.stream) == 0;
  bool synced = d.streamSynchronize(s.stream) == 0;
  d.memHostUnregister(reinterpret_cast<void*>(base));
  if (!(ok && synced)) markBroken(s, up ? "a failed registered host-to-device copy" : "a failed registered device-to-host copy");
  return ok && synced;
}

// copy moves n bytes between host and an MLX device buffer in the current
// mode, falling back registered -> staged -> direct; false if all failed.
// Nothing in the async paths is expected to throw; if something does (a
// failed allocation, a mutex error), they are switched off and the copy goes
// direct: a copy left queued there only touches the staging buffers, which
// are never reused then, and the direct copy's cuCtxSynchronize waits for it.
bool copy(const Driver& d, Mode m, bool up, void* host, CUdeviceptr dev, size_t n) {
  try {
    if (m == Mode::registered && registered(d, up, host, dev, n)) return true;
    if ((m == Mode::registered || m == Mode::staged) && staged(d, up, host, dev, n)) return true;
  } catch (...) {
    staging().broken.store(true);
  }
  if (up) {
    if (d.memcpyHtoD(dev, host, n) != 0) return false;
    // A pageable host-to-device copy may return before its DMA finishes, and
    // MLX's streams do not wait for the legacy stream: wait here.
    return d.ctxSynchronize() == 0;
  }
  return d.memcpyDtoH(host, dev, n) == 0;
}

// FakeEngine runs the pipeline on host memory with the latest DMA the
// stream semantics allow: a queued copy happens only when the host waits
// for an event recorded after it (or for the stream). A pipeline that reuses
// a staging buffer before waiting for its event then moves the wrong bytes.
struct FakeEngine : Engine {
  struct Op {
    char* dst;
    const char* src;
    size_t n;
  };
  std::vector<Op> queued;
  size_t done = 0;
  std::vector<size_t> at;  // per event: queue length when recorded
  explicit FakeEngine(int nev) : at(nev, 0) {}
  bool h2d(CUdeviceptr dst, const void* src, size_t n) override {
    queued.push_back({reinterpret_cast<char*>(dst), static_cast<const char*>(src), n});
    return true;
  }
  bool d2h(void* dst, CUdeviceptr src, size_t n) override {
    queued.push_back({static_cast<char*>(dst), reinterpret_cast<const char*>(src), n});
    return true;
  }
  bool record(int k) override {
    at[k] = queued.size();
    return true;
  }
  bool wait(int k) override { return runTo(at[k]); }
  bool sync() override { return runTo(queued.size()); }
  bool runTo(size_t end) {
    for (; done < end; done++) std::memcpy(queued[done].dst, queued[done].src, queued[done].n);
    return true;
  }
};

}  // namespace

namespace mlxs {

bool cuda_upload(const void* data, size_t nbytes, const mx::Shape& shape, mx::Dtype dt, mx::array* out) {
  const Driver& d = driver();
  const Mode m = current_mode();
  if (!d.ok || m == Mode::managed || !onGPU() || nbytes < (1 << 20)) return false;
  // A fresh, evaluated GPU array owns a device-memory buffer of exactly
  // this size that nothing else references: overwrite it.
  mx::array a = mx::zeros(shape, dt);
  a.eval();
  if (a.nbytes() != nbytes || !a.flags().row_contiguous || a.data_size() != a.size() || a.offset() != 0) return false;
  auto* cb = static_cast<CudaBufferMirror*>(a.buffer().ptr());
  if (cb == nullptr || cb->device < 0 || cb->data == nullptr || cb->size < nbytes) return false;
  CUdevice dev;
  if (!ensureContext(d, &dev)) return false;
  // The host side is only read; registering needs a non-const pointer.
  if (!copy(d, m, true, const_cast<void*>(data), reinterpret_cast<CUdeviceptr>(cb->data), nbytes)) return false;
  *out = std::move(a);
  return true;
}

const char* cuda_io_status() {
  const Driver& d = driver();
  if (!d.ok) return d.status.c_str();
  Mode m = current_mode();
  if ((m == Mode::staged || m == Mode::registered) && staging().broken.load())
    return staging().whySet.load() ? staging().why.c_str() : kBrokenStatus;
  return d.modeStatus[static_cast<int>(m)].c_str();
}

bool cuda_io_set_mode(const char* name) {
  driver();  // reads OF3C_GPU_IO_MODE first, so it cannot override this later
  Mode m;
  if (name == nullptr || !parse_mode(name, &m)) return false;
  g_mode.store(static_cast<int>(m));
  return true;
}

bool cuda_read(mx::array& a, void* dst, size_t nbytes) {
  const Driver& d = driver();
  const Mode m = current_mode();
  if (!d.ok || m == Mode::managed || nbytes == 0 || a.nbytes() != nbytes) return false;
  if (!a.flags().row_contiguous || a.data_size() != a.size()) return false;
  auto* cb = static_cast<CudaBufferMirror*>(a.buffer().ptr());
  if (cb == nullptr || cb->device < 0 || cb->data == nullptr) return false;
  if (a.offset() < 0 || static_cast<size_t>(a.offset()) + nbytes > cb->size) return false;
  CUdevice dev;
  if (!ensureContext(d, &dev)) return false;
  auto src = reinterpret_cast<CUdeviceptr>(static_cast<char*>(cb->data) + a.offset());
  // Small outputs keep one synchronous copy, as uploads below 1 MiB keep MLX's path.
  return copy(d, nbytes < (1 << 20) ? Mode::direct : m, false, dst, src, nbytes);
}

long cuda_io_selftest(size_t nbytes, size_t buf_bytes, int nbufs, int threads) {
  if (nbufs < 1 || buf_bytes == 0) throw std::invalid_argument("selftest: need at least one non-empty buffer");
  std::vector<char> src(nbytes), dev(nbytes), back(nbytes);
  std::vector<std::vector<char>> store(nbufs, std::vector<char>(buf_bytes));
  std::vector<void*> bufs;
  for (auto& b : store) bufs.push_back(b.data());
  uint32_t x = 2463534242u;  // xorshift: every byte differs from its neighbours' pieces
  for (auto& c : src) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    c = static_cast<char>(x);
  }
  CopyPool pool(threads);
  FakeEngine up(nbufs), down(nbufs);
  long p1 = staged_h2d(up, bufs.data(), nbufs, buf_bytes, pool, reinterpret_cast<CUdeviceptr>(dev.data()), src.data(), nbytes);
  if (p1 < 0 || dev != src) throw std::runtime_error("selftest: staged host-to-device copy moved the wrong bytes");
  long p2 = staged_d2h(down, bufs.data(), nbufs, buf_bytes, pool, back.data(), reinterpret_cast<CUdeviceptr>(dev.data()), nbytes);
  if (p2 != p1 || back != src) throw std::runtime_error("selftest: staged device-to-host copy moved the wrong bytes");
  return p1;
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
