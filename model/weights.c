#include "model/weights.h"
#include "common/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/numeric.h"
#include "kernels/cpu/panels.h"
#include "kernels/cpu/quant.h"
#include "common/rng.h"

/* Big weight buffers go on transparent huge pages where the kernel allows:
 * 512x fewer page faults while loading, fewer TLB misses while streaming. */
static void *alloc_aligned(size_t bytes) {
    const size_t huge = (size_t)2 << 20;
    if (bytes >= 2 * huge) {
        size_t rounded = (bytes + huge - 1) & ~(huge - 1);
        void *p = aligned_alloc(huge, rounded);
        if (p) madvise(p, rounded, MADV_HUGEPAGE);
        return p;
    }
    size_t rounded = (bytes + 63) & ~(size_t)63;
    return aligned_alloc(64, rounded ? rounded : 64);
}

static float element_f32(const st_tensor *t, size_t i) {
    switch (t->dtype) {
    case DTYPE_BF16: return bf16_to_f32(((const bf16_t *)t->data)[i]);
    case DTYPE_F16: return f16_to_f32(((const f16_t *)t->data)[i]);
    default: { float f; memcpy(&f, t->data + 4 * i, 4); return f; }
    }
}

static bool plain_float(dtype t) { return t == DTYPE_BF16 || t == DTYPE_F16 || t == DTYPE_F32; }

/* The tensor of spec (for a layer), checked against the config's shape and
 * for a dtype facet computes with (norms: plain floats only). */
static const st_tensor *find_checked(const checkpoint *ck, const tensor_spec *spec, int layer,
                                     const shard_slice *s, errbuf *err) {
    char name[256];
    checkpoint_tensor_name(ck, spec, layer, name, sizeof name);
    const st_tensor *t = checkpoint_find(ck, name);
    if (!t) {
        errbuf_set(err, "%s: the checkpoint has no tensor \"%s\"", ck->dir, name);
        return NULL;
    }
    bool matrix = spec->ndim == 2;
    if (!plain_float(t->dtype) && !(matrix && dtype_is_quantized(t->dtype))) {
        errbuf_set(err, "%s: tensor \"%s\" has dtype %s (expected BF16, F16 or F32%s)", ck->dir, name,
                   t->dtype ? dtype_name(t->dtype) : "of a kind facet cannot compute with",
                   matrix ? ", or a GGUF block format: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K" : "");
        return NULL;
    }
    bool ok = t->ndim == spec->ndim && t->shape[0] == s->full[0] && (spec->ndim == 1 || t->shape[1] == s->full[1]);
    if (!ok) {
        char got[96] = "", want[64];
        for (int i = 0; i < t->ndim; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? ", " : "", (long long)t->shape[i]);
        if (spec->ndim == 1) snprintf(want, sizeof want, "%lld", (long long)s->full[0]);
        else snprintf(want, sizeof want, "%lld, %lld", (long long)s->full[0], (long long)s->full[1]);
        errbuf_set(err, "%s: tensor \"%s\" has shape [%s], but the model's configuration implies [%s]", ck->dir, name,
                   got, want);
        return NULL;
    }
    return t;
}

/* Q4_0 and Q5_0 blocks become Q8_0 blocks holding exactly the same weights
 * (kernels/cpu/quant.h: quant_widen_to_q8_0): more bytes, but a decode step
 * reads them without unpacking nibbles, which made these rows the slowest
 * of the 270M's (docs/PERFORMANCE.md). */
static bool widen_to_q8_0(weight_matrix *m, size_t *bytes, errbuf *err) {
    size_t n = (size_t)m->rows * (size_t)m->cols, out = dtype_row_bytes(DTYPE_Q8_0, (int64_t)n);
    uint8_t *q8 = alloc_aligned(out);
    if (!q8) return errbuf_set(err, "out of memory: a %d x %d matrix needs %zu MiB as Q8_0", m->rows, m->cols, out >> 20);
    quant_widen_to_q8_0(dtype_ggml_type(m->dtype), m->data, q8, (int64_t)n);
    free((void *)m->data);
    m->data = q8;
    m->dtype = DTYPE_Q8_0;
    *bytes += out;
    return true;
}

/* A quantized matrix keeps its blocks: rows [b, e) (SHARD_ROWS) are whole
 * rows; columns [b, e) (SHARD_COLS) must start and end on block boundaries
 * (a split that would cut a block is refused, naming the tensor). */
