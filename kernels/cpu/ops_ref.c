/* ops_ref.c — reference CPU ops: plain loops, one thread, fp32.
 * The definition of correct for every faster version (see ops.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/numeric.h"
#include "common/alloc.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/ops_common.h"

static void ref_matmul(threadpool *tp, float *y, const float *x, int n, const weight_matrix *w) {
    (void)tp;
    if (dtype_is_quantized(w->dtype)) { /* GGUF blocks: kernels/cpu/quant.h defines their product */
        quant_matmul_ref(y, x, n, dtype_ggml_type(w->dtype), w->data, w->rows, w->cols);
        return;
    }
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * w->cols;
        for (int r = 0; r < w->rows; r++) {
            float acc = 0.0f;
            for (int c = 0; c < w->cols; c++) acc += xt[c] * weight_at(w, r, c);
            y[(size_t)t * w->rows + r] = acc;
        }
    }
}

static void ref_rmsnorm(threadpool *tp, float *y, const float *x, const float *w1p, int n, int d, float eps) {
    (void)tp;
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * d;
        float *yt = y + (size_t)t * d;
        float ss = 0.0f;
        for (int i = 0; i < d; i++) ss += xt[i] * xt[i];
        float inv = 1.0f / sqrtf(ss / (float)d + eps);
        for (int i = 0; i < d; i++) yt[i] = xt[i] * inv * w1p[i];
    }
}

static void ref_rope(threadpool *tp, float *x, int n, int heads, int hd, const int32_t *pos,
                     const float *inv_freq) {
    (void)tp;
    int half = hd / 2;
    for (int t = 0; t < n; t++) {
        for (int h = 0; h < heads; h++) {
            float *v = x + ((size_t)t * heads + h) * hd;
            for (int i = 0; i < half; i++) {
                float angle = (float)pos[t] * inv_freq[i];
                float c = cosf(angle), s = sinf(angle);
                float a = v[i], b = v[i + half];
                v[i] = a * c - b * s;
                v[i + half] = b * c + a * s;
            }
        }
    }
}

static void ref_geglu(threadpool *tp, float *g, const float *u, int n, int f) {
    (void)tp;
    for (size_t i = 0; i < (size_t)n * f; i++) g[i] = gelu_tanh(g[i]) * u[i];
}

static void ref_add(threadpool *tp, float *x, const float *y, int n, int d) {
    (void)tp;
    for (size_t i = 0; i < (size_t)n * d; i++) x[i] += y[i];
}

static void ref_embed(threadpool *tp, float *out, const int32_t *tokens, int n, const weight_matrix *e,
                      int vocab_begin, float scale) {
    (void)tp;
    for (int t = 0; t < n; t++) {
        float *o = out + (size_t)t * e->cols;
        int row = tokens[t] - vocab_begin;
        if (row >= 0 && row < e->rows)
            embed_row(e, row, scale, o);
        else
            for (int c = 0; c < e->cols; c++) o[c] = 0.0f;
    }
}

static void ref_kv_write(threadpool *tp, const kv_layer_view *kv, const float *k, const float *v,
                         const attn_seq *seqs, int n_seqs) {
    (void)tp;
    int row_len = kv->n_kv_heads * kv->head_dim;
    for (int s = 0; s < n_seqs; s++) {
        for (int i = 0; i < seqs[s].n_tokens; i++) {
            int t = seqs[s].token_offset + i;
            int p = seqs[s].start_pos + i;
            for (int h = 0; h < kv->n_kv_heads; h++) {
                size_t off = kv_offset(kv, seqs[s].block_table, p, h);
                memcpy(kv->k + off, k + (size_t)t * row_len + (size_t)h * kv->head_dim, (size_t)kv->head_dim * sizeof(float));
                memcpy(kv->v + off, v + (size_t)t * row_len + (size_t)h * kv->head_dim, (size_t)kv->head_dim * sizeof(float));
            }
        }
    }
}

static void ref_attention(threadpool *tp, float *out, const float *q, const kv_layer_view *kv,
                          const attn_seq *seqs, int n_seqs, const attn_params *ap) {
    (void)tp;
    int hd = kv->head_dim, n_heads = ap->n_heads;
    for (int s = 0; s < n_seqs; s++) {
        int ctx = seqs[s].start_pos + seqs[s].n_tokens;
        float *scores = xmalloc((size_t)ctx * sizeof *scores);
        for (int i = 0; i < seqs[s].n_tokens; i++) {
            int t = seqs[s].token_offset + i, p = seqs[s].start_pos + i;
            int first = ap->window > 0 && p - ap->window + 1 > 0 ? p - ap->window + 1 : 0;
            for (int h = 0; h < n_heads; h++) {
                int kvh = (ap->head_begin + h) / ap->group - ap->kv_head_begin;
                const float *qv = q + ((size_t)t * n_heads + h) * hd;
                float max = -INFINITY;
                for (int j = first; j <= p; j++) {
                    const float *kj = kv->k + kv_offset(kv, seqs[s].block_table, j, kvh);
                    float dot = 0.0f;
                    for (int c = 0; c < hd; c++) dot += qv[c] * kj[c];
                    scores[j] = dot * ap->scale;
                    if (ap->softcap > 0) scores[j] = ap->softcap * tanhf(scores[j] / ap->softcap);
                    if (scores[j] > max) max = scores[j];
                }
                float sum = 0.0f;
                for (int j = first; j <= p; j++) {
                    scores[j] = expf(scores[j] - max);
                    sum += scores[j];
                }
                float *o = out + ((size_t)t * n_heads + h) * hd;
                for (int c = 0; c < hd; c++) o[c] = 0.0f;
                for (int j = first; j <= p; j++) {
                    const float *vj = kv->v + kv_offset(kv, seqs[s].block_table, j, kvh);
                    float wgt = scores[j] / sum;
                    for (int c = 0; c < hd; c++) o[c] += wgt * vj[c];
                }
            }
        }
        free(scores);
    }
}

static const cpu_ops k_ref_ops = {
    .name = "reference",
    .bf16_layout = WEIGHT_ROWS,
    .matmul = ref_matmul,
    .rmsnorm = ref_rmsnorm,
    .rope = ref_rope,
    .geglu = ref_geglu,
    .add = ref_add,
    .embed = ref_embed,
    .kv_write = ref_kv_write,
    .attention = ref_attention,
};

const cpu_ops *cpu_ops_ref(void) { return &k_ref_ops; }
