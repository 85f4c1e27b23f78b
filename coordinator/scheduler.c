/* scheduler.c — requests, KV blocks and steps.
 *
 * A simple continuous-batching loop (the full scheduler, with preemption,
 * comes with the serving issue): requests wait first come, first served
 * until KV blocks for prompt + max_tokens are free; each step carries one
 * token of every sequence that is generating, then chunks of prompts up to
 * the token budget. A sequence's "known" tokens are its prompt and what it
 * has generated; a step computes the next ones not yet in the KV cache, so
 * prefill, decode and a later re-prefill are the same operation.
 *
 * Each step goes to every rank at once; rank 0's reply carries the sampled
 * tokens. A failed step breaks the group (membership.c). */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "common/clock.h"
#include "common/log.h"
#include "coordinator/coordinator_impl.h"
#include "facet/v1/worker.pb-c.h"
#include "worker/protocol.h"

struct gen_stream {
    coordinator *co;
    uint64_t id;
    int32_t *tokens; /* prompt, then generated: (n_tokens) */
    int n_tokens, cap_tokens, prompt_len;
    int n_computed;  /* tokens whose K/V are in the cache */
    int n_generated, max_tokens;
    sampling_params sampling;
    bool ignore_eos, return_logits;
    int32_t *stop_ids;
    int n_stop_ids;
    int32_t *blocks;
    int n_blocks;
    bool cancelled; /* under co->mu */
    sequence *next; /* in the waiting queue or the running list */

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

static int blocks_needed(const coordinator *co, const sequence *s) {
    return (s->prompt_len + s->max_tokens + co->opt.block_size - 1) / co->opt.block_size;
}

static void release_blocks(coordinator *co, sequence *s) {
    if (co->free_blocks && co->group == GROUP_READY)
        for (int i = 0; i < s->n_blocks; i++) co->free_blocks[co->n_free_blocks++] = s->blocks[i];
    s->n_blocks = 0;
}

/* ---- the lists --------------------------------------------------------------------------- */

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
    co->n_running = 0;
}

static void drop_cancelled(coordinator *co) {
    sequence **link = &co->running;
    while (*link) {
        sequence *s = *link;
        if (s->cancelled) {
            *link = s->next;
            co->n_running--;
            finish_with_error(co, s, RPC_CANCELLED, "cancelled by the client");
        } else {
            link = &s->next;
        }
    }
    link = &co->waiting_head;
    co->waiting_tail = NULL;
    while (*link) {
        sequence *s = *link;
        if (s->cancelled) {
            *link = s->next;
            finish_with_error(co, s, RPC_CANCELLED, "cancelled by the client");
        } else {
            co->waiting_tail = s;
            link = &s->next;
        }
    }
}

/* First come, first served: the head waits until its blocks are free. */
static void admit_waiting(coordinator *co) {
    sequence **tail = &co->running;
    while (*tail) tail = &(*tail)->next;
    while (co->waiting_head && co->n_running < co->opt.max_seqs) {
        sequence *s = co->waiting_head;
        int need = blocks_needed(co, s);
        if (need > co->n_free_blocks) break;
        co->waiting_head = s->next;
        if (!co->waiting_head) co->waiting_tail = NULL;
        s->blocks = malloc((size_t)need * sizeof *s->blocks);
        for (int i = 0; i < need; i++) s->blocks[i] = co->free_blocks[--co->n_free_blocks];
        s->n_blocks = need;
        s->next = NULL;
        *tail = s;
        tail = &s->next;
        co->n_running++;
    }
}

/* ---- building a step --------------------------------------------------------------------- */

typedef struct step_plan {
    sequence *seq[1024];
    int chunk[1024];
    bool sample[1024];
    int n;
} step_plan;

/* Decode tokens first (one per generating sequence), then prompt chunks. */
static void plan_step(coordinator *co, step_plan *plan) {
    int budget = co->opt.max_batch_tokens;
    plan->n = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (sequence *s = co->running; s && plan->n < 1024 && budget > 0; s = s->next) {
            int left = s->n_tokens - s->n_computed;
            bool decoding = left == 1 && s->n_computed >= s->prompt_len;
            if (left <= 0 || (pass == 0) != decoding) continue;
            int chunk = left < budget ? left : budget;
            plan->seq[plan->n] = s;
            plan->chunk[plan->n] = chunk;
            plan->sample[plan->n] = s->n_computed + chunk == s->n_tokens;
            plan->n++;
            budget -= chunk;
        }
    }
}

