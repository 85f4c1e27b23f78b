/* coordinator.c — starting and stopping the coordinator, readiness, and the
 * key-value store workers rendezvous through (see coordinator_impl.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "coordinator/coordinator_impl.h"
#include "coordinator/metrics.h"
#include "coordinator/tokenizer/chat.h"
#include "facet/v1/worker.pb-c.h"
#include "model/checkpoint.h"
#include "model/tensors.h"
#include "worker/protocol.h"

const char *coordinator_model_name(const coordinator *co) { return co->model_name; }

void coordinator_begin_drain(coordinator *co) {
    pthread_mutex_lock(&co->mu);
    co->draining = true;
    pthread_mutex_unlock(&co->mu);
}

bool coordinator_draining(coordinator *co) {
    pthread_mutex_lock(&co->mu);
    bool d = co->draining || co->stopping;
    pthread_mutex_unlock(&co->mu);
    return d;
}

bool coordinator_idle(coordinator *co) {
    pthread_mutex_lock(&co->mu);
    bool idle = co->n_running == 0 && co->n_waiting == 0;
    pthread_mutex_unlock(&co->mu);
    return idle;
}

/* The name clients use: --served-model-name, else the directory's name. */
static void set_model_name(coordinator *co) {
    if (co->opt.served_model_name) {
        snprintf(co->model_name, sizeof co->model_name, "%s", co->opt.served_model_name);
        return;
    }
    char dir[sizeof co->model_name];
    snprintf(dir, sizeof dir, "%s", co->opt.model_dir);
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') dir[--n] = '\0';
    const char *base = strrchr(dir, '/');
    snprintf(co->model_name, sizeof co->model_name, "%s", base ? base + 1 : dir);
}

void coordinator_options_default(coordinator_options *o) {
    memset(o, 0, sizeof *o);
    o->tp = 1;
    o->host = "127.0.0.1";
    o->heartbeat_ms = 500;
    o->lease_ms = 3000;
    o->load_timeout_ms = 600000;
    o->comm_timeout_ms = 20000;
    o->step_timeout_ms = 120000;
    o->block_size = 16;
    o->max_batch_tokens = 512;
    o->max_seqs = 64;
    o->max_queue = 1024;
    o->grpc_threads = 32;
    o->max_body_bytes = 4 << 20;
    o->drain_timeout_ms = 30000;
}

/* ---- the rendezvous key-value store ------------------------------------------- */

static kv_entry *kv_find(coordinator *co, const char *key) {
    for (int i = 0; i < co->n_kv; i++)
        if (strcmp(co->kv[i].key, key) == 0) return &co->kv[i];
    return NULL;
}

static void handle_kv_set(void *ctx, rpc_call *call, const uint8_t *data, size_t len) {
    coordinator *co = ctx;
    Facet__V1__KvSetRequest *req = facet__v1__kv_set_request__unpack(NULL, len, data);
    if (!req) return rpc_call_finish(call, RPC_INVALID_ARGUMENT, "KvSet: malformed request");
    pthread_mutex_lock(&co->mu);
    kv_entry *e = kv_find(co, req->key);
    if (!e) {
        if (co->n_kv == co->cap_kv) {
            co->cap_kv = co->cap_kv ? 2 * co->cap_kv : 64;
            co->kv = realloc(co->kv, (size_t)co->cap_kv * sizeof *co->kv);
        }
        e = &co->kv[co->n_kv++];
        e->key = strdup(req->key);
        e->value = NULL;
    }
    free(e->value);
    e->len = req->value.len;
    e->value = malloc(e->len ? e->len : 1);
    memcpy(e->value, req->value.data, e->len);
    pthread_mutex_unlock(&co->mu);
    Facet__V1__KvSetResponse resp = FACET__V1__KV_SET_RESPONSE__INIT;
    rpc_call_reply(call, &resp.base);
    facet__v1__kv_set_request__free_unpacked(req, NULL);
}

static void handle_kv_get(void *ctx, rpc_call *call, const uint8_t *data, size_t len) {
    coordinator *co = ctx;
    Facet__V1__KvGetRequest *req = facet__v1__kv_get_request__unpack(NULL, len, data);
    if (!req) return rpc_call_finish(call, RPC_INVALID_ARGUMENT, "KvGet: malformed request");
    Facet__V1__KvGetResponse resp = FACET__V1__KV_GET_RESPONSE__INIT;
    pthread_mutex_lock(&co->mu);
    kv_entry *e = kv_find(co, req->key);
    uint8_t *copy = NULL;
    if (e) {
        copy = malloc(e->len ? e->len : 1);
        memcpy(copy, e->value, e->len);
        resp.found = 1;
        resp.value.data = copy;
        resp.value.len = e->len;
    }
    pthread_mutex_unlock(&co->mu);
    rpc_call_reply(call, &resp.base);
    free(copy);
    facet__v1__kv_get_request__free_unpacked(req, NULL);
}

/* Keys of older epochs are of no use once a new group forms. */
void kv_drop_before_epoch(coordinator *co, uint64_t epoch) {
    char prefix[64];
    snprintf(prefix, sizeof prefix, "epoch-%llu/", (unsigned long long)epoch);
    int k = 0;
    for (int i = 0; i < co->n_kv; i++) {
        if (strncmp(co->kv[i].key, "epoch-", 6) == 0 && strtoull(co->kv[i].key + 6, NULL, 10) < epoch) {
            free(co->kv[i].key);
            free(co->kv[i].value);
        } else {
            co->kv[k++] = co->kv[i];
        }
    }
    co->n_kv = k;
}

/* ---- readiness -------------------------------------------------------------------------- */

