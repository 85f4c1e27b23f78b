/* scheduler.c — requests, KV blocks and steps: continuous batching.
 *
 * Requests wait first come, first served (a bounded queue); a request is
 * admitted when KV blocks for all its known tokens are free and fewer than
 * max_seqs are running. Every step carries one token of each generating
 * sequence, then chunks of prompts up to the token budget. Blocks are taken
 * as sequences grow; when none is free, the newest running sequence is
 * preempted: its blocks are freed and it goes back to the queue, to be
 * recomputed later from its prompt and the tokens it has produced (the same
 * tokens: sampling is keyed by position). A sequence's "known" tokens are its
 * prompt and what it has generated; a step computes the next ones not yet in
 * the KV cache, so prefill, decode and recompute are one operation.
 *
 * Each step goes to every rank at once; rank 0's reply carries the sampled
 * tokens. A failed step breaks the group (membership.c). */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "coordinator/coordinator_impl.h"
#include "coordinator/metrics.h"
#include "facet/v1/worker.pb-c.h"
#include "worker/protocol.h"

#define MAX_PLAN 1024

struct gen_stream {
    coordinator *co;
    uint64_t id;     /* arrival order: FCFS, and the newest is preempted first */
    int32_t *tokens; /* prompt, then generated: (n_tokens) */
    int n_tokens, cap_tokens, prompt_len;
    int n_computed;  /* tokens whose K/V are in the cache */
    int n_generated, max_tokens;
    sampling_params sampling;
    bool ignore_eos, return_logits, has_penalties;
    int top_logprobs;
    seen_tokens seen; /* for penalties */
    int32_t *stop_ids;
    int n_stop_ids;
    int32_t *blocks;
    int n_blocks, cap_blocks;
    bool cancelled;  /* by the client (under co->mu) */
    bool finished;   /* its last event is out: retire it */
    sequence *next;  /* in the waiting queue or the running list, both in arrival order */

    pthread_mutex_t mu; /* the event queue */
    pthread_cond_t cv;
    gen_event *events;
    int n_events, cap_events, head;
    atomic_int refs; /* the scheduler's and the client's */
};

/* ---- events --------------------------------------------------------------------- */

static void push_event(sequence *s, const gen_event *ev) {
    pthread_mutex_lock(&s->mu);
    if (s->head > 0 && s->head == s->n_events) s->head = s->n_events = 0;
    if (s->n_events == s->cap_events) {
        s->cap_events = s->cap_events ? 2 * s->cap_events : 16;
        s->events = realloc(s->events, (size_t)s->cap_events * sizeof *s->events);
    }
    s->events[s->n_events++] = *ev;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

bool gen_stream_next(gen_stream *s, gen_event *ev, int timeout_ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long ns = ts.tv_nsec + (long)(timeout_ms % 1000) * 1000000L;
    ts.tv_sec += timeout_ms / 1000 + ns / 1000000000L;
    ts.tv_nsec = ns % 1000000000L;
    pthread_mutex_lock(&s->mu);
    while (s->head == s->n_events)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) != 0) break;
    bool got = s->head < s->n_events;
    if (got) *ev = s->events[s->head++];
    pthread_mutex_unlock(&s->mu);
    return got;
}

