/* membership.c — workers, leases, and the group (docs/PROTOCOL.md).
 *
 * A worker registers and renews its lease with Register. The membership
 * thread expires silent workers and, whenever there is no group and enough
 * live workers, forms one: a new epoch, ranks assigned (a worker asking for
 * a rank gets it; the rest in order of registration), Load on every rank,
 * then InitComm on every rank. A lost member breaks the group: requests in
 * flight fail with a retriable error naming the worker, survivors get
 * Abort, and the next formation takes a standby or a newcomer. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "coordinator/coordinator_impl.h"
#include "facet/v1/worker.pb-c.h"
#include "worker/protocol.h"

#define ABORT_TIMEOUT_MS 2000
#define TICK_MS 50

/* ---- the worker table ---------------------------------------------------------------- */

static worker_entry *worker_find(coordinator *co, const char *id) {
    for (int i = 0; i < co->n_workers; i++)
        if (strcmp(co->workers[i]->id, id) == 0) return co->workers[i];
    return NULL;
}

static void worker_remove(coordinator *co, int i) {
    rpc_channel_free(co->workers[i]->channel);
    free(co->workers[i]);
    memmove(&co->workers[i], &co->workers[i + 1], (size_t)(co->n_workers - i - 1) * sizeof *co->workers);
    co->n_workers--;
}

void workers_free(coordinator *co) {
    while (co->n_workers > 0) worker_remove(co, co->n_workers - 1);
    free(co->workers);
}

static bool worker_live(const coordinator *co, const worker_entry *w, double now) {
    return !w->dead && now - w->last_seen <= co->opt.lease_ms / 1e3;
}

/* Can it join the next group? */
static bool worker_eligible(const coordinator *co, const worker_entry *w, double now) {
    return worker_live(co, w, now) && !w->failed && w->rank < 0 && w->last_seen > w->suspect_since;
}

/* Why a requested rank cannot be had (NULL if it can). */
static const worker_entry *rank_holder(coordinator *co, int rank, const char *except_id, double now) {
    for (int i = 0; i < co->n_workers; i++) {
        const worker_entry *w = co->workers[i];
        if (strcmp(w->id, except_id) == 0 || !worker_live(co, w, now) || w->failed) continue;
        if (w->rank == rank || w->requested_rank == rank) return w;
    }
    return NULL;
}

static void reply_register(rpc_call *call, bool accepted, const char *reason, const coordinator *co) {
    Facet__V1__RegisterResponse resp = FACET__V1__REGISTER_RESPONSE__INIT;
    resp.accepted = accepted;
    resp.reason = (char *)(reason ? reason : "");
    resp.protocol_version = FACET_PROTOCOL_VERSION;
    resp.heartbeat_ms = (uint32_t)co->opt.heartbeat_ms;
    resp.lease_ms = (uint32_t)co->opt.lease_ms;
    rpc_call_reply(call, &resp.base);
}

/* Checks a newcomer; NULL if it may join, else why not. */
static const char *check_newcomer(coordinator *co, const Facet__V1__RegisterRequest *req, double now, char *why,
                                  size_t len) {
    if (req->requested_rank >= co->opt.tp) {
        snprintf(why, len, "rank %d does not exist: the group has %d rank%s", req->requested_rank, co->opt.tp,
                 co->opt.tp > 1 ? "s" : "");
        return why;
    }
    if (req->requested_rank >= 0) {
        const worker_entry *h = rank_holder(co, req->requested_rank, req->worker_id, now);
        if (h) {
            snprintf(why, len, "rank %d is taken by worker %s at %s", req->requested_rank, h->id, h->address);
            return why;
        }
    }
    if (!*req->worker_id || !*req->address) {
        snprintf(why, len, "a registration needs a worker id and an address");
        return why;
    }
    return NULL;
}

