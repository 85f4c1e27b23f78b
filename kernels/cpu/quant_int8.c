/* quant_int8.c — y = x̂ · Wᵀ with W in ggml blocks and x̂ the activations
 * rounded to 8 bits (quant.h defines x̂ and the product; quant_ref.c's
 * quant_matmul_int8_ref computes it plainly). Chosen by the "int8" op
 * tables (kernels/cpu/ops.h), never by default.
 *
 * The weights are unpacked exactly as quant_fast.c unpacks them
 * (quant_blocks.h: units, 32-weight groups, one register of small integers
 * per group, lane scales, min vectors); what changes is the other operand.
 * Each activation row is rounded once per call, in the groups' order: 32
 * signed bytes per group, the 8 lane scales d_b of the blocks its lanes
 * come from, and the min terms min_factor · d_b · Σa per min span. A group
 * then costs one integer dot product (dot4: vpmaddubsw + vpmaddwd on AVX2,
 * one vpdpbusd with VNNI), a conversion, a multiply (the weights' lane
 * scales by the activations') and an FMA per activation row, where
 * quant_fast.c's fp32 kernels take four FMAs and the widening of every
 * weight; the prefill tile holds a byte per weight instead of a float.
 *
 * The kernels (quant_int8_kernels.h) are one text compiled once per
 * instruction set (AVX2, AVX-VNNI, AVX512-VNNI), so that every set gives the
 * same bits, and once more with vpdpbusd emulated (quant_vnni_emulated.c,
 * SIMDe), so the tests check the VNNI kernels' logic on CPUs without VNNI. */
#include <cpuid.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/quant.h"
#include "kernels/cpu/quant_blocks.h"

#define QI_DECODE_MAX_N 8   /* above this, prefill (as quant_fast.c) */
#define QI_DECODE_MX 4      /* activation rows sharing one unpacked weight group in decode */
#define QI_PREFETCH 2048    /* decode reads W this many bytes ahead */
#define QI_TILE_ROWS 24     /* W rows per prefill task */
#define QI_TILE_COLS 2048   /* W columns unpacked at a time: 2 bytes each (a byte and a quarter scale), 24 rows → ~100 KB */
#define QI_TILE_XROWS 64    /* activation rows per pass */
#define QI_MX 3             /* prefill register tile: QI_MX activation rows × QI_NW weight rows */
#define QI_NW 2

/* One pass's activation rows, prepared (prepare_row). Row i's arrays start
 * i strides in; per unit u and group g: q[(u·G + g)·32 ..] its 32 bytes,
 * d[(u·G + g)·8 ..] its lane scales; sx[(u·M + m)·8 ..] the min vector m. */
typedef struct {
    const int8_t *q;
    const float *d, *sx;
    size_t q_stride, d_stride, sx_stride;
} qi_act;

typedef struct {
    float *y;           /* (n, rows) */
    qi_act act;
    int n;              /* activation rows in this pass */
    qmatrix m;          /* W */
    int rows_per_task;
    uint8_t *scratch;   /* prefill: per thread, scratch_bytes each */
    size_t scratch_bytes;
} qi_job;

typedef struct {
    int type;
    threadpool_fn decode, prefill;
} qi_tasks;

static int qi_chunk_units(const qlayout *L) {
    int c = QI_TILE_COLS / unit_elems(L);
    return c > 0 ? c : 1;
}

/* bytes of one unit in the prefill tile: 64 per group, 32 per min vector */
static size_t qi_tile_unit_bytes(const qlayout *L) { return (size_t)L->groups * 64 + (size_t)L->mins * 32; }

/* A group's integers as the dot products take them: unsigned bytes (the
 * 4-bit formats' garbage above the nibble cleared), or Q8_0's signed ones. */
QF_INLINE __m256i group_bytes(int type, __m256i raw) {
    return q_mask(type) == 0x0f ? _mm256_and_si256(raw, _mm256_set1_epi8(0x0f)) : raw;
}

/* ---- the kernels, once per instruction set -------------------------------- */

#define QI_NAME(f) f##_avx2
#define QI_TARGET __attribute__((target("avx2,fma,f16c")))
#define QI_DOT4_BODY r = _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#include "kernels/cpu/quant_int8_kernels.h"
#undef QI_NAME
#undef QI_TARGET
#undef QI_DOT4_BODY

