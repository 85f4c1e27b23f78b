#include "coordinator/kv_store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "facet/v1/worker.pb-c.h"

typedef struct kv_entry {
    char *key;
    uint8_t *value;
    size_t len;
} kv_entry;

struct kv_store {
    pthread_mutex_t mu;
    kv_entry *entries;
    int n, cap;
};

kv_store *kv_store_create(void) {
    kv_store *s = xcalloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    return s;
}

void kv_store_free(kv_store *s) {
    if (!s) return;
    for (int i = 0; i < s->n; i++) free(s->entries[i].key), free(s->entries[i].value);
    free(s->entries);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static kv_entry *find(kv_store *s, const char *key) {
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->entries[i].key, key) == 0) return &s->entries[i];
    return NULL;
}

void kv_store_handle_set(void *ctx, rpc_call *call, const ProtobufCMessage *request) {
    kv_store *s = ctx;
    const Facet__V1__KvSetRequest *req = (const Facet__V1__KvSetRequest *)request;
    pthread_mutex_lock(&s->mu);
    kv_entry *e = find(s, req->key);
    if (!e) {
        if (s->n == s->cap) {
            s->cap = s->cap ? 2 * s->cap : 64;
            s->entries = xrealloc(s->entries, (size_t)s->cap * sizeof *s->entries);
        }
        e = &s->entries[s->n++];
        e->key = xstrdup(req->key);
        e->value = NULL;
    }
    free(e->value);
    e->len = req->value.len;
    e->value = xmalloc(e->len);
    if (e->len) memcpy(e->value, req->value.data, e->len);
    pthread_mutex_unlock(&s->mu);
    Facet__V1__KvSetResponse resp = FACET__V1__KV_SET_RESPONSE__INIT;
    rpc_call_reply(call, &resp.base);
}

void kv_store_handle_get(void *ctx, rpc_call *call, const ProtobufCMessage *request) {
    kv_store *s = ctx;
    const Facet__V1__KvGetRequest *req = (const Facet__V1__KvGetRequest *)request;
    Facet__V1__KvGetResponse resp = FACET__V1__KV_GET_RESPONSE__INIT;
    uint8_t *copy = NULL;
    pthread_mutex_lock(&s->mu);
    kv_entry *e = find(s, req->key);
    if (e) {
        copy = xmalloc(e->len);
        if (e->len) memcpy(copy, e->value, e->len);
        resp.found = 1;
        resp.value.data = copy;
        resp.value.len = e->len;
    }
    pthread_mutex_unlock(&s->mu);
    rpc_call_reply(call, &resp.base);
    free(copy);
}

void kv_store_drop_before_epoch(kv_store *s, uint64_t epoch) {
    pthread_mutex_lock(&s->mu);
    int k = 0;
    for (int i = 0; i < s->n; i++) {
        kv_entry *e = &s->entries[i];
        if (strncmp(e->key, "epoch-", 6) == 0 && strtoull(e->key + 6, NULL, 10) < epoch) {
            free(e->key);
            free(e->value);
        } else {
            s->entries[k++] = *e;
        }
    }
    s->n = k;
    pthread_mutex_unlock(&s->mu);
}
