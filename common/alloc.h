/* alloc.h — the memory policy: allocations that cannot fail.
 *
 * Bookkeeping memory (a request's tokens, an event queue, a step's arrays,
 * a worker table) is small next to what the process already holds, and a
 * process that cannot get it cannot do anything sensible: xmalloc and
 * friends end the process with one line naming the size and the call site
 * instead of returning NULL. An allocation whose size comes from outside --
 * a checkpoint's tensors, a model's KV cache -- uses plain malloc and turns
 * NULL into an error for the caller ("out of memory loading ..."): that
 * failure is the user's to fix and the server survives it. Nothing else
 * calls malloc directly (tests/layers.py checks). */
#ifndef FACET_COMMON_ALLOC_H
#define FACET_COMMON_ALLOC_H

#include <pthread.h>
#include <stddef.h>

#define xmalloc(n) facet_xmalloc((n), __FILE__, __LINE__)
#define xcalloc(count, size) facet_xcalloc((count), (size), __FILE__, __LINE__)
#define xrealloc(p, n) facet_xrealloc((p), (n), __FILE__, __LINE__)
#define xstrdup(s) facet_xstrdup((s), __FILE__, __LINE__)
#define xstrndup(s, n) facet_xstrndup((s), (n), __FILE__, __LINE__)
/* n rounded up to a multiple of align */
#define xaligned_alloc(align, n) facet_xaligned_alloc((align), (n), __FILE__, __LINE__)

/* n == 0 gives a valid 1-byte block, never NULL. */
void *facet_xmalloc(size_t n, const char *file, int line);
void *facet_xcalloc(size_t count, size_t size, const char *file, int line);
void *facet_xrealloc(void *p, size_t n, const char *file, int line);
char *facet_xstrdup(const char *s, const char *file, int line);
char *facet_xstrndup(const char *s, size_t n, const char *file, int line);
void *facet_xaligned_alloc(size_t align, size_t n, const char *file, int line);

/* Starts a thread; a failure (EAGAIN: out of threads or memory) ends the
 * process like an allocation failure. what names the thread in that message. */
void facet_thread_start(pthread_t *t, void *(*fn)(void *), void *arg, const char *what);

#endif
