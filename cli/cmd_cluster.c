/* facet coordinator, facet worker, facet serve: the distributed shape
 * (docs/ARCHITECTURE.md, docs/PROTOCOL.md). */
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/args.h"
#include "cli/commands.h"
#include "cluster/credentials.h"
#include "cluster/device_args.h"
#include "cluster/local_cluster.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/secret.h"
#include "coordinator/coordinator.h"
#include "model/make_model.h"
#include "protocol/protocol.h"
#include "worker/worker.h"

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) { (void)sig, g_stop = 1; }

/* The coordinator's options, shared by `coordinator` and `serve`. */
#define COORDINATOR_SPECS(o)                                                                                         \
    {"model", ARG_STRING, &(o).model_dir, "checkpoint directory or GGUF file (serve: default the built-in tiny model)", 0, 0, NULL}, \
    {"tp", ARG_INT, &(o).tp, "tensor-parallel size: workers per group (default 1)", 1, 64, NULL},                     \
    {"comm", ARG_STRING, &(o).comm, "the workers' all-reduce: auto (default), nccl, ipc (GPUs of one host) or host (Gloo over TCP); docs/DEPLOYMENT.md", 0, 0, NULL}, \
    {"host", ARG_STRING, &(o).host, "interface to listen on (default 127.0.0.1; 0.0.0.0 for all)", 0, 0, NULL},        \
    {"grpc-port", ARG_INT, &(o).grpc_port, "public gRPC port, facet.v1.Facet (default 50051; 0 picks a free one)", 0, 65535, NULL}, \
    {"cluster-port", ARG_INT, &(o).cluster_port, "the workers' gRPC port (coordinator: default 50052; serve: a free one)", 0, 65535, NULL}, \
    {"http-port", ARG_INT, &(o).http_port, "HTTP port: the OpenAI API, /health, /ready, /metrics (default 8000; 0 picks one)", 0, 65535, NULL}, \
    {"kv-blocks", ARG_INT, &(o).kv_blocks, "KV cache blocks per worker (default: each worker sizes its own)", 1, 1 << 24, NULL}, \
    {"block-size", ARG_INT, &(o).block_size, "KV positions per block (default 16)", 1, 1024, NULL},                   \
    {"max-num-batched-tokens", ARG_INT, &(o).max_batch_tokens, "token budget of a step (default 512)", 1, 1 << 20, NULL}, \
    {"max-num-seqs", ARG_INT, &(o).max_seqs, "sequences per step (default 64)", 1, 1024, NULL},                     \
    {"max-prefill-tokens", ARG_INT, &(o).max_prefill_tokens, "new prompts' tokens a step may carry while other requests decode (default 0: up to --max-num-batched-tokens; -1: auto, a step at most ~1.5x a single-stream decode step; costs TTFT and throughput, docs/API.md)", -1, 1 << 20, NULL}, \
    {"no-prefix-caching", ARG_FLAG, &(o).no_prefix_caching, "compute every prompt in full instead of reusing the KV blocks of an equal prefix", 0, 0, NULL}, \
    {"max-queue", ARG_INT, &(o).max_queue, "requests waiting at most; more are refused with 429 (default 1024)", 1, 1 << 24, NULL}, \
    {"served-model-name", ARG_STRING, &(o).served_model_name, "the model name clients use (default: the directory's name)", 0, 0, NULL}, \
    {"api-key-file", ARG_STRING, &api_key_file, "require the key in this file ('Authorization: Bearer KEY') on /v1 and every facet.v1.Facet method; or $FACET_API_KEY", 0, 0, NULL}, \
    {"max-body", ARG_INT, &(o).max_body_bytes, "largest HTTP request body in bytes (default 4 MiB)", 1024, 1 << 30, NULL}, \
    {"drain-timeout", ARG_INT, &(o).drain_timeout_ms, "on SIGTERM, ms requests in flight may finish (default 30000)", 0, 3600000, NULL}, \
    {"lease-ms", ARG_INT, &(o).lease_ms, "a worker silent this long is dead (default 1500)", 100, 600000, NULL},      \
    {"step-timeout-ms", ARG_INT, &(o).step_timeout_ms, "the longest a step may take; deadlines follow recent steps below it (default 60000)", 100, 3600000, NULL}, \
    {"step-deadline-floor-ms", ARG_INT, &(o).step_deadline_floor_ms, "the shortest step deadline (default 1000)", 10, 3600000, NULL}, \
    {"max-replays", ARG_INT, &(o).max_replays, "times a request may be recomputed after its group is lost (default 10)", 0, 1000000, NULL}, \
    {"failover-timeout", ARG_INT, &(o).failover_timeout_ms, "ms a request waits for a group before it fails, retriably (default 30000)", 0, 86400000, NULL}, \
    {"replace-timeout", ARG_INT, &(o).replace_timeout_ms, "ms to wait for a lost worker's replacement before serving with a smaller group (default 10000)", 0, 86400000, NULL}, \
    {"grow-delay", ARG_INT, &(o).grow_delay_ms, "a smaller group grows back when idle, or after this many ms (default 10000)", 0, 86400000, NULL}, \
    {"allow-fault-injection", ARG_FLAG, &(o).allow_faults, "let POST /admin/faults (with the API key) inject faults into workers: for tests", 0, 0, NULL}, \
    {"initial-epoch", ARG_U64, &(o).initial_epoch, "count group epochs from here (tests)", 0, 0, NULL}

