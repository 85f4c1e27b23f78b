// engine.cu — the Gemma forward pass on one GPU: the device twin of
// worker/engine.c (same batch, same layer order, same results within bf16
// rounding; tests/gpu compares them).
//
// Per step, for n tokens (N = max_batch_tokens; H_r, K_r, F_r, V_r this
// rank's heads, kv heads, FFN slice and vocab slice; qd = H_r*hd, kvd = K_r*hd):
//   x (n, d) fp32   = embed(tokens)                       [all-reduce when T > 1]
//   per layer:
//     h (n, d) bf16 = rmsnorm(x += o) * (1 + w_in)        (o: the last block's output)
//     qkv (n, qd + 2 kvd) fp32 = h · [Wq; Wk; Wv]ᵀ         one GEMM
//     q, k rotated; k, v written into the bf16 paged cache
//     att (n, qd) bf16 = attention(q, cache)
//     o (n, d) fp32 = att · Woᵀ                            [all-reduce]
//     h = rmsnorm(x += o) * (1 + w_post)
//     gu (n, 2 F_r) fp32 = h · [Wgate; Wup]ᵀ               one GEMM
//     act (n, F_r) bf16 = gelu(gate) * up
//     o = act · Wdownᵀ                                      [all-reduce]
//   logits (m, V_r) fp32 = rmsnorm(x + o)[rows] · Eᵀ, then either copied to the host, or summarized on
//   the device (summarize.cu: best token, (max, sum exp), top-k candidates, top raw logits; a few hundred
//   bytes per row instead of 4 V_r) for worker/dist_sampler.c to exchange between the ranks and decide,
//   exactly as it decides from summaries it makes itself.
//
// The all-reduce runs on device buffers in the engine's stream when the
// worker gives a device communicator (IPC or NCCL, comm/select.h chooses),
// else through the host (Gloo): copy down, reduce, copy up.
//
// Steps that only decode (one token per sequence) are captured as a CUDA
// graph per batch size the first time they are seen and replayed after, when
// no host all-reduce sits in the middle (T = 1, or a device communicator).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "kernels/cuda/kernels.cuh"
#include "kernels/cuda/summarize.cuh"

extern "C" {
#include "kernels/cuda/api.h"
}

#define GEMM_WORKSPACE (32u << 20)
#define LOGIT_CHUNK 256  // rows of logits per LM-head pass (bounds the logits buffer)
#define GRAPH_MAX_SEQS 512

typedef struct dev_layer {
    float *in_norm, *post_norm; // (d) 1 + w
    bf16 *wqkv;                 // (qd + 2 kvd, d)
    bf16 *wo;                   // (d, qd)
    bf16 *wgu;                  // (2 F_r, d)
    bf16 *wdown;                // (d, F_r)
} dev_layer;

// One step's metadata, packed in one buffer so that it goes up in one copy.
// Offsets depend only on the token and sequence counts, except the block
// tables which come last: a decode graph for n sequences stays valid.
typedef struct step_meta {
    size_t tokens, pos, slot, rows, seqs, tiles, decode, tables, bytes; // byte offsets
} step_meta;

struct cuda_engine {
    gemma_config cfg;
    tp_layout tp;
    int device, n_sm;
    char name[256];
    cudaStream_t stream;
    gemm_ctx *gemm;
    float emb_scale;
    int N, qd, kvd, qkv_dim;
    bool use_graphs;
    engine_device_comm dev_comm; // the worker's hooks (all NULL: none)
    uint64_t comm_gen;           // dev_comm.generation() this step; the graphs were captured with it
    engine_allreduce_fn allreduce;
    void *allreduce_ctx;

    bf16 *embed;       // (V_r, d)
    float *final_norm; // (d)
    dev_layer *layers; // (L), host array of device pointers
    size_t weight_bytes;

    int n_blocks, block_size;
    size_t cache_layer_elems; // n_blocks * K_r * block_size * hd
    bf16 *k_cache, *v_cache;  // (L, n_blocks, K_r, block_size, hd)

    float *x, *o, *qkv, *gu, *logits, *inv_freq, *partial_o, *partial_ml;
    float *sample_work;                   // (logit rows, V_r): penalized logits while summarizing
    unsigned char *records;               // (logit rows, the largest record): row summaries
    unsigned char *smeta_dev, *smeta_host; // the rows' sampling parameters (pinned mirror), grown on demand
    size_t smeta_cap;
    bf16 *h, *att, *act;
    float *stage; // pinned (N, d): the host side of a host all-reduce

    unsigned char *meta_dev, *meta_host; // pinned host mirror
    size_t meta_cap;
    int max_table; // int32 entries of block tables per step

