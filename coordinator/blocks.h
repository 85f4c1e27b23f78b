/* blocks.h — the KV cache's blocks as the scheduler hands them out: ids
 * 0..total-1, the same on every rank of the group (each rank's cache has
 * this many blocks; the group uses the smallest count any rank reported).
 *
 * Prefix caching. A block whose block_size positions are all computed can
 * be registered under its content: the block before it in its sequence
 * (its parent, -1 for a sequence's first) and its tokens. A later sequence
 * whose tokens start the same way finds those blocks (walking from its
 * first block) and shares them instead of computing them again: K/V at a
 * position depend only on the tokens up to it, and facet's kernels compute
 * them bitwise the same whatever the batch, so the shared K/V are exactly
 * what it would have computed. Keys compare the tokens themselves, never a
 * hash alone, and a parent by (id, generation): a block's generation bumps
 * each time it is handed out anew, so an entry whose parent was evicted and
 * reused for other tokens can never match again.
 *
 * Every block is in one of three states: held (refs > 0: in some running
 * sequence's table), cached (refs == 0 but registered: on the LRU list,
 * reusable by a match, evicted oldest first when the free ones run out),
 * or free. The cache lives as long as the group's caches: a new group
 * (block_pool_reset) starts with nothing cached. */
#ifndef FACET_COORDINATOR_BLOCKS_H
#define FACET_COORDINATOR_BLOCKS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct block_pool {
    int32_t *free_ids; /* a stack: the next block handed out is on top */
    int n_free, total;

    /* prefix caching (all NULL / 0 when off) */
    bool caching;
    int block_size;
    int32_t *refs;       /* (total) sequences holding the block */
    uint32_t *gen;       /* (total) bumps when the block is handed out anew */
    bool *registered;    /* (total) findable by its content */
    int32_t *parent;     /* (total) the block before it when registered, -1: a first block */
    uint32_t *parent_gen;/* (total) the parent's generation then */
    int32_t *tokens;     /* (total, block_size) its tokens when registered */
    int32_t *bucket;     /* (n_buckets) hash chains of registered blocks, -1: empty */
    int32_t *chain;      /* (total) next block in its chain */
    int n_buckets;
    int32_t *lru_prev, *lru_next; /* (total) the cached blocks, least recently used first */
    int32_t lru_head, lru_tail;
    int n_cached;
    uint64_t evictions;
} block_pool;

/* All n blocks free again (a new group, whose caches hold nothing); with
 * prefix caching when block_size > 0. */
void block_pool_reset(block_pool *p, int n, int block_size);
void block_pool_free(block_pool *p);
/* Blocks a sequence can still get: free ones and cached ones (evictable). */
static inline int block_pool_available(const block_pool *p) { return p->n_free + p->n_cached; }
/* A block for a sequence (free, else the least recently used cached one,
 * evicted), or -1 when none is left. */
int32_t block_pool_take(block_pool *p);
/* A sequence lets go of its blocks: registered ones stay cached. */
void block_pool_give(block_pool *p, const int32_t *ids, int n);
/* The registered blocks that hold tokens[0 .. k × block_size), k as large
 * as possible but at most max_blocks, taken for the caller (refs + 1) into
 * ids; returns k. */
int block_pool_match(block_pool *p, const int32_t *tokens, int max_blocks, int32_t *ids);
/* Block `id`, held by a sequence whose previous block is `parent` (-1: id
 * is its first), now holds these block_size computed tokens: findable from
 * now on (unless an equal block is registered already). */
void block_pool_register(block_pool *p, int32_t id, int32_t parent, const int32_t *tokens);
/* Blocks that hold `positions` KV positions. */
static inline int blocks_for(int positions, int block_size) { return (positions + block_size - 1) / block_size; }

#endif
