/* The scheduler's decisions without a group of workers: a FORMED event
 * delivered by hand gives it a cache of blocks; then admission (first come,
 * first served, blocks for all known tokens), the plan of a step (decode
 * tokens before prompt chunks, the token budget, chunked prompts),
 * preemption of the newest sequence when blocks run out, the results of a
 * step applied (tokens, stop, length); a LOST event putting every request
 * back to be recomputed on the next group (tokens kept, cache dropped), new
 * requests waiting for a group, --max-replays and --failover-timeout ending
 * requests with a retriable reason, a smaller group failing what it cannot
 * hold; a LOST of another epoch changes nothing; the step deadlines learned
 * from past steps, per step size. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/clock.h"
#include "coordinator/accept.h"
#include "coordinator/batching.h"
#include "coordinator/scheduler_impl.h"
#include "coordinator/step_timing.h"
#include "rpc/rpc.h"

#define BLOCK 4

static served_model g_model;

static scheduler *new_scheduler(int blocks, int budget) {
    memset(&g_model, 0, sizeof g_model);
    g_model.cfg.max_position = 256;
    g_model.cfg.vocab_size = 1000;
    g_model.eos_id = 1;
    g_model.eot_id = -1;
    scheduler_options o = {.block_size = BLOCK, .max_batch_tokens = budget, .max_seqs = 8, .max_queue = 16,
                           .step_timeout_ms = 1000, .max_replays = 10, .failover_timeout_ms = 30000};
    scheduler *s = scheduler_create(&o, &g_model, metrics_create());
    group_event ev = {.kind = GROUP_FORMED, .epoch = 3, .kv_blocks = blocks};
    scheduler_on_group_event(s, &ev);
    return s;
}

static void free_scheduler(scheduler *s) {
    metrics *m = s->metrics;
    batching_fail_all(s, RPC_CANCELLED, "test over");
    scheduler_free(s);
    metrics_free(m);
}

static gen_stream *submit(scheduler *s, int prompt_len, int max_tokens) {
    int32_t prompt[128];
    for (int i = 0; i < prompt_len; i++) prompt[i] = 10 + i;
    gen_request r = {.prompt = prompt, .prompt_len = prompt_len, .sampling = sampling_params_greedy(),
                     .max_tokens = max_tokens};
    int code;
    errbuf err;
    gen_stream *g = scheduler_submit(s, &r, &code, &err);
    CHECK(g != NULL, "submit refused: %s", err.msg);
    return g;
}

static void check_admission_and_plan(void) {
    scheduler *s = new_scheduler(10, 8);
    gen_stream *a = submit(s, 6, 4);  /* 2 blocks */
    gen_stream *b = submit(s, 30, 4); /* 8 blocks: does not fit next to a with the reserve */
    gen_stream *c = submit(s, 2, 4);  /* would fit, but waits behind b (FCFS) */
    batching_admit(s);
    CHECK(s->n_running == 1 && s->running == a && s->n_waiting == 2, "admitted %d (want only the head that fits)",
          s->n_running);
    step_plan plan;
    batching_plan(s, &plan);
    CHECK(plan.n == 1 && plan.seq[0] == a && plan.chunk[0] == 6 && plan.sample[0], "a's whole prompt in one chunk");
    /* a has its first token: now it decodes */
    a->n_computed = 6;
    sequence_append(a, 500);
    batching_plan(s, &plan);
    CHECK(plan.n == 1 && plan.chunk[0] == 1, "one decode token");
    free_scheduler(s);
    (void)b, (void)c;
    gen_stream_release(a), gen_stream_release(b), gen_stream_release(c);
}

