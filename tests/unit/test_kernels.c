/* Every fast CPU op against its reference (kernels/cpu/ops_ref.c) on fresh
 * random inputs at several sizes. Tolerance: 1e-5 relative (both are fp32;
 * only summation order differs), growing as sqrt(C / 256) for dot products
 * longer than 256 terms. Outputs are poisoned with NaN first, so
 * an element an op forgets to write fails. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "random_data.h"
#include "common/numeric.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/bf16dot.h"
#include "kernels/cpu/panels.h"

#define TOL 1e-5


static const cpu_ops *ref, *fast;
static threadpool *tp;

/* w (R, C) of dtype dt over the fp32 values wf; bf16 ones go to *wb (freed by the caller) */
static weight_matrix random_weights(dtype dt, int R, int C, float *wf, bf16_t **wb) {
    if (dt != DTYPE_BF16) return (weight_matrix){dt, R, C, wf, WEIGHT_ROWS};
    *wb = malloc((size_t)R * C * sizeof **wb);
    for (size_t i = 0; i < (size_t)R * C; i++) (*wb)[i] = f32_to_bf16(wf[i]);
    return (weight_matrix){dt, R, C, *wb, WEIGHT_ROWS};
}

/* The same bf16 matrix in panels (kernels/cpu/panels.h), in *wp (freed by the caller) */
static weight_matrix in_panels(const weight_matrix *w, bf16_t **wp) {
    *wp = malloc(panels_bytes(w->rows, w->cols));
    panels_pack(tp, *wp, w->data, w->rows, w->cols);
    return (weight_matrix){DTYPE_BF16, w->rows, w->cols, *wp, WEIGHT_PANELS};
}

/* ops' matmul against the reference's; a table that splits x into two bf16
 * for bf16 weights (the AVX512_BF16 kernel) against the reference on the
 * x it multiplies by, hi + lo. In WEIGHT_PANELS (bf16, even columns only)
 * the table multiplies the packed copy, the reference the row-major one, and
 * the reference on the packed copy must give the same bits (weight_at). */
static void test_matmul(const cpu_ops *ops, dtype dt, weight_layout layout) {
    const int ns[] = {1, 2, 3, 4, 5, 6, 8, 13, 40}, rows[] = {1, 3, 64, 67, 130},
              cols[] = {1, 2, 7, 8, 16, 33, 64, 97, 256, 4098, 4105};
    int nn = sizeof ns / sizeof *ns, nr = sizeof rows / sizeof *rows, nc = sizeof cols / sizeof *cols, done = 0;
    for (int a = 0; a < nn; a++)
        for (int b = 0; b < nr; b++)
            for (int c = 0; c < nc; c++) {
                int n = ns[a], R = rows[b], C = cols[c];
                if (layout == WEIGHT_PANELS && !panels_fit(dt, C)) continue;
                done++;
                float *x = randv((size_t)n * C), *wf = randv((size_t)R * C);
                bf16_t *wb = NULL, *wp = NULL;
                weight_matrix w_rows = random_weights(dt, R, C, wf, &wb);
                weight_matrix w = layout == WEIGHT_PANELS ? in_panels(&w_rows, &wp) : w_rows;
                float *y0 = nanv((size_t)n * R), *y1 = nanv((size_t)n * R);
                float *xr = malloc((size_t)n * C * sizeof *xr);
                bool split = ops->split_bf16_activations && dt == DTYPE_BF16;
                for (size_t i = 0; i < (size_t)n * C; i++) xr[i] = split ? bf16dot_split_value(x[i]) : x[i];
                ref->matmul(NULL, y0, xr, n, &w_rows);
                if (layout == WEIGHT_PANELS) {
                    float *yp = nanv((size_t)n * R);
                    ref->matmul(NULL, yp, xr, n, &w);
                    CHECK(memcmp(yp, y0, (size_t)n * R * sizeof *yp) == 0,
                          "reference matmul n=%d rows=%d cols=%d: panels give other values than rows", n, R, C);
                    free(yp);
                }
                free(xr);
                ops->matmul(tp, y1, x, n, &w);
                /* fp32 sums of C terms in another order drift by ~sqrt(C) ulps */
                double tol = TOL * (C > 256 ? sqrt(C / 256.0) : 1.0);
                double d = rel_max_diff(y1, y0, (size_t)n * R);
                CHECK(d <= tol, "matmul %s%s (%s) n=%d rows=%d cols=%d: rel diff %.3g", dtype_name(dt),
                      layout == WEIGHT_PANELS ? " panels" : "", ops->name, n, R, C, d);
                /* Bitwise batch invariance: each row of the batch (the prefill GEMM's panels and
                 * the rows left after them) equals the same row computed alone (the decode GEMV).
                 * The engine relies on it for identical tokens whatever else shares a step. */
                int differ = -1;
                for (int i = 0; i < n && differ < 0; i++) {
                    ops->matmul(tp, y0, x + (size_t)i * C, 1, &w);
                    if (memcmp(y0, y1 + (size_t)i * R, (size_t)R * sizeof *y0) != 0) differ = i;
                }
                CHECK(differ < 0, "matmul %s%s (%s) n=%d rows=%d cols=%d: row %d differs from the same row alone",
                      dtype_name(dt), layout == WEIGHT_PANELS ? " panels" : "", ops->name, n, R, C, differ);
                free(x), free(wf), free(wb), free(wp), free(y0), free(y1);
            }
    CHECK(done > 0, "matmul: no shapes checked");
}

