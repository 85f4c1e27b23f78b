/* service.c — the Worker service (facet.v1.Worker) and grpc.health.v1.
 *
 * One pattern for every method: a row in the table names the path, the
 * request type (the RPC layer unpacks and frees it) and whether it runs
 * under the worker's lock. Load, InitComm and Step do, one at a time in the
 * order they arrive; Abort and Health do not, so they answer while a step
 * is blocked in a collective. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/log.h"
#include "grpc/health/v1/health.pb-c.h"
#include "protocol/protocol.h"
#include "protocol/step.h"
#include "worker/worker_impl.h"

static void reply_error(rpc_call *call, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void reply_error(rpc_call *call, int code, const char *fmt, ...) {
    char msg[ERRBUF_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rpc_call_finish(call, code, msg);
}

/* ---- the methods ---------------------------------------------------------------------- */

/* How far past the epoch its coordinator last announced a Load may go: a
 * coordinator that fails to form a group retries with the next epoch every
 * 50 ms, and announces its epoch every heartbeat (250 ms). */
#define EPOCH_MARGIN 64

static void load(worker *w, rpc_call *call, const ProtobufCMessage *msg) {
    const Facet__V1__LoadRequest *req = (const Facet__V1__LoadRequest *)msg;
    const char *model = w->opt.model ? w->opt.model : req->model_dir;
    uint64_t vouched = atomic_load(&w->vouched_epoch);
    if (req->protocol_version != FACET_PROTOCOL_VERSION)
        return reply_error(call, RPC_FAILED_PRECONDITION, "Load: protocol version %u, this worker speaks %d",
                           req->protocol_version, FACET_PROTOCOL_VERSION);
    if (req->epoch < w->epoch)
        return reply_error(call, RPC_ABORTED, "Load: epoch %" PRIu64 " is older than this worker's %" PRIu64, req->epoch,
                           w->epoch);
    if (req->epoch > vouched + EPOCH_MARGIN)
        return reply_error(call, RPC_ABORTED,
                           "Load: epoch %" PRIu64 " is beyond what the coordinator has announced (%" PRIu64 " + %d)",
                           req->epoch, vouched, EPOCH_MARGIN);
    errbuf err;
    double t0 = clock_now_s();
    shard_request sr = {model, (int)req->rank, (int)req->tp_size, (int)req->kv_blocks, (int)req->block_size,
                        (int)req->max_batch_tokens};
    if (!shard_load(w, &sr, &err)) { /* the shard (and group) it had are untouched */
        log_warn("worker %s: cannot load rank %d of %d: %s", w->id, req->rank, req->tp_size, err.msg);
        return reply_error(call, RPC_FAILED_PRECONDITION, "cannot load rank %d of %d: %s", req->rank, req->tp_size, err.msg);
    }
    worker_drop_comm(w); /* a new group */
    w->epoch = req->epoch;
    w->rank = (int)req->rank;
    w->tp = (int)req->tp_size;
    worker_set_state(w, "loaded rank %d of %d", w->rank, w->tp);
    Facet__V1__LoadResponse resp = FACET__V1__LOAD_RESPONSE__INIT;
    resp.kv_blocks = (uint32_t)w->kv_blocks;
    resp.weight_bytes = engine_weights(w->engine)->bytes;
    resp.load_seconds = clock_now_s() - t0;
    rpc_call_reply(call, &resp.base);
    log_info("worker %s: loaded rank %d of %d from %s (%.1f MB, %d KV blocks) in %.2f s", w->id, w->rank, w->tp, model,
             resp.weight_bytes / 1e6, w->kv_blocks, resp.load_seconds);
}

/* The KvSet / KvGet calls Gloo's rendezvous makes, through the coordinator. */
static bool kv_set(void *ctx, const char *key, const void *data, size_t len, errbuf *err);
static int kv_get(void *ctx, const char *key, void **data, size_t *len, errbuf *err);

