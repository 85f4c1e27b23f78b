/* panel_matmul.c — y = x · wᵀ for bf16 weights in panels (kernels/cpu/panels.h),
 * AVX2 + FMA, over the thread pool.
 *
 * One output per fp32 lane (an outer product): a weight line gives 8 rows at
 * columns 2j and 2j + 1 (widened by a shift and an AND), each multiplied by a
 * broadcast activation. Every output is summed in one fixed order, whatever
 * the kernel, the tile or the batch: columns 2j into one FMA chain ("even"),
 * columns 2j + 1 into another ("odd"), j = 0, 1, ... in turn, then
 * even + odd. So a row's result is the same bits alone (decode) and in any
 * batch (prefill): batching stays bitwise invariant
 * (tests/unit/test_kernels.c checks every row of a batch against the row
 * alone).
 *
 * Two kernels:
 *   tile_group: 1-2 activation rows against a whole group (16 rows, each
 *     line used whole): decode. Four or eight independent chains hide the
 *     FMA latency; the group streams from memory with a software prefetch.
 *   tile_half: up to GEMM_ROWS activation rows against half a group
 *     (8 rows): prefill, 12 accumulators + 2 weight vectors + 1 broadcast of
 *     the 16 ymm registers, so each weight is loaded once per 6 rows; the
 *     weights of a block of groups stay in L2 while every 6-row block of x
 *     passes over them.
 * Measured on the 2b's shapes against the row-major kernels (ops_fast.c),
 * docs/PERFORMANCE.md. */
#include "kernels/cpu/panel_matmul.h"

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "kernels/cpu/panels.h"

#define AVX2 __attribute__((target("avx2,fma")))
#define INLINE __attribute__((always_inline)) inline
#define LINE (2 * PANEL_ROWS) /* bf16 per line: one column pair of a group */
/* Activation rows per prefill tile (6 x 2 chains = 12 accumulators) */
#define GEMM_ROWS 6
/* Groups of weights kept in L2 while x passes over them */
#define L2_BLOCK_BYTES (512u << 10)
/* How far ahead of its loads a decode tile prefetches the stream: 512 B
 * gained less, 8 KB lost (2b, 4 rows, docs/PERFORMANCE.md) */
#define PREFETCH_BYTES 2048
#define MAX_GROUPS_PER_TASK 64

/* A line half (8 rows at columns 2j, 2j + 1) as fp32: the low halves of the
 * words shifted up (column 2j), the high halves with the low bits cleared */
AVX2 static INLINE void widen_pairs(const bf16_t *p, __m256 *even, __m256 *odd) {
    __m256i v = _mm256_loadu_si256((const __m256i *)p);
    *even = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
    *odd = _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32((int)0xffff0000u)));
}

/* y (mr rows, ldy apart; its first `live` of 16 columns) = x (mr rows, ldx
 * apart) · the group at p. mr is a constant at every call. */
AVX2 static INLINE void tile_group(float *y, size_t ldy, const float *x, size_t ldx, const bf16_t *p, int pairs,
                                   const int mr, int live) {
    __m256 e[2][2], o[2][2]; /* [activation row][half of the group] */
    _Pragma("GCC unroll 2") for (int i = 0; i < mr; i++)
        e[i][0] = e[i][1] = o[i][0] = o[i][1] = _mm256_setzero_ps();
    for (int j = 0; j < pairs; j++, p += LINE) {
        _mm_prefetch((const char *)((uintptr_t)p + PREFETCH_BYTES), _MM_HINT_T0);
        __m256 e0, o0, e1, o1;
        widen_pairs(p, &e0, &o0);
        widen_pairs(p + PANEL_ROWS, &e1, &o1);
        _Pragma("GCC unroll 2") for (int i = 0; i < mr; i++) {
            __m256 xe = _mm256_broadcast_ss(x + i * ldx + 2 * j), xo = _mm256_broadcast_ss(x + i * ldx + 2 * j + 1);
            e[i][0] = _mm256_fmadd_ps(xe, e0, e[i][0]);
            o[i][0] = _mm256_fmadd_ps(xo, o0, o[i][0]);
            e[i][1] = _mm256_fmadd_ps(xe, e1, e[i][1]);
            o[i][1] = _mm256_fmadd_ps(xo, o1, o[i][1]);
        }
    }
    /* through a local array: indexing the accumulators by a variable would
     * make the compiler keep them in memory inside the loop */
    float t[2][PANEL_ROWS];
    _Pragma("GCC unroll 2") for (int i = 0; i < mr; i++) {
        _mm256_storeu_ps(t[i], _mm256_add_ps(e[i][0], o[i][0]));
        _mm256_storeu_ps(t[i] + 8, _mm256_add_ps(e[i][1], o[i][1]));
    }
    for (int i = 0; i < mr; i++) memcpy(y + i * ldy, t[i], (size_t)live * sizeof *y);
}

/* The same for half a group (8 rows, p at its first word, lines LINE apart),
 * up to GEMM_ROWS activation rows */
