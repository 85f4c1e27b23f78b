/* local_cluster.h — a coordinator in this process and N worker processes
 * on this machine (facet serve, facet generate --tp, facet bench
 * throughput). Workers are the same binary (`facet worker`), talk gRPC over
 * loopback and die with us. The cluster is closed to other processes: a
 * random cluster token (or $FACET_CLUSTER_TOKEN, or the certificates of a
 * --tls-dir) that the workers inherit through their environment, never
 * argv; workers read checkpoints only under the served model's directory. */
#ifndef FACET_CLUSTER_LOCAL_CLUSTER_H
#define FACET_CLUSTER_LOCAL_CLUSTER_H

#include <sys/types.h>

#include "cluster/credentials.h"
#include "coordinator/coordinator.h"
#include "worker/backend.h"

#define LOCAL_CLUSTER_MAX 64

typedef struct local_cluster_options {
    int worker_threads;        /* CPU threads per worker; 0: CPUs / tp */
    const device_choice *dev;  /* the workers' device options (NULL: the default, auto) */
    bool quiet;                /* workers log only warnings */
    const char *tls_dir;       /* NULL, or a directory as `facet certs` writes it: mutual TLS inside the cluster */
    int standby;               /* spare workers beyond the group's tp */
    bool allow_faults;         /* workers take injected faults (--allow-fault-injection) */
} local_cluster_options;

typedef struct local_cluster {
    coordinator *co;
    pid_t pids[LOCAL_CLUSTER_MAX];
    int n_workers;
    int worker_threads; /* per worker process (after start: never 0) */
    bool quiet, allow_faults;
    int restarts;
    device_choice dev;  /* handed to every worker process */
    cluster_credentials creds;
    char model_root[4096];
    char tls_files[3][4096]; /* the workers' ca.pem, worker.pem, worker-key.pem */
    char **envp;         /* the workers' environment: ours + the cluster token */
} local_cluster;

bool local_cluster_start(local_cluster *lc, const coordinator_options *opt, const local_cluster_options *lo, errbuf *err);
/* Waits for the group; fails early if a worker process exits. */
bool local_cluster_wait_ready(local_cluster *lc, int timeout_ms, errbuf *err);
/* Restarts worker processes that have exited (serve's supervision). */
void local_cluster_restart_dead(local_cluster *lc);
void local_cluster_stop(local_cluster *lc);

#endif
