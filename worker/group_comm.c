/* group_comm.c — this rank's communicators for a group (InitComm), and the
 * device all-reduce hooks the CUDA engine calls.
 *
 * For T > 1 a worker always holds the host communicator (Gloo): the
 * distributed sampler exchanges its candidates over it, and it carries the
 * all-reduce itself when the plan says host. A CUDA worker may add device
 * communicators (comm/select.h decides, from every rank's topology record):
 * IPC and/or NCCL, which the engine drives inside its own stream through
 * the hooks below. Everything here runs under w->mu (InitComm and Step are
 * serialised), except worker_abort_comms, which Abort calls under comm_mu. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "comm/comm_nccl.h"
#include "common/log.h"
#include "kernels/cuda/api.h"
#include "protocol/protocol.h"
#include "worker/backend.h"
#include "worker/worker_impl.h"

/* ---- what this rank can do ----------------------------------------------------- */

/* This rank's topology record: its GPU's UUID (none on the CPU) and the device backends it can load. */
static bool local_rank_info(worker *w, comm_rank_info *out, errbuf *err) {
    char uuid[COMM_GPU_ID_LEN] = "", why[ERRBUF_LEN];
    bool on_gpu = engine_device_kind(w->engine) == ENGINE_CUDA;
    const cuda_api *api = on_gpu ? backend_cuda_api(why, sizeof why) : NULL;
    if (api && !api->device_uuid(engine_cuda_device(w->engine), uuid, sizeof uuid, err)) return false;
    bool nccl = api && backend_nccl_create(why, sizeof why) != NULL;
    comm_rank_info_local(out, uuid, nccl, api && api->comm_ipc_create);
    return true;
}

/* ---- making them ----------------------------------------------------------------- */

/* The device communicators the plan asks for; on failure none is kept. */
static bool create_device_comms(worker *w, const comm_options *co, const comm_store *store, const comm_plan *plan,
                                comm **ipc, comm **nccl, errbuf *err) {
    char why[ERRBUF_LEN];
    int device = engine_cuda_device(w->engine);
    *ipc = *nccl = NULL;
    if (plan->ipc) {
        const cuda_api *api = backend_cuda_api(why, sizeof why);
        if (!api) return errbuf_set(err, "the CUDA module is gone: %s", why);
        if (!(*ipc = api->comm_ipc_create(co, store, device, err))) return false;
    }
    if (plan->nccl) {
        comm_nccl_create_fn create = backend_nccl_create(why, sizeof why);
        *nccl = create ? create(co, store, device, err) : NULL;
        if (!*nccl) {
            if (!create) errbuf_set(err, "NCCL cannot load: %s", why);
            if (*ipc) comm_abort(*ipc);
            comm_free(*ipc);
            *ipc = NULL;
            return false;
        }
    }
    return true;
}

bool group_comm_create(worker *w, const comm_options *co, comm_mode mode, const comm_store *store, errbuf *err) {
    comm_rank_info mine, all[FACET_MAX_TP];
    if (co->size > FACET_MAX_TP) return errbuf_set(err, "a group of %d ranks exceeds %d", co->size, FACET_MAX_TP);
    comm_plan plan;
    bool device_mode = mode == COMM_MODE_NCCL || mode == COMM_MODE_IPC;
    if ((co->size > 1 || device_mode) && !local_rank_info(w, &mine, err)) return false;
    if (co->size > 1 && !mine.gpu[0]) { /* on the CPU: the host, whatever the others are; they read this record */
        if (!comm_plan_for_cpu_rank(mode, co->rank, co->size, &plan, err) ||
            !comm_topology_publish(co, store, &mine, err))
            return false;
    } else if (co->size > 1 || device_mode) {
        if (!mine.gpu[0]) return comm_plan_for_cpu_rank(mode, co->rank, co->size, &plan, err); /* refused */
        if (!comm_topology_exchange(co, store, &mine, all, err) || !comm_plan_choose(mode, all, co->size, &plan, err))
            return false;
    } else {
        memset(&plan, 0, sizeof plan);
        snprintf(plan.why, sizeof plan.why, "one rank: nothing to reduce");
    }
    comm *host = NULL, *ipc = NULL, *nccl = NULL;
    if (co->size > 1 && !(host = comm_gloo_create(co, store, err))) return false;
    if (!create_device_comms(w, co, store, &plan, &ipc, &nccl, err)) {
        if (host) comm_abort(host);
        comm_free(host);
        return false;
    }
    pthread_mutex_lock(&w->comm_mu);
    w->comm = host;
    w->dev_ipc = ipc;
    w->dev_nccl = nccl;
    w->plan = plan;
    w->comm_gen++;
    pthread_mutex_unlock(&w->comm_mu);
    log_info("worker %s: rank %d of %d reduces over %s", w->id, co->rank, co->size, plan.why);
    return true;
}

/* comm_mu held. */
void worker_abort_comms(worker *w) {
    if (w->comm) comm_abort(w->comm);
    if (w->dev_ipc) comm_abort(w->dev_ipc);
    if (w->dev_nccl) comm_abort(w->dev_nccl);
}

void worker_drop_comm(worker *w) {
    pthread_mutex_lock(&w->comm_mu);
    comm *c[3] = {w->comm, w->dev_ipc, w->dev_nccl};
    worker_abort_comms(w); /* a graceful close would wait for peers that may never come */
    w->comm = w->dev_ipc = w->dev_nccl = NULL;
    memset(&w->plan, 0, sizeof w->plan);
    pthread_mutex_unlock(&w->comm_mu);
    for (int i = 0; i < 3; i++) comm_free(c[i]);
}

/* ---- the engine's device hooks (engine_device_comm), on the step's thread ---------------- */

static uint64_t device_generation(void *ctx) {
    worker *w = ctx;
    return w->dev_ipc || w->dev_nccl ? w->comm_gen : 0;
}

/* IPC up to the plan's split (or always, without NCCL), NCCL above it. */
static bool device_enqueue(void *ctx, float *buf, size_t n, void *stream, errbuf *err) {
    worker *w = ctx;
    bool small = n <= w->plan.ipc_max_bytes / sizeof(float);
    comm *c = w->dev_ipc && (small || !w->dev_nccl) ? w->dev_ipc : w->dev_nccl;
    if (comm_allreduce_sum_enqueue(c, buf, n, stream, err)) return true;
    w->step_comm_failed = true;
    return false;
}

/* Waits through one communicator (it polls the stream); the other then only checks its own errors. When
 * one fails the other is aborted too, so that none of its kernels stays blocked in the stream. */
static bool device_wait(void *ctx, void *stream, errbuf *err) {
    worker *w = ctx;
    comm *first = w->dev_ipc ? w->dev_ipc : w->dev_nccl, *second = w->dev_ipc ? w->dev_nccl : NULL;
    bool ok = comm_stream_wait(first, stream, err) && (!second || comm_stream_wait(second, stream, err));
    if (!ok) {
        w->step_comm_failed = true;
        pthread_mutex_lock(&w->comm_mu);
        worker_abort_comms(w);
        pthread_mutex_unlock(&w->comm_mu);
    }
    return ok;
}

engine_device_comm worker_device_comm(worker *w) {
    return (engine_device_comm){device_generation, device_enqueue, device_wait, w};
}