static void check_budget_and_order(void) {
    scheduler *s = new_scheduler(64, 8);
    gen_stream *a = submit(s, 5, 4), *b = submit(s, 20, 4);
    batching_admit(s);
    CHECK(s->n_running == 2, "both admitted");
    step_plan plan;
    batching_plan(s, &plan);
    CHECK(plan.n == 2 && plan.chunk[0] == 5 && plan.chunk[1] == 3 && plan.sample[0] && !plan.sample[1],
          "budget 8: a's 5 tokens, then a 3-token chunk of b not sampled (got n=%d)", plan.n);
    a->n_computed = 5, b->n_computed = 3;
    sequence_append(a, 7);
    batching_plan(s, &plan);
    CHECK(plan.n == 2 && plan.seq[0] == a && plan.chunk[0] == 1 && plan.seq[1] == b && plan.chunk[1] == 7,
          "a's decode token first, then 7 more of b's prompt");
    free_scheduler(s);
    gen_stream_release(a), gen_stream_release(b);
}

static void check_preemption(void) {
    scheduler *s = new_scheduler(5, 64); /* 20 positions */
    gen_stream *a = submit(s, 7, 8), *b = submit(s, 4, 8);
    batching_admit(s);
    CHECK(s->n_running == 2 && s->blocks.n_free == 2, "2 + 1 blocks taken, 2 free (got %d free)", s->blocks.n_free);
    /* both generated 5 tokens: a has 12 known (11 cached), b 9 (8 cached); each needs a 3rd block */
    for (int i = 0; i < 5; i++) sequence_append(a, 100 + i), sequence_append(b, 200 + i);
    a->n_computed = 11, b->n_computed = 8;
    a->n_generated = b->n_generated = 5;
    step_plan plan;
    batching_plan(s, &plan);
    CHECK(s->preemptions == 1 && s->n_running == 1 && s->running == a && s->waiting_head == b,
          "the newest (b) is preempted and waits again");
    CHECK(b->n_computed == 0 && b->n_blocks == 0 && b->n_tokens == 9, "b keeps its 9 tokens but no cache");
    CHECK(plan.n == 1 && plan.seq[0] == a && plan.chunk[0] == 1, "the step runs a's decode token alone");
    CHECK(a->n_blocks == 3 && s->blocks.n_free == 2, "a holds 3 blocks, b's 2 are free again (free %d)", s->blocks.n_free);
    free_scheduler(s);
    gen_stream_release(a), gen_stream_release(b);
}

static bool next_event(gen_stream *g, gen_event *ev) { return gen_stream_next(g, ev, 0); }

static void check_accept(void) {
    scheduler *s = new_scheduler(16, 64);
    gen_stream *a = submit(s, 3, 2), *b = submit(s, 3, 5);
    batching_admit(s);
    step_plan plan;
    batching_plan(s, &plan);
    uint64_t ids[2] = {a->id, b->id};
    int32_t toks[2] = {42, 1}; /* b samples <eos> */
    float lps[2] = {-0.5f, -1.0f};
    Facet__V1__StepResponse resp = FACET__V1__STEP_RESPONSE__INIT;
    resp.n_seq_ids = resp.n_token_ids = resp.n_logprobs = 2;
    resp.seq_ids = ids, resp.token_ids = toks, resp.logprobs = lps;
    accept_step_results(s, &plan, &resp);
    gen_event ev;
    CHECK(next_event(a, &ev) && ev.kind == GEN_EVENT_TOKEN && ev.token == 42 && ev.logprob == -0.5f, "a's token");
    CHECK(a->n_tokens == 4 && a->n_computed == 3 && !a->finished, "a appended, not finished");
    CHECK(next_event(b, &ev) && ev.kind == GEN_EVENT_DONE && strcmp(ev.finish, "stop") == 0, "b stops at <eos>");
    CHECK(b->finished && b->n_tokens == 3, "the stop token is not appended");
    /* a's second token reaches max_tokens = 2 */
    batching_drop_done(s);
    batching_plan(s, &plan);
    ids[0] = a->id, toks[0] = 43;
    resp.n_seq_ids = resp.n_token_ids = resp.n_logprobs = 1;
    accept_step_results(s, &plan, &resp);
    CHECK(next_event(a, &ev) && ev.kind == GEN_EVENT_TOKEN && ev.token == 43, "a's second token");
    CHECK(next_event(a, &ev) && ev.kind == GEN_EVENT_DONE && strcmp(ev.finish, "length") == 0, "then length");
    free_scheduler(s);
    gen_stream_release(a), gen_stream_release(b);
}

