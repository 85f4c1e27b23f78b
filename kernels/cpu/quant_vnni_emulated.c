/* quant_vnni_emulated.c — vpdpbusd (ymm) emulated by SIMDe, for the
 * "vnni-emulated" int8 kernels (quant_int8.c): the VNNI kernels' text run
 * on CPUs without VNNI, so the tests check it everywhere. Operands pass
 * through memory, which keeps SIMDe's vector types inside this file. */
#include <stdint.h>
#include <string.h>

#include <simde/x86/avx512/dpbusd.h>

void quant_dpbusd_emulated(int32_t out[8], const uint8_t u[32], const int8_t s[32]);

void quant_dpbusd_emulated(int32_t out[8], const uint8_t u[32], const int8_t s[32]) {
    simde__m256i a = simde_mm256_loadu_si256(u), b = simde_mm256_loadu_si256(s);
    simde__m256i r = simde_mm256_dpbusd_epi32(simde_mm256_setzero_si256(), a, b);
    simde_mm256_storeu_si256(out, r);
}
