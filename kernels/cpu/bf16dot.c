/* bf16dot.c — the matrix kernel for bf16 weights on CPUs with AVX512_BF16:
 * y (n, rows) = bf16(x) (n, cols) · wᵀ, w bf16 (rows, cols) row-major.
 *
 * vdpbf16ps multiplies 32 pairs of bf16 and adds each pair's two products
 * into one of 16 fp32 lanes, with no conversion, against the AVX2 kernels'
 * 8 FMAs per widened weight vector. Its operands are both bf16. llama.cpp
 * rounds the activations to bf16 for it; that moved the logits of the HF
 * fixtures by 0.2-0.8 % of their range (tests/unit/test_hf_logits.c allows
 * 0.1 %) and changed greedy tokens. So each activation is split into two
 * bf16, hi = bf16(x) and lo = bf16(x - hi) (bf16dot_split), whose sum
 * keeps 16 significant bits, and each block takes two dot products, hi and
 * lo: 16 products per instruction, and results within the tolerance of the
 * fp32 kernels (tests/unit/test_kernels.c compares against the reference
 * on hi + lo). The products are exact in fp32, so only the summation
 * differs from the AVX2 kernels': a table of ops uses one or the other
 * throughout (kernels/cpu/ops.c chooses).
 *
 * Order, which makes batching bitwise invariant: an output sums its columns
 * in blocks of 32 (the last one zero-padded), block b into lane chain b % 2
 * (hi's products, then lo's), each chain from zero in ascending block
 * order, then adds the two chains and the 16 lanes in one fixed order
 * (hsum16). Every kernel below is the same tile function (1-4 activation
 * rows by 1-3 weight rows), so a row's result never depends on the rest of
 * its batch.
 *
 * This file is compiled twice (CMakeLists.txt): natively (…_native, AVX-512
 * instructions, run only where cpu_has_avx512bf16() says so) and with SIMDe
 * emulating the same intrinsics on any x86-64 CPU (…_emulated), so that the
 * tests check the kernel's logic and numbers on machines without the
 * instructions (tests/unit/test_kernels.c, test_hf_logits.c). */
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/numeric.h"
#include "kernels/cpu/bf16dot.h"

#ifdef BF16DOT_EMULATED
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#define ISA
#define NAME(f) f##_emulated
#else
#include <immintrin.h>
#define ISA __attribute__((target("avx512f,avx512bw,avx512bf16")))
#define NAME(f) f##_native
#endif

#define INLINE __attribute__((always_inline)) inline
#define BLOCK 32         /* bf16 columns per vdpbf16ps */
#define TILE_ROWS 4      /* activation rows of a tile */
#define TILE_WROWS 3     /* weight rows of a tile: 4 x 3 x 2 chains = 24 of the 32 zmm registers */
#define L2_BLOCK_BYTES (1u << 20) /* weight rows kept in L2 while every activation panel passes */

/* 32 bf16 from p (p[0..32) readable) */
ISA static INLINE __m512bh load_block(const bf16_t *p) {
#ifdef BF16DOT_EMULATED
    __m512bh v;
    memcpy(&v, p, sizeof v);
    return v;
#else
    return (__m512bh)_mm512_loadu_si512(p);
#endif
}

/* the first n < 32 bf16 from p, zeros after them */
ISA static INLINE __m512bh load_partial(const bf16_t *p, int n) {
#ifdef BF16DOT_EMULATED
    bf16_t buf[BLOCK] = {0};
    memcpy(buf, p, (size_t)n * sizeof *p);
    return load_block(buf);
#else
    return (__m512bh)_mm512_maskz_loadu_epi16((__mmask32)((1u << n) - 1), p);
#endif
}

/* the lanes of v summed in one fixed order */
ISA static INLINE float hsum16(__m512 v) {
    float l[16];
    _mm512_storeu_ps(l, v);
    for (int w = 8; w >= 1; w /= 2)
        for (int i = 0; i < w; i++) l[i] += l[i + w];
    return l[0];
}

/* y[i * ldy + j] for i < mr, j < nr = x rows · w rows (cols apart). x is
 * split: row i's block b is 32 hi then 32 lo bf16 at x + i * ldx + 64 b,
 * zero-padded past cols. mr and nr are constants at every call. */
