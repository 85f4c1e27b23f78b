#include "kernels/cpu/ops.h"

bool cpu_has_avx2_fma(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

const cpu_ops *cpu_ops_select(void) { return cpu_has_avx2_fma() ? cpu_ops_fast() : cpu_ops_ref(); }
