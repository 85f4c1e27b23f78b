/* comm.h — collective communication between the ranks of a tensor-parallel
 * group: one interface, two backends.
 *
 *   Gloo (comm/gloo.cc): CPU buffers over TCP. The CPU worker's transport,
 *       and host-staged all-reduce for T > 1 on one GPU.
 *   NCCL (comm/nccl.c, module libfacet_nccl.so): device buffers, any topology.
 *   IPC (comm/ipc.c + ipc_kernels.cu, in the CUDA module): device buffers of
 *       ranks on one host, exchanged through CUDA IPC handles; one-shot for
 *       small messages, two-shot for large ones.
 *   Which one a group uses is comm/select.h's decision (--comm).
 *
 * Every call has a timeout and returns an error instead of hanging; after
 * comm_abort() (callable from any thread) calls fail fast. A failed or
 * aborted communicator is not reused: the coordinator forms a new group
 * with a new epoch and every rank creates a new communicator.
 *
 * Rendezvous goes through a key-value store (comm_store): the coordinator's
 * over gRPC in production, an in-process one in tests and benchmarks. Keys
 * are namespaced by comm_options.prefix (the group's epoch), so a stale
 * rank can never join a newer group. */
#ifndef FACET_COMM_H
#define FACET_COMM_H

#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"

typedef struct comm comm;

/* A rendezvous key-value store. */
typedef struct comm_store {
    void *ctx;
    /* Stores data under key (overwriting). */
    bool (*set)(void *ctx, const char *key, const void *data, size_t len, errbuf *err);
    /* 1: found (*data is malloc'd, *len its size); 0: not there yet; -1: error. */
    int (*get)(void *ctx, const char *key, void **data, size_t *len, errbuf *err);
} comm_store;

typedef struct comm_options {
    int rank, size;
    const char *prefix;   /* namespace for rendezvous keys, e.g. "epoch-7/" */
    const char *hostname; /* the address peers reach this rank on (Gloo TCP); NULL: 127.0.0.1 */
    int timeout_ms;       /* bound on rendezvous and on every collective */
    size_t max_floats;    /* largest all-reduce, in floats (persistent plans are sized by it) */
} comm_options;

/* Gloo over TCP. Blocks until every rank has joined (or the timeout). Sets
 * SIGPIPE to ignored if it is at its default: Gloo's socket writes would
 * otherwise kill the process when a peer has closed. */
comm *comm_gloo_create(const comm_options *opt, const comm_store *store, errbuf *err);

int comm_rank(const comm *c);
int comm_size(const comm *c);
const char *comm_backend_name(const comm *c);

/* buf (n floats) = elementwise sum over ranks; every rank gets the same bits. */
bool comm_allreduce_sum(comm *c, float *buf, size_t n, errbuf *err);
/* recv (size * bytes) = every rank's send (bytes), in rank order. */
bool comm_allgather(comm *c, const void *send, void *recv, size_t bytes, errbuf *err);
/* buf (bytes) = root's buf on every rank. */
bool comm_broadcast(comm *c, void *buf, size_t bytes, int root, errbuf *err);
bool comm_barrier(comm *c, errbuf *err);

/* Device backends (NCCL, IPC) only. Enqueues buf (n floats, a DEVICE
 * pointer) = the sum over ranks on `stream` (a cudaStream_t) and returns
 * without waiting, so that the call can be captured into a CUDA graph; a
 * host backend refuses it. Every rank gets the same bits. */
bool comm_allreduce_sum_enqueue(comm *c, float *buf, size_t n, void *stream, errbuf *err);
/* Waits until `stream` has finished everything enqueued on it, watching the
 * backend's own errors, comm_abort() and the timeout (measured from the
 * call); on any of them the communicator fails (and the device backend
 * stops its kernels: nothing stays blocked on a dead peer). */
bool comm_stream_wait(comm *c, void *stream, errbuf *err);
/* Does this communicator reduce device buffers (NCCL, IPC)? */
bool comm_on_device(const comm *c);
/* Makes current and later calls fail at once: a collective blocked in
 * another thread returns an error within milliseconds. Thread-safe. */
void comm_abort(comm *c);
/* Collectives on one comm come from one thread at a time, and comm_free only
 * after the last has returned. Gloo: a healthy comm (not aborted, nothing
 * failed) first waits, at most the timeout, for every rank to reach
 * comm_free, so that closing cannot fail a slower peer's last collective;
 * an aborted or failed one closes at once. */
void comm_free(comm *c);

/* An in-process store (tests, benchmarks, all ranks in one process). */
comm_store *comm_store_local_create(void);
void comm_store_local_free(comm_store *s);

#endif
