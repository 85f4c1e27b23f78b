#include "worker/engine.h"
#include "common/alloc.h"

#include <stdio.h>

#include "common/numeric.h"
#include "kernels/cuda/api.h"
#include "worker/backend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct engine {
    model_weights w;
    kv_cache kv;
    const cpu_ops *ops;
    threadpool *tp;
    engine_options opt;
    float *inv_freq;       /* (hd/2) RoPE frequencies of full-attention layers, fp32 as HF computes them */
    float *inv_freq_local; /* (hd/2) those of sliding layers (Gemma 3: another base) */
    float emb_scale;       /* sqrt(d) */

    /* scratch, sized for max_batch_tokens = N */
    float *x;    /* (N, d) residual stream */
    float *h;    /* (N, d) normed input of a block */
    float *q;    /* (N, H_r * hd) */
    float *k;    /* (N, K_r * hd) */
    float *v;    /* (N, K_r * hd) */
    float *att;  /* (N, H_r * hd) attention output */
    float *o;    /* (N, d) block output before the all-reduce */
    float *gate; /* (N, F_r) */
    float *up;   /* (N, F_r) */
    int32_t *pos;/* (N) position of each token */
    attn_seq *seqs; /* per sequence of the current batch */
    int seqs_cap;

    /* ENGINE_CUDA: the device engine does the work; w keeps the shapes only,
     * kv only block_size and n_blocks (for validate_batch) */
    const cuda_api *cuda;
    cuda_engine *ce;
    char ops_name[300];
};

/* Gemma scales embeddings by sqrt(d) cast to the model's dtype (docs/GEMMA.md):
 * 45.25 rather than 45.2548 for the 2B's d = 2048 in bf16. */
static float embedding_scale(int d, dtype model_dtype) {
    float s = (float)sqrt((double)d);
    if (model_dtype == DTYPE_BF16) return bf16_to_f32(f32_to_bf16(s));
    if (model_dtype == DTYPE_F16) return f16_to_f32(f32_to_f16(s));
    return s;
}

/* RoPE frequencies (hd/2) for base theta, in fp32 as HF computes them;
 * linear scaling (Gemma 3's full-attention layers) divides them by its factor. */
static void rope_inv_freq_base(int hd, double theta, double linear_factor, float *out) {
    for (int i = 0; i < hd / 2; i++) {
        out[i] = 1.0f / powf((float)theta, (float)(2 * i) / (float)hd);
        if (linear_factor > 0 && linear_factor != 1) out[i] /= (float)linear_factor;
    }
}

/* Those of the full-attention layers (every layer of Gemma 1). */
static void rope_inv_freq(const gemma_config *c, float *out) {
    rope_inv_freq_base(c->head_dim, c->rope_theta, c->rope_global_scale, out);
}

/* Those of the sliding layers: Gemma 3 gives them their own base, unscaled. */
static void rope_inv_freq_local(const gemma_config *c, float *out) {
    rope_inv_freq_base(c->head_dim, c->rope_local_theta > 0 ? c->rope_local_theta : c->rope_theta, 0, out);
}

static float *scratch(size_t n) { return aligned_alloc(64, ((n * sizeof(float)) + 63) & ~(size_t)63); }

/* The shapes of w without its data (which the device now holds). */
static model_weights weights_shape_only(const model_weights *w) {
    model_weights s = {.cfg = w->cfg, .tp = w->tp, .model_dtype = w->model_dtype};
    return s;
}

/* Does any matrix hold GGUF blocks? */
static bool weights_quantized(const model_weights *w) {
    if (dtype_is_quantized(w->embed.dtype)) return true;
    for (int l = 0; l < w->cfg.num_layers; l++) {
        const layer_weights *lw = &w->layers[l];
        const weight_matrix *m[] = {&lw->q, &lw->k, &lw->v, &lw->o, &lw->gate, &lw->up, &lw->down};
        for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
            if (dtype_is_quantized(m[i]->dtype)) return true;
    }
    return false;
}

/* A CUDA engine from host weights (uploaded, then freed), or with weights ==
 * NULL random ones made on the device; shape gives the config and layout. */
