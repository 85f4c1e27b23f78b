#include "coordinator/batching.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/alloc.h"
#include "common/log.h"
#include "rpc/rpc.h"

/* ---- blocks ----------------------------------------------------------------------------- */

static void grow_block_table(sequence *q, int n) {
    if (n <= q->cap_blocks) return;
    while (q->cap_blocks < n) q->cap_blocks = q->cap_blocks ? 2 * q->cap_blocks : 8;
    q->blocks = xrealloc(q->blocks, (size_t)q->cap_blocks * sizeof *q->blocks);
}

/* Grows q's block table to cover `positions`; false if blocks ran out. */
static bool ensure_blocks(scheduler *s, sequence *q, int positions) {
    int need = blocks_for(positions, s->opt.block_size);
    while (q->n_blocks < need) {
        if (block_pool_available(&s->blocks) == 0) return false;
        grow_block_table(q, q->n_blocks + 1);
        q->blocks[q->n_blocks++] = block_pool_take(&s->blocks);
    }
    return true;
}

/* A sequence entering the running list starts from the longest prefix of
 * its known tokens the cache holds (blocks.h), leaving at least its last
 * token to compute: that one's logits are what the step needs. */
static void take_cached_prefix(scheduler *s, sequence *q) {
    int max_blocks = (q->n_tokens - 1) / s->opt.block_size;
    if (!s->blocks.caching || max_blocks <= 0) return;
    grow_block_table(q, max_blocks);
    q->n_blocks = block_pool_match(&s->blocks, q->tokens, max_blocks, q->blocks);
    q->n_computed = q->n_blocks * s->opt.block_size;
}

static void release_blocks(scheduler *s, sequence *q) {
    if (s->serving) block_pool_give(&s->blocks, q->blocks, q->n_blocks);
    q->n_blocks = 0;
    q->n_computed = 0;
}

/* ---- the lists ------------------------------------------------------------------------ */

/* A sequence leaves the scheduler: its blocks return, its reference drops. */
static void retire(scheduler *s, sequence *q) {
    release_blocks(s, q);
    sequence_unref(q);
}

static void finish_with_error(scheduler *s, sequence *q, int code, const char *reason) {
    gen_event ev = {.kind = GEN_EVENT_ERROR, .code = code};
    snprintf(ev.message, sizeof ev.message, "%s", reason);
    sequence_push_event(q, &ev);
    retire(s, q);
}

void batching_fail_all(scheduler *s, int code, const char *reason) {
    for (sequence *q = s->running, *next; q; q = next) {
        next = q->next;
        finish_with_error(s, q, code, reason);
    }
    for (sequence *q = s->waiting_head, *next; q; q = next) {
        next = q->next;
        finish_with_error(s, q, code, reason);
    }
    s->running = s->waiting_head = s->waiting_tail = NULL;
    s->n_running = s->n_waiting = 0;
}

/* Into a list kept in arrival order. */
static void insert_by_arrival(sequence **list, sequence *q) {
    while (*list && (*list)->id < q->id) list = &(*list)->next;
    q->next = *list;
    *list = q;
}

static void fix_waiting_tail(scheduler *s) {
    s->waiting_tail = NULL;
    for (sequence *q = s->waiting_head; q; q = q->next) s->waiting_tail = q;
}

void batching_drop_done(scheduler *s) {
    for (int list = 0; list < 2; list++) {
        sequence **link = list == 0 ? &s->running : &s->waiting_head;
        while (*link) {
            sequence *q = *link;
            bool cancelled = atomic_load(&q->cancelled);
            if (!cancelled && !q->finished) {
                link = &q->next;
                continue;
            }
            *link = q->next;
            if (list == 0) s->n_running--;
            else s->n_waiting--;
            if (q->finished) retire(s, q);
            else finish_with_error(s, q, RPC_CANCELLED, "cancelled by the client");
        }
    }
    fix_waiting_tail(s);
}

int batching_requeue_all(scheduler *s, const char *reason, double deadline, int *failed) {
    int requeued = 0;
    *failed = 0;
    for (sequence *q = s->running, *next; q; q = next) {
        next = q->next;
        q->n_blocks = 0; /* those blocks were in the lost group's caches: gone, not returned */
        q->n_computed = 0;
        if (++q->replays > s->opt.max_replays) {
            char msg[ERRBUF_LEN];
            snprintf(msg, sizeof msg, "the group running this request was lost %d times (--max-replays %d): %s; retry",
                     q->replays, s->opt.max_replays, reason);
            finish_with_error(s, q, RPC_UNAVAILABLE, msg);
            (*failed)++;
            continue;
        }
        insert_by_arrival(&s->waiting_head, q);
        s->n_waiting++;
        requeued++;
    }
    s->running = NULL;
    s->n_running = 0;
    for (sequence *q = s->waiting_head; q; q = q->next) {
        q->n_blocks = 0; /* a preempted one holds none; be sure */
        q->n_computed = 0;
        if (q->wait_deadline == 0) q->wait_deadline = deadline;
    }
    fix_waiting_tail(s);
    return requeued;
}

