/* worker.c — the worker process (see worker.h and docs/PROTOCOL.md).
 *
 * Threads: gRPC handler threads run the RPCs; one thread renews the
 * registration. Load, InitComm and Step take `mu` (one at a time, in the
 * order they arrive); Abort and Health do not, so they answer while a step
 * is blocked in a collective. */
#include "worker/worker.h"

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "comm/comm.h"
#include "common/clock.h"
#include "common/log.h"
#include "facet/v1/worker.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"
#include "kernels/cpu/ops.h"
#include "rpc/rpc.h"
#include "worker/dist_sampler.h"
#include "worker/engine.h"
#include "worker/protocol.h"

#define REGISTER_TIMEOUT_MS 2000
#define DEFAULT_HEARTBEAT_MS 500
#define KV_TIMEOUT_MS 2000

typedef struct worker {
    worker_options opt;
    char id[40];
    char address[300]; /* host:port */
    rpc_channel *coordinator;
    rpc_server *server;

    pthread_mutex_t mu; /* Load, InitComm, Step */
    engine *engine;
    char loaded[1024];  /* "model|rank|tp|blocks|block_size|max_tokens" of the engine */
    int rank, tp, kv_blocks;
    uint64_t epoch;
    double comm_s;      /* time in all-reduces during the current step */
    float *logits;      /* [rows, vocab shard] of the last step; kept (grow-only): up to 64 MB a step at V = 256k */
    size_t logits_cap;  /* floats */

    pthread_mutex_t comm_mu; /* the communicator pointer, for Abort */
    comm *comm;

    pthread_mutex_t state_mu;
    char state[256];    /* idle, loading, loaded, ready, failed: ... */
    rpc_method methods[7];
} worker;

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) { (void)sig, g_stop = 1; }

static void set_state(worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_state(worker *w, const char *fmt, ...) {
    pthread_mutex_lock(&w->state_mu);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->state, sizeof w->state, fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&w->state_mu);
}

static void get_state(worker *w, char *out, size_t len) {
    pthread_mutex_lock(&w->state_mu);
    snprintf(out, len, "%s", w->state);
    pthread_mutex_unlock(&w->state_mu);
}

/* ---- the rendezvous store: the coordinator's KvSet / KvGet ----------------- */

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
        *data = malloc(*len ? *len : 1);
        memcpy(*data, r->value.data, *len);
    }
    facet__v1__kv_get_response__free_unpacked(r, NULL);
    return found;
}

/* The engine's all-reduce hook: the current communicator, timed. */
static bool worker_allreduce(void *ctx, float *buf, size_t n, errbuf *err) {
    worker *w = ctx;
    if (!w->comm) return true; /* T = 1 */
    double t0 = clock_now_s();
    bool ok = comm_allreduce_sum(w->comm, buf, n, err);
    w->comm_s += clock_now_s() - t0;
    return ok;
}

/* ---- RPC handlers ---------------------------------------------------------------- */

