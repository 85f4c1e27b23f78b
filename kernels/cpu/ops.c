#include "kernels/cpu/ops.h"

const cpu_ops *cpu_ops_select(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return cpu_ops_fast();
    return cpu_ops_ref();
}