static bool copy_quantized_slice(weight_matrix *m, const st_tensor *t, const shard_slice *s, size_t *bytes,
                                 errbuf *err) {
    int64_t be = dtype_block_elems(t->dtype), full_cols = s->full[1];
    int64_t col0 = s->axis == SHARD_COLS ? s->begin : 0, row0 = s->axis == SHARD_ROWS ? s->begin : 0;
    if (col0 % be != 0 || m->cols % be != 0)
        return errbuf_set(err, "tensor \"%s\" (%s, blocks of %lld) cannot be split here: this rank's columns [%lld, %lld) "
                               "would cut a block; use another tensor-parallel size",
                          t->name, dtype_name(t->dtype), (long long)be, (long long)col0, (long long)(col0 + m->cols));
    size_t full_row = dtype_row_bytes(t->dtype, full_cols), row = dtype_row_bytes(t->dtype, m->cols);
    size_t skip = dtype_row_bytes(t->dtype, col0);
    uint8_t *dst = alloc_aligned((size_t)m->rows * row);
    if (!dst) return errbuf_set(err, "out of memory: tensor \"%s\" needs %zu MiB", t->name, ((size_t)m->rows * row) >> 20);
    for (int64_t r = 0; r < m->rows; r++) memcpy(dst + (size_t)r * row, t->data + (size_t)(row0 + r) * full_row + skip, row);
    m->dtype = t->dtype;
    m->data = dst;
    if (t->dtype == DTYPE_Q4_0 || t->dtype == DTYPE_Q5_0) return widen_to_q8_0(m, bytes, err);
    *bytes += (size_t)m->rows * row;
    return true;
}

/* Copies this rank's slice of a matrix: rows [b, e) for SHARD_ROWS, columns
 * [b, e) of every row for SHARD_COLS. bf16 stays bf16, quantized blocks
 * stay quantized; others become f32. */
static bool copy_slice(weight_matrix *m, const st_tensor *t, const shard_slice *s, size_t *bytes, errbuf *err) {
    m->rows = (int)s->local[0];
    m->cols = (int)s->local[1];
    if (dtype_is_quantized(t->dtype)) return copy_quantized_slice(m, t, s, bytes, err);
    m->dtype = t->dtype == DTYPE_BF16 ? DTYPE_BF16 : DTYPE_F32;
    size_t esz = dtype_size(m->dtype);
    size_t n = (size_t)m->rows * m->cols;
    void *dst = alloc_aligned(n * esz);
    if (!dst) return errbuf_set(err, "out of memory: tensor \"%s\" needs %zu MiB", t->name, (n * esz) >> 20);
    int64_t full_cols = s->full[1];
    int64_t row0 = s->axis == SHARD_ROWS ? s->begin : 0;
    int64_t col0 = s->axis == SHARD_COLS ? s->begin : 0;
    for (int64_t r = 0; r < m->rows; r++) {
        size_t src = (size_t)((row0 + r) * full_cols + col0);
        if (m->dtype == DTYPE_BF16) {
            memcpy((bf16_t *)dst + r * m->cols, (const bf16_t *)t->data + src, (size_t)m->cols * esz);
        } else {
            float *d = (float *)dst + r * m->cols;
            for (int c = 0; c < m->cols; c++) d[c] = element_f32(t, src + (size_t)c);
        }
    }
    m->data = dst;
    *bytes += n * esz;
    return true;
}

static bool load_matrix_dtype(weight_matrix *m, const checkpoint *ck, tensor_kind kind, int layer, int rank, int tp,
                              size_t *bytes, dtype *model_dtype, errbuf *err) {
    const tensor_spec *spec = &TENSOR_TABLE[kind];
    shard_slice s = tensor_shard(spec, &ck->config, rank, tp);
    const st_tensor *t = find_checked(ck, spec, layer, &s, err);
    if (!t) return false;
    if (!copy_slice(m, t, &s, bytes, err)) return false;
    if (model_dtype) *model_dtype = t->dtype;
    return true;
}

static bool load_matrix(weight_matrix *m, const checkpoint *ck, tensor_kind kind, int layer, int rank, int tp,
                        size_t *bytes, errbuf *err) {
    return load_matrix_dtype(m, ck, kind, layer, rank, tp, bytes, NULL, err);
}

/* Norm weights are replicated; stored as 1 + w in fp32 (HF: 1.0 + w.float()).
 * A tensor the architecture lacks stays NULL. */
