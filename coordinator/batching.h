/* batching.h — which sequences run, and how much of each, in the next step
 * (the scheduler's lists and blocks; every function with its lock held).
 *
 * Admission is first come, first served: the head of the queue waits until
 * blocks for all its known tokens (and a small reserve for the running ones
 * to grow) are free. A step carries one token of every generating sequence
 * first, then prompt chunks up to the token budget; each sequence gets the
 * blocks its chunk needs, and when none are free the newest running
 * sequence is preempted: its blocks are freed and it goes back to the
 * queue, to be recomputed from its prompt and the tokens it has produced.
 * "Known tokens not yet in the cache" makes prefill, decode and recompute
 * one operation.
 *
 * The prefill budget (off by default). While some sequences decode, the
 * chunks of prompts that have not produced a token yet share at most
 * max_prefill_tokens tokens per step, so a long prompt slows the running
 * streams by a bounded amount instead of stalling them. Off by default
 * because on a CPU it costs more than it gives for most loads (a prompt
 * token costs a large share of a decode step there: docs/PERFORMANCE.md).
 * Auto (-1) sizes it from the step times (step_timing_line): with a step
 * costing fixed + per_token × tokens, k prompt tokens cost k × per_token,
 * and k = (fixed + per_token) / (2 × per_token) keeps a step within 1.5×
 * a single-stream decode step; at least 1, so prompts always advance, and
 * 1 until the step times determine the line (at start, a whole prompt in
 * the second step would stall the first stream for as long as its own
 * prefill took).
 * Recomputation after a preemption or a lost group is not capped: those
 * streams have stalled already. When nothing decodes, the step's whole
 * token budget goes to prompts. */
#ifndef FACET_COORDINATOR_BATCHING_H
#define FACET_COORDINATOR_BATCHING_H

#include "coordinator/scheduler_impl.h"

#define MAX_PLAN 1024

typedef struct step_plan {
    sequence *seq[MAX_PLAN];
    int chunk[MAX_PLAN];   /* new tokens of seq[i] this step */
    bool sample[MAX_PLAN]; /* the chunk ends the known tokens: sample the next one */
    int n;
} step_plan;

/* Prompt tokens a step may carry besides its decode tokens (see above). */
int batching_prefill_budget(const scheduler *s);
/* Takes the head of the queue while blocks and max_seqs allow. */
void batching_admit(scheduler *s);
/* The next step; plan->n == 0 when there is nothing to compute. */
void batching_plan(scheduler *s, step_plan *plan);
/* Removes (and retires) what the client cancelled and what has finished. */
void batching_drop_done(scheduler *s);
/* Ends every request with an error event. */
void batching_fail_all(scheduler *s, int code, const char *reason);
/* The group is gone with its caches: every running sequence goes back to
 * the queue (in arrival order) to be recomputed on the next group, except
 * those already replayed max_replays times, which fail naming why. Every
 * waiting one may wait until `deadline`. Returns how many were requeued. */
int batching_requeue_all(scheduler *s, const char *reason, double deadline, int *failed);
/* Fails the waiting requests whose wait for a group ran past its deadline. */
void batching_expire_waits(scheduler *s, double now, const char *why);

#endif
