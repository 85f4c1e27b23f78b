/* roofline.h — the two ceilings of the CPU, measured:
 *   memory read bandwidth: decode reads every weight once per step, so
 *     decode tokens/s <= bandwidth / weight bytes per token;
 *   fp32 FMA rate (or, for the AVX512_BF16 kernel, its bf16 dot-product
 *     rate): prefill does 2 FLOPs per weight per token, so
 *     prefill tokens/s <= FLOP rate / (2 * weights). */
#ifndef FACET_KERNELS_CPU_ROOFLINE_H
#define FACET_KERNELS_CPU_ROOFLINE_H

#include <stddef.h>

#include "common/threadpool.h"

/* Best of `reps` passes of reading a `bytes` buffer with all threads, in
 * GB/s (1e9 bytes per second). */
double cpu_read_bandwidth_gbs(threadpool *tp, size_t bytes, int reps);

/* fp32 GFLOP/s of register-only AVX2 FMAs on all threads (2 FLOPs each). */
double cpu_fma_gflops(threadpool *tp);
/* GFLOP/s of register-only vdpbf16ps on all threads (32 products, 64 FLOPs,
 * each), where the CPU has AVX512_BF16; 0 where it has not. The bf16dot
 * kernel takes two per block (hi and lo), so half of it is its ceiling. */
double cpu_bf16dot_gflops(threadpool *tp);

#endif
