/* sample_rows.h — what one rank says about one sampled row of its vocabulary
 * slice: the unit the ranks of a group exchange to sample over a vocabulary
 * split across them (worker/dist_sampler.c decides from every rank's).
 *
 * A summary is made from a row of logits where the logits are: on the host
 * (dist_sampler.c, summarize_row) or, for a CUDA engine, on the GPU
 * (kernels/cuda/summarize.cu), in the same layout, so only these few bytes
 * per row leave the device. What goes in depends on the row's mode:
 *
 *   greedy  best = argmax of the penalized logits (ties: the lower id)
 *   gumbel  best = argmax of (double)(penalized * (1/T)) + gumbel_noise(seed, position, id)
 *   top-k   best as greedy, plus the row's top_k candidates by penalized * (1/T)
 *           (ties: the lower id), best first: {id, penalized, raw}
 *   full    no summary: whole raw rows are gathered (min_p, top_p without top_k)
 *
 * and in every mode (max, sum exp(raw - max)) of the raw slice, for the
 * log-probabilities, and the row's top_logprobs best raw logits {id, raw, raw}.
 * Penalties (repetition, then presence and frequency) act elementwise on the
 * seen tokens inside the slice, exactly as worker/sampler.c applies them. */
#ifndef FACET_PROTOCOL_SAMPLE_ROWS_H
#define FACET_PROTOCOL_SAMPLE_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/sampling.h"

/* The most top-k candidates a summary made on the device holds (the CUDA
 * top-k kernel's limit); a row asking for more is summarized on the host. */
#define SAMPLE_ROWS_MAX_DEVICE_K 1024

typedef enum sample_mode { SAMPLE_GREEDY, SAMPLE_GUMBEL, SAMPLE_TOP_K, SAMPLE_FULL } sample_mode;

/* The mode a row's parameters call for. */
static inline sample_mode sample_mode_of(const sampling_params *p) {
    if (p->temperature == 0.0f) return SAMPLE_GREEDY;
    if (p->min_p > 0.0f) return SAMPLE_FULL;
    if (p->top_k > 0) return SAMPLE_TOP_K;
    if (p->top_p < 1.0f) return SAMPLE_FULL;
    return SAMPLE_GUMBEL;
}

/* What to sample for one row: parameters, the position of the new token
 * (the noise key), the seen tokens (penalties), top alternatives wanted. */
typedef struct sample_request {
    sampling_params params;
    uint64_t position;
    penalty_tokens seen;
    int top_logprobs; /* 0..SAMPLER_MAX_TOP_LOGPROBS */
} sample_request;

/* The head of a row's record; k + t cand_rec follow it. */
typedef struct row_summary {
    double best_value; /* greedy: the penalized logit; gumbel: scaled + noise (in double) */
    double sumexp;     /* sum of exp(raw - max) over the slice */
    float max;         /* the largest raw logit of the slice */
    float best_raw;    /* raw logit of the best token */
    int32_t best_id;   /* global vocabulary id */
    int32_t n_cand;    /* top-k candidates written (the first k slots) */
    int32_t n_top;     /* best raw logits written (the t slots after them) */
    int32_t pad;
} row_summary;

typedef struct cand_rec {
    int32_t id;  /* global vocabulary id */
    float logit; /* penalized, unscaled: what sampling orders by (after * 1/T) */
    float raw;   /* for the log-probability */
    int32_t pad;
} cand_rec;

/* Slots per record, the same for every row of a step: k candidate slots (the
 * largest top_k among its top-k rows, at most the slice) and t slots of top
 * raw logits (the largest top_logprobs). */
typedef struct row_layout {
    int k, t;
} row_layout;

static inline size_t row_record_bytes(row_layout L) {
    return sizeof(row_summary) + (size_t)(L.k + L.t) * sizeof(cand_rec);
}

#endif