static void stream_unref(sequence *s) {
    if (atomic_fetch_sub(&s->refs, 1) != 1) return;
    for (int i = s->head; i < s->n_events; i++) free(s->events[i].logits);
    free(s->events);
    free(s->tokens);
    free(s->stop_ids);
    free(s->blocks);
    seen_tokens_free(&s->seen);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

void gen_stream_cancel(gen_stream *s) {
    pthread_mutex_lock(&s->co->mu);
    s->cancelled = true;
    pthread_cond_broadcast(&s->co->cv);
    pthread_mutex_unlock(&s->co->mu);
}

void gen_stream_release(gen_stream *s) {
    if (s) stream_unref(s);
}

/* ---- KV blocks ------------------------------------------------------------------------ */

void scheduler_reset_blocks(coordinator *co, int n_blocks) {
    free(co->free_blocks);
    co->free_blocks = malloc((size_t)(n_blocks > 0 ? n_blocks : 1) * sizeof *co->free_blocks);
    co->n_free_blocks = n_blocks;
    for (int i = 0; i < n_blocks; i++) co->free_blocks[i] = n_blocks - 1 - i; /* pop order: 0, 1, 2, ... */
}

static int blocks_for(const coordinator *co, int positions) {
    return (positions + co->opt.block_size - 1) / co->opt.block_size;
}

/* Grows s's block table to cover `positions`; false if blocks ran out. */
static bool ensure_blocks(coordinator *co, sequence *s, int positions) {
    int need = blocks_for(co, positions);
    while (s->n_blocks < need) {
        if (co->n_free_blocks == 0) return false;
        if (s->n_blocks == s->cap_blocks) {
            s->cap_blocks = s->cap_blocks ? 2 * s->cap_blocks : 8;
            s->blocks = realloc(s->blocks, (size_t)s->cap_blocks * sizeof *s->blocks);
        }
        s->blocks[s->n_blocks++] = co->free_blocks[--co->n_free_blocks];
    }
    return true;
}

static void release_blocks(coordinator *co, sequence *s) {
    if (co->free_blocks && co->group == GROUP_READY)
        for (int i = 0; i < s->n_blocks; i++) co->free_blocks[co->n_free_blocks++] = s->blocks[i];
    s->n_blocks = 0;
}

/* ---- the lists ------------------------------------------------------------------------ */

/* A sequence leaves the scheduler: its blocks return, its reference drops. */
static void retire(coordinator *co, sequence *s) {
    release_blocks(co, s);
    stream_unref(s);
}

static void finish_with_error(coordinator *co, sequence *s, int code, const char *reason) {
    gen_event ev = {.kind = GEN_EVENT_ERROR, .code = code};
    snprintf(ev.message, sizeof ev.message, "%s", reason);
    push_event(s, &ev);
    retire(co, s);
}

void scheduler_fail_all(coordinator *co, int code, const char *reason) {
    for (sequence *s = co->running, *next; s; s = next) {
        next = s->next;
        finish_with_error(co, s, code, reason);
    }
    for (sequence *s = co->waiting_head, *next; s; s = next) {
        next = s->next;
        finish_with_error(co, s, code, reason);
    }
    co->running = co->waiting_head = co->waiting_tail = NULL;
    co->n_running = co->n_waiting = 0;
}

/* Into a list kept in arrival order. */
static void insert_by_arrival(sequence **list, sequence *s) {
    while (*list && (*list)->id < s->id) list = &(*list)->next;
    s->next = *list;
    *list = s;
}

static void fix_waiting_tail(coordinator *co) {
    co->waiting_tail = NULL;
    for (sequence *s = co->waiting_head; s; s = s->next) co->waiting_tail = s;
}

/* Removes (and retires) what the client cancelled and what has finished. */
static void drop_done(coordinator *co) {
    for (int list = 0; list < 2; list++) {
        sequence **link = list == 0 ? &co->running : &co->waiting_head;
        while (*link) {
            sequence *s = *link;
            if (!s->cancelled && !s->finished) {
                link = &s->next;
                continue;
            }
            *link = s->next;
            if (list == 0) co->n_running--;
            else co->n_waiting--;
            if (s->finished) retire(co, s);
            else finish_with_error(co, s, RPC_CANCELLED, "cancelled by the client");
        }
    }
    fix_waiting_tail(co);
}

/* The newest running sequence goes back to the queue; its KV is recomputed later. */
static sequence *preempt_newest(coordinator *co) {
    sequence **link = &co->running, **newest = NULL;
    for (; *link; link = &(*link)->next) newest = link;
    if (!newest) return NULL;
    sequence *s = *newest;
    *newest = s->next;
    co->n_running--;
    release_blocks(co, s);
    s->n_computed = 0;
    insert_by_arrival(&co->waiting_head, s);
    co->n_waiting++;
    fix_waiting_tail(co);
    co->preemptions++;
    log_info("preempted request %" PRIu64 " (%d tokens): out of KV blocks; it will be recomputed", s->id, s->n_tokens);
    return s;
}

/* First come, first served: the head waits until blocks for all its known
 * tokens (and a small reserve for the running ones to grow) are free. */
static void admit_waiting(coordinator *co) {
    int reserve = co->group_kv_blocks / 100 + 1;
    while (co->waiting_head && co->n_running < co->opt.max_seqs) {
        sequence *s = co->waiting_head;
        int need = blocks_for(co, s->n_tokens);
        if (need + (co->n_running ? reserve : 0) > co->n_free_blocks) break;
        co->waiting_head = s->next;
        co->n_waiting--;
        ensure_blocks(co, s, s->n_tokens);
        insert_by_arrival(&co->running, s);
        co->n_running++;
    }
    fix_waiting_tail(co);
}

/* ---- planning a step ----------------------------------------------------------------------- */

typedef struct step_plan {
    sequence *seq[MAX_PLAN];
    int chunk[MAX_PLAN];
    bool sample[MAX_PLAN];
    int n;
} step_plan;

static bool in_running(const coordinator *co, const sequence *s) {
    for (const sequence *r = co->running; r; r = r->next)
        if (r == s) return true;
    return false;
}

/* Drops entries of sequences preempted after they were planned. */
static void plan_prune(coordinator *co, step_plan *plan, int *budget) {
    int k = 0;
    for (int i = 0; i < plan->n; i++) {
        if (in_running(co, plan->seq[i])) {
            plan->seq[k] = plan->seq[i], plan->chunk[k] = plan->chunk[i], plan->sample[k] = plan->sample[i];
            k++;
        } else {
            *budget += plan->chunk[i];
        }
    }
    plan->n = k;
}

/* Decode tokens first (one per generating sequence), then prompt chunks;
 * each sequence gets the blocks its chunk needs, preempting the newest
 * sequences when there are none. */
static void plan_step(coordinator *co, step_plan *plan) {
    int budget = co->opt.max_batch_tokens;
    plan->n = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (sequence *s = co->running; s && plan->n < MAX_PLAN && budget > 0;) {
            int left = s->n_tokens - s->n_computed;
            bool decoding = left == 1 && s->n_computed >= s->prompt_len;
            if (left <= 0 || (pass == 0) != decoding) {
                s = s->next;
                continue;
            }
            int chunk = left < budget ? left : budget;
            bool have = ensure_blocks(co, s, s->n_computed + chunk), evicted_self = false;
            while (!have && !evicted_self) {
                sequence *victim = preempt_newest(co);
                evicted_self = victim == s;
                if (!evicted_self) plan_prune(co, plan, &budget);
                have = !evicted_self && ensure_blocks(co, s, s->n_computed + chunk);
            }
            if (evicted_self) break; /* s was the newest: nothing after it */
            plan->seq[plan->n] = s;
            plan->chunk[plan->n] = chunk;
            plan->sample[plan->n] = s->n_computed + chunk == s->n_tokens;
            plan->n++;
            budget -= chunk;
            s = s->next; /* not `next`: preemption may have taken it off the list */
        }
    }
}

