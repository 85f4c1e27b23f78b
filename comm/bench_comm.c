/* bench_comm.c — `facet bench comm`: all-reduce (sum, float32) over Gloo on
 * 127.0.0.1 with T ranks as threads of this process, sizes doubling from
 * --min-bytes to --max-bytes, printed with nccl-tests' columns:
 *
 *   size count type | time algbw busbw #wrong
 *
 * time: median over the timed iterations of the slowest rank's time, in µs
 * (the ranks are lined up by a barrier before each iteration, so the time is
 * the all-reduce's, not the ranks' skew). algbw = bytes / time; busbw =
 * algbw · 2(T-1)/T, the traffic a bandwidth-optimal all-reduce puts on each
 * link. Every result of every iteration is checked against the exact sum
 * (the data are small integers); any wrong element makes the exit status 1. */
#include "comm/bench_comm.h"
#include "common/alloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/comm_impl.h"
#include "common/clock.h"

enum { BENCH_MAX_RANKS = 16, BENCH_TIMEOUT_MS = 10000 };

typedef struct bench_options {
    int ranks, iters, warmup;
    size_t min_bytes, max_bytes;
    comm_gloo_algorithm algorithm;
} bench_options;

/* What the rank threads share. Between sizes they meet at a pthread barrier
 * (outside anything timed), which also orders their writes to these arrays
 * before rank 0 reads them. */
typedef struct bench_group {
    bench_options opt;
    comm_store *store;
    pthread_barrier_t step;
    bool step_ready;
    double *times;     /* (ranks, iters) seconds, the current size */
    size_t *wrong;     /* (ranks) wrong elements, the current size */
    bool *rank_failed; /* (ranks) */
    errbuf *errs;      /* (ranks) */
    bool stop;         /* written by rank 0 between the two barriers */
    int status;        /* the exit status, written by rank 0 */
    double busbw_sum;  /* for the average line */
    int rows;
} bench_group;

typedef struct bench_rank {
    bench_group *g;
    int rank;
} bench_rank;

/* ---- options ------------------------------------------------------------- */

static void bench_usage(FILE *f) {
    fprintf(f,
            "usage: facet bench comm [--ranks T] [--min-bytes B] [--max-bytes B] [--iters N] [--warmup N]\n"
            "                        [--algorithm auto|ring|ring-chunked|halving-doubling|bcube]\n"
            "All-reduce (sum, float32) over Gloo on 127.0.0.1, T ranks as threads, sizes doubling\n"
            "from --min-bytes to --max-bytes; prints nccl-tests' columns; exits 1 on any wrong result.\n"
            "  --ranks T          ranks (threads), 1..%d (default 2)\n"
            "  --min-bytes B      smallest message, a multiple of 4 (default 4096)\n"
            "  --max-bytes B      largest message, at most 1 GiB (default 4194304)\n"
            "  --iters N          timed iterations per size; the median is shown (default 20)\n"
            "  --warmup N         untimed iterations per size first (default 5)\n"
            "  --algorithm A      Gloo all-reduce algorithm (default auto: the fastest measured)\n",
            BENCH_MAX_RANKS);
}

bool bench_comm_parse_size(const char *name, const char *text, size_t lo, size_t hi, size_t *out) {
    char *end = NULL;
    errno = 0;
    unsigned long long v = text && *text != '-' ? strtoull(text, &end, 10) : 0;
    if (!text || end == text || *end != '\0' || errno != 0 || v < lo || v > hi) {
        fprintf(stderr, "facet bench comm: --%s wants a whole number in %zu..%zu, got \"%s\"\n", name, lo, hi,
                text ? text : "");
        return false;
    }
    *out = (size_t)v;
    return true;
}

static bool bench_parse_int(const char *name, const char *text, int lo, int hi, int *out) {
    size_t v = 0;
    if (!bench_comm_parse_size(name, text, (size_t)lo, (size_t)hi, &v)) return false;
    *out = (int)v;
    return true;
}

/* One option: "--name value" or "--name=value". *i is advanced past it. */
static bool bench_parse_option(int argc, char **argv, int *i, bench_options *o) {
    const char *arg = argv[*i];
    char name[32];
    const char *eq = strchr(arg, '=');
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    if (strncmp(arg, "--", 2) != 0 || len - 2 >= sizeof name) {
        fprintf(stderr, "facet bench comm: unexpected argument \"%s\" (see --help)\n", arg);
        return false;
    }
    memcpy(name, arg + 2, len - 2);
    name[len - 2] = '\0';
    const char *value = eq ? eq + 1 : (*i + 1 < argc ? argv[++*i] : NULL);
    if (strcmp(name, "ranks") == 0) return bench_parse_int(name, value, 1, BENCH_MAX_RANKS, &o->ranks);
    if (strcmp(name, "iters") == 0) return bench_parse_int(name, value, 1, 100000, &o->iters);
    if (strcmp(name, "warmup") == 0) return bench_parse_int(name, value, 0, 100000, &o->warmup);
    if (strcmp(name, "min-bytes") == 0) return bench_comm_parse_size(name, value, 4, (size_t)1 << 30, &o->min_bytes);
    if (strcmp(name, "max-bytes") == 0) return bench_comm_parse_size(name, value, 4, (size_t)1 << 30, &o->max_bytes);
    if (strcmp(name, "algorithm") == 0) {
        if (comm_gloo_algorithm_parse(value, &o->algorithm)) return true;
        fprintf(stderr, "facet bench comm: unknown --algorithm \"%s\" (see --help)\n", value ? value : "");
        return false;
    }
    fprintf(stderr, "facet bench comm: unknown option --%s (see --help)\n", name);
    return false;
}

