#include "coordinator/blocks.h"

#include <stdlib.h>

#include "common/alloc.h"

void block_pool_reset(block_pool *p, int n) {
    free(p->free_ids);
    p->free_ids = xmalloc((size_t)(n > 0 ? n : 1) * sizeof *p->free_ids);
    p->total = p->n_free = n > 0 ? n : 0;
    for (int i = 0; i < p->n_free; i++) p->free_ids[i] = p->n_free - 1 - i; /* taken in order 0, 1, 2, ... */
}

void block_pool_free(block_pool *p) {
    free(p->free_ids);
    p->free_ids = NULL;
    p->n_free = p->total = 0;
}

int32_t block_pool_take(block_pool *p) { return p->n_free > 0 ? p->free_ids[--p->n_free] : -1; }

void block_pool_give(block_pool *p, const int32_t *ids, int n) {
    for (int i = 0; i < n; i++) p->free_ids[p->n_free++] = ids[i];
}