    cudaGraphExec_t graphs[GRAPH_MAX_SEQS + 1]; // decode-only steps by batch size
};

// ---- small helpers -------------------------------------------------------------------

static bool dev_alloc(void **p, size_t bytes, const char *what, errbuf *err) {
    cudaError_t rc = cudaMalloc(p, bytes ? bytes : 16);
    if (rc == cudaSuccess) return true;
    size_t free_b = 0, total_b = 0;
    cudaGetLastError();
    cudaMemGetInfo(&free_b, &total_b);
    return errbuf_set(err, "out of GPU memory: %s needs %.2f GiB, %.2f GiB of %.2f GiB free (%s)", what,
                      (double)bytes / (1 << 30), (double)free_b / (1 << 30), (double)total_b / (1 << 30),
                      cudaGetErrorString(rc));
}
#define DEV_ALLOC(ptr, bytes, what)                                                                                    \
    do {                                                                                                               \
        if (!dev_alloc((void **)&(ptr), (bytes), (what), err)) return false;                                         \
    } while (0)

static size_t align16(size_t x) { return (x + 15) & ~(size_t)15; }

// Layout of the metadata of a step with n tokens and n_seqs sequences.
static step_meta meta_layout(int n, int n_seqs) {
    step_meta m;
    m.tokens = 0;
    m.pos = align16(m.tokens + (size_t)n * 4);
    m.slot = align16(m.pos + (size_t)n * 4);
    m.rows = align16(m.slot + (size_t)n * 4);
    m.seqs = align16(m.rows + (size_t)n * 4);
    m.tiles = align16(m.seqs + (size_t)n_seqs * 16);
    m.decode = align16(m.tiles + (size_t)n * 8); // tiles <= n
    m.tables = align16(m.decode + (size_t)n_seqs * 4);
    m.bytes = m.tables;
    return m;
}

// ---- weights ---------------------------------------------------------------------------

// Copies a host matrix (bf16, or f32 converted on the device) into dst (bf16).
static bool upload_matrix(cuda_engine *e, bf16 *dst, const weight_matrix *w, errbuf *err) {
    size_t count = (size_t)w->rows * w->cols;
    if (w->dtype == DTYPE_BF16) {
        CUDA_TRY(cudaMemcpyAsync(dst, w->data, count * 2, cudaMemcpyHostToDevice, e->stream));
        return true;
    }
    float *tmp;
    DEV_ALLOC(tmp, count * 4, "an fp32 weight being converted");
    bool ok = cuda_check_at(cudaMemcpyAsync(tmp, w->data, count * 4, cudaMemcpyHostToDevice, e->stream),
                            "cudaMemcpyAsync", __FILE__, __LINE__, err) &&
              launch_f32_to_bf16(dst, tmp, count, e->stream, err) &&
              cuda_check_at(cudaStreamSynchronize(e->stream), "cudaStreamSynchronize", __FILE__, __LINE__, err);
    cudaFree(tmp);
    return ok;
}

static bool upload_norm(cuda_engine *e, float **dst, const float *src, errbuf *err) {
    int d = e->cfg.hidden_size;
    DEV_ALLOC(*dst, (size_t)d * 4, "a norm weight");
    CUDA_TRY(cudaMemcpyAsync(*dst, src, (size_t)d * 4, cudaMemcpyHostToDevice, e->stream));
    return true;
}

// Fills a bf16 matrix with seeded uniform values; tensor ids keep tensors apart.
static bool random_matrix(cuda_engine *e, bf16 *dst, size_t count, uint64_t seed, uint32_t tensor, errbuf *err) {
    return launch_fill_random_bf16(dst, count, 0.02f, seed, tensor, e->stream, err);
}

static bool random_norm(cuda_engine *e, float **dst, errbuf *err) {
    int d = e->cfg.hidden_size;
    DEV_ALLOC(*dst, (size_t)d * 4, "a norm weight");
    return launch_fill_f32(*dst, (size_t)d, 1.0f, e->stream, err); // 1 + w with w = 0, as HF initialises
}

