/* quant_blocks.h — ggml's block formats as the AVX2 kernels unpack them:
 * each format cut into units and 32-weight groups, one register per group
 * (quant_fast.c's header comment explains the scheme). Shared by the fp32
 * kernels (quant_fast.c) and the int8 ones (quant_int8.c), so that both read
 * every format the same way. Internal to kernels/cpu: every function is
 * static inline and compiled for AVX2 + FMA + F16C (QF). */
#ifndef FACET_KERNELS_CPU_QUANT_BLOCKS_H
#define FACET_KERNELS_CPU_QUANT_BLOCKS_H

#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernels/cpu/quant.h"

#define QF __attribute__((target("avx2,fma,f16c")))
#define QF_INLINE QF static inline __attribute__((always_inline))

/* AVX2, FMA and F16C on this CPU (asked once; quant_fast.c) */
bool quant_cpu_has_avx2(void);

/* ---- the layout of each format as the kernels see it ---------------------- */

typedef struct {
    int type;
    int block_elems, block_bytes;
    int blocks_per_unit; /* 2: two 32-element blocks share a register (lanes 0-3, 4-7) */
    int groups;          /* 32-weight groups per unit */
    int mins;            /* 8-lane min vectors per unit (0: no min term) */
    int min_span;        /* elements summed into one min lane */
    float min_factor;    /* Σx is stored times this: −8 (Q4_0), −16 (Q5_0), −32 (Q6_K), −1 (Q4_K, Q5_K), 1 */
    bool q_signed;       /* Q8_0: int8 weights */
} qlayout;

static const qlayout k_layouts[] = {
    {QUANT_Q4_0, 32, 18, 2, 2, 1, 32, -8.0f, false},   {QUANT_Q4_1, 32, 20, 2, 2, 1, 32, 1.0f, false},
    {QUANT_Q5_0, 32, 22, 2, 2, 1, 32, -16.0f, false},  {QUANT_Q5_1, 32, 24, 2, 2, 1, 32, 1.0f, false},
    {QUANT_Q8_0, 32, 34, 1, 1, 0, 32, 0.0f, true},     {QUANT_Q4_K, 256, 144, 1, 8, 1, 32, -1.0f, false},
    {QUANT_Q5_K, 256, 176, 1, 8, 1, 32, -1.0f, false}, {QUANT_Q6_K, 256, 210, 1, 8, 2, 16, -32.0f, false},
};

static inline const qlayout *layout_of(int type) {
    for (size_t i = 0; i < sizeof k_layouts / sizeof k_layouts[0]; i++)
        if (k_layouts[i].type == type) return &k_layouts[i];
    return NULL;
}

static inline int unit_elems(const qlayout *L) { return L->block_elems * L->blocks_per_unit; }

/* Bytes 4k..4k+3 of group g's register hold 4 consecutive elements of its
 * unit (lane k of the vectors for t = 0..3); this is the first of them. */
static inline int group_row_elem(const qlayout *L, int g, int k) {
    if (L->blocks_per_unit == 2) /* group 0: both blocks' low nibbles (elements 0-15), group 1: high (16-31) */
        return (k < 4 ? 0 : 32) + 16 * g + 4 * (k & 3);
    return 32 * g + 4 * k;
}

/* min lane of the s-th min_span elements of a unit */
static inline int min_lane(const qlayout *L, int s) { return L->blocks_per_unit == 2 ? 4 * s : s; }
/* ---- one call's matrix, as both kernel families walk it -------------------- */

/* W (rows, cols) cut into units: what every task of a call reads */
typedef struct {
    const uint8_t *w; /* (rows, row_bytes) */
    size_t row_bytes, unit_bytes;
    int rows, units;
    int last_unit_blocks; /* blocks in a row's last unit (1 when a paired format's row has an odd count) */
} qmatrix;