static void init_comm(worker *w, rpc_call *call, const ProtobufCMessage *msg) {
    const Facet__V1__InitCommRequest *req = (const Facet__V1__InitCommRequest *)msg;
    if (req->epoch != w->epoch || !w->engine)
        return reply_error(call, RPC_FAILED_PRECONDITION, "InitComm: epoch %" PRIu64 " does not match this worker's %" PRIu64 "%s",
                           req->epoch, w->epoch, w->engine ? "" : " (nothing loaded)");
    if (req->size != w->tp || req->rank != w->rank)
        return reply_error(call, RPC_FAILED_PRECONDITION, "InitComm: rank %d of %d, but rank %d of %d is loaded", req->rank,
                           req->size, w->rank, w->tp);
    comm_mode mode;
    if (!comm_mode_parse(req->backend, &mode))
        return reply_error(call, RPC_INVALID_ARGUMENT, "InitComm: backend \"%.32s\" is not one of auto, nccl, ipc, host",
                           req->backend);
    /* the rendezvous namespace is the epoch's: a caller cannot send the group to wait on foreign keys */
    char prefix[64];
    snprintf(prefix, sizeof prefix, "epoch-%" PRIu64 "/", w->epoch);
    if (req->prefix[0] && strcmp(req->prefix, prefix) != 0)
        return reply_error(call, RPC_INVALID_ARGUMENT, "InitComm: prefix \"%.64s\" is not this epoch's (\"%s\")",
                           req->prefix, prefix);
    worker_drop_comm(w);
    errbuf err;
    char host[sizeof w->address];
    snprintf(host, sizeof host, "%s", w->address);
    char *colon = strrchr(host, ':');
    if (colon) *colon = '\0';
    comm_store store = {w, kv_set, kv_get};
    comm_options co = {.rank = req->rank, .size = req->size, .prefix = prefix, .hostname = host,
                       .timeout_ms = (int)req->timeout_ms,
                       .max_floats = (size_t)engine_max_batch_tokens(w->engine) * engine_weights(w->engine)->cfg.hidden_size};
    if (!group_comm_create(w, &co, mode, &store, &err)) {
        /* an impossible --comm is the caller's mistake; anything else is the group's trouble */
        int code = strstr(err.msg, "--comm ") ? RPC_FAILED_PRECONDITION : RPC_UNAVAILABLE;
        return reply_error(call, code, "InitComm: %s", err.msg);
    }
    worker_set_state(w, "ready: rank %d of %d, epoch %" PRIu64, w->rank, w->tp, w->epoch);
    Facet__V1__InitCommResponse resp = FACET__V1__INIT_COMM_RESPONSE__INIT;
    rpc_call_reply(call, &resp.base);
}

/* A fault due at this step that acts before the step runs (kill, freeze,
 * hang, slow); drop and delay act on the reply. */
static void fault_before_step(const fault *f) {
    switch (f->kind) {
    case FAULT_KILL: fault_kill_now(); break;
    case FAULT_FREEZE: fault_freeze_now(f->ms); break;
    case FAULT_HANG:
    case FAULT_SLOW:
        log_warn("fault injected: %s for %d ms", f->kind == FAULT_HANG ? "the step hangs" : "the step is slow", f->ms);
        usleep((useconds_t)f->ms * 1000);
        break;
    default: break;
    }
}

/* drop: hold the reply until the caller gives up (or 10 minutes), never send it. */
static void drop_reply(rpc_call *call) {
    log_warn("fault injected: the step's reply is dropped");
    for (int waited = 0; waited < 600000 && !rpc_call_cancelled(call); waited += 10) usleep(10 * 1000);
}

/* What a fault does to a step's reply. */
typedef enum { REPLY_SEND, REPLY_DROP, REPLY_DELAY } reply_action;

/* One step (w->mu held): the status to answer with, err its message, resp on OK. A fault due at this step
 * acts before it (kill, freeze, hang, slow) or on the reply (*action: drop it, or delay it by *delay_ms). */
static int run_step(worker *w, const Facet__V1__StepRequest *req, Facet__V1__StepResponse *resp, errbuf *err,
                    reply_action *action, int *delay_ms) {
    *action = REPLY_SEND;
    if (req->epoch != w->epoch || !w->engine || (w->tp > 1 && !w->comm))
        return errbuf_set(err, "Step of epoch %" PRIu64 ": this worker is at epoch %" PRIu64 " (%s)", req->epoch,
                          (uint64_t)w->epoch, !w->engine ? "nothing loaded" : w->tp > 1 && !w->comm ? "no communicator" : "stale"),
               RPC_FAILED_PRECONDITION;
    if (!step_request_check(req, err)) return RPC_INVALID_ARGUMENT;
    fault f;
    if (w->opt.allow_faults && faults_on_step(&w->faults, &f)) {
        fault_before_step(&f);
        *action = f.kind == FAULT_DROP ? REPLY_DROP : f.kind == FAULT_DELAY ? REPLY_DELAY : REPLY_SEND;
        *delay_ms = f.ms;
    }
    int code = step_exec(w, req, resp, err);
    if (code != RPC_OK) errbuf_prefix(err, "rank %d", w->rank);
    return code;
}