static bool load_weights(cuda_engine *e, const model_weights *w, uint64_t seed, errbuf *err) {
    const gemma_config *c = &e->cfg;
    size_t d = (size_t)c->hidden_size, F = (size_t)e->tp.ffn_size, V = (size_t)e->tp.vocab_size;
    size_t qd = (size_t)e->qd, kvd = (size_t)e->kvd;
    DEV_ALLOC(e->embed, V * d * 2, "the embedding");
    e->weight_bytes = V * d * 2 + d * 4;
    e->layers = (dev_layer *)calloc((size_t)c->num_layers, sizeof *e->layers);
    if (!e->layers) return errbuf_set(err, "out of memory");
    if (w) {
        if (!upload_matrix(e, e->embed, &w->embed, err) || !upload_norm(e, &e->final_norm, w->final_norm, err))
            return false;
    } else if (!random_matrix(e, e->embed, V * d, seed, 0, err) || !random_norm(e, &e->final_norm, err)) {
        return false;
    }
    for (int l = 0; l < c->num_layers; l++) {
        dev_layer *L = &e->layers[l];
        DEV_ALLOC(L->wqkv, (qd + 2 * kvd) * d * 2, "attention weights");
        DEV_ALLOC(L->wo, d * qd * 2, "attention weights");
        DEV_ALLOC(L->wgu, 2 * F * d * 2, "MLP weights");
        DEV_ALLOC(L->wdown, d * F * 2, "MLP weights");
        e->weight_bytes += ((qd + 2 * kvd) * d + d * qd + 3 * F * d) * 2 + 2 * d * 4;
        if (w) {
            const layer_weights *lw = &w->layers[l];
            bool ok = upload_norm(e, &L->in_norm, lw->input_norm, err) &&
                      upload_norm(e, &L->post_norm, lw->pre_ffn_norm, err) && upload_matrix(e, L->wqkv, &lw->q, err) &&
                      upload_matrix(e, L->wqkv + qd * d, &lw->k, err) &&
                      upload_matrix(e, L->wqkv + (qd + kvd) * d, &lw->v, err) && upload_matrix(e, L->wo, &lw->o, err) &&
                      upload_matrix(e, L->wgu, &lw->gate, err) && upload_matrix(e, L->wgu + F * d, &lw->up, err) &&
                      upload_matrix(e, L->wdown, &lw->down, err);
            if (!ok) return false;
        } else {
            uint32_t t = 1 + 8 * (uint32_t)l;
            bool ok = random_norm(e, &L->in_norm, err) && random_norm(e, &L->post_norm, err) &&
                      random_matrix(e, L->wqkv, (qd + 2 * kvd) * d, seed, t, err) &&
                      random_matrix(e, L->wo, d * qd, seed, t + 1, err) &&
                      random_matrix(e, L->wgu, 2 * F * d, seed, t + 2, err) &&
                      random_matrix(e, L->wdown, d * F, seed, t + 3, err);
            if (!ok) return false;
        }
        if (w) CUDA_TRY(cudaStreamSynchronize(e->stream)); // the host buffers may go once uploaded
    }
    CUDA_TRY(cudaStreamSynchronize(e->stream));
    return true;
}

// ---- scratch and cache -------------------------------------------------------------------

// The largest row summary the device makes: TOPK_MAX candidates and every top log-probability.
static size_t max_record_bytes(void) {
    static_assert(SAMPLE_ROWS_MAX_DEVICE_K == TOPK_MAX, "the host's idea of the device's top-k limit");
    return row_record_bytes(row_layout{TOPK_MAX, SAMPLER_MAX_TOP_LOGPROBS});
}

// The most partial rows the decode kernel can need for up to N sequences.
static size_t max_partial_rows(const cuda_engine *e) {
    size_t best = 0;
    for (int n = 1; n <= e->N; n++) {
        size_t r = (size_t)n * attention_decode_splits(n, e->tp.n_kv_heads, e->n_sm);
        if (r > best) best = r;
    }
    return best * (size_t)e->tp.n_heads;
}

static bool alloc_scratch(cuda_engine *e, const float *inv_freq, errbuf *err) {
    size_t N = (size_t)e->N, d = (size_t)e->cfg.hidden_size, F = (size_t)e->tp.ffn_size, hd = (size_t)e->cfg.head_dim;
    size_t logit_rows = N < LOGIT_CHUNK ? N : LOGIT_CHUNK;
    DEV_ALLOC(e->x, N * d * 4, "the residual stream");
    DEV_ALLOC(e->o, N * d * 4, "block outputs");
    DEV_ALLOC(e->qkv, N * (size_t)e->qkv_dim * 4, "q, k, v");
    DEV_ALLOC(e->gu, N * 2 * F * 4, "the MLP's gate and up projections");
    DEV_ALLOC(e->logits, logit_rows * (size_t)e->tp.vocab_size * 4, "logits");
    DEV_ALLOC(e->sample_work, logit_rows * (size_t)e->tp.vocab_size * 4, "penalized logits for sampling");
    DEV_ALLOC(e->records, logit_rows * max_record_bytes(), "row summaries for sampling");
    DEV_ALLOC(e->h, N * d * 2, "normed activations");
    DEV_ALLOC(e->att, N * (size_t)e->qd * 2, "attention outputs");
    DEV_ALLOC(e->act, N * F * 2, "MLP activations");
    size_t partial = max_partial_rows(e);
    DEV_ALLOC(e->partial_o, partial * hd * 4, "split attention outputs");
    DEV_ALLOC(e->partial_ml, partial * 2 * 4, "split attention statistics");

    DEV_ALLOC(e->inv_freq, hd / 2 * 4, "RoPE frequencies");
    CUDA_TRY(cudaMemcpy(e->inv_freq, inv_freq, hd / 2 * 4, cudaMemcpyHostToDevice));

    int max_blocks_per_seq = ceil_div(e->cfg.max_position, e->block_size);
    e->max_table = e->N * max_blocks_per_seq;
    e->meta_cap = meta_layout(e->N, e->N).bytes + (size_t)e->max_table * 4;
    DEV_ALLOC(e->meta_dev, e->meta_cap, "step metadata");
    CUDA_TRY(cudaMallocHost((void **)&e->meta_host, e->meta_cap));
    if (e->allreduce) CUDA_TRY(cudaMallocHost((void **)&e->stage, N * d * 4));
    return true;
}

