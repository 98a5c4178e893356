// Internal to internal/mlx: direct host <-> GPU transfers for MLX's CUDA
// backend (see cuda_io.cc). Both return false, having done nothing the
// caller must undo, whenever they do not apply.
#pragma once

#include <cstddef>
#include <cstdint>

#include "mlx_required.h"

namespace mlxs {

// cuda_upload builds *out (shape, dt) in GPU device memory from nbytes of
// host data (copied in the transfer mode, see cuda_io.cc), when the default
// device is the GPU and the array is at least 1 MiB.
bool cuda_upload(const void* data, size_t nbytes, const mlx::core::Shape& shape, mlx::core::Dtype dt,
                 mlx::core::array* out);

// cuda_io_status names the transfer mode in use ("staged (...)",
// "direct (...)", ...) or says why none is ("off: ...").
const char* cuda_io_status();

// cuda_io_set_mode switches the transfer mode for the rest of the process:
// "managed", "direct", "staged" or "registered"; false for any other name.
bool cuda_io_set_mode(const char* name);

// cuda_io_selftest runs the staged pipeline (both directions) on host
// memory with a fake DMA engine: nbytes through nbufs buffers of buf_bytes,
// threads copy threads. Returns the number of pieces; throws
// std::runtime_error if a byte came out wrong. Needs no GPU.
long cuda_io_selftest(size_t nbytes, size_t buf_bytes, int nbufs, int threads);

// cuda_read copies an evaluated, row-contiguous array that lives in GPU
// device memory into dst (nbytes = a.nbytes()) in the transfer mode.
bool cuda_read(mlx::core::array& a, void* dst, size_t nbytes);

// cuda_mem_info is the free and total memory of GPU 0 (cuMemGetInfo);
// false without a CUDA driver.
bool cuda_mem_info(int64_t* free_bytes, int64_t* total_bytes);

}  // namespace mlxs
