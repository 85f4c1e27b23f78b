/* quant.h — ggml/GGUF block-quantized weights on the CPU: the block
 * formats, a reference dequantizer, and matmuls that read the weights in
 * their quantized form (never a widened copy of the whole matrix).
 *
 * A quantized matrix W (rows, cols) is row-major, each row cols/elems
 * blocks of `bytes` bytes laid end to end, exactly as a GGUF tensor of
 * shape [cols, rows] (ggml's ne0 = cols) stores it. Types are ggml's ids:
 *
 *   type  id  elems bytes  one block
 *   F32    0     1     4   the float
 *   F16    1     1     2   IEEE binary16
 *   Q4_0   2    32    18   d f16, 16 bytes of nibbles; w = d·(q − 8)
 *   Q4_1   3    32    20   d, m f16, 16 bytes of nibbles; w = d·q + m
 *   Q5_0   6    32    22   d, 32 fifth bits, 16 bytes of nibbles; w = d·(q − 16)
 *   Q5_1   7    32    24   d, m, fifth bits, nibbles; w = d·q + m
 *   Q8_0   8    32    34   d, 32 int8; w = d·q
 *   Q4_K  12   256   144   d, dmin f16, 8 × (6-bit scale, 6-bit min), 128 bytes of nibbles;
 *                          w = d·sc_j·q − dmin·m_j per 32-element sub-block j
 *   Q5_K  13   256   176   as Q4_K plus 32 bytes of fifth bits
 *   Q6_K  14   256   210   128 bytes low nibbles, 64 bytes 2-bit highs, 16 int8 scales, d;
 *                          w = d·sc_j·(q − 32) per 16-element sub-block j
 *   BF16  30     1     2   bfloat16
 *
 * Every function refuses (returns false / -1 and writes nothing) an
 * unsupported type or a column count that is not a positive multiple of
 * the type's block elements: a row never ends inside a block. Nothing is
 * assumed about alignment (a Q4_0 block is 18 bytes; rows of W may start
 * at any byte) and rows need no padding.
 *
 * Accuracy contract:
 *   quant_dequantize_row is bit-exact with ggml's dequantize_row_* and
 *     gguf-py's numpy dequantize (f16 scales converted exactly, each
 *     product rounded separately, never fused).
 *   quant_matmul_ref defines the matmul: dequantize a row, then plain fp32
 *     dot products summed left to right.
 *   quant_matmul_fast agrees with it to fp32 rounding (tests/unit/test_quant.c:
 *     1e-5 relative × sqrt(cols / 256)); activations stay fp32 (see
 *     quant_fast.c for why they are not quantized to 8 bits as llama.cpp
 *     does). Each output is summed in an order fixed by its weight row and
 *     its activation row alone, so results are bitwise the same whatever n,
 *     the rest of the batch, or the thread count. */
#ifndef FACET_KERNELS_CPU_QUANT_H
#define FACET_KERNELS_CPU_QUANT_H

#include <stdbool.h>
#include <stdint.h>

#include "common/threadpool.h"

/* ggml's type ids (stable: they are what GGUF files store) */
enum {
    QUANT_F32 = 0,
    QUANT_F16 = 1,
    QUANT_Q4_0 = 2,
    QUANT_Q4_1 = 3,
    QUANT_Q5_0 = 6,
    QUANT_Q5_1 = 7,
    QUANT_Q8_0 = 8,
    QUANT_Q4_K = 12,
    QUANT_Q5_K = 13,
    QUANT_Q6_K = 14,
    QUANT_BF16 = 30,
};

/* true for the ids in the table above */
bool quant_type_supported(int type);

/* Elements and bytes of one block; false (outputs untouched) if unsupported. */
bool quant_type_block(int type, int *elems, int *bytes);

/* "Q4_K", "F16", ...; "unknown" for an unsupported id. */
const char *quant_type_name(int type);

/* Bytes of one row of `cols` elements; -1 if the type is unsupported or
 * cols is not a positive multiple of its block elements. */
int64_t quant_row_bytes(int type, int64_t cols);

/* dst (n) = the n elements of the blocks at src, as fp32. The plain
 * reference, bit-exact with ggml. false if the type is unsupported or n is
 * not a positive multiple of the block elements. */
bool quant_dequantize_row(int type, const void *src, float *dst, int64_t n);

/* Q4_0 and Q5_0 blocks rewritten as Q8_0 blocks: the same f16 scale, and
 * values q − 8 or q − 16 that an int8 holds, so the weights are exactly the
 * same (dequantizing either gives the same floats). A block grows from 18
 * or 22 bytes to 34, and a decode step no longer unpacks nibbles and fifth
 * bits, which on this CPU made Q4_0/Q5_0 rows compute-bound. dst: n / 32
 * Q8_0 blocks. false (dst untouched) for other types or a bad n. */
bool quant_widen_to_q8_0(int type, const void *src, void *dst, int64_t n);

/* y (n, rows) = x (n, cols) · Wᵀ, W (rows, cols) quantized row by row.
 * The definition of correct: single-threaded, each row dequantized, fp32
 * products summed in column order. false (y untouched) on a bad type or
 * cols. */
