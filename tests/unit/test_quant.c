/* ggml block-quantized weights (kernels/cpu/quant.h):
 *
 * (a) quant_dequantize_row against gguf-py, bit for bit, on the rows of
 *     tests/fixtures/quant (tests/reference/make_quant_fixtures.py);
 * (b) quant_matmul_fast against quant_matmul_ref on fresh random valid
 *     blocks, every type, several shapes, outputs poisoned with NaN first.
 *     Tolerance: 1e-5 relative, times sqrt(cols / 256) past 256 columns.
 *     Both are fp32 and neither rounds the activations; they differ only in
 *     rounding order — the reference rounds each dequantized weight and sums
 *     left to right, the fast kernels sum x·q per 32-weight group and apply
 *     each block's scale and min to the partial sums — and such differences
 *     grow like sqrt(cols) ulps (the rule of test_kernels). "Relative" is to
 *     the larger of max |y| and max ‖x_t‖·‖w_r‖/√cols, the typical size of a
 *     dot product of these rows: a 1 × 1 output that happens to cancel to
 *     near zero would otherwise make rounding of the terms look large (seen:
 *     2e-5 of such a |y|, 1.4e-7 of Σ|x·w|);
 * (c) bitwise batch invariance: row i of a batch of n (decode or prefill
 *     path, 3 threads) equals that activation row computed alone, n = 1, on
 *     the calling thread only;
 * (d) refusals: column counts that end inside a block, unknown types;
 * (e) the int8 kernels (8-bit activations, quant_matmul_int8) the same way
 *     as (b) and (c), against quant_matmul_int8_ref, for every instruction
 *     set this CPU runs: AVX2, VNNI emulated over SIMDe, and native VNNI
 *     where the CPU has it; every set's outputs bitwise equal to AVX2's.
 *     The same tolerance holds: the kernels round the activations to the
 *     same bytes and scales as the reference (were one byte a step off, the
 *     output would move by ~1/127 of a term, far outside it), and the
 *     integer sums are exact, so again only rounding order differs. Also how
 *     far the 8-bit product lies from the fp32 one (printed; bounded by 1 %).
 *
 *     test_quant FIXTURE_DIR          the checks
 *     test_quant --bench              decode GB/s and prefill GFLOP/s (not a test) */
#include <stdlib.h>

#include "check.h"
#include "random_data.h"
#include "common/clock.h"
#include "common/numeric.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/panels.h"
#include "kernels/cpu/quant.h"
#include "kernels/cpu/roofline.h"

#define TOL 1e-5

static const int k_types[] = {QUANT_F32,  QUANT_F16,  QUANT_BF16, QUANT_Q4_0, QUANT_Q4_1, QUANT_Q5_0,
                              QUANT_Q5_1, QUANT_Q8_0, QUANT_Q4_K, QUANT_Q5_K, QUANT_Q6_K};
#define N_TYPES (int)(sizeof k_types / sizeof k_types[0])


static void put_f16(uint8_t *p, float f) {
    f16_t h = f32_to_f16(f);
    memcpy(p, &h, sizeof h);
}

/* A (rows, cols) matrix of random valid blocks: random quant bytes, finite
 * f16 scales of varied size and sign (ggml's quantizers make d, dmin ≥ 0,
 * but nothing in the formats requires it), starting `offset` bytes past an
 * aligned address (free it with free_matrix). The tests use 1: a GGUF
 * tensor is aligned but its rows are not (a Q4_0 row is 18·k bytes). */
static uint8_t *random_matrix(int type, int rows, int cols, int offset) {
    int elems, bytes;
    quant_type_block(type, &elems, &bytes);
    size_t blocks = (size_t)rows * (cols / elems), size = blocks * bytes;
    uint8_t *w = (uint8_t *)malloc(size + 2) + offset;
    for (size_t i = 0; i < size; i++) w[i] = (uint8_t)rand32();
    for (size_t b = 0; b < blocks; b++) {
        uint8_t *p = w + b * bytes;
        float d = frand() * 0.05f, m = frand() * 0.05f;
        switch (type) {
        case QUANT_F32: {
            float f = frand();
            memcpy(p, &f, sizeof f);
            break;
        }
        case QUANT_F16: put_f16(p, frand()); break;
        case QUANT_BF16: {
            bf16_t h = f32_to_bf16(frand());
            memcpy(p, &h, sizeof h);
            break;
        }
        case QUANT_Q6_K: put_f16(p + 208, d); break;
        case QUANT_Q4_1: case QUANT_Q5_1: case QUANT_Q4_K: case QUANT_Q5_K:
            put_f16(p, d);
            put_f16(p + 2, type == QUANT_Q4_K || type == QUANT_Q5_K ? m * 0.2f : m);
            break;
        default: put_f16(p, d); break; /* Q4_0, Q5_0, Q8_0: d first */
        }
    }
    return w;
}

