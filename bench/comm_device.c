/* comm_device.c — `facet bench comm --device cuda`: the all-reduce on DEVICE
 * buffers as a CUDA engine runs it, ranks as threads of this process, one
 * stream each, rank r on GPU r mod the GPU count:
 *
 *   ipc   comm/comm_ipc.h: enqueue on the rank's stream, then wait for it
 *   nccl  comm/comm_nccl.h, the same (one GPU per rank: NCCL refuses two)
 *   host  what the engine does without a device communicator: copy the
 *         buffer to the host, all-reduce it over Gloo, copy it back
 *
 * The columns are bench comm's (nccl-tests'): size, count | time, algbw,
 * busbw, #wrong. time = the median over iterations of the slowest rank,
 * each iteration started together (a pthread barrier, outside the timing).
 * Every result is copied back and checked against the exact sum (small
 * integers); a wrong element makes the exit status 1. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "comm/bench_comm.h"
#include "comm/comm_impl.h"
#include "comm/select.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "kernels/cuda/api.h"
#include "worker/backend.h"

enum { DEV_MAX_RANKS = 8, DEV_TIMEOUT_MS = 10000 };

typedef struct dev_options {
    comm_mode backend; /* IPC, NCCL or HOST */
    int ranks, iters, warmup;
    size_t min_bytes, max_bytes;
} dev_options;

typedef struct dev_group {
    dev_options opt;
    const cuda_api *api;
    comm_nccl_create_fn nccl_create;
    int n_gpus;
    comm_store *store;
    pthread_barrier_t step;
    double *times; /* (ranks, iters) seconds, the current size */
    size_t wrong[DEV_MAX_RANKS];
    bool failed[DEV_MAX_RANKS];
    errbuf errs[DEV_MAX_RANKS];
    bool stop;
    int status;
} dev_group;

typedef struct dev_rank {
    dev_group *g;
    int rank;
    comm *dev, *host; /* the device communicator (ipc, nccl), or the host one */
    void *stream;
    float *buf, *stage; /* device (max_bytes); host (max_bytes) */
} dev_rank;

/* ---- options ---------------------------------------------------------------------- */

static void dev_usage(FILE *f) {
    fprintf(f, "usage: facet bench comm --device cuda [--backend ipc|nccl|host] [--ranks T] [--min-bytes B]\n"
               "                        [--max-bytes B] [--iters N] [--warmup N]\n"
               "All-reduce (sum, float32) of DEVICE buffers, T ranks as threads, rank r on GPU r mod the GPU count;\n"
               "host = copy down, Gloo, copy up (what a CUDA engine does without a device communicator).\n"
               "  --backend B        ipc (default), nccl or host\n"
               "  --ranks T          ranks, 1..%d (default 2)\n"
               "  --min-bytes B      smallest message, a multiple of 4 (default 2048)\n"
               "  --max-bytes B      largest message (default 65536)\n"
               "  --iters N          timed iterations per size; the median is shown (default 50)\n"
               "  --warmup N         untimed iterations per size first (default 10)\n",
            DEV_MAX_RANKS);
}

/* Returns -1 to run, else the exit status. argv holds no --device (the caller took it). */
static int dev_parse(int argc, char **argv, dev_options *o) {
    *o = (dev_options){.backend = COMM_MODE_IPC, .ranks = 2, .iters = 50, .warmup = 10, .min_bytes = 2048,
                       .max_bytes = 65536};
    for (int i = 1; i < argc; i += 2) { /* --name value */
        const char *name = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        size_t v = 0;
        bool ok = true;
        if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
            dev_usage(stdout);
            return 0;
        } else if (strcmp(name, "--backend") == 0) {
            ok = comm_mode_parse(value, &o->backend) && o->backend != COMM_MODE_AUTO && strcmp(value, "gloo") != 0;
            if (!ok) fprintf(stderr, "facet bench comm: --backend wants ipc, nccl or host, got \"%s\"\n", value ? value : "");
        } else if (strcmp(name, "--ranks") == 0) {
            ok = bench_comm_parse_size("ranks", value, 1, DEV_MAX_RANKS, &v);
            o->ranks = (int)v;
        } else if (strcmp(name, "--iters") == 0) {
            ok = bench_comm_parse_size("iters", value, 1, 100000, &v);
            o->iters = (int)v;
        } else if (strcmp(name, "--warmup") == 0) {
            ok = bench_comm_parse_size("warmup", value, 0, 100000, &v);
            o->warmup = (int)v;
        } else if (strcmp(name, "--min-bytes") == 0) {
            ok = bench_comm_parse_size("min-bytes", value, 4, (size_t)1 << 30, &o->min_bytes);
        } else if (strcmp(name, "--max-bytes") == 0) {
            ok = bench_comm_parse_size("max-bytes", value, 4, (size_t)1 << 30, &o->max_bytes);
        } else {
            fprintf(stderr, "facet bench comm: unknown option %s (see --device cuda --help)\n", name);
            return 2;
        }
        if (!ok) return 2;
    }
    if (o->min_bytes % 4 || o->max_bytes % 4 || o->min_bytes > o->max_bytes) {
        fprintf(stderr, "facet bench comm: sizes must be multiples of 4 bytes with --min-bytes <= --max-bytes\n");
        return 2;
    }
    return -1;
}

