// MLX's C++ API, or — when its headers are not where the #cgo lines look
// (.mlx/include, made by `make setup`) — one actionable error instead of the
// compiler's "mlx/mlx.h: No such file or directory". Included by every C++
// file of this package that needs MLX, before any other MLX header.
#pragma once
#if __has_include("mlx/mlx.h")
#include "mlx/mlx.h"
#else
#error "of3c: MLX's C++ headers were not found. Run `make setup` (installs mlx-cpu 0.32.4 into .venv and links .mlx to it); for another MLX 0.32.4 install set CGO_CXXFLAGS=-I<mlx>/include and CGO_LDFLAGS='-L<mlx>/lib -lmlx -Wl,-rpath,<mlx>/lib'; or build without MLX (reference executor only): go build -tags nomlx ./..."
#endif