static void free_matrix(uint8_t *w, int offset) { free(w - offset); }

/* ---- (a) against gguf-py ---------------------------------------------------- */

/* the value of "key" in a one-line JSON object: a number or a string */
static bool json_field(const char *line, const char *key, char *out, size_t cap) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(line, pat);
    if (!p) return false;
    p += strlen(pat);
    bool quoted = *p == '"';
    if (quoted) p++;
    size_t n = 0;
    while (p[n] && (quoted ? p[n] != '"' : (p[n] != ',' && p[n] != '}')) && n + 1 < cap) n++;
    memcpy(out, p, n);
    out[n] = 0;
    return n > 0;
}

static void *read_file(const char *dir, const char *name, size_t *size) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(*size + 1);
    if (fread(buf, 1, *size, f) != *size) *size = 0;
    fclose(f);
    return buf;
}

/* One index line: the blocks dequantized row by row must be gguf-py's floats. */
static bool check_fixture_type(const char *dir, const char *line) {
    char name[32], type_s[16], rows_s[16], cols_s[16], elems_s[16], bytes_s[16], data[64], floats[64];
    if (!json_field(line, "type", name, sizeof name) || !json_field(line, "ggml_type", type_s, sizeof type_s) ||
        !json_field(line, "rows", rows_s, sizeof rows_s) || !json_field(line, "cols", cols_s, sizeof cols_s) ||
        !json_field(line, "block_elems", elems_s, sizeof elems_s) ||
        !json_field(line, "block_bytes", bytes_s, sizeof bytes_s) || !json_field(line, "data", data, sizeof data) ||
        !json_field(line, "floats", floats, sizeof floats)) {
        CHECK(false, "index.json: malformed line: %s", line);
        return false;
    }
    int type = atoi(type_s), rows = atoi(rows_s), cols = atoi(cols_s), elems = 0, bytes = 0;
    CHECK(quant_type_block(type, &elems, &bytes) && elems == atoi(elems_s) && bytes == atoi(bytes_s),
          "%s: block %d elements / %d bytes, gguf-py says %s / %s", name, elems, bytes, elems_s, bytes_s);
    CHECK(strcmp(quant_type_name(type), name) == 0, "type %d is named %s, gguf-py says %s", type,
          quant_type_name(type), name);
    size_t raw_size = 0, f_size = 0;
    uint8_t *raw = read_file(dir, data, &raw_size);
    float *want = read_file(dir, floats, &f_size);
    int64_t row_bytes = quant_row_bytes(type, cols);
    bool sized = raw && want && row_bytes > 0 && raw_size == (size_t)rows * (size_t)row_bytes &&
                 f_size == (size_t)rows * cols * sizeof(float);
    CHECK(sized, "%s: %s (%zu bytes) / %s (%zu bytes) missing or not %d rows of %d", name, data, raw_size, floats,
          f_size, rows, cols);
    if (sized) {
        float *got = nanv((size_t)cols);
        int bad = 0;
        for (int r = 0; r < rows; r++) {
            bool ok = quant_dequantize_row(type, raw + (size_t)r * row_bytes, got, cols);
            const float *w = want + (size_t)r * cols;
            for (int c = 0; c < cols; c++)
                if (!ok || memcmp(&got[c], &w[c], sizeof(float)) != 0) {
                    if (bad++ < 3)
                        fprintf(stderr, "%s row %d col %d: got %.9g, gguf-py %.9g\n", name, r, c, (double)got[c],
                                (double)w[c]);
                }
        }
        CHECK(bad == 0, "%s: %d of %d floats differ from gguf-py's", name, bad, rows * cols);
        printf("  %-5s %d rows × %d: bitwise equal to gguf-py: %s\n", name, rows, cols, bad ? "NO" : "yes");
        free(got);
    }
    free(raw), free(want);
    return true;
}

