/* membership.c — workers, leases, and the group (see membership.h). */
#include "coordinator/membership.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/log.h"
#include "facet/v1/worker.pb-c.h"

#define ABORT_TIMEOUT_MS 300 /* best effort: a frozen survivor must not hold up the next group */
#define TICK_MS 50
#define MAX_EVENTS 8

typedef struct worker_entry {
    char id[64];
    char address[256];
    char device[128];
    char state[256];      /* as the worker last reported it */
    int requested_rank;   /* -1: any */
    double registered_at, last_seen;
    double suspect_since; /* a step or RPC to it failed then: not chosen until it is heard from again */
    bool failed;          /* it could not load its shard: never chosen (until it restarts) */
    bool dead;            /* its lease lapsed: freed once no step uses it */
    bool busy;            /* its last Register said a Load or Step was running */
    int registrations;    /* since it was added or came back: chosen only from the second, when it
                             surely holds the epoch the first reply announced (a Load past it is refused) */
    char failure[ERRBUF_LEN];
    int rank;             /* in the group, else -1 */
    rpc_channel *channel;
} worker_entry;

typedef enum { GROUP_NONE, GROUP_FORMING, GROUP_READY } group_state;

struct membership {
    membership_options opt;
    kv_store *store;
    group_listener on_event;
    void *listener_ctx;

    pthread_mutex_t mu;
    pthread_cond_t cv;  /* wakes the thread: a failure to act on, stopping */
    pthread_t thread;
    bool started, stopping;

    worker_entry **workers;
    int n_workers, cap_workers;
    group_state group;
    uint64_t epoch;
    int group_tp;                        /* the group's size while FORMING or READY */
    worker_entry *members[FACET_MAX_TP]; /* by rank, while FORMING or READY */
    bool ever_formed;                    /* a group has served: a lost one may be replaced by a smaller */
    double no_group_since;               /* when the last group was lost */
    double full_since;                   /* a smaller group serves and enough workers for a full one are there: since when */
    bool scheduler_busy;                 /* membership_set_busy */
    bool size_failed[FACET_MAX_TP + 1];  /* a smaller size whose Load failed (memory): not tried again */
    char not_ready[ERRBUF_LEN];          /* why there is no group, for /ready and errors (no ids or addresses) */
    bool not_ready_specific;             /* not_ready says more than "waiting for workers": keep it */
    int views;                           /* group_views handed out: worker entries stay while > 0 */

    /* what the thread does next, outside the lock */
    group_event events[MAX_EVENTS];
    int n_events;
    char abort_addr[FACET_MAX_TP][256];
    int n_abort;
    uint64_t abort_epoch;
    char abort_reason[ERRBUF_LEN];
};

/* ---- the worker table ---------------------------------------------------------------- */

static worker_entry *worker_find(membership *m, const char *id) {
    for (int i = 0; i < m->n_workers; i++)
        if (strcmp(m->workers[i]->id, id) == 0) return m->workers[i];
    return NULL;
}

static void worker_remove(membership *m, int i) {
    rpc_channel_free(m->workers[i]->channel);
    free(m->workers[i]);
    memmove(&m->workers[i], &m->workers[i + 1], (size_t)(m->n_workers - i - 1) * sizeof *m->workers);
    m->n_workers--;
}

static bool worker_live(const membership *m, const worker_entry *w, double now) {
    return !w->dead && now - w->last_seen <= m->opt.lease_ms / 1e3;
}

/* Can it join the next group? It must have registered twice (it has the
 * epoch the first reply announced); a worker that missed a step deadline
 * (suspect) must be heard from since, and not still stuck in that step (busy). */
static bool worker_eligible(const membership *m, const worker_entry *w, double now) {
    return worker_live(m, w, now) && !w->failed && w->rank < 0 && w->registrations >= 2 &&
           w->last_seen > w->suspect_since && !(w->suspect_since > 0 && w->busy);
}