AVX2 static INLINE void tile_half(float *y, size_t ldy, const float *x, size_t ldx, const bf16_t *p, int pairs,
                                  const int mr, int live) {
    __m256 e[GEMM_ROWS], o[GEMM_ROWS];
    _Pragma("GCC unroll 6") for (int i = 0; i < mr; i++) e[i] = o[i] = _mm256_setzero_ps();
    for (int j = 0; j < pairs; j++, p += LINE) {
        __m256 we, wo;
        widen_pairs(p, &we, &wo);
        _Pragma("GCC unroll 6") for (int i = 0; i < mr; i++) {
            e[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(x + i * ldx + 2 * j), we, e[i]);
            o[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(x + i * ldx + 2 * j + 1), wo, o[i]);
        }
    }
    float t[GEMM_ROWS][8];
    _Pragma("GCC unroll 6") for (int i = 0; i < mr; i++) _mm256_storeu_ps(t[i], _mm256_add_ps(e[i], o[i]));
    for (int i = 0; i < mr; i++) memcpy(y + i * ldy, t[i], (size_t)live * sizeof *y);
}

AVX2 static void tile_half_rows(float *y, size_t ldy, const float *x, size_t ldx, const bf16_t *p, int pairs, int mr,
                                int live) {
    switch (mr) {
    case 1: tile_half(y, ldy, x, ldx, p, pairs, 1, live); break;
    case 2: tile_half(y, ldy, x, ldx, p, pairs, 2, live); break;
    case 3: tile_half(y, ldy, x, ldx, p, pairs, 3, live); break;
    case 4: tile_half(y, ldy, x, ldx, p, pairs, 4, live); break;
    case 5: tile_half(y, ldy, x, ldx, p, pairs, 5, live); break;
    default: tile_half(y, ldy, x, ldx, p, pairs, GEMM_ROWS, live); break;
    }
}

typedef struct {
    float *y;
    const float *x;
    int n, rows, cols;
    const bf16_t *w;
    int groups_per_task;
} panel_job;

static int min_int(int a, int b) { return a < b ? a : b; }

/* Decode (fewer than GEMM_ROWS activation rows): each group once from
 * memory, two activation rows at a time (a second pair finds it in L2) */
AVX2 static void decode_groups(const panel_job *j, int g0, int g1) {
    size_t rows = (size_t)j->rows, cols = (size_t)j->cols;
    for (int g = g0; g < g1; g++) {
        const bf16_t *p = j->w + (size_t)g * PANEL_ROWS * cols;
        int live = min_int(PANEL_ROWS, j->rows - g * PANEL_ROWS), i = 0;
        float *y = j->y + (size_t)g * PANEL_ROWS;
        for (; i + 2 <= j->n; i += 2) tile_group(y + i * rows, rows, j->x + i * cols, cols, p, j->cols / 2, 2, live);
        if (i < j->n) tile_group(y + i * rows, rows, j->x + i * cols, cols, p, j->cols / 2, 1, live);
    }
}

/* Prefill: blocks of groups that fit in L2; each block of GEMM_ROWS
 * activation rows passes over every half group of the block */
AVX2 static void gemm_groups(const panel_job *j, int g0, int g1) {
    size_t rows = (size_t)j->rows, cols = (size_t)j->cols;
    int block = (int)(L2_BLOCK_BYTES / (cols * PANEL_ROWS * sizeof(bf16_t)));
    if (block < 1) block = 1;
    for (int gb = g0; gb < g1; gb += block) {
        int ge = min_int(gb + block, g1);
        for (int i = 0; i < j->n; i += GEMM_ROWS) {
            int mr = min_int(GEMM_ROWS, j->n - i);
            for (int g = gb; g < ge; g++)
                for (int h = 0; h < 2; h++) {
                    int r0 = g * PANEL_ROWS + h * 8, live = min_int(8, j->rows - r0);
                    if (live <= 0) break; /* the last group's padding */
                    tile_half_rows(j->y + i * rows + r0, rows, j->x + i * cols, cols,
                                   j->w + (size_t)g * PANEL_ROWS * cols + h * 8 * 2, j->cols / 2, mr, live);
                }
        }
    }
}

static void panel_task(void *p, int task, int thread) {
    (void)thread;
    const panel_job *j = p;
    int g0 = task * j->groups_per_task, g1 = min_int(g0 + j->groups_per_task, panels_groups(j->rows));
    if (j->n < GEMM_ROWS) decode_groups(j, g0, g1);
    else gemm_groups(j, g0, g1);
}

/* Runs of groups per task, four tasks per thread to balance */
void panel_matmul(threadpool *tp, float *y, const float *x, int n, const weight_matrix *w) {
    int groups = panels_groups(w->rows);
    int per = groups / (4 * threadpool_size(tp));
    per = per < 1 ? 1 : per > MAX_GROUPS_PER_TASK ? MAX_GROUPS_PER_TASK : per;
    panel_job j = {y, x, n, w->rows, w->cols, w->data, per};
    threadpool_run(tp, (groups + per - 1) / per, panel_task, &j);
}