/* ---- the StepRequest of a plan ---------------------------------------------------------------- */

#define ALLOC_ARRAY(field, count) (r->n_##field = (count), r->field = malloc(((count) + 1) * sizeof *r->field))

static void build_request(coordinator *co, const step_plan *plan, Facet__V1__StepRequest *r) {
    facet__v1__step_request__init(r);
    size_t n = (size_t)plan->n, tokens = 0, blocks = 0, seen = 0;
    for (int i = 0; i < plan->n; i++) {
        const sequence *s = plan->seq[i];
        tokens += (size_t)plan->chunk[i];
        blocks += (size_t)s->n_blocks;
        if (plan->sample[i] && s->has_penalties) seen += (size_t)s->seen.n;
    }
    r->epoch = co->epoch;
    r->step_id = ++co->next_step_id;
    ALLOC_ARRAY(seq_ids, n), ALLOC_ARRAY(start_pos, n), ALLOC_ARRAY(num_tokens, n), ALLOC_ARRAY(block_table_len, n);
    ALLOC_ARRAY(sample, n), ALLOC_ARRAY(temperature, n), ALLOC_ARRAY(top_k, n), ALLOC_ARRAY(top_p, n);
    ALLOC_ARRAY(seed, n), ALLOC_ARRAY(min_p, n), ALLOC_ARRAY(presence_penalty, n), ALLOC_ARRAY(frequency_penalty, n);
    ALLOC_ARRAY(repetition_penalty, n), ALLOC_ARRAY(top_logprobs, n), ALLOC_ARRAY(penalty_len, n);
    ALLOC_ARRAY(token_ids, tokens), ALLOC_ARRAY(block_ids, blocks);
    ALLOC_ARRAY(penalty_ids, seen), ALLOC_ARRAY(penalty_counts, seen);
    size_t t = 0, b = 0, p = 0;
    for (int i = 0; i < plan->n; i++) {
        const sequence *s = plan->seq[i];
        const sampling_params *sp = &s->sampling;
        r->seq_ids[i] = s->id;
        r->start_pos[i] = s->n_computed;
        r->num_tokens[i] = plan->chunk[i];
        r->block_table_len[i] = s->n_blocks;
        r->sample[i] = plan->sample[i];
        r->temperature[i] = sp->temperature, r->top_k[i] = sp->top_k, r->top_p[i] = sp->top_p, r->seed[i] = sp->seed;
        r->min_p[i] = sp->min_p, r->presence_penalty[i] = sp->presence_penalty;
        r->frequency_penalty[i] = sp->frequency_penalty, r->repetition_penalty[i] = sp->repetition_penalty;
        r->top_logprobs[i] = plan->sample[i] ? s->top_logprobs : 0;
        r->return_logits |= s->return_logits && plan->sample[i];
        memcpy(r->token_ids + t, s->tokens + s->n_computed, (size_t)plan->chunk[i] * sizeof *r->token_ids);
        memcpy(r->block_ids + b, s->blocks, (size_t)s->n_blocks * sizeof *r->block_ids);
        t += (size_t)plan->chunk[i];
        b += (size_t)s->n_blocks;
        r->penalty_len[i] = plan->sample[i] && s->has_penalties ? s->seen.n : 0;
        if (r->penalty_len[i] > 0) {
            memcpy(r->penalty_ids + p, s->seen.ids, (size_t)r->penalty_len[i] * sizeof *r->penalty_ids);
            memcpy(r->penalty_counts + p, s->seen.counts, (size_t)r->penalty_len[i] * sizeof *r->penalty_counts);
        }
        p += (size_t)r->penalty_len[i];
    }
}

