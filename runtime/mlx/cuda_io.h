// Internal to runtime/mlx: direct host <-> GPU transfers for MLX's CUDA
// backend (see cuda_io.cc). Both return false, having done nothing the
// caller must undo, whenever they do not apply.
#pragma once

#include <cstddef>

#include "mlx/mlx.h"

namespace mlxs {

// cuda_prefetch moves a host-made (managed-memory) array to the GPU in one
// bulk transfer, when the default device is the GPU.
bool cuda_prefetch(mlx::core::array& a);

// cuda_read copies an evaluated, row-contiguous array that lives in GPU
// device memory into dst (nbytes = a.nbytes()) with one device-to-host copy.
bool cuda_read(mlx::core::array& a, void* dst, size_t nbytes);

}  // namespace mlxs