static void reply_error(rpc_call *call, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void reply_error(rpc_call *call, int code, const char *fmt, ...) {
    char msg[ERRBUF_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rpc_call_finish(call, code, msg);
}

/* Discards the communicator: its group is over (a new epoch, a failure or
 * shutdown), so abort first -- a graceful close would wait for peers that
 * may never come. */
static void drop_comm(worker *w) {
    pthread_mutex_lock(&w->comm_mu);
    comm *c = w->comm;
    w->comm = NULL;
    pthread_mutex_unlock(&w->comm_mu);
    if (c) comm_abort(c);
    comm_free(c);
}

static int default_kv_blocks(const engine *e, int block_size, int kv_mib) {
    const model_weights *mw = engine_weights(e);
    size_t per = kv_cache_block_bytes(mw->cfg.num_layers, block_size, mw->tp.n_kv_heads, mw->cfg.head_dim);
    size_t n = ((size_t)kv_mib << 20) / per;
    return n < 1 ? 1 : n > (1u << 20) ? (1 << 20) : (int)n;
}

static void handle_load(void *ctx, rpc_call *call, const uint8_t *data, size_t len) {
    worker *w = ctx;
    Facet__V1__LoadRequest *req = facet__v1__load_request__unpack(NULL, len, data);
    if (!req) return reply_error(call, RPC_INVALID_ARGUMENT, "Load: malformed request");
    pthread_mutex_lock(&w->mu);
    const char *model = w->opt.model ? w->opt.model : req->model_dir;
    if (req->protocol_version != FACET_PROTOCOL_VERSION) {
        reply_error(call, RPC_FAILED_PRECONDITION, "Load: protocol version %u, this worker speaks %d", req->protocol_version,
                    FACET_PROTOCOL_VERSION);
    } else if (req->epoch < w->epoch) {
        reply_error(call, RPC_ABORTED, "Load: epoch %" PRIu64 " is older than this worker's %" PRIu64, req->epoch, w->epoch);
    } else {
        char key[sizeof w->loaded];
        snprintf(key, sizeof key, "%s|%d|%d|%u|%u|%u", model, req->rank, req->tp_size, req->kv_blocks, req->block_size,
                 req->max_batch_tokens);
        drop_comm(w);
        w->epoch = req->epoch;
        errbuf err;
        double t0 = clock_now_s();
        bool ok = true;
        if (!w->engine || strcmp(key, w->loaded) != 0) { /* same shard as before: keep it */
            engine_free(w->engine);
            w->engine = NULL;
            w->loaded[0] = '\0';
            set_state(w, "loading rank %d of %d", req->rank, req->tp_size);
            engine_options eo = {.n_threads = w->opt.threads, .max_batch_tokens = (int)req->max_batch_tokens,
                                 .block_size = (int)req->block_size, .n_blocks = 1,
                                 .allreduce = worker_allreduce, .allreduce_ctx = w};
            char note[ERRBUF_LEN];
            ok = backend_apply_device(&w->opt.dev, (int)req->rank, &eo, note, sizeof note, &err);
            /* size the cache when asked to choose: CUDA from free device memory
             * (--gpu-memory-utilization), the CPU from --kv-mib */
            if (ok && req->kv_blocks > 0) {
                eo.n_blocks = (int)req->kv_blocks;
            } else if (ok && eo.device == ENGINE_CUDA) {
                eo.n_blocks = 0;
            } else if (ok) {
                engine *probe = engine_load(model, req->rank, req->tp_size, &eo, &err);
                if (probe) eo.n_blocks = default_kv_blocks(probe, eo.block_size, w->opt.kv_mib);
                engine_free(probe);
            }
            if (ok) {
                if (note[0]) log_info("worker %s: %s", w->id, note);
                w->engine = engine_load(model, req->rank, req->tp_size, &eo, &err);
                ok = w->engine != NULL;
            }
            if (ok) {
                snprintf(w->loaded, sizeof w->loaded, "%s", key);
                w->kv_blocks = engine_kv_blocks(w->engine); /* reported to the coordinator */
            }
        }
        if (ok) {
            w->rank = req->rank;
            w->tp = req->tp_size;
            set_state(w, "loaded rank %d of %d", w->rank, w->tp);
            Facet__V1__LoadResponse resp = FACET__V1__LOAD_RESPONSE__INIT;
            resp.kv_blocks = (uint32_t)w->kv_blocks;
            resp.weight_bytes = engine_weights(w->engine)->bytes;
            resp.load_seconds = clock_now_s() - t0;
            rpc_call_reply(call, &resp.base);
            log_info("worker %s: loaded rank %d of %d from %s (%.1f MB, %d KV blocks) in %.2f s", w->id, w->rank, w->tp,
                     model, resp.weight_bytes / 1e6, w->kv_blocks, resp.load_seconds);
        } else {
            set_state(w, "failed: %s", err.msg);
            reply_error(call, RPC_FAILED_PRECONDITION, "cannot load rank %d of %d: %s", req->rank, req->tp_size, err.msg);
            log_warn("worker %s: cannot load its shard: %s", w->id, err.msg);
        }
    }
    pthread_mutex_unlock(&w->mu);
    facet__v1__load_request__free_unpacked(req, NULL);
}

static void handle_init_comm(void *ctx, rpc_call *call, const uint8_t *data, size_t len) {
    worker *w = ctx;
    Facet__V1__InitCommRequest *req = facet__v1__init_comm_request__unpack(NULL, len, data);
    if (!req) return reply_error(call, RPC_INVALID_ARGUMENT, "InitComm: malformed request");
    pthread_mutex_lock(&w->mu);
    errbuf err;
    if (req->epoch != w->epoch || !w->engine) {
        reply_error(call, RPC_FAILED_PRECONDITION, "InitComm: epoch %" PRIu64 " does not match this worker's %" PRIu64 "%s",
                    req->epoch, w->epoch, w->engine ? "" : " (nothing loaded)");
    } else if (req->size != w->tp || req->rank != w->rank) {
        reply_error(call, RPC_FAILED_PRECONDITION, "InitComm: rank %d of %d, but rank %d of %d is loaded", req->rank,
                    req->size, w->rank, w->tp);
    } else if (strcmp(req->backend, "gloo") != 0) {
        reply_error(call, RPC_UNIMPLEMENTED, "InitComm: backend \"%s\" is not available on a CPU worker (use gloo)",
                    req->backend);
    } else {
        drop_comm(w);
        bool ok = true;
        if (req->size > 1) {
            const model_weights *mw = engine_weights(w->engine);
            char host[sizeof w->address];
            snprintf(host, sizeof host, "%s", w->address);
            char *colon = strrchr(host, ':');
            if (colon) *colon = '\0';
            comm_store store = {w, kv_set, kv_get};
            comm_options co = {.rank = req->rank, .size = req->size, .prefix = req->prefix, .hostname = host,
                               .timeout_ms = (int)req->timeout_ms,
                               .max_floats = (size_t)engine_max_batch_tokens(w->engine) * mw->cfg.hidden_size};
            comm *c = comm_gloo_create(&co, &store, &err);
            ok = c != NULL;
            pthread_mutex_lock(&w->comm_mu);
            w->comm = c;
            pthread_mutex_unlock(&w->comm_mu);
        }
        if (ok) {
            set_state(w, "ready: rank %d of %d, epoch %" PRIu64, w->rank, w->tp, w->epoch);
            Facet__V1__InitCommResponse resp = FACET__V1__INIT_COMM_RESPONSE__INIT;
            rpc_call_reply(call, &resp.base);
        } else {
            reply_error(call, RPC_UNAVAILABLE, "InitComm: %s", err.msg);
        }
    }
    pthread_mutex_unlock(&w->mu);
    facet__v1__init_comm_request__free_unpacked(req, NULL);
}

/* The step's per-sequence arrays must agree with each other. */
static bool check_step_shape(const Facet__V1__StepRequest *r, errbuf *err) {
    size_t n = r->n_seq_ids;
    if (r->n_start_pos != n || r->n_num_tokens != n || r->n_block_table_len != n || r->n_sample != n ||
        r->n_temperature != n || r->n_top_k != n || r->n_top_p != n || r->n_seed != n || r->n_min_p != n ||
        r->n_presence_penalty != n || r->n_frequency_penalty != n || r->n_repetition_penalty != n ||
        r->n_top_logprobs != n || r->n_penalty_len != n)
        return errbuf_set(err, "Step: per-sequence arrays differ in length");
    size_t tokens = 0, blocks = 0, seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (r->num_tokens[i] < 1 || r->block_table_len[i] < 0 || r->penalty_len[i] < 0)
            return errbuf_set(err, "Step: sequence %zu has %d tokens and %d blocks", i, r->num_tokens[i], r->block_table_len[i]);
        if (r->top_logprobs[i] < 0 || r->top_logprobs[i] > SAMPLER_MAX_TOP_LOGPROBS)
            return errbuf_set(err, "Step: sequence %zu asks for %d top logprobs (at most %d)", i, r->top_logprobs[i],
                              SAMPLER_MAX_TOP_LOGPROBS);
        tokens += (size_t)r->num_tokens[i];
        blocks += (size_t)r->block_table_len[i];
        seen += (size_t)r->penalty_len[i];
    }
    if (tokens != r->n_token_ids || blocks != r->n_block_ids)
        return errbuf_set(err, "Step: %zu token ids and %zu block ids, but the sequences need %zu and %zu", r->n_token_ids,
                          r->n_block_ids, tokens, blocks);
    if (seen != r->n_penalty_ids || seen != r->n_penalty_counts)
        return errbuf_set(err, "Step: penalty arrays hold %zu and %zu entries, but the sequences need %zu", r->n_penalty_ids,
                          r->n_penalty_counts, seen);
    return true;
}

/* The step's logits buffer, reused across steps: a fresh 64 MB (64 rows × 256k) costs ~40 ms of page faults
 * per step on the 2-core dev VM, against ~1.5 ms to touch a warm one — more than a GPU decode step itself. */
static float *step_logits(worker *w, size_t floats) {
    if (floats + 1 > w->logits_cap) {
        free(w->logits);
        w->logits_cap = floats + 1;
        w->logits = malloc(w->logits_cap * sizeof *w->logits);
    }
    return w->logits;
}

/* Runs the step; on rank 0 fills resp with the sampled tokens. */
static int run_step(worker *w, const Facet__V1__StepRequest *r, Facet__V1__StepResponse *resp, errbuf *err) {
    int n = (int)r->n_seq_ids, m = 0;
    const model_weights *mw = engine_weights(w->engine);
    engine_seq *seqs = calloc((size_t)n + 1, sizeof *seqs);
    for (int i = 0, tb = 0; i < n; i++) {
        seqs[i] = (engine_seq){r->start_pos[i], r->num_tokens[i], (const int32_t *)r->block_ids + tb,
                               r->block_table_len[i], r->sample[i] ? 1 : 0};
        tb += r->block_table_len[i];
        m += r->sample[i] ? 1 : 0;
    }
    float *logits = step_logits(w, (size_t)m * mw->tp.vocab_size);
    engine_batch b = {n, seqs, (const int32_t *)r->token_ids};
    w->comm_s = 0;
    double t0 = clock_now_s();
    int code = RPC_OK;
    /* ABORTED: a collective failed (this worker is fine, its group is not) */
    if (!engine_forward(w->engine, &b, logits, err)) code = w->comm && w->comm_s > 0 ? RPC_ABORTED : RPC_INVALID_ARGUMENT;
    double t1 = clock_now_s();
    sample_request *reqs = calloc((size_t)m + 1, sizeof *reqs);
    for (int i = 0, k = 0, seen = 0; i < n; i++) {
        if (r->sample[i]) {
            sampling_params p = {r->temperature[i], r->top_k[i], r->top_p[i] > 0 ? r->top_p[i] : 1.0f, r->seed[i],
                                 r->min_p[i], r->presence_penalty[i], r->frequency_penalty[i], r->repetition_penalty[i]};
            penalty_tokens pen = {NULL, NULL, 0}; /* no arithmetic on the NULL of an empty array */
            if (r->penalty_len[i] > 0) pen = (penalty_tokens){r->penalty_ids + seen, r->penalty_counts + seen, r->penalty_len[i]};
            reqs[k++] = (sample_request){p, (uint64_t)r->start_pos[i] + (uint64_t)r->num_tokens[i], pen, r->top_logprobs[i]};
        }
        seen += r->penalty_len[i];
    }
    dist_sample_result *res = calloc((size_t)m + 1, sizeof *res);
    float *full = r->return_logits ? malloc(((size_t)m * mw->cfg.vocab_size + 1) * sizeof *full) : NULL;
    if (code == RPC_OK && !dist_sample(w->comm, &mw->tp, mw->cfg.vocab_size, logits, m, reqs, res, full, err))
        code = RPC_ABORTED;
    if (code == RPC_OK && w->rank == 0) {
        resp->n_seq_ids = resp->n_token_ids = resp->n_logprobs = resp->n_n_top = (size_t)m;
        resp->seq_ids = malloc(((size_t)m + 1) * sizeof *resp->seq_ids);
        resp->token_ids = malloc(((size_t)m + 1) * sizeof *resp->token_ids);
        resp->logprobs = malloc(((size_t)m + 1) * sizeof *resp->logprobs);
        resp->n_top = malloc(((size_t)m + 1) * sizeof *resp->n_top);
        size_t tops = 0;
        for (int k = 0; k < m; k++) tops += (size_t)res[k].n_top;
        resp->top_ids = malloc((tops + 1) * sizeof *resp->top_ids);
        resp->top_logprobs = malloc((tops + 1) * sizeof *resp->top_logprobs);
        for (int i = 0, k = 0; i < n; i++) {
            if (!r->sample[i]) continue;
            resp->seq_ids[k] = r->seq_ids[i];
            resp->token_ids[k] = res[k].token;
            resp->logprobs[k] = res[k].logprob;
            resp->n_top[k] = res[k].n_top;
            memcpy(resp->top_ids + resp->n_top_ids, res[k].top_ids, (size_t)res[k].n_top * sizeof *resp->top_ids);
            memcpy(resp->top_logprobs + resp->n_top_logprobs, res[k].top_logprobs, (size_t)res[k].n_top * sizeof(float));
            resp->n_top_ids += (size_t)res[k].n_top;
            resp->n_top_logprobs += (size_t)res[k].n_top;
            k++;
        }
        if (full) {
            resp->n_logits = (size_t)m * mw->cfg.vocab_size;
            resp->logits = full;
            full = NULL;
        }
    }
    resp->forward_ms = (t1 - t0 - w->comm_s) * 1e3;
    resp->comm_ms = w->comm_s * 1e3;
    resp->sample_ms = (clock_now_s() - t1) * 1e3;
    free(full);
    free(res), free(reqs), free(seqs);
    return code;
}

static void handle_step(void *ctx, rpc_call *call, const uint8_t *data, size_t len) {
    worker *w = ctx;
    Facet__V1__StepRequest *req = facet__v1__step_request__unpack(NULL, len, data);
    if (!req) return reply_error(call, RPC_INVALID_ARGUMENT, "Step: malformed request");
    pthread_mutex_lock(&w->mu);
    errbuf err;
    if (req->epoch != w->epoch || !w->engine || (w->tp > 1 && !w->comm)) {
        reply_error(call, RPC_FAILED_PRECONDITION, "Step of epoch %" PRIu64 ": this worker is at epoch %" PRIu64 " (%s)",
                    req->epoch, w->epoch, !w->engine ? "nothing loaded" : w->tp > 1 && !w->comm ? "no communicator" : "stale");
    } else if (!check_step_shape(req, &err)) {
        reply_error(call, RPC_INVALID_ARGUMENT, "%s", err.msg);
    } else {
        Facet__V1__StepResponse resp = FACET__V1__STEP_RESPONSE__INIT;
        int code = run_step(w, req, &resp, &err);
        if (code == RPC_OK) {
            rpc_call_reply(call, &resp.base);
        } else {
            reply_error(call, code, "rank %d: %s", w->rank, err.msg);
            if (code == RPC_ABORTED) {
                set_state(w, "group failed: %s", err.msg);
                drop_comm(w); /* the group is broken: wait for a new epoch */
            }
        }
        free(resp.seq_ids), free(resp.token_ids), free(resp.logprobs), free(resp.logits);
        free(resp.n_top), free(resp.top_ids), free(resp.top_logprobs);
    }
    pthread_mutex_unlock(&w->mu);
    facet__v1__step_request__free_unpacked(req, NULL);
}

static void handle_abort(void *ctx, rpc_call *call, const uint8_t *data, size_t len) {
    worker *w = ctx;
    Facet__V1__AbortRequest *req = facet__v1__abort_request__unpack(NULL, len, data);
    if (!req) return reply_error(call, RPC_INVALID_ARGUMENT, "Abort: malformed request");
    pthread_mutex_lock(&w->comm_mu);
    if (w->comm) comm_abort(w->comm); /* a step blocked in a collective fails now or at its timeout */
    pthread_mutex_unlock(&w->comm_mu);
    log_info("worker %s: group of epoch %" PRIu64 " aborted: %s", w->id, req->epoch, req->reason);
    set_state(w, "aborted: %s", req->reason);
    Facet__V1__AbortResponse resp = FACET__V1__ABORT_RESPONSE__INIT;
    rpc_call_reply(call, &resp.base);
    facet__v1__abort_request__free_unpacked(req, NULL);
}

static void handle_health(void *ctx, rpc_call *call, const uint8_t *data, size_t len) {
    worker *w = ctx;
    (void)data, (void)len;
    char state[256];
    get_state(w, state, sizeof state);
    Facet__V1__HealthResponse resp = FACET__V1__HEALTH_RESPONSE__INIT;
    resp.state = state;
    resp.epoch = w->epoch;
    resp.rank = w->rank;
    rpc_call_reply(call, &resp.base);
}

/* grpc.health.v1: SERVING once in a formed group. */
static void handle_grpc_health(void *ctx, rpc_call *call, const uint8_t *data, size_t len) {
    worker *w = ctx;
    (void)data, (void)len;
    char state[256];
    get_state(w, state, sizeof state);
    Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    resp.status = strncmp(state, "ready", 5) == 0 ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                                                  : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
    rpc_call_reply(call, &resp.base);
}

static void handle_unimplemented(void *ctx, rpc_call *call, const uint8_t *data, size_t len) {
    (void)ctx, (void)data, (void)len;
    rpc_call_finish(call, RPC_UNIMPLEMENTED, "Watch is not implemented: poll Check");
}

/* ---- registration ------------------------------------------------------------------ */

/* One Register call. Returns false when the refusal is permanent. */
static bool register_once(worker *w, uint32_t *heartbeat_ms, char *last_reason, size_t last_len) {
    char state[256];
    get_state(w, state, sizeof state);
    Facet__V1__RegisterRequest req = FACET__V1__REGISTER_REQUEST__INIT;
    req.protocol_version = (uint32_t)w->opt.protocol_version;
    req.worker_id = w->id;
    req.address = w->address;
    req.device = "cpu";
    req.requested_rank = w->opt.rank;
    req.epoch = w->epoch;
    req.state = state;
    uint8_t *resp = NULL;
    size_t n = 0;
    errbuf err;
    if (rpc_unary(w->coordinator, RPC_COORD_REGISTER, &req.base, &resp, &n, REGISTER_TIMEOUT_MS, &err) != RPC_OK) {
        if (strcmp(last_reason, err.msg) != 0) log_warn("worker %s: cannot reach the coordinator: %s", w->id, err.msg);
        snprintf(last_reason, last_len, "%s", err.msg);
        return true; /* it may come (back) */
    }
    Facet__V1__RegisterResponse *r = facet__v1__register_response__unpack(NULL, n, resp);
    free(resp);
    if (!r) return true;
    bool keep_going = true;
    if (r->protocol_version != (uint32_t)w->opt.protocol_version) {
        log_warn("worker %s: refused: %s", w->id, r->reason && *r->reason ? r->reason : "protocol version mismatch");
        keep_going = false;
    } else if (!r->accepted) {
        if (strcmp(last_reason, r->reason) != 0) log_warn("worker %s: refused: %s", w->id, r->reason);
        snprintf(last_reason, last_len, "%s", r->reason);
    } else {
        if (last_reason[0]) log_info("worker %s: registered with %s", w->id, w->opt.coordinator);
        last_reason[0] = '\0';
        if (r->heartbeat_ms > 0) *heartbeat_ms = r->heartbeat_ms;
    }
    facet__v1__register_response__free_unpacked(r, NULL);
    return keep_going;
}

/* ---- the process ---------------------------------------------------------------------- */

static void make_id(char *out, size_t len) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    snprintf(out, len, "w%05d-%06lx", (int)getpid() % 100000, (unsigned long)(tv.tv_usec ^ (tv.tv_sec << 8)) & 0xffffff);
}

