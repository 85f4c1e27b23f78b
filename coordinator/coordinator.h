/* coordinator.h — the coordinator: membership, group formation, scheduling.
 *
 * It takes requests (gRPC facet.v1.Facet, or in process through
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
#include "worker/sampler.h"

typedef struct coordinator_options {
    const char *model_dir;
    int tp;
    const char *host;     /* interface to listen on (default 127.0.0.1) */
    int grpc_port;        /* 0: any free port */
    int http_port;        /* 0: any free port; -1: no HTTP */
    int heartbeat_ms;     /* how often workers renew their lease */
    int lease_ms;         /* a worker silent this long is dead */
    int load_timeout_ms;  /* Load of a shard */
    int comm_timeout_ms;  /* rendezvous and each collective on the workers */
    int step_timeout_ms;  /* one step */
    int block_size;       /* KV positions per block */
    int kv_blocks;        /* 0: each worker sizes its cache; the group uses the smallest */
    int max_batch_tokens; /* tokens per step */
    int max_seqs;         /* sequences per step */
    int max_queue;        /* requests waiting; beyond it they are refused (429 / RESOURCE_EXHAUSTED) */
    int grpc_threads;     /* concurrent gRPC calls (each Generate stream holds one) */
    const char *served_model_name; /* the name clients use (default: the checkpoint's directory name) */
    const char *api_key;  /* NULL: none; else "Authorization: Bearer KEY" on HTTP /v1 and gRPC Facet */
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
int coordinator_http_port(const coordinator *co);
/* Is a group formed and serving? If not, why (into why). */
bool coordinator_ready(coordinator *co, char *why, size_t why_len);
bool coordinator_wait_ready(coordinator *co, int timeout_ms, errbuf *err);

/* ---- requests, in process ---------------------------------------------------- */

typedef struct gen_request {
    const int32_t *prompt; /* token ids, <bos> included */
    int prompt_len;
    sampling_params sampling;
    int max_tokens;
    bool ignore_eos;
    const int32_t *stop_ids; /* besides <eos> */
    int n_stop_ids;
    bool return_logits;
    int top_logprobs;        /* alternatives per token, 0..20 */
} gen_request;

typedef enum { GEN_EVENT_TOKEN, GEN_EVENT_DONE, GEN_EVENT_ERROR } gen_event_kind;

typedef struct gen_event {
    gen_event_kind kind;
    int32_t token;        /* TOKEN */
    float logprob;
    float *logits;        /* TOKEN with return_logits: (vocab), the caller frees */
    int n_top;            /* top alternatives and their logprobs, best first */
    int32_t top_ids[SAMPLER_MAX_TOP_LOGPROBS];
    float top_logprobs[SAMPLER_MAX_TOP_LOGPROBS];
    const char *finish;   /* DONE: "stop" or "length" */
    int code;             /* ERROR: a gRPC status code */
    char message[ERRBUF_LEN];
} gen_event;

typedef struct gen_stream gen_stream;

/* Queues a request. NULL with *code and err set when refused at once. */
gen_stream *coordinator_submit(coordinator *co, const gen_request *req, int *code, errbuf *err);
/* The next event; false if none came within timeout_ms. */
bool gen_stream_next(gen_stream *s, gen_event *ev, int timeout_ms);
/* Stops generating (client gone); its KV blocks are freed by the next step. */
void gen_stream_cancel(gen_stream *s);
void gen_stream_release(gen_stream *s);

/* ---- state, for /metrics and /ready ------------------------------------------- */

typedef struct coordinator_stats {
    bool ready;
    uint64_t epoch;
    int waiting, running;
    int kv_blocks_total, kv_blocks_free;
    int workers_live, workers_in_group, workers_failed;
    uint64_t preemptions, steps;
} coordinator_stats;
void coordinator_get_stats(coordinator *co, coordinator_stats *out);
const char *coordinator_model_name(const coordinator *co);

#endif
