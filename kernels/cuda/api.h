/* api.h — the CUDA backend module's interface (C, shared by the module and
 * the host code that dlopen()s it: worker/backend.c).
 *
 * The module (libfacet_cuda.so) exports one symbol, facet_cuda_api(), a
 * table of functions. The host never links a CUDA library: a machine without
 * one runs the CPU engine and says why CUDA could not start.
 *
 * The device engine is the GPU twin of worker/engine.c: the same batch, the
 * same layer order, bf16 weights and KV cache on the device, fp32 residual
 * stream and softmax, GEMMs through cuBLASLt (bf16 in, fp32 accumulate).
 * Each kernel names the kernels/cpu/ops_ref.c op it must match; tests/gpu
 * checks every one against it. */
#ifndef FACET_KERNELS_CUDA_API_H
#define FACET_KERNELS_CUDA_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "comm/comm.h"
#include "common/error.h"
#include "kernels/batch.h"
#include "protocol/sample_rows.h"
#include "model/weights.h"

#define FACET_CUDA_API_VERSION 3

typedef struct cuda_engine cuda_engine;

typedef struct cuda_engine_desc {
    const gemma_config *cfg;
    tp_layout tp;
    const model_weights *weights; /* host weights to upload, or NULL: random weights made on the device */
    /* facts worker/engine.c computes once for both engines */
    float embed_scale;            /* sqrt(d) in the checkpoint's dtype */
    const float *rope_inv_freq;   /* (head_dim / 2) RoPE frequencies, fp32 */
    uint64_t random_seed;         /* with weights == NULL */
    int device;                   /* CUDA device ordinal */
    int max_batch_tokens;
    int block_size;
    int n_blocks;                 /* 0: size the KV cache from free memory */
    float gpu_memory_utilization; /* of the device's total memory, for weights + cache + scratch (0.9) */
    bool use_graphs;              /* capture decode steps as CUDA graphs (T = 1 only) */
    /* The all-reduce after each block: on device buffers in the engine's stream when device_comm.enqueue is
     * set (also at T = 1: it then runs the collective path alone), else for T > 1 on the host (Gloo):
     * device -> host -> hook -> device */
    engine_device_comm device_comm;
    engine_allreduce_fn allreduce;
    void *allreduce_ctx;
} cuda_engine_desc;

/* One kernel check's sizes (fields an op does not use are ignored). */
typedef struct cuda_op_shape {
    int n;          /* tokens (rows) */
    int d;          /* row length: hidden size, FFN slice, vocab slice */
    int rows, cols; /* a weight matrix (GEMM: y = x · wᵀ; embedding: vocab rows x d) */
    int heads, kv_heads, head_dim, head_begin, group, kv_head_begin, block_size, n_blocks;
    int vocab_begin, k;
    float eps, scale, cap, temperature, top_p;
    uint64_t seed;
    bool cublas_only; /* GEMM: skip the skinny (n = 1) kernel, to time cuBLASLt on the same shape */
} cuda_op_shape;

/* Each test_* runs one kernel on host buffers: the inputs go up, the outputs
 * (poisoned with NaN on the device first, so an unwritten element shows) come
 * back for the first run; then the kernel runs `reps` more times and *ms gets
 * the median time of one run (CUDA events). In-place ops leave the first
 * run's result in their in/out buffer. */
