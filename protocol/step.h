/* step.h — the layout of a step (proto/facet/v1/worker.proto StepRequest and
 * StepResponse), written by the coordinator's scheduler and read by every
 * worker. A step is flat arrays: per sequence its id, first position, number
 * of new tokens, block-table length, whether to sample, and its sampling
 * parameters; then all new token ids, all block ids and all penalty
 * (id, count) pairs, each concatenated in sequence order. Rank 0 replies
 * with one token (and its log-probability and top alternatives) per sampled
 * sequence, in step order. Both sides use these functions, so the arrays
 * can never disagree about their lengths. */
#ifndef FACET_PROTOCOL_STEP_H
#define FACET_PROTOCOL_STEP_H

#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"
#include "facet/v1/worker.pb-c.h"
#include "protocol/sampling.h"

/* Allocates every array of r for n_seqs sequences, n_tokens new tokens,
 * n_blocks block ids and n_penalty penalty pairs (lengths set, contents
 * zero). step_request_free releases them (not r itself). */
void step_request_alloc(Facet__V1__StepRequest *r, size_t n_seqs, size_t n_tokens, size_t n_blocks, size_t n_penalty);
void step_request_free(Facet__V1__StepRequest *r);

/* Row i's sampling parameters, written and read the same way on both sides. */
void step_request_set_sampling(Facet__V1__StepRequest *r, size_t i, const sampling_params *p);
sampling_params step_request_sampling(const Facet__V1__StepRequest *r, size_t i);

/* Every per-sequence array has n_seq_ids entries, counts are in range, and
 * the concatenated arrays are exactly as long as the sequences say. A
 * worker runs nothing before this holds. */
bool step_request_check(const Facet__V1__StepRequest *r, errbuf *err);

/* Rank 0's reply: arrays for n_sampled sequences and n_top alternatives in
 * all (lengths set to 0, filled by the caller); step_response_free releases. */
void step_response_alloc(Facet__V1__StepResponse *r, size_t n_sampled, size_t n_top);
void step_response_free(Facet__V1__StepResponse *r);

#endif
