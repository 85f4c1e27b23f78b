/* worker.h — the worker process: holds one TP rank's shard and runs steps.
 *
 * It serves the facet.v1.Worker service (Load, InitComm, Step, Abort,
 * Health) and grpc.health.v1.Health, and keeps its registration with the
 * coordinator alive (Register every heartbeat). It holds no scheduling
 * state: every step says what to compute (docs/PROTOCOL.md). */
#ifndef FACET_WORKER_WORKER_H
#define FACET_WORKER_WORKER_H

#include <stdbool.h>

#include "rpc/rpc.h"
#include "worker/backend.h"

typedef struct worker_options {
    const char *coordinator; /* host:port of the coordinator's gRPC service */
    const char *listen;      /* address to serve on; "127.0.0.1:0" picks a port */
    const char *health_listen; /* NULL, or an address for grpc.health.v1 alone, in plaintext (probes that cannot do TLS) */
    const char *advertise;   /* host the coordinator and peers reach us on (default: listen's host) */
    const char *model;       /* NULL: the path the coordinator sends; else this checkpoint (same model, other mount) */
    const char *model_root;  /* a Load may name only checkpoints under it (after following links); NULL: model */
    const rpc_security *cluster_security; /* what the coordinator must show, and what this worker shows it (NULL: --insecure) */
    int threads;             /* CPU threads for the engine (0: all) */
    int rank;                /* -1: any rank */
    int kv_mib;              /* KV cache memory when the coordinator leaves it to us */
    int protocol_version;    /* what it claims (only tests change it) */
    device_choice dev;       /* --device and friends */
    bool allow_faults;       /* --allow-fault-injection: take faults (docs/FAILOVER.md) */
    const char *fault;       /* --fault SPEC at start (needs allow_faults) */
} worker_options;

/* Runs until SIGINT/SIGTERM (or a fatal refusal). Returns the exit status. */
int worker_run(const worker_options *opt);

#endif