typedef struct cuda_api {
    int version;
    /* Device count (0 when none) and a sentence about it. */
    int (*probe)(char *msg, size_t len);

    cuda_engine *(*engine_create)(const cuda_engine_desc *desc, errbuf *err);
    /* The batch has been validated by worker/engine.c. logits: host, (sum n_logits, V_r). */
    bool (*engine_forward)(cuda_engine *e, const engine_batch *b, float *logits, errbuf *err);
    /* The same step, but the logits stay on the device: records (host, (sum n_logits) x row_record_bytes(L)) get
     * each logit row's summary for reqs[row] (protocol/sample_rows.h), made on the device. No row may be
     * SAMPLE_FULL; L.k <= 1024, L.t <= SAMPLER_MAX_TOP_LOGPROBS. */
    bool (*engine_forward_summaries)(cuda_engine *e, const engine_batch *b, const sample_request *reqs, row_layout L,
                                     void *records, errbuf *err);
    int (*engine_kv_blocks)(const cuda_engine *e);
    size_t (*engine_weight_bytes)(const cuda_engine *e);
    const char *(*engine_device_name)(const cuda_engine *e);
    void (*engine_free)(cuda_engine *e);

    /* x, delta (n, d), w1p (d): out (n, d) = bf16(rmsnorm(x + delta) * w1p); x_out = x + delta. delta may be NULL. */
    bool (*test_add_rmsnorm)(const cuda_op_shape *s, const float *x, const float *delta, const float *w1p, float *out,
                             float *x_out, int reps, double *ms, errbuf *err);
    /* y (n, rows) = bf16(x) (n, cols) · wᵀ, w bf16 (rows, cols) */
    bool (*test_gemm)(const cuda_op_shape *s, const float *x, const uint16_t *w, float *y, int reps, double *ms,
                      errbuf *err);
    /* out (n, cols) = embed[tok - vocab_begin] * scale, 0 outside rows [0, rows); embed bf16 (rows, cols) */
    bool (*test_embed)(const cuda_op_shape *s, const int32_t *tokens, const uint16_t *embed, float *out, int reps,
                       double *ms, errbuf *err);
    /* qkv (n, (heads + 2 kv_heads) * head_dim) in/out: q and k rotated at pos; k and v written at
     * cache_slot[t] into a bf16 cache of n_blocks blocks, returned as fp32 (n_blocks, kv_heads, block_size,
     * head_dim) in k_cache/v_cache (slots not written stay NaN). */
    bool (*test_rope_kv)(const cuda_op_shape *s, float *qkv, const int32_t *pos, const int32_t *cache_slot,
                         const float *inv_freq, float *k_cache, float *v_cache, int reps, double *ms, errbuf *err);
    /* Paged attention, q (n, heads * head_dim); caches as above (fp32, rounded to bf16 on the way up);
     * sequence s: tokens [seq_token_offset[s], + seq_n_tokens[s]) at positions from seq_start_pos[s],
     * block table block_tables[s * max_blocks_per_seq ...]. out (n, heads * head_dim), bf16-rounded. */
    bool (*test_attention)(const cuda_op_shape *s, const float *q, const float *k_cache, const float *v_cache,
                           const int32_t *seq_start_pos, const int32_t *seq_n_tokens, const int32_t *seq_token_offset,
                           const int32_t *block_tables, int n_seqs, int max_blocks_per_seq, float *out, int reps,
                           double *ms, errbuf *err);
    /* gu (n, 2d) = [gate | up]: out (n, d) = bf16(gelu_tanh(gate) * up) */
    bool (*test_geglu)(const cuda_op_shape *s, const float *gu, float *out, int reps, double *ms, errbuf *err);
    /* x (n, d) = cap * tanh(x / cap), in place */
    bool (*test_softcap)(const cuda_op_shape *s, float *x, int reps, double *ms, errbuf *err);
    /* per row r of x (n, d): argmax[r] (ties: lowest), gumbel[r] = Gumbel-max of x / temperature with noise
     * keyed (seed, position r, vocab_begin + column); both global ids */
    bool (*test_argmax)(const cuda_op_shape *s, const float *x, int32_t *argmax, int32_t *gumbel, int reps,
                        double *ms, errbuf *err);
    /* per row: the k best of x / temperature, best first, ties to the lower id: ids, vals (n, k), and
     * n_kept (n) = the top_p prefix */
    bool (*test_topk)(const cuda_op_shape *s, const float *x, int32_t *ids, float *vals, int32_t *n_kept, int reps,
                      double *ms, errbuf *err);
    /* Row summaries (protocol/sample_rows.h) of x (s->n rows of s->d logits, the slice from s->vocab_begin), row r
     * for reqs[r]: records (n, row_record_bytes(L)), as worker/dist_sampler.c's dist_summarize_row makes them
     * (the reference); false when a row cannot be summarized on the device (SAMPLE_FULL, k too large). */
    bool (*test_summarize)(const cuda_op_shape *s, const float *x, const sample_request *reqs, row_layout L,
                           void *records, int reps, double *ms, errbuf *err);

    /* ---- collectives on device buffers ---- */
    /* The CUDA-IPC communicator (comm/comm_ipc.h) of this rank on `device`; NULL with the reason in err. */
    comm *(*comm_ipc_create)(const comm_options *opt, const comm_store *store, int device, errbuf *err);
    /* The device's UUID, "GPU-xxxxxxxx-xxxx-..." as nvidia-smi prints it (topology: which ranks share a GPU). */
    bool (*device_uuid)(int device, char *out, size_t len, errbuf *err);
    /* Device memory and streams for benchmarks of the collectives (the facet binary links no CUDA library). */
    void *(*dev_alloc)(int device, size_t bytes, errbuf *err);
    void (*dev_free)(void *p);
    bool (*dev_copy)(void *dst, const void *src, size_t bytes, bool to_device, errbuf *err); /* synchronous */
    void *(*stream_create)(int device, errbuf *err); /* a cudaStream_t (non-blocking) */
    void (*stream_destroy)(void *stream);

    /* ---- ceilings, measured ---- */
    /* a large device-to-device copy: bytes read + written per second, in GB/s (1e9) */
    double (*copy_bandwidth_gbs)(int device, errbuf *err);
    /* cuBLASLt bf16 GEMM (fp32 accumulate) of (m, k) by (n, k)ᵀ on random data, in TFLOP/s */
    double (*gemm_tflops)(int device, int m, int n, int k, errbuf *err);
} cuda_api;

typedef const cuda_api *(*facet_cuda_api_fn)(void);

#endif
