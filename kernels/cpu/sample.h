/* sample.h — the pieces of token sampling (reference CPU versions).
 *
 * Randomness is Gumbel noise keyed by (seed, position, vocab id): sampling
 * is argmax over candidates of logit/T + G(seed, position, id). Because the
 * noise of a token does not depend on which rank holds it or what else is
 * in the batch, the sample is the same for every TP size and batch. */
#ifndef FACET_KERNELS_CPU_SAMPLE_H
#define FACET_KERNELS_CPU_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct candidate {
    int32_t id;  /* global vocab id */
    float logit; /* temperature-scaled */
} candidate;

/* Logit soft-capping (Gemma 2 and later): x = cap * tanh(x / cap), in place. */
void softcap_f32(float *x, size_t n, float cap);

/* Index of the largest value in x (n); ties go to the lowest index; NaNs
 * are passed over (a NaN at 0 stays the answer, as the plain loop has it).
 * argmax_f32 takes AVX2 where the CPU has it and gives exactly the index of
 * argmax_f32_ref, the plain loop (tests/unit/test_sampling.c). A decode
 * step runs it over the whole vocabulary (256k) a few times per row. */
int argmax_f32(const float *x, int n);
int argmax_f32_ref(const float *x, int n);

/* Σ exp(x[i] − max) in double, for log-softmax normalizers over a
 * vocabulary; max ≥ every x[i]. sum_exp_f32_ref calls exp() per element;
 * sum_exp_f32 evaluates exp in float with a degree-6 polynomial, 8 lanes
 * at a time (AVX2), and sums in double: within 1e-6 relative of the
 * reference (the test's tolerance; terms under e^−87 count as 0). */
double sum_exp_f32(const float *x, int n, float max);
double sum_exp_f32_ref(const float *x, int n, float max);

/* Gumbel(0, 1) noise for (seed, position, id). */
double gumbel_noise(uint64_t seed, uint64_t position, int32_t id);

/* Orders candidates best first: larger logit, then lower id. */
int candidate_cmp(const void *a, const void *b);

/* Keeps the k best candidates (sorted best first). Returns the new count. */
int candidates_top_k(candidate *c, int n, int k);

/* Keeps the shortest best-first prefix whose softmax mass reaches top_p
 * (at least one). c must be sorted best first. Returns the new count. */
int candidates_top_p(candidate *c, int n, float top_p);

/* The candidate id maximising logit + gumbel_noise(seed, position, id). */
int32_t candidates_gumbel_pick(const candidate *c, int n, uint64_t seed, uint64_t position);

#endif
