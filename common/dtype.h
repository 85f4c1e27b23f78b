/* dtype.h — element types of checkpoint tensors. */
#ifndef FACET_COMMON_DTYPE_H
#define FACET_COMMON_DTYPE_H

#include <stddef.h>

typedef enum {
    DTYPE_F32 = 1,
    DTYPE_F16,
    DTYPE_BF16,
    DTYPE_I32,
    DTYPE_I64,
} dtype;

/* safetensors spelling ("F32", "BF16", ...) <-> enum; 0 if unknown. */
dtype dtype_from_name(const char *name);
const char *dtype_name(dtype t);
size_t dtype_size(dtype t);

#endif