static void test_rowwise(void) {
    const int ns[] = {1, 3, 9}, ds[] = {1, 7, 48, 2048};
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 4; b++) {
            int n = ns[a], d = ds[b];
            size_t m = (size_t)n * d;
            float *x = randv(m), *w = randv((size_t)d), *y0 = nanv(m), *y1 = nanv(m);
            ref->rmsnorm(NULL, y0, x, w, n, d, 1e-6f);
            fast->rmsnorm(tp, y1, x, w, n, d, 1e-6f);
            CHECK(rel_max_diff(y1, y0, m) <= TOL, "rmsnorm n=%d d=%d", n, d);

            float *g0 = randv(m), *g1 = malloc(m * sizeof *g1), *u = randv(m);
            for (size_t i = 0; i < m; i++) g0[i] *= 4, g1[i] = g0[i];
            ref->geglu(NULL, g0, u, n, d);
            fast->geglu(tp, g1, u, n, d);
            CHECK(rel_max_diff(g1, g0, m) <= TOL, "geglu n=%d f=%d", n, d);
            /* element by element, over the whole range of gelu: each within 1e-6 of |x| (fast's
             * vectorized gelu against libm's tanhf; gelu(x) is at most |x|) */
            for (size_t i = 0; i < m; i++) g0[i] = g1[i] = 12.0f * frand(), u[i] = 1.0f;
            float *x_in = malloc(m * sizeof *x_in);
            memcpy(x_in, g0, m * sizeof *x_in);
            ref->geglu(NULL, g0, u, n, d);
            fast->geglu(tp, g1, u, n, d);
            size_t bad = 0;
            for (size_t i = 0; i < m; i++)
                if (!(fabsf(g1[i] - g0[i]) <= 1e-6f * fabsf(x_in[i]))) bad++;
            CHECK(bad == 0, "geglu n=%d f=%d on [-12, 12): %zu elements off by more than 1e-6 |x|", n, d, bad);
            free(x_in);

            float *s0 = randv(m), *s1 = malloc(m * sizeof *s1);
            memcpy(s1, s0, m * sizeof *s1);
            ref->add(NULL, s0, u, n, d);
            fast->add(tp, s1, u, n, d);
            CHECK(rel_max_diff(s1, s0, m) <= TOL, "add n=%d d=%d", n, d);
            free(x), free(w), free(y0), free(y1), free(g0), free(g1), free(u), free(s0), free(s1);
        }
}

static void test_rope(void) {
    const int hds[] = {2, 16, 256}, heads[] = {1, 3};
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 2; b++) {
            int n = 5, hd = hds[a], h = heads[b];
            size_t m = (size_t)n * h * hd;
            float *x0 = randv(m), *x1 = malloc(m * sizeof *x1), *inv = malloc((size_t)hd / 2 * sizeof *inv);
            memcpy(x1, x0, m * sizeof *x1);
            for (int i = 0; i < hd / 2; i++) inv[i] = 1.0f / powf(10000.0f, (float)(2 * i) / (float)hd);
            int32_t pos[5] = {0, 1, 17, 1000, 8191};
            ref->rope(NULL, x0, n, h, hd, pos, inv);
            fast->rope(tp, x1, n, h, hd, pos, inv);
            CHECK(rel_max_diff(x1, x0, m) <= TOL, "rope hd=%d heads=%d", hd, h);
            free(x0), free(x1), free(inv);
        }
}

