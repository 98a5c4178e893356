// extern "C" shim over the MLX C++ API, in mlx-c's conventions: opaque
// handles, int status (0 = ok) with results through out-pointers, one _free
// per _new, and no C++ exception ever crossing into the caller. On failure
// the message is kept in a thread-local string (mlxs_last_error).
//
// Every call must come from the one OS thread that owns the MLX default
// streams (the Go executor); the shim itself does not enforce that. Ops take
// no stream argument: they run on that thread's default stream of the
// default device (mlxs_set_default_device), which is all the executor uses.
#ifndef OF3C_MLX_SHIM_H
#define OF3C_MLX_SHIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct { void* ctx; } mlxs_array;
typedef struct { void* ctx; } mlxs_function;
typedef struct { void* ctx; } mlxs_st; // result of a safetensors load

const char* mlxs_last_error(void);

// ---- library / devices / memory ----
int mlxs_version(const char** out);
// How host<->GPU copies are made (internal/mlx/cuda_io.cc): "staged (...)",
// "direct (...)", "registered (...)", "managed: ..." or "off: reason".
int mlxs_gpu_io_status(const char** out);
// Sets the transfer mode: "managed", "direct", "staged" or "registered"
// (an error for anything else).
int mlxs_gpu_io_set_mode(const char* mode);
// Runs the staged transfer pipeline on host memory with a fake DMA engine
// (no GPU needed); *pieces is the number of pieces. An error if a byte
// came out wrong.
int mlxs_gpu_io_selftest(size_t nbytes, size_t buf_bytes, int nbufs, int threads, long* pieces);
// *ok 1 and GPU 0's free and total memory (cuMemGetInfo), or *ok 0 without
// a CUDA driver.
int mlxs_gpu_mem_info(int64_t* free_bytes, int64_t* total_bytes, int* ok);
// softmax(logits + biases...) over the last axis in one custom CUDA kernel
// (internal/mlx/gpu_kernels.cc): f32 logits, 1-4 f32 biases broadcastable to
// them. GPU streams of MLX's CUDA backend only.
int mlxs_gpu_softmax_bias(mlxs_array* out, mlxs_array logits, const mlxs_array* biases, int n);
// LayerNorm over x's last axis (f32/f16/bf16, 1..1024 elements) in one custom
// CUDA kernel: f32 statistics and affine, one rounding to x's dtype; weight
// and bias f32 [n] or null.
int mlxs_gpu_layer_norm(mlxs_array* out, mlxs_array x, const mlxs_array* weight, const mlxs_array* bias, float eps);
// biases[0] + ... (1-4 f32 arrays broadcast to shape, summed in f32, clamped
// at -65504 first when clamp_f16) as one row-contiguous array of dtype.
int mlxs_gpu_bias_sum(mlxs_array* out, const int64_t* shape, int ndim, int dtype, bool clamp_f16,
                      const mlxs_array* biases, int n);
// softmax(scale·q·kᵀ + Σ biases)·v in one custom CUDA kernel that never
// writes the logits (internal/mlx/gpu_flash_source.h). q and k null (ctx
// NULL) in bias-only mode. dtype: the result's. mma: the tensor-core kernel
// (internal/mlx/gpu_flash_mma_source.h; q, k, v and the result of one dtype,
// bf16 or f16, mode qk).
int mlxs_gpu_flash_attention(mlxs_array* out, mlxs_array q, mlxs_array k, mlxs_array v, const mlxs_array* biases,
                             int n, float scale, int dtype, bool mma);
// type: 0 cpu, 1 gpu
int mlxs_device_count(int type, int* out);
int mlxs_device_available(int type, int index, bool* out);
int mlxs_default_device(int* type, int* index);
int mlxs_set_default_device(int type, int index);
int mlxs_device_name(int type, int index, char* buf, size_t cap);
int mlxs_synchronize(void);
int mlxs_memory(size_t* active, size_t* peak, size_t* cache, size_t* limit);
int mlxs_reset_peak_memory(void);
int mlxs_set_memory_limit(size_t limit, size_t* prev);
int mlxs_set_cache_limit(size_t limit, size_t* prev);
int mlxs_clear_cache(void);
int mlxs_set_compile_enabled(bool on);
// Describes the BLAS that MLX's fp32 GEMM calls (see blas.cc): the library
// file, plus OpenBLAS's core type when it is OpenBLAS.
int mlxs_blas_library(char* buf, size_t cap);