/* Returns -1 to run, else the exit status (0 after --help, 2 on error). */
static int bench_parse(int argc, char **argv, bench_options *o) {
    *o = (bench_options){.ranks = 2, .iters = 20, .warmup = 5, .min_bytes = 4096, .max_bytes = 4194304,
                         .algorithm = COMM_GLOO_AUTO};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            bench_usage(stdout);
            return 0;
        }
        if (!bench_parse_option(argc, argv, &i, o)) return 2;
    }
    if (o->min_bytes % 4 || o->max_bytes % 4 || o->min_bytes > o->max_bytes) {
        fprintf(stderr, "facet bench comm: sizes must be multiples of 4 bytes with --min-bytes <= --max-bytes "
                        "(got %zu and %zu)\n",
                o->min_bytes, o->max_bytes);
        return 2;
    }
    return -1;
}

/* ---- data ---------------------------------------------------------------- */

/* Small integers, different per element, rank and iteration: any order of
 * summation gives the exact sum, so a result is right or wrong, bit for bit. */
static float bench_value(size_t i, int rank, int iter) {
    return (float)((int)((i + 3 * (size_t)rank + 5 * (size_t)iter) % 17) - 8);
}

static void bench_fill(float *buf, size_t n, int rank, int iter) {
    for (size_t i = 0; i < n; i++) buf[i] = bench_value(i, rank, iter);
}

static size_t bench_count_wrong(const float *buf, size_t n, int ranks, int iter) {
    size_t wrong = 0;
    for (size_t i = 0; i < n; i++) {
        float want = 0;
        for (int r = 0; r < ranks; r++) want += bench_value(i, r, iter);
        wrong += buf[i] != want;
    }
    return wrong;
}

/* ---- one rank -------------------------------------------------------------- */

static comm *bench_connect(const bench_group *g, int rank, errbuf *err) {
    comm_options opt = {.rank = rank, .size = g->opt.ranks, .prefix = "bench-comm/", .hostname = "127.0.0.1",
                        .timeout_ms = BENCH_TIMEOUT_MS, .max_floats = g->opt.max_bytes / sizeof(float)};
    comm *c = comm_gloo_create(&opt, g->store, err);
    if (c && !comm_gloo_set_algorithm(c, g->opt.algorithm, err)) {
        comm_free(c);
        return NULL;
    }
    return c;
}

/* Warm-up and timed iterations of one size; every result is checked. */
static bool bench_run_size(bench_group *g, comm *c, int rank, float *buf, size_t count, errbuf *err) {
    const bench_options *o = &g->opt;
    g->wrong[rank] = 0;
    for (int it = 0; it < o->warmup + o->iters; it++) {
        bench_fill(buf, count, rank, it);
        if (!comm_barrier(c, err)) return false;
        double t0 = clock_now_s();
        if (!comm_allreduce_sum(c, buf, count, err)) return false;
        double dt = clock_now_s() - t0;
        g->wrong[rank] += bench_count_wrong(buf, count, o->ranks, it);
        if (it >= o->warmup) g->times[(size_t)rank * (size_t)o->iters + (size_t)(it - o->warmup)] = dt;
    }
    return true;
}

/* ---- the table ------------------------------------------------------------ */

static int bench_compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_comm_median_slowest(const double *times, int ranks, int iters) {
    double *slowest = malloc((size_t)iters * sizeof *slowest);
    if (!slowest) return 0;
    for (int it = 0; it < iters; it++) {
        slowest[it] = 0;
        for (int r = 0; r < ranks; r++) {
            double t = times[(size_t)r * (size_t)iters + (size_t)it];
            slowest[it] = t > slowest[it] ? t : slowest[it];
        }
    }
    qsort(slowest, (size_t)iters, sizeof *slowest, bench_compare_double);
    double median = iters % 2 ? slowest[iters / 2] : 0.5 * (slowest[iters / 2 - 1] + slowest[iters / 2]);
    free(slowest);
    return median;
}

