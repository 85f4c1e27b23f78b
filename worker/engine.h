/* engine.h — the Gemma forward pass over one rank's shard, on the CPU.
 *
 * A step is a batch of sequences, each with its own new tokens, positions
 * and block table (prefill chunks and decode tokens mix freely). The engine
 * keeps no per-sequence state besides what the KV cache blocks hold: the
 * caller (the coordinator, later) owns every scheduling decision. */
#ifndef FACET_WORKER_ENGINE_H
#define FACET_WORKER_ENGINE_H

#include <stdint.h>

#include "worker/kv_cache.h"
#include "worker/weights.h"

typedef struct engine engine;

/* Sums a buffer over all ranks of the group, in place (NULL for T = 1). */
typedef bool (*engine_allreduce_fn)(void *ctx, float *buf, size_t n, errbuf *err);

typedef struct engine_options {
    int n_threads;        /* 0: one per CPU */
    int max_batch_tokens; /* tokens per step (scratch buffers are sized by it) */
    int block_size;       /* KV positions per block */
    int n_blocks;         /* KV blocks */
    const cpu_ops *ops;   /* NULL: the fastest for this CPU */
    engine_allreduce_fn allreduce;
    void *allreduce_ctx;
} engine_options;

typedef struct engine_seq {
    int32_t start_pos;  /* positions already in the cache */
    int32_t n_tokens;   /* new tokens in this step (>= 1) */
    const int32_t *block_table; /* (n_blocks) covers [0, start_pos + n_tokens) */
    int32_t n_blocks;
    int32_t n_logits;   /* logits for the last n_logits new tokens (0..n_tokens) */
} engine_seq;

typedef struct engine_batch {
    int n_seqs;
    const engine_seq *seqs;
    const int32_t *tokens; /* all new tokens, sequence after sequence */
} engine_batch;

/* Takes ownership of the weights. */
engine *engine_create(model_weights *weights, const engine_options *opt, errbuf *err);
/* Loads rank tp_rank's shard of the checkpoint in dir and makes its engine. */
engine *engine_load(const char *dir, int tp_rank, int tp_size, const engine_options *opt, errbuf *err);
void engine_free(engine *e);

const model_weights *engine_weights(const engine *e);
const char *engine_ops_name(const engine *e);
int engine_threads(const engine *e);
int engine_max_batch_tokens(const engine *e);

/* Runs one step. logits: (sum of n_logits, V_r) for this rank's vocab slice,
 * rows in batch order. A malformed batch (positions past the context, a
 * short block table, a block id or token id out of range) is refused with
 * an error and changes nothing. */
bool engine_forward(engine *e, const engine_batch *b, float *logits, errbuf *err);

#endif
