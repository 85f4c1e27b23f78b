/* dtype.h — element types of checkpoint tensors: plain numbers
 * (safetensors) and ggml's quantized blocks (GGUF). A quantized row of n
 * elements is n / block_elems blocks of block_bytes each; the layouts are
 * kernels/cpu/quant.h's business. */
#ifndef FACET_COMMON_DTYPE_H
#define FACET_COMMON_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    DTYPE_F32 = 1,
    DTYPE_F16,
    DTYPE_BF16,
    DTYPE_I32,
    DTYPE_I64,
    /* ggml block formats (GGUF only) */
    DTYPE_Q4_0,
    DTYPE_Q4_1,
    DTYPE_Q5_0,
    DTYPE_Q5_1,
    DTYPE_Q8_0,
    DTYPE_Q4_K,
    DTYPE_Q5_K,
    DTYPE_Q6_K,
} dtype;

/* safetensors spelling ("F32", "BF16", ...) <-> enum; 0 if unknown (the
 * quantized types have names, "Q4_K", ..., but are no safetensors dtype). */
dtype dtype_from_name(const char *name);
const char *dtype_name(dtype t);
/* Bytes of one element; 0 for quantized types (see dtype_row_bytes). */
size_t dtype_size(dtype t);

/* ggml's type id <-> enum (F32, F16, BF16 and the block formats above); 0 / -1 if none. */
dtype dtype_from_ggml(int ggml_type);
int dtype_ggml_type(dtype t);
bool dtype_is_quantized(dtype t);
/* Elements and bytes per block (1 and the element size for plain types). */
int dtype_block_elems(dtype t);
int dtype_block_bytes(dtype t);
/* Bytes of a row of n elements (n a multiple of the block), 0 when it is not. */
size_t dtype_row_bytes(dtype t, int64_t n);

#endif