static inline qmatrix qmatrix_of(const qlayout *L, const void *w, int rows, int cols) {
    int blocks = cols / L->block_elems, units = (blocks + L->blocks_per_unit - 1) / L->blocks_per_unit;
    qmatrix m = {w, (size_t)blocks * L->block_bytes, (size_t)L->blocks_per_unit * L->block_bytes, rows, units,
                 blocks - (units - 1) * L->blocks_per_unit};
    return m;
}

#define QUANT_MIN_ROWS_PER_TASK 16
#define QUANT_MAX_ROWS_PER_TASK 1024

/* Decode tasks: long runs of rows stream best; four tasks per thread
 * balance (as ops_fast.c's matmul). */
static inline int quant_decode_rows_per_task(threadpool *tp, int rows) {
    int per = rows / (4 * threadpool_size(tp));
    return per < QUANT_MIN_ROWS_PER_TASK ? QUANT_MIN_ROWS_PER_TASK : per > QUANT_MAX_ROWS_PER_TASK ? QUANT_MAX_ROWS_PER_TASK : per;
}

/* ---- unpacking one unit into groups (raw integers, scales, mins) ---------- */

QF_INLINE float f16_load(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, sizeof h);
    return _cvtsh_ss(h); /* exact, subnormals included */
}

QF_INLINE uint32_t u32_load(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

QF_INLINE __m256 halves(float lo, float hi) { return _mm256_set_m128(_mm_set1_ps(hi), _mm_set1_ps(lo)); }

/* The 16-byte nibble arrays of two blocks side by side (the second zero when
 * the row's last unit has one block). */
QF_INLINE __m256i two_nibble_arrays(const uint8_t *q0, const uint8_t *q1) {
    __m128i a = _mm_loadu_si128((const __m128i *)q0);
    __m128i b = q1 ? _mm_loadu_si128((const __m128i *)q1) : _mm_setzero_si128();
    return _mm256_set_m128i(b, a);
}

/* 0x10 in byte b of each 128-bit half where bit (first + b) of that half's
 * 32-bit fifth-bit word qh is set (Q5_0/Q5_1). */
QF_INLINE __m256i fifth_bits(uint32_t qh0, uint32_t qh1, int first) {
    __m256i qh = _mm256_set_m128i(_mm_cvtsi32_si128((int)qh1), _mm_cvtsi32_si128((int)qh0));
    char a = (char)(first / 8), b = (char)(first / 8 + 1);
    __m256i pick = _mm256_setr_epi8(a, a, a, a, a, a, a, a, b, b, b, b, b, b, b, b, a, a, a, a, a, a, a, a, b, b, b,
                                    b, b, b, b, b);
    __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i v = _mm256_shuffle_epi8(qh, pick);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

/* Q4_K/Q5_K: 8 scales d·sc_j and 8 mins dmin·m_j from the 12 packed bytes at
 * b + 4 (6 bits each: see quant_ref.c's k_scale_min; here 4 at a time). */
QF_INLINE void k_scales_mins(const uint8_t *b, __m256 *sc, __m256 *mn) {
    uint32_t lo = u32_load(b + 4), mid = u32_load(b + 8), hi = u32_load(b + 12);
    uint64_t s = (lo & 0x3f3f3f3fu) | (uint64_t)((hi & 0x0f0f0f0fu) | ((lo >> 2) & 0x30303030u)) << 32;
    uint64_t m = (mid & 0x3f3f3f3fu) | (uint64_t)(((hi >> 4) & 0x0f0f0f0fu) | ((mid >> 2) & 0x30303030u)) << 32;
    __m256 sf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)s)));
    __m256 mf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)m)));
    *sc = _mm256_mul_ps(_mm256_set1_ps(f16_load(b)), sf);
    *mn = _mm256_mul_ps(_mm256_set1_ps(f16_load(b + 2)), mf);
}

