#include "protocol/step.h"

#include <stdlib.h>

#include "common/alloc.h"

/* count entries, never NULL: protobuf-c packs from the pointer even for 0 */
#define ALLOC_ARRAY(msg, field, count) ((msg)->n_##field = (count), (msg)->field = xcalloc((count) + 1, sizeof *(msg)->field))

void step_request_alloc(Facet__V1__StepRequest *r, size_t n, size_t n_tokens, size_t n_blocks, size_t n_penalty) {
    facet__v1__step_request__init(r);
    ALLOC_ARRAY(r, seq_ids, n), ALLOC_ARRAY(r, start_pos, n), ALLOC_ARRAY(r, num_tokens, n);
    ALLOC_ARRAY(r, block_table_len, n), ALLOC_ARRAY(r, sample, n), ALLOC_ARRAY(r, temperature, n);
    ALLOC_ARRAY(r, top_k, n), ALLOC_ARRAY(r, top_p, n), ALLOC_ARRAY(r, seed, n), ALLOC_ARRAY(r, min_p, n);
    ALLOC_ARRAY(r, presence_penalty, n), ALLOC_ARRAY(r, frequency_penalty, n), ALLOC_ARRAY(r, repetition_penalty, n);
    ALLOC_ARRAY(r, top_logprobs, n), ALLOC_ARRAY(r, penalty_len, n);
    ALLOC_ARRAY(r, token_ids, n_tokens), ALLOC_ARRAY(r, block_ids, n_blocks);
    ALLOC_ARRAY(r, penalty_ids, n_penalty), ALLOC_ARRAY(r, penalty_counts, n_penalty);
}

void step_request_free(Facet__V1__StepRequest *r) {
    free(r->seq_ids), free(r->start_pos), free(r->num_tokens), free(r->block_table_len), free(r->sample);
    free(r->temperature), free(r->top_k), free(r->top_p), free(r->seed), free(r->token_ids), free(r->block_ids);
    free(r->min_p), free(r->presence_penalty), free(r->frequency_penalty), free(r->repetition_penalty);
    free(r->top_logprobs), free(r->penalty_len), free(r->penalty_ids), free(r->penalty_counts);
    facet__v1__step_request__init(r);
}

void step_request_set_sampling(Facet__V1__StepRequest *r, size_t i, const sampling_params *p) {
    r->temperature[i] = p->temperature, r->top_k[i] = p->top_k, r->top_p[i] = p->top_p, r->seed[i] = p->seed;
    r->min_p[i] = p->min_p, r->presence_penalty[i] = p->presence_penalty;
    r->frequency_penalty[i] = p->frequency_penalty, r->repetition_penalty[i] = p->repetition_penalty;
}

sampling_params step_request_sampling(const Facet__V1__StepRequest *r, size_t i) {
    sampling_params p = {r->temperature[i], r->top_k[i], r->top_p[i] > 0 ? r->top_p[i] : 1.0f, r->seed[i],
                         r->min_p[i], r->presence_penalty[i], r->frequency_penalty[i], r->repetition_penalty[i]};
    return p;
}

bool step_request_check(const Facet__V1__StepRequest *r, errbuf *err) {
    size_t n = r->n_seq_ids;
    if (r->n_start_pos != n || r->n_num_tokens != n || r->n_block_table_len != n || r->n_sample != n ||
        r->n_temperature != n || r->n_top_k != n || r->n_top_p != n || r->n_seed != n || r->n_min_p != n ||
        r->n_presence_penalty != n || r->n_frequency_penalty != n || r->n_repetition_penalty != n ||
        r->n_top_logprobs != n || r->n_penalty_len != n)
        return errbuf_set(err, "Step: per-sequence arrays differ in length");
    size_t tokens = 0, blocks = 0, seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (r->num_tokens[i] < 1 || r->block_table_len[i] < 0 || r->penalty_len[i] < 0)
            return errbuf_set(err, "Step: sequence %zu has %d tokens and %d blocks", i, r->num_tokens[i], r->block_table_len[i]);
        if (r->top_logprobs[i] < 0 || r->top_logprobs[i] > SAMPLER_MAX_TOP_LOGPROBS)
            return errbuf_set(err, "Step: sequence %zu asks for %d top logprobs (at most %d)", i, r->top_logprobs[i],
                              SAMPLER_MAX_TOP_LOGPROBS);
        tokens += (size_t)r->num_tokens[i];
        blocks += (size_t)r->block_table_len[i];
        seen += (size_t)r->penalty_len[i];
    }
    if (tokens != r->n_token_ids || blocks != r->n_block_ids)
        return errbuf_set(err, "Step: %zu token ids and %zu block ids, but the sequences need %zu and %zu", r->n_token_ids,
                          r->n_block_ids, tokens, blocks);
    if (seen != r->n_penalty_ids || seen != r->n_penalty_counts)
        return errbuf_set(err, "Step: penalty arrays hold %zu and %zu entries, but the sequences need %zu", r->n_penalty_ids,
                          r->n_penalty_counts, seen);
    return true;
}

void step_response_alloc(Facet__V1__StepResponse *r, size_t n_sampled, size_t n_top) {
    facet__v1__step_response__init(r);
    r->seq_ids = xcalloc(n_sampled + 1, sizeof *r->seq_ids);
    r->token_ids = xcalloc(n_sampled + 1, sizeof *r->token_ids);
    r->logprobs = xcalloc(n_sampled + 1, sizeof *r->logprobs);
    r->n_top = xcalloc(n_sampled + 1, sizeof *r->n_top);
    r->top_ids = xcalloc(n_top + 1, sizeof *r->top_ids);
    r->top_logprobs = xcalloc(n_top + 1, sizeof *r->top_logprobs);
}

void step_response_free(Facet__V1__StepResponse *r) {
    free(r->seq_ids), free(r->token_ids), free(r->logprobs), free(r->logits);
    free(r->n_top), free(r->top_ids), free(r->top_logprobs);
    facet__v1__step_response__init(r);
}
