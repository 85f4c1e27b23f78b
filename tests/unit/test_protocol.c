/* The step layout both sides of facet.v1.Worker/Step use (protocol/step.h):
 * a request built with step_request_alloc packs and unpacks to the same
 * arrays, sampling parameters survive the round trip, step_request_check
 * accepts what the coordinator builds and refuses each kind of mismatch a
 * forged or corrupt step could carry, naming it. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "protocol/step.h"

/* Two sequences: a 3-token prefill chunk (not sampled) and one decode token
 * (sampled, with 2 penalty entries). */
static void build(Facet__V1__StepRequest *r) {
    step_request_alloc(r, 2, 4, 3, 2);
    r->epoch = 7;
    r->seq_ids[0] = 11, r->seq_ids[1] = 12;
    r->start_pos[0] = 0, r->start_pos[1] = 20;
    r->num_tokens[0] = 3, r->num_tokens[1] = 1;
    r->block_table_len[0] = 1, r->block_table_len[1] = 2;
    r->sample[1] = 1;
    sampling_params p = {0.7f, 40, 0.9f, 1234567890123ull, 0.05f, 0.5f, -0.25f, 1.3f};
    step_request_set_sampling(r, 1, &p);
    r->top_logprobs[1] = 5;
    r->penalty_len[1] = 2;
    for (int i = 0; i < 4; i++) r->token_ids[i] = 100 + i;
    for (int i = 0; i < 3; i++) r->block_ids[i] = i;
    r->penalty_ids[0] = 5, r->penalty_ids[1] = 9;
    r->penalty_counts[0] = 0, r->penalty_counts[1] = 2;
}

static void check_round_trip(void) {
    Facet__V1__StepRequest r;
    build(&r);
    errbuf err;
    CHECK(step_request_check(&r, &err), "a well-formed step is refused: %s", err.msg);
    size_t n = facet__v1__step_request__get_packed_size(&r);
    uint8_t *buf = malloc(n);
    facet__v1__step_request__pack(&r, buf);
    Facet__V1__StepRequest *u = facet__v1__step_request__unpack(NULL, n, buf);
    CHECK(u != NULL, "the packed step does not unpack");
    if (u) {
        CHECK(step_request_check(u, &err), "the unpacked step is refused: %s", err.msg);
        CHECK(u->epoch == 7 && u->n_seq_ids == 2 && u->seq_ids[1] == 12, "ids and epoch");
        CHECK(u->n_token_ids == 4 && u->token_ids[3] == 103 && u->n_block_ids == 3 && u->block_ids[2] == 2, "arrays");
        sampling_params p = step_request_sampling(u, 1);
        CHECK(p.temperature == 0.7f && p.top_k == 40 && p.top_p == 0.9f && p.seed == 1234567890123ull && p.min_p == 0.05f &&
                  p.presence_penalty == 0.5f && p.frequency_penalty == -0.25f && p.repetition_penalty == 1.3f,
              "sampling parameters changed on the way: T=%g k=%d p=%g seed=%llu", p.temperature, p.top_k, p.top_p,
              (unsigned long long)p.seed);
        sampling_params q = step_request_sampling(u, 0);
        CHECK(q.top_p == 1.0f, "an unset top_p reads as 1 (off), got %g", q.top_p);
        facet__v1__step_request__free_unpacked(u, NULL);
    }
    free(buf);
    step_request_free(&r);
}

static void check_refusals(void) {
    Facet__V1__StepRequest r;
    errbuf err;
    build(&r);
    r.n_top_k = 1;
    CHECK_ERR(step_request_check(&r, &err), err, "per-sequence arrays differ");
    step_request_free(&r);
    build(&r);
    r.num_tokens[0] = 0;
    CHECK_ERR(step_request_check(&r, &err), err, "has 0 tokens");
    step_request_free(&r);
    build(&r);
    r.num_tokens[0] = 4; /* 5 tokens claimed, 4 sent */
    CHECK_ERR(step_request_check(&r, &err), err, "the sequences need 5");
    step_request_free(&r);
    build(&r);
    r.block_table_len[1] = 5;
    CHECK_ERR(step_request_check(&r, &err), err, "block ids");
    step_request_free(&r);
    build(&r);
    r.top_logprobs[1] = SAMPLER_MAX_TOP_LOGPROBS + 1;
    CHECK_ERR(step_request_check(&r, &err), err, "top logprobs");
    step_request_free(&r);
    build(&r);
    r.penalty_len[1] = 3;
    CHECK_ERR(step_request_check(&r, &err), err, "penalty arrays");
    step_request_free(&r);
    build(&r);
    r.penalty_len[0] = -1;
    CHECK_ERR(step_request_check(&r, &err), err, "sequence 0");
    step_request_free(&r);
}

static void check_response(void) {
    Facet__V1__StepResponse r;
    step_response_alloc(&r, 3, 7);
    CHECK(r.n_seq_ids == 0 && r.n_top_ids == 0 && r.seq_ids && r.top_ids, "arrays allocated, lengths for the caller to set");
    step_response_free(&r);
    CHECK(r.seq_ids == NULL && r.n_logits == 0, "free resets the message");
}

int main(void) {
    check_round_trip();
    check_refusals();
    check_response();
    return CHECK_RESULT();
}