/* f32, bf16 rows (odd width), bf16 panels (even width: the LM head as the engine loads it) */
static void test_embed(void) {
    int V = 50, d = 38;
    float *e = randv((size_t)V * d);
    bf16_t *eb = malloc((size_t)V * d * sizeof *eb), *ep = malloc(panels_bytes(V, d));
    for (int i = 0; i < V * d; i++) eb[i] = f32_to_bf16(e[i]);
    panels_pack(NULL, ep, eb, V, d);
    int32_t toks[6] = {0, 49, 60, 75, 10, 99}; /* the slice [50, 100) holds only some */
    for (int pass = 0; pass < 3; pass++) {
        weight_matrix w = pass == 0   ? (weight_matrix){DTYPE_F32, V, d, e, WEIGHT_ROWS}
                          : pass == 1 ? (weight_matrix){DTYPE_BF16, V, d - 1, eb, WEIGHT_ROWS}
                                      : (weight_matrix){DTYPE_BF16, V, d, ep, WEIGHT_PANELS};
        int dc = w.cols;
        float *y0 = nanv(6 * (size_t)dc), *y1 = nanv(6 * (size_t)dc);
        ref->embed(NULL, y0, toks, 6, &w, 50, 6.0f);
        fast->embed(tp, y1, toks, 6, &w, 50, 6.0f);
        CHECK(rel_max_diff(y1, y0, 6 * (size_t)dc) <= TOL, "embed %s (pass %d)", dtype_name(w.dtype), pass);
        CHECK(y1[0] == 0.0f && y1[dc] == 0.0f && y1[2 * dc] != 0.0f, "embed: foreign rows are zero");
        if (w.layout == WEIGHT_PANELS) { /* the same rows as the row-major matrix gives */
            weight_matrix rows = {DTYPE_BF16, V, d, eb, WEIGHT_ROWS};
            ref->embed(NULL, y0, toks, 6, &rows, 50, 6.0f);
            CHECK(memcmp(y0, y1, 6 * (size_t)dc * sizeof *y0) == 0, "embed: panels give other rows than rows");
        }
        free(y0), free(y1);
    }
    free(e), free(eb), free(ep);
}

/* Paged attention: several sequences mixing a prefill chunk after cached
 * context, fresh prompts and single decode tokens, with scattered blocks;
 * optionally soft-capped scores (Gemma 2) and a sliding window. */