static void step_request_free(Facet__V1__StepRequest *r) {
    free(r->seq_ids), free(r->start_pos), free(r->num_tokens), free(r->block_table_len), free(r->sample);
    free(r->temperature), free(r->top_k), free(r->top_p), free(r->seed), free(r->token_ids), free(r->block_ids);
    free(r->min_p), free(r->presence_penalty), free(r->frequency_penalty), free(r->repetition_penalty);
    free(r->top_logprobs), free(r->penalty_len), free(r->penalty_ids), free(r->penalty_counts);
}

/* ---- applying a step's results ------------------------------------------------------------ */

static bool is_stop_token(const coordinator *co, const sequence *s, int32_t id) {
    if (s->ignore_eos) return false;
    if (id == co->eos_id) return true;
    for (int i = 0; i < s->n_stop_ids; i++)
        if (s->stop_ids[i] == id) return true;
    return false;
}

static void append_token(sequence *s, int32_t id) {
    if (s->n_tokens == s->cap_tokens) {
        s->cap_tokens *= 2;
        s->tokens = realloc(s->tokens, (size_t)s->cap_tokens * sizeof *s->tokens);
    }
    s->tokens[s->n_tokens++] = id;
}

/* The sampled token of one sequence, from rank 0's reply. */
typedef struct sampled {
    int32_t token;
    float logprob;
    const float *logits; /* or NULL */
    int n_top;
    const int32_t *top_ids;
    const float *top_logprobs;
} sampled;

