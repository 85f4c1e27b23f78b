/* nccl.c — the NCCL backend (comm_nccl.h), built as its own module (libfacet_nccl.so).
 *
 * NCCL's blocking calls can wait forever on a dead peer, and comm.h promises
 * that nothing hangs. So the communicator is non-blocking (config.blocking
 * = 0): every call returns at once, possibly with ncclInProgress, and
 * nccl_wait() polls for completion (ncclCommGetAsyncError, then
 * cudaStreamQuery on the comm's own stream) while watching the abort flag
 * and the deadline. On a timeout, an abort or an error it calls
 * ncclCommAbort, the one NCCL call that always returns; the comm is unusable
 * afterwards (comm.c fails every later call).
 *
 * The module links no facet library (it is dlopen'ed, and the facet binary
 * exports nothing): it carries its own copy of common/error.c and uses only
 * static inline helpers from comm_impl.h. */
#include "comm/comm_nccl.h"

#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_runtime.h>
#include <nccl.h>

#include "comm/comm_impl.h"
#include "common/clock.h"

typedef struct nccl_state {
    ncclComm_t nccl;     /* NULL once aborted or destroyed */
    cudaStream_t stream; /* every collective is issued on it */
    float *scratch;      /* (1) device float: the barrier all-reduces it */
    int device;          /* the CUDA device of this rank */
    int rank, size;
    int timeout_ms;
} nccl_state;

/* ---- errors ---------------------------------------------------------------- */

