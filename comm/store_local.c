/* store_local.c — the in-process rendezvous store: a mutex-protected list of
 * key -> bytes. For tests and benchmarks whose ranks are threads of one
 * process; a rendezvous has a handful of keys per rank, so a linear search
 * is plenty. */
#include "comm/comm.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct store_local_entry {
    char *key;
    void *data;
    size_t len;
} store_local_entry;

typedef struct store_local {
    comm_store base; /* base.ctx points back here */
    pthread_mutex_t mu;
    store_local_entry *entries; /* (n, capacity cap) */
    size_t n, cap;
} store_local;

/* Index of key, or n when absent. Called with mu held. */
static size_t store_local_find(const store_local *s, const char *key) {
    size_t i = 0;
    while (i < s->n && strcmp(s->entries[i].key, key) != 0) i++;
    return i;
}

/* Appends key with no data yet. Called with mu held. */
static bool store_local_append(store_local *s, const char *key) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        store_local_entry *e = realloc(s->entries, cap * sizeof *e);
        if (!e) return false;
        s->entries = e;
        s->cap = cap;
    }
    char *k = strdup(key);
    if (!k) return false;
    s->entries[s->n++] = (store_local_entry){.key = k};
    return true;
}

static bool store_local_set(void *ctx, const char *key, const void *data, size_t len, errbuf *err) {
    store_local *s = ctx;
    void *copy = malloc(len ? len : 1);
    if (!copy) return errbuf_set(err, "local store: out of memory storing %zu bytes under \"%s\"", len, key);
    if (len) memcpy(copy, data, len);
    pthread_mutex_lock(&s->mu);
    size_t i = store_local_find(s, key);
    bool ok = i < s->n || store_local_append(s, key);
    if (ok) {
        free(s->entries[i].data); /* the old value when overwriting; NULL when new */
        s->entries[i].data = copy;
        s->entries[i].len = len;
    }
    pthread_mutex_unlock(&s->mu);
    if (!ok) {
        free(copy);
        return errbuf_set(err, "local store: out of memory adding key \"%s\"", key);
    }
    return true;
}

static int store_local_get(void *ctx, const char *key, void **data, size_t *len, errbuf *err) {
    store_local *s = ctx;
    int found = 0;
    pthread_mutex_lock(&s->mu);
    size_t i = store_local_find(s, key);
    if (i < s->n) {
        size_t n = s->entries[i].len;
        void *copy = malloc(n ? n : 1);
        if (copy) {
            if (n) memcpy(copy, s->entries[i].data, n);
            *data = copy;
            *len = n;
            found = 1;
        } else {
            found = -1;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (found < 0) errbuf_set(err, "local store: out of memory reading key \"%s\"", key);
    return found;
}

comm_store *comm_store_local_create(void) {
    store_local *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s);
        return NULL;
    }
    s->base.ctx = s;
    s->base.set = store_local_set;
    s->base.get = store_local_get;
    return &s->base;
}

void comm_store_local_free(comm_store *base) {
    if (!base) return;
    store_local *s = base->ctx;
    for (size_t i = 0; i < s->n; i++) {
        free(s->entries[i].key);
        free(s->entries[i].data);
    }
    free(s->entries);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