void membership_handle_register(void *ctx, rpc_call *call, const uint8_t *data, size_t len) {
    coordinator *co = ctx;
    Facet__V1__RegisterRequest *req = facet__v1__register_request__unpack(NULL, len, data);
    if (!req) return rpc_call_finish(call, RPC_INVALID_ARGUMENT, "Register: malformed request");
    char why[ERRBUF_LEN];
    if (req->protocol_version != FACET_PROTOCOL_VERSION) {
        snprintf(why, sizeof why, "worker %s at %s speaks protocol version %u; this coordinator speaks %d", req->worker_id,
                 req->address, req->protocol_version, FACET_PROTOCOL_VERSION);
        log_warn("refused a worker: %s", why);
        reply_register(call, false, why, co);
        facet__v1__register_request__free_unpacked(req, NULL);
        return;
    }
    double now = clock_now_s();
    pthread_mutex_lock(&co->mu);
    worker_entry *w = worker_find(co, req->worker_id);
    const char *refusal = w ? NULL : check_newcomer(co, req, now, why, sizeof why);
    if (!w && !refusal) {
        w = calloc(1, sizeof *w);
        snprintf(w->id, sizeof w->id, "%s", req->worker_id);
        snprintf(w->address, sizeof w->address, "%s", req->address);
        w->requested_rank = req->requested_rank;
        w->rank = -1;
        w->registered_at = now;
        w->suspect_since = -1;
        w->channel = rpc_channel_create(req->address);
        if (co->n_workers == co->cap_workers) {
            co->cap_workers = co->cap_workers ? 2 * co->cap_workers : 16;
            co->workers = realloc(co->workers, (size_t)co->cap_workers * sizeof *co->workers);
        }
        co->workers[co->n_workers++] = w;
        log_info("worker %s registered from %s (%s)%s", w->id, w->address, req->device,
                 w->requested_rank >= 0 ? " asking for a rank" : "");
        pthread_cond_broadcast(&co->cv);
    }
    if (w) {
        if (w->dead) log_info("worker %s at %s is back", w->id, w->address);
        w->dead = false;
        w->last_seen = now;
        snprintf(w->device, sizeof w->device, "%s", req->device);
        snprintf(w->state, sizeof w->state, "%s", req->state);
    }
    pthread_mutex_unlock(&co->mu);
    if (refusal) log_warn("refused worker %s at %s: %s", req->worker_id, req->address, refusal);
    reply_register(call, refusal == NULL, refusal, co);
    facet__v1__register_request__free_unpacked(req, NULL);
}

/* ---- breaking a group ---------------------------------------------------------------- */

void group_break(coordinator *co, const char *reason) {
    if (co->group == GROUP_NONE) return;
    log_warn("group of epoch %" PRIu64 " lost: %s", co->epoch, reason);
    co->n_pending_abort = 0;
    for (int r = 0; r < co->opt.tp; r++) {
        worker_entry *m = co->members[r];
        if (!m) continue;
        snprintf(co->pending_abort_addr[co->n_pending_abort++], sizeof co->pending_abort_addr[0], "%s", m->address);
        m->rank = -1;
        co->members[r] = NULL;
    }
    co->pending_abort_epoch = co->epoch;
    snprintf(co->pending_abort_reason, sizeof co->pending_abort_reason, "%s", reason);
    co->group = GROUP_NONE;
    snprintf(co->not_ready, sizeof co->not_ready, "re-forming the group: %s", reason);
    scheduler_fail_all(co, RPC_UNAVAILABLE, reason);
    pthread_cond_broadcast(&co->cv);
}

/* Tells the survivors of a broken group to drop its communicator. */
static void send_pending_aborts(coordinator *co) {
    pthread_mutex_lock(&co->mu);
    int n = co->n_pending_abort;
    char addr[MAX_TP][256];
    memcpy(addr, co->pending_abort_addr, sizeof addr);
    Facet__V1__AbortRequest req = FACET__V1__ABORT_REQUEST__INIT;
    char reason[ERRBUF_LEN];
    snprintf(reason, sizeof reason, "%s", co->pending_abort_reason);
    req.epoch = co->pending_abort_epoch;
    req.reason = reason;
    co->n_pending_abort = 0;
    pthread_mutex_unlock(&co->mu);
    if (n == 0) return;
    rpc_fanout calls[MAX_TP];
    rpc_channel *channels[MAX_TP];
    for (int i = 0; i < n; i++) {
        channels[i] = rpc_channel_create(addr[i]);
        calls[i] = (rpc_fanout){.channel = channels[i], .request = &req.base};
    }
    rpc_unary_fanout(calls, n, RPC_WORKER_ABORT, ABORT_TIMEOUT_MS);
    for (int i = 0; i < n; i++) {
        free(calls[i].response);
        rpc_channel_free(channels[i]);
    }
}

/* Leases: a member gone silent breaks the group; the dead are forgotten
 * once no step in flight still uses their channel. */
