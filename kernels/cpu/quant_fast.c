/* quant_fast.c — y = x · Wᵀ with W in ggml blocks, AVX2 + FMA + F16C,
 * spread over the thread pool. Same results as quant_matmul_ref up to fp32
 * rounding; bitwise the same for a given (weight row, activation row)
 * whatever else is in the batch (quant.h).
 *
 * Why the activations stay fp32. llama.cpp quantizes each activation row
 * to 8 bits (Q8_0/Q8_K) and takes integer dot products; that is faster,
 * but its results differ from the fp32 product by the rounding of 8-bit
 * activations (a few parts in a thousand of each), and facet holds every
 * fast kernel to fp32 rounding of its reference (1e-5 relative, as
 * tests/unit/test_kernels.c does for the bf16 matmul). Here x is only rearranged, never
 * rounded: products x·q are fp32 multiplies of exact small integers. (The
 * int8 op tables, chosen only on request, do round it: quant_int8.c.)
 *
 * The arithmetic. Every format is "a scale per small sub-block times small
 * integers, plus or minus a min": w = s_j·q − m_j. So one output is
 *     y = Σ_j s_j · (Σ_{i in j} x_i·q_i)  +  Σ_j m'_j · (Σ_{i in j} x_i)
 * with the second sum's Σx precomputed once per activation row (it does not
 * depend on W). The inner sums take one FMA per 8 weights, the scale one
 * FMA per 32, where dequantizing each weight and then multiplying takes two
 * per 8: this is what lets decode keep up with memory.
 *
 * Units and groups. Each format is cut into units (two 32-element blocks
 * for Q4_0/Q4_1/Q5_0/Q5_1, whose 16 bytes of nibbles fill half a register
 * each; one block for Q8_0; one 256-element super-block for the K-quants),
 * and a unit into groups of 32 weights: one 32-byte register `raw` whose
 * byte b holds weight b's integer (possibly with garbage above `mask`).
 * Lane k of a register holds bytes 4k..4k+3; the weights of byte 4k+t are
 * taken out with one AND (raw & mask << 8t) and one int→float conversion,
 * giving q·2^(8t) — no shuffles. The activations are stored in that same
 * order and pre-scaled by 2^(−8t), so each product is exactly x·q (Q8_0's
 * signed bytes are moved to the top byte instead: all four scaled 2^−24).
 * The pre-scaling is exact unless |x| < 2^−102, far below any activation.
 *
 * One order of operations, every path. For a group: p = x_0·q_0, then
 * p += x_t·q_t for t = 1..3 (FMA), then acc += s ⊙ p (FMA); after a
 * unit's groups, acc += m' ⊙ Σx (FMA); at the end y = the lanes of acc
 * summed as hsum8 does. Decode (few activation rows) runs this straight
 * from the blocks; prefill first writes q·2^(8t), s and m' of a block of W
 * rows into a per-thread tile and runs the same FMAs from there, several
 * activation rows and weight rows per register tile. Both give the same
 * bits, so which path a row takes — which depends on n — cannot show. */
#include <cpuid.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/numeric.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/quant.h"
#include "kernels/cpu/quant_blocks.h"

#define QF_DECODE_MAX_N 8   /* above this, prefill: unpack W once per tile, reuse it n times */
#define QF_DECODE_MX 4      /* activation rows sharing one unpacked weight group in decode */
#define QF_PREFETCH 2048    /* decode reads W this many bytes ahead (see decode_row) */
#define QF_TILE_ROWS 24     /* W rows per prefill task (a multiple of QF_NW and of 2) */
#define QF_TILE_COLS 1024   /* W columns unpacked at a time: ~5 bytes each, 24 rows → ~120 KB, in L2 */
#define QF_TILE_XROWS 64    /* activation rows per pass over a tile (their accumulators live in memory) */
#define QF_MX 3             /* prefill register tile: QF_MX activation rows × QF_NW weight rows */
#define QF_NW 2             /* (3 × 2 sums + 3 × 2 accumulators + 2 weights + 1 x = 15 registers) */

/* floats of one unit in the prefill tile: per group 4 × 8 integers and 8 scales, then the mins */
static int tile_unit_floats(const qlayout *L) { return L->groups * 40 + L->mins * 8; }

