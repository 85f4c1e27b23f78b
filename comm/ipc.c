/* ipc.c — the CUDA-IPC backend (comm_ipc.h), host half: the rendezvous
 * through the store, the comm_ops table, waiting with the timeout and the
 * abort flag, and teardown. The kernels are in ipc_kernels.cu.
 *
 * Built into the CUDA module (libfacet_cuda.so), which links no facet
 * library: like nccl.c it uses only libc, the CUDA runtime, its own copy of
 * common/error.c, common/clock.h and the static inline helpers of
 * comm_impl.h. */
#include "comm/comm_ipc.h"

#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <cuda_runtime.h>

#include "comm/comm_impl.h"
#include "comm/ipc_kernels.h"
#include "comm/select.h"
#include "common/clock.h"

/* After a failing wait has told the kernels to stop, how long it lets the
 * stream drain before saying it did not. The kernels notice within
 * microseconds; this is for other work queued ahead of them. */
#define IPC_DRAIN_MS 1000
/* Teardown of a failed or aborted communicator: how long it waits for the
 * peers' promise that they are done with its memory (a healthy one waits up
 * to the timeout). Live peers are tearing down too; dead ones never answer. */
#define IPC_FAILED_CLOSE_MS 1000

_Static_assert(IPC_MAX_RANKS == COMM_IPC_MAX_RANKS, "comm/select.h plans IPC groups of this size");

#define IPC_RECORD_MAGIC 0x43504946u /* "FIPC" */
#define IPC_RECORD_VERSION 1u

/* What rank r publishes under prefix + "ipc/<r>". Fixed size: a peer
 * checks the length, the magic and the version before anything else. */
typedef struct ipc_record {
    uint32_t magic, version;
    int32_t rank, size;
    int32_t device;         /* the CUDA ordinal in the publishing process */
    int32_t pid;
    uint64_t process;       /* random per process: pids repeat across PID namespaces */
    uint64_t max_floats;
    uint64_t region_bytes;
    uint64_t base;          /* the region's device address in the publishing process */
    uint8_t uuid[16];       /* the GPU's: which ranks share one */
    int32_t handle_error;   /* cudaIpcGetMemHandle's result (cudaSuccess: handle is valid) */
    int32_t reserved;
    cudaIpcMemHandle_t handle;
} ipc_record;

typedef struct ipc_state {
    int rank, size, device, timeout_ms;
    size_t max_floats, region_bytes;
    int sm_count;
    uint8_t uuid[16];                  /* the GPU's */
    cudaStream_t stream;               /* the blocking calls' (all-reduce, barrier) and the teardown's copies */
    char *region;                      /* this rank's: header, then two staging buffers (ipc_kernels.h) */
    bool published;                    /* peers may have mapped the region */
    char *peer[IPC_MAX_RANKS];         /* every rank's region as mapped here; peer[rank] == region */
    bool opened[IPC_MAX_RANKS];        /* mapped with cudaIpcOpenMemHandle: closed at teardown */
    ipc_host_words *host;              /* pinned and mapped: the abort word, the kernels' failure report */
    ipc_launch launch;                 /* what every launch passes, fixed once the peers are mapped */
} ipc_state;

/* ---- errors ------------------------------------------------------------------ */