/* One sampled token for s; marks s finished when it is. */
static void accept_token(coordinator *co, sequence *s, const sampled *t) {
    if (t->token < 0) {
        gen_event ev = {.kind = GEN_EVENT_ERROR, .code = RPC_INTERNAL};
        snprintf(ev.message, sizeof ev.message, "the model produced a NaN or infinite logit (are the weights corrupt?)");
        push_event(s, &ev);
        s->finished = true;
        return;
    }
    s->n_generated++;
    bool stop = is_stop_token(co, s, t->token);
    bool length = s->n_generated >= s->max_tokens;
    if (!stop) append_token(s, t->token);
    if (s->has_penalties) seen_tokens_add(&s->seen, t->token, true);
    gen_event ev = {.kind = stop ? GEN_EVENT_DONE : GEN_EVENT_TOKEN, .token = t->token, .logprob = t->logprob};
    if (t->logits) {
        ev.logits = malloc((size_t)co->cfg.vocab_size * sizeof(float));
        memcpy(ev.logits, t->logits, (size_t)co->cfg.vocab_size * sizeof(float));
    }
    ev.n_top = t->n_top < SAMPLER_MAX_TOP_LOGPROBS ? t->n_top : SAMPLER_MAX_TOP_LOGPROBS;
    if (ev.n_top > 0) {
        memcpy(ev.top_ids, t->top_ids, (size_t)ev.n_top * sizeof *ev.top_ids);
        memcpy(ev.top_logprobs, t->top_logprobs, (size_t)ev.n_top * sizeof *ev.top_logprobs);
    }
    if (stop) ev.finish = "stop";
    push_event(s, &ev);
    if (!stop && length) {
        gen_event done = {.kind = GEN_EVENT_DONE, .token = -1, .finish = "length"};
        push_event(s, &done);
    }
    s->finished = stop || length;
}

/* Applies rank 0's reply to the plan (mu held). */
static void apply_results(coordinator *co, const step_plan *plan, const Facet__V1__StepResponse *resp) {
    size_t k = 0, top = 0;
    int V = co->cfg.vocab_size;
    bool logits = resp->n_logits == resp->n_token_ids * (size_t)V && resp->n_logits > 0;
    for (int i = 0; i < plan->n; i++) {
        sequence *s = plan->seq[i];
        s->n_computed += plan->chunk[i];
        if (!plan->sample[i]) continue;
        if (k >= resp->n_token_ids || resp->seq_ids[k] != s->id) {
            gen_event ev = {.kind = GEN_EVENT_ERROR, .code = RPC_INTERNAL};
            snprintf(ev.message, sizeof ev.message, "rank 0 returned no token for sequence %" PRIu64, s->id);
            push_event(s, &ev);
            s->finished = true;
            continue;
        }
        int n_top = k < resp->n_n_top ? resp->n_top[k] : 0;
        if (top + (size_t)n_top > resp->n_top_ids || top + (size_t)n_top > resp->n_top_logprobs) n_top = 0;
        sampled t = {resp->token_ids[k], k < resp->n_logprobs ? resp->logprobs[k] : 0.0f,
                     logits ? resp->logits + k * (size_t)V : NULL, n_top, n_top ? resp->top_ids + top : NULL,
                     n_top ? resp->top_logprobs + top : NULL};
        if (!s->cancelled) accept_token(co, s, &t);
        top += (size_t)n_top;
        k++;
    }
}

/* The step's error (mu held): the workers that could not be reached are
 * lost (and suspect until heard from again); the others only report that a
 * collective failed (ABORTED: alive, but their group is broken). */
static void describe_failure(coordinator *co, rpc_fanout *calls, worker_entry **members, int tp, char *out, size_t len) {
    out[0] = '\0';
    double now = clock_now_s();
    for (int pass = 0; pass < 2; pass++) {
        for (int r = 0; r < tp; r++) {
            bool lost = calls[r].code != RPC_OK && calls[r].code != RPC_ABORTED;
            if (calls[r].code == RPC_OK || lost != (pass == 0)) continue;
            size_t used = strlen(out);
            if (lost) {
                members[r]->suspect_since = now;
                snprintf(out + used, len - used, "%sworker %s (rank %d at %s) was lost: %s", used ? "; " : "", members[r]->id,
                         r, members[r]->address, calls[r].err.msg);
            } else {
                snprintf(out + used, len - used, "%s(%s)", used ? " " : "", calls[r].err.msg);
            }
        }
    }
}

