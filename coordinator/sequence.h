/* sequence.h — a request being generated, as the scheduler keeps it
 * (private to the scheduler's files and stream.c). Fields above `events`
 * belong to the scheduler and are read and written under its lock; the
 * event queue has its own lock, so a front end waiting on it never holds
 * the scheduler's. */
#ifndef FACET_COORDINATOR_SEQUENCE_H
#define FACET_COORDINATOR_SEQUENCE_H

#include <pthread.h>
#include <stdatomic.h>

#include "coordinator/stream.h"

typedef struct gen_stream sequence;

struct gen_stream {
    uint64_t id;     /* arrival order: FCFS, and the newest is preempted first */
    int32_t *tokens; /* prompt, then generated: (n_tokens) */
    int n_tokens, cap_tokens, prompt_len;
    int n_computed;  /* tokens whose K/V are in the cache */
    int n_generated, max_tokens;
    sampling_params sampling;
    bool ignore_eos, return_logits, has_penalties;
    int top_logprobs;
    seen_tokens seen; /* for penalties */
    int32_t *stop_ids;
    int n_stop_ids;
    int32_t *blocks;  /* KV blocks, in position order */
    int n_blocks, cap_blocks;
    bool finished;    /* its last event is out: retire it */
    int replays;      /* times its group was lost under it */
    double wait_deadline; /* waiting for a group: fail it after this (monotonic s); 0: not waiting for one */
    sequence *next;   /* in the waiting queue or the running list, both in arrival order */

    atomic_bool cancelled;       /* by the client */
    void (*wake)(void *ctx);     /* tells the scheduler something changed (a cancel) */
    void *wake_ctx;

    pthread_mutex_t mu; /* the event queue */
    pthread_cond_t cv;
    gen_event *events;
    int n_events, cap_events, head;
    atomic_int refs; /* the scheduler's and the client's */
};

/* A new sequence for req, referenced twice (scheduler and client). */
sequence *sequence_create(const gen_request *req, int max_position, void (*wake)(void *), void *wake_ctx);
/* Queues an event for the client. */
void sequence_push_event(sequence *s, const gen_event *ev);
/* Drops one reference; the last frees. */
void sequence_unref(sequence *s);
/* Appends a generated token to the known tokens. */
void sequence_append(sequence *s, int32_t id);

#endif
