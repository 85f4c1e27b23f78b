/* coordinator.c — the coordinator assembled from its parts (coordinator.h):
 * who is created first, who is given to whom, the gRPC method table, and
 * the order of shutdown. No logic of its own beyond that. */
#include "coordinator/coordinator.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "coordinator/api.h"
#include "coordinator/frontend.h"
#include "coordinator/http.h"
#include "coordinator/kv_store.h"
#include "coordinator/membership.h"
#include "coordinator/metrics.h"
#include "coordinator/scheduler.h"
#include "coordinator/served_model.h"
#include "facet/v1/generate.pb-c.h"
#include "facet/v1/worker.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"
#include "model/tensors.h"

#define N_PUBLIC_METHODS 5
#define N_CLUSTER_METHODS 4

struct coordinator {
    coordinator_options opt;
    served_model model;
    metrics *metrics;
    kv_store *store;
    membership *members;
    scheduler *sched;
    frontend fe;
    admin_ops admin;
    int smaller_tp[FACET_MAX_TP];
    int n_smaller_tp;
    rpc_method public_methods[N_PUBLIC_METHODS], cluster_methods[N_CLUSTER_METHODS];
    rpc_server *grpc, *cluster;
    int grpc_port, cluster_port;
    http_server *http;
    bool stopped;
};

void coordinator_options_default(coordinator_options *o) {
    memset(o, 0, sizeof *o);
    o->tp = 1;
    o->host = "127.0.0.1";
    o->heartbeat_ms = 250;
    o->lease_ms = 1500;      /* a silent worker (frozen, cut off) is noticed within 2 s */
    o->load_timeout_ms = 600000;
    o->comm_timeout_ms = 20000;
    o->comm = "auto";
    o->step_timeout_ms = 60000;
    o->step_deadline_floor_ms = 1000;
    o->max_replays = 10;
    o->failover_timeout_ms = 30000;
    o->replace_timeout_ms = 10000;
    o->grow_delay_ms = 10000;
    o->block_size = 16;
    o->max_batch_tokens = 512;
    o->max_seqs = 64;
    o->max_queue = 1024;
    o->grpc_threads = 32;
    o->cluster_port = 0;
    o->max_body_bytes = 4 << 20;
    o->drain_timeout_ms = 30000;
}

/* Two gRPC ports: the public one (clients: facet.v1.Facet, health; the API
 * key is checked by the handlers) and the cluster's (workers: Register and
 * the rendezvous store; the cluster credentials are checked by rpc/). */
static bool start_grpc(coordinator *co, errbuf *err) {
    /* open: no cluster credential here; the handlers check the API key */
    const rpc_method pub[N_PUBLIC_METHODS] = {
        {RPC_FACET_GENERATE, &facet__v1__generate_request__descriptor, api_handle_generate, &co->fe, .open = true},
        {RPC_FACET_TOKENIZE, &facet__v1__tokenize_request__descriptor, api_handle_tokenize, &co->fe, .open = true},
        {RPC_FACET_MODEL_INFO, &facet__v1__model_info_request__descriptor, api_handle_model_info, &co->fe, .open = true},
        {RPC_HEALTH_CHECK, &grpc__health__v1__health_check_request__descriptor, api_handle_health_check, &co->fe, .open = true},
        {RPC_HEALTH_WATCH, &grpc__health__v1__health_check_request__descriptor, api_handle_health_watch, &co->fe, .open = true},
    };
    const rpc_method cluster[N_CLUSTER_METHODS] = {
        {RPC_COORD_REGISTER, &facet__v1__register_request__descriptor, membership_handle_register, co->members,
         .peer_role = FACET_ROLE_WORKER},
        {RPC_COORD_KV_SET, &facet__v1__kv_set_request__descriptor, kv_store_handle_set, co->store, .peer_role = FACET_ROLE_WORKER},
        {RPC_COORD_KV_GET, &facet__v1__kv_get_request__descriptor, kv_store_handle_get, co->store, .peer_role = FACET_ROLE_WORKER},
        {RPC_HEALTH_CHECK, &grpc__health__v1__health_check_request__descriptor, api_handle_health_check, &co->fe, .open = true},
    };
    memcpy(co->public_methods, pub, sizeof pub);
    memcpy(co->cluster_methods, cluster, sizeof cluster);
    char addr[300];
    snprintf(addr, sizeof addr, "%s:%d", co->opt.host, co->opt.grpc_port);
    co->grpc = rpc_server_start(addr, co->public_methods, N_PUBLIC_METHODS, co->opt.grpc_threads, NULL, &co->grpc_port, err);
    if (!co->grpc) return false;
    snprintf(addr, sizeof addr, "%s:%d", co->opt.host, co->opt.cluster_port);
    co->cluster = rpc_server_start(addr, co->cluster_methods, N_CLUSTER_METHODS, 8, co->opt.cluster_security,
                                   &co->cluster_port, err);
    if (!co->cluster) {
        errbuf_prefix(err, "the cluster port");
        rpc_server_stop(co->grpc);
        return false;
    }
    return true;
}

/* The smaller group sizes the model allows (heads and FFN still divide),
 * largest first: where a group may shrink when workers are lost. */
static void find_smaller_sizes(coordinator *co) {
    for (int tp = co->opt.tp - 1; tp >= 1; tp--) {
        errbuf ignored;
        if (co->opt.tp % tp == 0 && tp_check(&co->model.cfg, tp, &ignored)) co->smaller_tp[co->n_smaller_tp++] = tp;
    }
}