/* lanes k ← weight of byte 4k + t, as q·2^(8t) (unsigned) or q·2^24 (Q8_0) */
QF_INLINE __m256 group_weights(int type, __m256i raw, int t) {
    if (type == QUANT_Q8_0) { /* the signed byte to the top: its sign becomes the int's */
        __m256i v = t == 3 ? raw : _mm256_slli_epi32(raw, 24 - 8 * t);
        if (t != 0) v = _mm256_and_si256(v, _mm256_set1_epi32((int)0xff000000u));
        return _mm256_cvtepi32_ps(v);
    }
    return _mm256_cvtepi32_ps(_mm256_and_si256(raw, _mm256_set1_epi32((int)((uint32_t)q_mask(type) << (8 * t)))));
}

/* ---- activations in the kernels' order ------------------------------------ */

/* The 4 vectors of one group: lane k of vector t = row k's element t. Rows
 * are 4 floats each; a transpose of two 4 × 4 blocks side by side. */
QF_INLINE void group_activations(const float *const row[8], const __m256 scale[4], float *out) {
    __m256 a = _mm256_set_m128(_mm_loadu_ps(row[4]), _mm_loadu_ps(row[0]));
    __m256 b = _mm256_set_m128(_mm_loadu_ps(row[5]), _mm_loadu_ps(row[1]));
    __m256 c = _mm256_set_m128(_mm_loadu_ps(row[6]), _mm_loadu_ps(row[2]));
    __m256 d = _mm256_set_m128(_mm_loadu_ps(row[7]), _mm_loadu_ps(row[3]));
    __m256 ab_lo = _mm256_unpacklo_ps(a, b), cd_lo = _mm256_unpacklo_ps(c, d);
    __m256 ab_hi = _mm256_unpackhi_ps(a, b), cd_hi = _mm256_unpackhi_ps(c, d);
    _mm256_storeu_ps(out, _mm256_mul_ps(_mm256_shuffle_ps(ab_lo, cd_lo, 0x44), scale[0]));
    _mm256_storeu_ps(out + 8, _mm256_mul_ps(_mm256_shuffle_ps(ab_lo, cd_lo, 0xee), scale[1]));
    _mm256_storeu_ps(out + 16, _mm256_mul_ps(_mm256_shuffle_ps(ab_hi, cd_hi, 0x44), scale[2]));
    _mm256_storeu_ps(out + 24, _mm256_mul_ps(_mm256_shuffle_ps(ab_hi, cd_hi, 0xee), scale[3]));
}

/* Σ of n (a multiple of 8) floats, in a fixed order */
QF_INLINE float sum_span(const float *x, int n) {
    __m256 a = _mm256_loadu_ps(x);
    for (int i = 8; i < n; i += 8) a = _mm256_add_ps(a, _mm256_loadu_ps(x + i));
    return hsum8(a);
}

/* One activation row in the kernels' order. xp (units × groups × 32): slot
 * (u, g, t, k) = x[element of byte 4k + t of group g] · 2^(−8t) (2^−24 for
 * signed weights), 0 past the row's end. sx (units × mins × 8): min_factor ·
 * Σx over each min span, in its lane. Depends on this row alone. */
QF static void prepare_activations(const qlayout *L, const float *x, int cols, int units, float *xp, float *sx) {
    __m256 scale[4];
    for (int t = 0; t < 4; t++) scale[t] = _mm256_set1_ps(L->q_signed ? 1.0f / 16777216 : 1.0f / (float)(1 << (8 * t)));
    const int ue = unit_elems(L);
    float padded[256]; /* the last unit of a row with an odd number of paired blocks, zero-filled */
    for (int u = 0; u < units; u++, xp += L->groups * 32) {
        const float *xu = x + (size_t)u * ue;
        if ((u + 1) * ue > cols) {
            memset(padded, 0, sizeof padded);
            memcpy(padded, xu, (size_t)(cols - u * ue) * sizeof *xu);
            xu = padded;
        }
        for (int g = 0; g < L->groups; g++) {
            const float *row[8];
            for (int k = 0; k < 8; k++) row[k] = xu + group_row_elem(L, g, k);
            group_activations(row, scale, xp + g * 32);
        }
        if (L->mins == 0) continue;
        memset(sx, 0, (size_t)L->mins * 8 * sizeof *sx);
        for (int s = 0; s * L->min_span < ue; s++)
            sx[min_lane(L, s)] = L->min_factor * sum_span(xu + s * L->min_span, L->min_span);
        sx += L->mins * 8;
    }
}