// KV blocks from what the utilisation target leaves after everything else.
static bool alloc_cache(cuda_engine *e, int n_blocks, float utilisation, errbuf *err) {
    size_t block_elems = (size_t)e->tp.n_kv_heads * e->block_size * e->cfg.head_dim;
    size_t block_bytes = block_elems * 2 * 2 * (size_t)e->cfg.num_layers; // K and V, bf16, every layer
    if (n_blocks <= 0) {
        size_t free_b, total_b;
        CUDA_TRY(cudaMemGetInfo(&free_b, &total_b));
        double budget = (double)total_b * utilisation - (double)(total_b - free_b);
        n_blocks = budget > 0 ? (int)(budget / (double)block_bytes) : 0;
        if (n_blocks > (1 << 30) / e->block_size) n_blocks = (1 << 30) / e->block_size; // slots fit int32
        if (n_blocks < 1)
            return errbuf_set(err,
                              "no GPU memory left for the KV cache: %.2f GiB of %.2f GiB is in use after the weights "
                              "(%.2f GiB) and buffers, and --gpu-memory-utilization %.2f allows %.2f GiB",
                              (double)(total_b - free_b) / (1 << 30), (double)total_b / (1 << 30),
                              (double)e->weight_bytes / (1 << 30), utilisation,
                              (double)total_b * utilisation / (1 << 30));
    }
    e->n_blocks = n_blocks;
    e->cache_layer_elems = (size_t)n_blocks * block_elems;
    size_t bytes = e->cache_layer_elems * 2 * (size_t)e->cfg.num_layers;
    DEV_ALLOC(e->k_cache, bytes, "the K cache");
    DEV_ALLOC(e->v_cache, bytes, "the V cache");
    return true;
}

// ---- create / free ---------------------------------------------------------------------------

static void drop_graphs(cuda_engine *e) {
    for (int i = 0; i <= GRAPH_MAX_SEQS; i++)
        if (e->graphs[i]) {
            cudaGraphExecDestroy(e->graphs[i]);
            e->graphs[i] = NULL;
        }
}

static void engine_destroy(cuda_engine *e) {
    if (!e) return;
    cudaSetDevice(e->device);
    drop_graphs(e);
    if (e->layers) {
        for (int l = 0; l < e->cfg.num_layers; l++) {
            dev_layer *L = &e->layers[l];
            cudaFree(L->in_norm), cudaFree(L->post_norm), cudaFree(L->wqkv), cudaFree(L->wo), cudaFree(L->wgu),
                cudaFree(L->wdown);
        }
        free(e->layers);
    }
    cudaFree(e->embed), cudaFree(e->final_norm), cudaFree(e->k_cache), cudaFree(e->v_cache);
    cudaFree(e->x), cudaFree(e->o), cudaFree(e->qkv), cudaFree(e->gu), cudaFree(e->logits), cudaFree(e->inv_freq);
    cudaFree(e->partial_o), cudaFree(e->partial_ml), cudaFree(e->h), cudaFree(e->att), cudaFree(e->act);
    cudaFree(e->meta_dev);
    if (e->meta_host) cudaFreeHost(e->meta_host);
    cudaFree(e->sample_work), cudaFree(e->records), cudaFree(e->smeta_dev);
    if (e->smeta_host) cudaFreeHost(e->smeta_host);
    if (e->stage) cudaFreeHost(e->stage);
    gemm_free(e->gemm);
    if (e->stream) cudaStreamDestroy(e->stream);
    free(e);
}

