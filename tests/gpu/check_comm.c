/* check_comm.c — gpu_check's check of the CUDA-IPC all-reduce
 * (comm/comm_ipc.h): ranks as threads of this process, all on device 0, over
 * the in-process store, each with its communicator from
 * api->comm_ipc_create, driven through the ordinary comm_* calls.
 *
 * For T = 2 and 4 and sizes on both sides of the one-shot/two-shot switch
 * (and odd ones at an unaligned address, for the scalar paths): one
 * all-reduce; three back to back with one wait (both staging buffers, and
 * the reuse between calls); one captured in a CUDA graph and replayed three
 * times, with fresh inputs each time. The inputs are random floats, whose
 * sum depends on the order of the additions: every element on every rank
 * must equal, bit for bit, the sum in rank order computed here. Then the
 * median of 20 enqueue + wait, with the bus bandwidth (2(T-1)/T of the bytes
 * per second, as nccl-tests reports it).
 *
 * Then the failure paths, T = 2: a peer that joins but never reduces (the
 * wait fails after the 500 ms timeout, and the communicator refuses the next
 * call at once), and comm_abort from another thread, which must end a
 * blocked wait within 100 ms.
 *
 * The device buffers are the test's own, so gpu_check links the CUDA runtime
 * (the same libcudart the module uses) when it is built with the module;
 * otherwise FACET_GPU_CHECK_COMM is undefined and this says so. */
#include "check_comm.h"

#include <stdio.h>

#ifndef FACET_GPU_CHECK_COMM

void check_comm(const struct cuda_api *api, check_row_fn row, check_error_fn op_error) {
    (void)api, (void)row, (void)op_error;
    printf("ipc_allreduce: not checked: gpu_check was built without the CUDA runtime\n");
}

#else

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_runtime.h>

#include "comm/comm.h"
#include "comm/ipc_kernels.h" /* IPC_ONESHOT_MAX_BYTES: which algorithm a size gets */
#include "common/clock.h"
#include "kernels/cuda/api.h"

#define MAX_RANKS 4
#define MAX_FLOATS 4194304 /* the largest case: 16 MB */
#define TIMING_ITERS 20
#define CHECK_TIMEOUT_MS 10000
#define DEAD_PEER_TIMEOUT_MS 500

/* n floats at buf + offset floats: offset 1 makes the buffer 4 bytes past a
 * 16-byte boundary (no float4), and odd n leaves a tail. */
typedef struct ar_case {
    size_t n, offset;
    const char *name;
} ar_case;

static const ar_case cases[] = {
    {512, 0, "2 KB"},      {2048, 0, "8 KB"},       {16384, 0, "64 KB"},          {1001, 1, "1001 floats @+4B"},
    {262144, 0, "1 MB"},   {MAX_FLOATS, 0, "16 MB"}, {262147, 1, "1 MB+12 B @+4B"},
};
#define N_CASES (sizeof cases / sizeof cases[0])

/* ---- inputs and the reference ------------------------------------------------ */

static uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Rank r's element i of input `variant`: a float in [-1, 1) with 24 random bits. */
static float input_value(int rank, size_t i, int variant) {
    uint64_t h = mix64(((uint64_t)rank << 56) ^ ((uint64_t)variant << 48) ^ (uint64_t)i);
    return (float)((int32_t)(h >> 40) - (1 << 23)) * (1.0f / (float)(1 << 23));
}

static void fill_input(float *x, int rank, size_t n, int variant) {
    for (size_t i = 0; i < n; i++) x[i] = input_value(rank, i, variant);
}

/* What `times` all-reduces in a row leave in every rank's buffer: each one
 * adds the ranks' values in rank order, in fp32, as the kernels must. */
static void expected_sum(float *want, int size, size_t n, int variant, int times) {
    for (size_t i = 0; i < n; i++) {
        float acc = input_value(0, i, variant);
        for (int q = 1; q < size; q++) acc += input_value(q, i, variant);
        for (int t = 1; t < times; t++) {
            float s = acc;
            for (int q = 1; q < size; q++) acc += s;
        }
        want[i] = acc;
    }
}

/* ---- what a rank reports ------------------------------------------------------- */

typedef struct case_result {
    size_t checked, bad;  /* elements compared and mismatched (every check of the case) */
    char first_bad[200];  /* the first mismatch */
    double ms;            /* median enqueue + wait */
    bool failed;          /* a call failed: err says which */
    errbuf err;
} case_result;