static void test_fixtures(const char *dir) {
    size_t size = 0;
    char *index = read_file(dir, "index.json", &size);
    CHECK(index != NULL, "cannot read %s/index.json", dir);
    if (!index) return;
    index[size] = 0;
    bool seen[64] = {false};
    for (char *line = strtok(index, "\n"); line; line = strtok(NULL, "\n")) {
        char type_s[16];
        if (!strstr(line, "\"ggml_type\"") || !json_field(line, "ggml_type", type_s, sizeof type_s)) continue;
        int t = atoi(type_s);
        if (t >= 0 && t < 64) seen[t] = true;
        check_fixture_type(dir, line);
    }
    for (int i = 0; i < N_TYPES; i++)
        if (k_types[i] != QUANT_F32) /* F32 is a copy: gguf-py has nothing to say about it */
            CHECK(seen[k_types[i]], "index.json has no %s rows", quant_type_name(k_types[i]));
    free(index);
}

/* ---- (b) fast against reference ------------------------------------------- */

/* a kernel under test: quant_matmul_fast (fp32 activations) or quant_matmul_int8 on one instruction set */
typedef struct {
    bool int8;
    quant_int8_isa isa;
} kernel;

static const char *kernel_name(kernel k) { return k.int8 ? quant_int8_isa_name(k.isa) : "fp32"; }

static bool run_fast(kernel k, threadpool *tp, float *y, const float *x, int n, int type, const void *w, int R, int C) {
    return k.int8 ? quant_matmul_int8(tp, k.isa, y, x, n, type, w, R, C) : quant_matmul_fast(tp, y, x, n, type, w, R, C);
}

static bool run_ref(kernel k, float *y, const float *x, int n, int type, const void *w, int R, int C) {
    return k.int8 ? quant_matmul_int8_ref(y, x, n, type, w, R, C) : quant_matmul_ref(y, x, n, type, w, R, C);
}

static double norm2(const float *v, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)v[i] * v[i];
    return sqrt(s);
}

/* max |a - b| over the larger of max |b| and max ‖x_t‖·‖w_r‖/√cols (see the top) */
static double rel_diff(const float *a, const float *b, int n, const float *x, int type, const uint8_t *w, int rows,
                       int cols) {
    double max_x = 0, max_w = 0, max_diff = 0, max_ref = 0;
    float *wr = malloc((size_t)cols * sizeof *wr);
    for (int t = 0; t < n; t++) max_x = fmax(max_x, norm2(x + (size_t)t * cols, cols));
    for (int r = 0; r < rows; r++) {
        quant_dequantize_row(type, w + (size_t)r * quant_row_bytes(type, cols), wr, cols);
        max_w = fmax(max_w, norm2(wr, cols));
    }
    free(wr);
    for (size_t i = 0; i < (size_t)n * rows; i++) {
        if (isnan(a[i]) || isnan(b[i])) return INFINITY;
        max_diff = fmax(max_diff, fabs((double)a[i] - b[i]));
        max_ref = fmax(max_ref, fabs((double)b[i]));
    }
    double scale = fmax(max_ref, max_x * max_w / sqrt(cols));
    return scale > 0 ? max_diff / scale : max_diff;
}