#define QI_NAME(f) f##_avxvnni
#define QI_TARGET __attribute__((target("avx2,fma,f16c,avxvnni")))
#define QI_DOT4_BODY r = _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, s);
#include "kernels/cpu/quant_int8_kernels.h"
#undef QI_NAME
#undef QI_TARGET
#undef QI_DOT4_BODY

#define QI_NAME(f) f##_avx512vnni
#define QI_TARGET __attribute__((target("avx2,fma,f16c,avx512vnni,avx512vl")))
#define QI_DOT4_BODY r = _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#include "kernels/cpu/quant_int8_kernels.h"
#undef QI_NAME
#undef QI_TARGET
#undef QI_DOT4_BODY

/* SIMDe's vpdpbusd, through memory (quant_vnni_emulated.c) */
void quant_dpbusd_emulated(int32_t out[8], const uint8_t u[32], const int8_t s[32]);

#define QI_NAME(f) f##_emulated
#define QI_TARGET __attribute__((target("avx2,fma,f16c")))
#define QI_DOT4_BODY                                                                                 \
    {                                                                                                \
        uint8_t ub[32] __attribute__((aligned(32)));                                                 \
        int8_t sb[32] __attribute__((aligned(32)));                                                  \
        int32_t rb[8] __attribute__((aligned(32)));                                                  \
        _mm256_store_si256((__m256i *)ub, u);                                                        \
        _mm256_store_si256((__m256i *)sb, s);                                                        \
        quant_dpbusd_emulated(rb, ub, sb);                                                           \
        r = _mm256_load_si256((const __m256i *)rb);                                                  \
    }
#include "kernels/cpu/quant_int8_kernels.h"
#undef QI_NAME
#undef QI_TARGET
#undef QI_DOT4_BODY

/* ---- activations: rounded, then laid out in the groups' order ------------- */

/* quant_round_activations, 32 columns at a time: the same float operations
 * (max |x|, amax / 127, 127 / amax, x · inv, rounded to nearest even), so the
 * same bytes and scales. */
QF static void round_row(const float *x, int cols, int8_t *q, float *d) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7); /* undoes the packs' 128-bit lanes */
    for (int b = 0; b < cols / QUANT_ACT_BLOCK; b++, x += 32, q += 32) {
        __m256 v[4], m = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(x + 8 * k);
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[k]));
        }
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        float amax = _mm_cvtss_f32(h);
        d[b] = amax / 127.0f;
        __m256 inv = _mm256_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
        __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v[0], inv)), i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v[1], inv));
        __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v[2], inv)), i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v[3], inv));
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
        p = _mm256_max_epi8(_mm256_permutevar8x32_epi32(p, order), _mm256_set1_epi8(-127));
        _mm256_storeu_si256((__m256i *)q, p);
    }
}