ISA static INLINE void tile(float *y, size_t ldy, const bf16_t *x, size_t ldx, const bf16_t *w, int cols,
                            const int mr, const int nr) {
    __m512 a[TILE_ROWS][TILE_WROWS][2];
    _Pragma("GCC unroll 4") for (int i = 0; i < mr; i++)
        _Pragma("GCC unroll 3") for (int j = 0; j < nr; j++) a[i][j][0] = a[i][j][1] = _mm512_setzero_ps();
    int full = cols / BLOCK, b = 0;
    for (; b + 2 <= full; b += 2)
        _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++) {
            __m512bh v[TILE_WROWS];
            _Pragma("GCC unroll 3") for (int j = 0; j < nr; j++) v[j] = load_block(w + (size_t)j * cols + (b + h) * BLOCK);
            _Pragma("GCC unroll 4") for (int i = 0; i < mr; i++) {
                const bf16_t *xb = x + i * ldx + (b + h) * 2 * BLOCK;
                __m512bh hi = load_block(xb), lo = load_block(xb + BLOCK);
                _Pragma("GCC unroll 3") for (int j = 0; j < nr; j++)
                    a[i][j][h] = _mm512_dpbf16_ps(_mm512_dpbf16_ps(a[i][j][h], hi, v[j]), lo, v[j]);
            }
        }
    /* at most one whole block and one partial one are left: blocks b and b + 1 */
    for (; b * BLOCK < cols; b++) {
        int n = cols - b * BLOCK < BLOCK ? cols - b * BLOCK : BLOCK, h = b % 2;
        __m512bh v[TILE_WROWS];
        _Pragma("GCC unroll 3") for (int j = 0; j < nr; j++) {
            const bf16_t *p = w + (size_t)j * cols + b * BLOCK;
            v[j] = n == BLOCK ? load_block(p) : load_partial(p, n);
        }
        _Pragma("GCC unroll 4") for (int i = 0; i < mr; i++) {
            const bf16_t *xb = x + i * ldx + b * 2 * BLOCK;
            __m512bh hi = load_block(xb), lo = load_block(xb + BLOCK);
            _Pragma("GCC unroll 3") for (int j = 0; j < nr; j++)
                a[i][j][h] = _mm512_dpbf16_ps(_mm512_dpbf16_ps(a[i][j][h], hi, v[j]), lo, v[j]);
        }
    }
    _Pragma("GCC unroll 4") for (int i = 0; i < mr; i++)
        _Pragma("GCC unroll 3") for (int j = 0; j < nr; j++)
            y[i * ldy + j] = hsum16(_mm512_add_ps(a[i][j][0], a[i][j][1]));
}

/* one tile of mr (runtime, 1-4) activation rows by nr (1-3) weight rows, as constants */
#define TILE_NR(MR)                                                                          \
    switch (nr) {                                                                            \
    case 3: tile(y, ldy, x, ldx, w, cols, MR, 3); break;                                     \
    case 2: tile(y, ldy, x, ldx, w, cols, MR, 2); break;                                     \
    default: tile(y, ldy, x, ldx, w, cols, MR, 1); break;                                    \
    }
ISA static void tile_any(float *y, size_t ldy, const bf16_t *x, size_t ldx, const bf16_t *w, int cols, int mr,
                         int nr) {
    switch (mr) {
    case 4: TILE_NR(4) break;
    case 3: TILE_NR(3) break;
    case 2: TILE_NR(2) break;
    default: TILE_NR(1) break;
    }
}

typedef struct {
    float *y;
    const bf16_t *x; /* (n, ldx) bf16: each row's blocks split, hi and lo (tile) */
    size_t ldx;
    int n;
    const bf16_t *w;
    int rows, cols, rows_per_task;
} job;

/* rows [r0, r1) of y: in row blocks that stay in L2 while every panel of
 * TILE_ROWS activation rows passes over them, TILE_WROWS weight rows at a time */
ISA static void rows_task(void *p, int task, int thread) {
    (void)thread;
    const job *j = p;
    int r0 = task * j->rows_per_task, r1 = r0 + j->rows_per_task < j->rows ? r0 + j->rows_per_task : j->rows;
    int block = (int)(L2_BLOCK_BYTES / ((size_t)j->cols * sizeof(bf16_t)));
    block = block < TILE_WROWS ? TILE_WROWS : block - block % TILE_WROWS;
    for (int rb = r0; rb < r1; rb += block) {
        int re = rb + block < r1 ? rb + block : r1;
        for (int t = 0; t < j->n; t += TILE_ROWS) {
            int mr = j->n - t < TILE_ROWS ? j->n - t : TILE_ROWS;
            for (int r = rb; r < re; r += TILE_WROWS)
                tile_any(j->y + (size_t)t * j->rows + r, (size_t)j->rows, j->x + (size_t)t * j->ldx, j->ldx,
                         j->w + (size_t)r * j->cols, j->cols, mr, re - r < TILE_WROWS ? re - r : TILE_WROWS);
        }
    }
}

typedef struct {
    const float *x;
    bf16_t *xs;
    size_t ldx;
    int cols;
} split_job;

static void split_task(void *p, int t, int thread) {
    (void)thread;
    const split_job *j = p;
    const float *src = j->x + (size_t)t * j->cols;
    bf16_t *dst = j->xs + (size_t)t * j->ldx;
    for (int c = 0; c < j->cols; c++) bf16dot_split(src[c], &dst[c / BLOCK * 2 * BLOCK + c % BLOCK],
                                                    &dst[c / BLOCK * 2 * BLOCK + BLOCK + c % BLOCK]);
    for (size_t c = (size_t)j->cols; c % BLOCK; c++) /* the last block's padding */
        dst[c / BLOCK * 2 * BLOCK + c % BLOCK] = dst[c / BLOCK * 2 * BLOCK + BLOCK + c % BLOCK] = 0;
}

void NAME(bf16dot_matmul)(threadpool *tp, float *y, const float *x, int n, const bf16_t *w, int rows, int cols) {
    if (n <= 0 || rows <= 0) return;
    size_t ldx = ((size_t)cols + BLOCK - 1) / BLOCK * 2 * BLOCK; /* hi and lo of every block */
    bf16_t *xs = xmalloc((size_t)n * ldx * sizeof *xs);
    split_job sj = {x, xs, ldx, cols};
    threadpool_run(tp, n, split_task, &sj);
    /* long runs of rows per task stream best; four tasks per thread balance */
    int threads = tp ? threadpool_size(tp) : 1;
    int per = rows / (4 * threads);
    per = per < 3 * TILE_WROWS ? 3 * TILE_WROWS : per - per % TILE_WROWS;
    job j = {y, xs, ldx, n, w, rows, cols, per};
    threadpool_run(tp, (rows + per - 1) / per, rows_task, &j);
    free(xs);
}
