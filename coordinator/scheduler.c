/* scheduler.c — the scheduler's thread, submission, and its reactions to
 * the group events membership publishes (see scheduler.h). */
#include "coordinator/scheduler.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/log.h"
#include "coordinator/accept.h"
#include "coordinator/batching.h"
#include "coordinator/scheduler_impl.h"
#include "coordinator/step_rpc.h"
#include "protocol/step.h"
#include "rpc/rpc.h"

#define IDLE_WAIT_MS 100

/* ---- group events ----------------------------------------------------------------------- */

/* The group steps ran on is gone (mu held): its caches with it. Every
 * request goes back to the queue, to be recomputed on the next group; a
 * step still in flight on it is cancelled. */
static void group_lost(scheduler *s, uint64_t epoch, const char *reason) {
    if (!s->serving || s->epoch != epoch) return; /* already handled (a failed step) or never served */
    s->serving = false;
    if (s->step_epoch == epoch) rpc_cancel_fire(s->cancel);
    double deadline = clock_now_s() + s->opt.failover_timeout_ms / 1e3;
    failover_event *e = failover_log_lost(&s->log, epoch, reason);
    e->replayed = batching_requeue_all(s, reason, deadline, &e->failed);
    s->failovers++;
    s->replays += (uint64_t)e->replayed;
    log_warn("group of epoch %" PRIu64 " lost (%s): %d request%s put back to be recomputed on the next group%s", epoch,
             reason, e->replayed, e->replayed == 1 ? "" : "s", e->failed ? ", some past --max-replays failed" : "");
    pthread_cond_broadcast(&s->cv);
}

/* Requests a new group's cache can never hold (a smaller group after a
 * shrink) end now, saying so (mu held). */
static void fail_what_cannot_fit(scheduler *s) {
    for (sequence **link = &s->waiting_head; *link;) {
        sequence *q = *link;
        int need = blocks_for(q->prompt_len + q->max_tokens, s->opt.block_size);
        if (need <= s->blocks.total) {
            link = &q->next;
            continue;
        }
        *link = q->next;
        s->n_waiting--;
        gen_event ev = {.kind = GEN_EVENT_ERROR, .code = RPC_RESOURCE_EXHAUSTED};
        snprintf(ev.message, sizeof ev.message,
                 "the request needs %d KV blocks; the group serving now (smaller after a failure) has %d: retry later", need,
                 s->blocks.total);
        sequence_push_event(q, &ev);
        sequence_unref(q);
    }
    s->waiting_tail = NULL;
    for (sequence *q = s->waiting_head; q; q = q->next) s->waiting_tail = q;
}

static void group_formed(scheduler *s, const group_event *ev) {
    if (s->serving && s->epoch < ev->epoch) group_lost(s, s->epoch, "the group was replaced by a newer one");
    s->epoch = ev->epoch;
    s->group_size = ev->size;
    s->serving = true;
    /* a new group's caches hold nothing: no free block, no cached prefix from before */
    block_pool_reset(&s->blocks, ev->kv_blocks, s->opt.prefix_caching ? s->opt.block_size : 0);
    for (sequence *q = s->waiting_head; q; q = q->next) q->wait_deadline = 0;
    fail_what_cannot_fit(s);
    failover_event *e = failover_log_open(&s->log);
    if (e && e->reformed_at == 0) {
        e->reformed_at = failover_log_now();
        e->new_epoch = ev->epoch;
        e->new_size = ev->size;
    }
}

