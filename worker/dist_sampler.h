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
 *   top_p without top_k, or min_p: whole raw rows, gathered -> exactly the one-rank sampler
 *                                                       (a fallback: the kept set can be most of
 *                                                       the vocabulary)
 * Penalties are elementwise, so each rank applies them to its own slice.
 * Log-probabilities (of the raw logits) use each rank's (max, sum exp), and
 * the top alternatives each rank's best raw logits. With one rank (comm
 * NULL) it is worker/sampler.c on the whole row, so the result is the same
 * for every TP size (tests/cli/tp.sh checks). */
#ifndef FACET_WORKER_DIST_SAMPLER_H
#define FACET_WORKER_DIST_SAMPLER_H

#include <stdint.h>

#include "comm/comm.h"
#include "model/tensors.h"
#include "worker/sampler.h"

typedef struct sample_request {
    sampling_params params;
    uint64_t position;      /* where the new token goes: keys the noise */
    penalty_tokens seen;    /* tokens already in the sequence (for penalties) */
    int top_logprobs;       /* alternatives to report, 0..SAMPLER_MAX_TOP_LOGPROBS */
} sample_request;

typedef struct dist_sample_result {
    int32_t token;   /* -1 when the logits were not finite */
    float logprob;
    int n_top;
    int32_t top_ids[SAMPLER_MAX_TOP_LOGPROBS];
    float top_logprobs[SAMPLER_MAX_TOP_LOGPROBS];
} dist_sample_result;

/* raw: (m, V_r) logits of this rank's slice. reqs, out: (m).
 * full_logits: NULL, or (m, vocab) to receive whole raw rows (tests). */
bool dist_sample(comm *c, const tp_layout *tp, int vocab, const float *raw, int m, const sample_request *reqs,
                 dist_sample_result *out, float *full_logits, errbuf *err);

#endif