/* Who holds or asked for a rank (NULL if nobody). */
static const worker_entry *rank_holder(membership *m, int rank, const char *except_id, double now) {
    for (int i = 0; i < m->n_workers; i++) {
        const worker_entry *w = m->workers[i];
        if (strcmp(w->id, except_id) == 0 || !worker_live(m, w, now) || w->failed) continue;
        if (w->rank == rank || w->requested_rank == rank) return w;
    }
    return NULL;
}

/* ---- events ------------------------------------------------------------------------- */

/* Queues an event for the thread to publish (mu held). */
static void queue_event(membership *m, const group_event *ev) {
    if (m->n_events < MAX_EVENTS) m->events[m->n_events++] = *ev;
    else m->events[MAX_EVENTS - 1] = *ev; /* never reached: the thread drains every tick */
    pthread_cond_broadcast(&m->cv);
}

static void publish_queued(membership *m) {
    pthread_mutex_lock(&m->mu);
    group_event evs[MAX_EVENTS];
    int n = m->n_events;
    memcpy(evs, m->events, (size_t)n * sizeof *evs);
    m->n_events = 0;
    pthread_mutex_unlock(&m->mu);
    for (int i = 0; i < n; i++) m->on_event(m->listener_ctx, &evs[i]);
}

/* ---- registration ------------------------------------------------------------------- */

static void reply_register(rpc_call *call, bool accepted, const char *reason, const membership *m) {
    Facet__V1__RegisterResponse resp = FACET__V1__REGISTER_RESPONSE__INIT;
    resp.accepted = accepted;
    resp.reason = (char *)(reason ? reason : "");
    resp.protocol_version = FACET_PROTOCOL_VERSION;
    resp.heartbeat_ms = (uint32_t)m->opt.heartbeat_ms;
    resp.lease_ms = (uint32_t)m->opt.lease_ms;
    resp.epoch = m->epoch; /* read unlocked: a stale value only narrows what the worker accepts */
    rpc_call_reply(call, &resp.base);
}

/* Checks a newcomer (mu held); NULL if it may join, else why not. */
static const char *check_newcomer(membership *m, const Facet__V1__RegisterRequest *req, double now, char *why,
                                  size_t len) {
    if (req->requested_rank >= m->opt.tp) {
        snprintf(why, len, "rank %d does not exist: the group has %d rank%s", req->requested_rank, m->opt.tp,
                 m->opt.tp > 1 ? "s" : "");
        return why;
    }
    if (req->requested_rank >= 0) {
        const worker_entry *h = rank_holder(m, req->requested_rank, req->worker_id, now);
        if (h) {
            log_info("rank %d asked for by worker %s is held by worker %s at %s", req->requested_rank, req->worker_id,
                     h->id, h->address);
            snprintf(why, len, "rank %d is taken by another worker", req->requested_rank);
            return why;
        }
    }
    if (!*req->worker_id || !*req->address) {
        snprintf(why, len, "a registration needs a worker id and an address");
        return why;
    }
    return NULL;
}

static worker_entry *add_worker(membership *m, const Facet__V1__RegisterRequest *req, double now) {
    worker_entry *w = xcalloc(1, sizeof *w);
    snprintf(w->id, sizeof w->id, "%s", req->worker_id);
    snprintf(w->address, sizeof w->address, "%s", req->address);
    w->requested_rank = req->requested_rank;
    w->rank = -1;
    w->registered_at = now;
    w->suspect_since = -1;
    w->channel = rpc_channel_create(req->address, m->opt.security);
    if (m->n_workers == m->cap_workers) {
        m->cap_workers = m->cap_workers ? 2 * m->cap_workers : 16;
        m->workers = xrealloc(m->workers, (size_t)m->cap_workers * sizeof *m->workers);
    }
    m->workers[m->n_workers++] = w;
    log_info("worker %s registered from %s (%s)%s", w->id, w->address, req->device,
             w->requested_rank >= 0 ? " asking for a rank" : "");
    pthread_cond_broadcast(&m->cv);
    return w;
}

