/* philox.h — Philox4x32-10, a counter-based random generator.
 *
 * Sampling draws its randomness as a pure function of (seed, position,
 * vocab id): no generator state is carried between steps, so the same seed
 * gives the same tokens whatever the batch, the TP size, or a replay after a
 * failover (ARCHITECTURE.md, "Sampling is identical for every TP size"). */
#ifndef FACET_COMMON_PHILOX_H
#define FACET_COMMON_PHILOX_H

#include <stdint.h>

typedef struct philox_u32x4 {
    uint32_t v[4];
} philox_u32x4;

/* The raw block: key (2 words), counter (4 words) -> 4 random words. */
philox_u32x4 philox4x32_10(const uint32_t key[2], const uint32_t ctr[4]);

/* A uniform double in the open interval (0, 1), 53 bits, keyed by
 * (seed, position, index). `stream` separates independent uses. */
double philox_uniform(uint64_t seed, uint32_t stream, uint64_t position, uint32_t index);

#endif
