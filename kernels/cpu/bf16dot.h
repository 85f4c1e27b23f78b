/* bf16dot.h — the AVX512_BF16 matrix kernel (bf16dot.c): y (n, rows) =
 * x (n, cols) · wᵀ for bf16 weights w (rows, cols), each activation split
 * into two bf16 (bf16dot_split) multiplied separately. _native runs the CPU's vdpbf16ps and may be called
 * only where cpu_has_avx512bf16(); _emulated is the same source over SIMDe,
 * for checking it on any x86-64 CPU (the same numbers up to the hardware's
 * flushing of subnormals). tp may be NULL (the caller's thread). */
#ifndef FACET_KERNELS_CPU_BF16DOT_H
#define FACET_KERNELS_CPU_BF16DOT_H

#include <stdbool.h>

#include "common/numeric.h"
#include "common/threadpool.h"

/* x = hi + lo + (what 16 significant bits miss): hi = bf16(x), lo =
 * bf16(x - hi), both rounded to nearest even. hi + lo is exact in fp32. */
static inline void bf16dot_split(float x, bf16_t *hi, bf16_t *lo) {
    *hi = f32_to_bf16(x);
    *lo = f32_to_bf16(x - bf16_to_f32(*hi));
}

/* The activation the kernel multiplies by: hi + lo */
static inline float bf16dot_split_value(float x) {
    bf16_t hi, lo;
    bf16dot_split(x, &hi, &lo);
    return bf16_to_f32(hi) + bf16_to_f32(lo);
}

void bf16dot_matmul_native(threadpool *tp, float *y, const float *x, int n, const bf16_t *w, int rows, int cols);
void bf16dot_matmul_emulated(threadpool *tp, float *y, const float *x, int n, const bf16_t *w, int rows, int cols);

/* AVX-512 F and BW, AVX512_BF16, and an OS that saves the zmm state (XCR0) */
bool cpu_has_avx512bf16(void);

#endif