/* SIGTERM: refuse new requests, let those in flight finish for up to timeout_ms. */
static void drain(coordinator *co, int timeout_ms) {
    coordinator_begin_drain(co);
    double end = clock_now_s() + timeout_ms / 1e3;
    if (!coordinator_idle(co)) log_info("draining: waiting up to %.0f s for requests in flight", timeout_ms / 1e3);
    while (!coordinator_idle(co) && clock_now_s() < end) usleep(50 * 1000);
    if (!coordinator_idle(co)) log_warn("drain timeout: cancelling the requests still in flight");
}

static void coordinator_defaults(coordinator_options *o) {
    coordinator_options_default(o);
    o->grpc_port = 50051;
    o->cluster_port = 50052;
    o->http_port = 8000;
}

/* --dry-run: the options parse and agree; no file is read and nothing starts
 * (a check of deployment manifests, where the files exist only in the pod). */
static int dry_run_ok(const char *who, const cluster_credentials *c) {
    int tls = (c->tls_ca != NULL) + (c->tls_cert != NULL) + (c->tls_key != NULL);
    if (tls != 0 && tls != 3) {
        fprintf(stderr, "facet %s: mutual TLS needs all of --tls-ca, --tls-cert and --tls-key\n", who);
        return 2;
    }
    if (!tls && !c->token_file && !c->insecure && !getenv(CLUSTER_TOKEN_ENV)) {
        fprintf(stderr, "facet %s: no cluster credentials: give --cluster-token-file, $%s or --tls-*\n", who, CLUSTER_TOKEN_ENV);
        return 2;
    }
    printf("facet %s: the options are valid\n", who);
    return 0;
}

/* The API key: --api-key-file, else $FACET_API_KEY, else none. */
static bool load_api_key(const char *file, char *key, size_t len, const char **out, errbuf *err) {
    bool found;
    if (!secret_load(file, "FACET_API_KEY", key, len, &found, err)) return errbuf_prefix(err, "API key");
    *out = found ? key : NULL;
    return true;
}