/* The flat-array StepRequest of a plan (arrays malloc'd; step_request_free). */
static void build_request(coordinator *co, const step_plan *plan, Facet__V1__StepRequest *r) {
    facet__v1__step_request__init(r);
    size_t n = (size_t)plan->n, tokens = 0, blocks = 0;
    for (int i = 0; i < plan->n; i++) tokens += (size_t)plan->chunk[i], blocks += (size_t)plan->seq[i]->n_blocks;
    r->epoch = co->epoch;
    r->step_id = ++co->next_step_id;
    r->n_seq_ids = r->n_start_pos = r->n_num_tokens = r->n_block_table_len = r->n_sample = n;
    r->n_temperature = r->n_top_k = r->n_top_p = r->n_seed = n;
    r->seq_ids = malloc(n * sizeof *r->seq_ids);
    r->start_pos = malloc(n * sizeof *r->start_pos);
    r->num_tokens = malloc(n * sizeof *r->num_tokens);
    r->block_table_len = malloc(n * sizeof *r->block_table_len);
    r->sample = malloc(n * sizeof *r->sample);
    r->temperature = malloc(n * sizeof *r->temperature);
    r->top_k = malloc(n * sizeof *r->top_k);
    r->top_p = malloc(n * sizeof *r->top_p);
    r->seed = malloc(n * sizeof *r->seed);
    r->n_token_ids = tokens;
    r->token_ids = malloc((tokens + 1) * sizeof *r->token_ids);
    r->n_block_ids = blocks;
    r->block_ids = malloc((blocks + 1) * sizeof *r->block_ids);
    size_t t = 0, b = 0;
    for (int i = 0; i < plan->n; i++) {
        const sequence *s = plan->seq[i];
        r->seq_ids[i] = s->id;
        r->start_pos[i] = s->n_computed;
        r->num_tokens[i] = plan->chunk[i];
        r->block_table_len[i] = s->n_blocks;
        r->sample[i] = plan->sample[i];
        r->temperature[i] = s->sampling.temperature;
        r->top_k[i] = s->sampling.top_k;
        r->top_p[i] = s->sampling.top_p;
        r->seed[i] = s->sampling.seed;
        r->return_logits |= s->return_logits && plan->sample[i];
        memcpy(r->token_ids + t, s->tokens + s->n_computed, (size_t)plan->chunk[i] * sizeof *r->token_ids);
        memcpy(r->block_ids + b, s->blocks, (size_t)s->n_blocks * sizeof *r->block_ids);
        t += (size_t)plan->chunk[i];
        b += (size_t)s->n_blocks;
    }
}