static engine *create_cuda(model_weights *shape, model_weights *weights, uint64_t seed, const engine_options *opt,
                           errbuf *err) {
    char why[ERRBUF_LEN];
    if (shape->cfg.arch != GEMMA_ARCH_GEMMA1) {
        errbuf_set(err, "%s runs on the CPU only for now (--device cpu): the CUDA engine has no sliding windows, "
                        "QK-norm, sandwich norms or soft-capping yet", config_arch_name(shape->cfg.arch));
        return NULL;
    }
    const cuda_api *api = backend_cuda_api(why, sizeof why);
    if (!api) {
        errbuf_set(err, "the CUDA backend is unavailable: %s", why);
        return NULL;
    }
    float *inv_freq = xmalloc((size_t)shape->cfg.head_dim / 2 * sizeof *inv_freq);
    rope_inv_freq(&shape->cfg, inv_freq);
    cuda_engine_desc desc = {
        .cfg = &shape->cfg,
        .tp = shape->tp,
        .weights = weights,
        .embed_scale = embedding_scale(shape->cfg.hidden_size, shape->model_dtype),
        .rope_inv_freq = inv_freq,
        .random_seed = seed,
        .device = opt->cuda_device,
        .max_batch_tokens = opt->max_batch_tokens,
        .block_size = opt->block_size,
        .n_blocks = opt->n_blocks,
        .gpu_memory_utilization = opt->gpu_memory_utilization,
        .use_graphs = !opt->no_cuda_graphs,
        .device_comm = opt->device_comm,
        .allreduce = opt->allreduce,
        .allreduce_ctx = opt->allreduce_ctx,
    };
    cuda_engine *ce = api->engine_create(&desc, err);
    free(inv_freq);
    if (!ce) return NULL;
    engine *e = xcalloc(1, sizeof *e);
    e->opt = *opt;
    e->cuda = api;
    e->ce = ce;
    e->w = weights_shape_only(shape);
    e->w.bytes = api->engine_weight_bytes(ce);
    if (weights) weights_free(weights); /* on the device now */
    e->kv.block_size = opt->block_size;
    e->kv.n_blocks = api->engine_kv_blocks(ce);
    e->kv.n_layers = e->w.cfg.num_layers;
    snprintf(e->ops_name, sizeof e->ops_name, "cuda (%s)", api->engine_device_name(ce));
    return e;
}

engine *engine_create(model_weights *w, const engine_options *opt, errbuf *err) {
    const gemma_config *c = &w->cfg;
    if (opt->max_batch_tokens < 1) {
        errbuf_set(err, "max_batch_tokens must be at least 1");
        return NULL;
    }
    if (opt->device == ENGINE_CUDA) {
        if (weights_quantized(w)) {
            errbuf_set(err, "quantized weights (GGUF blocks) run on the CPU only for now (--device cpu): the CUDA "
                            "engine has no dequantizing kernels yet");
            return NULL;
        }
        model_weights shape = weights_shape_only(w);
        return create_cuda(&shape, w, 0, opt, err);
    }
    engine *e = xcalloc(1, sizeof *e);
    e->opt = *opt;
    if (!kv_cache_init(&e->kv, c->num_layers, opt->n_blocks, opt->block_size, w->tp.n_kv_heads, c->head_dim, err)) {
        free(e);
        return NULL;
    }
    e->w = *w;
    memset(w, 0, sizeof *w);
    c = &e->w.cfg; /* the caller's copy is gone */
    e->ops = opt->ops ? opt->ops : cpu_ops_select();
    e->tp = threadpool_create(opt->n_threads);
    if (!weights_set_layout(&e->w, e->ops->bf16_layout, e->tp, err)) {
        engine_free(e);
        return NULL;
    }
    int hd = c->head_dim;
    e->inv_freq = xmalloc((size_t)hd / 2 * sizeof *e->inv_freq);
    e->inv_freq_local = xmalloc((size_t)hd / 2 * sizeof *e->inv_freq_local);
    rope_inv_freq(c, e->inv_freq);
    rope_inv_freq_local(c, e->inv_freq_local);
    e->emb_scale = embedding_scale(c->hidden_size, e->w.model_dtype);

    size_t N = (size_t)opt->max_batch_tokens, d = (size_t)c->hidden_size;
    size_t qd = (size_t)e->w.tp.n_heads * hd, kvd = (size_t)e->w.tp.n_kv_heads * hd, f = (size_t)e->w.tp.ffn_size;
    e->x = scratch(N * d);
    e->h = scratch(N * d);
    e->q = scratch(N * qd);
    e->k = scratch(N * kvd);
    e->v = scratch(N * kvd);
    e->att = scratch(N * qd);
    e->o = scratch(N * d);
    e->gate = scratch(N * f);
    e->up = scratch(N * f);
    e->pos = malloc(N * sizeof *e->pos);
    if (!e->x || !e->h || !e->q || !e->k || !e->v || !e->att || !e->o || !e->gate || !e->up || !e->pos) {
        errbuf_set(err, "out of memory for the scratch buffers of %zu tokens per step", N);
        engine_free(e);
        return NULL;
    }
    return e;
}

