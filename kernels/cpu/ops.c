#include "kernels/cpu/ops.h"

#include <cpuid.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/bf16dot.h"

bool cpu_has_avx2_fma(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

bool cpu_has_avx512bf16(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    bool f_bw = (b & (1u << 16)) && (b & (1u << 30)); /* AVX512F, AVX512BW */
    if (!f_bw || a < 1 || !__get_cpuid_count(7, 1, &a, &b, &c, &d) || !(a & (1u << 5))) return false; /* AVX512_BF16 */
    __get_cpuid(1, &a, &b, &c, &d);
    if (!(c & (1u << 27))) return false; /* OSXSAVE: xgetbv may be asked */
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 0xe6u) == 0xe6u; /* the OS saves the ymm, opmask and zmm state */
}

static const cpu_ops *cpu_ops_default(void) {
    if (!cpu_has_avx2_fma()) return cpu_ops_ref();
    return cpu_has_avx512bf16() ? cpu_ops_avx512bf16(false) : cpu_ops_fast();
}

/* $FACET_CPU_KERNELS's table, or NULL (with the reason on stderr) */
static const cpu_ops *cpu_ops_named(const char *name) {
    bool avx2 = cpu_has_avx2_fma();
    if (strcmp(name, "reference") == 0) return cpu_ops_ref();
    if (strcmp(name, "avx2") == 0 && avx2) return cpu_ops_fast();
    if (strcmp(name, "avx512bf16") == 0 && avx2 && cpu_has_avx512bf16()) return cpu_ops_avx512bf16(false);
    if (strcmp(name, "avx512bf16-emulated") == 0 && avx2) return cpu_ops_avx512bf16(true);
    bool known = strcmp(name, "avx2") == 0 || strcmp(name, "avx512bf16") == 0 || strcmp(name, "avx512bf16-emulated") == 0;
    fprintf(stderr, "facet: FACET_CPU_KERNELS=%s: %s; using %s\n", name,
            known ? "this CPU cannot run them" : "choose reference, avx2, avx512bf16 or avx512bf16-emulated",
            cpu_ops_default()->name);
    return NULL;
}

const cpu_ops *cpu_ops_select(void) {
    static _Atomic(const cpu_ops *) chosen;
    const cpu_ops *t = atomic_load(&chosen);
    if (t) return t;
    const char *env = getenv("FACET_CPU_KERNELS");
    t = env && *env ? cpu_ops_named(env) : NULL;
    if (!t) t = cpu_ops_default();
    atomic_store(&chosen, t);
    return t;
}
