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
 * from past steps, per step size; the prefill budget while others decode. */
#include <math.h>
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

static int g_max_prefill;    /* --max-prefill-tokens of the next new_scheduler (0: no cap, -1: auto) */
static bool g_prefix_caching; /* and whether it caches prefixes */

static scheduler *new_scheduler(int blocks, int budget) {
    memset(&g_model, 0, sizeof g_model);
    g_model.cfg.max_position = 256;
    g_model.cfg.vocab_size = 1000;
    g_model.eos_id = 1;
    g_model.eot_id = -1;
    scheduler_options o = {.block_size = BLOCK, .max_batch_tokens = budget, .max_seqs = 8,
                           .max_prefill_tokens = g_max_prefill, .prefix_caching = g_prefix_caching, .max_queue = 16,
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

static int g_prompt_base = 10; /* submit's prompts are g_prompt_base, +1, +2, ... */

static gen_stream *submit(scheduler *s, int prompt_len, int max_tokens) {
    int32_t prompt[128];
    for (int i = 0; i < prompt_len; i++) prompt[i] = g_prompt_base + i;
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

/* The prefill budget: while a sequence decodes, new prompts share at most
 * max_prefill_tokens per step (fixed, or auto from the line through the
 * step times), recomputations are not capped, and with nothing decoding a
 * prompt takes the whole step. */
static void check_prefill_budget(void) {
    g_max_prefill = 2;
    scheduler *s = new_scheduler(64, 16);
    gen_stream *a = submit(s, 5, 8), *b = submit(s, 20, 4), *c = submit(s, 3, 4);
    batching_admit(s);
    step_plan plan;
    batching_plan(s, &plan);
    CHECK(plan.n == 2 && plan.chunk[0] == 5 && plan.chunk[1] == 11,
          "nothing decodes yet: prompts fill the step's 16 tokens (got n=%d)", plan.n);
    a->n_computed = 5, b->n_computed = 11;
    sequence_append(a, 7);
    batching_plan(s, &plan);
    CHECK(plan.n == 2 && plan.seq[0] == a && plan.chunk[0] == 1 && plan.seq[1] == b && plan.chunk[1] == 2,
          "a decodes: b's prompt advances by 2 tokens and c waits (got n=%d, chunk %d)", plan.n,
          plan.n > 1 ? plan.chunk[1] : -1);
    /* b as a recomputation: it had produced tokens, then lost its cache */
    sequence_append(b, 300);
    b->n_computed = 0;
    batching_plan(s, &plan);
    CHECK(plan.n == 2 && plan.seq[1] == b && plan.chunk[1] == 15,
          "a recomputation is not capped: b takes the 15 tokens left (got %d)", plan.n > 1 ? plan.chunk[1] : -1);
    free_scheduler(s);
    gen_stream_release(a), gen_stream_release(b), gen_stream_release(c);

    g_max_prefill = -1; /* auto: fixed 100 ms + 20 ms a token gives (0.1 + 0.02) / 0.04 = 3 */
    s = new_scheduler(64, 16);
    CHECK(batching_prefill_budget(s) == 1, "auto before the step times say anything: 1 token, the cautious end");
    const int sizes[] = {1, 64, 16, 1, 4};
    for (int i = 0; i < 5; i++) step_timing_note(&s->timing, sizes[i], 0.1 + 0.02 * sizes[i]);
    CHECK(batching_prefill_budget(s) == 3, "auto from the step times: 3 tokens (got %d)", batching_prefill_budget(s));
    a = submit(s, 5, 8), b = submit(s, 20, 4);
    batching_admit(s);
    a->n_computed = 5;
    sequence_append(a, 7);
    batching_plan(s, &plan);
    CHECK(plan.n == 2 && plan.chunk[0] == 1 && plan.chunk[1] == 3, "auto: 3 prompt tokens next to the decode token");
    free_scheduler(s);
    gen_stream_release(a), gen_stream_release(b);

    g_max_prefill = 0; /* the default: no cap */
    s = new_scheduler(64, 16);
    for (int i = 0; i < 5; i++) step_timing_note(&s->timing, sizes[i], 0.1 + 0.02 * sizes[i]);
    a = submit(s, 5, 8), b = submit(s, 20, 4);
    batching_admit(s);
    a->n_computed = 5;
    sequence_append(a, 7);
    batching_plan(s, &plan);
    CHECK(plan.n == 2 && plan.chunk[1] == 15, "0, the default: the prompt takes the rest of the step");
    free_scheduler(s);
    gen_stream_release(a), gen_stream_release(b);
    g_max_prefill = 0;
}

/* The line through the step times: exact on points on a line, refused when
 * the sizes do not vary or the slope is not positive. */
static void check_step_line(void) {
    step_timing t = {0};
    double fixed, per;
    for (int i = 0; i < 4; i++) step_timing_note(&t, 8, 0.05);
    CHECK(!step_timing_line(&t, &fixed, &per), "steps all of one size give no line");
    step_timing_note(&t, 100, 0.05 + 92 * 0.003);
    CHECK(step_timing_line(&t, &fixed, &per) && fabs(per - 0.003) < 1e-9 && fabs(fixed - 0.026) < 1e-9,
          "two sizes: the line through them (fixed %g, per token %g)", fixed, per);
    step_timing u = {0};
    step_timing_note(&u, 1, 0.3), step_timing_note(&u, 50, 0.2), step_timing_note(&u, 100, 0.1);
    CHECK(!step_timing_line(&u, &fixed, &per), "a falling line is no line");
}

/* The pool's prefix cache alone: registered blocks found by their tokens
 * from the first block on, shared (refs), kept when released, evicted
 * least recently used first and only when no free block is left, and an
 * entry whose parent was evicted and reused never matched again. */
static void check_prefix_pool(void) {
    block_pool p = {0};
    block_pool_reset(&p, 6, 4);
    int32_t t[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, ids[3];
    int32_t a = block_pool_take(&p), b = block_pool_take(&p), c = block_pool_take(&p);
    CHECK(a == 0 && b == 1 && c == 2 && block_pool_available(&p) == 3, "three taken, three left");
    block_pool_register(&p, a, -1, t);
    block_pool_register(&p, b, a, t + 4);
    int32_t held[3] = {a, b, c};
    block_pool_give(&p, held, 3);
    CHECK(p.n_free == 4 && p.n_cached == 2 && block_pool_available(&p) == 6,
          "released: the unregistered block is free, the two registered ones cached (free %d, cached %d)", p.n_free,
          p.n_cached);
    CHECK(block_pool_match(&p, t, 3, ids) == 2 && ids[0] == a && ids[1] == b && p.n_cached == 0,
          "the same tokens find both blocks, in order, and hold them");
    int32_t other[8] = {1, 2, 3, 4, 99, 6, 7, 8};
    CHECK(block_pool_match(&p, other, 2, ids + 2) == 1 && ids[2] == a && p.refs[a] == 2,
          "a different second block shares only the first");
    CHECK(block_pool_match(&p, t + 4, 1, ids) == 0, "a block is found only after its parent: t[4..8) alone is not a prefix");
    int32_t back[3] = {a, a, b}; /* a's last holder lets go first: a is the least recently used */
    block_pool_give(&p, back, 3);
    CHECK(p.n_cached == 2 && p.n_free == 4, "released again: both cached");
    /* the 4 free blocks go first, then the least recently used cached one */
    for (int i = 0; i < 4; i++) block_pool_take(&p);
    CHECK(p.n_cached == 2 && p.evictions == 0, "free blocks are taken before any cached one is evicted");
    int32_t e = block_pool_take(&p);
    CHECK(e == a && p.evictions == 1 && !p.registered[a], "then the least recently used cached block: a (got %d)", e);
    CHECK(block_pool_match(&p, t, 2, ids) == 0, "with its first block gone the prefix is not found");
    /* a reused for other tokens as a first block: b's entry names a's old generation and stays unreachable */
    int32_t t2[4] = {1, 2, 3, 4};
    block_pool_register(&p, a, -1, t2);
    CHECK(block_pool_match(&p, t, 2, ids) == 1 && ids[0] == a, "a's new content matches (the same first tokens)...");
    CHECK(p.refs[a] == 2, "...and is shared with its current holder");
    block_pool_free(&p);
}

/* Prefix caching in the scheduler: a second request with the same prompt
 * starts from the first one's computed blocks (all but the last token), a
 * different prompt shares only its equal blocks, and a lost group takes the
 * cache with it. */
static void check_prefix_caching(void) {
    g_prefix_caching = true;
    scheduler *s = new_scheduler(32, 64);
    gen_stream *a = submit(s, 10, 4); /* tokens 10..19: blocks [10..13] [14..17] + 2 */
    batching_admit(s);
    step_plan plan;
    batching_plan(s, &plan);
    CHECK(plan.n == 1 && plan.chunk[0] == 10 && a->n_computed == 0, "the first request computes its whole prompt");
    uint64_t ids[1] = {a->id};
    int32_t toks[1] = {42};
    float lps[1] = {0};
    Facet__V1__StepResponse resp = FACET__V1__STEP_RESPONSE__INIT;
    resp.n_seq_ids = resp.n_token_ids = resp.n_logprobs = 1;
    resp.seq_ids = ids, resp.token_ids = toks, resp.logprobs = lps;
    accept_step_results(s, &plan, &resp);
    CHECK(s->blocks.registered[a->blocks[0]] && s->blocks.registered[a->blocks[1]] && !s->blocks.registered[a->blocks[2]],
          "its two full blocks are registered, the partial third is not");

    gen_stream *b = submit(s, 10, 4), *c = submit(s, 8, 4);
    batching_admit(s);
    CHECK(b->n_computed == 8 && b->blocks[0] == a->blocks[0] && b->blocks[1] == a->blocks[1] && b->blocks[2] != a->blocks[2],
          "the same prompt: 8 of its 10 tokens from the cache, sharing a's blocks (computed %d)", b->n_computed);
    CHECK(c->n_computed == 4 && c->blocks[0] == a->blocks[0],
          "an 8-token prompt equal to both blocks reuses only the first: its last token must be computed (got %d)",
          c->n_computed);
    CHECK(s->prefix_hit_tokens == 12, "12 tokens counted as cache hits (got %llu)", (unsigned long long)s->prefix_hit_tokens);
    batching_plan(s, &plan);
    CHECK(plan.n == 3 && plan.chunk[1] == 2 && plan.chunk[2] == 4, "b computes 2 tokens, c 4 (got %d, %d)",
          plan.n > 1 ? plan.chunk[1] : -1, plan.n > 2 ? plan.chunk[2] : -1);

    g_prompt_base = 500; /* other tokens: nothing to share */
    gen_stream *d = submit(s, 10, 4);
    batching_admit(s);
    CHECK(d->n_computed == 0, "a prompt with other tokens starts from nothing");
    g_prompt_base = 10;

    lose(s, 3);
    form(s, 4, 32);
    CHECK(s->blocks.n_cached == 0 && !s->blocks.registered[0] && !s->blocks.registered[1],
          "a new group starts with an empty cache");
    batching_admit(s);
    CHECK(b->n_computed == 0, "requeued requests recompute from their first token on the new group");
    free_scheduler(s);
    gen_stream_release(a), gen_stream_release(b), gen_stream_release(c), gen_stream_release(d);
    g_prefix_caching = false;
}

int main(void) {
    check_admission_and_plan();
    check_budget_and_order();
    check_preemption();
    check_accept();
    check_group_lost();
    check_cannot_fit();
    check_step_timing();
    check_prefill_budget();
    check_step_line();
    check_prefix_pool();
    check_prefix_caching();
    return CHECK_RESULT();
}