// ---- arrays ----
int mlxs_array_free(mlxs_array a);
int mlxs_array_copy_handle(mlxs_array* out, mlxs_array a);
// Copies nbytes from data (row-major, little endian).
int mlxs_array_from_data(mlxs_array* out, const void* data, size_t nbytes,
                         const int64_t* shape, int ndim, int dtype);
int mlxs_array_scalar(mlxs_array* out, double v, int dtype);
int mlxs_array_ndim(mlxs_array a, int* out);
// shape must hold ndim entries.
int mlxs_array_shape(mlxs_array a, int64_t* shape);
int mlxs_array_dtype(mlxs_array a, int* out);
int mlxs_array_size(mlxs_array a, size_t* out);
// Evaluates a and copies its elements row-major into dst (nbytes = size*itemsize).
int mlxs_array_read(mlxs_array a, void* dst, size_t nbytes);
int mlxs_eval(const mlxs_array* as, int n);

// ---- ops ----
enum {
  MLXS_ABS, MLXS_NEG, MLXS_SIGN, MLXS_EXP, MLXS_LOG, MLXS_SQRT, MLXS_RSQRT,
  MLXS_TANH, MLXS_ERF, MLXS_SIGMOID, MLXS_FLOOR, MLXS_CEIL, MLXS_ROUND,
  MLXS_RECIPROCAL, MLXS_SIN, MLXS_COS, MLXS_ISNAN, MLXS_ISINF,
  MLXS_LOGICAL_NOT, MLXS_SQUARE, MLXS_LOG1P, MLXS_EXPM1, MLXS_COPY,
  MLXS_TAN, MLXS_ERFINV, MLXS_STOP_GRADIENT, MLXS_ISFINITE,
  MLXS_UNARY_END
};
enum {
  MLXS_ADD, MLXS_SUB, MLXS_MUL, MLXS_DIV, MLXS_POW, MLXS_REMAINDER,
  MLXS_MAXIMUM, MLXS_MINIMUM, MLXS_EQUAL, MLXS_NOT_EQUAL, MLXS_LESS,
  MLXS_LESS_EQUAL, MLXS_GREATER, MLXS_GREATER_EQUAL, MLXS_LOGICAL_AND,
  MLXS_LOGICAL_OR, MLXS_MATMUL, MLXS_FLOOR_DIVIDE, MLXS_ARCTAN2,
  MLXS_BINARY_END
};
enum {
  MLXS_SUM, MLXS_MEAN, MLXS_MAX, MLXS_MIN, MLXS_PROD, MLXS_ALL, MLXS_ANY,
  MLXS_LOGSUMEXP, MLXS_ARGMAX, MLXS_ARGMIN,
  MLXS_REDUCE_END
};

int mlxs_unary(int op, mlxs_array* out, mlxs_array a);
int mlxs_binary(int op, mlxs_array* out, mlxs_array a, mlxs_array b);
// naxes < 0 reduces over all axes. ARGMAX/ARGMIN need exactly one axis.
int mlxs_reduce(int op, mlxs_array* out, mlxs_array a, const int* axes,
                int naxes, bool keepdims);
int mlxs_where(mlxs_array* out, mlxs_array c, mlxs_array x, mlxs_array y);
int mlxs_astype(mlxs_array* out, mlxs_array a, int dtype);
int mlxs_contiguous(mlxs_array* out, mlxs_array a);
int mlxs_depends(mlxs_array* out, mlxs_array x, mlxs_array dep);
// lo and hi may be NULL.
int mlxs_clip(mlxs_array* out, mlxs_array a, const mlxs_array* lo,
              const mlxs_array* hi);
int mlxs_einsum(mlxs_array* out, const char* subscripts, const mlxs_array* ops,
                int n);
int mlxs_reshape(mlxs_array* out, mlxs_array a, const int64_t* shape, int n);
int mlxs_transpose(mlxs_array* out, mlxs_array a, const int* perm, int n);
int mlxs_broadcast_to(mlxs_array* out, mlxs_array a, const int64_t* shape,
                      int n);
int mlxs_expand_dims(mlxs_array* out, mlxs_array a, const int* axes, int n);
// n < 0 squeezes every singleton axis.
int mlxs_squeeze(mlxs_array* out, mlxs_array a, const int* axes, int n);
int mlxs_slice(mlxs_array* out, mlxs_array a, const int64_t* start,
               const int64_t* stop, const int64_t* strides, int n);