/* After answering ABORTED (w->mu held): the group is broken, so its communicators go and the worker waits for
 * a new epoch. After the answer, not before: a device communicator's teardown may wait a second for its peers,
 * and the coordinator should hear "ABORTED" (this worker is fine) before its step deadline. */
static void group_failed(worker *w, const errbuf *err) {
    worker_set_state(w, "group failed: %s", err->msg);
    worker_drop_comm(w);
}

/* A delay fault holds an OK reply back. */
static void delay_reply(int ms) {
    log_warn("fault injected: the step's reply waits %d ms", ms);
    usleep((useconds_t)ms * 1000);
}

static void step(worker *w, rpc_call *call, const ProtobufCMessage *msg) {
    errbuf err;
    reply_action action;
    int delay_ms = 0;
    Facet__V1__StepResponse resp = FACET__V1__STEP_RESPONSE__INIT;
    int code = run_step(w, (const Facet__V1__StepRequest *)msg, &resp, &err, &action, &delay_ms);
    if (action == REPLY_DROP) {
        drop_reply(call);
    } else if (code == RPC_OK) {
        if (action == REPLY_DELAY) delay_reply(delay_ms);
        rpc_call_reply(call, &resp.base);
    } else {
        rpc_call_finish(call, code, err.msg);
        if (code == RPC_ABORTED) group_failed(w, &err);
    }
    step_response_free(&resp);
}

/* The coordinator's steps over one stream: each request runs as a unary Step would (under w->mu, marked busy),
 * and its outcome goes back as a StepStreamReply on the same stream. Ends when the coordinator closes or
 * cancels the stream (a new group, a timeout, shutdown), or after a dropped reply (a fault: the coordinator
 * gives up on the stream and opens a new one). */
static void step_stream(worker *w, rpc_call *call, const ProtobufCMessage *first) {
    ProtobufCMessage *owned = NULL;
    for (const ProtobufCMessage *msg = first; msg;) {
        errbuf err = {{0}};
        reply_action action;
        int delay_ms = 0;
        Facet__V1__StepResponse resp = FACET__V1__STEP_RESPONSE__INIT;
        pthread_mutex_lock(&w->mu);
        atomic_store(&w->busy, true);
        int code = run_step(w, (const Facet__V1__StepRequest *)msg, &resp, &err, &action, &delay_ms);
        atomic_store(&w->busy, false);
        pthread_mutex_unlock(&w->mu);
        bool sent = false;
        if (action != REPLY_DROP) {
            if (code == RPC_OK && action == REPLY_DELAY) delay_reply(delay_ms);
            Facet__V1__StepStreamReply reply = FACET__V1__STEP_STREAM_REPLY__INIT;
            reply.code = code;
            reply.message = code == RPC_OK ? "" : err.msg;
            reply.response = code == RPC_OK ? &resp : NULL;
            sent = rpc_call_send_message(call, &reply.base);
        } else {
            drop_reply(call);
        }
        if (code == RPC_ABORTED) { /* unless a new group has formed meanwhile (mu was free while answering) */
            pthread_mutex_lock(&w->mu);
            if (w->epoch == ((const Facet__V1__StepRequest *)msg)->epoch) group_failed(w, &err);
            pthread_mutex_unlock(&w->mu);
        }
        step_response_free(&resp);
        if (owned) protobuf_c_message_free_unpacked(owned, NULL);
        owned = NULL;
        bool malformed = false;
        if (sent) msg = owned = rpc_call_recv_message(call, &facet__v1__step_request__descriptor, &malformed);
        else msg = NULL;
        if (malformed) rpc_call_finish(call, RPC_INVALID_ARGUMENT, "StepStream: malformed StepRequest");
    }
}

