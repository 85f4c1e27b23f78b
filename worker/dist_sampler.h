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
#include "protocol/sample_rows.h"
#include "model/tensors.h"
#include "worker/sampler.h"

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

/* When the rows' summaries were made elsewhere (a CUDA engine, on the
 * device): records holds m records of layout L (dist_sample_layout), made
 * as dist_summarize_row makes them. Needs no row in SAMPLE_FULL mode (their
 * raw rows are not here): dist_sample_summaries_ok says. With c NULL (one
 * rank) the decision is the one-rank sampler's. */
bool dist_sample_from_summaries(comm *c, const void *records, int m, row_layout L, const sample_request *reqs,
                                dist_sample_result *out, errbuf *err);
bool dist_sample_summaries_ok(const sample_request *reqs, int m);
/* The record layout of a step (the same on every rank): its rows' largest
 * top_k (of top-k rows; at most the slice) and top_logprobs. */
row_layout dist_sample_layout(const sample_request *reqs, int m, int slice);
/* The host's summary of one row (raw: V_r logits of the slice from
 * vocab_begin) into record (row_record_bytes(L) bytes); work: V_r floats,
 * scratch: V_r candidates. The reference of kernels/cuda/summarize.cu. */
void dist_summarize_row(const float *raw, int n, int vocab_begin, const sample_request *q, row_layout L, void *record,
                        float *work, candidate *scratch);

#endif
