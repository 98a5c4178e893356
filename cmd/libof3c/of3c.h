/*
 * of3c.h — the C API of of3c (libof3c.so, built by `make lib`).
 *
 * Conventions
 *   - Functions returning int return 0 on success and -1 on failure; then
 *     of3c_last_error() describes the failure. The message is per calling
 *     thread and stays valid until that thread's next of3c call.
 *   - Sessions and results are integer handles (never 0). Every function may
 *     be called from any thread: runs of one session are serialized, and
 *     of3c_close waits for a run in progress.
 *   - Element types are ONNX TensorProto.DataType codes: 1 float32,
 *     7 int64, 9 bool, 10 float16, 11 float64, 16 bfloat16, …
 *   - Buffers are dense, row-major, native little-endian; the caller owns
 *     them. Inputs are read during of3c_run only; outputs are copied into
 *     caller buffers by of3c_result_copy.
 *   - Strings returned by the library are owned by it: signature strings
 *     until of3c_close, result names until of3c_result_free.
 *   - Nothing here throws or aborts: internal failures become -1 and a
 *     message.
 */
#ifndef OF3C_H
#define OF3C_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int64_t of3c_session;
typedef int64_t of3c_result;

/* The library's of3c version, e.g. "0.1.0-dev". */
const char *of3c_version(void);

/* The calling thread's last error message ("" when none). */
const char *of3c_last_error(void);

/* Compiles an ONNX model into an .of3 artifact. options_json may be NULL or
 * a JSON object with any of: "device" ("cpu"|"gpu"), "precision"
 * ("fp32"|"bf16"|"fp16"), "buckets" ([256, 512]), "memory_budget" (bytes),
 * "chunk_threshold", "chunk_size", "lma_kv_chunk", "passes" (["..."]). */
int of3c_compile(const char *onnx_path, const char *out_path, const char *options_json);

/* Opens an .of3 artifact (or compiles an .onnx model) on device "cpu",
 * "gpu" or "ref" (NULL or "" for the artifact's own). options_json may be
 * NULL or {"buckets": [..] (an empty list turns bucketing off),
 * "precision": "..."}. */
int of3c_open(const char *path, const char *device, const char *options_json, of3c_session *out);

/* Closes a session; unknown handles are ignored. */
void of3c_close(of3c_session s);

/* The session's signature as JSON:
 * {"device": "cpu", "buckets": [...], "inputs": [{"name": "z", "dtype": "f32",
 *  "onnx_dtype": 1, "shape": ["N", "N", "128"]}, ...], "outputs": [...]}.
 * NULL on error. */
const char *of3c_signature(of3c_session s);

/* Runs the session on n inputs: names[i], dtypes[i] (ONNX codes), ranks[i],
 * shapes (all inputs' dims concatenated, ranks[0] + ranks[1] + ... values)
 * and data[i] (nbytes[i] bytes). On success *out is a result handle. */
int of3c_run(of3c_session s, int32_t n, const char *const *names, const int32_t *dtypes,
             const int32_t *ranks, const int64_t *shapes, const void *const *data,
             const int64_t *nbytes, of3c_result *out);

/* Number of outputs of a result (-1 on error). */
int32_t of3c_result_count(of3c_result r);

/* Output i: its name, ONNX dtype, rank and byte size; shape receives up to
 * shape_cap dims (rank may exceed shape_cap: call again with a larger
 * array). Any out pointer may be NULL. */
int of3c_result_info(of3c_result r, int32_t i, const char **name, int32_t *dtype,
                     int32_t *rank, int64_t *shape, int32_t shape_cap, int64_t *nbytes);

/* Copies output i into dst, which holds nbytes bytes (must equal the
 * output's byte size). */
int of3c_result_copy(of3c_result r, int32_t i, void *dst, int64_t nbytes);

/* Frees a result; unknown handles are ignored. */
void of3c_result_free(of3c_result r);

#ifdef __cplusplus
}
#endif

#endif /* OF3C_H */