static void test_matmul(threadpool *tp, kernel k, int type) {
    const kernel avx2 = {true, QUANT_INT8_AVX2};
    bool vs_avx2 = k.int8 && k.isa != QUANT_INT8_AVX2;
    int elems, bytes;
    quant_type_block(type, &elems, &bytes);
    /* n ≤ 8 decode (4 activation rows at a time), above prefill (3 at a time); 24-row prefill
     * blocks end in 1-, 2- and 3-row tiles */
    const int ns[] = {1, 2, 5, 8, 9, 34, 64}, rows[] = {1, 8, 37, 131};
    int cols[5];
    if (elems == 256) memcpy(cols, (int[]){256, 512, 768, 1280, 2304}, sizeof cols);
    else if (elems == 32) memcpy(cols, (int[]){32, 64, 96, 288, 1056}, sizeof cols);
    else memcpy(cols, (int[]){1, 7, 64, 300, 1031}, sizeof cols);
    double worst = 0;
    int differ = 0;
    for (int b = 0; b < 4; b++)
        for (int c = 0; c < 5; c++) {
            int R = rows[b], C = cols[c];
            uint8_t *w = random_matrix(type, R, C, 1);
            float *x = randv((size_t)64 * C);
            for (int a = 0; a < 7; a++) {
                int n = ns[a];
                float *y0 = nanv((size_t)n * R), *y1 = nanv((size_t)n * R);
                bool ok0 = run_ref(k, y0, x, n, type, w, R, C);
                bool ok1 = run_fast(k, tp, y1, x, n, type, w, R, C);
                double tol = TOL * (C > 256 ? sqrt(C / 256.0) : 1.0);
                double d = rel_diff(y1, y0, n, x, type, w, R, C);
                if (d / tol > worst) worst = d / tol;
                CHECK(ok0 && ok1 && d <= tol, "matmul %s %s n=%d rows=%d cols=%d: rel diff %.3g (tol %.3g)",
                      kernel_name(k), quant_type_name(type), n, R, C, d, tol);
                if (vs_avx2) { /* the same float operations on the same exact integer sums */
                    run_fast(avx2, tp, y0, x, n, type, w, R, C);
                    differ += memcmp(y0, y1, (size_t)n * R * sizeof *y0) != 0;
                }
                free(y0), free(y1);
            }
            free_matrix(w, 1), free(x);
        }
    CHECK(differ == 0, "int8 %s %s: %d of 140 shapes differ from avx2's bits", kernel_name(k), quant_type_name(type),
          differ);
    printf("  %-5s %-13s fast vs ref: 140 shapes, worst diff %.2f of the tolerance%s\n", quant_type_name(type),
           kernel_name(k), worst, vs_avx2 ? ", bitwise avx2's" : "");
}

/* ---- (c) batch invariance ------------------------------------------------- */

static void test_batch_invariance(threadpool *tp, kernel k, int type) {
    int elems, bytes;
    quant_type_block(type, &elems, &bytes);
    const int C = elems == 1 ? 300 : elems == 32 ? 32 * 37 : 256 * 5, R = 53;
    const int ns[] = {2, 5, 8, 9, 33, 70}; /* decode, prefill, and 70 = two prefill passes (64 + 6) */
    uint8_t *w = random_matrix(type, R, C, 1);
    float *x = randv((size_t)70 * C), *alone = nanv((size_t)70 * R);
    for (int i = 0; i < 70; i++) run_fast(k, NULL, alone + (size_t)i * R, x + (size_t)i * C, 1, type, w, R, C);
    int bad = 0;
    for (int a = 0; a < 6; a++) {
        int n = ns[a];
        /* the batch starts at a different activation row each time */
        const float *xb = x + (size_t)(70 - n) * C;
        float *y = nanv((size_t)n * R);
        run_fast(k, tp, y, xb, n, type, w, R, C);
        if (memcmp(y, alone + (size_t)(70 - n) * R, (size_t)n * R * sizeof *y) != 0) {
            bad++;
            fprintf(stderr, "%s %s: a batch of %d differs from its rows alone\n", kernel_name(k), quant_type_name(type), n);
        }
        free(y);
    }
    CHECK(bad == 0, "%s %s: batching changed results in %d of 6 batch sizes", kernel_name(k), quant_type_name(type), bad);
    free_matrix(w, 1), free(x), free(alone);
}

/* ---- (d) refusals --------------------------------------------------------- */

/* Q4_0 and Q5_0 widened to Q8_0 (what the loader does on the CPU) hold
 * exactly the same weights: the same floats, bit for bit, from random blocks
 * of every nibble and fifth-bit pattern. Other types are refused. */
static void test_widen(void) {
    const int types[] = {QUANT_Q4_0, QUANT_Q5_0};
    const int cols = 32 * 40;
    for (int k = 0; k < 2; k++) {
        uint8_t *w = random_matrix(types[k], 3, cols, 0);
        uint8_t *q8 = malloc((size_t)3 * 40 * 34);
        float *a = malloc((size_t)cols * sizeof *a), *b = malloc((size_t)cols * sizeof *b);
        bool same = true;
        int64_t row = quant_row_bytes(types[k], cols);
        for (int r = 0; r < 3; r++) {
            CHECK(quant_widen_to_q8_0(types[k], w + r * row, q8 + (size_t)r * 40 * 34, cols), "widen %s",
                  quant_type_name(types[k]));
            quant_dequantize_row(types[k], w + r * row, a, cols);
            quant_dequantize_row(QUANT_Q8_0, q8 + (size_t)r * 40 * 34, b, cols);
            same = same && memcmp(a, b, (size_t)cols * sizeof *a) == 0;
        }
        CHECK(same, "%s widened to Q8_0 dequantizes to other floats", quant_type_name(types[k]));
        free(a), free(b), free(q8);
        free_matrix(w, 0);
    }
    uint8_t dummy[64] = {0};
    CHECK(!quant_widen_to_q8_0(QUANT_Q4_K, dummy, dummy, 256) && !quant_widen_to_q8_0(QUANT_Q4_0, dummy, dummy, 31),
          "widening refuses other types and partial blocks");
}

