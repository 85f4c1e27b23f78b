/* sampler.h — choosing the next token from logits.
 *
 * In order (vLLM's order):
 *   1. penalties on the raw logits, for tokens the sequence has seen:
 *      repetition (prompt or output; l > 0 ? l / r : l * r),
 *      frequency (l -= f * count in the output), presence (l -= p if in it);
 *   2. temperature 0 is greedy (argmax, ties to the lowest id); otherwise
 *      logits / temperature;
 *   3. min_p: keep tokens with probability >= min_p * the top probability;
 *   4. top_k: keep the k best (0 = all);
 *   5. top_p: keep the shortest best-first prefix holding top_p (1 = all);
 *   6. draw by Gumbel-max with noise keyed by (seed, position, id) — see
 *      kernels/cpu/sample.h for why that makes results independent of
 *      batching and TP size. `position` is where the new token will go.
 * Log-probabilities are of the raw logits (before any of this). */
#ifndef FACET_WORKER_SAMPLER_H
#define FACET_WORKER_SAMPLER_H

#include <stdint.h>

#include "common/error.h"
#include "kernels/cpu/sample.h"
#include "protocol/sampling.h"

/* Applies the penalties to logits (n) holding ids [vocab_begin, +n). */
void sampler_apply_penalties(float *logits, int n, int vocab_begin, const sampling_params *p, const penalty_tokens *seen);

typedef struct sampler {
    candidate *cand; /* (vocab) scratch */
    int vocab;
} sampler;

void sampler_init(sampler *s, int vocab);
void sampler_free(sampler *s);

/* logits: (vocab), the whole vocabulary, penalties already applied. Returns
 * -1 if a logit is NaN or infinite (broken weights): nothing to sample. */
int32_t sampler_pick(sampler *s, const float *logits, const sampling_params *p, uint64_t position);

/* The n highest raw logits' ids, best first (ties: lower id); n <= 20. */
int sampler_top_ids(const float *logits, int vocab, int n, int32_t *ids);

#endif
