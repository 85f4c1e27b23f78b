/* frontend.h — what a front end (http.c, api.c) is given to work with: the
 * scheduler to submit to, the model's facts, the metrics, and its own
 * options. Nothing of membership, the store or the coordinator's state. */
#ifndef FACET_COORDINATOR_FRONTEND_H
#define FACET_COORDINATOR_FRONTEND_H

#include "coordinator/metrics.h"
#include "coordinator/scheduler.h"
#include "coordinator/served_model.h"

typedef struct frontend {
    scheduler *sched;
    const served_model *model;
    metrics *metrics;
    int tp;
    const char *api_key; /* NULL: none; else "Authorization: Bearer KEY" on HTTP /v1 and gRPC Facet */
    int max_body_bytes;  /* largest HTTP request body */
} frontend;

#endif
