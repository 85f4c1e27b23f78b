#include "common/threadpool.h"
#include "common/alloc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

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
    unsigned generation; /* bumps once per job */
    int helpers_busy;
    int shutdown;
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

static void *helper_main(void *p) {
    helper_arg *arg = p;
    threadpool *tp = arg->tp;
    int index = arg->index;
    free(arg);
    unsigned seen = 0;
    pthread_mutex_lock(&tp->mu);
    for (;;) {
        while (!tp->shutdown && tp->generation == seen) pthread_cond_wait(&tp->work_cv, &tp->mu);
        if (tp->shutdown) break;
        seen = tp->generation;
        pthread_mutex_unlock(&tp->mu);
        run_tasks(tp, index);
        pthread_mutex_lock(&tp->mu);
        if (--tp->helpers_busy == 0) pthread_cond_signal(&tp->done_cv);
    }
    pthread_mutex_unlock(&tp->mu);
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
    tp->shutdown = 1;
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
    pthread_mutex_lock(&tp->mu);
    tp->fn = fn;
    tp->ctx = ctx;
    tp->n_tasks = n_tasks;
    atomic_store(&tp->next_task, 0);
    tp->helpers_busy = tp->n_threads - 1;
    tp->generation++;
    pthread_cond_broadcast(&tp->work_cv);
    pthread_mutex_unlock(&tp->mu);

    run_tasks(tp, 0);

    pthread_mutex_lock(&tp->mu);
    while (tp->helpers_busy > 0) pthread_cond_wait(&tp->done_cv, &tp->mu);
    pthread_mutex_unlock(&tp->mu);
}