static void test_attention(int n_heads, int n_kv, int hd, int block_size, float softcap, int window) {
    enum { NS = 4, NB = 64 };
    const int starts[NS] = {0, 13, 40, 7}, news[NS] = {9, 1, 5, 1};
    int32_t tables[NS][16];
    int perm[NB];
    for (int i = 0; i < NB; i++) perm[i] = i;
    for (int i = NB - 1; i > 0; i--) { /* shuffle: blocks are not in order */
        int j = (int)((frand() + 1.0f) * 0.5f * (float)(i + 1)) % (i + 1), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    for (int s = 0, k = 0; s < NS; s++)
        for (int b = 0; b < 16; b++) tables[s][b] = perm[k++];
    size_t cache = (size_t)NB * n_kv * block_size * hd;
    float *kc0 = randv(cache), *vc0 = randv(cache), *kc1 = malloc(cache * 4), *vc1 = malloc(cache * 4);
    memcpy(kc1, kc0, cache * 4), memcpy(vc1, vc0, cache * 4);
    attn_seq seqs[NS];
    int n = 0;
    for (int s = 0; s < NS; s++) {
        seqs[s] = (attn_seq){n, news[s], starts[s], tables[s]};
        n += news[s];
    }
    float *q = randv((size_t)n * n_heads * hd), *k = randv((size_t)n * n_kv * hd), *v = randv((size_t)n * n_kv * hd);
    kv_layer_view kv0 = {kc0, vc0, block_size, n_kv, hd}, kv1 = {kc1, vc1, block_size, n_kv, hd};
    ref->kv_write(NULL, &kv0, k, v, seqs, NS);
    fast->kv_write(tp, &kv1, k, v, seqs, NS);
    CHECK(memcmp(kc0, kc1, cache * 4) == 0 && memcmp(vc0, vc1, cache * 4) == 0, "kv_write");
    float *o0 = nanv((size_t)n * n_heads * hd), *o1 = nanv((size_t)n * n_heads * hd);
    int group = n_heads / n_kv;
    attn_params ap = {.n_heads = n_heads, .group = group, .scale = 0.25f, .softcap = softcap, .window = window};
    ref->attention(NULL, o0, q, &kv0, seqs, NS, &ap);
    fast->attention(tp, o1, q, &kv1, seqs, NS, &ap);
    double d = rel_max_diff(o1, o0, (size_t)n * n_heads * hd);
    CHECK(d <= TOL, "attention heads=%d kv=%d hd=%d block=%d softcap=%g window=%d: rel diff %.3g", n_heads, n_kv, hd,
          block_size, softcap, window, d);
    if (window > 0) { /* the window really cuts: the last token of the longest sequence differs from full attention */
        attn_params full = ap;
        full.window = 0;
        float *o2 = nanv((size_t)n * n_heads * hd);
        ref->attention(NULL, o2, q, &kv0, seqs, NS, &full);
        int last = seqs[2].token_offset + seqs[2].n_tokens - 1; /* position 44, far past the window */
        CHECK(memcmp(o2 + (size_t)last * n_heads * hd, o0 + (size_t)last * n_heads * hd, (size_t)n_heads * hd * 4) != 0,
              "a window of %d changes what position 44 attends to", window);
        int first = seqs[0].token_offset; /* position 0 sees only itself either way */
        CHECK(memcmp(o2 + (size_t)first * n_heads * hd, o0 + (size_t)first * n_heads * hd, (size_t)n_heads * hd * 4) == 0,
              "and not what position 0 attends to");
        free(o2);
    }
    free(kc0), free(vc0), free(kc1), free(vc1), free(q), free(k), free(v), free(o0), free(o1);
}

int main(void) {
    ref = cpu_ops_ref();
    fast = cpu_ops_select();
    tp = threadpool_create(3);
    printf("fast ops: %s\n", fast->name);
    CHECK(fast != ref, "this CPU has no fast ops (no AVX2/FMA): the comparison would be vacuous");
    test_matmul(fast, DTYPE_F32, WEIGHT_ROWS);
    test_matmul(fast, DTYPE_BF16, WEIGHT_ROWS);   /* bf16 matrices with an odd number of columns */
    test_matmul(fast, DTYPE_BF16, WEIGHT_PANELS); /* the rest, as the engine loads them for the avx2 table */
    /* the AVX512_BF16 kernel: emulated here whatever the CPU, natively where it runs */
    test_matmul(cpu_ops_avx512bf16(true), DTYPE_BF16, WEIGHT_ROWS);
    if (cpu_has_avx512bf16()) test_matmul(cpu_ops_avx512bf16(false), DTYPE_BF16, WEIGHT_ROWS);
    printf("avx512bf16 matmul: emulated checked; native %s\n",
           cpu_has_avx512bf16() ? "checked" : "not run (this CPU has no AVX512_BF16)");
    test_rowwise();
    test_rope();
    test_embed();
    test_attention(4, 1, 16, 16, 0, 0);  /* MQA */
    test_attention(4, 4, 16, 4, 0, 0);   /* MHA, small blocks */
    test_attention(8, 2, 64, 8, 0, 0);   /* GQA */
    test_attention(2, 2, 256, 16, 0, 0); /* Gemma head_dim */
    test_attention(4, 1, 16, 16, 0, 6);  /* a sliding window, shorter than most contexts */
    test_attention(8, 2, 64, 8, 2.0f, 0);  /* soft-capped scores */
    test_attention(4, 2, 16, 4, 1.5f, 5);  /* both */
    threadpool_free(tp);
    return CHECK_RESULT();
}