static bool load_norm(float **out, const checkpoint *ck, tensor_kind kind, int layer, size_t *bytes, errbuf *err) {
    const tensor_spec *spec = &TENSOR_TABLE[kind];
    *out = NULL;
    if (!tensor_present(spec, &ck->config)) return true;
    shard_slice s = tensor_shard(spec, &ck->config, 0, 1);
    const st_tensor *t = find_checked(ck, spec, layer, &s, err);
    if (!t) return false;
    float *w = alloc_aligned((size_t)s.full[0] * sizeof *w);
    if (!w) return errbuf_set(err, "out of memory loading \"%s\"", t->name);
    float one = ck->norms_hold_one ? 0.0f : 1.0f; /* GGUF files hold 1 + w already */
    for (int64_t i = 0; i < s.full[0]; i++) w[i] = one + element_f32(t, (size_t)i);
    *out = w;
    *bytes += (size_t)s.full[0] * sizeof *w;
    return true;
}

bool weights_load(model_weights *w, const checkpoint *ck, int rank, int tp, errbuf *err) {
    memset(w, 0, sizeof *w);
    if (!tp_check(&ck->config, tp, err)) return false;
    if (rank < 0 || rank >= tp) return errbuf_set(err, "rank %d is out of range for tensor-parallel size %d", rank, tp);
    w->cfg = ck->config;
    w->tp = tp_layout_make(&ck->config, rank, tp);
    w->layers = xcalloc((size_t)w->cfg.num_layers, sizeof *w->layers);
    size_t *b = &w->bytes;
    bool ok = load_matrix_dtype(&w->embed, ck, TENSOR_EMBED, 0, rank, tp, b, &w->model_dtype, err) &&
              load_norm(&w->final_norm, ck, TENSOR_FINAL_NORM, 0, b, err);
    for (int l = 0; ok && l < w->cfg.num_layers; l++) {
        layer_weights *lw = &w->layers[l];
        ok = load_norm(&lw->input_norm, ck, TENSOR_INPUT_NORM, l, b, err) &&
             load_matrix(&lw->q, ck, TENSOR_Q, l, rank, tp, b, err) &&
             load_matrix(&lw->k, ck, TENSOR_K, l, rank, tp, b, err) &&
             load_matrix(&lw->v, ck, TENSOR_V, l, rank, tp, b, err) &&
             load_matrix(&lw->o, ck, TENSOR_O, l, rank, tp, b, err) &&
             load_norm(&lw->q_norm, ck, TENSOR_Q_NORM, l, b, err) &&
             load_norm(&lw->k_norm, ck, TENSOR_K_NORM, l, b, err) &&
             load_norm(&lw->post_attn_norm, ck, TENSOR_POST_ATTN_NORM, l, b, err) &&
             load_norm(&lw->pre_ffn_norm, ck, TENSOR_PRE_FFN_NORM, l, b, err) &&
             load_matrix(&lw->gate, ck, TENSOR_GATE, l, rank, tp, b, err) &&
             load_matrix(&lw->up, ck, TENSOR_UP, l, rank, tp, b, err) &&
             load_matrix(&lw->down, ck, TENSOR_DOWN, l, rank, tp, b, err) &&
             load_norm(&lw->post_ffn_norm, ck, TENSOR_POST_FFN_NORM, l, b, err);
    }
    if (!ok) weights_free(w);
    return ok;
}

static bool random_matrix(weight_matrix *m, int rows, int cols, uint64_t seed, uint64_t tensor, size_t *bytes,
                          errbuf *err) {
    size_t n = (size_t)rows * cols;
    bf16_t *data = alloc_aligned(n * sizeof *data);
    if (!data) return errbuf_set(err, "out of memory: a %d x %d random matrix needs %zu MiB", rows, cols, (n * 2) >> 20);
    uint64_t state = seed ^ (tensor * 0xD1B54A32D192ED03ull);
    for (size_t i = 0; i < n; i++) {
        data[i] = f32_to_bf16((float)((2.0 * splitmix64_unit(&state) - 1.0) * 0.02));
    }
    *m = (weight_matrix){.dtype = DTYPE_BF16, .rows = rows, .cols = cols, .data = data};
    *bytes += n * sizeof *data;
    return true;
}

bool weights_random_matrix(weight_matrix *m, int rows, int cols, uint64_t seed, errbuf *err) {
    size_t bytes = 0;
    return random_matrix(m, rows, cols, seed, 0, &bytes, err);
}

static bool unit_norm(float **out, int d, size_t *bytes, errbuf *err) {
    *out = NULL;
    if (d == 0) return true; /* absent in this architecture */
    float *w = alloc_aligned((size_t)d * sizeof *w);
    if (!w) return errbuf_set(err, "out of memory");
    for (int i = 0; i < d; i++) w[i] = 1.0f;
    *out = w;
    *bytes += (size_t)d * sizeof *w;
    return true;
}