/* Σ of a span of 16 or 32 rounded activations (exact) */
QF_INLINE int span_sum(const int8_t *q, int n) {
    __m128i v = _mm_loadu_si128((const __m128i *)q);
    __m128i s = _mm_add_epi16(_mm_cvtepi8_epi16(v), _mm_cvtepi8_epi16(_mm_srli_si128(v, 8))); /* 8 × s16 */
    if (n == 32) {
        v = _mm_loadu_si128((const __m128i *)(q + 16));
        s = _mm_add_epi16(s, _mm_add_epi16(_mm_cvtepi8_epi16(v), _mm_cvtepi8_epi16(_mm_srli_si128(v, 8))));
    }
    s = _mm_madd_epi16(s, _mm_set1_epi16(1)); /* 4 × s32 */
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* One activation row prepared for the kernels (qi_act's layout); qn, dn:
 * scratch for the row rounded in column order (units · unit elements bytes,
 * used by the paired formats only, and a scale per block). Depends on this
 * row alone. */
QF static void prepare_row(const qlayout *L, const float *x, int cols, int units, int8_t *q, float *d, float *sx,
                           int8_t *qn, float *dn) {
    const int ue = unit_elems(L);
    const bool in_order = L->blocks_per_unit == 1; /* group g of a unit is its block g: column order already */
    int8_t *qr = in_order ? q : qn;                /* the row rounded, in column order */
    round_row(x, cols, qr, dn);
    if (!in_order) {
        memset(qn + cols, 0, (size_t)(units * ue - cols)); /* a last unit of one paired block: zeros */
        for (int c = cols / QUANT_ACT_BLOCK; c < units * ue / QUANT_ACT_BLOCK; c++) dn[c] = 0.0f;
    }
    for (int u = 0; u < units; u++) {
        const int8_t *qu = qr + (size_t)u * ue;
        const float *du = dn + (size_t)u * ue / QUANT_ACT_BLOCK;
        if (in_order) {
            for (int g = 0; g < L->groups; g++) _mm256_store_ps(d + 8 * g, _mm256_set1_ps(du[g]));
            d += 8 * L->groups;
        } else {
            for (int g = 0; g < L->groups; g++, q += 32, d += 8)
                for (int k = 0; k < 8; k++) {
                    int e = group_row_elem(L, g, k);
                    memcpy(q + 4 * k, qu + e, 4);
                    d[k] = du[e / QUANT_ACT_BLOCK];
                }
        }
        if (L->mins == 0) continue;
        memset(sx, 0, (size_t)L->mins * 8 * sizeof *sx);
        for (int s = 0; s * L->min_span < ue; s++) {
            int e0 = s * L->min_span;
            sx[min_lane(L, s)] = L->min_factor * (du[e0 / QUANT_ACT_BLOCK] * (float)span_sum(qu + e0, L->min_span));
        }
        sx += L->mins * 8;
    }
}

typedef struct {
    const qlayout *L;
    const float *x;
    int cols, units;
    qi_act act;
    int8_t *qn;    /* per thread: units · unit elements bytes */
    float *dn;     /* per thread: a scale per block */
    size_t qn_len, dn_len;
} prepare_job;

static void prepare_task(void *p, int t, int thread) {
    const prepare_job *j = p;
    prepare_row(j->L, j->x + (size_t)t * j->cols, j->cols, j->units, (int8_t *)j->act.q + (size_t)t * j->act.q_stride,
                (float *)j->act.d + (size_t)t * j->act.d_stride, (float *)j->act.sx + (size_t)t * j->act.sx_stride,
                j->qn + (size_t)thread * j->qn_len, j->dn + (size_t)thread * j->dn_len);
}

/* ---- one call ------------------------------------------------------------- */

static const qi_tasks *tasks_of(quant_int8_isa isa, int type) {
    const qi_tasks *t = isa == QUANT_INT8_AVXVNNI      ? k_tasks_avxvnni
                        : isa == QUANT_INT8_AVX512VNNI ? k_tasks_avx512vnni
                        : isa == QUANT_INT8_VNNI_EMULATED ? k_tasks_emulated
                                                          : k_tasks_avx2;
    for (; t->type >= 0; t++)
        if (t->type == type) return t;
    return NULL;
}

static void block_matmul(threadpool *tp, const qi_tasks *ft, float *y, const float *x, int n, const qlayout *L,
                         const void *w, int rows, int cols) {
    qi_job j = {.m = qmatrix_of(L, w, rows, cols)};
    int units = j.m.units;
    bool decode = n <= QI_DECODE_MAX_N;
    int pass = decode ? n : QI_TILE_XROWS;

    /* the pass's prepared rows, and per-thread room to round a row in column order */
    size_t groups = (size_t)units * L->groups, elems = (size_t)units * unit_elems(L);
    qi_act act = {.q_stride = groups * 32, .d_stride = groups * 8, .sx_stride = (size_t)units * L->mins * 8};
    int8_t *qbuf = xaligned_alloc(64, (size_t)pass * act.q_stride);
    float *fbuf = xaligned_alloc(64, ((size_t)pass * (act.d_stride + act.sx_stride) + 8) * sizeof(float));
    act.q = qbuf, act.d = fbuf, act.sx = fbuf + (size_t)pass * act.d_stride;
    int threads = threadpool_size(tp);
    prepare_job pj = {L, NULL, cols, units, act, NULL, NULL, elems, elems / QUANT_ACT_BLOCK};
    pj.qn = xmalloc((size_t)threads * pj.qn_len);
    pj.dn = xmalloc((size_t)threads * pj.dn_len * sizeof(float));

    if (decode) {
        j.rows_per_task = quant_decode_rows_per_task(tp, rows);
    } else {
        j.scratch_bytes = (size_t)QI_TILE_ROWS * qi_chunk_units(L) * qi_tile_unit_bytes(L) /* the tile */
                          + (size_t)QI_TILE_XROWS * QI_TILE_ROWS * 8 * sizeof(float);    /* the accumulators */
        j.scratch = xaligned_alloc(64, (size_t)threads * j.scratch_bytes);
    }
    for (int i0 = 0; i0 < n; i0 += pass) {
        j.n = n - i0 < pass ? n - i0 : pass;
        j.y = y + (size_t)i0 * rows;
        pj.x = x + (size_t)i0 * cols;
        threadpool_run(j.n > 1 ? tp : NULL, j.n, prepare_task, &pj);
        j.act = act;
        if (decode)
            threadpool_run(tp, (rows + j.rows_per_task - 1) / j.rows_per_task, ft->decode, &j);
        else
            threadpool_run(tp, (rows + QI_TILE_ROWS - 1) / QI_TILE_ROWS, ft->prefill, &j);
    }
    free(j.scratch);
    free(pj.qn), free(pj.dn);
    free(qbuf), free(fbuf);
}

/* ---- which instruction sets this CPU runs --------------------------------- */

static bool ask_cpu(quant_int8_isa isa) {
    unsigned a, b, c, d;
    if (!quant_cpu_has_avx2()) return false;
    switch (isa) {
    case QUANT_INT8_AVX2:
    case QUANT_INT8_VNNI_EMULATED: return true;
    case QUANT_INT8_AVXVNNI: /* CPUID.(7,1):EAX bit 4 */
        return __get_cpuid_count(7, 0, &a, &b, &c, &d) && a >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d) &&
               (a & (1u << 4));
    case QUANT_INT8_AVX512VNNI: /* CPUID.(7,0): ECX bit 11 (VNNI), EBX bit 31 (VL), bit 16 (F) */
        return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (c & (1u << 11)) && (b & (1u << 31)) && (b & (1u << 16)) &&
               cpu_os_saves_avx512_state();
    }
    return false;
}

bool quant_int8_isa_runs(quant_int8_isa isa) {
    static atomic_int known[4] = {-1, -1, -1, -1}; /* asked once each: cpuid traps in a VM (quant_fast.c) */
    if ((unsigned)isa >= 4) return false;
    int v = atomic_load_explicit(&known[isa], memory_order_relaxed);
    if (v < 0) {
        v = ask_cpu(isa);
        atomic_store_explicit(&known[isa], v, memory_order_relaxed);
    }
    return v;
}

quant_int8_isa quant_int8_best_isa(void) {
    if (quant_int8_isa_runs(QUANT_INT8_AVX512VNNI)) return QUANT_INT8_AVX512VNNI;
    if (quant_int8_isa_runs(QUANT_INT8_AVXVNNI)) return QUANT_INT8_AVXVNNI;
    return QUANT_INT8_AVX2;
}

const char *quant_int8_isa_name(quant_int8_isa isa) {
    switch (isa) {
    case QUANT_INT8_AVX2: return "avx2";
    case QUANT_INT8_AVXVNNI: return "avxvnni";
    case QUANT_INT8_AVX512VNNI: return "avx512vnni";
    case QUANT_INT8_VNNI_EMULATED: return "vnni-emulated";
    }
    return "unknown";
}

bool quant_matmul_int8(threadpool *tp, quant_int8_isa isa, float *y, const float *x, int n, int type, const void *w,
                       int rows, int cols) {
    if (quant_row_bytes(type, cols) < 0 || n < 0 || rows < 0 || !quant_int8_isa_runs(isa)) return false;
    const qlayout *L = layout_of(type);
    if (!L) return quant_matmul_fast(tp, y, x, n, type, w, rows, cols); /* F32, F16, BF16 */
    if (n == 0 || rows == 0) return true;
    block_matmul(tp, tasks_of(isa, type), y, x, n, L, w, rows, cols);
    return true;
}
