/* panels.h — WEIGHT_PANELS, the bf16 layout the AVX2 matmul reads
 * (kernels/cpu/panel_matmul.c).
 *
 * Rows go in groups of PANEL_ROWS = 16 (the last group padded with zero
 * rows). A group holds, for each pair of columns (2j, 2j + 1), one 64-byte
 * line: the 16 rows' two weights, row r's pair as one 32-bit word (column 2j
 * in its low half, 2j + 1 in its high half), rows 0-7 in the first 32 bytes
 * and 8-15 in the second:
 *
 *   group g, pair j, row r (0..15), column 2j + c (c = 0, 1) ->
 *   element ((g * cols / 2 + j) * 16 + r) * 2 + c
 *
 * Why: the matrix is one stream front to back, whatever the batch (a decode
 * step reads memory fastest as one stream per thread), and one 256-bit load
 * gives 8 rows x 2 columns, which a 16-bit shift left (column 2j) and an AND
 * with 0xffff0000 (column 2j + 1) turn into fp32 with no shuffle, ready to
 * multiply by a broadcast activation: an outer-product kernel, one output
 * per fp32 lane. Needs an even number of columns; other bf16 matrices keep
 * WEIGHT_ROWS. */
#ifndef FACET_KERNELS_CPU_PANELS_H
#define FACET_KERNELS_CPU_PANELS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/numeric.h"
#include "common/threadpool.h"
#include "kernels/cpu/ops.h"

#define PANEL_ROWS 16

static inline int panels_groups(int rows) { return (rows + PANEL_ROWS - 1) / PANEL_ROWS; }

/* The element holding w[r][c] */
static inline size_t panels_index(int cols, int r, int c) {
    size_t group = (size_t)(r / PANEL_ROWS), pair = (size_t)(c / 2);
    return ((group * (size_t)(cols / 2) + pair) * PANEL_ROWS + (size_t)(r % PANEL_ROWS)) * 2 + (size_t)(c % 2);
}

/* Whether a matrix of this dtype and shape can take the layout */
bool panels_fit(dtype dt, int cols);
/* Bytes of a (rows, cols) matrix in panels (rows rounded up to groups) */
size_t panels_bytes(int rows, int cols);
/* dst (panels_bytes) = src (rows, cols) row-major, padding rows zero; over
 * the pool's threads (tp NULL: this one) */
void panels_pack(threadpool *tp, bf16_t *dst, const bf16_t *src, int rows, int cols);

#endif
