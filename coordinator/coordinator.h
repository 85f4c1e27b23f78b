/* coordinator.h — the coordinator process, assembled: the served model,
 * membership (workers, the group), the rendezvous store, the scheduler, and
 * the front ends (HTTP: the OpenAI API; gRPC: facet.v1.Facet), on one gRPC
 * port shared with the workers' facet.v1.Coordinator service.
 *
 * It takes requests (the front ends, or in process through
 * coordinator_submit), tokenizes them, batches them into steps and sends
 * each step to every rank of the group at once (docs/PROTOCOL.md). Workers
 * register with it and renew a lease; it assigns ranks to the first T live
 * workers (the rest wait as standbys), has them load their shards and form a
 * communicator, and re-forms the group when a member is lost. */
#ifndef FACET_COORDINATOR_H
#define FACET_COORDINATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "coordinator/stats.h"
#include "rpc/rpc.h"
#include "coordinator/stream.h"

typedef struct coordinator_options {
    const char *model_dir;
    int tp;
    const char *host;     /* interface to listen on (default 127.0.0.1) */
    int grpc_port;        /* public gRPC (facet.v1.Facet, health); 0: any free port */
    int cluster_port;     /* the workers' port (facet.v1.Coordinator: Register, KvSet, KvGet); 0: any free port */
    const rpc_security *cluster_security; /* what workers must show on the cluster port (NULL: nothing, --insecure) */
    int http_port;        /* 0: any free port; -1: no HTTP */
    int heartbeat_ms;     /* how often workers renew their lease */
    int lease_ms;         /* a worker silent this long is dead */
    int load_timeout_ms;  /* Load of a shard */
    int comm_timeout_ms;  /* rendezvous and each collective on the workers */
    const char *comm;     /* the workers' all-reduce: auto, nccl, ipc or host (comm/select.h; the workers check it) */
    int step_timeout_ms;  /* the longest a step may take (deadlines follow recent step times below it) */
    int step_deadline_floor_ms; /* the shortest step deadline */
    int max_replays;      /* a request is recomputed on a new group at most this often */
    int failover_timeout_ms; /* a request waits at most this long for a group */
    int replace_timeout_ms;  /* a lost group's replacement may take this long before a smaller group forms */
    int grow_delay_ms;       /* a smaller group grows back when idle, or after this long */
    uint64_t initial_epoch;  /* count epochs from here (tests; a restarted coordinator adopts its workers' anyway) */
    bool allow_faults;       /* the admin API may inject faults (POST /admin/faults) */
    int block_size;       /* KV positions per block */
    int kv_blocks;        /* 0: each worker sizes its cache; the group uses the smallest */
    int max_batch_tokens; /* tokens per step */
    int max_seqs;         /* sequences per step */
    int max_prefill_tokens; /* new prompts' tokens per step while others decode: > 0 that many, 0 no cap, < 0 auto */
    int max_queue;        /* requests waiting; beyond it they are refused (429 / RESOURCE_EXHAUSTED) */
    bool no_prefix_caching; /* compute every prompt from its first token */
    int grpc_threads;     /* concurrent gRPC calls (each Generate stream holds one) */
    const char *served_model_name; /* the name clients use (default: the checkpoint's directory name) */
    const char *api_key;  /* NULL: none; else "Authorization: Bearer KEY" on HTTP /v1 and every gRPC Facet method */
    int max_body_bytes;   /* largest HTTP request body */
    int drain_timeout_ms; /* on SIGTERM: how long requests in flight may finish */
} coordinator_options;

void coordinator_options_default(coordinator_options *o);

typedef struct coordinator coordinator;

coordinator *coordinator_start(const coordinator_options *opt, errbuf *err);
/* Stops taking requests and scheduling: what is in flight fails with "the
 * server is shutting down" once the current step is done. Call before the
 * workers go away, so that no request is told a worker was lost. */
void coordinator_drain(coordinator *co);
/* Graceful shutdown, first half: refuse new requests ("shutting down"),
 * let those in flight finish. coordinator_idle says when they have. */
void coordinator_begin_drain(coordinator *co);
bool coordinator_draining(coordinator *co);
bool coordinator_idle(coordinator *co);
/* Drains (if not yet), stops every thread and server, frees. */
void coordinator_stop(coordinator *co);
int coordinator_grpc_port(const coordinator *co);
int coordinator_cluster_port(const coordinator *co);
int coordinator_http_port(const coordinator *co);
/* Is a group formed and serving? If not, why (into why). */
bool coordinator_ready(coordinator *co, char *why, size_t why_len);
/* Every live worker has failed for good (could not load its shard, or
 * refused --comm): no group can form until workers restart. */
bool coordinator_all_workers_failed(coordinator *co);
bool coordinator_wait_ready(coordinator *co, int timeout_ms, errbuf *err);

/* ---- requests, in process ---------------------------------------------------- */

/* Queues a request (the stream's calls are in stream.h). NULL with *code
 * and err set when refused at once. */
gen_stream *coordinator_submit(coordinator *co, const gen_request *req, int *code, errbuf *err);

/* ---- state, for /metrics and /ready ------------------------------------------- */

void coordinator_get_stats(coordinator *co, coordinator_stats *out);
const char *coordinator_model_name(const coordinator *co);

#endif