static const char *ipc_basename(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static bool cuda_check(cudaError_t rc, const char *stmt, const char *file, int line, errbuf *err) {
    if (rc == cudaSuccess) return true;
    (void)cudaGetLastError(); /* reported here: not left for an unrelated later check */
    return errbuf_set(err, "%s failed (%s:%d): %s (%s)", stmt, ipc_basename(file), line, cudaGetErrorName(rc),
                      cudaGetErrorString(rc));
}

/* Names the failing statement, file:line and CUDA's own words. */
#define CUDA_CHECK(err, stmt) cuda_check((stmt), #stmt, __FILE__, __LINE__, (err))

/* ---- the host words ---------------------------------------------------------------- */

/* 0, or why this rank's kernels gave up (they write it last, behind a fence). */
static uint32_t ipc_failure_code(const ipc_state *s) { return __atomic_load_n(&s->host->code, __ATOMIC_ACQUIRE); }

/* Every waiting kernel of this rank gives up within microseconds, and every
 * later one that would have to wait gives up at its first check. */
static void ipc_stop_kernels(ipc_state *s) { __atomic_store_n(&s->host->abort, 1u, __ATOMIC_SEQ_CST); }

/* ---- waiting ------------------------------------------------------------------------- */


static void ipc_nap(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* Polls until stream is idle (true), an error, or ms pass (false). */
static bool ipc_drain(cudaStream_t stream, int ms) {
    double start = clock_now_s(), deadline = start + ms / 1e3;
    for (;;) {
        cudaError_t q = cudaStreamQuery(stream);
        if (q == cudaSuccess) return true;
        if (q != cudaErrorNotReady) {
            (void)cudaGetLastError();
            return false;
        }
        double now = clock_now_s();
        if (now >= deadline) return false;
        comm_wait_backoff(now - start);
    }
}

/* This rank's own stream (creation's memset), bounded by deadline. */
static bool ipc_own_stream_idle(ipc_state *s, double deadline, const char *what, errbuf *err) {
    double start = clock_now_s();
    for (;;) {
        cudaError_t q = cudaStreamQuery(s->stream);
        if (q == cudaSuccess) return true;
        if (q != cudaErrorNotReady) return cuda_check(q, "cudaStreamQuery", __FILE__, __LINE__, err);
        double now = clock_now_s();
        if (now >= deadline) return errbuf_set(err, "timed out after %d ms waiting for the GPU to %s", s->timeout_ms, what);
        comm_wait_backoff(now - start);
    }
}

/* Why a wait failed: the kernels reported it, comm_abort, the host's own
 * deadline, or a CUDA error. */
typedef enum ipc_why { IPC_WHY_DEVICE, IPC_WHY_ABORT, IPC_WHY_DEADLINE, IPC_WHY_CUDA } ipc_why;

/* One line: why, and where the kernels were when they stopped. */
static void ipc_describe_failure(const ipc_state *s, ipc_why why, const char *cuda_detail, char *out, size_t len) {
    uint32_t code = ipc_failure_code(s);
    int peer = -1;
    char where[128] = "";
    if (code) {
        const ipc_host_words *h = s->host;
        unsigned long long flag = __atomic_load_n(&h->flag, __ATOMIC_RELAXED);
        peer = (int)__atomic_load_n(&h->peer, __ATOMIC_RELAXED);
        snprintf(where, sizeof where, " in all-reduce #%llu of this communicator (exchange %d, block %d)",
                 (flag + 1) / 2, 2 - (int)(flag % 2), (int)__atomic_load_n(&h->block, __ATOMIC_RELAXED));
    }
    if (why == IPC_WHY_CUDA) snprintf(out, len, "%s", cuda_detail);
    else if (!code && why == IPC_WHY_ABORT) snprintf(out, len, "aborted (comm_abort)");
    else if (why == IPC_WHY_ABORT || (why == IPC_WHY_DEVICE && code == IPC_FAIL_ABORTED))
        snprintf(out, len, "aborted (comm_abort) while waiting for rank %d%s", peer, where);
    else if (code) snprintf(out, len, "timed out after %d ms waiting for rank %d (dead or stuck?)%s", s->timeout_ms, peer, where);
    else
        snprintf(out, len,
                 "timed out after %d ms: the stream was still busy, but no all-reduce of this communicator was "
                 "waiting for a peer (a long kernel ahead of it?)",
                 s->timeout_ms);
}

/* Stops this rank's kernels, lets the stream drain (bounded) and writes the
 * line that says why: "ipc OP (rank r of T): ...". */
static bool ipc_wait_failed(ipc_state *s, cudaStream_t stream, const char *op, ipc_why why, const char *cuda_detail,
                            errbuf *err) {
    ipc_stop_kernels(s);
    bool drained = why == IPC_WHY_CUDA || ipc_drain(stream, IPC_DRAIN_MS);
    char detail[ERRBUF_LEN - 64];
    ipc_describe_failure(s, why, cuda_detail, detail, sizeof detail);
    if (drained) return errbuf_set(err, "ipc %s (rank %d of %d): %s", op, s->rank, s->size, detail);
    return errbuf_set(err, "ipc %s (rank %d of %d): %s; the stream did not drain within %d ms after its kernels were stopped",
                      op, s->rank, s->size, detail, IPC_DRAIN_MS);
}

/* Polls until stream is idle, watching the kernels' failure report, the
 * abort flag and a deadline of timeout_ms from now. */
static bool ipc_wait(comm *c, cudaStream_t stream, const char *op, errbuf *err) {
    ipc_state *s = c->state;
    double start = clock_now_s(), deadline = start + s->timeout_ms / 1e3;
    for (;;) {
        /* query first: once the stream is idle, its kernels' reports are in */
        cudaError_t q = cudaStreamQuery(stream);
        if (ipc_failure_code(s)) return ipc_wait_failed(s, stream, op, IPC_WHY_DEVICE, NULL, err);
        if (q == cudaSuccess) return true;
        if (q != cudaErrorNotReady) {
            errbuf detail = {{0}};
            cuda_check(q, "cudaStreamQuery", __FILE__, __LINE__, &detail);
            return ipc_wait_failed(s, stream, op, IPC_WHY_CUDA, detail.msg, err);
        }
        if (atomic_load(&c->aborted)) return ipc_wait_failed(s, stream, op, IPC_WHY_ABORT, NULL, err);
        double now = clock_now_s();
        if (now >= deadline) return ipc_wait_failed(s, stream, op, IPC_WHY_DEADLINE, NULL, err);
        comm_wait_backoff(now - start);
    }
}

/* ---- collectives ----------------------------------------------------------------------- */

/* No host wait and no host state that changes per call: the launch can be
 * captured into a CUDA graph and replayed; the kernels count the calls. */
static bool ipc_allreduce_enqueue(comm *c, float *buf, size_t n, void *stream, errbuf *err) {
    ipc_state *s = c->state;
    if (s->size == 1) return true; /* the sum over one rank is buf itself */
    errbuf detail = {{0}};
    if (CUDA_CHECK(&detail, cudaSetDevice(s->device)) &&
        CUDA_CHECK(&detail, ipc_allreduce_launch(&s->launch, buf, n, (cudaStream_t)stream)))
        return true;
    return errbuf_set(err, "ipc allreduce of %zu floats (rank %d of %d): %s", n, s->rank, s->size, detail.msg);
}

static bool ipc_stream_wait(comm *c, void *stream, errbuf *err) { return ipc_wait(c, (cudaStream_t)stream, "allreduce", err); }

static bool ipc_allreduce_sum(comm *c, float *buf, size_t n, errbuf *err) {
    ipc_state *s = c->state;
    return ipc_allreduce_enqueue(c, buf, n, s->stream, err) && ipc_wait(c, s->stream, "allreduce", err);
}

/* An all-reduce of the scratch float: no rank passes it before all arrive. */
static bool ipc_barrier(comm *c, errbuf *err) {
    ipc_state *s = c->state;
    float *scratch = (float *)(s->region + IPC_SCRATCH_OFFSET);
    return ipc_allreduce_enqueue(c, scratch, 1, s->stream, err) && ipc_wait(c, s->stream, "barrier", err);
}

static bool ipc_allgather(comm *c, const void *send, void *recv, size_t bytes, errbuf *err) {
    return errbuf_set(err, "ipc allgather (rank %d of %d): the IPC communicator carries only all-reduces; "
                           "allgather goes through the host communicator",
                      c->rank, c->size);
}

static bool ipc_broadcast(comm *c, void *buf, size_t bytes, int root, errbuf *err) {
    return errbuf_set(err, "ipc broadcast (rank %d of %d): the IPC communicator carries only all-reduces; "
                           "broadcast goes through the host communicator",
                      c->rank, c->size);
}

/* comm_abort, any thread: a kernel blocked on a dead peer exits within
 * microseconds, and the wait loop sees the abort flag. */
static void ipc_interrupt(comm *c) {
    ipc_state *s = c->state;
    if (s && s->host) ipc_stop_kernels(s);
}

/* ---- teardown ------------------------------------------------------------------------------ */

/* Writes closed[rank] = 1 into every peer's region — a promise that this
 * rank never touches it again (its kernels have stopped) — then unmaps it.
 * False: the copies did not finish (the mappings are then kept). */
static bool ipc_release_peers(ipc_state *s) {
    bool ok = true;
    for (int q = 0; q < s->size; q++) {
        if (q == s->rank || !s->peer[q]) continue;
        char *mark = s->peer[q] + IPC_CLOSED_OFFSET + sizeof(uint32_t) * (size_t)s->rank;
        ok = ok && cudaMemcpyAsync(mark, &s->host->one, sizeof(uint32_t), cudaMemcpyHostToDevice, s->stream) ==
                       cudaSuccess;
    }
    if (!ok || !ipc_drain(s->stream, IPC_DRAIN_MS)) {
        (void)cudaGetLastError();
        return false;
    }
    for (int q = 0; q < s->size; q++) {
        if (s->opened[q]) (void)cudaIpcCloseMemHandle(s->peer[q]);
        s->opened[q] = false;
        if (q != s->rank) s->peer[q] = NULL;
    }
    (void)cudaGetLastError();
    return true;
}

/* Until every peer has promised (closed mark) that it is done with this
 * rank's region, or ms pass; CUDA's rule is that an exporter frees only
 * after the importers have closed their mappings. */
static void ipc_await_peers_closed(ipc_state *s, int ms) {
    double deadline = clock_now_s() + ms / 1e3;
    for (double nap = 2e-3;; nap = nap * 2 < 20e-3 ? nap * 2 : 20e-3) {
        if (cudaMemcpyAsync(s->host->closed, s->region + IPC_CLOSED_OFFSET, sizeof s->host->closed,
                            cudaMemcpyDeviceToHost, s->stream) != cudaSuccess ||
            !ipc_drain(s->stream, IPC_DRAIN_MS)) {
            (void)cudaGetLastError();
            return;
        }
        int missing = 0;
        for (int q = 0; q < s->size; q++) missing += q != s->rank && s->host->closed[q] == 0;
        double left = deadline - clock_now_s();
        if (!missing || left <= 0) return;
        ipc_nap(nap < left ? nap : left);
    }
}

/* Stops this rank's kernels, hands the peers' regions back, waits (bounded)
 * until the peers have handed this one back, and frees. When this rank's
 * own stream does not drain, a kernel or copy of it may still use the
 * memory: it is left allocated rather than freed under them. */
static void ipc_state_free(ipc_state *s, bool healthy) {
    if (!s) return;
    (void)cudaSetDevice(s->device);
    if (s->host) ipc_stop_kernels(s); /* nothing of ours should run; if it does, it stops */
    bool idle = !s->stream || ipc_drain(s->stream, IPC_DRAIN_MS);
    if (idle && s->published && ipc_release_peers(s)) {
        int ms = healthy || s->timeout_ms < IPC_FAILED_CLOSE_MS ? s->timeout_ms : IPC_FAILED_CLOSE_MS;
        ipc_await_peers_closed(s, ms);
    } else if (s->published) {
        idle = false;
    }
    if (idle) {
        for (int q = 0; q < s->size; q++)
            if (s->opened[q]) (void)cudaIpcCloseMemHandle(s->peer[q]);
        if (s->region) (void)cudaFree(s->region);
        if (s->host) (void)cudaFreeHost(s->host);
        if (s->stream) (void)cudaStreamDestroy(s->stream);
        (void)cudaGetLastError();
    }
    free(s);
}

static void ipc_destroy(comm *c) { ipc_state_free(c->state, !c->failed && !atomic_load(&c->aborted)); }

static const comm_ops ipc_ops = {
    .name = "ipc",
    .allreduce_sum = ipc_allreduce_sum,
    .allgather = ipc_allgather,
    .broadcast = ipc_broadcast,
    .barrier = ipc_barrier,
    .destroy = ipc_destroy,
    .interrupt = ipc_interrupt,
    .allreduce_enqueue = ipc_allreduce_enqueue,
    .stream_wait = ipc_stream_wait,
};

/* ---- rendezvous ---------------------------------------------------------------------------- */

/* Random, drawn once per process: two ranks with the same token (and pid)
 * share a process, hence a CUDA context and an address space. */
static uint64_t ipc_process_token(void) {
    static _Atomic uint64_t token;
    uint64_t t = atomic_load(&token);
    if (t) return t;
    uint64_t fresh = 0;
    if (getrandom(&fresh, sizeof fresh, 0) != (ssize_t)sizeof fresh)
        fresh = ((uint64_t)getpid() << 32) ^ (uint64_t)(clock_now_s() * 1e9);
    fresh |= 1; /* never 0, which means "not drawn yet" */
    uint64_t expected = 0;
    atomic_compare_exchange_strong(&token, &expected, fresh);
    return atomic_load(&token);
}

static bool ipc_key(char *key, size_t len, const comm_options *opt, int rank, const char *suffix, errbuf *err) {
    const char *prefix = opt->prefix ? opt->prefix : "";
    if (snprintf(key, len, "%sipc/%d%s", prefix, rank, suffix) >= (int)len)
        return errbuf_set(err, "key prefix too long (%zu bytes)", strlen(prefix));
    return true;
}

/* Polls the store for key until it is there with exactly len bytes, or the deadline. */
static bool ipc_store_await(const comm_store *store, const char *key, void *out, size_t len, double deadline,
                            int timeout_ms, const char *what, errbuf *err) {
    void *data = NULL;
    size_t got = 0;
    int found = comm_store_poll(store, key, deadline, &data, &got, err);
    if (found < 0) return false;
    if (!found) return errbuf_set(err, "timed out after %d ms waiting for %s (store key \"%s\")", timeout_ms, what, key);
    bool ok = got == len;
    if (ok) memcpy(out, data, len);
    free(data);
    return ok || errbuf_set(err, "store key \"%s\" holds %zu bytes, not %s (%zu)", key, got, what, len);
}

/* The stream, the region (zeroed before anyone can see it) and the host words. */
static bool ipc_allocate(ipc_state *s, double deadline, errbuf *err) {
    struct cudaDeviceProp prop;
    if (!CUDA_CHECK(err, cudaSetDevice(s->device)) || !CUDA_CHECK(err, cudaGetDeviceProperties(&prop, s->device)) ||
        !CUDA_CHECK(err, cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking)))
        return false;
    s->sm_count = prop.multiProcessorCount;
    memcpy(s->uuid, prop.uuid.bytes, sizeof s->uuid);
    void *region = NULL, *host = NULL;
    if (!CUDA_CHECK(err, cudaMalloc(&region, s->region_bytes))) return false;
    s->region = region;
    if (!CUDA_CHECK(err, cudaMemsetAsync(s->region, 0, s->region_bytes, s->stream)) ||
        !ipc_own_stream_idle(s, deadline, "zero the all-reduce buffers", err))
        return false;
    if (!CUDA_CHECK(err, cudaHostAlloc(&host, sizeof *s->host, cudaHostAllocMapped))) return false;
    s->host = host;
    memset(s->host, 0, sizeof *s->host);
    s->host->one = 1;
    void *host_dev = NULL;
    if (!CUDA_CHECK(err, cudaHostGetDevicePointer(&host_dev, s->host, 0))) return false;
    s->launch.host = host_dev;
    s->peer[s->rank] = s->region;
    return true;
}

static void ipc_describe(const ipc_state *s, ipc_record *r) {
    memset(r, 0, sizeof *r);
    r->magic = IPC_RECORD_MAGIC;
    r->version = IPC_RECORD_VERSION;
    r->rank = s->rank;
    r->size = s->size;
    r->device = s->device;
    r->pid = (int32_t)getpid();
    r->process = ipc_process_token();
    r->max_floats = s->max_floats;
    r->region_bytes = s->region_bytes;
    r->base = (uint64_t)(uintptr_t)s->region;
    memcpy(r->uuid, s->uuid, sizeof r->uuid);
    /* only peers in other processes need the handle: a failure is theirs to report */
    cudaError_t rc = cudaIpcGetMemHandle(&r->handle, s->region);
    r->handle_error = (int32_t)rc;
    if (rc != cudaSuccess) (void)cudaGetLastError();
}

/* A peer's record, read under its key: the same format, rank and group. */
static bool ipc_record_check(const ipc_record *mine, const ipc_record *p, int q, errbuf *err) {
    if (p->magic != IPC_RECORD_MAGIC || p->version != IPC_RECORD_VERSION)
        return errbuf_set(err, "rank %d's IPC record has magic %#x version %u, rank %d's %#x version %u "
                               "(different facet builds?)",
                          q, p->magic, p->version, mine->rank, IPC_RECORD_MAGIC, IPC_RECORD_VERSION);
    if (p->rank != q) return errbuf_set(err, "the IPC record under rank %d's key says rank %d", q, p->rank);
    if (p->size != mine->size)
        return errbuf_set(err, "rank %d was created for a group of %d ranks, rank %d for %d", q, p->size, mine->rank,
                          mine->size);
    if (p->max_floats != mine->max_floats || p->region_bytes != mine->region_bytes)
        return errbuf_set(err, "rank %d has max_floats %llu, rank %d %llu: every rank must use the same", q,
                          (unsigned long long)p->max_floats, mine->rank, (unsigned long long)mine->max_floats);
    return true;
}

/* A rank of this process on another GPU: its pointer works here once peer
 * access is on. */
static bool ipc_enable_peer_access(const ipc_state *s, int q, int peer_device, errbuf *err) {
    int can = 0;
    if (!CUDA_CHECK(err, cudaDeviceCanAccessPeer(&can, s->device, peer_device))) return false;
    if (!can)
        return errbuf_set(err, "GPU %d (rank %d) cannot access GPU %d (rank %d) directly, which the IPC all-reduce needs",
                          s->device, s->rank, peer_device, q);
    cudaError_t rc = cudaDeviceEnablePeerAccess(peer_device, 0);
    if (rc == cudaErrorPeerAccessAlreadyEnabled) {
        (void)cudaGetLastError();
        return true;
    }
    return CUDA_CHECK(err, rc);
}

/* Makes rank q's region addressable here: in this process, its own pointer
 * (CUDA refuses to open a process's own allocation); otherwise through its
 * IPC handle. */
static bool ipc_map_peer(ipc_state *s, const ipc_record *mine, const ipc_record *p, int q, errbuf *err) {
    if (p->process == mine->process && p->pid == mine->pid) {
        if (p->device != s->device && !ipc_enable_peer_access(s, q, p->device, err)) return false;
        s->peer[q] = (char *)(uintptr_t)p->base;
        return true;
    }
    if (p->handle_error != cudaSuccess)
        return errbuf_set(err, "rank %d (process %d, GPU %d) could not export its buffer for CUDA IPC: %s",
                          q, p->pid, p->device, cudaGetErrorName((cudaError_t)p->handle_error));
    void *ptr = NULL;
    cudaError_t rc = cudaIpcOpenMemHandle(&ptr, p->handle, cudaIpcMemLazyEnablePeerAccess);
    if (rc != cudaSuccess) {
        (void)cudaGetLastError();
        return errbuf_set(err, "cannot map rank %d's buffer (process %d, GPU %d) through CUDA IPC: %s (%s); is that "
                               "rank on another host, or in another IPC namespace (Kubernetes: hostIPC, or one pod "
                               "per group)?",
                          q, p->pid, p->device, cudaGetErrorName(rc), cudaGetErrorString(rc));
    }
    s->peer[q] = ptr;
    s->opened[q] = true;
    return true;
}

/* The ranks on one GPU spin waiting for each other's blocks, so all their
 * blocks must be resident at once. Asking the occupancy also loads both
 * kernels now: with lazy loading (CUDA's default), a first launch loads its
 * kernel, which may wait for the context's running kernels — one of them a
 * peer's, spinning until this rank's kernel runs. */
static bool ipc_check_residency(const ipc_state *s, int sharing, errbuf *err) {
    int per_sm = 0;
    if (!CUDA_CHECK(err, ipc_blocks_per_sm(&per_sm))) return false;
    long need = (long)sharing * IPC_BLOCKS, have = (long)per_sm * s->sm_count;
    if (sharing < 2 || need <= have) return true;
    return errbuf_set(err, "%d ranks share GPU %d, whose %d SMs hold %ld blocks of the all-reduce kernels at once; "
                           "their kernels wait for each other, so all %ld must fit: use fewer ranks per GPU",
                      sharing, s->device, s->sm_count, have, need);
}

/* Reads, checks and maps every peer's record. */
static bool ipc_join_peers(ipc_state *s, const comm_options *opt, const comm_store *store, const ipc_record *mine,
                           double deadline, errbuf *err) {
    int sharing = 1; /* ranks on this rank's GPU, itself included */
    for (int q = 0; q < s->size; q++) {
        if (q == s->rank) continue;
        char key[512], what[64];
        ipc_record p;
        snprintf(what, sizeof what, "rank %d's IPC record", q);
        if (!ipc_key(key, sizeof key, opt, q, "", err) ||
            !ipc_store_await(store, key, &p, sizeof p, deadline, s->timeout_ms, what, err) ||
            !ipc_record_check(mine, &p, q, err) || !ipc_map_peer(s, mine, &p, q, err))
            return false;
        sharing += memcmp(p.uuid, mine->uuid, sizeof p.uuid) == 0;
    }
    return ipc_check_residency(s, sharing, err);
}

/* prefix + "ipc/<rank>/ready": 1 once this rank has mapped every peer, 0
 * when its creation failed after it published its record. */
static bool ipc_set_ready(const comm_options *opt, const comm_store *store, int rank, uint8_t ready, errbuf *err) {
    char key[512];
    return ipc_key(key, sizeof key, opt, rank, "/ready", err) && store->set(store->ctx, key, &ready, 1, err);
}

/* Every rank has mapped every region before any returns: a rank whose
 * creation failed is never written to by a peer's all-reduce, and a peer
 * that sees its failure mark fails at once (and hands its region back). */
static bool ipc_all_ready(const ipc_state *s, const comm_options *opt, const comm_store *store, double deadline,
                          errbuf *err) {
    if (!ipc_set_ready(opt, store, s->rank, 1, err)) return false;
    for (int q = 0; q < s->size; q++) {
        if (q == s->rank) continue;
        char key[512], what[64];
        uint8_t ready = 0;
        snprintf(what, sizeof what, "rank %d's ready mark", q);
        if (!ipc_key(key, sizeof key, opt, q, "/ready", err) ||
            !ipc_store_await(store, key, &ready, 1, deadline, s->timeout_ms, what, err))
            return false;
        if (!ready) return errbuf_set(err, "rank %d could not join the group (its own log says why)", q);
    }
    return true;
}

static void ipc_fill_launch(ipc_state *s) {
    for (int q = 0; q < s->size; q++) s->launch.base[q] = s->peer[q];
    s->launch.data_stride = ipc_data_stride(s->max_floats);
    s->launch.timeout_ns = (uint64_t)s->timeout_ms * 1000000u;
    s->launch.rank = s->rank;
    s->launch.size = s->size;
}

/* Everything but the comm wrapper; false with the reason in err. */
static bool ipc_state_init(ipc_state *s, const comm_options *opt, const comm_store *store, errbuf *err) {
    double deadline = clock_now_s() + s->timeout_ms / 1e3; /* one bound for the whole rendezvous */
    ipc_record mine;
    char key[512];
    if (!ipc_allocate(s, deadline, err) || !ipc_key(key, sizeof key, opt, s->rank, "", err)) return false;
    ipc_describe(s, &mine);
    s->published = true; /* from the set on, a peer may map the region */
    if (!store->set(store->ctx, key, &mine, sizeof mine, err) || !ipc_join_peers(s, opt, store, &mine, deadline, err))
        return false;
    ipc_fill_launch(s);
    return ipc_all_ready(s, opt, store, deadline, err);
}

/* What this backend needs beyond comm_options_valid; false with why. */
static bool ipc_options_fit(const comm_options *opt, int cuda_device, char *why, size_t len) {
    if (opt->max_floats == 0) {
        snprintf(why, len, "max_floats must be positive: it sizes the buffers every all-reduce goes through");
        return false;
    }
    if (opt->size > IPC_MAX_RANKS) {
        snprintf(why, len, "%d ranks, but at most %d share one IPC all-reduce", opt->size, IPC_MAX_RANKS);
        return false;
    }
    if (cuda_device < 0) {
        snprintf(why, len, "CUDA device %d is not a device ordinal", cuda_device);
        return false;
    }
    if (opt->max_floats > (SIZE_MAX - IPC_HEADER_BYTES - 512) / (2 * sizeof(float))) {
        snprintf(why, len, "max_floats %zu is too large to allocate", opt->max_floats);
        return false;
    }
    return true;
}

comm *comm_ipc_create(const comm_options *opt, const comm_store *store, int cuda_device, errbuf *err) {
    char why[200];
    if (!comm_options_valid(opt, store, why, sizeof why)) {
        errbuf_set(err, "ipc: %s", why);
        return NULL;
    }
    if (!ipc_options_fit(opt, cuda_device, why, sizeof why)) {
        errbuf_set(err, "ipc (rank %d of %d): %s", opt->rank, opt->size, why);
        return NULL;
    }
    ipc_state *s = calloc(1, sizeof *s);
    if (!s) {
        errbuf_set(err, "ipc: out of memory");
        return NULL;
    }
    /* one rank reduces nothing: only the header (its barrier's scratch), no staging buffers */
    size_t staging = opt->size > 1 ? 2 * ipc_data_stride(opt->max_floats) : 0;
    *s = (ipc_state){.rank = opt->rank, .size = opt->size, .device = cuda_device, .timeout_ms = opt->timeout_ms,
                     .max_floats = opt->max_floats, .region_bytes = IPC_HEADER_BYTES + staging};
    errbuf detail = {{0}};
    comm *c = NULL;
    if (ipc_state_init(s, opt, store, &detail)) c = comm_base_new(&ipc_ops, opt->rank, opt->size, opt->max_floats, s);
    if (!c) {
        errbuf_set(err, "ipc rendezvous (rank %d of %d, device %d, prefix \"%s\"): %s", opt->rank, opt->size,
                   cuda_device, opt->prefix ? opt->prefix : "", detail.msg[0] ? detail.msg : "out of memory");
        errbuf ignored;
        if (s->published) (void)ipc_set_ready(opt, store, opt->rank, 0, &ignored); /* peers fail at once */
        ipc_state_free(s, false);
    }
    return c;
}