static void expire_leases(coordinator *co, double now) {
    for (int i = co->n_workers - 1; i >= 0; i--) {
        worker_entry *w = co->workers[i];
        if (!w->dead && !worker_live(co, w, now)) {
            char reason[ERRBUF_LEN];
            snprintf(reason, sizeof reason, "worker %s (rank %d at %s) was lost: no heartbeat for %.1f s", w->id, w->rank,
                     w->address, now - w->last_seen);
            if (w->rank >= 0) group_break(co, reason);
            log_info("forgetting worker %s at %s (lease lapsed)", w->id, w->address);
            w->dead = true;
        }
        if (w->dead && co->steps_in_flight == 0) worker_remove(co, i);
    }
}

/* ---- forming a group --------------------------------------------------------------------- */

/* Picks members by rank (mu held). False if there are not enough. */
static bool choose_members(coordinator *co, double now, worker_entry **members) {
    int tp = co->opt.tp;
    for (int r = 0; r < tp; r++) members[r] = NULL;
    for (int i = 0; i < co->n_workers; i++) { /* requested ranks first */
        worker_entry *w = co->workers[i];
        if (worker_eligible(co, w, now) && w->requested_rank >= 0 && w->requested_rank < tp && !members[w->requested_rank])
            members[w->requested_rank] = w;
    }
    for (int i = 0; i < co->n_workers; i++) { /* then anyone, in order of registration */
        worker_entry *w = co->workers[i];
        if (!worker_eligible(co, w, now) || w->requested_rank >= 0) continue;
        for (int r = 0; r < tp; r++)
            if (!members[r]) {
                members[r] = w;
                break;
            }
    }
    for (int r = 0; r < tp; r++)
        if (!members[r]) return false;
    return true;
}

static void count_workers(coordinator *co, double now, int *eligible, int *failed) {
    *eligible = *failed = 0;
    for (int i = 0; i < co->n_workers; i++) {
        *eligible += worker_eligible(co, co->workers[i], now);
        *failed += co->workers[i]->failed && worker_live(co, co->workers[i], now);
    }
}

/* Load on every member; a worker that cannot load is marked failed. */
static bool load_members(coordinator *co, uint64_t epoch, worker_entry **members, int *kv_blocks) {
    int tp = co->opt.tp;
    Facet__V1__LoadRequest req[MAX_TP];
    rpc_fanout calls[MAX_TP];
    for (int r = 0; r < tp; r++) {
        facet__v1__load_request__init(&req[r]);
        req[r].epoch = epoch;
        req[r].model_dir = (char *)co->opt.model_dir;
        req[r].rank = r;
        req[r].tp_size = tp;
        req[r].kv_blocks = (uint32_t)co->opt.kv_blocks;
        req[r].block_size = (uint32_t)co->opt.block_size;
        req[r].max_batch_tokens = (uint32_t)co->opt.max_batch_tokens;
        req[r].protocol_version = FACET_PROTOCOL_VERSION;
        calls[r] = (rpc_fanout){.channel = members[r]->channel, .request = &req[r].base};
    }
    rpc_unary_fanout(calls, tp, RPC_WORKER_LOAD, co->opt.load_timeout_ms);
    bool ok = true;
    *kv_blocks = 0;
    pthread_mutex_lock(&co->mu);
    for (int r = 0; r < tp; r++) {
        Facet__V1__LoadResponse *resp =
            calls[r].code == RPC_OK ? facet__v1__load_response__unpack(NULL, calls[r].response_len, calls[r].response) : NULL;
        if (resp) {
            if (*kv_blocks == 0 || (int)resp->kv_blocks < *kv_blocks) *kv_blocks = (int)resp->kv_blocks;
            facet__v1__load_response__free_unpacked(resp, NULL);
        } else {
            ok = false;
            worker_entry *w = members[r];
            if (calls[r].code == RPC_FAILED_PRECONDITION) {
                w->failed = true; /* it cannot hold this shard: do not ask again */
                snprintf(w->failure, sizeof w->failure, "%s", calls[r].err.msg);
            } else {
                w->suspect_since = clock_now_s();
            }
            log_warn("worker %s (for rank %d) did not load: %s", w->id, r, calls[r].err.msg);
            snprintf(co->not_ready, sizeof co->not_ready, "worker %s could not load rank %d: %s", w->id, r, calls[r].err.msg);
        }
        free(calls[r].response);
    }
    pthread_mutex_unlock(&co->mu);
    return ok;
}