static void compare(case_result *r, int rank, const char *what, const float *out, const float *want, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t a, b;
        memcpy(&a, &out[i], 4);
        memcpy(&b, &want[i], 4);
        if (a == b) continue;
        if (!r->bad)
            snprintf(r->first_bad, sizeof r->first_bad, "rank %d, %s: element %zu is %.9g, want %.9g", rank, what, i,
                     (double)out[i], (double)want[i]);
        r->bad++;
    }
    r->checked += n;
}

static bool cuda_ok(cudaError_t rc, const char *what, errbuf *err) {
    if (rc == cudaSuccess) return true;
    return errbuf_set(err, "%s: %s (%s)", what, cudaGetErrorName(rc), cudaGetErrorString(rc));
}

static bool upload(float *dev, const float *host, size_t n, errbuf *err) {
    return cuda_ok(cudaMemcpy(dev, host, n * sizeof(float), cudaMemcpyHostToDevice), "upload", err);
}

static bool download(float *host, const float *dev, size_t n, errbuf *err) {
    return cuda_ok(cudaMemcpy(host, dev, n * sizeof(float), cudaMemcpyDeviceToHost), "download", err);
}

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- a group of ranks, one thread each ---------------------------------------------- */

typedef struct group group;
typedef void (*rank_fn)(group *g, int rank, comm *c);

struct group {
    const cuda_api *api;
    comm_store *store;
    comm_options opt; /* rank set per thread */
    rank_fn body;
    void *ctx;        /* the body's */
    /* After creation: a body runs only when every rank has a communicator. */
    pthread_barrier_t created_all;
    /* Bodies line up after the CUDA calls that might wait for the whole device (allocation, graphs):
     * a rank blocked in one while a peer's kernel of the next all-reduce spins waiting for it would stall
     * both until the timeout, so no rank starts an all-reduce before every rank is past such a call.
     * Every rank calls it at the same points, failed or not. */
    pthread_barrier_t lined_up;
    /* every rank frees at once: each waits for the others' promise that they are done with its memory */
    pthread_barrier_t before_free;
    bool created[MAX_RANKS];
    errbuf create_err[MAX_RANKS];
};

static void line_up(group *g) { pthread_barrier_wait(&g->lined_up); }

typedef struct rank_arg {
    group *g;
    int rank;
} rank_arg;

static void *rank_main(void *p) {
    rank_arg *a = p;
    group *g = a->g;
    comm_options opt = g->opt;
    opt.rank = a->rank;
    comm *c = NULL;
    if (cuda_ok(cudaSetDevice(0), "cudaSetDevice(0)", &g->create_err[a->rank]))
        c = g->api->comm_ipc_create(&opt, g->store, 0, &g->create_err[a->rank]);
    g->created[a->rank] = c != NULL;
    pthread_barrier_wait(&g->created_all);
    bool all = true;
    for (int r = 0; r < g->opt.size; r++) all = all && g->created[r];
    if (all) g->body(g, a->rank, c);
    pthread_barrier_wait(&g->before_free);
    comm_free(c);
    return NULL;
}

/* Runs body on `size` ranks over a fresh store. False (reported) when a rank
 * could not create its communicator. */
static bool run_group(const cuda_api *api, int size, int timeout_ms, size_t max_floats, rank_fn body, void *ctx,
                      const char *what, check_error_fn op_error) {
    group g = {.api = api, .body = body, .ctx = ctx};
    g.opt = (comm_options){.size = size, .prefix = "ipc-check/", .timeout_ms = timeout_ms, .max_floats = max_floats};
    g.store = comm_store_local_create();
    pthread_barrier_init(&g.created_all, NULL, (unsigned)size);
    pthread_barrier_init(&g.lined_up, NULL, (unsigned)size);
    pthread_barrier_init(&g.before_free, NULL, (unsigned)size);
    pthread_t threads[MAX_RANKS];
    rank_arg args[MAX_RANKS];
    for (int r = 0; r < size; r++) {
        args[r] = (rank_arg){&g, r};
        pthread_create(&threads[r], NULL, rank_main, &args[r]);
    }
    for (int r = 0; r < size; r++) pthread_join(threads[r], NULL);
    pthread_barrier_destroy(&g.created_all);
    pthread_barrier_destroy(&g.lined_up);
    pthread_barrier_destroy(&g.before_free);
    comm_store_local_free(g.store);
    for (int r = 0; r < size; r++)
        if (!g.created[r]) {
            op_error("ipc_create", what, &g.create_err[r]);
            return false;
        }
    return true;
}

