/* sampler.h — choosing the next token from logits.
 *
 * temperature 0 is greedy (argmax, ties to the lowest id). Otherwise:
 * logits / temperature, keep the top_k best (0 = all), keep the shortest
 * best-first prefix holding top_p of the probability (1 = all), then draw by
 * Gumbel-max with noise keyed by (seed, position, id) — see
 * kernels/cpu/sample.h for why that makes results independent of batching
 * and TP size. `position` is the position the new token will occupy. */
#ifndef FACET_WORKER_SAMPLER_H
#define FACET_WORKER_SAMPLER_H

#include <stdint.h>

#include "common/error.h"
#include "kernels/cpu/sample.h"

typedef struct sampling_params {
    float temperature;
    int top_k;
    float top_p;
    uint64_t seed;
} sampling_params;

sampling_params sampling_params_greedy(void);
/* Range checks, naming the offending field. */
bool sampling_params_check(const sampling_params *p, errbuf *err);

typedef struct sampler {
    candidate *cand; /* (vocab) scratch */
    int vocab;
} sampler;

void sampler_init(sampler *s, int vocab);
void sampler_free(sampler *s);

/* logits: (vocab) covering the whole vocabulary (one rank). Returns -1 if a
 * logit is NaN or infinite (broken weights): there is nothing to sample. */
int32_t sampler_pick(sampler *s, const float *logits, const sampling_params *p, uint64_t position);

#endif
