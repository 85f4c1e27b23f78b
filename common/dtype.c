#include "common/dtype.h"

#include <string.h>

static const struct {
    dtype t;
    const char *name;
    size_t size;
} k_dtypes[] = {
    {DTYPE_F32, "F32", 4}, {DTYPE_F16, "F16", 2}, {DTYPE_BF16, "BF16", 2},
    {DTYPE_I32, "I32", 4}, {DTYPE_I64, "I64", 8},
};

/* ggml's ids and block sizes (ggml.h, ggml-common.h). */
static const struct {
    dtype t;
    const char *name;
    int ggml, elems, bytes;
} k_blocks[] = {
    {DTYPE_F32, "F32", 0, 1, 4},       {DTYPE_F16, "F16", 1, 1, 2},       {DTYPE_BF16, "BF16", 30, 1, 2},
    {DTYPE_Q4_0, "Q4_0", 2, 32, 18},   {DTYPE_Q4_1, "Q4_1", 3, 32, 20},   {DTYPE_Q5_0, "Q5_0", 6, 32, 22},
    {DTYPE_Q5_1, "Q5_1", 7, 32, 24},   {DTYPE_Q8_0, "Q8_0", 8, 32, 34},   {DTYPE_Q4_K, "Q4_K", 12, 256, 144},
    {DTYPE_Q5_K, "Q5_K", 13, 256, 176}, {DTYPE_Q6_K, "Q6_K", 14, 256, 210},
};
#define N_BLOCKS (sizeof k_blocks / sizeof k_blocks[0])

dtype dtype_from_ggml(int ggml_type) {
    for (size_t i = 0; i < N_BLOCKS; i++)
        if (k_blocks[i].ggml == ggml_type) return k_blocks[i].t;
    return 0;
}

int dtype_ggml_type(dtype t) {
    for (size_t i = 0; i < N_BLOCKS; i++)
        if (k_blocks[i].t == t) return k_blocks[i].ggml;
    return -1;
}

bool dtype_is_quantized(dtype t) { return dtype_block_elems(t) > 1; }

int dtype_block_elems(dtype t) {
    for (size_t i = 0; i < N_BLOCKS; i++)
        if (k_blocks[i].t == t) return k_blocks[i].elems;
    return 1;
}

int dtype_block_bytes(dtype t) {
    for (size_t i = 0; i < N_BLOCKS; i++)
        if (k_blocks[i].t == t) return k_blocks[i].bytes;
    return (int)dtype_size(t);
}

size_t dtype_row_bytes(dtype t, int64_t n) {
    int64_t e = dtype_block_elems(t);
    if (n < 0 || n % e != 0) return 0;
    return (size_t)(n / e) * (size_t)dtype_block_bytes(t);
}

dtype dtype_from_name(const char *name) {
    for (size_t i = 0; i < sizeof k_dtypes / sizeof k_dtypes[0]; i++)
        if (strcmp(k_dtypes[i].name, name) == 0) return k_dtypes[i].t;
    return 0;
}

const char *dtype_name(dtype t) {
    for (size_t i = 0; i < sizeof k_dtypes / sizeof k_dtypes[0]; i++)
        if (k_dtypes[i].t == t) return k_dtypes[i].name;
    for (size_t i = 0; i < N_BLOCKS; i++)
        if (k_blocks[i].t == t) return k_blocks[i].name;
    return "?";
}

size_t dtype_size(dtype t) {
    for (size_t i = 0; i < sizeof k_dtypes / sizeof k_dtypes[0]; i++)
        if (k_dtypes[i].t == t) return k_dtypes[i].size;
    return 0;
}