/* ---- the shape of one call ------------------------------------------------ */

typedef struct {
    float *y;         /* (n, rows) */
    const float *xp;  /* (n, xp_stride) prepared activations */
    const float *sx;  /* (n, sx_stride) */
    size_t xp_stride, sx_stride;
    int n;            /* activation rows in this pass (prefill: at most QF_TILE_XROWS) */
    qmatrix m;        /* W */
    int rows_per_task;
    float *scratch; /* prefill: per thread, scratch_floats each */
    size_t scratch_floats;
} qjob;

/* ---- decode: straight from the blocks ------------------------------------- */

/* y[i · rows] = row w · activation row i, for MX activation rows.
 * W is prefetched QF_PREFETCH bytes ahead: rows of 8192 or 16384 columns,
 * whose activations live in L2, streamed from memory at 4.3-6.4 GB/s per
 * thread without it and 8.1-8.2 with it, as fast as 2048-column rows (Q4_K,
 * this machine; Q6_K 6.6 → 9.1). Short rows are unchanged. */
QF_INLINE void decode_row(int type, const qjob *j, const uint8_t *w, const float *xp, const float *sx, int MX,
                          float *y) {
    const int G = groups_of(type), M = mins_of(type);
    const float *xr[QF_DECODE_MX], *sr[QF_DECODE_MX];
    __m256 acc[QF_DECODE_MX];
    for (int i = 0; i < MX; i++) {
        acc[i] = _mm256_setzero_ps();
        xr[i] = xp + i * j->xp_stride;
        sr[i] = sx + i * j->sx_stride;
    }
    for (int u = 0; u < j->m.units; u++, w += j->m.unit_bytes) {
        unit_head h;
        for (size_t o = 0; o < j->m.unit_bytes; o += 64) _mm_prefetch((const char *)w + QF_PREFETCH + o, _MM_HINT_T0);
        unit_begin(type, w, u == j->m.units - 1 ? j->m.last_unit_blocks : 2, &h);
#pragma GCC unroll 8
        for (int g = 0; g < G; g++) {
            __m256i raw = group_raw(type, w, &h, g);
            __m256 p[QF_DECODE_MX];
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++) {
                __m256 q = group_weights(type, raw, t);
#pragma GCC unroll 4
                for (int i = 0; i < MX; i++) {
                    __m256 xv = _mm256_loadu_ps(xr[i] + 8 * t);
                    p[i] = t == 0 ? _mm256_mul_ps(xv, q) : _mm256_fmadd_ps(xv, q, p[i]);
                }
            }
            __m256 s = group_scale(type, &h, g);
#pragma GCC unroll 4
            for (int i = 0; i < MX; i++) {
                acc[i] = _mm256_fmadd_ps(s, p[i], acc[i]);
                xr[i] += 32;
            }
        }
        add_min_terms(M, MX, &h, sr, acc);
    }
    for (int i = 0; i < MX; i++) y[(size_t)i * j->m.rows] = hsum8(acc[i]);
}

/* Rows [r0, r1), activation rows QF_DECODE_MX at a time: a weight row is
 * read from memory for the first four, from cache for the next ones. */
QF_INLINE void decode_rows(int type, const qjob *j, int r0, int r1) {
    for (int r = r0; r < r1; r++) {
        const uint8_t *w = j->m.w + (size_t)r * j->m.row_bytes;
        for (int i = 0; i < j->n; i += QF_DECODE_MX) {
            const float *xp = j->xp + (size_t)i * j->xp_stride, *sx = j->sx + (size_t)i * j->sx_stride;
            float *y = j->y + (size_t)i * j->m.rows + r;
            switch (j->n - i < QF_DECODE_MX ? j->n - i : QF_DECODE_MX) {
            case 1: decode_row(type, j, w, xp, sx, 1, y); break;
            case 2: decode_row(type, j, w, xp, sx, 2, y); break;
            case 3: decode_row(type, j, w, xp, sx, 3, y); break;
            default: decode_row(type, j, w, xp, sx, 4, y); break;
            }
        }
    }
}