void membership_handle_register(void *ctx, rpc_call *call, const ProtobufCMessage *request) {
    membership *m = ctx;
    const Facet__V1__RegisterRequest *req = (const Facet__V1__RegisterRequest *)request;
    char why[ERRBUF_LEN];
    if (req->protocol_version != FACET_PROTOCOL_VERSION) {
        snprintf(why, sizeof why, "this worker speaks protocol version %u; the coordinator speaks %d", req->protocol_version,
                 FACET_PROTOCOL_VERSION);
        log_warn("refused a worker: worker %s at %s: %s", req->worker_id, req->address, why);
        reply_register(call, false, why, m);
        return;
    }
    double now = clock_now_s();
    pthread_mutex_lock(&m->mu);
    worker_entry *w = worker_find(m, req->worker_id);
    const char *refusal = w ? NULL : check_newcomer(m, req, now, why, sizeof why);
    if (!w && !refusal) w = add_worker(m, req, now);
    if (w) {
        if (w->dead) {
            log_info("worker %s at %s is back", w->id, w->address);
            w->registrations = 0;
        }
        w->registrations++;
        w->dead = false;
        w->last_seen = now;
        w->busy = req->busy;
        /* a restarted coordinator continues from the highest epoch its workers report */
        if (m->group == GROUP_NONE && req->epoch > m->epoch) {
            log_info("adopting epoch %" PRIu64 " from worker %s", req->epoch, w->id);
            m->epoch = req->epoch;
        }
        snprintf(w->device, sizeof w->device, "%s", req->device);
        snprintf(w->state, sizeof w->state, "%s", req->state);
    }
    pthread_mutex_unlock(&m->mu);
    if (refusal) log_warn("refused worker %s at %s: %s", req->worker_id, req->address, refusal);
    reply_register(call, refusal == NULL, refusal, m);
}

/* ---- breaking a group ---------------------------------------------------------------- */

/* The group is lost (mu held): members are freed for the next formation,
 * survivors will get Abort, the listener LOST. detail goes to the log (and
 * to the survivors); public is what clients may read. */
static void group_break(membership *m, const char *detail, const char *public) {
    if (m->group == GROUP_NONE) return;
    log_warn("group of epoch %" PRIu64 " lost: %s", m->epoch, detail);
    m->n_abort = 0;
    for (int r = 0; r < m->group_tp; r++) {
        worker_entry *w = m->members[r];
        if (!w) continue;
        snprintf(m->abort_addr[m->n_abort++], sizeof m->abort_addr[0], "%s", w->address);
        w->rank = -1;
        m->members[r] = NULL;
    }
    m->abort_epoch = m->epoch;
    snprintf(m->abort_reason, sizeof m->abort_reason, "%s", detail);
    m->group = GROUP_NONE;
    m->no_group_since = clock_now_s();
    snprintf(m->not_ready, sizeof m->not_ready, "re-forming the group: %s", public);
    m->not_ready_specific = true;
    group_event ev = {.kind = GROUP_LOST, .epoch = m->epoch};
    snprintf(ev.reason, sizeof ev.reason, "%s", public);
    queue_event(m, &ev);
}