/* bit `from` of every byte of v moved to bit `to` (other bits: garbage) */
QF_INLINE __m256i move_bits(__m256i v, int from, int to) {
    return from <= to ? _mm256_slli_epi32(v, to - from) : _mm256_srli_epi32(v, from - to);
}

/* What the groups of one unit share: its scales and mins, and the bytes
 * several groups are cut from. Unpacked once per unit; each group is then
 * unpacked when it is used, so few registers are live at a time. */
typedef struct {
    __m256 sc;    /* lane scales (pairs: d of each block per half; K: d·sc_j in lane j) */
    float sc_k[8] __attribute__((aligned(32))); /* Q4_K/Q5_K: sc again, each broadcast by a load */
    __m256 mv[2]; /* the min vectors */
    __m256i bits; /* pairs: both blocks' nibbles; Q5_K: qh */
    uint32_t qh0, qh1; /* Q5_0/Q5_1: fifth bits of each block */
} unit_head;

QF_INLINE void unit_begin(int type, const uint8_t *u, int nb, unit_head *h) {
    switch (type) {
    case QUANT_Q4_0: /* d, qs[16] */
    case QUANT_Q4_1: /* d, m, qs[16] */
    case QUANT_Q5_0: /* d, qh[4], qs[16] */
    case QUANT_Q5_1: /* d, m, qh[4], qs[16] */ {
        bool has_min = type == QUANT_Q4_1 || type == QUANT_Q5_1, five = type == QUANT_Q5_0 || type == QUANT_Q5_1;
        int bb = 18 + 2 * has_min + 4 * five, ho = 2 + 2 * has_min, qo = ho + 4 * five;
        const uint8_t *u1 = nb > 1 ? u + bb : NULL; /* the row's last unit may hold one block */
        h->bits = two_nibble_arrays(u + qo, u1 ? u1 + qo : NULL);
        h->sc = halves(f16_load(u), u1 ? f16_load(u1) : 0.0f);
        h->mv[0] = has_min ? halves(f16_load(u + 2), u1 ? f16_load(u1 + 2) : 0.0f) : h->sc;
        if (five) h->qh0 = u32_load(u + ho), h->qh1 = u1 ? u32_load(u1 + ho) : 0;
        break;
    }
    case QUANT_Q8_0: /* d, qs[32] */
        h->sc = _mm256_set1_ps(f16_load(u));
        break;
    case QUANT_Q4_K: /* d, dmin, scales[12], qs[128] */
    case QUANT_Q5_K: /* d, dmin, scales[12], qh[32], qs[128] */
        k_scales_mins(u, &h->sc, &h->mv[0]);
        _mm256_store_ps(h->sc_k, h->sc);
        if (type == QUANT_Q5_K) h->bits = _mm256_loadu_si256((const __m256i *)(u + 16));
        break;
    case QUANT_Q6_K: /* ql[128], qh[64], scales[16] int8, d: the mins are the 16 scales d·sc_j */ {
        __m256 d = _mm256_set1_ps(f16_load(u + 208));
        for (int half = 0; half < 2; half++) {
            __m128i sc = _mm_loadl_epi64((const __m128i *)(u + 192 + 8 * half));
            h->mv[half] = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc)));
        }
        break;
    }
    }
}

/* Group g of the unit: bytes 4k..4k+3 of the result hold the integers of
 * elements group_row_elem(g, k) + 0..3 (possibly with garbage above q_mask). */
