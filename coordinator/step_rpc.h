/* step_rpc.h — a plan sent as one step to every rank of the group at once
 * (the layout of protocol/step.h), over one persistent stream per rank
 * (facet.v1.Worker/StepStream): a step costs a message each way, not a
 * whole call. The streams belong to a group: a new epoch opens new ones.
 * Runs without the scheduler's lock: the request is built under it first. */
#ifndef FACET_COORDINATOR_STEP_RPC_H
#define FACET_COORDINATOR_STEP_RPC_H

#include "coordinator/batching.h"
#include "facet/v1/worker.pb-c.h"

/* The StepRequest of a plan for the group of `epoch` (lock held). */
void step_rpc_build(scheduler *s, const step_plan *plan, uint64_t epoch, Facet__V1__StepRequest *req);

typedef struct step_result {
    rpc_fanout calls[FACET_MAX_TP];   /* per rank: status, error */
    Facet__V1__StepStreamReply *reply0; /* rank 0's reply as it came (owns resp) */
    Facet__V1__StepResponse *resp;    /* rank 0's StepResponse, NULL when the step failed */
    bool ok;                          /* every rank answered OK and rank 0's reply parsed */
    double seconds;
} step_result;

/* ss (scheduler_impl.h: the streams of the group last stepped) closed: its workers' stream handlers end. */
void step_streams_close(step_streams *ss);

/* Sends req to every rank of g and waits (each bounded by timeout_ms, and
 * ended early when cancel fires: its group was declared lost). A worker's
 * answer that is not OK is in out->calls[r] as a unary Step's would be. */
void step_rpc_send(step_streams *ss, const group_view *g, const Facet__V1__StepRequest *req, int timeout_ms,
                   rpc_cancel *cancel, step_result *out);
void step_result_free(step_result *r, int size);

#endif