/* Tells the survivors of a broken group to drop its communicator. */
static void send_pending_aborts(membership *m) {
    pthread_mutex_lock(&m->mu);
    int n = m->n_abort;
    char addr[FACET_MAX_TP][256];
    memcpy(addr, m->abort_addr, (size_t)n * sizeof addr[0]);
    Facet__V1__AbortRequest req = FACET__V1__ABORT_REQUEST__INIT;
    char reason[ERRBUF_LEN];
    snprintf(reason, sizeof reason, "%s", m->abort_reason);
    req.epoch = m->abort_epoch;
    req.reason = reason;
    m->n_abort = 0;
    pthread_mutex_unlock(&m->mu);
    if (n == 0) return;
    rpc_fanout calls[FACET_MAX_TP];
    rpc_channel *channels[FACET_MAX_TP];
    for (int i = 0; i < n; i++) {
        channels[i] = rpc_channel_create(addr[i], m->opt.security);
        calls[i] = (rpc_fanout){.channel = channels[i], .request = &req.base};
    }
    rpc_unary_fanout(calls, n, RPC_WORKER_ABORT, ABORT_TIMEOUT_MS);
    for (int i = 0; i < n; i++) {
        free(calls[i].response);
        rpc_channel_free(channels[i]);
    }
}

/* Leases: a member gone silent breaks the group; the dead are forgotten
 * once no step in flight still uses their channel (mu held). */
static void expire_leases(membership *m, double now) {
    for (int i = m->n_workers - 1; i >= 0; i--) {
        worker_entry *w = m->workers[i];
        if (!w->dead && !worker_live(m, w, now)) {
            char detail[ERRBUF_LEN], public[128];
            snprintf(detail, sizeof detail, "worker %s (rank %d at %s) was lost: no heartbeat for %.1f s", w->id, w->rank,
                     w->address, now - w->last_seen);
            snprintf(public, sizeof public, "a worker of the group was lost (no heartbeat for %.1f s)", now - w->last_seen);
            if (w->rank >= 0) group_break(m, detail, public);
            log_info("forgetting worker %s at %s (lease lapsed)", w->id, w->address);
            w->dead = true;
        }
        if (w->dead && m->views == 0) worker_remove(m, i);
    }
}

void membership_report_step_failure(membership *m, const group_view *g, const rpc_fanout *calls, char *out,
                                    size_t len) {
    char detail[ERRBUF_LEN] = "";
    bool any_lost = false;
    double now = clock_now_s();
    pthread_mutex_lock(&m->mu);
    bool current = m->group == GROUP_READY && m->epoch == g->epoch;
    /* the unreachable first (they are the cause), then what the others saw */
    for (int pass = 0; pass < 2; pass++) {
        for (int r = 0; r < g->size; r++) {
            bool lost = calls[r].code != RPC_OK && calls[r].code != RPC_ABORTED;
            if (calls[r].code == RPC_OK || lost != (pass == 0)) continue;
            size_t used = strlen(detail);
            worker_entry *w = current ? m->members[r] : NULL;
            any_lost |= lost;
            if (lost && w) {
                w->suspect_since = now;
                snprintf(detail + used, sizeof detail - used, "%sworker %s (rank %d at %s) was lost: %s", used ? "; " : "",
                         w->id, r, w->address, calls[r].err.msg);
            } else if (lost) {
                snprintf(detail + used, sizeof detail - used, "%srank %d was lost: %s", used ? "; " : "", r, calls[r].err.msg);
            } else {
                snprintf(detail + used, sizeof detail - used, "%s(%s)", used ? " " : "", calls[r].err.msg);
            }
        }
    }
    if (!detail[0]) snprintf(detail, sizeof detail, "rank 0 sent a malformed step response");
    snprintf(out, len, "%s", any_lost ? "a worker of the group was lost" : "a step of the group failed");
    if (current) group_break(m, detail, out);
    else log_warn("a step of epoch %" PRIu64 " failed: %s", g->epoch, detail);
    pthread_mutex_unlock(&m->mu);
}

/* ---- the group, for steps ------------------------------------------------------------------ */

bool membership_acquire(membership *m, uint64_t epoch, group_view *g) {
    pthread_mutex_lock(&m->mu);
    bool ok = m->group == GROUP_READY && m->epoch == epoch;
    if (ok) {
        g->epoch = epoch;
        g->size = m->group_tp;
        for (int r = 0; r < m->group_tp; r++) g->channels[r] = m->members[r]->channel;
        m->views++;
    }
    pthread_mutex_unlock(&m->mu);
    return ok;
}

