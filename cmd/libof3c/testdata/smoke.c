/* Exercises libof3c through of3c.h: open, signature, runs from two threads
 * on one session (results must agree), result info/copy, errors per thread.
 * usage: smoke MODEL.of3   (a model with inputs z f32[N,N,C] and
 * pair_mask f32[N,N], e.g. a compiled tri_att_start fixture) */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../of3c.h"

enum { N = 5, C = 16, RUNS = 4 };
static of3c_session sess;
static float z[N * N * C], mask[N * N];

static int run_once(float *out, int64_t out_bytes) {
	const char *names[2] = {"z", "pair_mask"};
	int32_t dtypes[2] = {1, 1}, ranks[2] = {4, 3};
	int64_t shapes[7] = {1, N, N, C, 1, N, N}; /* openfold3's batch axis of 1 */
	const void *data[2] = {z, mask};
	int64_t nbytes[2] = {sizeof z, sizeof mask};
	of3c_result r;
	if (of3c_run(sess, 2, names, dtypes, ranks, shapes, data, nbytes, &r) != 0) {
		fprintf(stderr, "run: %s\n", of3c_last_error());
		return -1;
	}
	const char *name;
	int32_t dtype, rank;
	int64_t shape[5], nb;
	if (of3c_result_count(r) != 1 || of3c_result_info(r, 0, &name, &dtype, &rank, shape, 5, &nb) != 0 ||
	    dtype != 1 || rank != 4 || shape[0] != 1 || shape[1] != N || shape[2] != N || shape[3] != C || nb != out_bytes) {
		fprintf(stderr, "result info: %s\n", of3c_last_error());
		return -1;
	}
	if (of3c_result_copy(r, 0, out, nb - 4) == 0) { /* wrong size must fail */
		fprintf(stderr, "short copy accepted\n");
		return -1;
	}
	if (of3c_result_copy(r, 0, out, nb) != 0) {
		fprintf(stderr, "copy: %s\n", of3c_last_error());
		return -1;
	}
	of3c_result_free(r);
	return 0;
}

static float outs[2][N * N * C];

static void *worker(void *arg) {
	long k = (long)arg;
	for (int i = 0; i < RUNS; i++)
		if (run_once(outs[k], sizeof outs[k]) != 0)
			return (void *)1;
	/* An error on this thread leaves the other thread's message alone. */
	of3c_session bad;
	if (k == 1 && of3c_open("/nonexistent.of3", NULL, NULL, &bad) == 0)
		return (void *)1;
	if (k == 1 && strstr(of3c_last_error(), "nonexistent") == NULL)
		return (void *)1;
	return NULL;
}

int main(int argc, char **argv) {
	if (argc != 2) return 2;
	for (int i = 0; i < N * N * C; i++) z[i] = (float)((i * 37) % 11) / 11.0f - 0.5f;
	for (int i = 0; i < N * N; i++) mask[i] = (i % 7) ? 1.0f : 0.0f;
	printf("version %s\n", of3c_version());
	if (of3c_open(argv[1], "bogus", NULL, &sess) == 0 || strstr(of3c_last_error(), "cpu") == NULL) {
		fprintf(stderr, "bad device accepted or no message: %s\n", of3c_last_error());
		return 1;
	}
	if (of3c_open(argv[1], "", "{\"buckets\": []}", &sess) != 0) {
		fprintf(stderr, "open: %s\n", of3c_last_error());
		return 1;
	}
	const char *sig = of3c_signature(sess);
	if (sig == NULL || strstr(sig, "\"pair_mask\"") == NULL) {
		fprintf(stderr, "signature: %s\n", sig ? sig : of3c_last_error());
		return 1;
	}
	printf("signature %s\n", sig);
	pthread_t th[2];
	for (long k = 0; k < 2; k++) pthread_create(&th[k], NULL, worker, (void *)k);
	for (int k = 0; k < 2; k++) {
		void *rv;
		pthread_join(th[k], &rv);
		if (rv != NULL) { fprintf(stderr, "thread %d failed\n", k); return 1; }
	}
	if (memcmp(outs[0], outs[1], sizeof outs[0]) != 0) {
		fprintf(stderr, "threads disagree\n");
		return 1;
	}
	if (strcmp(of3c_last_error(), "") != 0) {
		fprintf(stderr, "main thread's error was touched: %s\n", of3c_last_error());
		return 1;
	}
	/* A wrong input is an error, not a crash. */
	const char *names[1] = {"z"};
	int32_t dt[1] = {1}, rk[1] = {4};
	int64_t sh[4] = {1, N, N, C};
	const void *d[1] = {z};
	int64_t nb[1] = {sizeof z};
	of3c_result r;
	if (of3c_run(sess, 1, names, dt, rk, sh, d, nb, &r) == 0 || strstr(of3c_last_error(), "pair_mask") == NULL) {
		fprintf(stderr, "missing input accepted: %s\n", of3c_last_error());
		return 1;
	}
	nb[0] = 8;
	if (of3c_run(sess, 1, names, dt, rk, sh, d, nb, &r) == 0) return 1;
	of3c_close(sess);
	if (of3c_signature(sess) != NULL) return 1;
	printf("out[0..3] %g %g %g\n", outs[0][0], outs[0][1], outs[0][2]);
	printf("ok\n");
	return 0;
}