static bool engine_init(cuda_engine *e, const cuda_engine_desc *desc, errbuf *err) {
    const gemma_config *c = desc->cfg;
    e->cfg = *c;
    e->tp = desc->tp;
    e->device = desc->device;
    e->N = desc->max_batch_tokens;
    e->block_size = desc->block_size;
    e->qd = e->tp.n_heads * c->head_dim;
    e->kvd = e->tp.n_kv_heads * c->head_dim;
    e->qkv_dim = e->qd + 2 * e->kvd;
    // A device communicator, when the worker has one for a step, is used (at T = 1 it exercises the
    // collective path alone); else the host hook for T > 1 (a worker passes its hook whatever the size).
    const engine_device_comm *dc = &desc->device_comm;
    if (dc->generation && dc->enqueue && dc->wait) e->dev_comm = *dc;
    e->allreduce = desc->tp.tp_size > 1 ? desc->allreduce : NULL;
    e->allreduce_ctx = desc->allreduce_ctx;
    e->use_graphs = desc->use_graphs;
    e->emb_scale = desc->embed_scale;
    if (e->N < 1 || e->block_size < 1) return errbuf_set(err, "max_batch_tokens and block_size must be at least 1");
    if (!attention_check_head_dim(c->head_dim, err)) return false;
    if (c->num_heads / c->num_kv_heads > ATTN_MAX_GROUP)
        return errbuf_set(err, "the CUDA decode kernel handles at most %d query heads per kv head (the model has %d)",
                          ATTN_MAX_GROUP, c->num_heads / c->num_kv_heads);
    int count = 0;
    CUDA_TRY(cudaGetDeviceCount(&count));
    if (desc->device < 0 || desc->device >= count)
        return errbuf_set(err, "CUDA device %d does not exist (this machine has %d)", desc->device, count);
    CUDA_TRY(cudaSetDevice(desc->device));
    cudaDeviceProp prop;
    CUDA_TRY(cudaGetDeviceProperties(&prop, desc->device));
    if (prop.major < 8)
        return errbuf_set(err, "%s has compute capability %d.%d; the bf16 kernels need 8.0 or newer", prop.name,
                          prop.major, prop.minor);
    snprintf(e->name, sizeof e->name, "%s", prop.name);
    e->n_sm = prop.multiProcessorCount;
    CUDA_TRY(cudaStreamCreateWithFlags(&e->stream, cudaStreamNonBlocking));
    if (!attention_init(err)) return false;
    if (!(e->gemm = gemm_create(GEMM_WORKSPACE, err))) return false;
    return load_weights(e, desc->weights, desc->random_seed, err) && alloc_scratch(e, desc->rope_inv_freq, err) &&
           alloc_cache(e, desc->n_blocks, desc->gpu_memory_utilization > 0 ? desc->gpu_memory_utilization : 0.9f,
                       err);
}

static cuda_engine *cuda_engine_create(const cuda_engine_desc *desc, errbuf *err) {
    cuda_engine *e = (cuda_engine *)calloc(1, sizeof *e);
    if (!e) {
        errbuf_set(err, "out of memory");
        return NULL;
    }
    if (!engine_init(e, desc, err)) {
        engine_destroy(e);
        return NULL;
    }
    return e;
}

// ---- one step ------------------------------------------------------------------------------

typedef struct step_plan {
    int n, m, n_seqs, n_tiles, n_decode, n_splits, table_len;
    bool decode_only;
    step_meta L;
} step_plan;