/* ---- data (the same small integers as the host benchmark: exact in any order) ----------- */

static float dev_value(size_t i, int rank, int iter) {
    return (float)((int)((i + 3 * (size_t)rank + 5 * (size_t)iter) % 17) - 8);
}

static size_t dev_count_wrong(const float *got, size_t n, int ranks, int iter) {
    size_t wrong = 0;
    for (size_t i = 0; i < n; i++) {
        float want = 0;
        for (int r = 0; r < ranks; r++) want += dev_value(i, r, iter);
        wrong += got[i] != want;
    }
    return wrong;
}

/* ---- one rank ------------------------------------------------------------------------ */

static bool dev_rank_open(dev_rank *r, errbuf *err) {
    dev_group *g = r->g;
    const dev_options *o = &g->opt;
    int device = r->rank % g->n_gpus;
    comm_options co = {.rank = r->rank, .size = o->ranks, .prefix = "bench-comm-device/", .hostname = "127.0.0.1",
                       .timeout_ms = DEV_TIMEOUT_MS, .max_floats = o->max_bytes / sizeof(float)};
    r->stage = xmalloc(o->max_bytes);
    if (!(r->stream = g->api->stream_create(device, err)) || !(r->buf = g->api->dev_alloc(device, o->max_bytes, err)))
        return false;
    if (o->backend == COMM_MODE_IPC) return (r->dev = g->api->comm_ipc_create(&co, g->store, device, err)) != NULL;
    if (o->backend == COMM_MODE_NCCL) return (r->dev = g->nccl_create(&co, g->store, device, err)) != NULL;
    return o->ranks == 1 || (r->host = comm_gloo_create(&co, g->store, err)) != NULL;
}

static void dev_rank_close(dev_rank *r) {
    comm_free(r->dev);
    comm_free(r->host);
    if (r->buf) r->g->api->dev_free(r->buf);
    r->g->api->stream_destroy(r->stream);
    free(r->stage);
}

/* One all-reduce of n floats at r->buf, as the engine issues it. */
static bool dev_allreduce(dev_rank *r, size_t n, errbuf *err) {
    if (r->dev) return comm_allreduce_sum_enqueue(r->dev, r->buf, n, r->stream, err) && comm_stream_wait(r->dev, r->stream, err);
    const cuda_api *api = r->g->api;
    return api->dev_copy(r->stage, r->buf, n * sizeof(float), false, err) &&
           (!r->host || comm_allreduce_sum(r->host, r->stage, n, err)) &&
           api->dev_copy(r->buf, r->stage, n * sizeof(float), true, err);
}

/* The iterations of one size. A rank that failed (ok false on entry, or on the way) still meets the others
 * at both barriers of every iteration, so that nobody waits for it forever; it only stops working. */
static bool dev_run_size(dev_rank *r, size_t n, bool ok, errbuf *err) {
    dev_group *g = r->g;
    const dev_options *o = &g->opt;
    g->wrong[r->rank] = 0;
    for (int it = 0; it < o->warmup + o->iters; it++) {
        for (size_t i = 0; ok && i < n; i++) r->stage[i] = dev_value(i, r->rank, it);
        ok = ok && g->api->dev_copy(r->buf, r->stage, n * sizeof(float), true, err);
        pthread_barrier_wait(&g->step);
        double t0 = clock_now_s();
        ok = ok && dev_allreduce(r, n, err);
        double dt = clock_now_s() - t0;
        pthread_barrier_wait(&g->step); /* every rank is past its wait before anyone refills its buffer */
        ok = ok && g->api->dev_copy(r->stage, r->buf, n * sizeof(float), false, err);
        if (!ok) continue;
        g->wrong[r->rank] += dev_count_wrong(r->stage, n, o->ranks, it);
        if (it >= o->warmup) g->times[(size_t)r->rank * (size_t)o->iters + (size_t)(it - o->warmup)] = dt;
    }
    return ok;
}

/* ---- the table ------------------------------------------------------------------------ */