engine *engine_load(const char *dir, int tp_rank, int tp_size, const engine_options *opt, errbuf *err) {
    checkpoint ck;
    if (!checkpoint_open(&ck, dir, err)) return NULL;
    model_weights w;
    bool ok = weights_load(&w, &ck, tp_rank, tp_size, err);
    checkpoint_close(&ck); /* the weights are copies: the files can go */
    if (!ok) return NULL;
    engine *e = engine_create(&w, opt, err);
    if (!e) weights_free(&w);
    return e;
}

engine *engine_create_random(const gemma_config *cfg, int tp_rank, int tp_size, uint64_t seed,
                             const engine_options *opt, errbuf *err) {
    if (!tp_check(cfg, tp_size, err)) return NULL;
    if (tp_rank < 0 || tp_rank >= tp_size) {
        errbuf_set(err, "rank %d is out of range for tensor-parallel size %d", tp_rank, tp_size);
        return NULL;
    }
    if (opt->max_batch_tokens < 1) {
        errbuf_set(err, "max_batch_tokens must be at least 1");
        return NULL;
    }
    if (opt->device == ENGINE_CUDA) {
        model_weights shape = {.cfg = *cfg, .tp = tp_layout_make(cfg, tp_rank, tp_size), .model_dtype = DTYPE_BF16};
        return create_cuda(&shape, NULL, seed, opt, err);
    }
    model_weights w;
    if (!weights_random(&w, cfg, tp_rank, tp_size, seed, err)) return NULL;
    engine *e = engine_create(&w, opt, err);
    if (!e) weights_free(&w);
    return e;
}

void engine_free(engine *e) {
    if (!e) return;
    if (e->ce) e->cuda->engine_free(e->ce);
    weights_free(&e->w);
    kv_cache_free(&e->kv);
    threadpool_free(e->tp);
    free(e->inv_freq), free(e->inv_freq_local);
    free(e->x), free(e->h), free(e->q), free(e->k), free(e->v);
    free(e->att), free(e->o), free(e->gate), free(e->up), free(e->pos), free(e->seqs);
    free(e);
}

const model_weights *engine_weights(const engine *e) { return &e->w; }
const char *engine_ops_name(const engine *e) { return e->ce ? e->ops_name : e->ops->name; }
int engine_threads(const engine *e) { return e->ce ? 0 : threadpool_size(e->tp); }
int engine_kv_blocks(const engine *e) { return e->kv.n_blocks; }
engine_device engine_device_kind(const engine *e) { return e->ce ? ENGINE_CUDA : ENGINE_CPU; }
int engine_cuda_device(const engine *e) { return e->opt.cuda_device; }
size_t engine_weight_bytes(const engine *e) { return e->w.bytes; }
int engine_max_batch_tokens(const engine *e) { return e->opt.max_batch_tokens; }

