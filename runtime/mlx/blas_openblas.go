//go:build cgo && !nomlx && openblas

package mlx

// Linking Debian's OpenBLAS into the executable puts it ahead of the wheel's
// bundled reference BLAS (a dependency of libmlx, so later in the dynamic
// linker's global search order); libmlx's cblas_sgemm then binds to OpenBLAS.
// --no-as-needed keeps the DT_NEEDED entry although Go code calls nothing in
// it. Measured in docs/PERFORMANCE.md.

// #cgo LDFLAGS: -Wl,--no-as-needed -l:libopenblas.so.0 -Wl,--as-needed
import "C"
