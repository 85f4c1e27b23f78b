/* panel_matmul.h — the AVX2 matmul for bf16 weights in WEIGHT_PANELS
 * (kernels/cpu/panels.h), the avx2 table's for every bf16 matrix with an even
 * number of columns. */
#ifndef FACET_KERNELS_CPU_PANEL_MATMUL_H
#define FACET_KERNELS_CPU_PANEL_MATMUL_H

#include "common/threadpool.h"
#include "kernels/cpu/ops.h"

/* y (n, w.rows) = x (n, w.cols) · wᵀ, w bf16 in WEIGHT_PANELS */
void panel_matmul(threadpool *tp, float *y, const float *x, int n, const weight_matrix *w);

#endif
