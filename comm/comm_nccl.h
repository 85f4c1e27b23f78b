/* comm_nccl.h — the NCCL backend of comm.h: collectives on GPU memory.
 *
 * It lives in its own module (libfacet_nccl.so, built when CUDA and NCCL are
 * found), so code outside the module looks it up with
 * dlsym(handle, "comm_nccl_create") through comm_nccl_create_fn; the
 * communicator it returns is then used through the ordinary comm_* calls.
 *
 * Buffers: every pointer passed to comm_allreduce_sum, comm_allgather and
 * comm_broadcast on an NCCL communicator is a DEVICE pointer on the
 * communicator's GPU (host pointers fail with an NCCL error). Each call is
 * issued on a stream the communicator owns and returns when the result is
 * in the buffer (or with an error); comm_options.max_floats is not used.
 * comm_allreduce_sum_enqueue issues on the caller's stream instead (a CUDA
 * engine's, inside its decode graphs) and comm_stream_wait waits for it.
 *
 * Never hangs: initialization is non-blocking, and every wait polls for
 * completion, NCCL's asynchronous errors, the abort flag and the timeout;
 * on a timeout or an abort the NCCL communicator is aborted (ncclCommAbort)
 * and the comm fails every later call. */
#ifndef FACET_COMM_NCCL_H
#define FACET_COMM_NCCL_H

#include "comm/comm.h"

/* Rank 0 creates the NCCL unique id and publishes it in the store under
 * opt->prefix + "nccl-id"; the others read it from there. cuda_device is the
 * GPU this rank uses. Blocks until every rank has joined (or the timeout). */
comm *comm_nccl_create(const comm_options *opt, const comm_store *store, int cuda_device, errbuf *err);
typedef comm *(*comm_nccl_create_fn)(const comm_options *opt, const comm_store *store, int cuda_device, errbuf *err);

#endif