static void bench_print_header(const bench_options *o) {
    printf("# facet bench comm: all-reduce (sum) of float32 over Gloo TCP on 127.0.0.1, %d rank%s as threads\n",
           o->ranks, o->ranks == 1 ? "" : "s");
    char algorithm[64];
    if (o->algorithm == COMM_GLOO_AUTO)
        snprintf(algorithm, sizeof algorithm, "auto (%s)",
                 comm_gloo_algorithm_name(comm_gloo_auto_algorithm(o->ranks)));
    else
        snprintf(algorithm, sizeof algorithm, "%s", comm_gloo_algorithm_name(o->algorithm));
    printf("# algorithm: %s; %d timed iterations per size after %d warm-up; time = median of the slowest rank\n",
           algorithm, o->iters, o->warmup);
    printf("#\n");
    printf("# %10s %12s %7s | %10s %8s %8s %7s\n", "size", "count", "type", "time", "algbw", "busbw", "#wrong");
    printf("# %10s %12s %7s | %10s %8s %8s %7s\n", "(B)", "(elements)", "", "(us)", "(GB/s)", "(GB/s)", "");
}

/* Rank 0, between the barriers: one row, or the errors that stop the run. */
static void bench_report_size(bench_group *g, size_t bytes) {
    const bench_options *o = &g->opt;
    for (int r = 0; r < o->ranks; r++) {
        if (!g->rank_failed[r]) continue;
        printf("# rank %d: %s\n", r, g->errs[r].msg);
        g->stop = true;
        g->status = 1;
    }
    if (g->stop) return;
    size_t wrong = 0;
    for (int r = 0; r < o->ranks; r++) wrong += g->wrong[r];
    double t = bench_comm_median_slowest(g->times, o->ranks, o->iters);
    double algbw = t > 0 ? (double)bytes / t / 1e9 : 0;
    double busbw = algbw * 2.0 * (o->ranks - 1) / o->ranks;
    printf("  %10zu %12zu %7s | %10.1f %8.3f %8.3f %7zu\n", bytes, bytes / sizeof(float), "float", t * 1e6, algbw,
           busbw, wrong);
    if (wrong) g->status = 1;
    g->busbw_sum += busbw;
    g->rows++;
}

static void *bench_rank_main(void *p) {
    bench_rank *self = p;
    bench_group *g = self->g;
    const bench_options *o = &g->opt;
    errbuf *err = &g->errs[self->rank];
    comm *c = bench_connect(g, self->rank, err);
    float *buf = xmalloc(o->max_bytes);
    bool ok = c != NULL;
    if (ok && !buf) ok = errbuf_set(err, "out of memory for a %zu-byte buffer", o->max_bytes);
    for (size_t bytes = o->min_bytes; bytes <= o->max_bytes; bytes *= 2) {
        if (ok) ok = bench_run_size(g, c, self->rank, buf, bytes / sizeof(float), err);
        g->rank_failed[self->rank] = !ok;
        pthread_barrier_wait(&g->step);
        if (self->rank == 0) bench_report_size(g, bytes);
        pthread_barrier_wait(&g->step);
        if (g->stop) break;
    }
    free(buf);
    comm_free(c);
    return NULL;
}

/* ---- main ------------------------------------------------------------------ */

static bool bench_group_init(bench_group *g, const bench_options *o) {
    *g = (bench_group){.opt = *o};
    size_t T = (size_t)o->ranks;
    g->store = comm_store_local_create();
    g->times = xcalloc(T * (size_t)o->iters, sizeof *g->times);
    g->wrong = xcalloc(T, sizeof *g->wrong);
    g->rank_failed = xcalloc(T, sizeof *g->rank_failed);
    g->errs = xcalloc(T, sizeof *g->errs);
    g->step_ready = pthread_barrier_init(&g->step, NULL, (unsigned)o->ranks) == 0;
    return g->store && g->times && g->wrong && g->rank_failed && g->errs && g->step_ready;
}

static void bench_group_free(bench_group *g) {
    if (g->step_ready) pthread_barrier_destroy(&g->step);
    comm_store_local_free(g->store);
    free(g->times);
    free(g->wrong);
    free(g->rank_failed);
    free(g->errs);
}

int bench_comm_main(int argc, char **argv) {
    bench_options o;
    int rc = bench_parse(argc, argv, &o);
    if (rc >= 0) return rc;
    bench_group g;
    if (!bench_group_init(&g, &o)) {
        fprintf(stderr, "facet bench comm: out of memory\n");
        bench_group_free(&g);
        return 1;
    }
    bench_print_header(&o);
    pthread_t threads[BENCH_MAX_RANKS];
    bench_rank ranks[BENCH_MAX_RANKS];
    for (int r = 0; r < o.ranks; r++) {
        ranks[r] = (bench_rank){&g, r};
        if (pthread_create(&threads[r], NULL, bench_rank_main, &ranks[r]) != 0) {
            /* the ranks already started still use g: leave it to the exit */
            fprintf(stderr, "facet bench comm: cannot start the thread of rank %d: %s\n", r, strerror(errno));
            return 1;
        }
    }
    for (int r = 0; r < o.ranks; r++) pthread_join(threads[r], NULL);
    if (g.rows) printf("# avg busbw: %.3f GB/s\n", g.busbw_sum / g.rows);
    printf("# wrong results: %s\n", g.status ? "SOME (see #wrong) or errors" : "0 OK");
    bench_group_free(&g);
    return g.status;
}
