/* worker.c — the worker process (see worker.h and docs/PROTOCOL.md): starts
 * the Worker service, keeps its registration alive until a signal, stops.
 * The service is service.c; the shard shard.c; a step step_exec.c. */
#include "worker/worker.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/log.h"
#include "kernels/cpu/ops.h"
#include "worker/worker_impl.h"

#define DEFAULT_HEARTBEAT_MS 500
#define HANDLER_THREADS 8

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) { (void)sig, g_stop = 1; }

static void make_id(char *out, size_t len) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    snprintf(out, len, "w%05d-%06lx", (int)getpid() % 100000, (unsigned long)(tv.tv_usec ^ (tv.tv_sec << 8)) & 0xffffff);
}

static bool start_service(worker *w, errbuf *err) {
    int n = worker_service_methods(w, w->methods);
    int port = 0;
    w->server = rpc_server_start(w->opt.listen, w->methods, n, HANDLER_THREADS, w->opt.cluster_security, &port, err);
    if (!w->server) return false;
    char host[256];
    snprintf(host, sizeof host, "%s", w->opt.advertise ? w->opt.advertise : w->opt.listen);
    char *colon = strrchr(host, ':');
    if (colon && !w->opt.advertise) *colon = '\0';
    if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "[::]") == 0) gethostname(host, sizeof host);
    snprintf(w->address, sizeof w->address, "%s:%d", host, port);
    if (w->opt.health_listen) { /* probes (Kubernetes' gRPC probe) speak neither TLS nor the cluster token */
        int n_health = worker_health_methods(w, w->health_methods);
        w->health_server = rpc_server_start(w->opt.health_listen, w->health_methods, n_health, 2, NULL, NULL, err);
        if (!w->health_server) return errbuf_prefix(err, "--health-listen");
    }
    return true;
}

static worker *worker_new(const worker_options *opt) {
    worker *w = xcalloc(1, sizeof *w);
    w->opt = *opt;
    w->rank = -1;
    pthread_mutex_init(&w->mu, NULL);
    pthread_mutex_init(&w->comm_mu, NULL);
    pthread_mutex_init(&w->state_mu, NULL);
    snprintf(w->state, sizeof w->state, "idle");
    atomic_init(&w->busy, false);
    faults_init(&w->faults);
    make_id(w->id, sizeof w->id);
    return w;
}

static void worker_free(worker *w) {
    rpc_server_stop(w->health_server); /* first: no handler may run on what follows */
    rpc_server_stop(w->server);
    worker_drop_comm(w);
    engine_free(w->engine);
    free(w->logits);
    rpc_channel_free(w->coordinator);
    pthread_mutex_destroy(&w->mu);
    pthread_mutex_destroy(&w->comm_mu);
    pthread_mutex_destroy(&w->state_mu);
    faults_destroy(&w->faults);
    free(w);
}

int worker_run(const worker_options *opt) {
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    errbuf err;
    engine_device dev;
    char note[ERRBUF_LEN];
    /* say now which device this worker computes on (a --device cuda that cannot start is an error) */
    if (!backend_choose_device(opt->dev.device ? opt->dev.device : "auto", &dev, note, sizeof note, &err)) {
        log_warn("worker: %s", err.msg);
        return 1;
    }
    rpc_init();
    worker *w = worker_new(opt);
    if (opt->fault) {
        fault f;
        if (!opt->allow_faults) errbuf_set(&err, "--fault needs --allow-fault-injection");
        if (!opt->allow_faults || !fault_parse(opt->fault, &f, &err) || !faults_add(&w->faults, &f, &err)) {
            log_warn("worker: %s", err.msg);
            worker_free(w);
            return 2;
        }
    }
    if (!start_service(w, &err)) {
        log_warn("worker: %s", err.msg);
        worker_free(w);
        return 1;
    }
    w->coordinator = rpc_channel_create(opt->coordinator, opt->cluster_security);
    log_info("worker %s: serving on %s, registering with %s; %s%skernels %s", w->id, w->address, opt->coordinator, note,
             note[0] ? ", " : "", dev == ENGINE_CPU ? cpu_ops_select()->name : "cuda");
    uint32_t heartbeat_ms = DEFAULT_HEARTBEAT_MS;
    char last_reason[ERRBUF_LEN] = "unregistered";
    int status = 0;
    while (!g_stop) {
        renew_next next = registration_renew(w, &heartbeat_ms, last_reason, sizeof last_reason);
        if (next == RENEW_STOP) {
            status = 1;
            break;
        }
        if (next == RENEW_NOW) continue;
        for (uint32_t slept = 0; slept < heartbeat_ms && !g_stop; slept += 50) {
            usleep(50 * 1000);
            if (opt->allow_faults) faults_on_tick(&w->faults);
        }
    }
    log_info("worker %s: stopping", w->id);
    worker_free(w);
    return status;
}