static void dev_report(dev_group *g, size_t bytes) {
    for (int r = 0; r < g->opt.ranks; r++)
        if (g->failed[r]) {
            printf("# rank %d: %s\n", r, g->errs[r].msg);
            g->stop = true;
            g->status = 1;
        }
    if (g->stop) return;
    size_t wrong = 0;
    for (int r = 0; r < g->opt.ranks; r++) wrong += g->wrong[r];
    double t = bench_comm_median_slowest(g->times, g->opt.ranks, g->opt.iters), algbw = t > 0 ? (double)bytes / t / 1e9 : 0;
    double busbw = algbw * 2.0 * (g->opt.ranks - 1) / g->opt.ranks;
    printf("  %10zu %12zu %7s | %10.1f %8.3f %8.3f %7zu\n", bytes, bytes / sizeof(float), "float", t * 1e6, algbw,
           busbw, wrong);
    if (wrong) g->status = 1;
}

static void *dev_rank_main(void *p) {
    dev_rank *r = p;
    dev_group *g = r->g;
    errbuf *err = &g->errs[r->rank];
    bool ok = dev_rank_open(r, err);
    for (size_t bytes = g->opt.min_bytes; bytes <= g->opt.max_bytes; bytes *= 2) {
        ok = dev_run_size(r, bytes / sizeof(float), ok, err);
        g->failed[r->rank] = !ok;
        pthread_barrier_wait(&g->step);
        if (r->rank == 0) dev_report(g, bytes);
        pthread_barrier_wait(&g->step);
        if (g->stop) break;
    }
    if (!ok && r->dev) comm_abort(r->dev); /* freed without waiting for peers that failed too */
    dev_rank_close(r);
    return NULL;
}

/* ---- main ------------------------------------------------------------------------------ */

/* The CUDA module, the GPUs, and NCCL when asked for; false with the reason printed. */
static bool dev_group_init(dev_group *g, const dev_options *o) {
    char why[ERRBUF_LEN];
    *g = (dev_group){.opt = *o};
    if (!(g->api = backend_cuda_api(why, sizeof why))) {
        fprintf(stderr, "facet bench comm --device cuda: CUDA cannot start: %s\n", why);
        return false;
    }
    g->n_gpus = g->api->probe(why, sizeof why);
    if (o->backend == COMM_MODE_NCCL) {
        if (!(g->nccl_create = backend_nccl_create(why, sizeof why))) {
            fprintf(stderr, "facet bench comm --device cuda: NCCL cannot load: %s\n", why);
            return false;
        }
        if (o->ranks > g->n_gpus) {
            fprintf(stderr, "facet bench comm --device cuda: --backend nccl needs a GPU per rank (%d ranks, %d GPU%s): "
                            "NCCL refuses two ranks on one GPU; use --backend ipc\n",
                    o->ranks, g->n_gpus, g->n_gpus == 1 ? "" : "s");
            return false;
        }
    }
    g->store = comm_store_local_create();
    g->times = xcalloc((size_t)o->ranks * (size_t)o->iters, sizeof *g->times);
    return pthread_barrier_init(&g->step, NULL, (unsigned)o->ranks) == 0;
}

int bench_comm_device_main(int argc, char **argv) {
    dev_options o;
    int rc = dev_parse(argc, argv, &o);
    if (rc >= 0) return rc;
    dev_group g;
    if (!dev_group_init(&g, &o)) return 1;
    char why[256];
    g.api->probe(why, sizeof why);
    printf("# facet bench comm --device cuda: all-reduce (sum) of float32 device buffers over %s, %d rank%s as "
           "threads\n# %s\n", comm_mode_name(o.backend), o.ranks, o.ranks == 1 ? "" : "s", why);
    printf("# %d timed iterations per size after %d warm-up; time = median of the slowest rank (enqueue to stream idle)\n#\n",
           o.iters, o.warmup);
    printf("# %10s %12s %7s | %10s %8s %8s %7s\n", "size", "count", "type", "time", "algbw", "busbw", "#wrong");
    printf("# %10s %12s %7s | %10s %8s %8s %7s\n", "(B)", "(elements)", "", "(us)", "(GB/s)", "(GB/s)", "");
    pthread_t threads[DEV_MAX_RANKS];
    dev_rank ranks[DEV_MAX_RANKS];
    for (int r = 0; r < o.ranks; r++) {
        ranks[r] = (dev_rank){.g = &g, .rank = r};
        if (pthread_create(&threads[r], NULL, dev_rank_main, &ranks[r]) != 0) {
            fprintf(stderr, "facet bench comm: cannot start the thread of rank %d: %s\n", r, strerror(errno));
            return 1; /* the ranks already started still use g: leave it to the exit */
        }
    }
    for (int r = 0; r < o.ranks; r++) pthread_join(threads[r], NULL);
    printf("# wrong results: %s\n", g.status ? "SOME (see #wrong) or errors" : "0 OK");
    pthread_barrier_destroy(&g.step);
    comm_store_local_free(g.store);
    free(g.times);
    return g.status;
}
