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

bool cpu_os_saves_avx512_state(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return false; /* OSXSAVE: xgetbv may be asked */
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 0xe6u) == 0xe6u; /* the OS saves the ymm, opmask and zmm state */
}

bool cpu_has_avx512bf16(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    bool f_bw = (b & (1u << 16)) && (b & (1u << 30)); /* AVX512F, AVX512BW */
    if (!f_bw || a < 1 || !__get_cpuid_count(7, 1, &a, &b, &c, &d) || !(a & (1u << 5))) return false; /* AVX512_BF16 */
    return cpu_os_saves_avx512_state();
}

static const cpu_ops *cpu_ops_default(void) {
    if (!cpu_has_avx2_fma()) return cpu_ops_ref();
    return cpu_has_avx512bf16() ? cpu_ops_avx512bf16(false) : cpu_ops_fast();
}

/* $FACET_CPU_KERNELS's int8 table: "int8" (the best set here) or one by
 * name; NULL if the name is none of them, *runs false if this CPU cannot */
static const cpu_ops *cpu_ops_int8_named(const char *name, bool *runs) {
    const quant_int8_isa sets[] = {QUANT_INT8_AVX2, QUANT_INT8_AVXVNNI, QUANT_INT8_AVX512VNNI, QUANT_INT8_VNNI_EMULATED};
    const cpu_ops *t = strcmp(name, "int8") == 0 ? cpu_ops_int8(quant_int8_best_isa()) : NULL;
    for (size_t i = 0; !t && i < sizeof sets / sizeof sets[0]; i++)
        if (strcmp(name, cpu_ops_int8(sets[i])->name) == 0) t = cpu_ops_int8(sets[i]);
    *runs = t && cpu_has_avx2_fma() && quant_int8_isa_runs(t->int8_isa);
    return t;
}

/* $FACET_CPU_KERNELS's table, or NULL (with the reason on stderr) */
static const cpu_ops *cpu_ops_named(const char *name) {
    bool avx2 = cpu_has_avx2_fma(), int8_runs = false;
    if (strcmp(name, "reference") == 0) return cpu_ops_ref();
    if (strcmp(name, "avx2") == 0 && avx2) return cpu_ops_fast();
    if (strcmp(name, "avx512bf16") == 0 && avx2 && cpu_has_avx512bf16()) return cpu_ops_avx512bf16(false);
    if (strcmp(name, "avx512bf16-emulated") == 0 && avx2) return cpu_ops_avx512bf16(true);
    const cpu_ops *int8 = cpu_ops_int8_named(name, &int8_runs);
    if (int8 && int8_runs) return int8;
    bool known = int8 || strcmp(name, "avx2") == 0 || strcmp(name, "avx512bf16") == 0 ||
                 strcmp(name, "avx512bf16-emulated") == 0;
    fprintf(stderr, "facet: FACET_CPU_KERNELS=%s: %s; using %s\n", name,
            known ? "this CPU cannot run them"
                  : "choose reference, avx2, avx512bf16, avx512bf16-emulated, int8, int8-avx2, int8-avxvnni, "
                    "int8-avx512vnni or int8-vnni-emulated",
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