static bool init_comm_members(coordinator *co, uint64_t epoch, worker_entry **members) {
    int tp = co->opt.tp;
    Facet__V1__InitCommRequest req[MAX_TP];
    rpc_fanout calls[MAX_TP];
    char prefix[64];
    snprintf(prefix, sizeof prefix, "epoch-%" PRIu64 "/", epoch);
    for (int r = 0; r < tp; r++) {
        facet__v1__init_comm_request__init(&req[r]);
        req[r].epoch = epoch;
        req[r].rank = r;
        req[r].size = tp;
        req[r].backend = "gloo";
        req[r].prefix = prefix;
        req[r].timeout_ms = (uint32_t)co->opt.comm_timeout_ms;
        calls[r] = (rpc_fanout){.channel = members[r]->channel, .request = &req[r].base};
    }
    rpc_unary_fanout(calls, tp, RPC_WORKER_INIT_COMM, co->opt.comm_timeout_ms + 5000);
    bool ok = true;
    pthread_mutex_lock(&co->mu);
    for (int r = 0; r < tp; r++) {
        if (calls[r].code != RPC_OK) {
            ok = false;
            members[r]->suspect_since = clock_now_s();
            log_warn("worker %s (rank %d) could not join the communicator: %s", members[r]->id, r, calls[r].err.msg);
            snprintf(co->not_ready, sizeof co->not_ready, "rank %d could not join the communicator: %s", r,
                     calls[r].err.msg);
        }
        free(calls[r].response);
    }
    pthread_mutex_unlock(&co->mu);
    return ok;
}

/* One attempt to form a group (called without mu). */
static void form_group(coordinator *co) {
    worker_entry *members[MAX_TP];
    pthread_mutex_lock(&co->mu);
    double now = clock_now_s();
    if (co->group != GROUP_NONE || co->stopping || !choose_members(co, now, members)) {
        if (co->group == GROUP_NONE && !co->stopping) {
            int eligible, failed;
            count_workers(co, now, &eligible, &failed);
            if (strncmp(co->not_ready, "re-forming", 10) != 0 && strncmp(co->not_ready, "worker", 6) != 0 &&
                strncmp(co->not_ready, "rank", 4) != 0)
                snprintf(co->not_ready, sizeof co->not_ready, "waiting for workers: %d of %d ready to join%s", eligible,
                         co->opt.tp, failed ? " (some failed to load)" : "");
        }
        pthread_mutex_unlock(&co->mu);
        return;
    }
    uint64_t epoch = ++co->epoch;
    co->group = GROUP_FORMING;
    for (int r = 0; r < co->opt.tp; r++) {
        co->members[r] = members[r];
        members[r]->rank = r;
    }
    kv_drop_before_epoch(co, epoch);
    snprintf(co->not_ready, sizeof co->not_ready, "forming the group of epoch %" PRIu64, epoch);
    pthread_mutex_unlock(&co->mu);

    log_info("forming the group of epoch %" PRIu64 " (tp=%d)", epoch, co->opt.tp);
    double t0 = clock_now_s();
    int kv_blocks = 0;
    bool ok = load_members(co, epoch, members, &kv_blocks) && init_comm_members(co, epoch, members);

    pthread_mutex_lock(&co->mu);
    if (co->epoch == epoch && co->group == GROUP_FORMING) {
        if (ok) {
            co->group = GROUP_READY;
            co->group_kv_blocks = kv_blocks;
            scheduler_reset_blocks(co, kv_blocks);
            co->not_ready[0] = '\0';
            log_info("group of epoch %" PRIu64 " is serving: tp=%d, %d KV blocks of %d positions, formed in %.2f s", epoch,
                     co->opt.tp, kv_blocks, co->opt.block_size, clock_now_s() - t0);
            for (int r = 0; r < co->opt.tp; r++) log_info("  rank %d: worker %s at %s", r, members[r]->id, members[r]->address);
        } else {
            for (int r = 0; r < co->opt.tp; r++) {
                if (co->members[r]) co->members[r]->rank = -1;
                co->members[r] = NULL;
            }
            co->group = GROUP_NONE;
        }
        pthread_cond_broadcast(&co->cv);
    }
    pthread_mutex_unlock(&co->mu);
}

void *membership_main(void *p) {
    coordinator *co = p;
    for (;;) {
        pthread_mutex_lock(&co->mu);
        if (co->stopping) {
            pthread_mutex_unlock(&co->mu);
            break;
        }
        expire_leases(co, clock_now_s());
        pthread_mutex_unlock(&co->mu);
        send_pending_aborts(co);
        form_group(co);
        usleep(TICK_MS * 1000);
    }
    return NULL;
}