static void lose(scheduler *s, uint64_t epoch) {
    group_event lost = {.kind = GROUP_LOST, .epoch = epoch};
    snprintf(lost.reason, sizeof lost.reason, "a worker of the group was lost");
    scheduler_on_group_event(s, &lost);
}

static void form(scheduler *s, uint64_t epoch, int blocks) {
    group_event ev = {.kind = GROUP_FORMED, .epoch = epoch, .size = 2, .kv_blocks = blocks};
    scheduler_on_group_event(s, &ev);
}

static void check_group_lost(void) {
    scheduler *s = new_scheduler(16, 64);
    s->opt.max_replays = 2;
    s->opt.failover_timeout_ms = 30000;
    gen_stream *a = submit(s, 3, 10), *b = submit(s, 30, 4);
    batching_admit(s);
    step_plan plan;
    batching_plan(s, &plan);
    a->n_computed = 3, b->n_computed = 30;
    sequence_append(a, 77), sequence_append(b, 78); /* one token each, not yet in the cache */
    a->n_generated = b->n_generated = 1;
    group_event old = {.kind = GROUP_LOST, .epoch = 2};
    snprintf(old.reason, sizeof old.reason, "an older group");
    scheduler_on_group_event(s, &old);
    CHECK(s->serving && s->n_running == 2, "a LOST of another epoch changes nothing");

    lose(s, 3);
    gen_event ev;
    CHECK(!next_event(a, &ev) && !next_event(b, &ev), "no request fails when its group is lost");
    CHECK(!s->serving && s->n_running == 0 && s->n_waiting == 2 && s->waiting_head == a, "both wait, in arrival order");
    CHECK(a->n_computed == 0 && a->n_blocks == 0 && a->n_tokens == 4 && a->replays == 1 && a->wait_deadline > 0,
          "a keeps its prompt and its token, loses its cache, counts a replay, waits with a deadline");
    CHECK(s->failovers == 1 && s->replays == 2, "one failover, two replays (%llu, %llu)", (unsigned long long)s->failovers,
          (unsigned long long)s->replays);
    gen_stream *c = submit(s, 5, 4);
    CHECK(c != NULL && c->wait_deadline > 0 && s->n_waiting == 3, "a request arriving without a group waits for one");

    form(s, 4, 16);
    batching_admit(s);
    batching_plan(s, &plan);
    CHECK(s->serving && plan.n >= 1 && plan.seq[0] == a && plan.chunk[0] == 4 && plan.sample[0],
          "on the new group a is recomputed whole (prompt and its token) and samples its next token");
    CHECK(a->wait_deadline == 0, "no more deadline once served");

    lose(s, 4);
    form(s, 5, 16);
    batching_admit(s);
    lose(s, 5); /* a's third loss: past --max-replays 2 */
    CHECK(next_event(a, &ev) && ev.kind == GEN_EVENT_ERROR && ev.code == RPC_UNAVAILABLE && strstr(ev.message, "max-replays"),
          "past max_replays the request ends, retriably, saying why: %s", ev.message);

    double now = clock_now_s();
    batching_expire_waits(s, now + 29, "waiting for workers");
    CHECK(s->n_waiting >= 1, "before the failover timeout nothing expires");
    batching_expire_waits(s, now + 31, "waiting for workers: 1 of 2 ready to join");
    CHECK(next_event(c, &ev) && ev.kind == GEN_EVENT_ERROR && strstr(ev.message, "failover-timeout") && strstr(ev.message, "retry"),
          "after --failover-timeout a waiting request ends, retriably, saying why");
    CHECK(s->n_waiting == 0, "nothing waits any more");

    form(s, 6, 1); /* a smaller group whose cache cannot hold b */
    free_scheduler(s);
    gen_stream_release(a), gen_stream_release(b), gen_stream_release(c);
}

