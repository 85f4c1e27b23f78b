/* ops_common.h — scalar helpers shared by the reference and fast ops. */
#ifndef FACET_KERNELS_CPU_OPS_COMMON_H
#define FACET_KERNELS_CPU_OPS_COMMON_H

#include <math.h>

#include "common/numeric.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/panels.h"
#include "kernels/cpu/quant.h"

/* w[r][c] of a bf16 or f32 matrix, in either layout */
static inline float weight_at(const weight_matrix *w, int r, int c) {
    if (w->layout == WEIGHT_PANELS) return bf16_to_f32(((const bf16_t *)w->data)[panels_index(w->cols, r, c)]);
    size_t i = (size_t)r * w->cols + c;
    return w->dtype == DTYPE_BF16 ? bf16_to_f32(((const bf16_t *)w->data)[i]) : ((const float *)w->data)[i];
}

/* One embedding row, scaled: out (cols) = E[row] * scale, E plain or
 * quantized (a quantized row is dequantized exactly, then scaled). */
static inline void embed_row(const weight_matrix *e, int row, float scale, float *out) {
    if (dtype_is_quantized(e->dtype)) {
        const uint8_t *src = (const uint8_t *)e->data + (size_t)row * dtype_row_bytes(e->dtype, e->cols);
        quant_dequantize_row(dtype_ggml_type(e->dtype), src, out, e->cols);
        for (int c = 0; c < e->cols; c++) out[c] *= scale;
        return;
    }
    for (int c = 0; c < e->cols; c++) out[c] = weight_at(e, row, c) * scale;
}

/* gelu with the tanh approximation, as torch's gelu(approximate="tanh") */
static inline float gelu_tanh(float x) {
    const float k = 0.7978845608028654f; /* sqrt(2 / pi) */
    return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}

/* Float offset of (position p, kv head h) in a paged cache layer. */
static inline size_t kv_offset(const kv_layer_view *kv, const int32_t *block_table, int p, int h) {
    size_t block = (size_t)block_table[p / kv->block_size];
    size_t slot = (size_t)(p % kv->block_size);
    return ((block * kv->n_kv_heads + (size_t)h) * kv->block_size + slot) * kv->head_dim;
}

#endif