bool quant_matmul_ref(float *y, const float *x, int n, int type, const void *w, int rows, int cols);

/* The same product, fast: SIMD (AVX2 + FMA + F16C, chosen at run time) and
 * spread over tp (NULL: the calling thread alone; tasks are blocks of W
 * rows, so every thread is busy at any n). n ≤ 8 (decode) reads W once,
 * unpacking blocks in registers for 4 activation rows at a time; larger n
 * unpacks 24 W rows × 1024 columns at a time into a per-thread tile that 64
 * activation rows reuse. Without
 * AVX2 it is the reference's arithmetic, spread over the threads. F32, F16
 * and BF16 rows are widened a row at a time (not the fast path: ops.h's
 * matmul is). Allocates per call: min(n, 64) activation rows rearranged to
 * the blocks' order (4 bytes per column each) and, for n > 8, ~170 KB per
 * thread. Same refusals as quant_matmul_ref. */
bool quant_matmul_fast(threadpool *tp, float *y, const float *x, int n, int type, const void *w, int rows,
                       int cols);

/* "avx2" when quant_matmul_fast runs its SIMD kernels on this CPU,
 * "scalar" when it falls back to the reference's arithmetic. */
const char *quant_fast_isa(void);

/* ---- 8-bit activations (quant_int8.c) ---------------------------------------
 *
 * What llama.cpp does on every CPU, and facet only when asked
 * ($FACET_CPU_KERNELS=int8, kernels/cpu/ops.h): each activation row is
 * rounded to 8 bits per block of QUANT_ACT_BLOCK columns, and the weights'
 * small integers meet those bytes in integer dot products (vpmaddubsw on
 * AVX2, vpdpbusd with VNNI), four products per 32-bit lane, exact. That
 * changes the results by the rounding of the activations (parts in a
 * thousand of each), which is why the default kernels keep x in fp32.
 *
 * The definition (quant_matmul_int8_ref):
 *   x̂_c = d_b · a_c  for column c of block b, where
 *   d_b = max_{c in b} |x_c| / 127 and a_c = nearest(x_c · (127 / max|x|)) ∈ [−127, 127]
 *   (a block of zeros: d_b = 0, a = 0), and
 *   y = Σ_c w_c · x̂_c  with w the dequantized weights (quant_dequantize_row).
 * The min terms of the formats (w = s·q − m) multiply the same x̂ (Σ_c a_c
 * of the sub-block, times d_b), as llama.cpp's block sums do. F32, F16 and
 * BF16 weights keep fp32 activations (quant_matmul_ref / _fast). */
#define QUANT_ACT_BLOCK 32

/* q (cols) and d (cols / QUANT_ACT_BLOCK) of one activation row, as above;
 * cols a positive multiple of QUANT_ACT_BLOCK. The plain reference: the fast
 * kernels round the same x to the same bytes and scales, bit for bit. */
void quant_round_activations(const float *x, int cols, int8_t *q, float *d);

/* y (n, rows) = x̂ (n, cols) · Wᵀ as defined above, summed in double and
 * rounded once. Same refusals as quant_matmul_ref. */
bool quant_matmul_int8_ref(float *y, const float *x, int n, int type, const void *w, int rows, int cols);

/* The instruction that takes the integer dot products. */
typedef enum quant_int8_isa {
    QUANT_INT8_AVX2,          /* vpmaddubsw + vpmaddwd */
    QUANT_INT8_AVXVNNI,       /* vpdpbusd, VEX (Alder Lake, Sapphire Rapids, Zen 5) */
    QUANT_INT8_AVX512VNNI,    /* vpdpbusd, EVEX on ymm (AVX512_VNNI + AVX512VL: Ice Lake, Zen 4) */
    QUANT_INT8_VNNI_EMULATED, /* vpdpbusd emulated by SIMDe: the VNNI kernels' logic on any AVX2 CPU (slow) */
} quant_int8_isa;

/* "avx2", "avxvnni", "avx512vnni", "vnni-emulated" */
const char *quant_int8_isa_name(quant_int8_isa isa);
/* whether this CPU (and OS) runs it */
bool quant_int8_isa_runs(quant_int8_isa isa);
/* the fastest native one this CPU runs; AVX2 if none (check quant_int8_isa_runs: a CPU without AVX2 runs none) */
quant_int8_isa quant_int8_best_isa(void);

/* quant_matmul_int8_ref's product, fast: the blocks unpacked as
 * quant_matmul_fast does (quant_blocks.h), decode and prefill paths, spread
 * over tp. Results agree with the reference to fp32 rounding, are bitwise
 * the same whatever n, the rest of the batch or the thread count, and
 * bitwise the same for every isa (the integer sums are exact and the float
 * operations are the same ones in the same order). F32/F16/BF16 go to
 * quant_matmul_fast. false (y untouched) on a bad type or cols, or an isa
 * this CPU cannot run. */
bool quant_matmul_int8(threadpool *tp, quant_int8_isa isa, float *y, const float *x, int n, int type, const void *w,
                       int rows, int cols);

#endif