static const char *nccl_basename(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* ncclInProgress is not an error: a non-blocking communicator's calls
 * return it while the work is being set up (nccl_wait() finishes it). */
static bool nccl_check(ncclResult_t rc, const char *stmt, const char *file, int line, errbuf *err) {
    if (rc == ncclSuccess || rc == ncclInProgress) return true;
    const char *detail = ncclGetLastError(NULL);
    return errbuf_set(err, "%s failed (%s:%d): %s%s%s", stmt, nccl_basename(file), line, ncclGetErrorString(rc),
                          detail && *detail ? ": " : "", detail ? detail : "");
}

static bool cuda_check(cudaError_t rc, const char *stmt, const char *file, int line, errbuf *err) {
    if (rc == cudaSuccess) return true;
    return errbuf_set(err, "%s failed (%s:%d): %s (%s)", stmt, nccl_basename(file), line, cudaGetErrorName(rc),
                          cudaGetErrorString(rc));
}

/* Each names the failing statement, file:line and the library's own words. */
#define NCCL_CHECK(err, stmt) nccl_check((stmt), #stmt, __FILE__, __LINE__, (err))
#define CUDA_CHECK(err, stmt) cuda_check((stmt), #stmt, __FILE__, __LINE__, (err))

/* ---- waiting ----------------------------------------------------------------- */


/* The one way out of trouble: ncclCommAbort returns whatever the peers do. */
static void nccl_abort(nccl_state *s) {
    if (!s->nccl) return;
    ncclCommAbort(s->nccl);
    s->nccl = NULL;
}

/* Aborts the NCCL communicator and writes "nccl OP (rank r of T): detail". */
__attribute__((format(printf, 4, 5))) static bool nccl_fail(nccl_state *s, const char *op, errbuf *err,
                                                            const char *fmt, ...) {
    char detail[ERRBUF_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    nccl_abort(s);
    return errbuf_set(err, "nccl %s (rank %d of %d): %s", op, s->rank, s->size, detail);
}

/* Polls until the communicator has nothing in progress and, when stream is
 * not NULL, the stream is idle. c (may be NULL) supplies the abort flag. */
static bool nccl_wait_on(nccl_state *s, const comm *c, cudaStream_t stream, double deadline, const char *op,
                         errbuf *err) {
    double start = clock_now_s();
    errbuf detail = {{0}};
    for (;;) {
        ncclResult_t state = ncclInProgress;
        if (!NCCL_CHECK(&detail, ncclCommGetAsyncError(s->nccl, &state)))
            return nccl_fail(s, op, err, "%s", detail.msg);
        if (state != ncclSuccess && state != ncclInProgress)
            return nccl_fail(s, op, err, "asynchronous NCCL error: %s", ncclGetErrorString(state));
        if (state == ncclSuccess) {
            if (!stream) return true;
            cudaError_t q = cudaStreamQuery(stream);
            if (q == cudaSuccess) return true;
            if (q != cudaErrorNotReady && !CUDA_CHECK(&detail, q)) return nccl_fail(s, op, err, "%s", detail.msg);
        }
        if (c && atomic_load(&c->aborted)) return nccl_fail(s, op, err, "aborted (comm_abort); NCCL comm aborted");
        double now = clock_now_s();
        if (now >= deadline)
            return nccl_fail(s, op, err, "timed out after %d ms (a peer dead or stuck?); NCCL comm aborted",
                             s->timeout_ms);
        comm_wait_backoff(now - start);
    }
}

/* The same on the comm's own stream (with_stream) or none. */
static bool nccl_wait(nccl_state *s, const comm *c, bool with_stream, double deadline, const char *op, errbuf *err) {
    return nccl_wait_on(s, c, with_stream ? s->stream : NULL, deadline, op, err);
}

static double nccl_deadline(const nccl_state *s) { return clock_now_s() + s->timeout_ms / 1e3; }

/* ---- rendezvous -------------------------------------------------------------- */

/* Rank 0 makes the id and publishes it; the others poll the store for it
 * until the deadline. */
static bool nccl_exchange_id(const comm_options *opt, const comm_store *store, double deadline, ncclUniqueId *id,
                             errbuf *err) {
    char key[512];
    if (snprintf(key, sizeof key, "%snccl-id", opt->prefix ? opt->prefix : "") >= (int)sizeof key)
        return errbuf_set(err, "key prefix too long (%zu bytes)", strlen(opt->prefix));
    if (opt->rank == 0)
        return NCCL_CHECK(err, ncclGetUniqueId(id)) && store->set(store->ctx, key, id, sizeof *id, err);
    void *data = NULL;
    size_t len = 0;
    int found = comm_store_poll(store, key, deadline, &data, &len, err);
    if (found < 0) return false;
    if (!found)
        return errbuf_set(err, "timed out after %d ms waiting for rank 0's NCCL id (store key \"%s\")",
                          opt->timeout_ms, key);
    bool ok = len == sizeof *id;
    if (ok) memcpy(id, data, sizeof *id);
    free(data);
    return ok || errbuf_set(err, "store key \"%s\" holds %zu bytes, not an NCCL id (%zu)", key, len, sizeof *id);
}

static bool nccl_init_comm(nccl_state *s, ncclUniqueId id, double deadline, errbuf *err) {
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0; /* so that initialization, too, can time out */
    if (!NCCL_CHECK(err, ncclCommInitRankConfig(&s->nccl, s->size, id, s->rank, &config))) return false;
    return nccl_wait(s, NULL, false, deadline, "initialization", err);
}

/* ---- teardown ---------------------------------------------------------------- */

/* A healthy communicator is finalized (flushes, tells the peers); a broken
 * one is aborted, since finalizing would wait for peers that may be gone. */
static void nccl_state_free(nccl_state *s, bool healthy) {
    if (!s) return;
    errbuf ignored;
    if (s->nccl) cudaSetDevice(s->device);
    if (s->nccl && healthy && NCCL_CHECK(&ignored, ncclCommFinalize(s->nccl)) &&
        nccl_wait(s, NULL, false, nccl_deadline(s), "finalize", &ignored)) {
        ncclCommDestroy(s->nccl);
        s->nccl = NULL;
    }
    nccl_abort(s);
    if (s->scratch) cudaFree(s->scratch);
    if (s->stream) cudaStreamDestroy(s->stream);
    free(s);
}

static void nccl_destroy(comm *c) { nccl_state_free(c->state, !c->failed && !atomic_load(&c->aborted)); }

/* ---- collectives ------------------------------------------------------------- */

/* Before issuing: the comm still exists and this thread is on its device. */
static bool nccl_begin(nccl_state *s, const char *op, errbuf *err) {
    errbuf detail = {{0}};
    if (!s->nccl) return nccl_fail(s, op, err, "the NCCL communicator was aborted earlier");
    if (!CUDA_CHECK(&detail, cudaSetDevice(s->device))) return nccl_fail(s, op, err, "%s", detail.msg);
    return true;
}

/* After issuing (issued: the call's result, detail: its message). */
static bool nccl_finish(comm *c, nccl_state *s, bool issued, const errbuf *detail, const char *op, errbuf *err) {
    if (!issued) return nccl_fail(s, op, err, "%s", detail->msg);
    return nccl_wait(s, c, true, nccl_deadline(s), op, err);
}

static bool nccl_allreduce_sum(comm *c, float *buf, size_t n, errbuf *err) {
    nccl_state *s = c->state;
    char op[64];
    snprintf(op, sizeof op, "allreduce of %zu floats", n);
    errbuf detail = {{0}};
    if (!nccl_begin(s, op, err)) return false;
    bool issued = NCCL_CHECK(&detail, ncclAllReduce(buf, buf, n, ncclFloat, ncclSum, s->nccl, s->stream));
    return nccl_finish(c, s, issued, &detail, op, err);
}

static bool nccl_allgather(comm *c, const void *send, void *recv, size_t bytes, errbuf *err) {
    nccl_state *s = c->state;
    char op[64];
    snprintf(op, sizeof op, "allgather of %zu bytes per rank", bytes);
    errbuf detail = {{0}};
    if (!nccl_begin(s, op, err)) return false;
    bool issued = NCCL_CHECK(&detail, ncclAllGather(send, recv, bytes, ncclInt8, s->nccl, s->stream));
    return nccl_finish(c, s, issued, &detail, op, err);
}

static bool nccl_broadcast(comm *c, void *buf, size_t bytes, int root, errbuf *err) {
    nccl_state *s = c->state;
    char op[64];
    snprintf(op, sizeof op, "broadcast of %zu bytes from rank %d", bytes, root);
    errbuf detail = {{0}};
    if (!nccl_begin(s, op, err)) return false;
    bool issued = NCCL_CHECK(&detail, ncclBroadcast(buf, buf, bytes, ncclInt8, root, s->nccl, s->stream));
    return nccl_finish(c, s, issued, &detail, op, err);
}

/* On the caller's stream, without waiting for the result: only until NCCL
 * has taken the call (a non-blocking communicator may answer ncclInProgress,
 * and nothing else may be issued before that settles). Capturable in a CUDA
 * graph; comm_stream_wait finishes it. */
static bool nccl_allreduce_enqueue(comm *c, float *buf, size_t n, void *stream, errbuf *err) {
    nccl_state *s = c->state;
    char op[64];
    snprintf(op, sizeof op, "allreduce of %zu floats (enqueued)", n);
    errbuf detail = {{0}};
    if (!nccl_begin(s, op, err)) return false;
    bool issued = NCCL_CHECK(&detail, ncclAllReduce(buf, buf, n, ncclFloat, ncclSum, s->nccl, (cudaStream_t)stream));
    if (!issued) return nccl_fail(s, op, err, "%s", detail.msg);
    return nccl_wait_on(s, c, NULL, nccl_deadline(s), op, err);
}

static bool nccl_stream_wait(comm *c, void *stream, errbuf *err) {
    nccl_state *s = c->state;
    if (!nccl_begin(s, "stream wait", err)) return false;
    return nccl_wait_on(s, c, (cudaStream_t)stream, nccl_deadline(s), "stream wait", err);
}

/* NCCL has no barrier: an all-reduce of one float is one. */
static bool nccl_barrier(comm *c, errbuf *err) {
    nccl_state *s = c->state;
    errbuf detail = {{0}};
    if (!nccl_begin(s, "barrier", err)) return false;
    bool issued = NCCL_CHECK(&detail, ncclAllReduce(s->scratch, s->scratch, 1, ncclFloat, ncclSum, s->nccl, s->stream));
    return nccl_finish(c, s, issued, &detail, "barrier", err);
}

static const comm_ops nccl_ops = {
    .name = "nccl",
    .allreduce_sum = nccl_allreduce_sum,
    .allgather = nccl_allgather,
    .broadcast = nccl_broadcast,
    .barrier = nccl_barrier,
    .destroy = nccl_destroy,
    .interrupt = NULL, /* nccl_wait polls the abort flag and calls ncclCommAbort */
    .allreduce_enqueue = nccl_allreduce_enqueue,
    .stream_wait = nccl_stream_wait,
};

/* ---- creation ---------------------------------------------------------------- */

/* Everything but the comm wrapper; false with the reason in err. */
static bool nccl_state_init(nccl_state *s, const comm_options *opt, const comm_store *store, errbuf *err) {
    double deadline = nccl_deadline(s); /* one bound for the whole rendezvous */
    ncclUniqueId id;
    return CUDA_CHECK(err, cudaSetDevice(s->device)) && nccl_exchange_id(opt, store, deadline, &id, err) &&
           nccl_init_comm(s, id, deadline, err) &&
           CUDA_CHECK(err, cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking)) &&
           CUDA_CHECK(err, cudaMalloc((void **)&s->scratch, sizeof *s->scratch)) &&
           CUDA_CHECK(err, cudaMemset(s->scratch, 0, sizeof *s->scratch)); /* sums of zeros stay finite */
}

__attribute__((visibility("default"))) comm *comm_nccl_create(const comm_options *opt, const comm_store *store,
                                                              int cuda_device, errbuf *err) {
    char why[200];
    if (!comm_options_valid(opt, store, why, sizeof why)) {
        errbuf_set(err, "nccl: %s", why);
        return NULL;
    }
    nccl_state *s = calloc(1, sizeof *s);
    if (!s) {
        errbuf_set(err, "nccl: out of memory");
        return NULL;
    }
    *s = (nccl_state){.device = cuda_device, .rank = opt->rank, .size = opt->size, .timeout_ms = opt->timeout_ms};
    errbuf detail = {{0}};
    comm *c = NULL;
    if (nccl_state_init(s, opt, store, &detail)) c = comm_base_new(&nccl_ops, opt->rank, opt->size, 0, s);
    if (!c) {
        errbuf_set(err, "nccl rendezvous (rank %d of %d, device %d, prefix \"%s\"): %s", opt->rank, opt->size,
                       cuda_device, opt->prefix ? opt->prefix : "", detail.msg[0] ? detail.msg : "out of memory");
        nccl_state_free(s, false);
    }
    return c;
}