int cmd_coordinator(int argc, char **argv) {
    coordinator_options o;
    coordinator_defaults(&o);
    const char *api_key_file = NULL;
    cluster_credentials creds = {0};
    bool dry_run = false;
    const arg_spec specs[] = {COORDINATOR_SPECS(o), CLUSTER_CREDENTIAL_SPECS(creds),
                              {"dry-run", ARG_FLAG, &dry_run, "check the options and exit", 0, 0, NULL}};
    static const arg_command cmd = {"coordinator", "facet coordinator --model DIR --tp N (--cluster-token-file F | --tls-...) [options]",
                                    "Runs the coordinator: workers register with it; it forms the group and serves requests."};
    int rc = args_handle(&cmd, specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != ARGS_CONTINUE) return rc;
    if (!o.model_dir) {
        fprintf(stderr, "facet coordinator: --model DIR is required\n");
        return 2;
    }
    errbuf bad;
    if (!comm_arg_check(o.comm, &bad)) {
        fprintf(stderr, "facet coordinator: %s\n", bad.msg);
        return 2;
    }
    if (dry_run) return dry_run_ok("coordinator", &creds);
    errbuf err;
    char api_key[SECRET_MAX];
    if (!load_api_key(api_key_file, api_key, sizeof api_key, &o.api_key, &err) ||
        !cluster_credentials_load(&creds, "coordinator", FACET_ROLE_WORKER, &err)) {
        fprintf(stderr, "facet coordinator: %s\n", err.msg);
        return 2;
    }
    o.cluster_security = cluster_credentials_security(&creds);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    coordinator *co = coordinator_start(&o, &err);
    if (!co) {
        fprintf(stderr, "facet coordinator: %s\n", err.msg);
        cluster_credentials_free(&creds);
        return 1;
    }
    log_info("coordinator for %s (tp=%d): gRPC on %s:%d, workers on %s:%d (%s), HTTP on %s:%d; waiting for workers",
             o.model_dir, o.tp, o.host, coordinator_grpc_port(co), o.host, coordinator_cluster_port(co),
             rpc_security_tls(o.cluster_security) ? "mutual TLS" : o.cluster_security ? "cluster token" : "INSECURE",
             o.host, coordinator_http_port(co));
    while (!g_stop) usleep(100 * 1000);
    drain(co, o.drain_timeout_ms);
    log_info("coordinator: stopping");
    coordinator_stop(co);
    cluster_credentials_free(&creds);
    return 0;
}

int cmd_worker(int argc, char **argv) {
    worker_options o = {.listen = "127.0.0.1:0", .rank = -1, .kv_mib = 512, .protocol_version = -1};
    bool dry_run = false;
    device_args_default(&o.dev);
    cluster_credentials creds = {0};
    bool quiet = false;
    const arg_spec specs[] = {
        {"coordinator", ARG_STRING, &o.coordinator, "HOST:PORT of the coordinator's cluster port (required)", 0, 0, NULL},
        {"listen", ARG_STRING, &o.listen, "address to serve on (default 127.0.0.1:0, a free port)", 0, 0, NULL},
        {"health-listen", ARG_STRING, &o.health_listen, "also serve grpc.health.v1 alone here, in plaintext (for probes that cannot do TLS)", 0, 0, NULL},
        {"advertise", ARG_STRING, &o.advertise, "host the coordinator and peers reach this worker on", 0, 0, NULL},
        DEVICE_ARG_SPECS(o.dev),
        {"threads", ARG_INT, &o.threads, "CPU threads (default: one per CPU)", 1, 1024, NULL},
        {"rank", ARG_INT, &o.rank, "ask for this rank (default: any)", 0, 63, NULL},
        {"kv-mib", ARG_INT, &o.kv_mib, "KV cache memory when the coordinator leaves it to the worker (default 512)", 1, 1 << 24, NULL},
        {"model", ARG_STRING, &o.model, "load this checkpoint instead of the coordinator's path (same model, other mount)", 0, 0, NULL},
        {"model-root", ARG_STRING, &o.model_root, "load only checkpoints under this directory (default: --model)", 0, 0, NULL},
        CLUSTER_CREDENTIAL_SPECS(creds),
        {"allow-fault-injection", ARG_FLAG, &o.allow_faults, "take faults from --fault and the coordinator (tests; docs/FAILOVER.md)", 0, 0, NULL},
        {"fault", ARG_STRING, &o.fault, "a fault to arm at start: KIND[:MS][@TRIGGER], e.g. kill@step=20, hang:5000@after=3", 0, 0, NULL},
        {"quiet", ARG_FLAG, &quiet, "log only warnings", 0, 0, NULL},
        {"protocol-version", ARG_INT, &o.protocol_version, "claim another protocol version (tests only)", 0, 1 << 30, NULL},
        {"dry-run", ARG_FLAG, &dry_run, "check the options and exit", 0, 0, NULL},
    };
    static const arg_command cmd = {"worker", "facet worker --coordinator HOST:PORT --model-root DIR (--cluster-token-file F | --tls-...) [options]",
                                    "Runs a worker: registers with the coordinator, loads its shard when told, runs steps."};
    int rc = args_handle(&cmd, specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != ARGS_CONTINUE) return rc;
    if (!o.coordinator) {
        fprintf(stderr, "facet worker: --coordinator HOST:PORT is required\n");
        return 2;
    }
    if (!o.model_root && !o.model) {
        fprintf(stderr, "facet worker: give --model-root DIR (the directory checkpoints may be loaded from) or --model DIR\n");
        return 2;
    }
    if (dry_run) return dry_run_ok("worker", &creds);
    errbuf err;
    if (!cluster_credentials_load(&creds, "worker", FACET_ROLE_COORDINATOR, &err)) {
        fprintf(stderr, "facet worker: %s\n", err.msg);
        return 2;
    }
    o.cluster_security = cluster_credentials_security(&creds);
    if (o.protocol_version < 0) o.protocol_version = FACET_PROTOCOL_VERSION;
    if (quiet) log_set_quiet(1);
    int status = worker_run(&o);
    cluster_credentials_free(&creds);
    return status;
}