static void inject_fault(worker *w, rpc_call *call, const ProtobufCMessage *msg) {
    const Facet__V1__InjectFaultRequest *req = (const Facet__V1__InjectFaultRequest *)msg;
    if (!w->opt.allow_faults)
        return reply_error(call, RPC_FAILED_PRECONDITION,
                           "fault injection is off on this worker (start it with --allow-fault-injection)");
    fault f;
    errbuf err;
    if (!fault_parse(req->fault, &f, &err)) return reply_error(call, RPC_INVALID_ARGUMENT, "%s", err.msg);
    if (faults_armed(&w->faults) >= FAULTS_MAX)
        return reply_error(call, RPC_RESOURCE_EXHAUSTED, "at most %d faults armed at once", FAULTS_MAX);
    char armed[128];
    fault_describe(&f, armed, sizeof armed);
    Facet__V1__InjectFaultResponse resp = FACET__V1__INJECT_FAULT_RESPONSE__INIT;
    resp.armed = armed;
    rpc_call_reply(call, &resp.base); /* first: a kill armed now may fire before a later reply could leave */
    if (faults_add(&w->faults, &f, &err)) log_warn("worker %s: fault armed: %s", w->id, armed);
    else log_warn("worker %s: %s", w->id, err.msg);
}

static void abort_group(worker *w, rpc_call *call, const ProtobufCMessage *msg) {
    const Facet__V1__AbortRequest *req = (const Facet__V1__AbortRequest *)msg;
    uint64_t epoch = w->epoch; /* unlocked: Abort must answer while a step holds w->mu; a torn read only refuses */
    if (req->epoch != epoch)
        return reply_error(call, RPC_FAILED_PRECONDITION, "Abort of epoch %" PRIu64 ": this worker is at epoch %" PRIu64,
                           req->epoch, epoch);
    pthread_mutex_lock(&w->comm_mu);
    worker_abort_comms(w); /* a step blocked in a collective fails now or at its timeout */
    pthread_mutex_unlock(&w->comm_mu);
    log_info("worker %s: group of epoch %" PRIu64 " aborted: %s", w->id, req->epoch, req->reason);
    worker_set_state(w, "aborted: %s", req->reason);
    Facet__V1__AbortResponse resp = FACET__V1__ABORT_RESPONSE__INIT;
    rpc_call_reply(call, &resp.base);
}

static void health(worker *w, rpc_call *call, const ProtobufCMessage *msg) {
    (void)msg;
    char state[256];
    worker_get_state(w, state, sizeof state);
    Facet__V1__HealthResponse resp = FACET__V1__HEALTH_RESPONSE__INIT;
    resp.state = state;
    resp.epoch = w->epoch;
    resp.rank = w->rank;
    rpc_call_reply(call, &resp.base);
}

/* grpc.health.v1, as gRPC servers answer it: the server as a whole (service
 * "", what a Kubernetes gRPC probe asks by default) is SERVING while the
 * process answers -- a spare, or a worker loading its shard, is alive, and
 * restarting it would not help; "facet.v1.Worker" is SERVING only while the
 * worker is in a formed group; any other service is NOT_FOUND. */
static void grpc_health(worker *w, rpc_call *call, const ProtobufCMessage *msg) {
    const Grpc__Health__V1__HealthCheckRequest *req = (const Grpc__Health__V1__HealthCheckRequest *)msg;
    const char *service = req->service ? req->service : "";
    Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    if (service[0] == '\0') {
        resp.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    } else if (strcmp(service, "facet.v1.Worker") == 0) {
        char state[256];
        worker_get_state(w, state, sizeof state);
        resp.status = strncmp(state, "ready", 5) == 0 ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                                                      : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
    } else {
        rpc_call_finish(call, RPC_NOT_FOUND, "unknown service: ask \"\" (the worker process) or \"facet.v1.Worker\" (in a group)");
        return;
    }
    rpc_call_reply(call, &resp.base);
}

static void grpc_health_watch(worker *w, rpc_call *call, const ProtobufCMessage *msg) {
    (void)w, (void)msg;
    rpc_call_finish(call, RPC_UNIMPLEMENTED, "Watch is not implemented: poll Check");
}

/* ---- the table and its one handler --------------------------------------------------------- */

typedef struct worker_method {
    const char *path;
    const ProtobufCMessageDescriptor *request;
    bool exclusive; /* under w->mu */
    bool open;      /* answers anyone (the standard health check, for probes) */
    void (*run)(worker *w, rpc_call *call, const ProtobufCMessage *req);
} worker_method;

/* Every method but the standard health check is the coordinator's alone:
 * the cluster token, or (mutual TLS) a certificate naming its role. */