void membership_release(membership *m, group_view *g) {
    pthread_mutex_lock(&m->mu);
    m->views--;
    pthread_mutex_unlock(&m->mu);
    g->size = 0;
}

bool membership_ready(membership *m, char *why, size_t why_len) {
    pthread_mutex_lock(&m->mu);
    bool ready = m->group == GROUP_READY;
    if (!ready && why) snprintf(why, why_len, "%s", m->not_ready);
    pthread_mutex_unlock(&m->mu);
    return ready;
}

void membership_counts(membership *m, int *live, int *in_group, int *failed) {
    double now = clock_now_s();
    *live = *in_group = *failed = 0;
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < m->n_workers; i++) {
        const worker_entry *w = m->workers[i];
        bool l = worker_live(m, w, now);
        *live += l;
        *in_group += l && w->rank >= 0;
        *failed += l && w->failed;
    }
    pthread_mutex_unlock(&m->mu);
}

/* ---- forming a group --------------------------------------------------------------------- */

/* Picks tp members by rank (mu held). False if there are not enough. */
static bool choose_members(membership *m, int tp, double now, worker_entry **members) {
    for (int r = 0; r < tp; r++) members[r] = NULL;
    for (int i = 0; i < m->n_workers; i++) { /* requested ranks first */
        worker_entry *w = m->workers[i];
        if (worker_eligible(m, w, now) && w->requested_rank >= 0 && w->requested_rank < tp && !members[w->requested_rank])
            members[w->requested_rank] = w;
    }
    for (int i = 0; i < m->n_workers; i++) { /* then anyone, in order of registration */
        worker_entry *w = m->workers[i];
        if (!worker_eligible(m, w, now) || w->requested_rank >= 0) continue;
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

static int count_eligible(membership *m, double now) {
    int n = 0;
    for (int i = 0; i < m->n_workers; i++) n += worker_eligible(m, m->workers[i], now);
    return n;
}

/* Says why no group forms (mu held), unless a more specific reason is standing. */
static void note_waiting(membership *m, double now) {
    int eligible = count_eligible(m, now), failed = 0;
    for (int i = 0; i < m->n_workers; i++) failed += m->workers[i]->failed && worker_live(m, m->workers[i], now);
    if (!m->not_ready_specific)
        snprintf(m->not_ready, sizeof m->not_ready, "waiting for workers: %d of %d ready to join%s", eligible, m->opt.tp,
                 failed ? " (some failed to load)" : "");
}

/* Load on every member; a worker that cannot load is marked failed -- unless
 * the group is a smaller one, whose bigger shards may not fit where the
 * full group's do: then the size is marked, not the worker. */
static bool load_members(membership *m, uint64_t epoch, int tp, worker_entry **members, int *kv_blocks) {
    Facet__V1__LoadRequest req[FACET_MAX_TP];
    rpc_fanout calls[FACET_MAX_TP];
    for (int r = 0; r < tp; r++) {
        facet__v1__load_request__init(&req[r]);
        req[r].epoch = epoch;
        req[r].model_dir = (char *)m->opt.model_dir;
        req[r].rank = r;
        req[r].tp_size = tp;
        req[r].kv_blocks = (uint32_t)m->opt.kv_blocks;
        req[r].block_size = (uint32_t)m->opt.block_size;
        req[r].max_batch_tokens = (uint32_t)m->opt.max_batch_tokens;
        req[r].protocol_version = FACET_PROTOCOL_VERSION;
        calls[r] = (rpc_fanout){.channel = members[r]->channel, .request = &req[r].base};
    }
    rpc_unary_fanout(calls, tp, RPC_WORKER_LOAD, m->opt.load_timeout_ms);
    bool ok = true;
    *kv_blocks = 0;
    pthread_mutex_lock(&m->mu);
    for (int r = 0; r < tp; r++) {
        Facet__V1__LoadResponse *resp =
            calls[r].code == RPC_OK ? facet__v1__load_response__unpack(NULL, calls[r].response_len, calls[r].response) : NULL;
        if (resp) {
            if (*kv_blocks == 0 || (int)resp->kv_blocks < *kv_blocks) *kv_blocks = (int)resp->kv_blocks;
            facet__v1__load_response__free_unpacked(resp, NULL);
        } else {
            ok = false;
            worker_entry *w = members[r];
            if (calls[r].code == RPC_FAILED_PRECONDITION && tp < m->opt.tp) {
                m->size_failed[tp] = true; /* the smaller group's shard does not fit: try a smaller one */
            } else if (calls[r].code == RPC_FAILED_PRECONDITION) {
                w->failed = true; /* it cannot hold this shard: do not ask again */
                snprintf(w->failure, sizeof w->failure, "%s", calls[r].err.msg);
            } else {
                w->suspect_since = clock_now_s();
            }
            log_warn("worker %s (for rank %d) did not load: %s", w->id, r, calls[r].err.msg);
            snprintf(m->not_ready, sizeof m->not_ready, "a worker could not load rank %d (the coordinator's log says why)", r);
            m->not_ready_specific = true;
        }
        free(calls[r].response);
    }
    pthread_mutex_unlock(&m->mu);
    return ok;
}

static bool init_comm_members(membership *m, uint64_t epoch, int tp, worker_entry **members) {
    Facet__V1__InitCommRequest req[FACET_MAX_TP];
    rpc_fanout calls[FACET_MAX_TP];
    char prefix[64];
    snprintf(prefix, sizeof prefix, "epoch-%" PRIu64 "/", epoch);
    for (int r = 0; r < tp; r++) {
        facet__v1__init_comm_request__init(&req[r]);
        req[r].epoch = epoch;
        req[r].rank = r;
        req[r].size = tp;
        req[r].backend = (char *)(m->opt.comm ? m->opt.comm : "auto");
        req[r].prefix = prefix;
        req[r].timeout_ms = (uint32_t)m->opt.comm_timeout_ms;
        calls[r] = (rpc_fanout){.channel = members[r]->channel, .request = &req[r].base};
    }
    rpc_unary_fanout(calls, tp, RPC_WORKER_INIT_COMM, m->opt.comm_timeout_ms + 5000);
    bool ok = true;
    pthread_mutex_lock(&m->mu);
    for (int r = 0; r < tp; r++) {
        if (calls[r].code == RPC_FAILED_PRECONDITION && strstr(calls[r].err.msg, "--comm ")) {
            /* the worker cannot reduce the way --comm asks (e.g. nccl on a CPU): asking again would not help */
            ok = false;
            members[r]->failed = true;
            snprintf(members[r]->failure, sizeof members[r]->failure, "%s", calls[r].err.msg);
            log_warn("worker %s (rank %d) refuses the communicator: %s", members[r]->id, r, calls[r].err.msg);
            snprintf(m->not_ready, sizeof m->not_ready, "rank %d cannot use --comm %s (the coordinator's log says why)", r,
                     m->opt.comm ? m->opt.comm : "auto");
            m->not_ready_specific = true;
        } else if (calls[r].code != RPC_OK) {
            ok = false;
            members[r]->suspect_since = clock_now_s();
            log_warn("worker %s (rank %d) could not join the communicator: %s", members[r]->id, r, calls[r].err.msg);
            snprintf(m->not_ready, sizeof m->not_ready, "rank %d could not join the communicator (the coordinator's log says why)", r);
            m->not_ready_specific = true;
        }
        free(calls[r].response);
    }
    pthread_mutex_unlock(&m->mu);
    return ok;
}

/* Takes the chosen members for a new epoch (mu held). */
static uint64_t begin_forming(membership *m, int tp, worker_entry **members) {
    uint64_t epoch = ++m->epoch;
    m->group = GROUP_FORMING;
    m->group_tp = tp;
    for (int r = 0; r < tp; r++) {
        m->members[r] = members[r];
        members[r]->rank = r;
    }
    snprintf(m->not_ready, sizeof m->not_ready, "forming the group of epoch %" PRIu64, epoch);
    return epoch;
}

/* The size of the group to form now (mu held), 0 for none: the configured
 * size when enough workers can join; after a lost group, once no
 * replacement came within replace_timeout_ms, the largest smaller size the
 * model allows and the workers can fill. */
static int size_to_form(membership *m, double now) {
    int eligible = count_eligible(m, now);
    if (eligible >= m->opt.tp) return m->opt.tp;
    if (!m->ever_formed || now - m->no_group_since < m->opt.replace_timeout_ms / 1e3) return 0;
    for (int i = 0; i < m->opt.n_smaller_tp; i++) {
        int tp = m->opt.smaller_tp[i];
        if (tp <= eligible && !m->size_failed[tp]) return tp;
    }
    return 0;
}

/* A smaller group grows back (mu held): when enough workers for the full
 * size are eligible and the scheduler is idle, or they have been for
 * grow_delay_ms (the requests running then are replayed on the full group). */
static void maybe_grow(membership *m, double now) {
    if (m->group != GROUP_READY || m->group_tp >= m->opt.tp) return;
    if (m->group_tp + count_eligible(m, now) < m->opt.tp) {
        m->full_since = 0;
        return;
    }
    if (m->full_since == 0) m->full_since = now;
    if (m->scheduler_busy && now - m->full_since < m->opt.grow_delay_ms / 1e3) return;
    char detail[128];
    snprintf(detail, sizeof detail, "growing back from tp=%d to tp=%d: workers are back", m->group_tp, m->opt.tp);
    group_break(m, detail, "growing back to the configured tensor-parallel size");
    m->full_since = 0;
}

/* One attempt to form a group (called without mu, from the thread). */
static void form_group(membership *m) {
    worker_entry *members[FACET_MAX_TP];
    pthread_mutex_lock(&m->mu);
    double now = clock_now_s();
    maybe_grow(m, now);
    int tp = m->group == GROUP_NONE && !m->stopping ? size_to_form(m, now) : 0;
    if (tp == 0 || !choose_members(m, tp, now, members)) {
        if (m->group == GROUP_NONE && !m->stopping) note_waiting(m, now);
        pthread_mutex_unlock(&m->mu);
        return;
    }
    uint64_t epoch = begin_forming(m, tp, members);
    pthread_mutex_unlock(&m->mu);
    kv_store_drop_before_epoch(m->store, epoch);

    log_info("forming the group of epoch %" PRIu64 " (tp=%d%s)", epoch, tp,
             tp < m->opt.tp ? ", smaller than configured: no replacement came in time" : "");
    double t0 = clock_now_s();
    int kv_blocks = 0;
    bool ok = load_members(m, epoch, tp, members, &kv_blocks) && init_comm_members(m, epoch, tp, members);

    pthread_mutex_lock(&m->mu);
    bool formed = false;
    if (m->epoch == epoch && m->group == GROUP_FORMING) {
        if (ok) {
            m->group = GROUP_READY;
            m->ever_formed = true;
            m->full_since = 0;
            m->not_ready[0] = '\0';
            m->not_ready_specific = false;
            formed = true;
            log_info("group of epoch %" PRIu64 " is serving: tp=%d, %d KV blocks of %d positions, formed in %.2f s", epoch, tp,
                     kv_blocks, m->opt.block_size, clock_now_s() - t0);
            for (int r = 0; r < tp; r++) log_info("  rank %d: worker %s at %s", r, members[r]->id, members[r]->address);
        } else {
            for (int r = 0; r < tp; r++) {
                if (m->members[r]) m->members[r]->rank = -1;
                m->members[r] = NULL;
            }
            m->group = GROUP_NONE;
        }
    }
    pthread_mutex_unlock(&m->mu);
    if (formed) {
        group_event ev = {.kind = GROUP_FORMED, .epoch = epoch, .size = tp, .kv_blocks = kv_blocks};
        m->on_event(m->listener_ctx, &ev);
    }
}

void membership_set_busy(membership *m, bool busy) {
    pthread_mutex_lock(&m->mu);
    m->scheduler_busy = busy;
    pthread_mutex_unlock(&m->mu);
}

bool membership_inject_fault(membership *m, int rank, const char *spec, char *armed, size_t armed_len, errbuf *err) {
    pthread_mutex_lock(&m->mu);
    rpc_channel *ch = m->group == GROUP_READY && rank >= 0 && rank < m->group_tp ? m->members[rank]->channel : NULL;
    int size = m->group == GROUP_READY ? m->group_tp : 0;
    if (ch) m->views++;
    pthread_mutex_unlock(&m->mu);
    if (!ch) return errbuf_set(err, "no rank %d: the group %s", rank, size ? "is smaller" : "is not serving");
    Facet__V1__InjectFaultRequest req = FACET__V1__INJECT_FAULT_REQUEST__INIT;
    req.fault = (char *)spec;
    uint8_t *resp = NULL;
    size_t n = 0;
    int code = rpc_unary(ch, RPC_WORKER_INJECT_FAULT, &req.base, &resp, &n, 2000, err);
    Facet__V1__InjectFaultResponse *r = code == RPC_OK ? facet__v1__inject_fault_response__unpack(NULL, n, resp) : NULL;
    if (r) snprintf(armed, armed_len, "%s", r->armed);
    else if (code == RPC_OK) errbuf_set(err, "InjectFault: a malformed reply");
    if (r) facet__v1__inject_fault_response__free_unpacked(r, NULL);
    free(resp);
    pthread_mutex_lock(&m->mu);
    m->views--;
    pthread_mutex_unlock(&m->mu);
    return r != NULL;
}

static void *membership_main(void *p) {
    membership *m = p;
    for (;;) {
        pthread_mutex_lock(&m->mu);
        if (m->stopping) {
            pthread_mutex_unlock(&m->mu);
            break;
        }
        expire_leases(m, clock_now_s());
        pthread_mutex_unlock(&m->mu);
        publish_queued(m);
        send_pending_aborts(m);
        form_group(m);
        pthread_mutex_lock(&m->mu);
        if (!m->stopping && m->n_events == 0) {
            struct timespec ts = clock_deadline(TICK_MS);
            pthread_cond_timedwait(&m->cv, &m->mu, &ts);
        }
        pthread_mutex_unlock(&m->mu);
    }
    return NULL;
}

/* ---- lifetime ----------------------------------------------------------------------------- */

membership *membership_create(const membership_options *opt, kv_store *store, group_listener on_event, void *ctx) {
    membership *m = xcalloc(1, sizeof *m);
    m->opt = *opt;
    m->store = store;
    m->on_event = on_event;
    m->listener_ctx = ctx;
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    snprintf(m->not_ready, sizeof m->not_ready, "waiting for %d worker%s to register", opt->tp, opt->tp > 1 ? "s" : "");
    m->epoch = opt->initial_epoch;
    return m;
}

void membership_start(membership *m) {
    facet_thread_start(&m->thread, membership_main, m, "membership");
    m->started = true;
}

void membership_stop(membership *m) {
    pthread_mutex_lock(&m->mu);
    m->stopping = true;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    if (m->started) pthread_join(m->thread, NULL);
    m->started = false;
}

void membership_free(membership *m) {
    if (!m) return;
    while (m->n_workers > 0) worker_remove(m, m->n_workers - 1);
    free(m->workers);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    free(m);
}