/* ---- prefill: a tile of unpacked rows, reused by every activation row ----- */

/* Units [u0, u1) of row w into tile: per unit, per group q·2^(8t) for t =
 * 0..3 and the lane scales (40 floats), then the mins (8 per vector). */
QF_INLINE void tile_fill_row(int type, const qjob *j, const uint8_t *w, int u0, int u1, float *tile) {
    const int G = groups_of(type), M = mins_of(type);
    w += (size_t)u0 * j->m.unit_bytes;
    for (int u = u0; u < u1; u++, w += j->m.unit_bytes) {
        unit_head h;
        unit_begin(type, w, u == j->m.units - 1 ? j->m.last_unit_blocks : 2, &h);
#pragma GCC unroll 8
        for (int g = 0; g < G; g++, tile += 40) {
            __m256i raw = group_raw(type, w, &h, g);
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++) _mm256_store_ps(tile + 8 * t, group_weights(type, raw, t));
            _mm256_store_ps(tile + 32, group_scale(type, &h, g));
        }
        for (int m = 0; m < M; m++, tile += 8) _mm256_store_ps(tile, h.mv[m]);
    }
}

/* acc[i][r] (in memory, 8 floats each, rows i acc_stride apart) continues
 * over nu units of MX activation rows × NW tile rows, in exactly
 * decode_row's order. */
QF_INLINE void tile_kernel(int G, int M, int MX, int NW, const float *tile, size_t tile_stride, int nu,
                           const float *xp, size_t xp_stride, const float *sx, size_t sx_stride, float *acc_mem,
                           size_t acc_stride) {
    const int TU = G * 40 + M * 8;
    __m256 acc[QF_MX][QF_NW];
    for (int i = 0; i < MX; i++)
        for (int r = 0; r < NW; r++) acc[i][r] = _mm256_load_ps(acc_mem + i * acc_stride + r * 8);
    for (int u = 0; u < nu; u++) {
        const float *tu = tile + (size_t)u * TU, *xu = xp + (size_t)u * G * 32;
        for (int g = 0; g < G; g++) {
            __m256 p[QF_MX][QF_NW];
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++) {
                __m256 q[QF_NW];
#pragma GCC unroll 2
                for (int r = 0; r < NW; r++) q[r] = _mm256_load_ps(tu + r * tile_stride + g * 40 + t * 8);
#pragma GCC unroll 3
                for (int i = 0; i < MX; i++) {
                    __m256 xv = _mm256_load_ps(xu + i * xp_stride + g * 32 + t * 8);
#pragma GCC unroll 2
                    for (int r = 0; r < NW; r++)
                        p[i][r] = t == 0 ? _mm256_mul_ps(xv, q[r]) : _mm256_fmadd_ps(xv, q[r], p[i][r]);
                }
            }
#pragma GCC unroll 3
            for (int i = 0; i < MX; i++)
#pragma GCC unroll 2
                for (int r = 0; r < NW; r++)
                    acc[i][r] = _mm256_fmadd_ps(_mm256_load_ps(tu + r * tile_stride + g * 40 + 32), p[i][r], acc[i][r]);
        }
        for (int m = 0; m < M; m++)
#pragma GCC unroll 3
            for (int i = 0; i < MX; i++) {
                __m256 sxv = _mm256_load_ps(sx + i * sx_stride + ((size_t)u * M + m) * 8);
#pragma GCC unroll 2
                for (int r = 0; r < NW; r++)
                    acc[i][r] = _mm256_fmadd_ps(_mm256_load_ps(tu + r * tile_stride + G * 40 + m * 8), sxv, acc[i][r]);
            }
    }
    for (int i = 0; i < MX; i++)
        for (int r = 0; r < NW; r++) _mm256_store_ps(acc_mem + i * acc_stride + r * 8, acc[i][r]);
}

/* the register tile for mx ≤ QF_MX, nw ≤ QF_NW (edges get smaller ones) */
QF static void tile_kernel_any(int G, int M, int mx, int nw, const float *tile, size_t tile_stride, int nu,
                               const float *xp, size_t xp_stride, const float *sx, size_t sx_stride, float *acc_mem,
                               size_t acc_stride) {
#define QF_TILE_CASE(MX, NW)                                                                                    \
    case (MX) * 4 + (NW):                                                                                       \
        tile_kernel(G, M, MX, NW, tile, tile_stride, nu, xp, xp_stride, sx, sx_stride, acc_mem, acc_stride); \
        break
    switch (mx * 4 + nw) {
        QF_TILE_CASE(1, 1);
        QF_TILE_CASE(1, 2);
        QF_TILE_CASE(2, 1);
        QF_TILE_CASE(2, 2);
        QF_TILE_CASE(3, 1);
        QF_TILE_CASE(3, 2);
    }
#undef QF_TILE_CASE
}