/* ---- correctness, graphs, timing ------------------------------------------------------- */

typedef struct correctness {
    case_result res[N_CASES][MAX_RANKS];
} correctness;

/* One all-reduce of the input variant, checked. */
static bool reduce_once(comm *c, int rank, int size, const ar_case *k, cudaStream_t stream, float *buf, float **host,
                        case_result *r, errbuf *err) {
    float *in = host[0], *out = host[1], *want = host[2];
    fill_input(in, rank, k->n, 0);
    if (!upload(buf, in, k->n, err) || !comm_allreduce_sum_enqueue(c, buf, k->n, stream, err) ||
        !comm_stream_wait(c, stream, err) || !download(out, buf, k->n, err))
        return false;
    expected_sum(want, size, k->n, 0, 1);
    compare(r, rank, "one all-reduce", out, want, k->n);
    return true;
}

/* Three all-reduces enqueued with no host wait between them (calls of both
 * parities, each reusing a staging buffer while peers may still be a call
 * behind), then one wait. The ranks enqueue in lockstep (line_up after each
 * call): threads of one process may share a hardware queue, where a rank's
 * second call, waiting for its first, would hold up a peer's first queued
 * behind it — which the first needs: a stall until the timeout (ranks in
 * separate processes have queues of their own). Every rank lines up three
 * times, failed or not. */
static bool reduce_back_to_back(group *g, comm *c, int rank, int size, const ar_case *k, cudaStream_t stream,
                                float *buf, float **host, case_result *r, bool ok, errbuf *err) {
    float *in = host[0], *out = host[1], *want = host[2];
    if (ok) fill_input(in, rank, k->n, 1);
    ok = ok && upload(buf, in, k->n, err);
    for (int i = 0; i < 3; i++) {
        ok = ok && comm_allreduce_sum_enqueue(c, buf, k->n, stream, err);
        line_up(g);
    }
    if (!ok || !comm_stream_wait(c, stream, err) || !download(out, buf, k->n, err)) return false;
    expected_sum(want, size, k->n, 1, 3);
    compare(r, rank, "3 back to back", out, want, k->n);
    return true;
}

