/* sampling.h — what a request asks of the sampler, as the coordinator keeps
 * it and every step carries it to the workers (proto/facet/v1/worker.proto):
 * the parameters, their range checks, and the tokens a sequence has seen
 * (for the presence, frequency and repetition penalties). The sampling
 * itself is worker/sampler.h and worker/dist_sampler.h. */
#ifndef FACET_PROTOCOL_SAMPLING_H
#define FACET_PROTOCOL_SAMPLING_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

#define SAMPLER_MAX_TOP_LOGPROBS 20 /* alternatives per token a request may ask for */

typedef struct sampling_params {
    float temperature;
    int top_k;
    float top_p;
    uint64_t seed;
    float min_p;              /* 0 = off */
    float presence_penalty;   /* 0 = off */
    float frequency_penalty;  /* 0 = off */
    float repetition_penalty; /* 0 or 1 = off */
} sampling_params;

sampling_params sampling_params_greedy(void);
/* Range checks, naming the offending field. */
bool sampling_params_check(const sampling_params *p, errbuf *err);
bool sampling_params_has_penalties(const sampling_params *p);

/* The tokens a sequence has seen: each once, with how often it is in the
 * output so far (0: only in the prompt). */
typedef struct penalty_tokens {
    const int32_t *ids;
    const int32_t *counts;
    int n;
} penalty_tokens;

/* A sequence's seen tokens, kept as it grows (ids in order of first sight). */
typedef struct seen_tokens {
    int32_t *ids, *counts;
    int n, cap;
    int32_t *slots; /* open addressing over ids: index + 1, 0 = empty */
    uint32_t mask;
} seen_tokens;

void seen_tokens_init(seen_tokens *s);
void seen_tokens_free(seen_tokens *s);
/* A token of the prompt (counted 0) or of the output (counted). */
void seen_tokens_add(seen_tokens *s, int32_t id, bool output);
penalty_tokens seen_tokens_view(const seen_tokens *s);

#endif
