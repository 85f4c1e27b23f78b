/* blocks.h — the KV cache's blocks as the scheduler hands them out: ids
 * 0..total-1, the same on every rank of the group (each rank's cache has
 * this many blocks; the group uses the smallest count any rank reported). */
#ifndef FACET_COORDINATOR_BLOCKS_H
#define FACET_COORDINATOR_BLOCKS_H

#include <stdint.h>

typedef struct block_pool {
    int32_t *free_ids; /* a stack: the next block handed out is on top */
    int n_free, total;
} block_pool;

/* All n blocks free again (a new group, whose caches hold nothing). */
void block_pool_reset(block_pool *p, int n);
void block_pool_free(block_pool *p);
/* A free block's id, or -1 when none is left. */
int32_t block_pool_take(block_pool *p);
void block_pool_give(block_pool *p, const int32_t *ids, int n);
/* Blocks that hold `positions` KV positions. */
static inline int blocks_for(int positions, int block_size) { return (positions + block_size - 1) / block_size; }

#endif
