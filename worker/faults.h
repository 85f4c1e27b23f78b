/* faults.h — fault injection, for testing failover (docs/FAILOVER.md).
 *
 * A fault is KIND[:MS][@TRIGGER]:
 *   kill        the process dies at once (SIGKILL)
 *   freeze[:MS] the whole process stops (SIGSTOP), heartbeats too, for MS
 *               (default 3000; a helper process sends SIGCONT)
 *   hang[:MS]   the step stops for MS (default 30000) while heartbeats go on:
 *               a stuck kernel
 *   slow:MS     the step takes MS longer
 *   drop        the step runs, its reply is never sent
 *   delay:MS    the step runs, its reply waits MS
 * TRIGGER: step=N (the N-th step from now; default 1, the next), after=S
 * (S seconds from now), p=P (every step, with probability P, until the
 * worker restarts). A worker takes faults only with --allow-fault-injection:
 * at start (--fault) or from its coordinator (InjectFault). */
#ifndef FACET_WORKER_FAULTS_H
#define FACET_WORKER_FAULTS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

typedef enum { FAULT_KILL, FAULT_FREEZE, FAULT_HANG, FAULT_SLOW, FAULT_DROP, FAULT_DELAY } fault_kind;
typedef enum { FAULT_AT_STEP, FAULT_AFTER, FAULT_WITH_P } fault_trigger;

typedef struct fault {
    fault_kind kind;
    int ms;
    fault_trigger trigger;
    double value;   /* steps to go, the monotonic time it fires, or the probability */
} fault;

bool fault_parse(const char *spec, fault *out, errbuf *err);
/* "hang:30000@step=1", as the worker will act on it. */
void fault_describe(const fault *f, char *out, size_t len);

#define FAULTS_MAX 16

typedef struct fault_set {
    pthread_mutex_t mu;
    fault armed[FAULTS_MAX];
    int n;
    uint64_t rng;
} fault_set;

void faults_init(fault_set *s);
void faults_destroy(fault_set *s);
bool faults_add(fault_set *s, const fault *f, errbuf *err);
int faults_armed(fault_set *s);
/* A step begins: the fault due now (step count or probability), if any;
 * one-shot faults are used up. */
bool faults_on_step(fault_set *s, fault *out);
/* The registration thread's tick: a time-triggered kill or freeze acts now;
 * one of the step kinds becomes due at the next step. */
void faults_on_tick(fault_set *s);

/* What kill and freeze do (they do not return, or return after the freeze). */
void fault_kill_now(void);
void fault_freeze_now(int ms);

#endif