bool coordinator_ready(coordinator *co, char *why, size_t why_len) {
    pthread_mutex_lock(&co->mu);
    bool ready = co->group == GROUP_READY;
    if (!ready && why) snprintf(why, why_len, "%s", co->not_ready);
    pthread_mutex_unlock(&co->mu);
    return ready;
}

bool coordinator_wait_ready(coordinator *co, int timeout_ms, errbuf *err) {
    double end = clock_now_s() + timeout_ms / 1e3;
    char why[ERRBUF_LEN] = "";
    while (clock_now_s() < end) {
        if (coordinator_ready(co, why, sizeof why)) return true;
        usleep(20 * 1000);
    }
    return errbuf_set(err, "no serving group after %.0f s: %s", timeout_ms / 1e3, why);
}

int coordinator_grpc_port(const coordinator *co) { return co->grpc_port; }
int coordinator_http_port(const coordinator *co) { return co->http_port; }

/* ---- start / stop ------------------------------------------------------------------------- */

static bool load_model_facts(coordinator *co, errbuf *err) {
    char path[CHECKPOINT_PATH_MAX];
    if (!checkpoint_path(co->opt.model_dir, "config.json", path, sizeof path) || !config_load(&co->cfg, path, err))
        return errbuf_prefix(err, "%s", co->opt.model_dir);
    if (!tp_check(&co->cfg, co->opt.tp, err)) return false;
    checkpoint_path(co->opt.model_dir, "tokenizer.model", path, sizeof path);
    if (access(path, F_OK) == 0) {
        co->tok = tokenizer_load(path, err);
        if (!co->tok) return false;
        if (tokenizer_vocab_size(co->tok) > co->cfg.vocab_size)
            return errbuf_set(err, "%s: tokenizer.model has %d pieces but vocab_size is %d", co->opt.model_dir,
                              tokenizer_vocab_size(co->tok), co->cfg.vocab_size);
        co->eot_id = chat_end_of_turn_id(co->tok);
    } else {
        co->eot_id = -1;
        log_warn("%s has no tokenizer.model: requests must give token ids", co->opt.model_dir);
    }
    co->eos_id = co->cfg.eos_id;
    return true;
}

static bool start_grpc(coordinator *co, errbuf *err) {
    const rpc_method methods[] = {
        {RPC_COORD_REGISTER, membership_handle_register, co},
        {RPC_COORD_KV_SET, handle_kv_set, co},
        {RPC_COORD_KV_GET, handle_kv_get, co},
        {RPC_FACET_GENERATE, api_handle_generate, co},
        {RPC_FACET_TOKENIZE, api_handle_tokenize, co},
        {RPC_FACET_MODEL_INFO, api_handle_model_info, co},
        {RPC_HEALTH_CHECK, api_handle_health_check, co},
        {RPC_HEALTH_WATCH, api_handle_health_watch, co},
    };
    int n = (int)(sizeof methods / sizeof methods[0]);
    memcpy(co->methods, methods, sizeof methods);
    char addr[300];
    snprintf(addr, sizeof addr, "%s:%d", co->opt.host, co->opt.grpc_port);
    co->grpc = rpc_server_start(addr, co->methods, n, co->opt.grpc_threads, &co->grpc_port, err);
    return co->grpc != NULL;
}

coordinator *coordinator_start(const coordinator_options *opt, errbuf *err) {
    coordinator *co = calloc(1, sizeof *co);
    co->opt = *opt;
    if (!co->opt.host) co->opt.host = "127.0.0.1";
    pthread_mutex_init(&co->mu, NULL);
    pthread_cond_init(&co->cv, NULL);
    co->metrics = metrics_create();
    co->started_at = time(NULL);
    set_model_name(co);
    snprintf(co->not_ready, sizeof co->not_ready, "waiting for %d worker%s to register", opt->tp, opt->tp > 1 ? "s" : "");
    if (opt->tp < 1 || opt->tp > MAX_TP) {
        errbuf_set(err, "--tp %d is out of range [1, %d]", opt->tp, MAX_TP);
        goto fail;
    }
    if (!load_model_facts(co, err) || !start_grpc(co, err)) goto fail;
    if (opt->http_port >= 0 && !http_start(co, err)) {
        rpc_server_stop(co->grpc);
        goto fail;
    }
    pthread_create(&co->membership_thread, NULL, membership_main, co);
    pthread_create(&co->scheduler_thread, NULL, scheduler_main, co);
    return co;
fail:
    tokenizer_free(co->tok);
    metrics_free(co->metrics);
    free(co);
    return NULL;
}

void coordinator_drain(coordinator *co) {
    pthread_mutex_lock(&co->mu);
    bool first = !co->stopping;
    co->stopping = true;
    scheduler_fail_all(co, RPC_UNAVAILABLE, "the server is shutting down");
    pthread_cond_broadcast(&co->cv);
    pthread_mutex_unlock(&co->mu);
    if (!first) return;
    pthread_join(co->scheduler_thread, NULL); /* after the step in flight */
    pthread_join(co->membership_thread, NULL);
}

void coordinator_stop(coordinator *co) {
    if (!co) return;
    coordinator_drain(co);
    http_stop(co);
    rpc_server_stop(co->grpc);
    workers_free(co);
    for (int i = 0; i < co->n_kv; i++) free(co->kv[i].key), free(co->kv[i].value);
    free(co->kv);
    free(co->free_blocks);
    tokenizer_free(co->tok);
    metrics_free(co->metrics);
    pthread_mutex_destroy(&co->mu);
    pthread_cond_destroy(&co->cv);
    free(co);
}
