/* quant_ref.c — the block formats as plain C: the type table, the
 * reference dequantizer (bit-exact with ggml's dequantize_row_* and
 * gguf-py), and the reference matmul. The definition of correct for
 * quant_fast.c (see quant.h).
 *
 * Built with -ffp-contract=off (CMakeLists.txt): ggml and numpy round
 * d·sc and then d·sc·q − m in separate steps, and a fused multiply-add
 * would round once and differ in the last bit. */
#include "kernels/cpu/quant.h"

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/numeric.h"

typedef struct {
    int type;
    const char *name;
    int elems, bytes; /* one block */
} quant_format;

static const quant_format k_formats[] = {
    {QUANT_F32, "F32", 1, 4},      {QUANT_F16, "F16", 1, 2},      {QUANT_BF16, "BF16", 1, 2},
    {QUANT_Q4_0, "Q4_0", 32, 18},  {QUANT_Q4_1, "Q4_1", 32, 20},  {QUANT_Q5_0, "Q5_0", 32, 22},
    {QUANT_Q5_1, "Q5_1", 32, 24},  {QUANT_Q8_0, "Q8_0", 32, 34},  {QUANT_Q4_K, "Q4_K", 256, 144},
    {QUANT_Q5_K, "Q5_K", 256, 176}, {QUANT_Q6_K, "Q6_K", 256, 210},
};

static const quant_format *format_of(int type) {
    for (size_t i = 0; i < sizeof k_formats / sizeof k_formats[0]; i++)
        if (k_formats[i].type == type) return &k_formats[i];
    return NULL;
}

bool quant_type_supported(int type) { return format_of(type) != NULL; }

bool quant_type_block(int type, int *elems, int *bytes) {
    const quant_format *f = format_of(type);
    if (!f) return false;
    *elems = f->elems;
    *bytes = f->bytes;
    return true;
}

const char *quant_type_name(int type) {
    const quant_format *f = format_of(type);
    return f ? f->name : "unknown";
}

int64_t quant_row_bytes(int type, int64_t cols) {
    const quant_format *f = format_of(type);
    if (!f || cols <= 0 || cols % f->elems != 0) return -1;
    return cols / f->elems * f->bytes;
}

/* ---- one block each, in ggml's order of operations ------------------------ */

static float f16_at(const uint8_t *p) {
    f16_t h;
    memcpy(&h, p, sizeof h);
    return f16_to_f32(h);
}

static uint32_t u32_at(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v; /* little-endian, as GGUF (x86 only: kernels/cpu is x86) */
}

/* Q4_0 (18 bytes): d, qs[16]; element j < 16 is qs[j]'s low nibble,
 * element j + 16 its high nibble. */
static void block_q4_0(const uint8_t *b, float *y) {
    float d = f16_at(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)((qs[j] & 0xF) - 8);
        y[j + 16] = d * (float)((qs[j] >> 4) - 8);
    }
}

/* Q4_1 (20 bytes): d, m, qs[16]; w = d·q + m */
static void block_q4_1(const uint8_t *b, float *y) {
    float d = f16_at(b), m = f16_at(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)(qs[j] & 0xF) + m;
        y[j + 16] = d * (float)(qs[j] >> 4) + m;
    }
}

/* The fifth bit of element j is bit j of the little-endian word qh. */
static int q5_at(const uint8_t *qs, uint32_t qh, int j) {
    int nib = j < 16 ? qs[j] & 0xF : qs[j - 16] >> 4;
    return nib | (int)((qh >> j) & 1u) << 4;
}

/* Q5_0 (22 bytes): d, qh[4], qs[16]; w = d·(q − 16) */
static void block_q5_0(const uint8_t *b, float *y) {
    float d = f16_at(b);
    uint32_t qh = u32_at(b + 2);
    for (int j = 0; j < 32; j++) y[j] = d * (float)(q5_at(b + 6, qh, j) - 16);
}

/* Q5_1 (24 bytes): d, m, qh[4], qs[16]; w = d·q + m */
static void block_q5_1(const uint8_t *b, float *y) {
    float d = f16_at(b), m = f16_at(b + 2);
    uint32_t qh = u32_at(b + 4);
    for (int j = 0; j < 32; j++) y[j] = d * (float)q5_at(b + 8, qh, j) + m;
}

