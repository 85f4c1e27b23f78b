/* shard.c — this rank's shard: loaded when the coordinator asks for a shard
 * the worker does not hold, kept when it asks for the same one again.
 *
 * A Load names a path; the worker reads only checkpoints under its model
 * root, following symbolic links before it decides (model/checkpoint.c).
 * The new shard is read whole into host memory -- every header, shape and
 * tensor checked -- while the old engine still serves, so a Load that fails
 * (a bad path, a corrupt file) leaves the worker as it was. On the CPU the
 * old engine goes only once the new one exists; a CUDA device rarely holds
 * two shards and their caches, so there the old engine is freed just before
 * the new weights are uploaded. */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "model/checkpoint.h"
#include "model/tensors.h"
#include "worker/worker_impl.h"

/* The CPU cache's blocks when the coordinator leaves the size to the worker:
 * what --kv-mib holds, from the config alone. */
static int cpu_kv_blocks(const gemma_config *cfg, int rank, int tp, int block_size, int kv_mib) {
    tp_layout tl = tp_layout_make(cfg, rank, tp);
    size_t per = kv_cache_block_bytes(cfg->num_layers, block_size, tl.n_kv_heads, cfg->head_dim);
    size_t n = ((size_t)kv_mib << 20) / per;
    return n < 1 ? 1 : n > (1u << 20) ? (1 << 20) : (int)n;
}

/* This rank's weights, read and checked into host memory (the engine in use is untouched). */
static bool read_weights(worker *w, const shard_request *r, model_weights *mw, gemma_config *cfg, errbuf *err) {
    const char *root = w->opt.model_root ? w->opt.model_root : w->opt.model;
    checkpoint ck;
    if (!checkpoint_open_under(&ck, r->model, root, err)) return false;
    *cfg = ck.config;
    bool ok = tp_check(&ck.config, r->tp, err);
    if (ok && (r->rank < 0 || r->rank >= r->tp))
        ok = errbuf_set(err, "rank %d is out of range for tensor-parallel size %d", r->rank, r->tp);
    ok = ok && weights_load(mw, &ck, r->rank, r->tp, err);
    checkpoint_close(&ck); /* the weights are copies: the files can go */
    return ok;
}

bool shard_load(worker *w, const shard_request *r, errbuf *err) {
    char key[sizeof w->loaded];
    snprintf(key, sizeof key, "%s|%d|%d|%d|%d|%d", r->model, r->rank, r->tp, r->kv_blocks, r->block_size,
             r->max_batch_tokens);
    if (w->engine && strcmp(key, w->loaded) == 0) return true; /* the same shard as before: keep it */
    engine_options eo = {.n_threads = w->opt.threads, .max_batch_tokens = r->max_batch_tokens,
                         .block_size = r->block_size, .n_blocks = r->kv_blocks,
                         .allreduce = worker_allreduce, .allreduce_ctx = w, .device_comm = worker_device_comm(w)};
    char note[ERRBUF_LEN];
    if (!backend_apply_device(&w->opt.dev, r->rank, &eo, note, sizeof note, err)) return false;
    if (note[0]) log_info("worker %s: %s", w->id, note);
    char state_before[256];
    worker_get_state(w, state_before, sizeof state_before);
    worker_set_state(w, "loading rank %d of %d", r->rank, r->tp);
    model_weights mw;
    gemma_config cfg;
    if (!read_weights(w, r, &mw, &cfg, err)) {
        worker_set_state(w, "%s", state_before);
        return false;
    }
    /* asked to choose: CUDA sizes from free device memory (--gpu-memory-utilization), the CPU from --kv-mib */
    if (r->kv_blocks <= 0 && eo.device == ENGINE_CPU) eo.n_blocks = cpu_kv_blocks(&cfg, r->rank, r->tp, r->block_size, w->opt.kv_mib);
    if (eo.device == ENGINE_CUDA) {
        engine_free(w->engine);
        w->engine = NULL;
        w->loaded[0] = '\0';
    }
    engine *e = engine_create(&mw, &eo, err);
    if (!e) {
        weights_free(&mw);
        if (w->engine) worker_set_state(w, "%s", state_before);
        return false;
    }
    engine_free(w->engine);
    w->engine = e;
    snprintf(w->loaded, sizeof w->loaded, "%s", key);
    w->kv_blocks = engine_kv_blocks(w->engine);
    return true;
}
