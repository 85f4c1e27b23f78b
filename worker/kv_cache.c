#include "worker/kv_cache.h"

#include <stdlib.h>
#include <string.h>

size_t kv_cache_block_bytes(int n_layers, int block_size, int n_kv_heads, int head_dim) {
    return 2 * (size_t)n_layers * block_size * n_kv_heads * head_dim * sizeof(float);
}

bool kv_cache_init(kv_cache *c, int n_layers, int n_blocks, int block_size, int n_kv_heads, int head_dim,
                   errbuf *err) {
    memset(c, 0, sizeof *c);
    if (n_blocks < 1 || block_size < 1) return errbuf_set(err, "KV cache needs at least one block of one position");
    size_t floats = (size_t)n_layers * n_blocks * n_kv_heads * block_size * head_dim;
    c->k = calloc(floats, sizeof(float));
    c->v = calloc(floats, sizeof(float));
    if (!c->k || !c->v) {
        kv_cache_free(c);
        return errbuf_set(err, "cannot allocate a KV cache of %zu MiB", 2 * floats * sizeof(float) >> 20);
    }
    c->n_layers = n_layers;
    c->n_blocks = n_blocks;
    c->block_size = block_size;
    c->n_kv_heads = n_kv_heads;
    c->head_dim = head_dim;
    return true;
}

void kv_cache_free(kv_cache *c) {
    free(c->k);
    free(c->v);
    memset(c, 0, sizeof *c);
}

kv_layer_view kv_cache_layer(const kv_cache *c, int layer) {
    size_t per_layer = (size_t)c->n_blocks * c->n_kv_heads * c->block_size * c->head_dim;
    kv_layer_view v = {c->k + layer * per_layer, c->v + layer * per_layer, c->block_size, c->n_kv_heads, c->head_dim};
    return v;
}
