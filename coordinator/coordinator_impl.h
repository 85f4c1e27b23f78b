/* coordinator_impl.h — the coordinator's state, shared by its files:
 *   coordinator.c  start/stop, the rendezvous key-value store
 *   membership.c   registrations, leases, forming and breaking the group
 *   scheduler.c    requests, KV blocks, building and running steps
 *   api.c          the public gRPC service and grpc.health.v1
 *   http.c         GET /health and /ready
 * One mutex (mu) guards all of it; RPCs to workers are made without it. */
#ifndef FACET_COORDINATOR_IMPL_H
#define FACET_COORDINATOR_IMPL_H

#include <pthread.h>
#include <time.h>

#include "coordinator/coordinator.h"
#include "coordinator/tokenizer/tokenizer.h"
#include "model/config.h"
#include "rpc/rpc.h"

#define MAX_TP 64

typedef struct worker_entry {
    char id[64];
    char address[256];
    char device[128];
    char state[256];      /* as the worker last reported it */
    int requested_rank;   /* -1: any */
    double registered_at, last_seen;
    double suspect_since; /* a step or RPC to it failed then: not chosen until it is heard from again */
    bool failed;          /* it could not load its shard: never chosen (until it restarts) */
    bool dead;            /* its lease lapsed: freed once no step uses it */
    char failure[ERRBUF_LEN];
    int rank;             /* in the group, else -1 */
    rpc_channel *channel;
} worker_entry;

typedef enum { GROUP_NONE, GROUP_FORMING, GROUP_READY } group_state;

typedef struct kv_entry {
    char *key;
    uint8_t *value;
    size_t len;
} kv_entry;

typedef struct gen_stream sequence; /* a request being generated (scheduler.c) */

struct coordinator {
    coordinator_options opt;
    gemma_config cfg;
    tokenizer *tok; /* NULL when the checkpoint has no tokenizer.model (token ids only) */
    int eos_id, eot_id;

    rpc_server *grpc;
    int grpc_port;
    rpc_method methods[12];
    void *http; /* struct MHD_Daemon */
    int http_port;

    pthread_mutex_t mu;
    pthread_cond_t cv; /* new work, group changes, stopping */
    bool stopping;
    bool draining; /* refusing new requests; those in flight go on */
    time_t started_at;
    char model_name[256];
    pthread_t membership_thread, scheduler_thread;

    /* membership */
    worker_entry **workers;
    int n_workers, cap_workers;
    group_state group;
    uint64_t epoch;
    worker_entry *members[MAX_TP]; /* by rank, while FORMING or READY */
    char not_ready[ERRBUF_LEN];    /* why there is no group, for /ready and errors */
    int group_kv_blocks;
    /* aborts to send (outside the lock) after a group broke */
    char pending_abort_addr[MAX_TP][256];
    int n_pending_abort;
    uint64_t pending_abort_epoch;
    char pending_abort_reason[ERRBUF_LEN];

    /* rendezvous store */
    kv_entry *kv;
    int n_kv, cap_kv;

    /* scheduler */
    sequence *waiting_head, *waiting_tail; /* FIFO */
    sequence *running;                     /* in arrival order */
    int n_running, n_waiting;
    uint64_t preemptions, steps;
    struct metrics *metrics;
    int32_t *free_blocks;
    int n_free_blocks;
    uint64_t next_seq_id, next_step_id;
    int steps_in_flight; /* worker entries are not freed while a step uses their channels */
};

/* coordinator.c */
void kv_drop_before_epoch(coordinator *co, uint64_t epoch);

/* membership.c */
void *membership_main(void *p);
void membership_handle_register(void *ctx, rpc_call *call, const uint8_t *data, size_t len);
/* Called with mu held: the group is lost; fails every request with reason. */
void group_break(coordinator *co, const char *reason);
void workers_free(coordinator *co);

/* scheduler.c */
void *scheduler_main(void *p);
void scheduler_fail_all(coordinator *co, int code, const char *reason); /* mu held */
void scheduler_reset_blocks(coordinator *co, int n_blocks);            /* mu held */

/* api.c */
void api_handle_generate(void *ctx, rpc_call *call, const uint8_t *data, size_t len);
void api_handle_tokenize(void *ctx, rpc_call *call, const uint8_t *data, size_t len);
void api_handle_model_info(void *ctx, rpc_call *call, const uint8_t *data, size_t len);
void api_handle_health_check(void *ctx, rpc_call *call, const uint8_t *data, size_t len);
void api_handle_health_watch(void *ctx, rpc_call *call, const uint8_t *data, size_t len);

/* http.c */
bool http_start(coordinator *co, errbuf *err);
void http_stop(coordinator *co);

#endif
