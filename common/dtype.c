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

dtype dtype_from_name(const char *name) {
    for (size_t i = 0; i < sizeof k_dtypes / sizeof k_dtypes[0]; i++)
        if (strcmp(k_dtypes[i].name, name) == 0) return k_dtypes[i].t;
    return 0;
}

const char *dtype_name(dtype t) {
    for (size_t i = 0; i < sizeof k_dtypes / sizeof k_dtypes[0]; i++)
        if (k_dtypes[i].t == t) return k_dtypes[i].name;
    return "?";
}

size_t dtype_size(dtype t) {
    for (size_t i = 0; i < sizeof k_dtypes / sizeof k_dtypes[0]; i++)
        if (k_dtypes[i].t == t) return k_dtypes[i].size;
    return 0;
}