// Fills the pinned mirror with the step's metadata (see step_meta) and plans it.
static bool plan_step(cuda_engine *e, const engine_batch *b, step_plan *p, errbuf *err) {
    memset(p, 0, sizeof *p);
    p->n_seqs = b->n_seqs;
    p->decode_only = true;
    for (int s = 0; s < b->n_seqs; s++) {
        const engine_seq *q = &b->seqs[s];
        p->n += q->n_tokens;
        p->m += q->n_logits;
        p->table_len += ceil_div(q->start_pos + q->n_tokens, e->block_size);
        if (q->n_tokens != 1 || q->n_logits != 1) p->decode_only = false;
    }
    if (p->n > e->N || p->n_seqs > e->N || p->table_len > e->max_table)
        return errbuf_set(err, "the step (%d tokens, %d sequences) exceeds the engine's buffers", p->n, p->n_seqs);
    p->L = meta_layout(p->n, p->n_seqs);
    unsigned char *h = e->meta_host;
    int32_t *tokens = (int32_t *)(h + p->L.tokens), *pos = (int32_t *)(h + p->L.pos);
    int32_t *slot = (int32_t *)(h + p->L.slot), *rows = (int32_t *)(h + p->L.rows);
    int4 *seqs = (int4 *)(h + p->L.seqs);
    int2 *tiles = (int2 *)(h + p->L.tiles);
    int32_t *decode = (int32_t *)(h + p->L.decode), *tables = (int32_t *)(h + p->L.tables);
    memcpy(tokens, b->tokens, (size_t)p->n * 4);
    int off = 0, m = 0, table_off = 0;
    for (int s = 0; s < b->n_seqs; s++) {
        const engine_seq *q = &b->seqs[s];
        int need = ceil_div(q->start_pos + q->n_tokens, e->block_size);
        memcpy(tables + table_off, q->block_table, (size_t)need * 4);
        seqs[s] = make_int4(off, q->n_tokens, q->start_pos, table_off);
        for (int i = 0; i < q->n_tokens; i++) {
            int ps = q->start_pos + i;
            pos[off + i] = ps;
            slot[off + i] = q->block_table[ps / e->block_size] * e->block_size + ps % e->block_size;
        }
        for (int i = q->n_tokens - q->n_logits; i < q->n_tokens; i++) rows[m++] = off + i;
        if (q->n_tokens == 1) {
            decode[p->n_decode++] = s;
        } else {
            for (int r = 0; r < q->n_tokens; r += ATTN_TILE_Q) tiles[p->n_tiles++] = make_int2(s, r);
        }
        off += q->n_tokens;
        table_off += need;
    }
    p->n_splits = attention_decode_splits(p->n_decode, e->tp.n_kv_heads, e->n_sm);
    p->L.bytes = p->L.tables + (size_t)table_off * 4;
    return true;
}

// buf (count floats, device) = its sum over the ranks: on the device in the engine's stream, or through the host.
static bool allreduce_step(cuda_engine *e, float *buf, size_t count, errbuf *err) {
    if (e->comm_gen) return e->dev_comm.enqueue(e->dev_comm.ctx, buf, count, e->stream, err);
    if (!e->allreduce) return true;
    CUDA_TRY(cudaMemcpyAsync(e->stage, buf, count * 4, cudaMemcpyDeviceToHost, e->stream));
    CUDA_TRY(cudaStreamSynchronize(e->stream));
    if (!e->allreduce(e->allreduce_ctx, e->stage, count, err)) return false;
    CUDA_TRY(cudaMemcpyAsync(buf, e->stage, count * 4, cudaMemcpyHostToDevice, e->stream));
    return true;
}

// Everything from the embedding to the last MLP, on e->stream (capturable when T = 1).
static bool run_layers(cuda_engine *e, const step_plan *p, errbuf *err) {
    const gemma_config *c = &e->cfg;
    const int n = p->n, d = c->hidden_size, F = e->tp.ffn_size;
    const float eps = (float)c->rms_norm_eps;
    unsigned char *md = e->meta_dev;
    const int32_t *tokens = (const int32_t *)(md + p->L.tokens), *pos = (const int32_t *)(md + p->L.pos);
    const int32_t *slot = (const int32_t *)(md + p->L.slot);
    attn_shape a = {e->tp.n_heads,      e->tp.n_kv_heads, c->head_dim, e->tp.head_begin,
                    c->num_heads / c->num_kv_heads,       e->tp.kv_head_begin,
                    e->block_size,      e->qkv_dim,       1.0f / sqrtf((float)c->head_dim)};
    attn_step st = {(const int4 *)(md + p->L.seqs),  (const int32_t *)(md + p->L.tables),
                    (const int2 *)(md + p->L.tiles), p->n_tiles,
                    (const int32_t *)(md + p->L.decode), p->n_decode,
                    p->n_splits, e->partial_o, e->partial_ml};
    cudaStream_t s = e->stream;

    if (!launch_embed(e->x, tokens, n, e->embed, e->tp.vocab_size, d, e->tp.vocab_begin, e->emb_scale, s, err))
        return false;
    if ((e->tp.tp_size > 1 || e->comm_gen) && !allreduce_step(e, e->x, (size_t)n * d, err)) return false;
    for (int l = 0; l < c->num_layers; l++) {
        const dev_layer *L = &e->layers[l];
        bf16 *kc = e->k_cache + (size_t)l * e->cache_layer_elems, *vc = e->v_cache + (size_t)l * e->cache_layer_elems;
        bool ok = launch_add_rmsnorm(e->x, l ? e->o : NULL, L->in_norm, e->h, NULL, n, d, eps, true, s, err) &&
                  gemm_bf16(e->gemm, e->qkv, e->h, L->wqkv, n, e->qkv_dim, d, s, err) &&
                  launch_rope_kv(e->qkv, n, e->qkv_dim, e->tp.n_heads, e->tp.n_kv_heads, c->head_dim, pos, slot,
                                 e->inv_freq, kc, vc, e->block_size, s, err) &&
                  launch_attention(e->att, e->qkv, kc, vc, &a, &st, s, err) &&
                  gemm_bf16(e->gemm, e->o, e->att, L->wo, n, d, e->qd, s, err) &&
                  allreduce_step(e, e->o, (size_t)n * d, err) &&
                  launch_add_rmsnorm(e->x, e->o, L->post_norm, e->h, NULL, n, d, eps, true, s, err) &&
                  gemm_bf16(e->gemm, e->gu, e->h, L->wgu, n, 2 * F, d, s, err) &&
                  launch_geglu(e->act, e->gu, n, F, s, err) &&
                  gemm_bf16(e->gemm, e->o, e->act, L->wdown, n, d, F, s, err) &&
                  allreduce_step(e, e->o, (size_t)n * d, err);
        if (!ok) return false;
    }
    return true;
}

