/* numeric.h — scalar number formats used by checkpoints (bf16, f16) and
 * overflow-checked size arithmetic for parsers of untrusted files. */
#ifndef FACET_COMMON_NUMERIC_H
#define FACET_COMMON_NUMERIC_H

#include <stdbool.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

typedef uint16_t bf16_t; /* raw bfloat16 bits */
typedef uint16_t f16_t;  /* raw IEEE binary16 bits */

static inline float bf16_to_f32(bf16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Round to nearest even, as torch does; NaN stays a (quiet) NaN. */
static inline bf16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (bf16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (bf16_t)(u >> 16);
}

static inline float f16_to_f32(f16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while ((man & 0x400u) == 0);
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Round to nearest even; overflow -> inf; subnormals kept. */
static inline f16_t f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint32_t sign = (u >> 16) & 0x8000u, abs = u & 0x7fffffffu;
    if (abs > 0x7f800000u) return (f16_t)(sign | 0x7e00u);          /* NaN */
    if (abs >= 0x477ff000u) return (f16_t)(sign | 0x7c00u);         /* >= 65520: inf */
    if (abs < 0x38800000u) {                                         /* below 2^-14: subnormal */
        float a;
        memcpy(&a, &abs, sizeof a);
        return (f16_t)(sign | (uint32_t)lrintf(a * 16777216.0f));   /* units of 2^-24, ties even */
    }
    uint32_t r = abs - 0x38000000u;                                  /* rebias exponent 127 -> 15 */
    r += 0xfffu + ((r >> 13) & 1u);
    return (f16_t)(sign | (r >> 13));
}

/* a * b without overflow; false if it would overflow. */
static inline bool mul_u64(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}

static inline bool add_u64(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

#endif
