/* shard.c — this rank's shard: loaded when the coordinator asks for a shard
 * the worker does not hold, kept when it asks for the same one again. */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/tensors.h"
#include "worker/worker_impl.h"

/* The CPU cache's blocks when the coordinator leaves the size to the worker:
 * what --kv-mib holds, from the config alone (no need to load the shard to
 * know its kv heads). */
static bool cpu_kv_blocks(const char *model, int rank, int tp, int block_size, int kv_mib, int *out, errbuf *err) {
    char path[CHECKPOINT_PATH_MAX];
    gemma_config cfg;
    if (!checkpoint_path(model, "config.json", path, sizeof path) || !config_load(&cfg, path, err))
        return errbuf_prefix(err, "%s", model);
    tp_layout tl = tp_layout_make(&cfg, rank, tp);
    size_t per = kv_cache_block_bytes(cfg.num_layers, block_size, tl.n_kv_heads, cfg.head_dim);
    size_t n = ((size_t)kv_mib << 20) / per;
    *out = n < 1 ? 1 : n > (1u << 20) ? (1 << 20) : (int)n;
    return true;
}

bool shard_load(worker *w, const shard_request *r, errbuf *err) {
    char key[sizeof w->loaded];
    snprintf(key, sizeof key, "%s|%d|%d|%d|%d|%d", r->model, r->rank, r->tp, r->kv_blocks, r->block_size,
             r->max_batch_tokens);
    if (w->engine && strcmp(key, w->loaded) == 0) return true; /* the same shard as before: keep it */
    engine_free(w->engine);
    w->engine = NULL;
    w->loaded[0] = '\0';
    worker_set_state(w, "loading rank %d of %d", r->rank, r->tp);
    engine_options eo = {.n_threads = w->opt.threads, .max_batch_tokens = r->max_batch_tokens,
                         .block_size = r->block_size, .n_blocks = r->kv_blocks,
                         .allreduce = NULL, .allreduce_ctx = w};
    char note[ERRBUF_LEN];
    if (!backend_apply_device(&w->opt.dev, r->rank, &eo, note, sizeof note, err)) return false;
    if (note[0]) log_info("worker %s: %s", w->id, note);
    /* asked to choose: CUDA sizes from free device memory (--gpu-memory-utilization), the CPU from --kv-mib */
    if (r->kv_blocks <= 0 && eo.device == ENGINE_CPU &&
        !cpu_kv_blocks(r->model, r->rank, r->tp, r->block_size, w->opt.kv_mib, &eo.n_blocks, err))
        return false;
    eo.allreduce = worker_allreduce;
    w->engine = engine_load(r->model, r->rank, r->tp, &eo, err);
    if (!w->engine) return false;
    snprintf(w->loaded, sizeof w->loaded, "%s", key);
    w->kv_blocks = engine_kv_blocks(w->engine);
    return true;
}