// Final norm and LM head for rows [r0, r0 + count) of the logit rows, into e->logits.
static bool lm_head(cuda_engine *e, const step_plan *p, int r0, int count, errbuf *err) {
    const int32_t *rows = (const int32_t *)(e->meta_dev + p->L.rows) + r0;
    int d = e->cfg.hidden_size;
    return launch_add_rmsnorm(e->x, e->o, e->final_norm, e->h, rows, count, d, (float)e->cfg.rms_norm_eps, false,
                              e->stream, err) &&
           gemm_bf16(e->gemm, e->logits, e->h, e->embed, count, e->tp.vocab_size, d, e->stream, err);
}

// The decode graph for p->n sequences, captured on first use.
static bool decode_graph(cuda_engine *e, const step_plan *p, cudaGraphExec_t *out, errbuf *err) {
    if (e->graphs[p->n]) {
        *out = e->graphs[p->n];
        return true;
    }
    cudaGraph_t graph = NULL;
    CUDA_TRY(cudaStreamBeginCapture(e->stream, cudaStreamCaptureModeThreadLocal));
    bool ok = run_layers(e, p, err) && lm_head(e, p, 0, p->m, err);
    cudaError_t rc = cudaStreamEndCapture(e->stream, &graph);
    if (!ok) {
        if (graph) cudaGraphDestroy(graph);
        return false;
    }
    CUDA_TRY(rc);
    rc = cudaGraphInstantiate(&e->graphs[p->n], graph, 0);
    cudaGraphDestroy(graph);
    CUDA_TRY(rc);
    *out = e->graphs[p->n];
    return true;
}

// What a step gives back: host logits (m, V_r), or each row's summary made on the device.
typedef struct step_output {
    float *logits;                // host (m, V_r), or NULL: summaries
    const sample_request *reqs;   // (m) with summaries
    row_layout L;
    void *records;                // host (m, row_record_bytes(L))
} step_output;

// Room for the sampling parameters of the step's rows, packed chunk by chunk (the stream is idle: the last
// step ended with a wait, so the old buffers can go).
static bool reserve_sample_meta(cuda_engine *e, const step_output *out, int m, errbuf *err) {
    size_t need = 0;
    for (int r0 = 0; r0 < m; r0 += LOGIT_CHUNK)
        need += align16(summarize_meta_bytes(out->reqs + r0, m - r0 < LOGIT_CHUNK ? m - r0 : LOGIT_CHUNK));
    if (need <= e->smeta_cap) return true;
    cudaFree(e->smeta_dev);
    if (e->smeta_host) cudaFreeHost(e->smeta_host);
    e->smeta_dev = e->smeta_host = NULL;
    e->smeta_cap = 0;
    size_t cap = need * 2;
    DEV_ALLOC(e->smeta_dev, cap, "the sampling parameters of a step");
    CUDA_TRY(cudaMallocHost((void **)&e->smeta_host, cap));
    e->smeta_cap = cap;
    return true;
}