/* Runs one step (called with mu held; releases it during the RPCs). */
static void run_step(coordinator *co) {
    step_plan *plan = malloc(sizeof *plan);
    plan_step(co, plan);
    if (plan->n == 0) {
        free(plan);
        return;
    }
    Facet__V1__StepRequest req;
    build_request(co, plan, &req);
    int tp = co->opt.tp;
    uint64_t epoch = co->epoch;
    worker_entry *members[MAX_TP];
    rpc_fanout calls[MAX_TP];
    for (int r = 0; r < tp; r++) {
        members[r] = co->members[r];
        calls[r] = (rpc_fanout){.channel = members[r]->channel, .request = &req.base};
    }
    co->steps_in_flight++;
    pthread_mutex_unlock(&co->mu);
    double t0 = clock_now_s();
    rpc_unary_fanout(calls, tp, RPC_WORKER_STEP, co->opt.step_timeout_ms);
    double step_s = clock_now_s() - t0;
    Facet__V1__StepResponse *resp = calls[0].code == RPC_OK
                                        ? facet__v1__step_response__unpack(NULL, calls[0].response_len, calls[0].response)
                                        : NULL;
    metrics_observe_step(co->metrics, step_s, (int)req.n_token_ids, plan->n);
    pthread_mutex_lock(&co->mu);
    co->steps_in_flight--;
    co->steps++;
    bool failed = !resp;
    for (int r = 1; r < tp; r++) failed |= calls[r].code != RPC_OK;
    /* Meanwhile the group may have broken or the server begun to stop: then
     * every sequence of the plan was already failed and retired. */
    if (co->epoch == epoch && co->group == GROUP_READY && !co->stopping) {
        if (failed) {
            char reason[ERRBUF_LEN];
            describe_failure(co, calls, members, tp, reason, sizeof reason);
            if (!reason[0]) snprintf(reason, sizeof reason, "rank 0 sent a malformed step response");
            group_break(co, reason);
        } else {
            apply_results(co, plan, resp);
        }
    }
    if (resp) facet__v1__step_response__free_unpacked(resp, NULL);
    for (int r = 0; r < tp; r++) free(calls[r].response);
    step_request_free(&req);
    free(plan);
}

static bool has_work(const coordinator *co) { return co->running || co->waiting_head; }

void *scheduler_main(void *p) {
    coordinator *co = p;
    pthread_mutex_lock(&co->mu);
    while (!co->stopping) {
        drop_done(co);
        if (co->group != GROUP_READY || !has_work(co)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
            pthread_cond_timedwait(&co->cv, &co->mu, &ts);
            continue;
        }
        admit_waiting(co);
        run_step(co);
    }
    pthread_mutex_unlock(&co->mu);
    return NULL;
}

/* ---- submitting ---------------------------------------------------------------------------- */

static bool check_request(coordinator *co, const gen_request *req, int *code, errbuf *err) {
    *code = RPC_INVALID_ARGUMENT;
    int ctx = co->cfg.max_position;
    if (req->prompt_len < 1) return errbuf_set(err, "the prompt is empty");
    if (req->prompt_len >= ctx)
        return errbuf_set(err, "the prompt is %d tokens long; the model's context is %d tokens, which leaves no room to generate",
                          req->prompt_len, ctx);
    for (int i = 0; i < req->prompt_len; i++)
        if (req->prompt[i] < 0 || req->prompt[i] >= co->cfg.vocab_size)
            return errbuf_set(err, "token id %d is out of range [0, %d)", req->prompt[i], co->cfg.vocab_size);
    if (req->max_tokens < 1) return errbuf_set(err, "max_tokens must be at least 1");
    if (req->top_logprobs < 0 || req->top_logprobs > SAMPLER_MAX_TOP_LOGPROBS)
        return errbuf_set(err, "top_logprobs must be in [0, %d]", SAMPLER_MAX_TOP_LOGPROBS);
    if (!sampling_params_check(&req->sampling, err)) return false;
    return true;
}

