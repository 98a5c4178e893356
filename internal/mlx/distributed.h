// extern "C" binding of MLX's distributed layer (mlx::core::distributed):
// one process-wide group, initialised once, and collectives on MLX arrays.
// Same conventions as shim.h: int status (0 = ok), results through
// out-pointers, no C++ exception crosses into the caller; the message of a
// failure is kept per thread (mlxs_dist_last_error). Array-producing calls
// build lazy arrays; the communication happens when they are evaluated
// (mlxs_eval), on the executor thread like every other MLX call.
#ifndef OF3C_MLX_DISTRIBUTED_H
#define OF3C_MLX_DISTRIBUTED_H

#include "shim.h"

#ifdef __cplusplus
extern "C" {
#endif

const char* mlxs_dist_last_error(void);
// Whether MLX was built with the backend ("ring", "mpi", "nccl", "jaccl", "any").
int mlxs_dist_is_available(const char* backend, bool* out);
// Initialises the group of backend (strict: no silent singleton fallback for a
// named backend). MLX's ring backend blocks in accept/connect until every
// peer is up; the call gives up after timeout_ms (> 0) with an error, leaving
// the blocked initialisation behind (the process should then exit).
// A second call returns the group already made.
int mlxs_dist_init(const char* backend, int timeout_ms, int* rank, int* size);
// rank 0, size 1 before init.
int mlxs_dist_group(int* rank, int* size);
// Sum over every rank (same shape everywhere).
int mlxs_dist_all_sum(mlxs_array* out, mlxs_array x);
// The ranks' x concatenated along axis in rank order (same shape everywhere).
int mlxs_dist_all_gather(mlxs_array* out, mlxs_array x, int axis);
// Every rank splits x along split_axis into size equal chunks; rank r gets
// chunk r of every rank, concatenated along concat_axis in rank order.
// Built from all_gather and a slice (MLX has no all-to-all primitive).
int mlxs_dist_all_to_all(mlxs_array* out, mlxs_array x, int split_axis, int concat_axis);
// Point to point (the ring backend: neighbours only). send's result must be
// evaluated for the send to happen.
int mlxs_dist_send(mlxs_array* out, mlxs_array x, int dst);
int mlxs_dist_recv(mlxs_array* out, const int64_t* shape, int ndim, int dtype, int src);

#ifdef __cplusplus
}
#endif
#endif