/* One all-reduce captured in a graph (instantiated into *exec). */
static bool capture_allreduce(comm *c, const ar_case *k, cudaStream_t stream, float *buf, cudaGraph_t *graph,
                              cudaGraphExec_t *exec, errbuf *err) {
    if (!cuda_ok(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture", err))
        return false;
    bool captured = comm_allreduce_sum_enqueue(c, buf, k->n, stream, err);
    cudaError_t end = cudaStreamEndCapture(stream, graph);
    return captured && cuda_ok(end, "cudaStreamEndCapture", err) &&
           cuda_ok(cudaGraphInstantiate(exec, *graph, 0), "cudaGraphInstantiate", err);
}

/* The captured all-reduce replayed 3 times on fresh inputs, each checked. */
static bool replay_allreduce(comm *c, int rank, int size, const ar_case *k, cudaStream_t stream, float *buf,
                             cudaGraphExec_t exec, float **host, case_result *r, errbuf *err) {
    float *in = host[0], *out = host[1], *want = host[2];
    for (int rep = 0; rep < 3; rep++) {
        char what[32];
        snprintf(what, sizeof what, "graph replay %d", rep + 1);
        fill_input(in, rank, k->n, 2 + rep);
        if (!upload(buf, in, k->n, err) || !cuda_ok(cudaGraphLaunch(exec, stream), "cudaGraphLaunch", err) ||
            !comm_stream_wait(c, stream, err) || !download(out, buf, k->n, err))
            return false;
        expected_sum(want, size, k->n, 2 + rep, 1);
        compare(r, rank, what, out, want, k->n);
    }
    return true;
}

/* Median of TIMING_ITERS enqueue + wait, the ranks lined up by a barrier. */
static bool time_allreduce(comm *c, const ar_case *k, cudaStream_t stream, float *buf, case_result *r, errbuf *err) {
    double t[TIMING_ITERS];
    if (!comm_barrier(c, err)) return false;
    for (int i = 0; i < TIMING_ITERS; i++) {
        double t0 = clock_now_s();
        if (!comm_allreduce_sum_enqueue(c, buf, k->n, stream, err) || !comm_stream_wait(c, stream, err)) return false;
        t[i] = clock_now_s() - t0;
    }
    qsort(t, TIMING_ITERS, sizeof t[0], compare_double);
    r->ms = t[TIMING_ITERS / 2] * 1e3;
    return true;
}

static void correctness_rank(group *g, int rank, comm *c) {
    correctness *ctx = g->ctx;
    int size = comm_size(c);
    cudaStream_t stream = NULL;
    float *dev = NULL;
    float *host[3] = {malloc(MAX_FLOATS * sizeof(float)), malloc(MAX_FLOATS * sizeof(float)),
                      malloc(MAX_FLOATS * sizeof(float))};
    errbuf err = {{0}};
    bool ok = host[0] && host[1] && host[2] ? true : errbuf_set(&err, "out of host memory");
    ok = ok && cuda_ok(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate", &err) &&
         cuda_ok(cudaMalloc((void **)&dev, (MAX_FLOATS + 1) * sizeof(float)), "cudaMalloc", &err);
    line_up(g);
    for (size_t i = 0; i < N_CASES; i++) {
        const ar_case *k = &cases[i];
        case_result *r = &ctx->res[i][rank];
        float *buf = ok ? dev + k->offset : NULL;
        cudaGraph_t graph = NULL;
        cudaGraphExec_t exec = NULL;
        ok = ok && reduce_once(c, rank, size, k, stream, buf, host, r, &err);
        ok = reduce_back_to_back(g, c, rank, size, k, stream, buf, host, r, ok, &err) &&
             capture_allreduce(c, k, stream, buf, &graph, &exec, &err);
        line_up(g);
        ok = ok && replay_allreduce(c, rank, size, k, stream, buf, exec, host, r, &err) &&
             time_allreduce(c, k, stream, buf, r, &err);
        if (exec) cudaGraphExecDestroy(exec);
        if (graph) cudaGraphDestroy(graph);
        line_up(g);
        if (!ok) { /* this case's failure, or the one that stopped the rank earlier */
            r->failed = true;
            r->err = err;
        }
    }
    if (dev) cudaFree(dev);
    if (stream) cudaStreamDestroy(stream);
    free(host[0]), free(host[1]), free(host[2]);
}

static void report_cases(int size, const correctness *ctx, check_row_fn row, check_error_fn op_error) {
    for (size_t i = 0; i < N_CASES; i++) {
        const ar_case *k = &cases[i];
        char shape[64];
        snprintf(shape, sizeof shape, "T=%d %s %s", size, k->name,
                 k->n * sizeof(float) <= IPC_ONESHOT_MAX_BYTES ? "1-shot" : "2-shot");
        size_t checked = 0, bad = 0;
        const case_result *failed = NULL, *first_bad = NULL;
        for (int r = 0; r < size; r++) {
            const case_result *cr = &ctx->res[i][r];
            if (cr->failed && !failed) failed = cr;
            if (cr->bad && !first_bad) first_bad = cr;
            checked += cr->checked, bad += cr->bad;
        }
        if (failed) {
            op_error("ipc_allreduce", shape, &failed->err);
            continue;
        }
        double busbw_bytes = (double)k->n * sizeof(float) * 2.0 * (size - 1) / size;
        row("ipc_allreduce", shape, checked ? (double)bad / (double)checked : 1.0, 0, ctx->res[i][0].ms, busbw_bytes,
            0);
        if (first_bad) printf("    first mismatch: %s (%zu of %zu elements differ)\n", first_bad->first_bad, bad, checked);
    }
}

/* ---- failure paths -------------------------------------------------------------------------- */

typedef struct failure_path {
    bool setup_ok;
    bool wait_ok, next_ok;      /* the calls' results (both must be false) */
    double wait_s, next_s;      /* how long each took */
    double abort_latency_s;     /* comm_abort to the wait's return */
    errbuf wait_err, next_err, setup_err;
} failure_path;

typedef struct aborter {
    comm *c;
    int delay_ms;
    double aborted_at;
} aborter;

static void *abort_later(void *p) {
    aborter *a = p;
    struct timespec ts = {a->delay_ms / 1000, (long)(a->delay_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    a->aborted_at = clock_now_s();
    comm_abort(a->c);
    return NULL;
}

/* Rank 0 reduces (1024 floats); the other rank joined and never does. With
 * abort_after_ms > 0 a second thread aborts rank 0's communicator then. */
static void lonely_rank(group *g, int rank, comm *c, int abort_after_ms) {
    if (rank != 0) {
        line_up(g);
        return;
    }
    failure_path *f = g->ctx;
    cudaStream_t stream = NULL;
    float *dev = NULL;
    f->setup_ok = cuda_ok(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate", &f->setup_err) &&
                  cuda_ok(cudaMalloc((void **)&dev, 1024 * sizeof(float)), "cudaMalloc", &f->setup_err) &&
                  cuda_ok(cudaMemset(dev, 0, 1024 * sizeof(float)), "cudaMemset", &f->setup_err);
    line_up(g);
    if (f->setup_ok) {
        aborter a = {c, abort_after_ms, 0};
        pthread_t th;
        bool aborting = abort_after_ms > 0 && pthread_create(&th, NULL, abort_later, &a) == 0;
        double t0 = clock_now_s();
        f->wait_ok = comm_allreduce_sum_enqueue(c, dev, 1024, stream, &f->wait_err) &&
                     comm_stream_wait(c, stream, &f->wait_err);
        double t1 = clock_now_s();
        f->wait_s = t1 - t0;
        if (aborting) {
            pthread_join(th, NULL);
            f->abort_latency_s = t1 - a.aborted_at;
        }
        t0 = clock_now_s();
        f->next_ok = comm_allreduce_sum_enqueue(c, dev, 1024, stream, &f->next_err);
        f->next_s = clock_now_s() - t0;
    }
    if (dev) cudaFree(dev);
    if (stream) cudaStreamDestroy(stream);
}

static void dead_peer_rank(group *g, int rank, comm *c) { lonely_rank(g, rank, c, 0); }
static void aborted_rank(group *g, int rank, comm *c) { lonely_rank(g, rank, c, 200); }

static void check_dead_peer(const cuda_api *api, check_row_fn row, check_error_fn op_error) {
    failure_path f = {0};
    const char *what = "T=2 peer never reduces";
    if (!run_group(api, 2, DEAD_PEER_TIMEOUT_MS, 4096, dead_peer_rank, &f, what, op_error)) return;
    if (!f.setup_ok) {
        op_error("ipc_fail", what, &f.setup_err);
        return;
    }
    bool wait_pass = !f.wait_ok && strstr(f.wait_err.msg, "timed out") && f.wait_s >= 0.4 && f.wait_s <= 2.0;
    row("ipc_fail", "T=2 dead peer: wait times out", wait_pass ? 0 : 1, 0, f.wait_s * 1e3, 0, 0);
    printf("    %s\n", f.wait_ok ? "the wait succeeded" : f.wait_err.msg);
    bool next_pass = !f.next_ok && strstr(f.next_err.msg, "failed earlier") && f.next_s < 0.05;
    row("ipc_fail", "T=2 dead peer: next call refused", next_pass ? 0 : 1, 0, f.next_s * 1e3, 0, 0);
    if (!next_pass) printf("    %s\n", f.next_ok ? "the next enqueue succeeded" : f.next_err.msg);
}

static void check_abort(const cuda_api *api, check_row_fn row, check_error_fn op_error) {
    failure_path f = {0};
    const char *what = "T=2 comm_abort during a wait";
    if (!run_group(api, 2, CHECK_TIMEOUT_MS, 4096, aborted_rank, &f, what, op_error)) return;
    if (!f.setup_ok) {
        op_error("ipc_fail", what, &f.setup_err);
        return;
    }
    bool pass = !f.wait_ok && strstr(f.wait_err.msg, "abort") && f.abort_latency_s >= 0 && f.abort_latency_s < 0.1;
    row("ipc_fail", "T=2 comm_abort ends a wait", pass ? 0 : 1, 0, f.abort_latency_s * 1e3, 0, 0);
    printf("    %s\n", f.wait_ok ? "the wait succeeded" : f.wait_err.msg);
}

void check_comm(const struct cuda_api *api, check_row_fn row, check_error_fn op_error) {
    if (!api->comm_ipc_create) {
        errbuf err;
        errbuf_set(&err, "the CUDA module has no IPC communicator");
        op_error("ipc_allreduce", "create", &err);
        return;
    }
    static correctness ctx; /* (N_CASES x MAX_RANKS) results: too big for the stack of a check */
    for (int size = 2; size <= MAX_RANKS; size *= 2) {
        char what[32];
        snprintf(what, sizeof what, "T=%d", size);
        memset(&ctx, 0, sizeof ctx);
        if (run_group(api, size, CHECK_TIMEOUT_MS, MAX_FLOATS, correctness_rank, &ctx, what, op_error))
            report_cases(size, &ctx, row, op_error);
    }
    check_dead_peer(api, row, op_error);
    check_abort(api, row, op_error);
}

#endif
