#define _GNU_SOURCE /* strndup */
#include "common/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void out_of_memory(size_t n, const char *file, int line) {
    fprintf(stderr, "facet: fatal: out of memory allocating %zu bytes at %s:%d\n", n, file, line);
    abort();
}

void *facet_xmalloc(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) out_of_memory(n, file, line);
    return p;
}

void *facet_xcalloc(size_t count, size_t size, const char *file, int line) {
    if (count == 0 || size == 0) count = size = 1;
    void *p = calloc(count, size);
    if (!p) out_of_memory(count * size, file, line);
    return p;
}

void *facet_xrealloc(void *p, size_t n, const char *file, int line) {
    void *q = realloc(p, n ? n : 1);
    if (!q) out_of_memory(n, file, line);
    return q;
}

char *facet_xstrdup(const char *s, const char *file, int line) {
    char *p = strdup(s);
    if (!p) out_of_memory(strlen(s) + 1, file, line);
    return p;
}

char *facet_xstrndup(const char *s, size_t n, const char *file, int line) {
    char *p = strndup(s, n);
    if (!p) out_of_memory(n + 1, file, line);
    return p;
}

void *facet_xaligned_alloc(size_t align, size_t n, const char *file, int line) {
    size_t rounded = n ? (n + align - 1) / align * align : align;
    void *p = aligned_alloc(align, rounded);
    if (!p) out_of_memory(rounded, file, line);
    return p;
}

void facet_thread_start(pthread_t *t, void *(*fn)(void *), void *arg, const char *what) {
    int rc = pthread_create(t, NULL, fn, arg);
    if (rc != 0) {
        fprintf(stderr, "facet: fatal: cannot start the %s thread: %s\n", what, strerror(rc));
        abort();
    }
}