static const worker_method k_methods[WORKER_N_METHODS] = {
    {RPC_WORKER_LOAD, &facet__v1__load_request__descriptor, true, false, load},
    {RPC_WORKER_INIT_COMM, &facet__v1__init_comm_request__descriptor, true, false, init_comm},
    {RPC_WORKER_STEP, &facet__v1__step_request__descriptor, true, false, step},
    {RPC_WORKER_STEP_STREAM, &facet__v1__step_request__descriptor, false, false, step_stream}, /* locks per step */
    {RPC_WORKER_ABORT, &facet__v1__abort_request__descriptor, false, false, abort_group},
    {RPC_WORKER_HEALTH, &facet__v1__health_request__descriptor, false, false, health},
    {RPC_WORKER_INJECT_FAULT, &facet__v1__inject_fault_request__descriptor, false, false, inject_fault},
    {RPC_HEALTH_CHECK, &grpc__health__v1__health_check_request__descriptor, false, true, grpc_health},
    {RPC_HEALTH_WATCH, &grpc__health__v1__health_check_request__descriptor, false, true, grpc_health_watch},
};

/* Each method's rpc ctx: the worker and the row. */
typedef struct binding {
    worker *w;
    const worker_method *m;
} binding;
static binding g_bindings[WORKER_N_METHODS]; /* one worker per process */

static void dispatch(void *ctx, rpc_call *call, const ProtobufCMessage *req) {
    const binding *b = ctx;
    if (b->m->exclusive) {
        pthread_mutex_lock(&b->w->mu);
        atomic_store(&b->w->busy, true);
    }
    b->m->run(b->w, call, req);
    if (b->m->exclusive) {
        atomic_store(&b->w->busy, false);
        pthread_mutex_unlock(&b->w->mu);
    }
}

int worker_service_methods(worker *w, rpc_method *out) {
    for (int i = 0; i < WORKER_N_METHODS; i++) {
        g_bindings[i] = (binding){w, &k_methods[i]};
        out[i] = (rpc_method){k_methods[i].path, k_methods[i].request, dispatch, &g_bindings[i], .open = k_methods[i].open,
                              .peer_role = k_methods[i].open ? NULL : FACET_ROLE_COORDINATOR};
    }
    return WORKER_N_METHODS;
}

int worker_health_methods(worker *w, rpc_method *out) {
    int n = 0;
    for (int i = 0; i < WORKER_N_METHODS; i++) {
        if (!k_methods[i].open) continue;
        g_bindings[i] = (binding){w, &k_methods[i]};
        out[n++] = (rpc_method){k_methods[i].path, k_methods[i].request, dispatch, &g_bindings[i], .open = true};
    }
    return n;
}

/* ---- the rendezvous store: the coordinator's KvSet / KvGet ----------------- */

#define KV_TIMEOUT_MS 2000

static bool kv_set(void *ctx, const char *key, const void *data, size_t len, errbuf *err) {
    worker *w = ctx;
    Facet__V1__KvSetRequest req = FACET__V1__KV_SET_REQUEST__INIT;
    req.key = (char *)key;
    req.value.data = (uint8_t *)data;
    req.value.len = len;
    uint8_t *resp = NULL;
    size_t n = 0;
    int code = rpc_unary(w->coordinator, RPC_COORD_KV_SET, &req.base, &resp, &n, KV_TIMEOUT_MS, err);
    free(resp);
    return code == RPC_OK;
}

static int kv_get(void *ctx, const char *key, void **data, size_t *len, errbuf *err) {
    worker *w = ctx;
    Facet__V1__KvGetRequest req = FACET__V1__KV_GET_REQUEST__INIT;
    req.key = (char *)key;
    uint8_t *resp = NULL;
    size_t n = 0;
    if (rpc_unary(w->coordinator, RPC_COORD_KV_GET, &req.base, &resp, &n, KV_TIMEOUT_MS, err) != RPC_OK) return -1;
    Facet__V1__KvGetResponse *r = facet__v1__kv_get_response__unpack(NULL, n, resp);
    free(resp);
    if (!r) return errbuf_set(err, "KvGet: malformed response"), -1;
    int found = r->found ? 1 : 0;
    if (found) {
        *len = r->value.len;
        *data = xmalloc(*len);
        if (*len) memcpy(*data, r->value.data, *len);
    }
    facet__v1__kv_get_response__free_unpacked(r, NULL);
    return found;
}
