#include "coordinator/blocks.h"

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"

static void free_cache_arrays(block_pool *p) {
    free(p->refs), free(p->gen), free(p->registered), free(p->parent), free(p->parent_gen), free(p->tokens);
    free(p->bucket), free(p->chain), free(p->lru_prev), free(p->lru_next);
    p->refs = NULL, p->gen = NULL, p->registered = NULL, p->parent = NULL, p->parent_gen = NULL, p->tokens = NULL;
    p->bucket = p->chain = p->lru_prev = p->lru_next = NULL;
}

void block_pool_reset(block_pool *p, int n, int block_size) {
    free(p->free_ids);
    free_cache_arrays(p);
    p->free_ids = xmalloc((size_t)(n > 0 ? n : 1) * sizeof *p->free_ids);
    p->total = p->n_free = n > 0 ? n : 0;
    for (int i = 0; i < p->n_free; i++) p->free_ids[i] = p->n_free - 1 - i; /* taken in order 0, 1, 2, ... */
    p->caching = block_size > 0 && n > 0;
    p->block_size = p->caching ? block_size : 0;
    p->n_cached = 0;
    p->lru_head = p->lru_tail = -1;
    if (!p->caching) return;
    size_t N = (size_t)n;
    p->refs = xcalloc(N, sizeof *p->refs);
    p->gen = xcalloc(N, sizeof *p->gen);
    p->registered = xcalloc(N, sizeof *p->registered);
    p->parent = xmalloc(N * sizeof *p->parent);
    p->parent_gen = xmalloc(N * sizeof *p->parent_gen);
    p->tokens = xmalloc(N * (size_t)block_size * sizeof *p->tokens);
    p->chain = xmalloc(N * sizeof *p->chain);
    p->lru_prev = xmalloc(N * sizeof *p->lru_prev);
    p->lru_next = xmalloc(N * sizeof *p->lru_next);
    for (p->n_buckets = 16; p->n_buckets < n; p->n_buckets *= 2) {}
    p->bucket = xmalloc((size_t)p->n_buckets * sizeof *p->bucket);
    memset(p->bucket, 0xff, (size_t)p->n_buckets * sizeof *p->bucket); /* -1 */
}

void block_pool_free(block_pool *p) {
    free(p->free_ids);
    free_cache_arrays(p);
    p->free_ids = NULL;
    p->n_free = p->total = p->n_cached = 0;
    p->caching = false;
}

/* ---- the content index ------------------------------------------------------------------ */

/* FNV-1a over (parent, parent generation, tokens): only picks the chain */
static uint32_t content_hash(int32_t parent, uint32_t parent_gen, const int32_t *tokens, int n) {
    uint64_t h = 0xcbf29ce484222325ull;
    uint32_t words[2] = {(uint32_t)parent, parent_gen};
    for (int i = 0; i < 2 + n; i++) {
        uint32_t w = i < 2 ? words[i] : (uint32_t)tokens[i - 2];
        for (int b = 0; b < 4; b++) h = (h ^ ((w >> (8 * b)) & 0xff)) * 0x100000001b3ull;
    }
    return (uint32_t)(h ^ (h >> 32));
}

static uint32_t gen_of(const block_pool *p, int32_t id) { return id < 0 ? 0 : p->gen[id]; }

static int32_t find(const block_pool *p, int32_t parent, const int32_t *tokens) {
    uint32_t pg = gen_of(p, parent);
    int32_t id = p->bucket[content_hash(parent, pg, tokens, p->block_size) & (uint32_t)(p->n_buckets - 1)];
    for (; id >= 0; id = p->chain[id])
        if (p->parent[id] == parent && p->parent_gen[id] == pg &&
            memcmp(p->tokens + (size_t)id * p->block_size, tokens, (size_t)p->block_size * sizeof *tokens) == 0)
            return id;
    return -1;
}

static void unregister(block_pool *p, int32_t id) {
    const int32_t *t = p->tokens + (size_t)id * p->block_size;
    int32_t *link = &p->bucket[content_hash(p->parent[id], p->parent_gen[id], t, p->block_size) &
                               (uint32_t)(p->n_buckets - 1)];
    while (*link != id) link = &p->chain[*link];
    *link = p->chain[id];
    p->registered[id] = false;
}

/* ---- the LRU list of cached blocks ------------------------------------------------------ */

static void lru_push(block_pool *p, int32_t id) { /* the most recently used end */
    p->lru_prev[id] = p->lru_tail, p->lru_next[id] = -1;
    if (p->lru_tail >= 0) p->lru_next[p->lru_tail] = id;
    else p->lru_head = id;
    p->lru_tail = id;
    p->n_cached++;
}

static void lru_remove(block_pool *p, int32_t id) {
    if (p->lru_prev[id] >= 0) p->lru_next[p->lru_prev[id]] = p->lru_next[id];
    else p->lru_head = p->lru_next[id];
    if (p->lru_next[id] >= 0) p->lru_prev[p->lru_next[id]] = p->lru_prev[id];
    else p->lru_tail = p->lru_prev[id];
    p->n_cached--;
}

/* ---- handing blocks out and back ---------------------------------------------------------- */

int32_t block_pool_take(block_pool *p) {
    int32_t id;
    if (p->n_free > 0) {
        id = p->free_ids[--p->n_free];
    } else if (p->caching && p->lru_head >= 0) {
        id = p->lru_head;
        lru_remove(p, id);
        unregister(p, id);
        p->evictions++;
    } else {
        return -1;
    }
    if (p->caching) {
        p->gen[id]++; /* entries naming it as their parent are stale from now on */
        p->refs[id] = 1;
    }
    return id;
}

void block_pool_give(block_pool *p, const int32_t *ids, int n) {
    for (int i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (!p->caching) {
            p->free_ids[p->n_free++] = id;
            continue;
        }
        if (--p->refs[id] > 0) continue;
        if (p->registered[id]) lru_push(p, id);
        else p->free_ids[p->n_free++] = id;
    }
}

int block_pool_match(block_pool *p, const int32_t *tokens, int max_blocks, int32_t *ids) {
    if (!p->caching) return 0;
    int k = 0;
    for (int32_t parent = -1; k < max_blocks; k++) {
        int32_t id = find(p, parent, tokens + (size_t)k * p->block_size);
        if (id < 0) break;
        if (p->refs[id]++ == 0) lru_remove(p, id);
        ids[k] = parent = id;
    }
    return k;
}

void block_pool_register(block_pool *p, int32_t id, int32_t parent, const int32_t *tokens) {
    if (!p->caching || p->registered[id] || find(p, parent, tokens) >= 0) return;
    p->parent[id] = parent;
    p->parent_gen[id] = gen_of(p, parent);
    memcpy(p->tokens + (size_t)id * p->block_size, tokens, (size_t)p->block_size * sizeof *tokens);
    int32_t *head = &p->bucket[content_hash(parent, p->parent_gen[id], tokens, p->block_size) &
                               (uint32_t)(p->n_buckets - 1)];
    p->chain[id] = *head;
    *head = id;
    p->registered[id] = true;
}
