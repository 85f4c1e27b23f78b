/* rng.h — splitmix64, the one small fast generator for what needs no
 * counter-based keying (sampling noise uses Philox: common/philox.h):
 * random weights, benchmark prompts and arrivals, test inputs, ids. */
#ifndef FACET_COMMON_RNG_H
#define FACET_COMMON_RNG_H

#include <stdint.h>

/* The next 64 random bits of the stream whose state is *s. */
static inline uint64_t splitmix64_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A double in [0, 1), 53 bits. */
static inline double splitmix64_unit(uint64_t *s) {
    return (double)(splitmix64_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

#endif
