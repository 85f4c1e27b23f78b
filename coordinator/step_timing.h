/* step_timing — how long a step of a given size should take, learned from
 * the steps that ran, for the scheduler's step deadlines.
 *
 * Steps are bucketed by the number of tokens they carry (powers of two:
 * 1, 2-3, 4-7, ...), because a step's time is not proportional to its
 * tokens: a decode step of 16 sequences is bound by reading the weights,
 * a 1 600-token prefill by arithmetic, at a far lower cost per token. Each
 * bucket keeps a moving average of its steps' seconds. A step of a size
 * never seen is estimated from the nearest smaller bucket seen, scaled by
 * the ratio of tokens (an overestimate: the cost per token falls as steps
 * grow), else from the nearest larger one as it is.
 *
 * A step that missed its deadline doubles the next deadlines (up to 64x,
 * and never past the cap), and each step that succeeds halves that factor
 * again: a cluster that got slower (a congested or slow link) keeps its
 * steps and relearns their times, instead of losing its group step after
 * step on deadlines made for the faster cluster; a hang is still caught,
 * within a few times its usual deadline. */
#pragma once

#include <stdbool.h>

#define STEP_TIMING_BUCKETS 24

/* A straight line through recent steps, seconds = fixed + per_token x
 * tokens (least squares, each step's weight decaying by 2 % per step): on
 * a CPU the fixed part is reading the weights once, the slope the
 * arithmetic of one more token. The prefill budget (batching.c) is made
 * from it. */
typedef struct {
    double w, n, nn, t, nt; /* Σ weight, Σ w·tokens, Σ w·tokens², Σ w·seconds, Σ w·tokens·seconds */
} step_line;

typedef struct {
    double ema_s[STEP_TIMING_BUCKETS]; /* moving average of the seconds of a bucket's steps */
    int samples[STEP_TIMING_BUCKETS];
    int total;   /* steps noted, all buckets */
    int backoff; /* the deadlines' factor after missed deadlines: 1 (or 0: not yet set), 2, 4, ... 64 */
    step_line line;
} step_timing;

/* Records that a step of `tokens` tokens took `seconds`. */
void step_timing_note(step_timing *t, int tokens, double seconds);

/* Records that a step missed its deadline. */
void step_timing_missed(step_timing *t);

/* The expected seconds of a step of `tokens` tokens; < 0 when too few steps
 * have run to say (fewer than 3). */
double step_timing_estimate(const step_timing *t, int tokens);

/* The line's two numbers; false while the recent steps do not determine
 * them (too few, all of one size, or a slope that is not positive). */
bool step_timing_line(const step_timing *t, double *fixed_s, double *per_token_s);

/* The deadline of a step: (4 x its estimate + floor_ms) x the backoff
 * factor, at most cap_ms (also the deadline when there is no estimate yet). */
int step_timing_deadline_ms(const step_timing *t, int tokens, int floor_ms, int cap_ms);