static void step_request_free(Facet__V1__StepRequest *r) {
    free(r->seq_ids), free(r->start_pos), free(r->num_tokens), free(r->block_table_len), free(r->sample);
    free(r->temperature), free(r->top_k), free(r->top_p), free(r->seed), free(r->token_ids), free(r->block_ids);
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

/* One sampled token for s; returns true when s is finished. */
static bool accept_token(coordinator *co, sequence *s, int32_t id, float logprob, const float *logits) {
    if (id < 0) {
        gen_event ev = {.kind = GEN_EVENT_ERROR, .code = RPC_INTERNAL};
        snprintf(ev.message, sizeof ev.message, "the model produced a NaN or infinite logit (are the weights corrupt?)");
        push_event(s, &ev);
        return true;
    }
    s->n_generated++;
    bool stop = is_stop_token(co, s, id);
    bool length = s->n_generated >= s->max_tokens;
    if (!stop) append_token(s, id);
    gen_event ev = {.kind = stop ? GEN_EVENT_DONE : GEN_EVENT_TOKEN, .token = id, .logprob = logprob};
    if (logits) {
        ev.logits = malloc((size_t)co->cfg.vocab_size * sizeof(float));
        memcpy(ev.logits, logits, (size_t)co->cfg.vocab_size * sizeof(float));
    }
    if (stop) ev.finish = "stop";
    push_event(s, &ev);
    if (!stop && length) {
        gen_event done = {.kind = GEN_EVENT_DONE, .token = -1, .finish = "length"};
        push_event(s, &done);
    }
    return stop || length;
}

/* Applies rank 0's reply to the plan (mu held). */
static void apply_results(coordinator *co, const step_plan *plan, const Facet__V1__StepResponse *resp) {
    size_t k = 0;
    int V = co->cfg.vocab_size;
    bool logits = resp->n_logits == resp->n_token_ids * (size_t)V && resp->n_logits > 0;
    for (int i = 0; i < plan->n; i++) {
        sequence *s = plan->seq[i];
        s->n_computed += plan->chunk[i];
        if (!plan->sample[i]) continue;
        bool finished = true;
        if (k < resp->n_token_ids && resp->seq_ids[k] == s->id) {
            finished = s->cancelled ||
                       accept_token(co, s, resp->token_ids[k], k < resp->n_logprobs ? resp->logprobs[k] : 0.0f,
                                    logits ? resp->logits + k * (size_t)V : NULL);
            k++;
        } else {
            gen_event ev = {.kind = GEN_EVENT_ERROR, .code = RPC_INTERNAL};
            snprintf(ev.message, sizeof ev.message, "rank 0 returned no token for sequence %" PRIu64, s->id);
            push_event(s, &ev);
        }
        if (finished) s->cancelled = true; /* drop_cancelled retires it (no event: the stream is complete) */
    }
}

/* Retires finished sequences (marked cancelled after their last event). */
static void retire_finished(coordinator *co, const step_plan *plan) {
    sequence **link = &co->running;
    while (*link) {
        sequence *s = *link;
        bool done = false;
        for (int i = 0; i < plan->n && !done; i++) done = plan->seq[i] == s && s->cancelled;
        if (done) {
            *link = s->next;
            co->n_running--;
            retire(co, s);
        } else {
            link = &s->next;
        }
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
    rpc_unary_fanout(calls, tp, RPC_WORKER_STEP, co->opt.step_timeout_ms);
    Facet__V1__StepResponse *resp = calls[0].code == RPC_OK
                                      ? facet__v1__step_response__unpack(NULL, calls[0].response_len, calls[0].response)
                                      : NULL;
    pthread_mutex_lock(&co->mu);
    co->steps_in_flight--;
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
            retire_finished(co, plan);
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
        drop_cancelled(co);
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
    if (!sampling_params_check(&req->sampling, err)) return false;
    return true;
}

gen_stream *coordinator_submit(coordinator *co, const gen_request *req, int *code, errbuf *err) {
    if (!check_request(co, req, code, err)) return NULL;
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
    s->n_stop_ids = req->n_stop_ids;
    s->stop_ids = malloc((size_t)(req->n_stop_ids + 1) * sizeof *s->stop_ids);
    if (req->n_stop_ids) memcpy(s->stop_ids, req->stop_ids, (size_t)req->n_stop_ids * sizeof *s->stop_ids);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    atomic_init(&s->refs, 2);

    pthread_mutex_lock(&co->mu);
    bool ok = false;
    if (co->stopping) {
        *code = RPC_UNAVAILABLE;
        errbuf_set(err, "the server is shutting down");
    } else if (co->group != GROUP_READY) {
        *code = RPC_UNAVAILABLE;
        errbuf_set(err, "not serving (retry later): %s", co->not_ready);
    } else if (blocks_needed(co, s) > co->group_kv_blocks) {
        *code = RPC_RESOURCE_EXHAUSTED;
        errbuf_set(err, "the request needs %d KV blocks (prompt %d + max_tokens %d); the group has %d", blocks_needed(co, s),
                   s->prompt_len, s->max_tokens, co->group_kv_blocks);
    } else {
        s->id = ++co->next_seq_id;
        if (co->waiting_tail) co->waiting_tail->next = s;
        else co->waiting_head = s;
        co->waiting_tail = s;
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