static void test_refusals(threadpool *tp) {
    for (int i = 0; i < N_TYPES; i++) {
        int type = k_types[i], elems, bytes;
        quant_type_block(type, &elems, &bytes);
        /* a row may not end inside a block; for one-element blocks only 0 and negatives are wrong */
        int bad_cols[4] = {0, -1, elems > 1 ? elems + 1 : -2, elems > 1 ? elems / 2 : -3};
        for (int b = 0; b < 4; b++) {
            int C = bad_cols[b];
            uint8_t blocks[2 * 256] = {0};
            float x[600] = {0}, y[4] = {1, 2, 3, 4}, out[600];
            bool refused = quant_row_bytes(type, C) == -1 && !quant_dequantize_row(type, blocks, out, C) &&
                           !quant_matmul_ref(y, x, 2, type, blocks, 2, C) &&
                           !quant_matmul_fast(tp, y, x, 2, type, blocks, 2, C) &&
                           !quant_matmul_int8_ref(y, x, 2, type, blocks, 2, C) &&
                           !quant_matmul_int8(tp, QUANT_INT8_AVX2, y, x, 2, type, blocks, 2, C);
            CHECK(refused && y[0] == 1 && y[3] == 4, "%s accepted %d columns (block %d)", quant_type_name(type), C,
                  elems);
        }
    }
    const int unknown[] = {-1, 4, 9, 10, 15, 31, 99};
    for (int i = 0; i < 7; i++) {
        int e = -7, b = -7;
        uint8_t blocks[64] = {0};
        float x[256] = {0}, y[2] = {5, 5}, out[256];
        bool refused = !quant_type_supported(unknown[i]) && !quant_type_block(unknown[i], &e, &b) && e == -7 &&
                       strcmp(quant_type_name(unknown[i]), "unknown") == 0 && quant_row_bytes(unknown[i], 256) == -1 &&
                       !quant_dequantize_row(unknown[i], blocks, out, 256) &&
                       !quant_matmul_ref(y, x, 1, unknown[i], blocks, 1, 256) &&
                       !quant_matmul_fast(tp, y, x, 1, unknown[i], blocks, 1, 256) &&
                       !quant_matmul_int8_ref(y, x, 1, unknown[i], blocks, 1, 256) &&
                       !quant_matmul_int8(tp, QUANT_INT8_AVX2, y, x, 1, unknown[i], blocks, 1, 256);
        CHECK(refused && y[0] == 5, "type %d was not refused", unknown[i]);
    }
    for (int i = 0; i < N_TYPES; i++)
        CHECK(quant_type_supported(k_types[i]), "%s unsupported", quant_type_name(k_types[i]));
    CHECK(quant_row_bytes(QUANT_Q4_K, 2048) == 8 * 144 && quant_row_bytes(QUANT_Q4_0, 64) == 36 &&
              quant_row_bytes(QUANT_Q6_K, 256) == 210 && quant_row_bytes(QUANT_BF16, 3) == 6,
          "row bytes");
}

/* An instruction set this CPU cannot run is refused, not run (it would
 * fault); the best one is one it runs. */
static void test_int8_isa_refusals(threadpool *tp) {
    const quant_int8_isa native[] = {QUANT_INT8_AVXVNNI, QUANT_INT8_AVX512VNNI};
    uint8_t blocks[34] = {0};
    float x[32] = {0}, y[1] = {5};
    for (int i = 0; i < 2; i++)
        if (!quant_int8_isa_runs(native[i]))
            CHECK(!quant_matmul_int8(tp, native[i], y, x, 1, QUANT_Q8_0, blocks, 1, 32) && y[0] == 5,
                  "%s ran on a CPU without it", quant_int8_isa_name(native[i]));
    CHECK(quant_int8_isa_runs(quant_int8_best_isa()), "the best int8 set, %s, does not run here",
          quant_int8_isa_name(quant_int8_best_isa()));
    CHECK(!quant_int8_isa_runs((quant_int8_isa)7), "an unknown int8 set runs");
}

