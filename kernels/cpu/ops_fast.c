/* ops_fast.c — the CPU ops with AVX2/FMA inner loops, spread over the
 * thread pool. Same results as ops_ref.c up to fp32 summation order.
 *
 * The hot op is matmul: decode reads every weight once per step, so it is
 * bound by memory bandwidth; the kernels convert bf16 to fp32 in registers
 * (a 16-bit shift) and never write a converted copy. bf16 weights in panels
 * (as the engine loads them) go to panel_matmul.c; the row-major kernels
 * below serve f32 weights and bf16 ones with an odd number of columns. */
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/ops.h"
#include "kernels/cpu/bf16dot.h"
#include "kernels/cpu/panel_matmul.h"
#include "common/alloc.h"
#include "kernels/cpu/ops_common.h"
#include "kernels/cpu/vec_math.h"

#define AVX2 __attribute__((target("avx2,fma")))
#define MATMUL_MIN_ROWS_PER_TASK 16
/* Weight rows kept in L2 while x passes: 1 MB, a core's L2 here (the 2b's
 * shapes at 512 rows: 131 GFLOP/s; 125 with 512 KB blocks, 116 with 256 KB). */
#define MATMUL_L2_TILE_BYTES (1024u << 10)
#define MATMUL_L1_COLS 4096 /* x rows longer than this (16 KB) do not stay in L1 */
#define MATMUL_MAX_ROWS_PER_TASK 1024
/* The prefill GEMM (gemm_panel below): a register tile of GEMM_MR activation
 * rows by GEMM_NR weight rows (12 accumulators + 3 weight vectors + 1 x
 * vector = the 16 ymm registers), one of the two summation chains at a time,
 * over column chunks of GEMM_KC so the panel's x chunk (4 x 512 fp32 = 8 KB)
 * stays in L1 while the weight rows of a sub-block (GEMM_SUB_ROWS) stream
 * past it from L2. Measured on the 2b's shapes, 2 threads: 4x3 beat 6x2,
 * 3x4 and 2x6 (the last two spill); packing weights to fp32 first, or x into
 * one stream, gained nothing. */
#define GEMM_MR 4
#define GEMM_NR 3
#define GEMM_KC 512
#define GEMM_SUB_ROWS 48
/* Below two panels the weights come from memory, not L2 (nothing reuses
 * them): then a sub-block is one tile, whose three rows stream chunk after
 * chunk (2b, batch 4: a decode step 308-318 -> 258-272 ms). */
#define GEMM_SMALL_BATCH (2 * GEMM_MR)
#define INLINE __attribute__((always_inline)) inline
_Static_assert(GEMM_SUB_ROWS % GEMM_NR == 0 && GEMM_KC % 16 == 0, "whole tiles per sub-block, whole pairs of groups per chunk");

