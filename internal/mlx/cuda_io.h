// Internal to internal/mlx: direct host <-> GPU transfers for MLX's CUDA
// backend (see cuda_io.cc). Both return false, having done nothing the
// caller must undo, whenever they do not apply.
#pragma once

#include <cstddef>
#include <cstdint>

#include "mlx_required.h"

namespace mlxs {

// cuda_upload builds *out (shape, dt) in GPU device memory from nbytes of
// host data with one host-to-device copy, when the default device is the
// GPU and the array is at least 1 MiB.
bool cuda_upload(const void* data, size_t nbytes, const mlx::core::Shape& shape, mlx::core::Dtype dt,
                 mlx::core::array* out);

// cuda_io_status says whether the direct path is on and, if not, why.
const char* cuda_io_status();

// cuda_read copies an evaluated, row-contiguous array that lives in GPU
// device memory into dst (nbytes = a.nbytes()) with one device-to-host copy.
bool cuda_read(mlx::core::array& a, void* dst, size_t nbytes);

// cuda_mem_info is the free and total memory of GPU 0 (cuMemGetInfo);
// false without a CUDA driver.
bool cuda_mem_info(int64_t* free_bytes, int64_t* total_bytes);

}  // namespace mlxs
