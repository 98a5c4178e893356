// Fast CPU kernels as MLX custom primitives (fastcpu.cc), in the shim's
// conventions (shim.h): int status (0 = ok), results through out-pointers,
// no C++ exception crossing into the caller. On failure the message is kept
// in a thread-local string read with mlxs_fast_last_error (separate from
// mlxs_last_error so shim.cc stays untouched).
//
// Every builder runs on the default stream of the default device, which must
// be the CPU: on another device it fails ("fast CPU kernel needs the CPU
// device"). Inputs may be any layout (they are made row-contiguous first) and
// float32, float16 or bfloat16 (half inputs are computed in float32 and the
// result cast back); other dtypes fail. Results have the input dtype.
#ifndef OF3C_MLX_FASTCPU_H
#define OF3C_MLX_FASTCPU_H

#include "shim.h"

#ifdef __cplusplus
extern "C" {
#endif

const char* mlxs_fast_last_error(void);

enum {
  MLXS_FAST_EXP,      // exp(x)
  MLXS_FAST_SIGMOID,  // 1 / (1 + exp(-x))
  MLXS_FAST_SWIGLU,   // x[..., 2h] -> silu(x[..., :h]) * x[..., h:]
  MLXS_FAST_SOFTMAX,  // softmax over the last axis
  MLXS_FAST_UNARY_END
};
enum {
  MLXS_FAST_SIGMOID_MUL,  // a * sigmoid(b)
  MLXS_FAST_SILU_MUL,     // silu(a) * b = a * sigmoid(a) * b
  MLXS_FAST_BINARY_END
};

int mlxs_fast_unary(int op, mlxs_array* out, mlxs_array x);
// a and b broadcast against each other.
int mlxs_fast_binary(int op, mlxs_array* out, mlxs_array a, mlxs_array b);
// Over the last axis; weight and bias (may be NULL) must have that axis's
// size (any shape with that many elements).
int mlxs_fast_layer_norm(mlxs_array* out, mlxs_array x, const mlxs_array* weight,
                         const mlxs_array* bias, float eps);

// softmax over the last axis of scale * x + biases[0] + ... + biases[nb-1]
// (added in order, f32). Each bias broadcasts (numpy rules, right-aligned)
// to x's shape without enlarging it and is read in place; a bias value
// below -1e9 (-inf) is read as -1e9. The result has the promoted dtype.
int mlxs_fast_softmax_bias(mlxs_array* out, mlxs_array x, float scale, const mlxs_array* biases,
                           int nb);

// softmax(scale * q k^T + biases[0] + ... + biases[nb-1]) v over the last
// two axes: q [.., M, D], k [.., K, D], v [.., K, Dv] in any layout (read in
// place through their strides), batch axes broadcast; each bias broadcasts
// to the logits [batch.., M, K] (its M and K axes that size or 1) and is
// added after the scale in order in f32, values below -1e9 read as -1e9
// (FastSoftmaxBias's rules). No [.., M, K] array is materialised. The
// result [batch.., M, Dv] has the promoted dtype; with heads_inner (and
// rank >= 3) its axes -3 and -2 are swapped in memory (strides of a
// transposed view), else it is row-contiguous.
int mlxs_fast_attention(mlxs_array* out, mlxs_array q, mlxs_array k, mlxs_array v, float scale,
                        const mlxs_array* biases, int nb, int heads_inner);

// x made row-contiguous (no copy when it already is): for float32 a
// multi-threaded, cache-blocked copy (transposes in tiles); other dtypes go
// through mx::contiguous.
int mlxs_fast_contiguous(mlxs_array* out, mlxs_array x);

// Advises transparent huge pages for the whole 2 MiB pages inside
// [p, p + nbytes), a buffer about to be written for the first time (no-op
// below 4 MiB or with OF3C_HUGEPAGES=0). Never fails.
void mlxs_fast_advise_huge(void* p, size_t nbytes);

// a @ b over the last two axes (a [.., M, K], b [.., K, N], batch axes
// broadcast, any layout read in place), for many small products: the batch
// items (or blocks of rows) are spread over the pool, each a single-thread
// register-blocked GEMM. Float inputs; computed in f32, promoted dtype.
int mlxs_fast_matmul(mlxs_array* out, mlxs_array a, mlxs_array b);

// Fails unless device type (0 cpu, 1 gpu) can run fast CPU kernels; the
// check every builder applies to the default device.
int mlxs_fast_check_device(int type);
// The SIMD variant in use: "avx512", "avx2" or "generic".
int mlxs_fast_isa(const char** out);
// Forces a variant (for tests): 0 best supported, 1 avx512, 2 avx2,
// 3 generic. Fails for a variant this CPU cannot run.
int mlxs_fast_set_isa(int isa);
// Threads used for large arrays (the caller plus pool workers).
int mlxs_fast_threads(int* out);

#ifdef __cplusplus
}
#endif
#endif