AVX2 static inline __m256 load8_bf16(const bf16_t *p) {
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

AVX2 static inline __m256 load8_f32(const float *p) { return _mm256_loadu_ps(p); }

AVX2 static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* ---- matmul micro-kernels, one set per weight dtype -------------------------
 * Every kernel computes each output as the same "two-chain" dot product: the
 * columns in groups of 8, even groups summed into one 8-lane accumulator and
 * odd groups into another (two FMA chains: one chain's 4-cycle latency held
 * a decode thread to ~14 GB/s), then hsum8(even + odd), then the columns past
 * the last group one by one. So a token's result does not depend on the
 * kernel, the tile or what else is in the batch: batching is bitwise
 * invariant (tests/unit/test_kernels.c checks every row of a batch against
 * the row alone). An outer-product GEMM (one lane per output, the BLAS way)
 * would break that, so the GEMM keeps the dot-product form and pays one
 * horizontal sum per output.
 * dot_1x1: one activation row against one weight row (decode with short
 *          rows: a single stream per thread reads memory fastest).
 * dot_1x4: one activation row against four weight rows (decode with long
 *          rows, whose x does not stay in L1).
 * gemm_panel: GEMM_MR activation rows against a block of weight rows
 *          (prefill), a blocked GEMM whose accumulators wait in memory
 *          between column chunks. */
#define DEFINE_MATMUL_KERNELS(SUFFIX, WT, LOAD8, SCALAR)                                          \
    AVX2 static void dot_1x4_##SUFFIX(float *y, int ldy, const float *x, const WT *w, int cols) {  \
        __m256 a[4][2];                                                                            \
        _Pragma("GCC unroll 8") for (int j = 0; j < 4; j++) a[j][0] = a[j][1] = _mm256_setzero_ps(); \
        int c = 0;                                                                                 \
        for (; c + 16 <= cols; c += 16) {                                                          \
            __m256 x0 = _mm256_loadu_ps(x + c), x1 = _mm256_loadu_ps(x + c + 8);                   \
            _Pragma("GCC unroll 8") for (int j = 0; j < 4; j++) {                                  \
                a[j][0] = _mm256_fmadd_ps(x0, LOAD8(w + (size_t)j * cols + c), a[j][0]);           \
                a[j][1] = _mm256_fmadd_ps(x1, LOAD8(w + (size_t)j * cols + c + 8), a[j][1]);       \
            }                                                                                      \
        }                                                                                          \
        if (c + 8 <= cols) {                                                                       \
            __m256 x0 = _mm256_loadu_ps(x + c);                                                    \
            _Pragma("GCC unroll 8") for (int j = 0; j < 4; j++)                                    \
                a[j][0] = _mm256_fmadd_ps(x0, LOAD8(w + (size_t)j * cols + c), a[j][0]);           \
            c += 8;                                                                                \
        }                                                                                          \
        _Pragma("GCC unroll 8") for (int j = 0; j < 4; j++) {                                      \
            const WT *wj = w + (size_t)j * cols;                                                   \
            float s = hsum8(_mm256_add_ps(a[j][0], a[j][1]));                                      \
            for (int t = c; t < cols; t++) s += x[t] * SCALAR(wj[t]);                              \
            y[(size_t)j * ldy] = s;                                                                \
        }                                                                                          \
    }                                                                                              \
    AVX2 static float dot_1x1_##SUFFIX(const float *x, const WT *w, int cols) {                    \
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;                                                  \
        int c = 0;                                                                                 \
        for (; c + 16 <= cols; c += 16) {                                                          \
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + c), LOAD8(w + c), a0);                        \
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + c + 8), LOAD8(w + c + 8), a1);                \
        }                                                                                          \
        if (c + 8 <= cols) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + c), LOAD8(w + c), a0), c += 8; \
        float s = hsum8(_mm256_add_ps(a0, a1));                                                    \
        for (; c < cols; c++) s += x[c] * SCALAR(w[c]);                                            \
        return s;                                                                                  \
    }                                                                                              \
    /* acc (2, GEMM_MR, GEMM_NR, 8): the two chains' 8-lane sums of x rows (ldx   \
     * apart) against nr weight rows (ldw apart) over the columns before k0; adds  \
     * chain h's groups of columns [k0, k1) (every other group, from k0 + 8h). k0  \
     * is a multiple of 16, so the parity of a group is its global one. One chain \
     * at a time keeps the tile's 12 accumulators in registers; the second pass  \
     * finds the chunk in L1. nr is a constant at every call. */                                  \
    AVX2 static INLINE void gemm_tile_##SUFFIX(float *acc, const float *x, size_t ldx, const WT *w, \
                                               size_t ldw, int k0, int k1, const int nr, int h) {  \
        __m256 a[GEMM_MR][GEMM_NR];                                                                \
        float *ah = acc + h * GEMM_MR * GEMM_NR * 8;                                               \
        _Pragma("GCC unroll 8") for (int i = 0; i < GEMM_MR; i++)                                  \
            _Pragma("GCC unroll 8") for (int j = 0; j < nr; j++)                                   \
                a[i][j] = k0 ? _mm256_loadu_ps(ah + (i * GEMM_NR + j) * 8) : _mm256_setzero_ps();  \
        for (int c = k0 + 8 * h; c + 8 <= k1; c += 16) {                                           \
            __m256 v[GEMM_NR];                                                                     \
            _Pragma("GCC unroll 8") for (int j = 0; j < nr; j++) v[j] = LOAD8(w + j * ldw + c);    \
            _Pragma("GCC unroll 8") for (int i = 0; i < GEMM_MR; i++) {                            \
                __m256 xv = _mm256_loadu_ps(x + i * ldx + c);                                      \
                _Pragma("GCC unroll 8") for (int j = 0; j < nr; j++)                               \
                    a[i][j] = _mm256_fmadd_ps(xv, v[j], a[i][j]);                                  \
            }                                                                                      \
        }                                                                                          \
        _Pragma("GCC unroll 8") for (int i = 0; i < GEMM_MR; i++)                                  \
            _Pragma("GCC unroll 8") for (int j = 0; j < nr; j++)                                   \
                _mm256_storeu_ps(ah + (i * GEMM_NR + j) * 8, a[i][j]);                             \
    }                                                                                              \
    /* y (GEMM_MR rows, ldy apart) [r0, r1) = x (GEMM_MR rows, cols apart) · w[r0, r1)ᵀ:           \
     * the weight rows in sub-blocks of sub (<= GEMM_SUB_ROWS) rows, each swept chunk by         \
     * chunk of columns with the accumulators of all its tiles parked in acc between              \
     * chunks; then each output is finished exactly as dot_1x1 finishes. */                       \
    AVX2 static void gemm_panel_##SUFFIX(float *y, int ldy, const float *x, const WT *w, int cols, \
                                         int r0, int r1, int sub) {                                \
        float acc[GEMM_SUB_ROWS / GEMM_NR][GEMM_MR * GEMM_NR * 2 * 8];                              \
        int c8 = cols & ~7;                                                                        \
        for (int sb = r0; sb < r1; sb += sub) {                                                    \
            int se = sb + sub < r1 ? sb + sub : r1;                                                \
            for (int k0 = 0; k0 < c8; k0 += GEMM_KC) {                                             \
                int k1 = k0 + GEMM_KC < c8 ? k0 + GEMM_KC : c8;                                    \
                int r = sb, tile = 0;                                                              \
                for (; r + GEMM_NR <= se; r += GEMM_NR, tile++)                                    \
                    for (int h = 0; h < 2; h++) /* the second pass finds the tile's rows in L1 */  \
                        gemm_tile_##SUFFIX(acc[tile], x, cols, w + (size_t)r * cols, cols, k0, k1, GEMM_NR, h); \
                for (int h = 0; h < 2; h++) {                                                      \
                    if (GEMM_NR > 2 && se - r == 2) /* the block's last rows: a tile with fewer */ \
                        gemm_tile_##SUFFIX(acc[tile], x, cols, w + (size_t)r * cols, cols, k0, k1, 2, h); \
                    if (se - r == 1)                                                               \
                        gemm_tile_##SUFFIX(acc[tile], x, cols, w + (size_t)r * cols, cols, k0, k1, 1, h); \
                }                                                                                  \
            }                                                                                      \
            for (int r = sb; r < se; r++) {                                                        \
                const float *a = acc[(r - sb) / GEMM_NR] + (r - sb) % GEMM_NR * 8;                 \
                const WT *wr = w + (size_t)r * cols;                                               \
                for (int i = 0; i < GEMM_MR; i++) {                                                \
                    const float *xi = x + (size_t)i * cols, *ai = a + i * GEMM_NR * 8;             \
                    __m256 even = _mm256_loadu_ps(ai), odd = _mm256_loadu_ps(ai + GEMM_MR * GEMM_NR * 8); \
                    float s = c8 ? hsum8(_mm256_add_ps(even, odd)) : 0.0f;                         \
                    for (int c = c8; c < cols; c++) s += xi[c] * SCALAR(wr[c]);                    \
                    y[(size_t)i * ldy + r] = s;                                                    \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    /* rows [r0, r1) of y = x wᵀ, in row blocks small enough to stay in L2 while every    \
     * activation row passes over them */                                                        \
    AVX2 static void matmul_rows_##SUFFIX(float *y, const float *x, int n, const WT *w, int rows,  \
                                          int cols, int r0, int r1) {                              \
        int block = (int)(MATMUL_L2_TILE_BYTES / ((size_t)cols * sizeof(WT))) & ~1;                \
        if (block < 2) block = 2;                                                                  \
        for (int rb = r0; rb < r1; rb += block) {                                                  \
            int re = rb + block < r1 ? rb + block : r1;                                            \
            int t = 0;                                                                             \
            for (; t + GEMM_MR <= n; t += GEMM_MR)                                                 \
                gemm_panel_##SUFFIX(y + (size_t)t * rows, rows, x + (size_t)t * cols, w, cols, rb, re, \
                                    n < GEMM_SMALL_BATCH ? GEMM_NR : GEMM_SUB_ROWS);               \
            /* the rest (all of a decode step): one weight row at a time (one stream from     \
             * memory) when x fits in L1; four rows sharing each load of x when it does not, or \
             * when the block is already in L2 (four independent sums go 4x faster) */          \
            int r = rb;                                                                            \
            if (cols > MATMUL_L1_COLS || t > 0)                                                    \
                for (; t < n && r + 4 <= re; r += 4)                                               \
                    for (int i = t; i < n; i++)                                                    \
                        dot_1x4_##SUFFIX(y + (size_t)i * rows + r, 1, x + (size_t)i * cols, w + (size_t)r * cols, cols); \
            for (; t < n && r < re; r++)                                                           \
                for (int i = t; i < n; i++)                                                        \
                    y[(size_t)i * rows + r] = dot_1x1_##SUFFIX(x + (size_t)i * cols, w + (size_t)r * cols, cols); \
        }                                                                                          \
    }

#define SCALAR_BF16(v) bf16_to_f32(v)
#define SCALAR_F32(v) (v)
DEFINE_MATMUL_KERNELS(bf16, bf16_t, load8_bf16, SCALAR_BF16)
DEFINE_MATMUL_KERNELS(f32, float, load8_f32, SCALAR_F32)

typedef struct {
    float *y;
    const float *x;
    int n;
    const weight_matrix *w;
    int rows_per_task;
} matmul_job;

static void matmul_task(void *p, int task, int thread) {
    (void)thread;
    const matmul_job *j = p;
    int r0 = task * j->rows_per_task;
    int r1 = r0 + j->rows_per_task < j->w->rows ? r0 + j->rows_per_task : j->w->rows;
    if (j->w->dtype == DTYPE_BF16)
        matmul_rows_bf16(j->y, j->x, j->n, j->w->data, j->w->rows, j->w->cols, r0, r1);
    else
        matmul_rows_f32(j->y, j->x, j->n, j->w->data, j->w->rows, j->w->cols, r0, r1);
}

/* Long runs of rows per task stream best; four tasks per thread balance. */
static void fast_matmul(threadpool *tp, float *y, const float *x, int n, const weight_matrix *w) {
    if (dtype_is_quantized(w->dtype)) { /* GGUF blocks, read as they are (kernels/cpu/quant_fast.c) */
        quant_matmul_fast(tp, y, x, n, dtype_ggml_type(w->dtype), w->data, w->rows, w->cols);
        return;
    }
    if (w->layout == WEIGHT_PANELS) { /* bf16 as the engine loads it (kernels/cpu/panel_matmul.c) */
        panel_matmul(tp, y, x, n, w);
        return;
    }
    int per = w->rows / (4 * threadpool_size(tp));
    per = per < MATMUL_MIN_ROWS_PER_TASK ? MATMUL_MIN_ROWS_PER_TASK : per > MATMUL_MAX_ROWS_PER_TASK ? MATMUL_MAX_ROWS_PER_TASK : per;
    per = (per + 1) & ~1; /* even: the 4x2 tile takes rows in pairs */
    matmul_job j = {y, x, n, w, per};
    threadpool_run(tp, (w->rows + per - 1) / per, matmul_task, &j);
}

/* ---- row-wise ops, one task per token ------------------------------------ */

typedef struct {
    float *y;
    const float *x, *w1p;
    int d;
    float eps;
} rmsnorm_job;

AVX2 static void rmsnorm_task(void *p, int t, int thread) {
    (void)thread;
    const rmsnorm_job *j = p;
    const float *x = j->x + (size_t)t * j->d;
    float *y = j->y + (size_t)t * j->d;
    __m256 acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= j->d; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        acc = _mm256_fmadd_ps(v, v, acc);
    }
    float ss = hsum8(acc);
    for (; i < j->d; i++) ss += x[i] * x[i];
    float inv = 1.0f / sqrtf(ss / (float)j->d + j->eps);
    for (i = 0; i < j->d; i++) y[i] = x[i] * inv * j->w1p[i];
}

static void fast_rmsnorm(threadpool *tp, float *y, const float *x, const float *w1p, int n, int d, float eps) {
    rmsnorm_job j = {y, x, w1p, d, eps};
    threadpool_run(tp, n, rmsnorm_task, &j);
}

typedef struct {
    float *x;
    int heads, hd;
    const int32_t *pos;
    const float *inv_freq;
} rope_job;

static void rope_task(void *p, int t, int thread) {
    (void)thread;
    const rope_job *j = p;
    int half = j->hd / 2;
    float cs[512][2];
    for (int i0 = 0; i0 < half; i0 += 512) { /* cos/sin once per token, shared by all heads */
        int m = half - i0 < 512 ? half - i0 : 512;
        for (int i = 0; i < m; i++) {
            float angle = (float)j->pos[t] * j->inv_freq[i0 + i];
            cs[i][0] = cosf(angle);
            cs[i][1] = sinf(angle);
        }
        for (int h = 0; h < j->heads; h++) {
            float *v = j->x + ((size_t)t * j->heads + h) * j->hd + i0;
            for (int i = 0; i < m; i++) {
                float a = v[i], b = v[i + half];
                v[i] = a * cs[i][0] - b * cs[i][1];
                v[i + half] = b * cs[i][0] + a * cs[i][1];
            }
        }
    }
}

static void fast_rope(threadpool *tp, float *x, int n, int heads, int hd, const int32_t *pos, const float *inv_freq) {
    rope_job j = {x, heads, hd, pos, inv_freq};
    threadpool_run(tp, n, rope_task, &j);
}

typedef struct {
    float *g;
    const float *u;
    size_t n, chunk;
} geglu_job;

/* gelu_tanh_ps (vec_math.h) 8 at a time: libm's tanhf per element was
 * 11 % of a tiny-model step (perf) */
AVX2 static void geglu_task(void *p, int task, int thread) {
    (void)thread;
    const geglu_job *j = p;
    size_t b = (size_t)task * j->chunk, e = b + j->chunk < j->n ? b + j->chunk : j->n, i = b;
    for (; i + 8 <= e; i += 8)
        _mm256_storeu_ps(j->g + i, _mm256_mul_ps(gelu_tanh_ps(_mm256_loadu_ps(j->g + i)), _mm256_loadu_ps(j->u + i)));
    for (; i < e; i++) j->g[i] = gelu_tanh(j->g[i]) * j->u[i];
}

static void fast_geglu(threadpool *tp, float *g, const float *u, int n, int f) {
    geglu_job j = {g, u, (size_t)n * f, 16384};
    threadpool_run(tp, (int)((j.n + j.chunk - 1) / j.chunk), geglu_task, &j);
}

static void fast_add(threadpool *tp, float *x, const float *y, int n, int d) {
    (void)tp; /* memory-bound and small: one thread is as fast */
    for (size_t i = 0; i < (size_t)n * d; i++) x[i] += y[i];
}

typedef struct {
    float *out;
    const int32_t *tokens;
    const weight_matrix *e;
    int vocab_begin;
    float scale;
} embed_job;

static void embed_task(void *p, int t, int thread) {
    (void)thread;
    const embed_job *j = p;
    int d = j->e->cols, row = j->tokens[t] - j->vocab_begin;
    float *o = j->out + (size_t)t * d;
    if (row < 0 || row >= j->e->rows) {
        memset(o, 0, (size_t)d * sizeof *o);
        return;
    }
    embed_row(j->e, row, j->scale, o);
}

static void fast_embed(threadpool *tp, float *out, const int32_t *tokens, int n, const weight_matrix *e,
                       int vocab_begin, float scale) {
    embed_job j = {out, tokens, e, vocab_begin, scale};
    threadpool_run(tp, n, embed_task, &j);
}

/* ---- attention: one task per (token, query head) -------------------------- */

typedef struct {
    float *out;
    const float *q;
    const kv_layer_view *kv;
    const attn_seq *seqs;
    const attn_params *p;
    int *task_seq; /* (n_tokens) sequence of each token */
} attention_job;

AVX2 static float dot_f32(const float *a, const float *b, int n) {
    __m256 acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
    float s = hsum8(acc);
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

AVX2 static void axpy_f32(float *y, float a, const float *x, int n) {
    __m256 av = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

static void attention_task(void *p, int task, int thread) {
    (void)thread;
    const attention_job *j = p;
    const attn_params *ap = j->p;
    int t = task / ap->n_heads, h = task % ap->n_heads;
    const attn_seq *s = &j->seqs[j->task_seq[t]];
    int pos = s->start_pos + (t - s->token_offset);
    int first = ap->window > 0 && pos - ap->window + 1 > 0 ? pos - ap->window + 1 : 0;
    const kv_layer_view *kv = j->kv;
    int hd = kv->head_dim;
    int kvh = (ap->head_begin + h) / ap->group - ap->kv_head_begin;
    const float *qv = j->q + ((size_t)t * ap->n_heads + h) * hd;
    float *scores = xmalloc((size_t)(pos + 1) * sizeof *scores);
    float max = -INFINITY;
    for (int k = first; k <= pos; k++) {
        scores[k] = dot_f32(qv, kv->k + kv_offset(kv, s->block_table, k, kvh), hd) * ap->scale;
        if (ap->softcap > 0) scores[k] = ap->softcap * tanhf(scores[k] / ap->softcap);
        if (scores[k] > max) max = scores[k];
    }
    float sum = 0.0f;
    for (int k = first; k <= pos; k++) {
        scores[k] = expf(scores[k] - max);
        sum += scores[k];
    }
    float *o = j->out + ((size_t)t * ap->n_heads + h) * hd;
    memset(o, 0, (size_t)hd * sizeof *o);
    float inv = 1.0f / sum;
    for (int k = first; k <= pos; k++) axpy_f32(o, scores[k] * inv, kv->v + kv_offset(kv, s->block_table, k, kvh), hd);
    free(scores);
}

static void fast_attention(threadpool *tp, float *out, const float *q, const kv_layer_view *kv,
                           const attn_seq *seqs, int n_seqs, const attn_params *ap) {
    int n_tokens = 0;
    for (int s = 0; s < n_seqs; s++) n_tokens += seqs[s].n_tokens;
    attention_job j = {out, q, kv, seqs, ap, NULL};
    j.task_seq = xmalloc((size_t)(n_tokens > 0 ? n_tokens : 1) * sizeof *j.task_seq);
    for (int s = 0; s < n_seqs; s++)
        for (int i = 0; i < seqs[s].n_tokens; i++) j.task_seq[seqs[s].token_offset + i] = s;
    threadpool_run(tp, n_tokens * ap->n_heads, attention_task, &j);
    free(j.task_seq);
}

static const cpu_ops k_fast_ops = {
    .name = "avx2",
    .bf16_layout = WEIGHT_PANELS,
    .matmul = fast_matmul,
    .rmsnorm = fast_rmsnorm,
    .rope = fast_rope,
    .geglu = fast_geglu,
    .add = fast_add,
    .embed = fast_embed,
    .kv_write = NULL, /* filled from the reference: a copy has nothing to gain */
    .attention = fast_attention,
};

/* The AVX512_BF16 tables: row-major bf16 weights go to bf16dot.c, the rest as above */
static void bf16dot_native_matmul(threadpool *tp, float *y, const float *x, int n, const weight_matrix *w) {
    if (w->dtype == DTYPE_BF16 && w->layout == WEIGHT_ROWS) bf16dot_matmul_native(tp, y, x, n, w->data, w->rows, w->cols);
    else fast_matmul(tp, y, x, n, w);
}

static void bf16dot_emulated_matmul(threadpool *tp, float *y, const float *x, int n, const weight_matrix *w) {
    if (w->dtype == DTYPE_BF16 && w->layout == WEIGHT_ROWS) bf16dot_matmul_emulated(tp, y, x, n, w->data, w->rows, w->cols);
    else fast_matmul(tp, y, x, n, w);
}

const cpu_ops *cpu_ops_avx512bf16(bool emulated) {
    static cpu_ops native, emu;
    cpu_ops *t = emulated ? &emu : &native;
    if (!t->name) {
        cpu_ops o = *cpu_ops_fast();
        o.name = emulated ? "avx512bf16-emulated" : "avx512bf16";
        o.split_bf16_activations = true;
        o.bf16_layout = WEIGHT_ROWS;
        o.matmul = emulated ? bf16dot_emulated_matmul : bf16dot_native_matmul;
        *t = o;
    }
    return t;
}

/* The int8 tables: GGUF-quantized weights meet activations rounded to 8
 * bits (kernels/cpu/quant_int8.c), one table per instruction set; the rest
 * as cpu_ops_fast, and so is a set this CPU cannot run (cpu_ops_select
 * never offers one, but a table asked for by hand must not leave y unset) */
#define INT8_MATMUL(SUFFIX, ISA)                                                                             \
    static void int8_matmul_##SUFFIX(threadpool *tp, float *y, const float *x, int n, const weight_matrix *w) { \
        if (!dtype_is_quantized(w->dtype) ||                                                                 \
            !quant_matmul_int8(tp, ISA, y, x, n, dtype_ggml_type(w->dtype), w->data, w->rows, w->cols))      \
            fast_matmul(tp, y, x, n, w);                                                                     \
    }
INT8_MATMUL(avx2, QUANT_INT8_AVX2)
INT8_MATMUL(avxvnni, QUANT_INT8_AVXVNNI)
INT8_MATMUL(avx512vnni, QUANT_INT8_AVX512VNNI)
INT8_MATMUL(emulated, QUANT_INT8_VNNI_EMULATED)
#undef INT8_MATMUL

const cpu_ops *cpu_ops_int8(quant_int8_isa isa) {
    static cpu_ops tables[4];
    static const char *const names[4] = {"int8-avx2", "int8-avxvnni", "int8-avx512vnni", "int8-vnni-emulated"};
    static void (*const matmuls[4])(threadpool *, float *, const float *, int, const weight_matrix *) = {
        int8_matmul_avx2, int8_matmul_avxvnni, int8_matmul_avx512vnni, int8_matmul_emulated};
    if ((unsigned)isa >= 4) return NULL;
    cpu_ops *t = &tables[isa];
    if (!t->name) {
        cpu_ops o = *cpu_ops_fast();
        o.name = names[isa];
        o.matmul = matmuls[isa];
        o.int8_isa = isa;
        *t = o;
    }
    return t;
}

const cpu_ops *cpu_ops_fast(void) {
    static cpu_ops ops;
    if (!ops.name) {
        ops = k_fast_ops;
        ops.kv_write = cpu_ops_ref()->kv_write;
    }
    return &ops;
}
