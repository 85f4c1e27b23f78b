#include "common/threadpool.h"
#include "common/alloc.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* A decode step of a small model runs a few hundred jobs of tens of
 * microseconds each; waking a thread through a condition variable costs
 * about as much. So both sides spin on atomics for up to SPIN_ROUNDS pause
 * instructions (tens of microseconds) before they sleep, and a sleeper is
 * woken only when one is known to sleep. All atomics are sequentially
 * consistent: "publish a job, then look for sleepers" and "announce a
 * sleeper, then look for the job" cannot both miss each other. */
#define SPIN_ROUNDS 20000
#define SPIN_YIELD_EVERY 64

/* One round of a spin: a pause, and every SPIN_YIELD_EVERY rounds a
 * sched_yield, so that a spinner gives its core away when more threads
 * want the CPUs than there are (two workers of 2 threads on 2 cores:
 * spinning alone halved their throughput, docs/PERFORMANCE.md). */
static inline void spin_pause(int round) {
    if (round % SPIN_YIELD_EVERY == SPIN_YIELD_EVERY - 1) sched_yield();
    else cpu_relax();
}

struct threadpool {
    int n_threads; /* including the caller */
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* a new job, or shutdown */
    pthread_cond_t done_cv; /* all helpers finished the job */
    /* the current job */
    threadpool_fn fn;
    void *ctx;
    int n_tasks;
    atomic_int next_task;
    atomic_uint generation;    /* bumps once per job */
    atomic_int helpers_busy;   /* helpers yet to finish the job */
    atomic_int helpers_asleep; /* helpers waiting on work_cv */
    atomic_int caller_asleep;  /* the caller waits on done_cv */
    atomic_int shutdown;
};

typedef struct {
    threadpool *tp;
    int index;
} helper_arg;

static void run_tasks(threadpool *tp, int thread) {
    for (;;) {
        int i = atomic_fetch_add(&tp->next_task, 1);
        if (i >= tp->n_tasks) break;
        tp->fn(tp->ctx, i, thread);
    }
}

/* Returns when a job newer than `seen` is published (true) or at shutdown (false). */
static bool wait_for_job(threadpool *tp, unsigned seen) {
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        if (atomic_load(&tp->generation) != seen) return true;
        if (atomic_load(&tp->shutdown)) return false;
        spin_pause(i);
    }
    pthread_mutex_lock(&tp->mu);
    atomic_fetch_add(&tp->helpers_asleep, 1);
    while (!atomic_load(&tp->shutdown) && atomic_load(&tp->generation) == seen) pthread_cond_wait(&tp->work_cv, &tp->mu);
    atomic_fetch_sub(&tp->helpers_asleep, 1);
    pthread_mutex_unlock(&tp->mu);
    return !atomic_load(&tp->shutdown);
}

static void *helper_main(void *p) {
    helper_arg *arg = p;
    threadpool *tp = arg->tp;
    int index = arg->index;
    free(arg);
    unsigned seen = 0;
    while (wait_for_job(tp, seen)) {
        seen = atomic_load(&tp->generation);
        run_tasks(tp, index);
        if (atomic_fetch_sub(&tp->helpers_busy, 1) == 1 && atomic_load(&tp->caller_asleep)) {
            pthread_mutex_lock(&tp->mu); /* the caller may be between its check and its wait */
            pthread_cond_signal(&tp->done_cv);
            pthread_mutex_unlock(&tp->mu);
        }
    }
    return NULL;
}

threadpool *threadpool_create(int n_threads) {
    if (n_threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n > 0 ? (int)n : 1;
    }
    threadpool *tp = xcalloc(1, sizeof *tp);
    tp->n_threads = n_threads;
    pthread_mutex_init(&tp->mu, NULL);
    pthread_cond_init(&tp->work_cv, NULL);
    pthread_cond_init(&tp->done_cv, NULL);
    tp->threads = xcalloc((size_t)n_threads, sizeof *tp->threads);
    for (int i = 1; i < n_threads; i++) {
        helper_arg *arg = xmalloc(sizeof *arg);
        arg->tp = tp;
        arg->index = i;
        facet_thread_start(&tp->threads[i], helper_main, arg, "thread pool");
    }
    return tp;
}

void threadpool_free(threadpool *tp) {
    if (!tp) return;
    pthread_mutex_lock(&tp->mu);
    atomic_store(&tp->shutdown, 1);
    pthread_cond_broadcast(&tp->work_cv);
    pthread_mutex_unlock(&tp->mu);
    for (int i = 1; i < tp->n_threads; i++) pthread_join(tp->threads[i], NULL);
    pthread_mutex_destroy(&tp->mu);
    pthread_cond_destroy(&tp->work_cv);
    pthread_cond_destroy(&tp->done_cv);
    free(tp->threads);
    free(tp);
}

int threadpool_size(const threadpool *tp) { return tp ? tp->n_threads : 1; }

void threadpool_run(threadpool *tp, int n_tasks, threadpool_fn fn, void *ctx) {
    if (n_tasks <= 0) return;
    if (!tp || tp->n_threads == 1 || n_tasks == 1) {
        for (int i = 0; i < n_tasks; i++) fn(ctx, i, 0);
        return;
    }
    /* publish the job (the helpers are all idle: the previous job ended) */
    tp->fn = fn;
    tp->ctx = ctx;
    tp->n_tasks = n_tasks;
    atomic_store(&tp->next_task, 0);
    atomic_store(&tp->helpers_busy, tp->n_threads - 1);
    atomic_fetch_add(&tp->generation, 1);
    if (atomic_load(&tp->helpers_asleep) > 0) {
        pthread_mutex_lock(&tp->mu);
        pthread_cond_broadcast(&tp->work_cv);
        pthread_mutex_unlock(&tp->mu);
    }

    run_tasks(tp, 0);

    for (int i = 0; i < SPIN_ROUNDS && atomic_load(&tp->helpers_busy) > 0; i++) spin_pause(i);
    if (atomic_load(&tp->helpers_busy) > 0) {
        pthread_mutex_lock(&tp->mu);
        atomic_store(&tp->caller_asleep, 1);
        while (atomic_load(&tp->helpers_busy) > 0) pthread_cond_wait(&tp->done_cv, &tp->mu);
        atomic_store(&tp->caller_asleep, 0);
        pthread_mutex_unlock(&tp->mu);
    }
}