/* The admin API's reach into membership and the scheduler (frontend.h). */
static bool admin_inject_fault(void *ctx, int rank, const char *spec, char *armed, size_t len, errbuf *err) {
    coordinator *co = ctx;
    if (!membership_inject_fault(co->members, rank, spec, armed, len, err)) return false;
    scheduler_note_fault(co->sched, rank, spec);
    return true;
}

static char *admin_failover_json(void *ctx) { return scheduler_failover_json(((coordinator *)ctx)->sched); }

static void make_parts(coordinator *co) {
    const coordinator_options *o = &co->opt;
    co->metrics = metrics_create();
    co->store = kv_store_create();
    scheduler_options so = {.block_size = o->block_size, .max_batch_tokens = o->max_batch_tokens, .max_seqs = o->max_seqs,
                            .max_prefill_tokens = o->max_prefill_tokens, .prefix_caching = !o->no_prefix_caching,
                            .max_queue = o->max_queue, .step_timeout_ms = o->step_timeout_ms,
                            .step_deadline_floor_ms = o->step_deadline_floor_ms, .max_replays = o->max_replays,
                            .failover_timeout_ms = o->failover_timeout_ms};
    co->sched = scheduler_create(&so, &co->model, co->metrics);
    membership_options mo = {.model_dir = o->model_dir, .tp = o->tp, .heartbeat_ms = o->heartbeat_ms,
                             .lease_ms = o->lease_ms, .load_timeout_ms = o->load_timeout_ms,
                             .comm_timeout_ms = o->comm_timeout_ms, .comm = o->comm, .block_size = o->block_size,
                             .kv_blocks = o->kv_blocks, .max_batch_tokens = o->max_batch_tokens,
                             .security = o->cluster_security, .smaller_tp = co->smaller_tp,
                             .n_smaller_tp = co->n_smaller_tp, .replace_timeout_ms = o->replace_timeout_ms,
                             .grow_delay_ms = o->grow_delay_ms, .initial_epoch = o->initial_epoch};
    co->members = membership_create(&mo, co->store, scheduler_on_group_event, co->sched);
    co->admin = (admin_ops){.ctx = co, .inject_fault = admin_inject_fault, .failover_json = admin_failover_json,
                            .allow_faults = o->allow_faults};
    co->fe = (frontend){.sched = co->sched, .model = &co->model, .metrics = co->metrics, .tp = o->tp,
                        .api_key = o->api_key, .max_body_bytes = o->max_body_bytes, .admin = &co->admin};
}

static void free_parts(coordinator *co) {
    membership_free(co->members);
    scheduler_free(co->sched);
    kv_store_free(co->store);
    metrics_free(co->metrics);
    served_model_free(&co->model);
}

coordinator *coordinator_start(const coordinator_options *opt, errbuf *err) {
    if (opt->tp < 1 || opt->tp > FACET_MAX_TP) {
        errbuf_set(err, "--tp %d is out of range [1, %d]", opt->tp, FACET_MAX_TP);
        return NULL;
    }
    coordinator *co = xcalloc(1, sizeof *co);
    co->opt = *opt;
    if (!co->opt.host) co->opt.host = "127.0.0.1";
    if (!served_model_load(&co->model, opt->model_dir, opt->served_model_name, opt->tp, err)) {
        free(co);
        return NULL;
    }
    find_smaller_sizes(co);
    make_parts(co);
    if (!start_grpc(co, err)) goto fail;
    if (opt->http_port >= 0) {
        co->http = http_start(&co->fe, co->opt.host, opt->http_port, err);
        if (!co->http) {
            rpc_server_stop(co->grpc);
            rpc_server_stop(co->cluster);
            goto fail;
        }
    }
    scheduler_start(co->sched, co->members);
    membership_start(co->members);
    return co;
fail:
    free_parts(co);
    free(co);
    return NULL;
}

void coordinator_begin_drain(coordinator *co) { scheduler_begin_drain(co->sched); }
bool coordinator_draining(coordinator *co) { return scheduler_draining(co->sched); }
bool coordinator_idle(coordinator *co) { return scheduler_idle(co->sched); }

void coordinator_drain(coordinator *co) {
    if (co->stopped) return;
    co->stopped = true;
    scheduler_stop(co->sched); /* requests end with "shutting down" after the step in flight */
    membership_stop(co->members);
}

void coordinator_stop(coordinator *co) {
    if (!co) return;
    coordinator_drain(co);
    http_stop(co->http);
    rpc_server_stop(co->grpc);
    rpc_server_stop(co->cluster);
    free_parts(co);
    free(co);
}

bool coordinator_ready(coordinator *co, char *why, size_t why_len) { return scheduler_ready(co->sched, why, why_len); }

bool coordinator_all_workers_failed(coordinator *co) {
    int live, in_group, failed;
    membership_counts(co->members, &live, &in_group, &failed);
    return live > 0 && failed == live;
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
int coordinator_cluster_port(const coordinator *co) { return co->cluster_port; }
int coordinator_http_port(const coordinator *co) { return http_port(co->http); }
const char *coordinator_model_name(const coordinator *co) { return co->model.name; }
void coordinator_get_stats(coordinator *co, coordinator_stats *out) { scheduler_stats(co->sched, out); }

gen_stream *coordinator_submit(coordinator *co, const gen_request *req, int *code, errbuf *err) {
    return scheduler_submit(co->sched, req, code, err);
}
