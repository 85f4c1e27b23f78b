/* threadpool.h — a fixed set of worker threads for data-parallel loops.
 *
 * threadpool_run(tp, n, fn, ctx) calls fn(ctx, i, thread) for every i in
 * [0, n), spread over the threads (the caller's thread takes part), and
 * returns when all calls have finished. Tasks are handed out dynamically in
 * order, so give it more tasks than threads when their costs differ. */
#ifndef FACET_COMMON_THREADPOOL_H
#define FACET_COMMON_THREADPOOL_H

typedef struct threadpool threadpool;
typedef void (*threadpool_fn)(void *ctx, int task, int thread);

/* n_threads <= 0 means one per online CPU. */
threadpool *threadpool_create(int n_threads);
void threadpool_free(threadpool *tp);
int threadpool_size(const threadpool *tp);
void threadpool_run(threadpool *tp, int n_tasks, threadpool_fn fn, void *ctx);

#endif
