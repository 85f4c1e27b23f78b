/* gpu_check — every CUDA kernel against its CPU reference, then the CUDA
 * engine against the CPU engine on the HF fixtures (tests/gpu/run.sh runs
 * it; ctest runs it too, and without a GPU it says so and exits 77, which
 * ctest reports as skipped).
 *
 * Kernel checks draw fresh random inputs each run (the seed is printed; pass
 * --seed to repeat one), poison the outputs with NaN on the device before
 * the run (an unwritten element fails), and compare by
 * ‖out − ref‖ / ‖ref‖: at most 1e-2 where the GPU path rounds to bf16, 1e-5
 * for fp32-only ops; ids (argmax, Gumbel-max, top-k) must be equal. Each
 * kernel is then timed (median of --reps runs, CUDA events) and its bytes
 * moved are set against the measured device-to-device copy bandwidth.
 *
 *   gpu_check [--seed N] [--reps N] [--quick] [--model DIR]...   */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../unit/check.h"
#include "check_comm.h"
#include "check_summarize.h"
#include "common/numeric.h"
#include "common/rng.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/sample.h"
#include "kernels/cuda/api.h"
#include "worker/backend.h"
#include "worker/engine.h"

#define SKIP_CODE 77
#define TOL_BF16 1e-2
#define TOL_F32 1e-5

static const cuda_api *api;
static threadpool *pool;
static uint64_t rng_state;
static int reps = 20;
static double copy_gbs;

/* ---- inputs --------------------------------------------------------------------- */

static uint64_t next_u64(void) { return splitmix64_next(&rng_state); }
static float uniform(float lo, float hi) { return lo + (hi - lo) * (float)((next_u64() >> 40) * (1.0 / 16777216.0)); }
static int rand_int(int n) { return (int)(next_u64() % (uint64_t)n); }

static float *rand_f32(size_t n, float scale) {
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = uniform(-scale, scale);
    return x;
}
static float round_bf16(float x) { return bf16_to_f32(f32_to_bf16(x)); }
static void round_all(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = round_bf16(x[i]);
}
static uint16_t *to_bf16(const float *x, size_t n) {
    uint16_t *b = malloc(n * sizeof *b);
    for (size_t i = 0; i < n; i++) b[i] = f32_to_bf16(x[i]);
    return b;
}