bool quant_widen_to_q8_0(int type, const void *src, void *dst, int64_t n) {
    if ((type != QUANT_Q4_0 && type != QUANT_Q5_0) || n <= 0 || n % 32 != 0) return false;
    const uint8_t *b = src;
    uint8_t *o = dst;
    for (int64_t k = 0; k < n / 32; k++, o += 34) {
        memcpy(o, b, 2); /* the scale d, as it is */
        int8_t *q = (int8_t *)(o + 2);
        if (type == QUANT_Q4_0) {
            for (int j = 0; j < 16; j++) {
                q[j] = (int8_t)((b[2 + j] & 0xF) - 8);
                q[j + 16] = (int8_t)((b[2 + j] >> 4) - 8);
            }
            b += 18;
        } else {
            uint32_t qh = u32_at(b + 2);
            for (int j = 0; j < 32; j++) q[j] = (int8_t)(q5_at(b + 6, qh, j) - 16);
            b += 22;
        }
    }
    return true;
}

/* Q8_0 (34 bytes): d, qs[32] int8 */
static void block_q8_0(const uint8_t *b, float *y) {
    float d = f16_at(b);
    for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)b[2 + j] * d;
}

/* Q4_K and Q5_K scales: 12 bytes hold 8 six-bit scales and 8 six-bit mins.
 * Sub-blocks 0-3: scale = s[j] & 63, min = s[j + 4] & 63. Sub-blocks 4-7:
 * the low 4 bits in s[j + 4] (scale low nibble, min high nibble), the top
 * 2 bits in the top bits of s[j - 4] (scale) and s[j] (min). */
static void k_scale_min(const uint8_t *s, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xF) | (s[j - 4] >> 6) << 4;
        *m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}

/* Q4_K (144 bytes): d, dmin, scales[12], qs[128]. Each 32 bytes of qs hold
 * two sub-blocks: 2c in the low nibbles, 2c + 1 in the high nibbles. */
static void block_q4_k(const uint8_t *b, float *y) {
    float d = f16_at(b), dmin = f16_at(b + 2);
    const uint8_t *qs = b + 16;
    for (int j = 0; j < 8; j++) {
        int sc, m;
        k_scale_min(b + 4, j, &sc, &m);
        float d1 = d * (float)sc, m1 = dmin * (float)m;
        const uint8_t *q = qs + 32 * (j / 2);
        for (int l = 0; l < 32; l++) y[32 * j + l] = d1 * (float)((j & 1) ? q[l] >> 4 : q[l] & 0xF) - m1;
    }
}

/* Q5_K (176 bytes): d, dmin, scales[12], qh[32], qs[128]; element l of
 * sub-block j takes its fifth bit from bit j of qh[l]. */
static void block_q5_k(const uint8_t *b, float *y) {
    float d = f16_at(b), dmin = f16_at(b + 2);
    const uint8_t *qh = b + 16, *qs = b + 48;
    for (int j = 0; j < 8; j++) {
        int sc, m;
        k_scale_min(b + 4, j, &sc, &m);
        float d1 = d * (float)sc, m1 = dmin * (float)m;
        const uint8_t *q = qs + 32 * (j / 2);
        for (int l = 0; l < 32; l++) {
            int v = ((j & 1) ? q[l] >> 4 : q[l] & 0xF) | ((qh[l] >> j) & 1) << 4;
            y[32 * j + l] = d1 * (float)v - m1;
        }
    }
}

/* Q6_K (210 bytes): ql[128], qh[64], scales[16] int8, d. Two halves of 128
 * elements; in half h, element 32t + l (t = 0..3, l = 0..31) has its low
 * nibble in ql[64h + l + 32(t & 1)] (low nibble for t < 2, high for t ≥ 2)
 * and its top 2 bits at bit 2t of qh[32h + l]; sub-blocks are 16 elements. */
static void block_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = f16_at(b + 208);
    for (int e = 0; e < 256; e++) {
        int h = e / 128, t = (e % 128) / 32, l = e % 32;
        uint8_t lo = ql[64 * h + l + 32 * (t & 1)];
        int q = (t < 2 ? lo & 0xF : lo >> 4) | ((qh[32 * h + l] >> (2 * t)) & 3) << 4;
        y[e] = d * (float)sc[e / 16] * (float)(q - 32);
    }
}