static bool start_service(worker *w, errbuf *err) {
    const rpc_method methods[7] = {
        {RPC_WORKER_LOAD, handle_load, w},
        {RPC_WORKER_INIT_COMM, handle_init_comm, w},
        {RPC_WORKER_STEP, handle_step, w},
        {RPC_WORKER_ABORT, handle_abort, w},
        {RPC_WORKER_HEALTH, handle_health, w},
        {RPC_HEALTH_CHECK, handle_grpc_health, w},
        {RPC_HEALTH_WATCH, handle_unimplemented, w},
    };
    memcpy(w->methods, methods, sizeof methods);
    int port = 0;
    w->server = rpc_server_start(w->opt.listen, w->methods, 7, 8, &port, err);
    if (!w->server) return false;
    char host[256];
    snprintf(host, sizeof host, "%s", w->opt.advertise ? w->opt.advertise : w->opt.listen);
    char *colon = strrchr(host, ':');
    if (colon && !w->opt.advertise) *colon = '\0';
    if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "[::]") == 0) gethostname(host, sizeof host);
    snprintf(w->address, sizeof w->address, "%s:%d", host, port);
    return true;
}

int worker_run(const worker_options *opt) {
    worker *w = calloc(1, sizeof *w);
    w->opt = *opt;
    w->rank = -1;
    pthread_mutex_init(&w->mu, NULL);
    pthread_mutex_init(&w->comm_mu, NULL);
    pthread_mutex_init(&w->state_mu, NULL);
    snprintf(w->state, sizeof w->state, "idle");
    make_id(w->id, sizeof w->id);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    errbuf err;
    engine_device dev;
    char note[ERRBUF_LEN];
    /* say now which device this worker computes on (a --device cuda that cannot start is an error) */
    if (!backend_choose_device(opt->dev.device ? opt->dev.device : "auto", &dev, note, sizeof note, &err)) {
        log_warn("worker: %s", err.msg);
        free(w);
        return 1;
    }
    rpc_init();
    if (!start_service(w, &err)) {
        log_warn("worker: %s", err.msg);
        free(w);
        return 1;
    }
    w->coordinator = rpc_channel_create(opt->coordinator);
    log_info("worker %s: serving on %s, registering with %s; %s%skernels %s", w->id, w->address, opt->coordinator, note,
             note[0] ? ", " : "", dev == ENGINE_CPU ? cpu_ops_select()->name : "cuda");
    uint32_t heartbeat_ms = DEFAULT_HEARTBEAT_MS;
    char last_reason[ERRBUF_LEN] = "unregistered";
    int status = 0;
    while (!g_stop) {
        if (!register_once(w, &heartbeat_ms, last_reason, sizeof last_reason)) {
            status = 1;
            break;
        }
        for (uint32_t slept = 0; slept < heartbeat_ms && !g_stop; slept += 50) usleep(50 * 1000);
    }
    log_info("worker %s: stopping", w->id);
    rpc_server_stop(w->server);
    drop_comm(w);
    engine_free(w->engine);
    free(w->logits);
    rpc_channel_free(w->coordinator);
    free(w);
    return status;
}
