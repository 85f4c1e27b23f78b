/* local_cluster.h — a coordinator in this process and N worker processes
 * on this machine (facet serve, facet generate --tp). Workers are the same
 * binary (`facet worker`), talk gRPC over loopback and die with us. */
#ifndef FACET_CLUSTER_LOCAL_CLUSTER_H
#define FACET_CLUSTER_LOCAL_CLUSTER_H

#include <sys/types.h>

#include "coordinator/coordinator.h"
#include "worker/backend.h"

typedef struct local_cluster {
    coordinator *co;
    pid_t pids[64];
    int n_workers;
    int worker_threads; /* per worker process (after start: never 0) */
    bool quiet;
    int restarts;
    device_choice dev; /* handed to every worker process */
} local_cluster;

/* worker_threads: CPU threads per worker, 0 for CPUs / tp. dev: the workers'
 * device options (NULL: the default, auto). */
bool local_cluster_start(local_cluster *lc, const coordinator_options *opt, int worker_threads, const device_choice *dev,
                         bool quiet, errbuf *err);
/* Waits for the group; fails early if a worker process exits. */
bool local_cluster_wait_ready(local_cluster *lc, int timeout_ms, errbuf *err);
/* Restarts worker processes that have exited (serve's supervision). */
void local_cluster_restart_dead(local_cluster *lc);
void local_cluster_stop(local_cluster *lc);

#endif