/* How far 8-bit activations move the product from fp32's: the size of the
 * rounding this path accepts (quant.h), printed, and bounded by 1 % of the
 * typical output (rel_diff's scale) as a check on the definition itself. */
static void test_int8_vs_fp32(int type) {
    const int R = 37, C = 2304, n = 5;
    uint8_t *w = random_matrix(type, R, C, 0);
    float *x = randv((size_t)n * C), *y8 = nanv((size_t)n * R), *y32 = nanv((size_t)n * R);
    quant_matmul_int8_ref(y8, x, n, type, w, R, C);
    quant_matmul_ref(y32, x, n, type, w, R, C);
    double d = rel_diff(y8, y32, n, x, type, w, R, C);
    printf("  %-5s 8-bit activations against fp32: %.2g of the output scale\n", quant_type_name(type), d);
    CHECK(d < 0.01, "%s: 8-bit activations moved the product by %.3g", quant_type_name(type), d);
    free_matrix(w, 0), free(x), free(y8), free(y32);
}

/* ---- --bench -------------------------------------------------------------- */

/* Best seconds of a call over copies of the matrix, rotated so that every
 * call reads its weights from memory, not from the 32 MB L3. Best of many:
 * on a shared machine the best call is the one that had both cores. */
static double time_quant(threadpool *tp, kernel k, int type, uint8_t **copies, int n_copies, int rows, int cols, int n,
                         float *x, float *y, int reps) {
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = clock_now_s();
        run_fast(k, tp, y, x, n, type, copies[r % n_copies], rows, cols);
        double s = clock_now_s() - t0;
        if (s < best) best = s;
    }
    return best;
}

/* one shape, with fp32 activations (quant_matmul_fast) and 8-bit ones (quant_matmul_int8, the best set here) */
static void bench_shape(threadpool *tp, int type, int rows, int cols) {
    size_t bytes = (size_t)quant_row_bytes(type, cols) * rows;
    int n_copies = (int)((160u << 20) / bytes) + 1;
    uint8_t **copies = malloc((size_t)n_copies * sizeof *copies);
    for (int i = 0; i < n_copies; i++) copies[i] = random_matrix(type, rows, cols, 0);
    float *x = randv((size_t)64 * cols), *y = nanv((size_t)64 * rows);
    const kernel ks[2] = {{false, QUANT_INT8_AVX2}, {true, quant_int8_best_isa()}};
    for (int k = 0; k < 2; k++) {
        double t1 = time_quant(tp, ks[k], type, copies, n_copies, rows, cols, 1, x, y, 200);
        double t64 = time_quant(tp, ks[k], type, copies, n_copies, rows, cols, 64, x, y, 8);
        printf("%-5s %5d x %-5d %8.2f MB %-10s | n=1: %7.3f ms %6.1f GB/s | n=64: %8.2f ms %6.1f GFLOP/s\n",
               quant_type_name(type), rows, cols, bytes / 1e6, k ? quant_int8_isa_name(ks[k].isa) : "fp32",
               t1 * 1e3, bytes / t1 / 1e9, t64 * 1e3, 2.0 * 64 * rows * cols / t64 / 1e9);
    }
    for (int i = 0; i < n_copies; i++) free_matrix(copies[i], 0);
    free(copies), free(x), free(y);
}

/* the bf16 matmul of the selected table (panel_matmul.c for avx2) on the same shape, for comparison */
static void bench_bf16(threadpool *tp, int rows, int cols) {
    size_t bytes = (size_t)rows * cols * 2;
    int n_copies = (int)((160u << 20) / bytes) + 1;
    const cpu_ops *ops = cpu_ops_select();
    bf16_t **copies = malloc((size_t)n_copies * sizeof *copies);
    for (int i = 0; i < n_copies; i++) { /* in the layout the engine gives the table's matmul */
        copies[i] = (bf16_t *)random_matrix(QUANT_BF16, rows, cols, 0);
        if (ops->bf16_layout == WEIGHT_PANELS) {
            bf16_t *p = malloc(panels_bytes(rows, cols));
            panels_pack(NULL, p, copies[i], rows, cols);
            free(copies[i]);
            copies[i] = p;
        }
    }
    float *x = randv((size_t)64 * cols), *y = nanv((size_t)64 * rows);
    double best1 = 1e30, best64 = 1e30;
    for (int r = 0; r < 208; r++) {
        int n = r < 200 ? 1 : 64;
        weight_matrix w = {DTYPE_BF16, rows, cols, copies[r % n_copies], ops->bf16_layout};
        double t0 = clock_now_s();
        ops->matmul(tp, y, x, n, &w);
        double s = clock_now_s() - t0;
        if (n == 1 && s < best1) best1 = s;
        if (n == 64 && s < best64) best64 = s;
    }
    printf("bf16  %5d x %-5d %8.2f MB %-10s | n=1: %7.3f ms %6.1f GB/s | n=64: %8.2f ms %6.1f GFLOP/s (%s)\n", rows,
           cols, bytes / 1e6, "", best1 * 1e3, bytes / best1 / 1e9, best64 * 1e3, 2.0 * 64 * rows * cols / best64 / 1e9,
           ops->bf16_layout == WEIGHT_PANELS ? "panel_matmul.c" : ops->name);
    for (int i = 0; i < n_copies; i++) free(copies[i]);
    free(copies), free(x), free(y);
}

