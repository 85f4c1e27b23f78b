/* batch.h — one forward step as every engine takes it (worker/engine.c on
 * the CPU, kernels/cuda/engine.cu on a GPU): a batch of sequences, each with
 * its new tokens, the positions they take and the KV cache blocks that hold
 * its past; and the hook that sums a buffer over the ranks of a
 * tensor-parallel group. Prefill chunks and decode tokens mix freely. */
#ifndef FACET_KERNELS_BATCH_H
#define FACET_KERNELS_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

/* Sums a buffer over all ranks of the group, in place (NULL for T = 1). */
typedef bool (*engine_allreduce_fn)(void *ctx, float *buf, size_t n, errbuf *err);

/* A CUDA engine's all-reduce on device buffers (the worker's, over comm/:
 * IPC or NCCL). enqueue: buf (n floats, device) = the sum over ranks, issued
 * on stream (a cudaStream_t) without waiting, so that a decode step can be
 * captured into a CUDA graph with its collectives inside. wait: waits for the
 * stream with the communicator's checks -- its timeout, a dead peer, an abort
 * -- where the engine would otherwise call cudaStreamSynchronize and could
 * block forever. The communicator changes with each group (epoch) while the
 * engine stays: generation() says, before each step, which one is in use
 * (0: none, the host hook then), so that CUDA graphs captured around an
 * older one are dropped. All NULL: never a device communicator. */
typedef struct engine_device_comm {
    uint64_t (*generation)(void *ctx);
    bool (*enqueue)(void *ctx, float *buf, size_t n, void *stream, errbuf *err);
    bool (*wait)(void *ctx, void *stream, errbuf *err);
    void *ctx;
} engine_device_comm;

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

#endif
