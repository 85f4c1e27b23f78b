/* backend.h — which compute backend this process can use.
 *
 * The CUDA backend is a separate module (libfacet_cuda.so, built when nvcc
 * is found) loaded with dlopen, so the `facet` binary itself never needs a
 * CUDA library to start. */
#ifndef FACET_WORKER_BACKEND_H
#define FACET_WORKER_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

/* Looks for the CUDA module next to the executable and asks it for devices.
 * Returns the device count (0 when none) and says why in `why`. */
int backend_cuda_probe(char *why, size_t why_len);

#endif