/* Everything about a batch that could index out of bounds, checked first. */
static bool validate_batch(const engine *e, const engine_batch *b, int *n_tokens, errbuf *err) {
    const gemma_config *c = &e->w.cfg;
    int total = 0;
    if (b->n_seqs < 0) return errbuf_set(err, "negative sequence count");
    for (int s = 0; s < b->n_seqs; s++) {
        const engine_seq *q = &b->seqs[s];
        if (q->n_tokens < 1 || q->start_pos < 0)
            return errbuf_set(err, "sequence %d: needs at least one new token and a non-negative start position", s);
        if (q->n_logits < 0 || q->n_logits > q->n_tokens)
            return errbuf_set(err, "sequence %d: n_logits %d is not within [0, %d]", s, q->n_logits, q->n_tokens);
        int64_t end = (int64_t)q->start_pos + q->n_tokens;
        if (end > c->max_position)
            return errbuf_set(err, "sequence %d: position %lld exceeds the context length %d", s, (long long)end - 1,
                              c->max_position);
        if ((int64_t)q->n_blocks * e->kv.block_size < end)
            return errbuf_set(err, "sequence %d: block table of %d blocks cannot hold %lld positions", s, q->n_blocks,
                              (long long)end);
        int needed = (int)((end + e->kv.block_size - 1) / e->kv.block_size);
        for (int i = 0; i < needed; i++)
            if (q->block_table[i] < 0 || q->block_table[i] >= e->kv.n_blocks)
                return errbuf_set(err, "sequence %d: block id %d is out of range [0, %d)", s, q->block_table[i],
                                  e->kv.n_blocks);
        if (total > e->opt.max_batch_tokens - q->n_tokens)
            return errbuf_set(err, "the batch has more than %d tokens", e->opt.max_batch_tokens);
        total += q->n_tokens;
    }
    for (int t = 0; t < total; t++)
        if (b->tokens[t] < 0 || b->tokens[t] >= c->vocab_size)
            return errbuf_set(err, "token id %d is out of range [0, %d)", b->tokens[t], c->vocab_size);
    *n_tokens = total;
    return true;
}

static bool allreduce(engine *e, float *buf, size_t n, errbuf *err) {
    return e->opt.allreduce ? e->opt.allreduce(e->opt.allreduce_ctx, buf, n, err) : true;
}

/* A block's output joins the residual stream: o, summed over the ranks, is
 * normed first in Gemma 2/3 (post_norm: NULL in Gemma 1). */
static bool add_block_output(engine *e, const float *post_norm, int n, errbuf *err) {
    const gemma_config *c = &e->w.cfg;
    int d = c->hidden_size;
    if (!allreduce(e, e->o, (size_t)n * d, err)) return false;
    if (post_norm) e->ops->rmsnorm(e->tp, e->o, e->o, post_norm, n, d, (float)c->rms_norm_eps);
    e->ops->add(e->tp, e->x, e->o, n, d);
    return true;
}

/* x += [post_attn_norm] o_proj(attention(rope([q_norm] q), rope([k_norm] k), v)) for one layer;
 * a sliding layer sees only the last sliding_window positions, with its own RoPE base. */
static bool attention_block(engine *e, int l, int n, int n_seqs, errbuf *err) {
    const gemma_config *c = &e->w.cfg;
    const layer_weights *lw = &e->w.layers[l];
    const tp_layout *tp = &e->w.tp;
    const cpu_ops *ops = e->ops;
    int hd = c->head_dim, d = c->hidden_size;
    float eps = (float)c->rms_norm_eps;
    bool slides = config_layer_slides(c, l);
    const float *inv_freq = slides ? e->inv_freq_local : e->inv_freq;
    ops->rmsnorm(e->tp, e->h, e->x, lw->input_norm, n, d, eps);
    ops->matmul(e->tp, e->q, e->h, n, &lw->q); /* (n, H_r*hd) */
    ops->matmul(e->tp, e->k, e->h, n, &lw->k); /* (n, K_r*hd) */
    ops->matmul(e->tp, e->v, e->h, n, &lw->v); /* (n, K_r*hd) */
    if (lw->q_norm) { /* Gemma 3: each head normed on its own, before RoPE */
        ops->rmsnorm(e->tp, e->q, e->q, lw->q_norm, n * tp->n_heads, hd, eps);
        ops->rmsnorm(e->tp, e->k, e->k, lw->k_norm, n * tp->n_kv_heads, hd, eps);
    }
    ops->rope(e->tp, e->q, n, tp->n_heads, hd, e->pos, inv_freq);
    ops->rope(e->tp, e->k, n, tp->n_kv_heads, hd, e->pos, inv_freq);
    kv_layer_view kv = kv_cache_layer(&e->kv, l);
    ops->kv_write(e->tp, &kv, e->k, e->v, e->seqs, n_seqs);
    attn_params ap = {
        .n_heads = tp->n_heads,
        .head_begin = tp->head_begin,
        .group = c->num_heads / c->num_kv_heads,
        .kv_head_begin = tp->kv_head_begin,
        .scale = config_attention_scale(c),
        .softcap = c->attn_logit_softcap,
        .window = slides ? c->sliding_window : 0,
    };
    ops->attention(e->tp, e->att, e->q, &kv, e->seqs, n_seqs, &ap);
    ops->matmul(e->tp, e->o, e->att, n, &lw->o); /* (n, d) partial over heads */
    return add_block_output(e, lw->post_attn_norm, n, err);
}

