/* engine.h — the Gemma forward pass over one rank's shard, on the CPU or,
 * through the CUDA module (kernels/cuda/api.h), on a GPU.
 *
 * A step is a batch of sequences, each with its own new tokens, positions
 * and block table (prefill chunks and decode tokens mix freely). The engine
 * keeps no per-sequence state besides what the KV cache blocks hold: the
 * caller (the coordinator, later) owns every scheduling decision. */
#ifndef FACET_WORKER_ENGINE_H
#define FACET_WORKER_ENGINE_H

#include <stdint.h>

#include "kernels/batch.h"
#include "protocol/sample_rows.h"
#include "model/weights.h"
#include "worker/kv_cache.h"

typedef struct engine engine;

typedef enum { ENGINE_CPU = 0, ENGINE_CUDA = 1 } engine_device;

typedef struct engine_options {
    engine_device device;
    int n_threads;        /* CPU: 0 = one per CPU */
    int max_batch_tokens; /* tokens per step (scratch buffers are sized by it) */
    int block_size;       /* KV positions per block */
    int n_blocks;         /* KV blocks; CUDA: 0 = as many as gpu_memory_utilization allows */
    const cpu_ops *ops;   /* CPU: NULL = the fastest for this CPU */
    int cuda_device;      /* CUDA: the device ordinal */
    float gpu_memory_utilization; /* CUDA: share of the device's memory to use (0: 0.9) */
    bool no_cuda_graphs;  /* CUDA: run decode steps without graph capture */
    engine_allreduce_fn allreduce; /* host buffers; CUDA stages through the host unless device_comm is set */
    void *allreduce_ctx;
    engine_device_comm device_comm; /* CUDA: the all-reduce on device buffers (IPC, NCCL) */
} engine_options;

/* Takes ownership of the weights. */
engine *engine_create(model_weights *weights, const engine_options *opt, errbuf *err);
/* Loads rank tp_rank's shard of the checkpoint in dir and makes its engine. */
engine *engine_load(const char *dir, int tp_rank, int tp_size, const engine_options *opt, errbuf *err);
/* Full-size shapes without a checkpoint (benchmarks): seeded random weights,
 * made in memory (on the device for CUDA). */
engine *engine_create_random(const gemma_config *cfg, int tp_rank, int tp_size, uint64_t seed,
                             const engine_options *opt, errbuf *err);
void engine_free(engine *e);

/* The configuration and layout; with CUDA the weight data live on the device
 * and the matrices here are empty. */
const model_weights *engine_weights(const engine *e);
const char *engine_ops_name(const engine *e); /* "avx2-fma", "cuda (NVIDIA H100 80GB HBM3)", ... */
int engine_threads(const engine *e);
int engine_max_batch_tokens(const engine *e);
int engine_kv_blocks(const engine *e);
engine_device engine_device_kind(const engine *e);
int engine_cuda_device(const engine *e); /* CUDA: the device ordinal */
/* Bytes one decode step reads: the weights this rank holds. */
size_t engine_weight_bytes(const engine *e);

/* Runs one step. logits: (sum of n_logits, V_r) for this rank's vocab slice,
 * rows in batch order. A malformed batch (positions past the context, a
 * short block table, a block id or token id out of range) is refused with
 * an error and changes nothing. */
bool engine_forward(engine *e, const engine_batch *b, float *logits, errbuf *err);

/* Can this engine summarize its logit rows where they are (a CUDA engine:
 * protocol/sample_rows.h), so that only the summaries leave the device? */
bool engine_summarizes_on_device(const engine *e);
/* The step, with each logit row's summary for reqs[row] in records ((sum of
 * n_logits) x row_record_bytes(L)) instead of the logits; no row may be
 * SAMPLE_FULL. Only where engine_summarizes_on_device. */
bool engine_forward_summaries(engine *e, const engine_batch *b, const sample_request *reqs, row_layout L,
                              void *records, errbuf *err);

#endif
