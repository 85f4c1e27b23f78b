/* kv_cache.h — paged KV storage of one rank.
 *
 * Fixed-size blocks of `block_size` positions; which blocks a sequence uses
 * is the caller's business (its block table, sent with every step: the
 * coordinator's block manager decides). Per layer, K and V are each
 * (n_blocks, n_kv_heads, block_size, head_dim) fp32, so one head's keys in a
 * block are contiguous for attention. */
#ifndef FACET_WORKER_KV_CACHE_H
#define FACET_WORKER_KV_CACHE_H

#include <stddef.h>

#include "common/error.h"
#include "kernels/cpu/ops.h"

typedef struct kv_cache {
    int n_layers, n_blocks, block_size, n_kv_heads, head_dim;
    float *k, *v; /* (n_layers, n_blocks, n_kv_heads, block_size, head_dim) */
} kv_cache;

bool kv_cache_init(kv_cache *c, int n_layers, int n_blocks, int block_size, int n_kv_heads, int head_dim,
                   errbuf *err);
void kv_cache_free(kv_cache *c);
kv_layer_view kv_cache_layer(const kv_cache *c, int layer);
/* Bytes one block takes over all layers, K and V. */
size_t kv_cache_block_bytes(int n_layers, int block_size, int n_kv_heads, int head_dim);

#endif