int cmd_serve(int argc, char **argv) {
    coordinator_options o;
    coordinator_defaults(&o);
    o.cluster_port = 0; /* the workers are local: any free port */
    const char *api_key_file = NULL;
    local_cluster_options lo = {0};
    device_choice dev;
    device_args_default(&dev);
    const arg_spec specs[] = {
        COORDINATOR_SPECS(o),
        {"threads", ARG_INT, &lo.worker_threads, "CPU threads per worker (default: CPUs / tp)", 1, 1024, NULL},
        {"standby", ARG_INT, &lo.standby, "spare worker processes, ready to replace a lost one (default 0)", 0, 63, NULL},
        {"tls-dir", ARG_STRING, &lo.tls_dir, "mutual TLS between coordinator and workers, with the files facet certs writes (default: a random cluster token)", 0, 0, NULL},
        DEVICE_ARG_SPECS(dev),
    };
    static const arg_command cmd = {"serve", "facet serve [--model DIR] [--tp N] [options]",
                                    "Starts a coordinator and N local worker processes, and serves until Ctrl-C or SIGTERM."};
    int rc = args_handle(&cmd, specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != ARGS_CONTINUE) return rc;
    errbuf err;
    char api_key[SECRET_MAX];
    if (!comm_arg_check(o.comm, &err) || !load_api_key(api_key_file, api_key, sizeof api_key, &o.api_key, &err)) {
        fprintf(stderr, "facet serve: %s\n", err.msg);
        return 2;
    }
    if (!o.model_dir) {
        o.model_dir = default_model_dir();
        if (!ensure_default_model(o.model_dir, &err)) {
            fprintf(stderr, "facet serve: %s\n", err.msg);
            return 1;
        }
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    local_cluster lc;
    lo.dev = &dev;
    lo.allow_faults = o.allow_faults;
    if (!local_cluster_start(&lc, &o, &lo, &err)) {
        fprintf(stderr, "facet serve: %s\n", err.msg);
        return 1;
    }
    bool ok = local_cluster_wait_ready(&lc, 600000, &err);
    if (ok) {
        printf("facet: serving %s with tp=%d (%d thread%s per worker%s)\n", o.model_dir, o.tp, lc.worker_threads,
               lc.worker_threads > 1 ? "s" : "", lo.standby ? ", and standbys" : "");
        printf("facet:   HTTP  http://%s:%d  (OpenAI API under /v1; /health, /ready, /metrics)\n", o.host,
               coordinator_http_port(lc.co));
        printf("facet:   gRPC  %s:%d  (facet.v1.Facet, grpc.health.v1.Health)\n", o.host, coordinator_grpc_port(lc.co));
        printf("facet:   workers %s:%d  (%s)\n", o.host, coordinator_cluster_port(lc.co),
               lo.tls_dir ? "mutual TLS" : "a cluster token the workers inherit");
        printf("facet: Ctrl-C stops\n");
        fflush(stdout);
    } else {
        fprintf(stderr, "facet serve: %s\n", err.msg);
    }
    while (ok && !g_stop) {
        local_cluster_restart_dead(&lc); /* a dead worker is replaced; the coordinator re-forms the group */
        usleep(100 * 1000);
    }
    if (ok) drain(lc.co, o.drain_timeout_ms);
    log_info("serve: stopping");
    local_cluster_stop(&lc);
    return ok ? 0 : 1;
}
