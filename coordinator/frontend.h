/* frontend.h — what a front end (http.c, api.c) is given to work with: the
 * scheduler to submit to, the model's facts, the metrics, and its own
 * options. Nothing of membership, the store or the coordinator's state. */
#ifndef FACET_COORDINATOR_FRONTEND_H
#define FACET_COORDINATOR_FRONTEND_H

#include "coordinator/metrics.h"
#include "coordinator/scheduler.h"
#include "coordinator/served_model.h"

/* The admin API (HTTP /admin/..., with the API key): what it may reach of
 * the coordinator beyond the scheduler's streams, as functions the
 * coordinator provides. */
typedef struct admin_ops {
    void *ctx;
    /* arms a fault on the worker of `rank` (membership.h); armed: as the worker read it */
    bool (*inject_fault)(void *ctx, int rank, const char *spec, char *armed, size_t len, errbuf *err);
    char *(*failover_json)(void *ctx); /* the failover timeline, malloc'd */
    bool allow_faults;                 /* --allow-fault-injection */
} admin_ops;

typedef struct frontend {
    scheduler *sched;
    const served_model *model;
    metrics *metrics;
    int tp;
    const char *api_key; /* NULL: none; else "Authorization: Bearer KEY" on HTTP /v1 and gRPC Facet */
    int max_body_bytes;  /* largest HTTP request body */
    const admin_ops *admin;
} frontend;

#endif