bool weights_random(model_weights *w, const gemma_config *cfg, int rank, int tp, uint64_t seed, errbuf *err) {
    memset(w, 0, sizeof *w);
    if (!tp_check(cfg, tp, err)) return false;
    if (rank < 0 || rank >= tp) return errbuf_set(err, "rank %d is out of range for tensor-parallel size %d", rank, tp);
    w->cfg = *cfg;
    w->tp = tp_layout_make(cfg, rank, tp);
    w->model_dtype = DTYPE_BF16;
    w->layers = calloc((size_t)cfg->num_layers, sizeof *w->layers);
    if (!w->layers) return errbuf_set(err, "out of memory");
    const tp_layout *t = &w->tp;
    int d = cfg->hidden_size, hd = cfg->head_dim;
    size_t *b = &w->bytes;
    bool ok = random_matrix(&w->embed, t->vocab_size, d, seed, 0, b, err) && unit_norm(&w->final_norm, d, b, err);
    for (int l = 0; ok && l < cfg->num_layers; l++) {
        layer_weights *lw = &w->layers[l];
        uint64_t id = 1 + 8 * (uint64_t)l;
        int sandwich = config_sandwich_norms(cfg) ? d : 0, qk = config_qk_norm(cfg) ? hd : 0;
        ok = unit_norm(&lw->input_norm, d, b, err) && unit_norm(&lw->pre_ffn_norm, d, b, err) &&
             unit_norm(&lw->post_attn_norm, sandwich, b, err) && unit_norm(&lw->post_ffn_norm, sandwich, b, err) &&
             unit_norm(&lw->q_norm, qk, b, err) && unit_norm(&lw->k_norm, qk, b, err) &&
             random_matrix(&lw->q, t->n_heads * hd, d, seed, id, b, err) &&
             random_matrix(&lw->k, t->n_kv_heads * hd, d, seed, id + 1, b, err) &&
             random_matrix(&lw->v, t->n_kv_heads * hd, d, seed, id + 2, b, err) &&
             random_matrix(&lw->o, d, t->n_heads * hd, seed, id + 3, b, err) &&
             random_matrix(&lw->gate, t->ffn_size, d, seed, id + 4, b, err) &&
             random_matrix(&lw->up, t->ffn_size, d, seed, id + 5, b, err) &&
             random_matrix(&lw->down, d, t->ffn_size, seed, id + 6, b, err);
    }
    if (!ok) weights_free(w);
    return ok;
}

bool weight_matrix_set_layout(weight_matrix *m, weight_layout layout, threadpool *tp, size_t *bytes, errbuf *err) {
    if (m->layout == layout || !m->data || layout != WEIGHT_PANELS || !panels_fit(m->dtype, m->cols)) return true;
    size_t size = panels_bytes(m->rows, m->cols);
    bf16_t *dst = alloc_aligned(size);
    if (!dst)
        return errbuf_set(err, "out of memory: a %d x %d matrix needs %zu MiB in the matmul's layout", m->rows, m->cols,
                          size >> 20);
    panels_pack(tp, dst, m->data, m->rows, m->cols);
    free((void *)m->data);
    m->data = dst;
    m->layout = WEIGHT_PANELS;
    *bytes += size - (size_t)m->rows * m->cols * sizeof *dst; /* the last group's padding rows */
    return true;
}

/* One matrix at a time, so loading needs at most one matrix more than the weights */
bool weights_set_layout(model_weights *w, weight_layout layout, threadpool *tp, errbuf *err) {
    bool ok = weight_matrix_set_layout(&w->embed, layout, tp, &w->bytes, err);
    for (int l = 0; ok && w->layers && l < w->cfg.num_layers; l++) {
        layer_weights *lw = &w->layers[l];
        weight_matrix *m[] = {&lw->q, &lw->k, &lw->v, &lw->o, &lw->gate, &lw->up, &lw->down};
        for (size_t i = 0; ok && i < sizeof m / sizeof *m; i++) ok = weight_matrix_set_layout(m[i], layout, tp, &w->bytes, err);
    }
    return ok;
}

void weights_free(model_weights *w) {
    if (w->layers) {
        for (int l = 0; l < w->cfg.num_layers; l++) {
            layer_weights *lw = &w->layers[l];
            free(lw->input_norm);
            free(lw->pre_ffn_norm);
            free(lw->post_attn_norm);
            free(lw->post_ffn_norm);
            free(lw->q_norm);
            free(lw->k_norm);
            free((void *)lw->q.data);
            free((void *)lw->k.data);
            free((void *)lw->v.data);
            free((void *)lw->o.data);
            free((void *)lw->gate.data);
            free((void *)lw->up.data);
            free((void *)lw->down.data);
        }
    }
    free(w->layers);
    free((void *)w->embed.data);
    free(w->final_norm);
    memset(w, 0, sizeof *w);
}
