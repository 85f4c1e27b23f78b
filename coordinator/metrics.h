/* metrics.h — Prometheus metrics of the coordinator (GET /metrics), all
 * named facet_*: requests by outcome, tokens, queue and running sequences,
 * KV block usage, latency histograms (time to first token, inter-token,
 * end to end), step time, its overhead and batch size, workers by state,
 * failovers, replays and recovery time. */
#ifndef FACET_COORDINATOR_METRICS_H
#define FACET_COORDINATOR_METRICS_H

#include "coordinator/stats.h"

typedef struct metrics metrics;

/* How a request ended (the label of facet_requests_total). */
typedef enum {
    OUTCOME_STOP,        /* a stop token or string */
    OUTCOME_LENGTH,      /* max_tokens or the context */
    OUTCOME_CANCELLED,   /* the client went away */
    OUTCOME_INVALID,     /* refused: bad input (4xx) */
    OUTCOME_REFUSED,     /* refused: queue full, not ready, too large (429/503) */
    OUTCOME_FAILED,      /* a worker was lost, shutdown, an internal error */
    OUTCOME_COUNT
} request_outcome;

metrics *metrics_create(void);
void metrics_free(metrics *m);

/* A step: its round trip, and rank 0's own time in it (negative: the step
 * failed, no reply to say); the difference is the step's overhead. */
void metrics_observe_step(metrics *m, double seconds, double worker_seconds, int tokens, int seqs);
void metrics_observe_itl(metrics *m, double seconds);
/* A failover: from the lost group to the first token of its replacement. */
void metrics_observe_recovery(metrics *m, double seconds);
/* A finished request; ttft and e2e in seconds (negative: not measured). */
void metrics_request_done(metrics *m, request_outcome outcome, int prompt_tokens, int generated_tokens, double ttft,
                          double e2e);

/* The Prometheus text exposition (malloc'd). */
char *metrics_render(metrics *m, const coordinator_stats *st);

#endif