// Rows [r0, r0 + count) of e->logits leave the device: as logits, or summarized first (meta_off: where this
// chunk's packed parameters go in the sampling-meta buffers; advanced past them).
static bool emit_rows(cuda_engine *e, int r0, int count, const step_output *out, size_t *meta_off, errbuf *err) {
    size_t V = (size_t)e->tp.vocab_size;
    if (out->logits) {
        CUDA_TRY(cudaMemcpyAsync(out->logits + (size_t)r0 * V, e->logits, (size_t)count * V * 4, cudaMemcpyDeviceToHost,
                                 e->stream));
        return true;
    }
    size_t bytes = row_record_bytes(out->L), meta = summarize_meta_bytes(out->reqs + r0, count);
    summarize_meta_pack(out->reqs + r0, count, e->tp.vocab_begin, e->tp.vocab_size, e->smeta_host + *meta_off);
    CUDA_TRY(cudaMemcpyAsync(e->smeta_dev + *meta_off, e->smeta_host + *meta_off, meta, cudaMemcpyHostToDevice,
                             e->stream));
    if (!launch_summarize_rows(e->records, e->logits, e->sample_work, count, e->tp.vocab_size, e->tp.vocab_begin,
                               out->L, e->smeta_dev + *meta_off, out->reqs + r0, e->stream, err))
        return false;
    *meta_off += align16(meta);
    CUDA_TRY(cudaMemcpyAsync((unsigned char *)out->records + (size_t)r0 * bytes, e->records, (size_t)count * bytes,
                             cudaMemcpyDeviceToHost, e->stream));
    return true;
}

static bool forward_step(cuda_engine *e, const engine_batch *b, const step_output *out, errbuf *err) {
    CUDA_TRY(cudaSetDevice(e->device));
    step_plan p;
    if (!plan_step(e, b, &p, err)) return false;
    if (p.n == 0) return true;
    if (!out->logits && !reserve_sample_meta(e, out, p.m, err)) return false;
    // which communicator this step reduces over; graphs hold the collectives of the one they were captured with
    uint64_t gen = e->dev_comm.generation ? e->dev_comm.generation(e->dev_comm.ctx) : 0;
    if (gen != e->comm_gen) drop_graphs(e);
    e->comm_gen = gen;
    bool host_reduce = e->allreduce && !gen; // a host round trip in the middle: not capturable
    CUDA_TRY(cudaMemcpyAsync(e->meta_dev, e->meta_host, p.L.bytes, cudaMemcpyHostToDevice, e->stream));
    size_t meta_off = 0;
    if (e->use_graphs && !host_reduce && p.decode_only && p.n <= GRAPH_MAX_SEQS && p.m <= LOGIT_CHUNK) {
        cudaGraphExec_t g;
        if (!decode_graph(e, &p, &g, err)) return false;
        CUDA_TRY(cudaGraphLaunch(g, e->stream));
        if (!emit_rows(e, 0, p.m, out, &meta_off, err)) return false;
    } else {
        if (!run_layers(e, &p, err)) return false;
        for (int r0 = 0; r0 < p.m; r0 += LOGIT_CHUNK) {
            int count = p.m - r0 < LOGIT_CHUNK ? p.m - r0 : LOGIT_CHUNK;
            if (!lm_head(e, &p, r0, count, err) || !emit_rows(e, r0, count, out, &meta_off, err)) return false;
        }
    }
    // the host mirrors are reused next step: wait for everything, which also surfaces kernel faults; with a
    // device communicator through its wait, which fails (and stops its kernels) on a dead peer instead of
    // blocking here forever
    if (e->comm_gen) return e->dev_comm.wait(e->dev_comm.ctx, e->stream, err);
    CUDA_TRY(cudaStreamSynchronize(e->stream));
    return true;
}

static bool cuda_engine_forward(cuda_engine *e, const engine_batch *b, float *logits, errbuf *err) {
    step_output out = {logits, NULL, {0, 0}, NULL};
    return forward_step(e, b, &out, err);
}

static bool cuda_engine_forward_summaries(cuda_engine *e, const engine_batch *b, const sample_request *reqs,
                                          row_layout L, void *records, errbuf *err) {
    if (L.k > TOPK_MAX || L.t > SAMPLER_MAX_TOP_LOGPROBS || L.k < 0 || L.t < 0)
        return errbuf_set(err, "row summaries hold at most %d candidates and %d top log-probabilities (asked %d, %d)",
                          TOPK_MAX, SAMPLER_MAX_TOP_LOGPROBS, L.k, L.t);
    step_output out = {NULL, reqs, L, records};
    return forward_step(e, b, &out, err);
}

// ---- the module's table ---------------------------------------------------------------------------

static int cuda_engine_kv_blocks(const cuda_engine *e) { return e->n_blocks; }
static size_t cuda_engine_weight_bytes(const cuda_engine *e) { return e->weight_bytes; }
static const char *cuda_engine_device_name(const cuda_engine *e) { return e->name; }

void cuda_api_fill_engine(cuda_api *api) {
    api->engine_create = cuda_engine_create;
    api->engine_forward = cuda_engine_forward;
    api->engine_forward_summaries = cuda_engine_forward_summaries;
    api->engine_kv_blocks = cuda_engine_kv_blocks;
    api->engine_weight_bytes = cuda_engine_weight_bytes;
    api->engine_device_name = cuda_engine_device_name;
    api->engine_free = engine_destroy;
}