int mlxs_slice_update(mlxs_array* out, mlxs_array src, mlxs_array upd,
                      const int64_t* start, const int64_t* stop,
                      const int64_t* strides, int n);
int mlxs_concatenate(mlxs_array* out, const mlxs_array* as, int n, int axis);
int mlxs_stack(mlxs_array* out, const mlxs_array* as, int n, int axis);
// outs must hold nidx+1 handles.
int mlxs_split(mlxs_array* outs, mlxs_array a, const int64_t* indices, int nidx,
               int axis);
int mlxs_take(mlxs_array* out, mlxs_array a, mlxs_array idx, int axis);
int mlxs_take_along_axis(mlxs_array* out, mlxs_array a, mlxs_array idx,
                         int axis);
int mlxs_put_along_axis(mlxs_array* out, mlxs_array a, mlxs_array idx,
                        mlxs_array vals, int axis);
// Result shape: broadcast(indices) + slice_sizes (one per axis of a).
int mlxs_gather(mlxs_array* out, mlxs_array a, const mlxs_array* idx, int nidx,
                const int* axes, const int64_t* slice_sizes, int nslice);
// mode: 0 replace, 1 add
int mlxs_scatter(mlxs_array* out, mlxs_array a, const mlxs_array* idx, int nidx,
                 mlxs_array updates, const int* axes, int mode);
int mlxs_pad(mlxs_array* out, mlxs_array a, const int64_t* low,
             const int64_t* high, int n, mlxs_array value);
int mlxs_tile(mlxs_array* out, mlxs_array a, const int* reps, int n);
int mlxs_arange(mlxs_array* out, double start, double stop, double step,
                int dtype);
int mlxs_full(mlxs_array* out, const int64_t* shape, int n, mlxs_array value,
              int dtype);
int mlxs_cumsum(mlxs_array* out, mlxs_array a, int axis, bool reverse,
                bool inclusive);
int mlxs_tri(mlxs_array* out, mlxs_array a, int k, bool upper);
int mlxs_softmax(mlxs_array* out, mlxs_array a, const int* axes, int n,
                 bool precise);
int mlxs_layer_norm(mlxs_array* out, mlxs_array x, const mlxs_array* weight,
                    const mlxs_array* bias, float eps);
int mlxs_rms_norm(mlxs_array* out, mlxs_array x, const mlxs_array* weight,
                  float eps);
int mlxs_sdpa(mlxs_array* out, mlxs_array q, mlxs_array k, mlxs_array v,
              float scale, const mlxs_array* mask);

// ---- functions: Go closures, compile, export/import ----
// A closure calls back into Go (mlxsGoClosureCall) with the given token.
// When MLX drops its last copy of the closure the token is queued for
// mlxs_take_dead_tokens so Go can release its side.
int mlxs_closure_new(mlxs_function* out, uintptr_t token);
int mlxs_function_free(mlxs_function f);
int mlxs_compile(mlxs_function* out, mlxs_function f, bool shapeless);
// outs: *nout handles allocated with malloc; free each with mlxs_array_free
// and the vector with mlxs_handles_free.
int mlxs_function_call(mlxs_function f, const mlxs_array* in, int nin,
                       mlxs_array** outs, int* nout);
int mlxs_handles_free(mlxs_array* hs);
int mlxs_take_dead_tokens(uintptr_t* buf, int cap, int* n);
int mlxs_export_function(const char* path, mlxs_function f,
                         const mlxs_array* args, int nargs, bool shapeless);
int mlxs_import_function(mlxs_function* out, const char* path);

// ---- safetensors ----
int mlxs_load_safetensors(mlxs_st* out, const char* path);
int mlxs_st_free(mlxs_st st);
int mlxs_st_counts(mlxs_st st, int* narrays, int* nmeta);
int mlxs_st_array(mlxs_st st, int i, const char** name, mlxs_array* out);
int mlxs_st_meta(mlxs_st st, int i, const char** key, const char** val);
int mlxs_save_safetensors(const char* path, const char* const* names,
                          const mlxs_array* arrays, int n,
                          const char* const* mkeys, const char* const* mvals,
                          int nmeta);

#ifdef __cplusplus
}
#endif
#endif