/* x += [post_ffn_norm] down(gelu(gate(h)) * up(h)), h = pre_ffn_norm(x), for one layer. */
static bool mlp_block(engine *e, int l, int n, errbuf *err) {
    const gemma_config *c = &e->w.cfg;
    const layer_weights *lw = &e->w.layers[l];
    const cpu_ops *ops = e->ops;
    int d = c->hidden_size;
    ops->rmsnorm(e->tp, e->h, e->x, lw->pre_ffn_norm, n, d, (float)c->rms_norm_eps);
    ops->matmul(e->tp, e->gate, e->h, n, &lw->gate); /* (n, F_r) */
    ops->matmul(e->tp, e->up, e->h, n, &lw->up);     /* (n, F_r) */
    ops->geglu(e->tp, e->gate, e->up, n, e->w.tp.ffn_size);
    ops->matmul(e->tp, e->o, e->gate, n, &lw->down); /* (n, d) partial over F */
    return add_block_output(e, lw->post_ffn_norm, n, err);
}

/* Final norm and LM head for the rows that want logits. */
static void lm_head(engine *e, const engine_batch *b, float *logits) {
    const gemma_config *c = &e->w.cfg;
    int d = c->hidden_size, m = 0;
    for (int s = 0; s < b->n_seqs; s++) {
        const attn_seq *a = &e->seqs[s];
        for (int i = a->n_tokens - b->seqs[s].n_logits; i < a->n_tokens; i++, m++)
            memcpy(e->h + (size_t)m * d, e->x + (size_t)(a->token_offset + i) * d, (size_t)d * sizeof(float));
    }
    if (m == 0) return;
    e->ops->rmsnorm(e->tp, e->h, e->h, e->w.final_norm, m, d, (float)c->rms_norm_eps);
    e->ops->matmul(e->tp, logits, e->h, m, &e->w.embed); /* (m, V_r) */
    float cap = c->final_logit_softcap; /* Gemma 2: logits -> cap * tanh(logits / cap), elementwise (so per slice) */
    if (cap > 0)
        for (size_t i = 0; i < (size_t)m * e->w.tp.vocab_size; i++) logits[i] = cap * tanhf(logits[i] / cap);
}

bool engine_summarizes_on_device(const engine *e) { return e->ce != NULL; }

bool engine_forward_summaries(engine *e, const engine_batch *b, const sample_request *reqs, row_layout L,
                              void *records, errbuf *err) {
    int n = 0;
    if (!e->ce) return errbuf_set(err, "the CPU engine samples from its logits on the host");
    if (!validate_batch(e, b, &n, err)) return false;
    if (n == 0) return true;
    return e->cuda->engine_forward_summaries(e->ce, b, reqs, L, records, err);
}

bool engine_forward(engine *e, const engine_batch *b, float *logits, errbuf *err) {
    int n = 0;
    if (!validate_batch(e, b, &n, err)) return false;
    if (n == 0) return true;
    if (e->ce) return e->cuda->engine_forward(e->ce, b, logits, err);
    if (b->n_seqs > e->seqs_cap) {
        e->seqs_cap = b->n_seqs;
        e->seqs = xrealloc(e->seqs, (size_t)e->seqs_cap * sizeof *e->seqs);
    }
    for (int s = 0, off = 0; s < b->n_seqs; s++) {
        const engine_seq *q = &b->seqs[s];
        e->seqs[s] = (attn_seq){off, q->n_tokens, q->start_pos, q->block_table};
        for (int i = 0; i < q->n_tokens; i++) e->pos[off + i] = q->start_pos + i;
        off += q->n_tokens;
    }
    const gemma_config *c = &e->w.cfg;
    e->ops->embed(e->tp, e->x, b->tokens, n, &e->w.embed, e->w.tp.vocab_begin, e->emb_scale);
    if (e->w.tp.tp_size > 1 && !allreduce(e, e->x, (size_t)n * c->hidden_size, err)) return false;
    for (int l = 0; l < c->num_layers; l++) {
        if (!attention_block(e, l, n, b->n_seqs, err) || !mlp_block(e, l, n, err)) return false;
    }
    lm_head(e, b, logits);
    return true;
}