/* rows [r0, r1) (at most QF_TILE_ROWS) for the pass's activation rows (at
 * most QF_TILE_XROWS, whose accumulators stay in scratch across column chunks) */
QF_INLINE void prefill_rows(int type, const qjob *j, int r0, int r1, float *scratch) {
    const qlayout *L = layout_of(type);
    const int G = L->groups, M = L->mins, TU = tile_unit_floats(L), R = r1 - r0, n = j->n;
    const int chunk_units = QF_TILE_COLS / unit_elems(L) > 0 ? QF_TILE_COLS / unit_elems(L) : 1;
    const size_t tile_stride = (size_t)chunk_units * TU, acc_stride = (size_t)R * 8;
    float *tile = scratch, *acc = scratch + (size_t)QF_TILE_ROWS * tile_stride;
    memset(acc, 0, (size_t)n * acc_stride * sizeof *acc);
    for (int u0 = 0; u0 < j->m.units; u0 += chunk_units) {
        int u1 = u0 + chunk_units < j->m.units ? u0 + chunk_units : j->m.units;
        for (int r = 0; r < R; r++)
            tile_fill_row(type, j, j->m.w + (size_t)(r0 + r) * j->m.row_bytes, u0, u1, tile + r * tile_stride);
        for (int i = 0; i < n; i += QF_MX) {
            const float *xp = j->xp + (size_t)i * j->xp_stride + (size_t)u0 * G * 32;
            const float *sx = j->sx + (size_t)i * j->sx_stride + (size_t)u0 * M * 8;
            int mx = n - i < QF_MX ? n - i : QF_MX;
            for (int r = 0; r < R; r += QF_NW)
                tile_kernel_any(G, M, mx, R - r < QF_NW ? R - r : QF_NW, tile + r * tile_stride, tile_stride, u1 - u0,
                                xp, j->xp_stride, sx, j->sx_stride, acc + i * acc_stride + r * 8, acc_stride);
        }
    }
    for (int i = 0; i < n; i++)
        for (int r = 0; r < R; r++)
            j->y[(size_t)i * j->m.rows + r0 + r] = hsum8(_mm256_load_ps(acc + i * acc_stride + r * 8));
}

/* ---- one function per format, so each inlines its own unpacking ---------- */

#define QF_FORMAT_TASKS(SUFFIX, TYPE)                                                                      \
    QF static void decode_task_##SUFFIX(void *p, int task, int thread) {                                  \
        const qjob *j = p;                                                                                 \
        int r0 = task * j->rows_per_task, r1 = r0 + j->rows_per_task < j->m.rows ? r0 + j->rows_per_task : j->m.rows; \
        decode_rows(TYPE, j, r0, r1);                                                                      \
    }                                                                                                      \
    QF static void prefill_task_##SUFFIX(void *p, int task, int thread) {                                 \
        const qjob *j = p;                                                                                 \
        int r0 = task * QF_TILE_ROWS, r1 = r0 + QF_TILE_ROWS < j->m.rows ? r0 + QF_TILE_ROWS : j->m.rows;      \
        prefill_rows(TYPE, j, r0, r1, j->scratch + (size_t)thread * j->scratch_floats);                    \
    }

QF_FORMAT_TASKS(q4_0, QUANT_Q4_0)
QF_FORMAT_TASKS(q4_1, QUANT_Q4_1)
QF_FORMAT_TASKS(q5_0, QUANT_Q5_0)
QF_FORMAT_TASKS(q5_1, QUANT_Q5_1)
QF_FORMAT_TASKS(q8_0, QUANT_Q8_0)
QF_FORMAT_TASKS(q4_k, QUANT_Q4_K)
QF_FORMAT_TASKS(q5_k, QUANT_Q5_K)
QF_FORMAT_TASKS(q6_k, QUANT_Q6_K)