/* ‖out − ref‖ / ‖ref‖ in double; NaN (never passes) if out has a NaN or Inf. */
static double rel_err(const float *out, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(out[i])) return NAN;
        double d = (double)out[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* ---- the table ------------------------------------------------------------------ */

static void row(const char *op, const char *shape, double err, double tol, double ms, double bytes, double flops) {
    bool pass = !isnan(err) && err <= tol;
    check_count(pass);
    char gbs[32] = "", pct[32] = "", tf[32] = "";
    if (ms > 0 && bytes > 0) {
        snprintf(gbs, sizeof gbs, "%.0f", bytes / (ms * 1e-3) / 1e9);
        snprintf(pct, sizeof pct, "%.0f%%", 100.0 * bytes / (ms * 1e-3) / 1e9 / copy_gbs);
    }
    if (ms > 0 && flops > 0) snprintf(tf, sizeof tf, "%.1f", flops / (ms * 1e-3) / 1e12);
    printf("%-12s %-34s %10.2e %8.0e  %-4s %9.4f %7s %6s %7s\n", op, shape, err, tol, pass ? "ok" : "FAIL", ms, gbs,
           pct, tf);
    fflush(stdout);
}

static void op_error(const char *op, const char *shape, const errbuf *err) {
    check_count(false);
    printf("%-12s %-34s FAIL: %s\n", op, shape, err->msg);
    fflush(stdout);
}

/* ---- kernels ---------------------------------------------------------------------- */

static void check_rmsnorm(int n, int d, bool with_delta) {
    char shape[64];
    snprintf(shape, sizeof shape, "n=%d d=%d%s", n, d, with_delta ? " +residual" : "");
    size_t nd = (size_t)n * d;
    float *x = rand_f32(nd, 2), *delta = with_delta ? rand_f32(nd, 1) : NULL, *w = rand_f32((size_t)d, 0.5f);
    for (int i = 0; i < d; i++) w[i] += 1.0f;
    float *out = malloc(nd * 4), *x_out = malloc(nd * 4), *ref = malloc(nd * 4), *xs = malloc(nd * 4);
    memcpy(xs, x, nd * 4);
    if (delta) cpu_ops_ref()->add(NULL, xs, delta, n, d);
    cpu_ops_ref()->rmsnorm(NULL, ref, xs, w, n, d, 1e-6f);
    cuda_op_shape s = {.n = n, .d = d, .eps = 1e-6f};
    errbuf err;
    double ms;
    if (!api->test_add_rmsnorm(&s, x, delta, w, out, x_out, reps, &ms, &err)) op_error("add_rmsnorm", shape, &err);
    else {
        double e = fmax(rel_err(out, ref, nd), rel_err(x_out, xs, nd) * (TOL_BF16 / TOL_F32));
        row("add_rmsnorm", shape, e, TOL_BF16, ms, (double)nd * (with_delta ? 14 : 10) + d * 4.0, 0);
    }
    free(x), free(delta), free(w), free(out), free(x_out), free(ref), free(xs);
}

/* gemm_bf16's own choice of kernel, or cuBLASLt alone (cublas_only) to compare the two on one shape */
static void check_gemm_path(int n, int rows, int cols, bool cublas_only) {
    char shape[64];
    snprintf(shape, sizeof shape, "%dx%d . (%dx%d)T%s", n, cols, rows, cols, cublas_only ? " cuBLASLt" : "");
    float *x = rand_f32((size_t)n * cols, 1), *wf = rand_f32((size_t)rows * cols, 0.05f);
    round_all(x, (size_t)n * cols);
    uint16_t *w = to_bf16(wf, (size_t)rows * cols);
    float *y = malloc((size_t)n * rows * 4), *ref = malloc((size_t)n * rows * 4);
    weight_matrix wm = {DTYPE_BF16, rows, cols, w, WEIGHT_ROWS};
    cpu_ops_fast()->matmul(pool, ref, x, n, &wm); /* tests/unit/test_kernels checks it against ops_ref */
    cuda_op_shape s = {.n = n, .rows = rows, .cols = cols, .cublas_only = cublas_only};
    errbuf err;
    double ms;
    if (!api->test_gemm(&s, x, w, y, reps, &ms, &err)) op_error("gemm", shape, &err);
    else
        row("gemm", shape, rel_err(y, ref, (size_t)n * rows), TOL_BF16, ms,
            (double)rows * cols * 2 + (double)n * cols * 2 + (double)n * rows * 4, 2.0 * n * rows * (double)cols);
    free(x), free(wf), free(w), free(y), free(ref);
}

static void check_gemm(int n, int rows, int cols) { check_gemm_path(n, rows, cols, false); }

/* The skinny kernel (n = 1) against cuBLASLt on the 7b decode weights: qkv, o, gate+up, down, and the 2b LM
 * head. The o matrix (25 MB) fits in the 50-60 MB L2, so its repeated runs read partly from the cache. */
static void compare_decode_gemms(void) {
    static const int shapes[][2] = {{12288, 3072}, {3072, 4096}, {49152, 3072}, {3072, 24576}, {256000, 2048}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        check_gemm_path(1, shapes[i][0], shapes[i][1], false);
        check_gemm_path(1, shapes[i][0], shapes[i][1], true);
    }
}

static void check_embed(int n, int vocab_rows, int d, int vocab_begin) {
    char shape[64];
    snprintf(shape, sizeof shape, "n=%d slice=%d+%d d=%d", n, vocab_begin, vocab_rows, d);
    float *ef = rand_f32((size_t)vocab_rows * d, 0.05f);
    uint16_t *e = to_bf16(ef, (size_t)vocab_rows * d);
    int32_t *tok = malloc((size_t)n * 4);
    for (int i = 0; i < n; i++) { /* some outside the slice */
        int t = vocab_begin - 50 + rand_int(vocab_rows + 100);
        tok[i] = t < 0 ? 0 : t;
    }
    float *out = malloc((size_t)n * d * 4), *ref = malloc((size_t)n * d * 4);
    weight_matrix wm = {DTYPE_BF16, vocab_rows, d, e, WEIGHT_ROWS};
    cpu_ops_ref()->embed(NULL, ref, tok, n, &wm, vocab_begin, 45.25f);
    cuda_op_shape s = {.n = n, .rows = vocab_rows, .cols = d, .vocab_begin = vocab_begin, .scale = 45.25f};
    errbuf err;
    double ms;
    if (!api->test_embed(&s, tok, e, out, reps, &ms, &err)) op_error("embed", shape, &err);
    else row("embed", shape, rel_err(out, ref, (size_t)n * d), TOL_F32, ms, (double)n * d * 6, 0);
    free(ef), free(e), free(tok), free(out), free(ref);
}

static void check_rope_kv(int n, int heads, int kv_heads, int hd, int block_size, int n_blocks) {
    char shape[64];
    snprintf(shape, sizeof shape, "n=%d H=%d K=%d hd=%d", n, heads, kv_heads, hd);
    int stride = (heads + 2 * kv_heads) * hd, slots = n_blocks * block_size;
    size_t cache = (size_t)slots * kv_heads * hd;
    float *qkv = rand_f32((size_t)n * stride, 1), *inv = malloc((size_t)hd / 2 * 4);
    for (int i = 0; i < hd / 2; i++) inv[i] = 1.0f / powf(10000.0f, (float)(2 * i) / (float)hd);
    int32_t *pos = malloc((size_t)n * 4), *slot = malloc((size_t)n * 4), *perm = malloc((size_t)slots * 4);
    for (int i = 0; i < slots; i++) perm[i] = i;
    for (int i = 0; i < n; i++) { /* distinct slots */
        int j = i + rand_int(slots - i), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
        slot[i] = perm[i];
        pos[i] = rand_int(8192);
    }
    /* reference: q, k rotated (fp32), k, v into the cache (bf16-rounded) */
    float *q = malloc((size_t)n * heads * hd * 4), *k = malloc((size_t)n * kv_heads * hd * 4);
    for (int t = 0; t < n; t++) {
        memcpy(q + (size_t)t * heads * hd, qkv + (size_t)t * stride, (size_t)heads * hd * 4);
        memcpy(k + (size_t)t * kv_heads * hd, qkv + (size_t)t * stride + heads * hd, (size_t)kv_heads * hd * 4);
    }
    cpu_ops_ref()->rope(NULL, q, n, heads, hd, pos, inv);
    cpu_ops_ref()->rope(NULL, k, n, kv_heads, hd, pos, inv);
    float *out = malloc((size_t)n * stride * 4);
    memcpy(out, qkv, (size_t)n * stride * 4);
    float *kc = malloc(cache * 4), *vc = malloc(cache * 4);
    cuda_op_shape s = {.n = n, .heads = heads, .kv_heads = kv_heads, .head_dim = hd, .block_size = block_size,
                       .n_blocks = n_blocks};
    errbuf err;
    double ms;
    if (!api->test_rope_kv(&s, out, pos, slot, inv, kc, vc, reps, &ms, &err)) {
        op_error("rope_kv", shape, &err);
    } else {
        /* gather: rotated q, k from the row; k, v from their cache slots */
        size_t nq = (size_t)n * heads * hd, nk = (size_t)n * kv_heads * hd;
        float *got_q = malloc(nq * 4), *got_k = malloc(nk * 4), *got_kc = malloc(nk * 4), *got_vc = malloc(nk * 4);
        float *ref_kc = malloc(nk * 4), *ref_vc = malloc(nk * 4);
        for (int t = 0; t < n; t++) {
            memcpy(got_q + (size_t)t * heads * hd, out + (size_t)t * stride, (size_t)heads * hd * 4);
            memcpy(got_k + (size_t)t * kv_heads * hd, out + (size_t)t * stride + heads * hd, (size_t)kv_heads * hd * 4);
            int b = slot[t] / block_size, in = slot[t] % block_size;
            for (int h = 0; h < kv_heads; h++) {
                size_t off = (((size_t)b * kv_heads + h) * block_size + in) * hd, dst = ((size_t)t * kv_heads + h) * hd;
                memcpy(got_kc + dst, kc + off, (size_t)hd * 4);
                memcpy(got_vc + dst, vc + off, (size_t)hd * 4);
                memcpy(ref_kc + dst, k + dst, (size_t)hd * 4);
                memcpy(ref_vc + dst, qkv + (size_t)t * stride + (heads + kv_heads) * hd + (size_t)h * hd, (size_t)hd * 4);
            }
        }
        double e = fmax(fmax(rel_err(got_q, q, nq), rel_err(got_k, k, nk)) * (TOL_BF16 / TOL_F32),
                        fmax(rel_err(got_kc, ref_kc, nk), rel_err(got_vc, ref_vc, nk)));
        row("rope_kv", shape, e, TOL_BF16, ms, (double)n * stride * 8 + (double)nk * 4, 0);
        free(got_q), free(got_k), free(got_kc), free(got_vc), free(ref_kc), free(ref_vc);
    }
    free(qkv), free(inv), free(pos), free(slot), free(perm), free(q), free(k), free(out), free(kc), free(vc);
}

typedef struct attn_case {
    const char *name;
    int heads, kv_heads, hd, head_begin, group, kv_head_begin; /* a rank's view */
    int n_seqs;
    int start[16], len[16]; /* per sequence: cached positions, new tokens */
} attn_case;

static void check_attention(const attn_case *c, bool timed_flops) {
    const int bs = 16, hd = c->hd;
    int n = 0, max_blocks = 0, total_blocks = 0;
    int32_t offs[16];
    double kv_bytes = 0, flops = 0;
    for (int i = 0; i < c->n_seqs; i++) {
        offs[i] = n;
        n += c->len[i];
        int blocks = (c->start[i] + c->len[i] + bs - 1) / bs;
        max_blocks = blocks > max_blocks ? blocks : max_blocks;
        total_blocks += blocks;
        kv_bytes += (double)(c->start[i] + c->len[i]) * c->kv_heads * hd * 2 * 2;
        flops += 4.0 * c->heads * hd * ((double)c->len[i] * c->start[i] + (double)c->len[i] * (c->len[i] + 1) / 2);
    }
    int n_blocks = total_blocks + 3;
    int32_t *tables = malloc((size_t)c->n_seqs * max_blocks * 4), *perm = malloc((size_t)n_blocks * 4);
    for (int i = 0; i < n_blocks; i++) perm[i] = i;
    for (int i = n_blocks - 1; i > 0; i--) {
        int j = rand_int(i + 1), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    for (int s = 0, used = 0; s < c->n_seqs; s++)
        for (int b = 0; b < max_blocks; b++)
            tables[s * max_blocks + b] = b < (c->start[s] + c->len[s] + bs - 1) / bs ? perm[used++] : 0;
    size_t cache = (size_t)n_blocks * c->kv_heads * bs * hd, qd = (size_t)c->heads * hd;
    float *kc = rand_f32(cache, 1), *vc = rand_f32(cache, 1), *q = rand_f32((size_t)n * qd, 1);
    round_all(kc, cache), round_all(vc, cache);
    float *out = malloc((size_t)n * qd * 4), *ref = malloc((size_t)n * qd * 4);
    attn_seq seqs[16];
    int32_t starts[16], lens[16];
    for (int i = 0; i < c->n_seqs; i++) {
        seqs[i] = (attn_seq){offs[i], c->len[i], c->start[i], tables + (size_t)i * max_blocks};
        starts[i] = c->start[i], lens[i] = c->len[i];
    }
    kv_layer_view kv = {kc, vc, bs, c->kv_heads, hd};
    float scale = 1.0f / sqrtf((float)hd);
    attn_params ap = {.n_heads = c->heads, .head_begin = c->head_begin, .group = c->group,
                      .kv_head_begin = c->kv_head_begin, .scale = scale};
    cpu_ops_fast()->attention(pool, ref, q, &kv, seqs, c->n_seqs, &ap);
    cuda_op_shape s = {.n = n, .heads = c->heads, .kv_heads = c->kv_heads, .head_dim = hd, .head_begin = c->head_begin,
                       .group = c->group, .kv_head_begin = c->kv_head_begin, .block_size = bs, .n_blocks = n_blocks,
                       .scale = scale};
    errbuf err;
    double ms;
    if (!api->test_attention(&s, q, kc, vc, starts, lens, offs, tables, c->n_seqs, max_blocks, out, reps, &ms, &err))
        op_error("attention", c->name, &err);
    else
        row("attention", c->name, rel_err(out, ref, (size_t)n * qd), TOL_BF16, ms, kv_bytes + (double)n * qd * 6,
            timed_flops ? flops : 0);
    free(tables), free(perm), free(kc), free(vc), free(q), free(out), free(ref);
}

static void check_geglu(int n, int f) {
    char shape[64];
    snprintf(shape, sizeof shape, "n=%d f=%d", n, f);
    float *gu = rand_f32((size_t)n * 2 * f, 3), *g = malloc((size_t)n * f * 4), *u = malloc((size_t)n * f * 4);
    for (int t = 0; t < n; t++) {
        memcpy(g + (size_t)t * f, gu + (size_t)t * 2 * f, (size_t)f * 4);
        memcpy(u + (size_t)t * f, gu + (size_t)t * 2 * f + f, (size_t)f * 4);
    }
    cpu_ops_ref()->geglu(NULL, g, u, n, f);
    float *out = malloc((size_t)n * f * 4);
    cuda_op_shape s = {.n = n, .d = f};
    errbuf err;
    double ms;
    if (!api->test_geglu(&s, gu, out, reps, &ms, &err)) op_error("geglu", shape, &err);
    else row("geglu", shape, rel_err(out, g, (size_t)n * f), TOL_BF16, ms, (double)n * f * 10, 0);
    free(gu), free(g), free(u), free(out);
}

static void check_softcap(int n, int d, float cap) {
    char shape[64];
    snprintf(shape, sizeof shape, "n=%d d=%d cap=%g", n, d, cap);
    size_t nd = (size_t)n * d;
    float *x = rand_f32(nd, 3 * cap), *ref = malloc(nd * 4);
    memcpy(ref, x, nd * 4);
    softcap_f32(ref, nd, cap);
    cuda_op_shape s = {.n = n, .d = d, .cap = cap};
    errbuf err;
    double ms;
    if (!api->test_softcap(&s, x, reps, &ms, &err)) op_error("softcap", shape, &err);
    else row("softcap", shape, rel_err(x, ref, nd), TOL_F32, ms, (double)nd * 8, 0);
    free(x), free(ref);
}

static void check_argmax(int n, int d, int vocab_begin, float temperature, uint64_t seed) {
    char shape[64];
    snprintf(shape, sizeof shape, "n=%d d=%d T=%g", n, d, temperature);
    float *x = rand_f32((size_t)n * d, 8);
    if (n > 1) { /* ties in row 1: the lowest index must win */
        float *r = x + d;
        int best = argmax_f32(r, d);
        r[d - 1] = r[best];
        r[best / 2] = r[best];
    }
    int32_t *am = malloc((size_t)n * 4), *gm = malloc((size_t)n * 4);
    candidate *c = malloc((size_t)d * sizeof *c);
    cuda_op_shape s = {.n = n, .d = d, .vocab_begin = vocab_begin, .temperature = temperature, .seed = seed};
    errbuf err;
    double ms;
    if (!api->test_argmax(&s, x, am, gm, reps, &ms, &err)) {
        op_error("argmax+gumbel", shape, &err);
    } else {
        int wrong = 0;
        for (int r = 0; r < n; r++) {
            const float *xr = x + (size_t)r * d;
            wrong += am[r] != vocab_begin + argmax_f32(xr, d);
            float inv_t = 1.0f / temperature;
            for (int i = 0; i < d; i++) c[i] = (candidate){vocab_begin + i, xr[i] * inv_t};
            wrong += gm[r] != candidates_gumbel_pick(c, d, seed, (uint64_t)r);
        }
        row("argmax+gumbel", shape, wrong, 0, ms, (double)n * d * 4, 0);
    }
    free(x), free(am), free(gm), free(c);
}

static void check_topk(int n, int d, int vocab_begin, int k, float temperature, float top_p) {
    char shape[64];
    snprintf(shape, sizeof shape, "n=%d d=%d k=%d p=%g", n, d, k, top_p);
    float *x = rand_f32((size_t)n * d, 8);
    if (n > 1) /* ties across the k-th value in row 1 */
        for (int i = 0; i < d; i += 97) x[d + i] = 7.5f;
    int32_t *ids = malloc((size_t)n * k * 4), *kept = malloc((size_t)n * 4);
    float *vals = malloc((size_t)n * k * 4);
    candidate *c = malloc((size_t)d * sizeof *c);
    cuda_op_shape s = {.n = n, .d = d, .vocab_begin = vocab_begin, .k = k, .temperature = temperature, .top_p = top_p};
    errbuf err;
    double ms;
    if (!api->test_topk(&s, x, ids, vals, kept, reps, &ms, &err)) {
        op_error("topk", shape, &err);
    } else {
        int wrong = 0;
        float inv_t = 1.0f / temperature;
        for (int r = 0; r < n; r++) {
            for (int i = 0; i < d; i++) c[i] = (candidate){vocab_begin + i, x[(size_t)r * d + i] * inv_t};
            int m = candidates_top_k(c, d, k);
            for (int i = 0; i < m; i++) wrong += ids[(size_t)r * k + i] != c[i].id || vals[(size_t)r * k + i] != c[i].logit;
            wrong += kept[r] != candidates_top_p(c, m, top_p);
        }
        row("topk+top_p", shape, wrong, 0, ms, (double)n * d * 4 * 5, 0); /* radix select: about 5 passes */
    }
    free(x), free(ids), free(kept), free(vals), free(c);
}

static void check_kernels(bool quick) {
    errbuf err;
    copy_gbs = api->copy_bandwidth_gbs(0, &err);
    double tflops = api->gemm_tflops(0, 8192, 8192, 8192, &err);
    printf("ceilings: device-to-device copy %.0f GB/s (read + write); bf16 GEMM 8192^3 %.0f TFLOP/s\n\n", copy_gbs,
           tflops);
    printf("%-12s %-34s %10s %8s  %-4s %9s %7s %6s %7s\n", "op", "shape", "rel err", "tol", "", "ms", "GB/s", "%copy",
           "TFLOP/s");
    check_rmsnorm(1, 2048, false);
    check_rmsnorm(7, 3072, true);
    check_rmsnorm(2048, 3072, true);
    check_gemm(1, 16, 48);
    check_gemm(5, 333, 200);
    check_gemm(1, 24576, 3072); /* 7b decode: up/gate rows */
    check_gemm(64, 3072, 24576);
    if (!quick) check_gemm(2048, 24576, 3072); /* 7b prefill */
    if (!quick) compare_decode_gemms();
    check_gemm(1, 40, 24);    /* the skinny kernel: 3 pieces of 16 bytes per row */
    check_gemm(1, 1000, 4104); /* ... 513 pieces: more than one round of loads, and a partial one */
    check_embed(9, 300, 48, 100);
    check_embed(64, 128000, 3072, 128000);
    check_rope_kv(3, 4, 1, 16, 4, 4);
    check_rope_kv(37, 8, 1, 256, 16, 8);
    check_rope_kv(64, 16, 16, 256, 16, 16);
    static const attn_case cases[] = {
        {"hd16 MQA mixed", 4, 1, 16, 0, 4, 0, 5, {0, 3, 40, 0, 17}, {9, 1, 1, 1, 70}},
        {"2b MQA prefill+decode", 8, 1, 256, 0, 8, 0, 6, {0, 37, 500, 3000, 0, 120}, {100, 64, 1, 1, 1, 7}},
        {"7b MHA prefill+decode", 16, 16, 256, 0, 1, 0, 4, {0, 1000, 5, 64}, {130, 1, 1, 65}},
        {"rank 1/2 of MQA (repl. kv)", 4, 1, 256, 4, 8, 0, 3, {10, 0, 700}, {1, 33, 1}},
        {"rank 1/4 of MHA", 4, 4, 256, 4, 1, 4, 3, {0, 90, 2000}, {50, 1, 1}},
        {"long decode 8191", 8, 1, 256, 0, 8, 0, 2, {8190, 4000}, {1, 1}},
        {"hd64 chunks after a cache", 4, 1, 64, 0, 4, 0, 3, {0, 200, 77}, {129, 150, 63}},
        {"hd128 MHA", 4, 4, 128, 0, 1, 0, 2, {0, 5}, {200, 90}},
        {"hd32 GQA", 8, 2, 32, 0, 4, 0, 2, {0, 31}, {65, 2}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_attention(&cases[i], false);
    attn_case dec = {"7b decode 16 x ctx 1024", 16, 16, 256, 0, 1, 0, 16, {0}, {0}};
    for (int i = 0; i < 16; i++) dec.start[i] = 1023, dec.len[i] = 1;
    check_attention(&dec, false);
    if (!quick) {
        attn_case pre = {"7b prefill 2048", 16, 16, 256, 0, 1, 0, 1, {0}, {2048}};
        check_attention(&pre, true);
        attn_case pre2b = {"2b prefill 2048", 8, 1, 256, 0, 8, 0, 1, {0}, {2048}};
        check_attention(&pre2b, true);
    }
    check_geglu(3, 96);
    check_geglu(64, 24576);
    check_softcap(4, 256000, 30.0f);
    check_argmax(4, 1000, 0, 0.7f, 42);
    check_argmax(8, 128000, 128000, 1.3f, next_u64());
    check_topk(3, 500, 0, 20, 1.0f, 0.9f);
    check_topk(4, 128000, 128000, 50, 0.8f, 0.95f);
    check_topk(2, 256000, 0, 1024, 1.0f, 1.0f);
    check_count(check_summarize(api) == 0); /* device row summaries vs dist_summarize_row, one line per case */
}

/* ---- the engine against the CPU engine on a fixture -------------------------------- */

static engine *fixture_engine(const char *dir, engine_device dev, bool graphs, errbuf *err) {
    engine_options eo = {.device = dev, .n_threads = 0, .max_batch_tokens = 256, .block_size = 4, .n_blocks = 64,
                         .no_cuda_graphs = !graphs, .gpu_memory_utilization = 0.5f};
    return engine_load(dir, 0, 1, &eo, err);
}

/* The prompt (one prefill step, every position's logits), then 32 greedy steps. */
static bool run_greedy(engine *e, const int32_t *prompt, int len, int steps, float *logits, int32_t *out_tokens,
                       errbuf *err) {
    int32_t table[64];
    for (int i = 0; i < 64; i++) table[i] = 63 - i; /* not the identity */
    int V = engine_weights(e)->cfg.vocab_size;
    engine_seq q = {0, len, table, 64, len};
    engine_batch b = {1, &q, prompt};
    if (!engine_forward(e, &b, logits, err)) return false;
    int32_t tok = argmax_f32(logits + (size_t)(len - 1) * V, V);
    for (int s = 0; s < steps; s++) {
        out_tokens[s] = tok;
        engine_seq d = {len + s, 1, table, 64, 1};
        engine_batch db = {1, &d, &tok};
        float *row = logits + (size_t)(len + s) * V;
        if (!engine_forward(e, &db, row, err)) return false;
        tok = argmax_f32(row, V);
    }
    return true;
}

static void check_model(const char *dir) {
    errbuf err;
    const int32_t prompt[] = {2, 17, 5, 200, 31, 7, 99, 64, 3, 150, 8, 42};
    const int len = 12, steps = 32;
    engine *cpu = fixture_engine(dir, ENGINE_CPU, false, &err), *gpu = NULL, *gpu_nog = NULL;
    if (cpu) gpu = fixture_engine(dir, ENGINE_CUDA, true, &err);
    if (gpu) gpu_nog = fixture_engine(dir, ENGINE_CUDA, false, &err);
    char name[300];
    snprintf(name, sizeof name, "%s", strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir);
    if (!gpu_nog) {
        op_error("model", name, &err);
        engine_free(cpu), engine_free(gpu);
        return;
    }
    int V = engine_weights(cpu)->cfg.vocab_size;
    size_t rows = (size_t)len + steps;
    float *lc = malloc(rows * V * 4), *lg = malloc(rows * V * 4), *ln = malloc(rows * V * 4);
    int32_t tc[32], tg[32], tn[32];
    bool ok = run_greedy(cpu, prompt, len, steps, lc, tc, &err) && run_greedy(gpu, prompt, len, steps, lg, tg, &err) &&
              run_greedy(gpu_nog, prompt, len, steps, ln, tn, &err);
    if (!ok) {
        op_error("model", name, &err);
    } else {
        int same = 0;
        while (same < steps && tc[same] == tg[same]) same++;
        double worst = 0;
        /* logits compared where both ran on the same tokens */
        for (size_t r = 0; r < (size_t)len + (size_t)same; r++)
            worst = fmax(worst, rel_err(lg + r * V, lc + r * V, (size_t)V));
        char shape[340];
        snprintf(shape, sizeof shape, "%s logits vs CPU", name);
        row("model", shape, worst, 2e-2, 0, 0, 0);
        snprintf(shape, sizeof shape, "%s greedy: %d/32 = CPU", name, same);
        row("model", shape, same >= 16 ? 0 : 1, 0, 0, 0, 0);
        bool bitwise = memcmp(lg, ln, rows * V * 4) == 0 && memcmp(tg, tn, sizeof tg) == 0;
        snprintf(shape, sizeof shape, "%s graphs = no graphs", name);
        row("model", shape, bitwise ? 0 : 1, 0, 0, 0, 0);
    }
    free(lc), free(lg), free(ln);
    engine_free(cpu), engine_free(gpu), engine_free(gpu_nog);
}

int main(int argc, char **argv) {
    uint64_t seed = (uint64_t)time(NULL);
    bool quick = false;
    const char *models[8];
    int n_models = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--quick") == 0) quick = true;
        else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc && n_models < 8) models[n_models++] = argv[++i];
        else {
            fprintf(stderr, "usage: gpu_check [--seed N] [--reps N] [--quick] [--model DIR]...\n");
            return 2;
        }
    }
    char why[ERRBUF_LEN];
    api = backend_cuda_api(why, sizeof why);
    if (!api) {
        printf("gpu_check: SKIPPED, no GPU to check the CUDA kernels on: %s\n", why);
        return SKIP_CODE;
    }
    char msg[256];
    api->probe(msg, sizeof msg);
    printf("gpu_check: %s; seed %llu\n", msg, (unsigned long long)seed);
    rng_state = seed;
    pool = threadpool_create(0);
    check_kernels(quick);
    check_comm(api, row, op_error); /* the CUDA-IPC all-reduce: ranks as threads on device 0 */
    for (int i = 0; i < n_models; i++) check_model(models[i]);
    threadpool_free(pool);
    printf("\ngpu_check: %d passed, %d failed\n", atomic_load(&g_checks) - atomic_load(&g_failed), atomic_load(&g_failed));
    return CHECK_RESULT();
}
