/* comm_ipc.h — the CUDA-IPC backend of comm.h: all-reduce of device buffers
 * between the ranks of one host, each rank's kernel reading its peers' GPU
 * memory directly (CUDA IPC handles between processes, plain pointers
 * between threads of one process). It lives in the CUDA module
 * (comm/ipc.c, comm/ipc_kernels.cu), so code outside the module reaches it
 * through cuda_api.comm_ipc_create (kernels/cuda/api.h); the communicator it
 * returns is then used through the ordinary comm_* calls.
 *
 * Ranks: processes, or threads of one process (tests), on ONE host; each on
 * its own GPU (peer access needed) or several on the same GPU. Several ranks
 * on one GPU spin waiting for each other's blocks, so their kernels must run
 * at the same time. Processes with MPS do; processes without MPS time-slice
 * the GPU: correct, but each exchange then waits for a context switch.
 * Threads of one process do when all their blocks fit at once (creation
 * checks it) — but their streams may share a hardware queue
 * (CUDA_DEVICE_MAX_CONNECTIONS, 8 by default), where a rank's second queued
 * all-reduce, waiting for its first, holds up a peer's first queued behind
 * it: a stall until the timeout. Such ranks keep one all-reduce in flight
 * each, or enqueue in lockstep (tests/gpu/check_comm.c does).
 *
 * Memory: each rank cudaMalloc's one region — peers' flags, small device
 * state, and two staging buffers of comm_options.max_floats floats (> 0,
 * required) — zeroes it, and publishes a record (address, IPC handle, pid,
 * GPU UUID, max_floats) in the store under prefix + "ipc/<rank>"; every rank
 * reads, checks and maps every peer's record, then publishes
 * prefix + "ipc/<rank>/ready" (1; 0 when its creation failed after it
 * published, so that the peers fail at once) and waits for every peer's,
 * all within timeout_ms.
 *
 * All-reduce (comm_allreduce_sum_enqueue): one kernel on the caller's
 * stream, no host wait and no host state that changes per call — the
 * kernels count the calls in device memory — so it can be captured in a
 * CUDA graph and replayed. Up to 256 KB one-shot (every rank sums every
 * peer's copy), above two-shot (reduce-scatter, all-gather); both add the
 * ranks in rank order, so every rank, and both algorithms, get the same
 * bits. Every rank must issue the same sequence of all-reduces with the same
 * sizes, and the all-reduces of one communicator must not overlap on
 * different streams (wait for one stream before using another).
 *
 * comm_stream_wait polls the stream, the kernels' failure report, the abort
 * flag and the timeout; on a failure it stops this rank's kernels and says
 * which peer they were waiting for. comm_allreduce_sum and comm_barrier use
 * the communicator's own stream and wait. allgather and broadcast are not
 * carried (the host communicator does those): they fail.
 *
 * Never hangs: every wait in a kernel is bounded by timeout_ms and watches an
 * abort word in host memory (comm_abort sets it: a kernel blocked on a dead
 * peer exits within microseconds); a failure is sticky, so the all-reduces
 * queued after it return at once.
 *
 * comm_free: every stream that carried this communicator's all-reduces must
 * be idle (comm_stream_wait returned) and no graph holding them may be
 * launched again. It promises each peer (a mark in the peer's memory) that
 * it will not touch that memory again, closes its mappings, and frees its
 * region once every peer has promised the same — at most timeout_ms for a
 * healthy communicator, about a second for a failed one (a dead peer never
 * answers). */
#ifndef FACET_COMM_IPC_H
#define FACET_COMM_IPC_H

#include "comm/comm.h"

/* This rank's communicator on CUDA device cuda_device. Blocks until every
 * rank has joined (or the timeout); NULL with the reason in err. */
comm *comm_ipc_create(const comm_options *opt, const comm_store *store, int cuda_device, errbuf *err);

#endif