typedef struct {
    int type;
    threadpool_fn decode, prefill;
} format_tasks;

static const format_tasks k_tasks[] = {
    {QUANT_Q4_0, decode_task_q4_0, prefill_task_q4_0}, {QUANT_Q4_1, decode_task_q4_1, prefill_task_q4_1},
    {QUANT_Q5_0, decode_task_q5_0, prefill_task_q5_0}, {QUANT_Q5_1, decode_task_q5_1, prefill_task_q5_1},
    {QUANT_Q8_0, decode_task_q8_0, prefill_task_q8_0}, {QUANT_Q4_K, decode_task_q4_k, prefill_task_q4_k},
    {QUANT_Q5_K, decode_task_q5_k, prefill_task_q5_k}, {QUANT_Q6_K, decode_task_q6_k, prefill_task_q6_k},
};

typedef struct {
    const qlayout *L;
    const float *x;
    int cols, units;
    float *xp, *sx;
    size_t xp_stride, sx_stride;
} prepare_job;

static void prepare_task(void *p, int t, int thread) {
    const prepare_job *j = p;
    prepare_activations(j->L, j->x + (size_t)t * j->cols, j->cols, j->units, j->xp + (size_t)t * j->xp_stride,
                        j->sx + (size_t)t * j->sx_stride);
}

/* Activation rows are rearranged (prepare_activations) in passes of at most
 * QF_TILE_XROWS, so the scratch stays small however long the prompt. */
static void block_matmul(threadpool *tp, float *y, const float *x, int n, const qlayout *L, const void *w, int rows,
                         int cols) {
    qjob j = {.m = qmatrix_of(L, w, rows, cols)};
    int units = j.m.units;
    j.xp_stride = (size_t)units * L->groups * 32;
    j.sx_stride = (size_t)units * L->mins * 8;
    const format_tasks *ft = NULL;
    for (size_t i = 0; i < sizeof k_tasks / sizeof k_tasks[0]; i++)
        if (k_tasks[i].type == L->type) ft = &k_tasks[i];

    bool decode = n <= QF_DECODE_MAX_N;
    int pass = decode ? n : QF_TILE_XROWS;
    float *xp = xaligned_alloc(64, ((size_t)pass * (j.xp_stride + j.sx_stride) + 8) * sizeof(float));
    if (decode) {
        j.rows_per_task = quant_decode_rows_per_task(tp, rows);
    } else {
        int chunk_units = QF_TILE_COLS / unit_elems(L) > 0 ? QF_TILE_COLS / unit_elems(L) : 1;
        j.scratch_floats = (size_t)QF_TILE_ROWS * chunk_units * tile_unit_floats(L) /* the tile */
                           + (size_t)QF_TILE_XROWS * QF_TILE_ROWS * 8;              /* the accumulators */
        j.scratch = xaligned_alloc(64, (size_t)threadpool_size(tp) * j.scratch_floats * sizeof(float));
    }
    for (int i0 = 0; i0 < n; i0 += pass) {
        j.n = n - i0 < pass ? n - i0 : pass;
        j.y = y + (size_t)i0 * rows;
        prepare_job pj = {L, x + (size_t)i0 * cols, cols, units, xp, xp + (size_t)j.n * j.xp_stride, j.xp_stride,
                          j.sx_stride};
        threadpool_run(j.n > 1 ? tp : NULL, j.n, prepare_task, &pj);
        j.xp = pj.xp;
        j.sx = pj.sx;
        if (decode)
            threadpool_run(tp, (rows + j.rows_per_task - 1) / j.rows_per_task, ft->decode, &j);
        else
            threadpool_run(tp, (rows + QF_TILE_ROWS - 1) / QF_TILE_ROWS, ft->prefill, &j);
    }
    free(j.scratch);
    free(xp);
}

/* ---- float rows (F32, F16, BF16) and CPUs without AVX2 -------------------- */

typedef struct {
    int type;
    float *y;
    const float *x;
    int n;
    const uint8_t *w;
    size_t row_bytes;
    int rows, cols, rows_per_task;
    float *scratch; /* per thread, cols floats */
    bool simd;
} row_job;

