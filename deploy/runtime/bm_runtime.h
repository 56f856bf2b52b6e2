/* The binary-models runtime's C API: load a packed model, run it on a float32 NCHW tensor, read its
 * outputs; no MXNet, no Python. Every function returns BM_OK or an error code; bm_last_error() then says
 * what went wrong in one line (per thread). docs/runtime.md has an example. */
#ifndef BM_RUNTIME_H
#define BM_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  BM_OK = 0,
  BM_ERROR_ARGUMENT = 1,    /* a null pointer, a wrong input shape, a thread count out of range */
  BM_ERROR_MODEL = 2,       /* a missing, unreadable, corrupt or inconsistent model file */
  BM_ERROR_UNSUPPORTED = 3, /* the model uses operators the runtime does not have (named in the message) */
  BM_ERROR_MEMORY = 4,      /* out of memory */
  BM_ERROR_INTERNAL = 5
} bm_status;

typedef struct bm_model bm_model;

/* PREFIX-symbol.json + PREFIX-0000.params (and PREFIX.pair.json when present: their SHA-256 is checked). */
bm_status bm_model_load(const char* prefix, bm_model** model);
/* The two files' contents, already in memory (no pair record check). */
bm_status bm_model_load_memory(const char* symbol_json, size_t symbol_size, const void* params, size_t params_size,
                               bm_model** model);
void bm_model_free(bm_model* model);

/* Threads of the one OpenMP team every operator uses; 0: OMP_NUM_THREADS, else every core. On a machine shared
 * with other work, run with OMP_WAIT_POLICY=passive in the environment (docs/runtime.md, Threads). */
bm_status bm_model_set_threads(bm_model* model, int threads);

/* Runs the model on input, float32 of shape (n, c, h, w) = shape[0..3]. */
bm_status bm_model_run(bm_model* model, const float* input, const int64_t shape[4]);

int bm_model_num_outputs(const bm_model* model);
/* Output `index` of the last run: its floats and shape (*ndim dimensions), valid until the next run. */
bm_status bm_model_output(const bm_model* model, int index, const float** data, const int64_t** shape, int* ndim);

/* The last error of this thread, one line ("" when none). */
const char* bm_last_error(void);
/* The binary kernels' instruction set ("avx512", "avx2", "neon-dot", "neon", "scalar"). */
const char* bm_isa(void);

#ifdef __cplusplus
}
#endif

#endif /* BM_RUNTIME_H */