void batching_expire_waits(scheduler *s, double now, const char *why) {
    for (sequence **link = &s->waiting_head; *link;) {
        sequence *q = *link;
        if (q->wait_deadline == 0 || now < q->wait_deadline) {
            link = &q->next;
            continue;
        }
        *link = q->next;
        s->n_waiting--;
        char msg[ERRBUF_LEN];
        snprintf(msg, sizeof msg, "no group served within --failover-timeout (%.0f s): %s; retry",
                 s->opt.failover_timeout_ms / 1e3, why);
        finish_with_error(s, q, RPC_UNAVAILABLE, msg);
    }
    fix_waiting_tail(s);
}

/* The newest running sequence goes back to the queue; its KV is recomputed later. */
static sequence *preempt_newest(scheduler *s) {
    sequence **link = &s->running, **newest = NULL;
    for (; *link; link = &(*link)->next) newest = link;
    if (!newest) return NULL;
    sequence *q = *newest;
    *newest = q->next;
    s->n_running--;
    release_blocks(s, q);
    insert_by_arrival(&s->waiting_head, q);
    s->n_waiting++;
    fix_waiting_tail(s);
    s->preemptions++;
    log_info("preempted request %" PRIu64 " (%d tokens): out of KV blocks; it will be recomputed", q->id, q->n_tokens);
    return q;
}

void batching_admit(scheduler *s) {
    int reserve = s->blocks.total / 100 + 1;
    while (s->waiting_head && s->n_running < s->opt.max_seqs) {
        sequence *q = s->waiting_head;
        take_cached_prefix(s, q);
        int need = blocks_for(q->n_tokens, s->opt.block_size) - q->n_blocks;
        if (need + (s->n_running ? reserve : 0) > block_pool_available(&s->blocks)) {
            release_blocks(s, q); /* back to the cache, to be matched again next time */
            break;
        }
        s->prefix_hit_tokens += (uint64_t)q->n_computed;
        s->waiting_head = q->next;
        s->n_waiting--;
        ensure_blocks(s, q, q->n_tokens);
        insert_by_arrival(&s->running, q);
        s->n_running++;
    }
    fix_waiting_tail(s);
}

/* ---- planning a step ----------------------------------------------------------------------- */

static bool in_running(const scheduler *s, const sequence *q) {
    for (const sequence *r = s->running; r; r = r->next)
        if (r == q) return true;
    return false;
}

/* Drops entries of sequences preempted after they were planned. */
static void plan_prune(scheduler *s, step_plan *plan, int *budget) {
    int k = 0;
    for (int i = 0; i < plan->n; i++) {
        if (in_running(s, plan->seq[i])) {
            plan->seq[k] = plan->seq[i], plan->chunk[k] = plan->chunk[i], plan->sample[k] = plan->sample[i];
            k++;
        } else {
            *budget += plan->chunk[i];
        }
    }
    plan->n = k;
}

int batching_prefill_budget(const scheduler *s) {
    int cap = s->opt.max_batch_tokens;
    if (s->opt.max_prefill_tokens > 0) return s->opt.max_prefill_tokens < cap ? s->opt.max_prefill_tokens : cap;
    if (s->opt.max_prefill_tokens == 0) return cap; /* off, the default */
    double fixed, per_token;
    if (!step_timing_line(&s->timing, &fixed, &per_token)) return 1; /* not known yet: the cautious end */
    double k = (fixed + per_token) / (2 * per_token) + 1e-9; /* 2.9999… from rounding is 3 */
    return k < 1 ? 1 : k > cap ? cap : (int)k;
}

void batching_plan(scheduler *s, step_plan *plan) {
    int budget = s->opt.max_batch_tokens, prefill = -1; /* -1: not capped (nothing decodes) */
    plan->n = 0;
    for (int pass = 0; pass < 2; pass++) { /* decode tokens first, then prompt chunks */
        if (pass == 1 && plan->n > 0) prefill = batching_prefill_budget(s);
        for (sequence *q = s->running; q && plan->n < MAX_PLAN && budget > 0;) {
            int left = q->n_tokens - q->n_computed;
            bool decoding = left == 1 && q->n_computed >= q->prompt_len;
            bool first_prefill = q->n_tokens == q->prompt_len; /* no token produced: not a recomputation */
            if (left <= 0 || (pass == 0) != decoding || (first_prefill && prefill == 0)) {
                q = q->next;
                continue;
            }
            int chunk = left < budget ? left : budget;
            if (first_prefill && prefill > 0 && chunk > prefill) chunk = prefill;
            bool have = ensure_blocks(s, q, q->n_computed + chunk), evicted_self = false;
            while (!have && !evicted_self) {
                sequence *victim = preempt_newest(s);
                evicted_self = victim == q;
                if (!evicted_self) plan_prune(s, plan, &budget);
                have = !evicted_self && ensure_blocks(s, q, q->n_computed + chunk);
            }
            if (evicted_self) break; /* q was the newest: nothing after it */
            plan->seq[plan->n] = q;
            plan->chunk[plan->n] = chunk;
            plan->sample[plan->n] = q->n_computed + chunk == q->n_tokens;
            plan->n++;
            budget -= chunk;
            if (first_prefill && prefill > 0) prefill -= chunk;
            q = q->next; /* not a saved `next`: preemption may have taken it off the list */
        }
    }
}