QF static void widen_row_simd(int type, const uint8_t *src, float *dst, int cols) {
    int c = 0;
    if (type == QUANT_F16)
        for (; c + 8 <= cols; c += 8)
            _mm256_storeu_ps(dst + c, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + 2 * c))));
    else if (type == QUANT_BF16)
        for (; c + 8 <= cols; c += 8) {
            __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + 2 * c)));
            _mm256_storeu_ps(dst + c, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
        }
    if (c < cols) quant_dequantize_row(type, src + (size_t)c * (type == QUANT_F32 ? 4 : 2), dst + c, cols - c);
}

/* ops_fast.c's order: groups of 8 columns alternating between two 8-lane
 * accumulators, then hsum8(even + odd), then the tail */
QF static float dot_simd(const float *x, const float *w, int cols) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    int c = 0;
    for (; c + 16 <= cols; c += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + c), _mm256_loadu_ps(w + c), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + c + 8), _mm256_loadu_ps(w + c + 8), a1);
    }
    if (c + 8 <= cols) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + c), _mm256_loadu_ps(w + c), a0), c += 8;
    float s = hsum8(_mm256_add_ps(a0, a1));
    for (; c < cols; c++) s += x[c] * w[c];
    return s;
}

/* the reference's sum: left to right (this file is built without contraction, as quant_ref.c) */
static float dot_plain(const float *x, const float *w, int cols) {
    float s = 0.0f;
    for (int c = 0; c < cols; c++) s += x[c] * w[c];
    return s;
}

static void row_task(void *p, int task, int thread) {
    const row_job *j = p;
    float *wr = j->scratch + (size_t)thread * j->cols;
    int r0 = task * j->rows_per_task, r1 = r0 + j->rows_per_task < j->rows ? r0 + j->rows_per_task : j->rows;
    for (int r = r0; r < r1; r++) {
        const uint8_t *src = j->w + (size_t)r * j->row_bytes;
        if (j->simd) widen_row_simd(j->type, src, wr, j->cols);
        else quant_dequantize_row(j->type, src, wr, j->cols);
        for (int t = 0; t < j->n; t++) {
            const float *xt = j->x + (size_t)t * j->cols;
            j->y[(size_t)t * j->rows + r] = j->simd ? dot_simd(xt, wr, j->cols) : dot_plain(xt, wr, j->cols);
        }
    }
}

static void rowwise_matmul(threadpool *tp, float *y, const float *x, int n, int type, const void *w, int rows,
                           int cols, bool simd) {
    row_job j = {type, y, x, n, w, (size_t)quant_row_bytes(type, cols), rows, cols, 0, NULL, simd};
    j.rows_per_task = quant_decode_rows_per_task(tp, rows);
    j.scratch = xmalloc((size_t)threadpool_size(tp) * cols * sizeof(float));
    threadpool_run(tp, (rows + j.rows_per_task - 1) / j.rows_per_task, row_task, &j);
    free(j.scratch);
}

/* AVX2 and FMA as ops.c asks; F16C (every AVX2 CPU has it) from cpuid,
 * which clang's __builtin_cpu_supports does not know by name. Asked once:
 * cpuid traps to the hypervisor in a VM, and at ~130 matmuls per decode
 * step asking every time cost 4 % of a 270M step (perf, this machine). */
bool quant_cpu_has_avx2(void) {
    static atomic_int known = -1; /* -1: not asked yet; then 0 or 1 (a race only asks twice) */
    int v = atomic_load_explicit(&known, memory_order_relaxed);
    if (v >= 0) return v;
    unsigned a, b, c, d;
    v = cpu_has_avx2_fma() && __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
    atomic_store_explicit(&known, v, memory_order_relaxed);
    return v;
}

const char *quant_fast_isa(void) { return quant_cpu_has_avx2() ? "avx2" : "scalar"; }

bool quant_matmul_fast(threadpool *tp, float *y, const float *x, int n, int type, const void *w, int rows,
                       int cols) {
    if (quant_row_bytes(type, cols) < 0 || n < 0 || rows < 0) return false;
    if (n == 0 || rows == 0) return true;
    bool simd = quant_cpu_has_avx2();
    const qlayout *L = layout_of(type);
    if (simd && L)
        block_matmul(tp, y, x, n, L, w, rows, cols);
    else
        rowwise_matmul(tp, y, x, n, type, w, rows, cols, simd);
    return true;
}
