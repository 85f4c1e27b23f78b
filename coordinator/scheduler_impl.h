/* scheduler_impl.h — the scheduler's state, shared by its files (private):
 *   scheduler.c  the thread, submission, group events, drain, stats
 *   batching.c   admission, preemption, the plan of a step
 *   step_rpc.c   a plan as a StepRequest, sent to every rank
 *   accept.c     rank 0's reply applied: tokens appended, stops, events
 * One mutex (mu) guards it; RPCs are made without it. */
#ifndef FACET_COORDINATOR_SCHEDULER_IMPL_H
#define FACET_COORDINATOR_SCHEDULER_IMPL_H

#include <pthread.h>

#include "coordinator/blocks.h"
#include "coordinator/failover_log.h"
#include "coordinator/scheduler.h"
#include "coordinator/sequence.h"
#include "coordinator/step_timing.h"
#include "rpc/rpc.h"

/* The step streams of the group last stepped, kept between steps (coordinator/step_rpc.c). */
typedef struct step_streams {
    rpc_stream_set *set; /* NULL: none yet */
    uint64_t epoch;      /* the group they belong to */
} step_streams;

struct scheduler {
    scheduler_options opt;
    const served_model *model;
    metrics *metrics;
    membership *members;

    pthread_mutex_t mu;
    pthread_cond_t cv; /* new work, group changes, cancels, stopping */
    pthread_t thread;
    bool started, stopping, draining;

    /* the group steps run on */
    bool serving;      /* FORMED seen for `epoch`, not yet lost */
    uint64_t epoch;
    int group_size;
    block_pool blocks; /* of the current group's caches */
    uint64_t step_epoch;  /* the epoch of the step in flight, 0: none */
    rpc_cancel *cancel;   /* ends the step in flight when its group is lost */
    step_streams streams; /* the persistent step streams of the group last stepped (the step thread's) */
    step_timing timing;   /* recent step times, for step deadlines */

    /* failover */
    uint64_t failovers, replays;
    failover_log log;

    sequence *waiting_head, *waiting_tail; /* FIFO */
    sequence *running;                     /* in arrival order */
    int n_running, n_waiting;
    uint64_t preemptions, steps, next_seq_id, next_step_id;
    uint64_t prefix_hit_tokens; /* known tokens found in the prefix cache at admission */
};

#endif
