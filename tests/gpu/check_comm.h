/* check_comm.h — gpu_check's check of the CUDA-IPC all-reduce
 * (check_comm.c; the backend is comm/comm_ipc.h). */
#ifndef FACET_TESTS_GPU_CHECK_COMM_H
#define FACET_TESTS_GPU_CHECK_COMM_H

#include "common/error.h"

struct cuda_api;

/* gpu_check's table printers: row() (one counted check, with timing) and
 * op_error() (one counted failure with its message). */
typedef void (*check_row_fn)(const char *op, const char *shape, double err, double tol, double ms, double bytes,
                             double flops);
typedef void (*check_error_fn)(const char *op, const char *shape, const errbuf *err);

/* Ranks as threads of this process on device 0: correctness, graph replay,
 * timing, and the failure paths (a dead peer, comm_abort). Each check is a
 * row. Without the CUDA runtime linked (FACET_GPU_CHECK_COMM undefined) it
 * prints that it was not built. */
void check_comm(const struct cuda_api *api, check_row_fn row, check_error_fn op_error);

#endif
