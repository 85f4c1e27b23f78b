/* scheduler.h — requests, KV blocks and steps: continuous batching.
 *
 * The scheduler owns every request from submission to its last event. It
 * admits requests first come, first served when KV blocks for all their
 * known tokens are free; each step carries one token of every generating
 * sequence, then prompt chunks up to the token budget; when blocks run out
 * the newest sequence is preempted (recomputed later, with the same tokens:
 * sampling is keyed by position). Each step goes to every rank of the group
 * at once; rank 0's reply carries the sampled tokens.
 *
 * It runs on the group membership (membership.h) publishes: a FORMED event
 * gives it an epoch and a fresh cache to fill; a LOST event (or a step that
 * fails or misses its deadline) ends what ran on that group, and every
 * sequence goes back to the queue to be recomputed -- prompt and the tokens
 * it has produced -- on the next group, where it continues with exactly the
 * tokens it would have produced (docs/FAILOVER.md). A request waits for a
 * group for at most failover_timeout_ms and is replayed at most max_replays
 * times; then it ends with a retriable error saying why. Front ends see only
 * scheduler_submit and the stream it returns (stream.h). */
#ifndef FACET_COORDINATOR_SCHEDULER_H
#define FACET_COORDINATOR_SCHEDULER_H

#include "coordinator/membership.h"
#include "coordinator/metrics.h"
#include "coordinator/served_model.h"
#include "coordinator/stats.h"
#include "coordinator/stream.h"

typedef struct scheduler_options {
    int block_size;       /* KV positions per block */
    int max_batch_tokens; /* tokens per step */
    int max_seqs;         /* sequences per step */
    int max_prefill_tokens; /* new prompts' tokens a step carries while others decode: > 0 that many,
                               0 up to max_batch_tokens (the default), < 0 auto (batching.h) */
    int max_queue;        /* requests waiting; beyond it they are refused (429 / RESOURCE_EXHAUSTED) */
    bool prefix_caching;  /* share the KV blocks of equal prefixes (blocks.h) */
    int step_timeout_ms;  /* the longest a step may take, whatever its size */
    int step_deadline_floor_ms; /* the shortest deadline a step gets: deadlines follow recent step times */
    int max_replays;      /* a request recomputed on new groups more often than this fails */
    int failover_timeout_ms; /* a request waits this long for a group (after a loss, or arriving without one) */
} scheduler_options;

typedef struct scheduler scheduler;

scheduler *scheduler_create(const scheduler_options *opt, const served_model *model, metrics *m);
/* Runs steps on the groups members publishes (scheduler_on_group_event is
 * the listener to give membership_create). */
void scheduler_start(scheduler *s, membership *members);
void scheduler_on_group_event(void *ctx, const group_event *ev);
/* Stops: what is in flight fails with "the server is shutting down" once the
 * current step is done; joins the thread. */
void scheduler_stop(scheduler *s);
void scheduler_free(scheduler *s);

/* Queues a request. NULL with *code (a gRPC status) and err set when it is
 * refused at once: invalid, the queue full, shutting down, not serving. */
gen_stream *scheduler_submit(scheduler *s, const gen_request *req, int *code, errbuf *err);

/* Graceful shutdown, first half: refuse new requests, let those in flight finish. */
void scheduler_begin_drain(scheduler *s);
bool scheduler_draining(scheduler *s);
bool scheduler_idle(scheduler *s); /* nothing waiting or running */
/* Serving: a group formed and steps can run on it. If not, why. */
bool scheduler_ready(scheduler *s, char *why, size_t why_len);
void scheduler_stats(scheduler *s, coordinator_stats *out);

/* The admin API: a fault injected now (for the failover timeline), and
 * the timeline itself as JSON (failover_log.h; malloc'd). */
void scheduler_note_fault(scheduler *s, int rank, const char *spec);
char *scheduler_failover_json(scheduler *s);

#endif
