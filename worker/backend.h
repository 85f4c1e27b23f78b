/* backend.h — which compute backend this process can use.
 *
 * The CUDA backend is a separate module (libfacet_cuda.so, built when nvcc
 * is found) loaded with dlopen, so the `facet` binary itself never needs a
 * CUDA library to start. */
#ifndef FACET_WORKER_BACKEND_H
#define FACET_WORKER_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "comm/comm_nccl.h"
#include "worker/engine.h"

/* The CUDA module's table (kernels/cuda/api.h), loaded once and kept; NULL
 * with the reason in `why` when the module is absent, does not load, or is
 * of another API version. */
struct cuda_api;
const struct cuda_api *backend_cuda_api(char *why, size_t why_len); /* its probe says how many GPUs */

/* Resolves --device: "cpu", "cuda" (an error naming why when CUDA cannot
 * start) or "auto" (CUDA when it can start, else the CPU). note gets one
 * line saying what was chosen and, for the CPU, why not CUDA; it is empty
 * for an explicit "cpu" (nothing to explain). */
bool backend_choose_device(const char *name, engine_device *out, char *note, size_t note_len, errbuf *err);

/* A worker's device options (the command line's --device and friends). */
typedef struct device_choice {
    const char *device;           /* "auto", "cpu", "cuda" */
    int cuda_device;              /* -1: rank % number of GPUs */
    float gpu_memory_utilization; /* share of each GPU's memory a worker may use */
    bool no_cuda_graphs;
} device_choice;

/* Fills the device fields of eo for this rank: resolves auto, picks the GPU.
 * note: what was chosen, in one line (for the log). */
bool backend_apply_device(const device_choice *c, int rank, engine_options *eo, char *note, size_t note_len,
                          errbuf *err);

/* The module's path next to the executable; false when it cannot be named. */
bool backend_cuda_module_path(char *out, size_t len);

/* comm_nccl_create from the NCCL module (libfacet_nccl.so, next to the
 * executable), loaded once and kept; NULL with the reason in `why` when the
 * module is absent or does not load (no libnccl). */
comm_nccl_create_fn backend_nccl_create(char *why, size_t why_len);

#endif