static sequence *new_sequence(coordinator *co, const gen_request *req) {
    sequence *s = calloc(1, sizeof *s);
    s->co = co;
    s->prompt_len = s->n_tokens = req->prompt_len;
    s->max_tokens = req->max_tokens;
    if (s->prompt_len + s->max_tokens > co->cfg.max_position) s->max_tokens = co->cfg.max_position - s->prompt_len;
    s->cap_tokens = s->prompt_len + s->max_tokens + 1;
    s->tokens = malloc((size_t)s->cap_tokens * sizeof *s->tokens);
    memcpy(s->tokens, req->prompt, (size_t)req->prompt_len * sizeof *s->tokens);
    s->sampling = req->sampling;
    if (s->sampling.top_p <= 0) s->sampling.top_p = 1.0f;
    s->ignore_eos = req->ignore_eos;
    s->return_logits = req->return_logits;
    s->top_logprobs = req->top_logprobs;
    s->has_penalties = sampling_params_has_penalties(&s->sampling);
    seen_tokens_init(&s->seen);
    if (s->has_penalties)
        for (int i = 0; i < req->prompt_len; i++) seen_tokens_add(&s->seen, req->prompt[i], false);
    s->n_stop_ids = req->n_stop_ids;
    s->stop_ids = malloc((size_t)(req->n_stop_ids + 1) * sizeof *s->stop_ids);
    if (req->n_stop_ids) memcpy(s->stop_ids, req->stop_ids, (size_t)req->n_stop_ids * sizeof *s->stop_ids);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    atomic_init(&s->refs, 2);
    return s;
}

gen_stream *coordinator_submit(coordinator *co, const gen_request *req, int *code, errbuf *err) {
    if (!check_request(co, req, code, err)) return NULL;
    sequence *s = new_sequence(co, req);
    pthread_mutex_lock(&co->mu);
    bool ok = false;
    int need = blocks_for(co, s->prompt_len + s->max_tokens);
    if (co->stopping || co->draining) {
        *code = RPC_UNAVAILABLE;
        errbuf_set(err, "the server is shutting down");
    } else if (co->group != GROUP_READY) {
        *code = RPC_UNAVAILABLE;
        errbuf_set(err, "not serving (retry later): %s", co->not_ready);
    } else if (need > co->group_kv_blocks) {
        *code = RPC_INVALID_ARGUMENT; /* it could never run: not worth a retry */
        errbuf_set(err, "the request needs %d KV blocks (prompt %d + max_tokens %d tokens); the whole cache has %d", need,
                   s->prompt_len, s->max_tokens, co->group_kv_blocks);
    } else if (co->opt.max_queue > 0 && co->n_waiting >= co->opt.max_queue) {
        *code = RPC_RESOURCE_EXHAUSTED;
        errbuf_set(err, "the queue is full (%d requests waiting): retry later", co->n_waiting);
    } else {
        s->id = ++co->next_seq_id;
        if (co->waiting_tail) co->waiting_tail->next = s;
        else co->waiting_head = s;
        co->waiting_tail = s;
        co->n_waiting++;
        pthread_cond_broadcast(&co->cv);
        ok = true;
    }
    pthread_mutex_unlock(&co->mu);
    if (!ok) {
        atomic_store(&s->refs, 1);
        stream_unref(s);
        return NULL;
    }
    return s;
}

void coordinator_get_stats(coordinator *co, coordinator_stats *out) {
    double now = clock_now_s();
    pthread_mutex_lock(&co->mu);
    memset(out, 0, sizeof *out);
    out->ready = co->group == GROUP_READY;
    out->epoch = co->epoch;
    out->waiting = co->n_waiting;
    out->running = co->n_running;
    out->kv_blocks_total = co->group == GROUP_READY ? co->group_kv_blocks : 0;
    out->kv_blocks_free = co->group == GROUP_READY ? co->n_free_blocks : 0;
    for (int i = 0; i < co->n_workers; i++) {
        const worker_entry *w = co->workers[i];
        bool live = !w->dead && now - w->last_seen <= co->opt.lease_ms / 1e3;
        out->workers_live += live;
        out->workers_in_group += live && w->rank >= 0;
        out->workers_failed += live && w->failed;
    }
    out->preemptions = co->preemptions;
    out->steps = co->steps;
    pthread_mutex_unlock(&co->mu);
}