bool quant_dequantize_row(int type, const void *src, float *dst, int64_t n) {
    const quant_format *f = format_of(type);
    if (!f || n <= 0 || n % f->elems != 0) return false;
    const uint8_t *p = src;
    int64_t blocks = n / f->elems;
    for (int64_t i = 0; i < blocks; i++, p += f->bytes, dst += f->elems) {
        switch (type) {
        case QUANT_F32: memcpy(dst, p, sizeof *dst); break;
        case QUANT_F16: *dst = f16_at(p); break;
        case QUANT_BF16: {
            bf16_t h;
            memcpy(&h, p, sizeof h);
            *dst = bf16_to_f32(h);
            break;
        }
        case QUANT_Q4_0: block_q4_0(p, dst); break;
        case QUANT_Q4_1: block_q4_1(p, dst); break;
        case QUANT_Q5_0: block_q5_0(p, dst); break;
        case QUANT_Q5_1: block_q5_1(p, dst); break;
        case QUANT_Q8_0: block_q8_0(p, dst); break;
        case QUANT_Q4_K: block_q4_k(p, dst); break;
        case QUANT_Q5_K: block_q5_k(p, dst); break;
        case QUANT_Q6_K: block_q6_k(p, dst); break;
        }
    }
    return true;
}

bool quant_matmul_ref(float *y, const float *x, int n, int type, const void *w, int rows, int cols) {
    int64_t row_bytes = quant_row_bytes(type, cols);
    if (row_bytes < 0 || n < 0 || rows < 0) return false;
    float *wr = xmalloc((size_t)cols * sizeof *wr); /* one dequantized row of W */
    for (int r = 0; r < rows; r++) {
        quant_dequantize_row(type, (const uint8_t *)w + (size_t)r * (size_t)row_bytes, wr, cols);
        for (int t = 0; t < n; t++) {
            const float *xt = x + (size_t)t * cols;
            float acc = 0.0f;
            for (int c = 0; c < cols; c++) acc += xt[c] * wr[c];
            y[(size_t)t * rows + r] = acc;
        }
    }
    free(wr);
    return true;
}

/* ---- 8-bit activations: the definition (quant.h) -------------------------- */

void quant_round_activations(const float *x, int cols, int8_t *q, float *d) {
    for (int b = 0; b < cols / QUANT_ACT_BLOCK; b++, x += QUANT_ACT_BLOCK, q += QUANT_ACT_BLOCK) {
        float amax = 0.0f;
        for (int c = 0; c < QUANT_ACT_BLOCK; c++) amax = fmaxf(amax, fabsf(x[c]));
        d[b] = amax / 127.0f;
        float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
        for (int c = 0; c < QUANT_ACT_BLOCK; c++) {
            float v = nearbyintf(x[c] * inv); /* to nearest, ties to even: what cvtps2dq does */
            q[c] = (int8_t)(v > 127.0f ? 127 : v < -127.0f ? -127 : v == v ? (int)v : -127);
        }
    }
}

bool quant_matmul_int8_ref(float *y, const float *x, int n, int type, const void *w, int rows, int cols) {
    if (type == QUANT_F32 || type == QUANT_F16 || type == QUANT_BF16) return quant_matmul_ref(y, x, n, type, w, rows, cols);
    int64_t row_bytes = quant_row_bytes(type, cols);
    if (row_bytes < 0 || n < 0 || rows < 0) return false;
    float *wr = xmalloc((size_t)cols * sizeof *wr);                  /* one dequantized row of W */
    int8_t *q = xmalloc((size_t)n * cols);                           /* (n, cols) rounded activations */
    float *d = xmalloc((size_t)n * (cols / QUANT_ACT_BLOCK) * sizeof *d); /* (n, cols / 32) their scales */
    for (int t = 0; t < n; t++)
        quant_round_activations(x + (size_t)t * cols, cols, q + (size_t)t * cols, d + (size_t)t * (cols / QUANT_ACT_BLOCK));
    for (int r = 0; r < rows; r++) {
        quant_dequantize_row(type, (const uint8_t *)w + (size_t)r * (size_t)row_bytes, wr, cols);
        for (int t = 0; t < n; t++) {
            const int8_t *qt = q + (size_t)t * cols;
            const float *dt = d + (size_t)t * (cols / QUANT_ACT_BLOCK);
            double acc = 0.0;
            for (int b = 0; b < cols / QUANT_ACT_BLOCK; b++) {
                double blk = 0.0;
                for (int c = b * QUANT_ACT_BLOCK; c < (b + 1) * QUANT_ACT_BLOCK; c++) blk += (double)wr[c] * qt[c];
                acc += (double)dt[b] * blk;
            }
            y[(size_t)t * rows + r] = (float)acc;
        }
    }
    free(wr), free(q), free(d);
    return true;
}
