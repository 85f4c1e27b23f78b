/* random_data.h — seeded test data for the kernel tests: a 64-bit LCG
 * (Knuth's MMIX constants), uniform floats, and buffers poisoned with NaN
 * so that an output a kernel forgot to write cannot pass as a result. */
#ifndef FACET_TESTS_RANDOM_DATA_H
#define FACET_TESTS_RANDOM_DATA_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

static uint64_t g_rng = 42;

static inline uint32_t rand32(void) {
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(g_rng >> 32);
}

/* uniform in [-1, 1), 24 random bits */
static inline float frand(void) { return (float)(rand32() >> 8) / 8388608.0f - 1.0f; }

/* n random floats (4 spare bytes: kernels may read a float past the end) */
static inline float *randv(size_t n) {
    float *v = malloc(n * sizeof *v + 4);
    for (size_t i = 0; i < n; i++) v[i] = frand();
    return v;
}

/* n NaNs */
static inline float *nanv(size_t n) {
    float *v = malloc(n * sizeof *v + 4);
    for (size_t i = 0; i < n; i++) v[i] = NAN;
    return v;
}

#endif