static int bench(void) {
    threadpool *tp = threadpool_create(0);
    printf("quant kernels: %s (fp32 activations), %s (int8), %d threads\n", quant_fast_isa(),
           quant_int8_isa_name(quant_int8_best_isa()), threadpool_size(tp));
    printf("memory read bandwidth: %.1f GB/s (best of 20 passes over 256 MiB)\n",
           cpu_read_bandwidth_gbs(tp, 256u << 20, 20));
    bench_shape(tp, QUANT_Q4_K, 2048, 16384);
    bench_shape(tp, QUANT_Q4_K, 16384, 2048);
    bench_shape(tp, QUANT_Q8_0, 2048, 2048);
    bench_shape(tp, QUANT_Q6_K, 2048, 16384);
    bench_shape(tp, QUANT_Q5_K, 2048, 16384);
    bench_shape(tp, QUANT_Q4_0, 2048, 16384);
    bench_shape(tp, QUANT_Q8_0, 2048, 640); /* the 270M's widened Q5_0 shapes */
    bench_shape(tp, QUANT_Q8_0, 640, 2048);
    bench_shape(tp, QUANT_Q5_0, 2048, 640); /* ... as the file holds them */
    bench_shape(tp, QUANT_Q5_0, 640, 2048);
    bench_bf16(tp, 2048, 16384);
    printf("memory read bandwidth: %.1f GB/s (again, after)\n", cpu_read_bandwidth_gbs(tp, 256u << 20, 20));
    threadpool_free(tp);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--bench") == 0) return bench();
    if (argc != 2) {
        fprintf(stderr, "usage: test_quant FIXTURE_DIR | --bench\n");
        return 2;
    }
    printf("quant kernels: %s\n", quant_fast_isa());
    CHECK(strcmp(quant_fast_isa(), "avx2") == 0,
          "this CPU has no AVX2/FMA/F16C: fast vs ref would compare the reference with itself");
    threadpool *tp = threadpool_create(3);
    test_fixtures(argv[1]);
    const kernel fp32 = {false, QUANT_INT8_AVX2};
    for (int i = 0; i < N_TYPES; i++) {
        test_matmul(tp, fp32, k_types[i]);
        test_batch_invariance(tp, fp32, k_types[i]);
    }
    /* (e) the int8 kernels: every set this CPU runs (AVX2 first: the others are compared with it) */
    const quant_int8_isa sets[] = {QUANT_INT8_AVX2, QUANT_INT8_VNNI_EMULATED, QUANT_INT8_AVXVNNI,
                                   QUANT_INT8_AVX512VNNI};
    for (int s = 0; s < 4; s++) {
        if (!quant_int8_isa_runs(sets[s])) {
            printf("int8 %s: not on this CPU (its text is checked as vnni-emulated)\n", quant_int8_isa_name(sets[s]));
            continue;
        }
        kernel k = {true, sets[s]};
        for (int i = 0; i < N_TYPES; i++) {
            test_matmul(tp, k, k_types[i]);
            test_batch_invariance(tp, k, k_types[i]);
        }
    }
    for (int i = 0; i < N_TYPES; i++)
        if (k_types[i] != QUANT_F32 && k_types[i] != QUANT_F16 && k_types[i] != QUANT_BF16) test_int8_vs_fp32(k_types[i]);
    test_int8_isa_refusals(tp);
    test_refusals(tp);
    test_widen();
    threadpool_free(tp);
    return CHECK_RESULT();
}