static void check_cannot_fit(void) {
    scheduler *s = new_scheduler(16, 64);
    gen_stream *a = submit(s, 30, 20); /* 13 blocks */
    batching_admit(s);
    lose(s, 3);
    form(s, 4, 8); /* a smaller group: 8 blocks */
    gen_event ev;
    CHECK(next_event(a, &ev) && ev.kind == GEN_EVENT_ERROR && ev.code == RPC_RESOURCE_EXHAUSTED,
          "a request the new group's cache can never hold ends, saying so");
    free_scheduler(s);
    gen_stream_release(a);
}

/* Deadlines by step size: decode steps of 16 tokens at 10 ms must not make a
 * 1 600-token prefill's deadline 1 s + 4 x 100 x 10 ms (the per-token rate of
 * decode), nor a 2 s prefill make the next decode step's 9 s. */
static void check_step_timing(void) {
    step_timing t = {0};
    CHECK(step_timing_deadline_ms(&t, 16, 1000, 60000) == 60000, "with no steps seen, the deadline is the cap");
    step_timing_note(&t, 16, 0.010);
    step_timing_note(&t, 16, 0.010);
    CHECK(step_timing_estimate(&t, 16) < 0, "fewer than 3 steps give no estimate");
    step_timing_note(&t, 1600, 0.200);
    CHECK_NEAR(step_timing_estimate(&t, 16), 0.010, 1e-12, "a size seen: its own average");
    CHECK_NEAR(step_timing_estimate(&t, 1700), 0.200, 1e-12, "1 700 tokens is in 1 600's bucket (1 024-2 047)");
    CHECK(step_timing_deadline_ms(&t, 16, 1000, 60000) == 1040, "a decode step: 4 x 10 ms + the floor");
    CHECK(step_timing_deadline_ms(&t, 1600, 1000, 60000) == 1800, "a prefill step: 4 x 200 ms + the floor");
    CHECK_NEAR(step_timing_estimate(&t, 64), 0.040, 1e-12,
               "a size not seen: the nearest smaller bucket (16-31) scaled by tokens (64 / 16)");
    CHECK_NEAR(step_timing_estimate(&t, 1), 0.010, 1e-12, "smaller than any seen: the nearest larger, as it is");
    step_timing_note(&t, 16, 0.020);
    CHECK_NEAR(step_timing_estimate(&t, 16), 0.012, 1e-12, "a moving average: 0.8 x 10 ms + 0.2 x 20 ms");
    CHECK(step_timing_deadline_ms(&t, 1 << 30, 1000, 60000) == 60000, "never more than the cap");
    int d = step_timing_deadline_ms(&t, 16, 1000, 60000);
    step_timing_missed(&t);
    CHECK(step_timing_deadline_ms(&t, 16, 1000, 60000) == 2 * d, "a missed deadline doubles the next");
    step_timing_missed(&t);
    CHECK(step_timing_deadline_ms(&t, 16, 1000, 60000) == 4 * d, "another doubles it again");
    for (int i = 0; i < 10; i++) step_timing_missed(&t);
    CHECK(step_timing_deadline_ms(&t, 16, 1000, 60000) == 60000, "up to the cap");
    CHECK(t.backoff == 64, "a factor of 64 at most");
    for (int i = 0; i < 6; i++) step_timing_note(&t, 16, 0.012);
    CHECK(t.backoff == 1, "each step that succeeds halves the factor: six bring 64 back to 1");
}

int main(void) {
    check_admission_and_plan();
    check_budget_and_order();
    check_preemption();
    check_accept();
    check_group_lost();
    check_cannot_fit();
    check_step_timing();
    return CHECK_RESULT();
}
