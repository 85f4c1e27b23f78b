/* dist_sampler.h — sampling when the vocabulary is split over TP ranks.
 *
 * Each rank holds logits for its vocab slice only. Per sampled row, every
 * rank contributes a small summary, all-gathered; every rank then makes the
 * same decision (rank 0 reports it):
 *   greedy           local (max, id)                 -> the global max, ties to the lowest id
 *   temperature only local Gumbel-max (value, id)    -> the global max (exact: the noise of a
 *                                                       token depends only on (seed, position, id))
 *   top_k            local top-k candidates           -> merged, then the same top-k / top-p /
 *                                                       Gumbel-max as one rank (exact: the global
 *                                                       top-k is inside the union of local top-ks)
 *   top_p, no top_k  full rows, gathered             -> exactly the one-rank sampler (a fallback:
 *                                                       the nucleus can be most of the vocabulary)
 * Logprobs (log-softmax of the raw logits) use each rank's (max, sum exp).
 * With one rank (comm NULL) it is worker/sampler.c on the whole row, so the
 * result is the same for every TP size (tests/cli/tp.sh checks). */
#ifndef FACET_WORKER_DIST_SAMPLER_H
#define FACET_WORKER_DIST_SAMPLER_H

#include <stdint.h>

#include "comm/comm.h"
#include "model/tensors.h"
#include "worker/sampler.h"

typedef struct dist_sample_result {
    int32_t token;   /* -1 when the logits were not finite */
    float logprob;
} dist_sample_result;

/* logits: (m, V_r) for this rank's slice. params, positions: (m). out: (m).
 * full_logits: NULL, or (m, vocab) to receive whole rows (tests). */
bool dist_sample(comm *c, const tp_layout *tp, int vocab, const float *logits, int m, const sampling_params *params,
                 const uint64_t *positions, dist_sample_result *out, float *full_logits, errbuf *err);

#endif
