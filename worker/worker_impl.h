/* worker_impl.h — the worker process's state, shared by its files (private):
 *   worker.c        the process: start, the registration loop, stop
 *   worker_state.c  the state line
 *   group_comm.c    the group's communicators (host, IPC, NCCL), the engine's device all-reduce hooks
 *   service.c       the Worker service: one handler pattern, Load / InitComm / Step / Abort / Health
 *   shard.c         loading (or keeping) this rank's shard, sizing its KV cache
 *   step_exec.c     a StepRequest run on the engine and the distributed sampler
 *   registration.c  Register with the coordinator, the lease
 * Locks: `mu` serialises Load, InitComm and Step (in arrival order);
 * `comm_mu` guards the communicator pointers so Abort can reach them while a
 * step is blocked in a collective; `state_mu` the state line. */
#ifndef FACET_WORKER_WORKER_IMPL_H
#define FACET_WORKER_WORKER_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "comm/comm.h"
#include "comm/select.h"
#include "facet/v1/worker.pb-c.h"
#include "rpc/rpc.h"
#include "worker/engine.h"
#include "worker/faults.h"
#include "worker/worker.h"

#define WORKER_N_METHODS 9

typedef struct worker {
    worker_options opt;
    char id[40];
    char address[300]; /* host:port */
    rpc_channel *coordinator;
    rpc_server *server;
    rpc_server *health_server; /* --health-listen: grpc.health.v1 alone, plaintext */
    rpc_method health_methods[2];

    pthread_mutex_t mu; /* Load, InitComm, Step */
    engine *engine;
    char loaded[1024];  /* "model|rank|tp|blocks|block_size|max_tokens" of the engine */
    int rank, tp, kv_blocks;
    _Atomic uint64_t epoch;         /* written under mu; Abort and Health read it without */
    _Atomic uint64_t vouched_epoch; /* the coordinator's epoch in its last Register reply (registration thread) */
    double comm_s;      /* time in all-reduces during the current step */
    float *logits;      /* [rows, vocab shard] of the last step; kept (grow-only): up to 64 MB a step at V = 256k */
    size_t logits_cap;  /* floats */

    pthread_mutex_t comm_mu; /* the communicator pointers, for Abort */
    comm *comm;              /* host (Gloo), T > 1: the sampler's exchange, and the all-reduce when plan.host */
    comm *dev_ipc, *dev_nccl; /* device communicators (CUDA engine), as plan says */
    comm_plan plan;
    uint64_t comm_gen;       /* counts the groups' communicators: CUDA graphs hold the one they captured */
    bool step_comm_failed;   /* a collective of the current step failed (its status is ABORTED) */

    pthread_mutex_t state_mu;
    char state[256];    /* idle, loading, loaded, ready, failed: ... */
    atomic_bool busy;   /* a Load or Step is running (reported in Register) */
    fault_set faults;   /* armed faults (--allow-fault-injection) */
    rpc_method methods[WORKER_N_METHODS];
} worker;

/* worker_state.c */
void worker_set_state(worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void worker_get_state(worker *w, char *out, size_t len);

/* group_comm.c: makes this rank's communicators for the group co describes:
 * every rank's topology record through the store, the plan for `mode`, then
 * the host communicator (T > 1) and the device ones the plan names. On
 * failure the worker holds none. */
bool group_comm_create(worker *w, const comm_options *co, comm_mode mode, const comm_store *store, errbuf *err);
/* Discards the communicators: their group is over (a new epoch, a failure or
 * shutdown), so abort first -- a graceful close would wait for peers that
 * may never come. */
void worker_drop_comm(worker *w);
/* Makes every collective of the group fail now (Abort); comm_mu held. */
void worker_abort_comms(worker *w);
/* The hooks a CUDA engine reduces device buffers through (ctx: the worker). */
engine_device_comm worker_device_comm(worker *w);

/* shard.c: makes the engine hold rank `rank` of `tp` of `model` (kept when it
 * already does); kv_blocks 0 = size the cache here. The checkpoint must lie
 * under the worker's model root, and is checked whole (config, headers, the
 * rank's tensors) before the shard held now is given up: a Load that fails
 * leaves the worker with the shard it had. */
typedef struct shard_request {
    const char *model;
    int rank, tp;
    int kv_blocks, block_size, max_batch_tokens;
} shard_request;
bool shard_load(worker *w, const shard_request *r, errbuf *err);

/* step_exec.c: runs the step (the request checked); on rank 0 fills resp
 * with the sampled tokens. Returns a gRPC status: OK, INVALID_ARGUMENT (a
 * malformed batch) or ABORTED (a collective failed: this worker is fine,
 * its group is not). */
int step_exec(worker *w, const Facet__V1__StepRequest *r, Facet__V1__StepResponse *resp, errbuf *err);
/* The engine's all-reduce hook (ctx: the worker): the current communicator, timed. */
bool worker_allreduce(void *ctx, float *buf, size_t n, errbuf *err);

/* service.c: the Worker service's method table (for rpc_server_start), and
 * grpc.health.v1's alone (for the plaintext --health-listen port). */
int worker_service_methods(worker *w, rpc_method *out);
int worker_health_methods(worker *w, rpc_method *out);

/* registration.c: one Register call, and when to send the next. */
typedef enum {
    RENEW_STOP,  /* refused for good (protocol version) */
    RENEW_LATER, /* after a heartbeat */
    RENEW_NOW,   /* just accepted by a coordinator it was not registered with: again at once, because a
                    coordinator chooses a worker for a group from its second Register on */
} renew_next;
renew_next registration_renew(worker *w, uint32_t *heartbeat_ms, char *last_reason, size_t last_len);

#endif