void scheduler_on_group_event(void *ctx, const group_event *ev) {
    scheduler *s = ctx;
    pthread_mutex_lock(&s->mu);
    if (ev->kind == GROUP_FORMED) group_formed(s, ev);
    else group_lost(s, ev->epoch, ev->reason);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* ---- steps ----------------------------------------------------------------------------- */

/* The first token after a failover closes its timeline (mu held). */
static void note_tokens_after_failover(scheduler *s, const step_plan *plan) {
    failover_event *e = failover_log_open(&s->log);
    if (!e || e->reformed_at == 0) return;
    for (int i = 0; i < plan->n; i++)
        if (plan->sample[i]) {
            e->first_token_at = failover_log_now();
            metrics_observe_recovery(s->metrics, e->first_token_at - e->detected_at);
            return;
        }
}

/* Runs one step (mu held; released during the RPCs). */
static void run_step(scheduler *s) {
    step_plan *plan = xmalloc(sizeof *plan);
    batching_plan(s, plan);
    group_view g;
    if (plan->n == 0) {
        free(plan);
        return;
    }
    if (!membership_acquire(s->members, s->epoch, &g)) {
        /* the group went away and its LOST event is on its way: wait for it */
        free(plan);
        struct timespec ts = clock_deadline(10);
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        return;
    }
    Facet__V1__StepRequest req;
    step_rpc_build(s, plan, g.epoch, &req);
    /* a worker that stops answering mid-step is caught by this deadline, not by its silence */
    int timeout_ms = step_timing_deadline_ms(&s->timing, (int)req.n_token_ids, s->opt.step_deadline_floor_ms,
                                             s->opt.step_timeout_ms);
    s->step_epoch = g.epoch;
    rpc_cancel_reset(s->cancel);
    pthread_mutex_unlock(&s->mu);
    step_result res;
    step_rpc_send(&s->streams, &g, &req, timeout_ms, s->cancel, &res);
    double worker_s = res.ok ? (res.resp->forward_ms + res.resp->comm_ms + res.resp->sample_ms) / 1e3 : -1;
    metrics_observe_step(s->metrics, res.seconds, worker_s, (int)req.n_token_ids, plan->n);
    pthread_mutex_lock(&s->mu);
    s->step_epoch = 0;
    s->steps++;
    /* Meanwhile the group may have been lost (every sequence of the plan is
     * back in the queue) or the server begun to stop (they were failed). */
    if (s->serving && s->epoch == g.epoch && !s->stopping) {
        if (res.ok) {
            step_timing_note(&s->timing, (int)req.n_token_ids, res.seconds);
            accept_step_results(s, plan, res.resp);
            note_tokens_after_failover(s, plan);
        } else {
            char reason[ERRBUF_LEN];
            for (int r = 0; r < g.size; r++)
                if (res.calls[r].code == RPC_DEADLINE_EXCEEDED) {
                    step_timing_missed(&s->timing);
                    break;
                }
            membership_report_step_failure(s->members, &g, res.calls, reason, sizeof reason);
            group_lost(s, g.epoch, reason);
        }
    }
    step_result_free(&res, g.size);
    membership_release(s->members, &g);
    step_request_free(&req);
    free(plan);
}

static bool has_work(const scheduler *s) { return s->running || s->waiting_head; }

static void *scheduler_main(void *p) {
    scheduler *s = p;
    pthread_mutex_lock(&s->mu);
    bool busy = false;
    while (!s->stopping) {
        batching_drop_done(s);
        if (has_work(s) != busy) { /* a hint for when a smaller group may grow back */
            busy = has_work(s);
            membership_set_busy(s->members, busy);
        }
        if (!s->serving && s->waiting_head) {
            char why[ERRBUF_LEN];
            membership_ready(s->members, why, sizeof why);
            batching_expire_waits(s, clock_now_s(), why);
        }
        if (!s->serving || !has_work(s)) {
            struct timespec ts = clock_deadline(IDLE_WAIT_MS);
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
            continue;
        }
        batching_admit(s);
        run_step(s);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- submitting ---------------------------------------------------------------------------- */

static bool check_request(scheduler *s, const gen_request *req, int *code, errbuf *err) {
    *code = RPC_INVALID_ARGUMENT;
    const gemma_config *cfg = &s->model->cfg;
    if (req->prompt_len < 1) return errbuf_set(err, "the prompt is empty");
    if (req->prompt_len >= cfg->max_position)
        return errbuf_set(err, "the prompt is %d tokens long; the model's context is %d tokens, which leaves no room to generate",
                          req->prompt_len, cfg->max_position);
    for (int i = 0; i < req->prompt_len; i++)
        if (req->prompt[i] < 0 || req->prompt[i] >= cfg->vocab_size)
            return errbuf_set(err, "token id %d is out of range [0, %d)", req->prompt[i], cfg->vocab_size);
    if (req->max_tokens < 1) return errbuf_set(err, "max_tokens must be at least 1");
    if (req->top_logprobs < 0 || req->top_logprobs > SAMPLER_MAX_TOP_LOGPROBS)
        return errbuf_set(err, "top_logprobs must be in [0, %d]", SAMPLER_MAX_TOP_LOGPROBS);
    return sampling_params_check(&req->sampling, err);
}

/* A cancel from a front end: the scheduler drops the sequence at its next turn. */
static void wake(void *ctx) {
    scheduler *s = ctx;
    pthread_mutex_lock(&s->mu);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Why a request cannot be queued now (mu held); false if it can. */
static bool refuse(scheduler *s, const sequence *q, int *code, errbuf *err) {
    int need = blocks_for(q->prompt_len + q->max_tokens, s->opt.block_size);
    if (s->stopping || s->draining) {
        *code = RPC_UNAVAILABLE;
        return !errbuf_set(err, "the server is shutting down");
    }
    if (s->serving && need > s->blocks.total) {
        *code = RPC_INVALID_ARGUMENT; /* it could never run: not worth a retry */
        return !errbuf_set(err, "the request needs %d KV blocks (prompt %d + max_tokens %d tokens); the whole cache has %d",
                           need, q->prompt_len, q->max_tokens, s->blocks.total);
    }
    if (s->opt.max_queue > 0 && s->n_waiting >= s->opt.max_queue) {
        *code = RPC_RESOURCE_EXHAUSTED;
        return !errbuf_set(err, "the queue is full (%d requests waiting): retry later", s->n_waiting);
    }
    return false;
}

gen_stream *scheduler_submit(scheduler *s, const gen_request *req, int *code, errbuf *err) {
    if (!check_request(s, req, code, err)) return NULL;
    sequence *q = sequence_create(req, s->model->cfg.max_position, wake, s);
    pthread_mutex_lock(&s->mu);
    bool refused = refuse(s, q, code, err);
    if (!refused) {
        q->id = ++s->next_seq_id;
        /* no group now: it waits for one, within the failover timeout */
        if (!s->serving) q->wait_deadline = clock_now_s() + s->opt.failover_timeout_ms / 1e3;
        if (s->waiting_tail) s->waiting_tail->next = q;
        else s->waiting_head = q;
        s->waiting_tail = q;
        s->n_waiting++;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    if (refused) {
        sequence_unref(q); /* both references: nobody will see it */
        sequence_unref(q);
        return NULL;
    }
    return q;
}

/* ---- state ------------------------------------------------------------------------------------ */

void scheduler_begin_drain(scheduler *s) {
    pthread_mutex_lock(&s->mu);
    s->draining = true;
    pthread_mutex_unlock(&s->mu);
}

bool scheduler_draining(scheduler *s) {
    pthread_mutex_lock(&s->mu);
    bool d = s->draining || s->stopping;
    pthread_mutex_unlock(&s->mu);
    return d;
}

bool scheduler_idle(scheduler *s) {
    pthread_mutex_lock(&s->mu);
    bool idle = s->n_running == 0 && s->n_waiting == 0;
    pthread_mutex_unlock(&s->mu);
    return idle;
}

bool scheduler_ready(scheduler *s, char *why, size_t why_len) {
    pthread_mutex_lock(&s->mu);
    /* not before every step of the old group has come back: until then no new step runs */
    bool ready = s->serving && (s->step_epoch == 0 || s->step_epoch == s->epoch);
    pthread_mutex_unlock(&s->mu);
    if (!ready && why && !membership_ready(s->members, why, why_len))
        return false;
    if (!ready && why) snprintf(why, why_len, "the new group waits for the last step of the old one");
    return ready;
}

void scheduler_stats(scheduler *s, coordinator_stats *out) {
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&s->mu);
    out->ready = s->serving;
    out->epoch = s->epoch;
    out->waiting = s->n_waiting;
    out->running = s->n_running;
    out->kv_blocks_total = s->serving ? s->blocks.total : 0;
    out->kv_blocks_free = s->serving ? block_pool_available(&s->blocks) : 0;
    out->kv_blocks_cached = s->serving ? s->blocks.n_cached : 0;
    out->prefix_hit_tokens = s->prefix_hit_tokens;
    out->preemptions = s->preemptions;
    out->steps = s->steps;
    out->failovers = s->failovers;
    out->replays = s->replays;
    out->group_size = s->serving ? s->group_size : 0;
    out->prefill_budget = batching_prefill_budget(s);
    pthread_mutex_unlock(&s->mu);
    membership_counts(s->members, &out->workers_live, &out->workers_in_group, &out->workers_failed);
}

/* ---- lifetime --------------------------------------------------------------------------------- */

scheduler *scheduler_create(const scheduler_options *opt, const served_model *model, metrics *m) {
    scheduler *s = xcalloc(1, sizeof *s);
    s->opt = *opt;
    s->model = model;
    s->metrics = m;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->cancel = rpc_cancel_create();
    return s;
}

void scheduler_note_fault(scheduler *s, int rank, const char *spec) {
    pthread_mutex_lock(&s->mu);
    failover_log_injected(&s->log, rank, spec);
    pthread_mutex_unlock(&s->mu);
}

char *scheduler_failover_json(scheduler *s) {
    pthread_mutex_lock(&s->mu);
    char *text = failover_log_json(&s->log);
    pthread_mutex_unlock(&s->mu);
    return text;
}

void scheduler_start(scheduler *s, membership *members) {
    s->members = members;
    facet_thread_start(&s->thread, scheduler_main, s, "scheduler");
    s->started = true;
}

void scheduler_stop(scheduler *s) {
    pthread_mutex_lock(&s->mu);
    bool first = !s->stopping;
    s->stopping = true;
    batching_fail_all(s, RPC_UNAVAILABLE, "the server is shutting down");
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (first && s->started) pthread_join(s->thread, NULL); /* after the step in flight */
    s->started = false;
    step_streams_close(&s->streams); /* the step thread has ended: the workers' stream handlers end too */
}

void scheduler_free(scheduler *s) {
    if (!s) return;
    block_pool_free(&s->blocks);
    rpc_cancel_free(s->cancel);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}