QF_INLINE __m256i group_raw(int type, const uint8_t *u, const unit_head *h, int g) {
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    switch (type) {
    case QUANT_Q4_0:
    case QUANT_Q4_1: /* group 0: low nibbles, group 1: high nibbles */
        return g == 0 ? h->bits : _mm256_srli_epi32(h->bits, 4);
    case QUANT_Q5_0:
    case QUANT_Q5_1: {
        __m256i nib = _mm256_and_si256(g == 0 ? h->bits : _mm256_srli_epi32(h->bits, 4), low4);
        return _mm256_or_si256(nib, fifth_bits(h->qh0, h->qh1, 16 * g));
    }
    case QUANT_Q8_0: return _mm256_loadu_si256((const __m256i *)(u + 2));
    case QUANT_Q4_K: { /* sub-blocks 2c and 2c + 1 are the low and high nibbles of qs[32c..] */
        __m256i q = _mm256_loadu_si256((const __m256i *)(u + 16 + 32 * (g / 2)));
        return (g & 1) ? _mm256_srli_epi32(q, 4) : q;
    }
    case QUANT_Q5_K: { /* ... and their fifth bits bit g of qh[b] */
        __m256i q = _mm256_loadu_si256((const __m256i *)(u + 48 + 32 * (g / 2)));
        if (g & 1) q = _mm256_srli_epi32(q, 4);
        __m256i fifth = _mm256_and_si256(move_bits(h->bits, g, 4), _mm256_set1_epi8(0x10));
        return _mm256_or_si256(_mm256_and_si256(q, low4), fifth);
    }
    default: { /* Q6_K: group 4h + t, elements 128h + 32t + b: low 4 bits from ql[64h + 32(t & 1) + b]
                * (high nibble when t ≥ 2), top 2 bits at bit 2t of qh[32h + b] */
        int half = g / 4, t = g % 4;
        __m256i lo = _mm256_loadu_si256((const __m256i *)(u + 64 * half + 32 * (t & 1)));
        __m256i hi = _mm256_loadu_si256((const __m256i *)(u + 128 + 32 * half));
        if (t >= 2) lo = _mm256_srli_epi32(lo, 4);
        __m256i top2 = _mm256_and_si256(move_bits(hi, 2 * t, 4), _mm256_set1_epi8(0x30));
        return _mm256_or_si256(_mm256_and_si256(lo, low4), top2);
    }
    }
}

/* the scale of each lane of group g */
QF_INLINE __m256 group_scale(int type, const unit_head *h, int g) {
    switch (type) {
    case QUANT_Q4_K:
    case QUANT_Q5_K: return _mm256_broadcast_ss(&h->sc_k[g]);
    case QUANT_Q6_K: { /* bytes 0-15 are sub-block 2g, bytes 16-31 sub-block 2g + 1 */
        int j = 2 * (g % 4);
        return _mm256_permutevar8x32_ps(h->mv[g / 4], _mm256_setr_epi32(j, j, j, j, j + 1, j + 1, j + 1, j + 1));
    }
    default: return h->sc;
    }
}

/* the largest integer bits a group's bytes may hold after unpacking */
QF_INLINE int q_mask(int type) {
    return type == QUANT_Q4_0 || type == QUANT_Q4_1 || type == QUANT_Q4_K ? 0x0f : 0xff;
}

/* the layout's groups and mins as constants, so each format's kernels unroll */
QF_INLINE int groups_of(int type) {
    switch (type) {
    case QUANT_Q8_0: return 1;
    case QUANT_Q4_0: case QUANT_Q4_1: case QUANT_Q5_0: case QUANT_Q5_1: return 2;
    default: return 8;
    }
}

QF_INLINE int mins_of(int type) { return type == QUANT_Q8_0 ? 0 : type == QUANT_Q6_K ? 2 : 1; }

QF_INLINE float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* A unit's min terms for MX activation rows: acc[i] += m_v ⊙ sx[i] for
 * each of its M min vectors, in order; sx[i] moves past them. The last
 * step of a unit in every decode kernel. */
QF_INLINE void add_min_terms(int M, int MX, const unit_head *h, const float **sx, __m256 *acc) {
#pragma GCC unroll 2
    for (int m = 0; m < M; m++)
#pragma GCC unroll 4
        for (int i = 0; i < MX; i++) {
            acc[i] = _mm256_fmadd_ps(h->mv[m], _mm256_loadu_ps(sx[i]), acc[i]);
            sx[i] += 8;
        }
}

#endif
