/* The Gloo backend of comm.h, with ranks as threads of this process (sharing
 * the in-process store) and as forked processes (sharing a store of files in
 * a temporary directory):
 *
 *   collectives, T = 1 to 4 (processes: 2 and 4): all-reduce of 1, 7, 1024
 *   and 1 M floats of integer values (exact sums) checked on every rank; the
 *   same bits on every rank for non-integer data; allgather (also in place);
 *   broadcast from the last rank; barrier; more than max_floats refused
 *   without harming the group.
 *
 *   failures, each bounded in time: a rank that never joins fails the others'
 *   comm_gloo_create; a peer killed with SIGKILL fails the survivors' next
 *   all-reduce; comm_abort from another thread fails the blocked operation and
 *   every later one. */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "common/alloc.h"
#include "comm/comm.h"
#include "comm/comm_impl.h" /* comm_gloo_set_algorithm */
#include "common/clock.h"

#define MAX_FLOATS ((size_t)1 << 20)
#define MAX_RANKS 8

/* ---- a store of files, for ranks in separate processes ------------------- */

typedef struct file_store {
    comm_store base;
    char dir[64];
} file_store;

/* Keys hold '/' (prefixes like "epoch-7/"): name files by the key in hex. */
static void file_store_path(const file_store *s, const char *key, char *path, size_t len) {
    size_t n = (size_t)snprintf(path, len, "%s/", s->dir);
    for (const unsigned char *k = (const unsigned char *)key; *k && n + 3 < len; k++)
        n += (size_t)snprintf(path + n, len - n, "%02x", *k);
}

static bool file_store_set(void *ctx, const char *key, const void *data, size_t len, errbuf *err) {
    char path[512], tmp[600];
    file_store_path(ctx, key, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return errbuf_set(err, "file store: %s: %s", tmp, strerror(errno));
    bool ok = fwrite(data, 1, len, f) == len;
    ok = fclose(f) == 0 && ok;
    /* rename: a reader sees the whole value or nothing */
    if (!ok || rename(tmp, path) != 0) return errbuf_set(err, "file store: writing %s: %s", path, strerror(errno));
    return true;
}

static int file_store_get(void *ctx, const char *key, void **data, size_t *len, errbuf *err) {
    char path[512];
    file_store_path(ctx, key, path, sizeof path);
    FILE *f = fopen(path, "rb");
    if (!f) return errno == ENOENT ? 0 : (errbuf_set(err, "file store: %s: %s", path, strerror(errno)), -1);
    struct stat st;
    void *buf = fstat(fileno(f), &st) == 0 ? malloc((size_t)st.st_size + 1) : NULL;
    bool ok = buf && fread(buf, 1, (size_t)st.st_size, f) == (size_t)st.st_size;
    fclose(f);
    if (!ok) {
        free(buf);
        return errbuf_set(err, "file store: reading %s failed", path), -1;
    }
    *data = buf;
    *len = (size_t)st.st_size;
    return 1;
}

static bool file_store_init(file_store *s) {
    snprintf(s->dir, sizeof s->dir, "/tmp/facet-comm-test-XXXXXX");
    if (!mkdtemp(s->dir)) return false;
    s->base = (comm_store){.ctx = s, .set = file_store_set, .get = file_store_get};
    return true;
}

static void file_store_remove(file_store *s) {
    DIR *d = opendir(s->dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.') continue;
        char path[600];
        snprintf(path, sizeof path, "%s/%s", s->dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(s->dir);
}

/* ---- one rank ------------------------------------------------------------- */

typedef struct rank_args {
    const comm_store *store;
    const char *prefix;
    int rank, size, timeout_ms;
    int ready_fd; /* kill test: the victim reports here, then waits to die */
    void *shared; /* abort test */
} rank_args;

static comm *rank_connect(const rank_args *a, errbuf *err) {
    comm_options opt = {.rank = a->rank, .size = a->size, .prefix = a->prefix, .timeout_ms = a->timeout_ms,
                        .max_floats = MAX_FLOATS};
    return comm_gloo_create(&opt, a->store, err);
}

/* Small integers: any order of summation gives the exact sum. */
static float value_exact(size_t i, int rank) { return (float)((int)((i * 7 + (size_t)rank * 13) % 61) - 30); }

/* Values whose float sums depend on the order of summation. */
static float value_inexact(size_t i, int rank) {
    uint32_t x = (uint32_t)i * 2654435761u ^ (uint32_t)(rank + 1) * 40503u;
    return (float)(x % 1000003u) / 997.0f - 500.0f;
}

static void check_allreduce_exact(comm *c, size_t n) {
    int rank = comm_rank(c), size = comm_size(c);
    float *buf = malloc(n * sizeof *buf);
    for (size_t i = 0; i < n; i++) buf[i] = value_exact(i, rank);
    errbuf err = {{0}};
    bool ok = comm_allreduce_sum(c, buf, n, &err);
    CHECK(ok, "rank %d of %d: all-reduce of %zu floats: %s", rank, size, n, err.msg);
    size_t wrong = 0, first = 0;
    for (size_t i = 0; ok && i < n; i++) {
        float want = 0;
        for (int r = 0; r < size; r++) want += value_exact(i, r);
        if (buf[i] != want && wrong++ == 0) first = i;
    }
    CHECK(wrong == 0, "rank %d of %d: all-reduce of %zu floats: %zu wrong, the first at %zu", rank, size, n, wrong,
           first);
    free(buf);
}

static uint64_t hash_bytes(const void *p, size_t n) {
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ ((const unsigned char *)p)[i]) * 1099511628211u;
    return h;
}

/* comm.h: "every rank gets the same bits". Compared through an allgather of
 * each rank's hash, so it works across processes too. */
static void check_allreduce_same_bits(comm *c) {
    enum { N = 10007 }; /* odd: exercises the padding */
    int rank = comm_rank(c), size = comm_size(c);
    float *buf = malloc(N * sizeof *buf);
    for (size_t i = 0; i < N; i++) buf[i] = value_inexact(i, rank);
    errbuf err = {{0}};
    bool ok = comm_allreduce_sum(c, buf, N, &err);
    CHECK(ok, "rank %d: inexact all-reduce: %s", rank, err.msg);
    /* float sums of T terms: within a few roundings of the magnitudes summed */
    double worst = 0;
    for (size_t i = 0; ok && i < N; i++) {
        double want = 0, magnitude = 0;
        for (int r = 0; r < size; r++) {
            want += value_inexact(i, r);
            magnitude += fabs(value_inexact(i, r));
        }
        double d = fabs(buf[i] - want) / magnitude;
        worst = d > worst ? d : worst;
    }
    CHECK(worst < 4e-7 * size, "rank %d of %d: inexact all-reduce off by %.3g of the magnitudes summed", rank, size,
           worst);
    uint64_t mine = hash_bytes(buf, N * sizeof *buf), all[MAX_RANKS] = {0};
    ok = comm_allgather(c, &mine, all, sizeof mine, &err);
    CHECK(ok, "rank %d: allgather of hashes: %s", rank, err.msg);
    for (int r = 1; ok && r < size; r++)
        CHECK(all[r] == all[0], "rank %d of %d: rank %d's all-reduce result has other bits than rank 0's", rank, size,
               r);
    free(buf);
}

static void check_allgather(comm *c) {
    enum { B = 13 };
    int rank = comm_rank(c), size = comm_size(c);
    unsigned char send[B], recv[B * MAX_RANKS];
    for (int j = 0; j < B; j++) send[j] = (unsigned char)(rank * 31 + j);
    for (int pass = 0; pass < 2; pass++) { /* pass 1: in place */
        memset(recv, 0xEE, sizeof recv);
        const void *src = send;
        if (pass == 1) src = memcpy(recv + rank * B, send, B);
        errbuf err = {{0}};
        bool ok = comm_allgather(c, src, recv, B, &err);
        CHECK(ok, "rank %d: allgather%s: %s", rank, pass ? " in place" : "", err.msg);
        int wrong = 0;
        for (int r = 0; ok && r < size; r++)
            for (int j = 0; j < B; j++) wrong += recv[r * B + j] != (unsigned char)(r * 31 + j);
        CHECK(wrong == 0, "rank %d of %d: allgather%s: %d wrong bytes", rank, size, pass ? " in place" : "", wrong);
    }
}

static void check_broadcast(comm *c) {
    enum { B = 1000 };
    int rank = comm_rank(c), size = comm_size(c), root = size - 1;
    unsigned char buf[B];
    for (int j = 0; j < B; j++) buf[j] = rank == root ? (unsigned char)(j * 7 + 1) : 0xEE;
    errbuf err = {{0}};
    bool ok = comm_broadcast(c, buf, B, root, &err);
    CHECK(ok, "rank %d: broadcast from %d: %s", rank, root, err.msg);
    int wrong = 0;
    for (int j = 0; ok && j < B; j++) wrong += buf[j] != (unsigned char)(j * 7 + 1);
    CHECK(wrong == 0, "rank %d of %d: broadcast from rank %d: %d wrong bytes", rank, size, root, wrong);
    ok = comm_broadcast(c, buf, B, size, &err);
    CHECK_ERR(ok, err, "root");
}

static void check_barrier_and_limit(comm *c) {
    int rank = comm_rank(c);
    errbuf err = {{0}};
    for (int i = 0; i < 3; i++) {
        bool ok = comm_barrier(c, &err);
        CHECK(ok, "rank %d: barrier %d: %s", rank, i, err.msg);
    }
    /* refused before anything is sent, so the group stays usable */
    float one = 1;
    bool ok = comm_allreduce_sum(c, &one, MAX_FLOATS + 1, &err);
    CHECK_ERR(ok, err, "max_floats");
    check_allreduce_exact(c, 5);
}

static void rank_run_collectives(const rank_args *a) {
    errbuf err = {{0}};
    comm *c = rank_connect(a, &err);
    CHECK(c != NULL, "rank %d of %d: comm_gloo_create: %s", a->rank, a->size, err.msg);
    if (!c) return;
    CHECK(comm_rank(c) == a->rank && comm_size(c) == a->size && strcmp(comm_backend_name(c), "gloo") == 0,
           "rank %d: rank/size/backend: %d/%d/%s", a->rank, comm_rank(c), comm_size(c), comm_backend_name(c));
    const size_t sizes[] = {1, 7, 1024, MAX_FLOATS};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) check_allreduce_exact(c, sizes[i]);
    check_allreduce_same_bits(c);
    check_allgather(c);
    check_broadcast(c);
    check_barrier_and_limit(c);
    comm_free(c);
}

/* ---- running a group: threads ------------------------------------------- */

typedef void (*rank_fn)(const rank_args *a);

typedef struct thread_job {
    rank_args args;
    rank_fn fn;
} thread_job;

static void *thread_main(void *p) {
    thread_job *job = p;
    job->fn(&job->args);
    return NULL;
}

/* Runs fn for ranks [0, started) of a group of `size` as threads. */
static void run_threads(int started, int size, const char *prefix, int timeout_ms, void *shared, rank_fn fn) {
    comm_store *store = comm_store_local_create();
    CHECK(store != NULL, "comm_store_local_create failed");
    if (!store) return;
    thread_job jobs[MAX_RANKS];
    pthread_t th[MAX_RANKS];
    for (int r = 0; r < started; r++) {
        jobs[r] = (thread_job){{store, prefix, r, size, timeout_ms, -1, shared}, fn};
        facet_thread_start(&th[r], thread_main, &jobs[r], "test rank");
    }
    for (int r = 0; r < started; r++) pthread_join(th[r], NULL);
    comm_store_local_free(store);
}

/* ---- running a group: processes ------------------------------------------ */

typedef struct child {
    pid_t pid;
    int counts_fd; /* the child writes its check counts here */
} child;

/* Forks a rank; the child sends back how many checks it made and failed. */
static child spawn_rank(const rank_args *a, rank_fn fn) {
    int fds[2];
    if (pipe(fds) != 0) return (child){-1, -1};
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        int checks0 = g_checks, failed0 = g_failed;
        fn(a);
        int counts[2] = {g_checks - checks0, g_failed - failed0};
        ssize_t w = write(fds[1], counts, sizeof counts);
        fflush(stdout);
        fflush(stderr);
        _exit(w == (ssize_t)sizeof counts && counts[1] == 0 ? 0 : 1);
    }
    close(fds[1]);
    return (child){pid, fds[0]};
}

/* Waits for a child; adds its checks to ours. Returns its wait status. */
static int reap_rank(child ch, int rank) {
    int counts[2] = {0, 0}, status = 0;
    ssize_t got = read(ch.counts_fd, counts, sizeof counts);
    close(ch.counts_fd);
    waitpid(ch.pid, &status, 0);
    if (got == (ssize_t)sizeof counts) {
        g_checks += counts[0];
        g_failed += counts[1];
    }
    return status;
}

static void run_processes(int size, const char *prefix, int timeout_ms, rank_fn fn) {
    file_store fs;
    CHECK(file_store_init(&fs), "mkdtemp: %s", strerror(errno));
    child ch[MAX_RANKS];
    for (int r = 0; r < size; r++) {
        rank_args a = {&fs.base, prefix, r, size, timeout_ms, -1, NULL};
        ch[r] = spawn_rank(&a, fn);
        CHECK(ch[r].pid > 0, "fork/pipe for rank %d: %s", r, strerror(errno));
    }
    for (int r = 0; r < size; r++) {
        if (ch[r].pid <= 0) continue;
        int status = reap_rank(ch[r], r);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "process of rank %d of %d ended with status %#x", r,
              size, status);
    }
    file_store_remove(&fs);
}

/* ---- tests: collectives --------------------------------------------------- */

static void test_collectives_threads(void) {
    for (int T = 1; T <= 4; T++) {
        int failed = g_failed;
        run_threads(T, T, "threads/", 20000, NULL, rank_run_collectives);
        printf("threads, T=%d: all-reduce of 1, 7, 1024, %zu floats exact on every rank; same bits on every rank; "
               "allgather (+ in place); broadcast from rank %d; barrier; > max_floats refused: %s\n",
               T, MAX_FLOATS, T - 1, g_failed == failed ? "ok" : "FAILED");
    }
}

static void test_collectives_processes(void) {
    for (int T = 2; T <= 4; T += 2) {
        int failed = g_failed;
        run_processes(T, "processes/", 20000, rank_run_collectives);
        printf("processes, T=%d (file store): the same checks: %s\n", T, g_failed == failed ? "ok" : "FAILED");
    }
}

/* ---- tests: a rank that never joins --------------------------------------- */

enum { MISSING_TIMEOUT_MS = 1000 };

static void rank_expect_missing(const rank_args *a) {
    errbuf err = {{0}};
    double t0 = clock_now_s();
    comm *c = rank_connect(a, &err);
    double dt = clock_now_s() - t0;
    CHECK(c == NULL, "rank %d: comm_gloo_create succeeded without rank 2", a->rank);
    comm_free(c);
    CHECK_ERR(c != NULL, err, "rank 2");
    CHECK_ERR(c != NULL, err, "timed out");
    CHECK(dt < MISSING_TIMEOUT_MS / 1e3 + 2, "rank %d: failing took %.2f s (timeout %d ms)", a->rank, dt,
           MISSING_TIMEOUT_MS);
    printf("missing rank: rank %d of 3 failed after %.2f s (timeout %.1f s): %s\n", a->rank, dt,
           MISSING_TIMEOUT_MS / 1e3, err.msg);
}

static void test_missing_rank(void) { run_threads(2, 3, "missing/", MISSING_TIMEOUT_MS, NULL, rank_expect_missing); }

/* ---- tests: a peer killed mid-way ----------------------------------------- */

enum { KILL_RANKS = 4, KILL_VICTIM = 1, KILL_TIMEOUT_MS = 2000 };

static void rank_survive_kill(const rank_args *a) {
    errbuf err = {{0}};
    comm *c = rank_connect(a, &err);
    CHECK(c != NULL, "rank %d: comm_gloo_create: %s", a->rank, err.msg);
    if (!c) return;
    check_allreduce_exact(c, 4096); /* the group works */
    if (a->rank == KILL_VICTIM) {
        char byte = 1;
        if (write(a->ready_fd, &byte, 1) == 1)
            for (;;) pause(); /* until SIGKILL */
        comm_free(c);
        return;
    }
    float buf[4096] = {0};
    double t0 = clock_now_s();
    bool ok = comm_allreduce_sum(c, buf, 4096, &err);
    double dt = clock_now_s() - t0;
    CHECK_ERR(ok, err, "gloo allreduce of 4096 floats");
    CHECK(dt < KILL_TIMEOUT_MS / 1e3 + 5, "rank %d: the all-reduce failed only after %.2f s", a->rank, dt);
    printf("killed peer: rank %d noticed in %.2f s (timeout %.1f s): %s\n", a->rank, dt, KILL_TIMEOUT_MS / 1e3,
           err.msg);
    t0 = clock_now_s();
    ok = comm_barrier(c, &err);
    dt = clock_now_s() - t0;
    CHECK_ERR(ok, err, "failed earlier");
    CHECK(dt < 0.1, "rank %d: the call after the failure took %.3f s", a->rank, dt);
    comm_free(c);
}

static void test_killed_peer(void) {
    file_store fs;
    int ready[2];
    CHECK(file_store_init(&fs) && pipe(ready) == 0, "mkdtemp/pipe: %s", strerror(errno));
    child ch[KILL_RANKS];
    for (int r = 0; r < KILL_RANKS; r++) {
        rank_args a = {&fs.base, "kill/", r, KILL_RANKS, KILL_TIMEOUT_MS, ready[1], NULL};
        ch[r] = spawn_rank(&a, rank_survive_kill);
    }
    close(ready[1]);
    char byte = 0;
    bool victim_ready = read(ready[0], &byte, 1) == 1;
    close(ready[0]);
    CHECK(victim_ready, "the victim (rank %d) never finished its first all-reduce", KILL_VICTIM);
    usleep(200 * 1000); /* let the survivors block in the next all-reduce */
    kill(ch[KILL_VICTIM].pid, SIGKILL);
    for (int r = 0; r < KILL_RANKS; r++) {
        int status = reap_rank(ch[r], r);
        if (r == KILL_VICTIM)
            CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "victim status %#x", status);
        else
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "survivor rank %d status %#x", r, status);
    }
    file_store_remove(&fs);
    printf("killed peer: rank %d of %d killed with SIGKILL mid-way; every survivor's next all-reduce failed within "
           "the timeout and the call after it failed at once\n",
           KILL_VICTIM, KILL_RANKS);
}

/* ---- tests: comm_abort from another thread -------------------------------- */

enum { ABORT_TIMEOUT_MS = 10000 }; /* long: the abort, not the timeout, must end the wait */

typedef struct abort_shared {
    pthread_barrier_t op_done; /* rank 1 keeps its comm until rank 0's op has failed */
} abort_shared;

static void *aborter_main(void *p) {
    usleep(200 * 1000);
    comm_abort(p);
    return NULL;
}

static void rank_abort_blocked(const rank_args *a) {
    abort_shared *sh = a->shared;
    errbuf err = {{0}};
    comm *c = rank_connect(a, &err);
    CHECK(c != NULL, "rank %d: comm_gloo_create: %s", a->rank, err.msg);
    if (a->rank == 0 && c) {
        /* rank 1 never joins this all-reduce: it blocks until the abort, which
         * shuts the pairs' sockets down: it fails at once, not at the timeout */
        pthread_t aborter;
        facet_thread_start(&aborter, aborter_main, c, "test rank");
        float buf[1024] = {0};
        double t0 = clock_now_s();
        bool ok = comm_allreduce_sum(c, buf, 1024, &err);
        double dt = clock_now_s() - t0;
        pthread_join(aborter, NULL);
        CHECK_ERR(ok, err, "abort");
        CHECK(dt < 1.0, "the aborted all-reduce took %.2f s (timeout %.1f s): the abort did not interrupt it", dt,
              ABORT_TIMEOUT_MS / 1e3);
        printf("abort: the blocked all-reduce failed after %.2f s (timeout %.1f s): %s\n", dt, ABORT_TIMEOUT_MS / 1e3,
               err.msg);
        t0 = clock_now_s();
        ok = comm_broadcast(c, buf, sizeof buf, 0, &err);
        dt = clock_now_s() - t0;
        CHECK_ERR(ok, err, "aborted");
        CHECK(dt < 0.1, "the call after the abort took %.3f s", dt);
        printf("abort: the next call failed in %.1f ms: %s\n", dt * 1e3, err.msg);
    }
    pthread_barrier_wait(&sh->op_done);
    comm_free(c);
}

static void test_abort(void) {
    abort_shared sh;
    pthread_barrier_init(&sh.op_done, NULL, 2);
    run_threads(2, 2, "abort/", ABORT_TIMEOUT_MS, &sh, rank_abort_blocked);
    pthread_barrier_destroy(&sh.op_done);
}

/* ---- tests: a peer that closed its end ------------------------------------- */

/* Gloo writes without MSG_NOSIGNAL: writing to a closed peer must give an
 * error, not kill the process with SIGPIPE. */
static void rank_write_to_closed(const rank_args *a) {
    abort_shared *sh = a->shared;
    errbuf err = {{0}};
    comm *c = rank_connect(a, &err);
    CHECK(c != NULL, "rank %d: comm_gloo_create: %s", a->rank, err.msg);
    pthread_barrier_wait(&sh->op_done); /* both connected: an abort now cannot cut the other's rendezvous */
    if (a->rank == 0) {
        comm_abort(c); /* an aborted comm closes at once, without a last barrier */
        comm_free(c);
        pthread_barrier_wait(&sh->op_done);
        return;
    }
    pthread_barrier_wait(&sh->op_done);
    usleep(50 * 1000);
    size_t n = MAX_FLOATS; /* large: the writes go on after the peer's reset */
    float *buf = calloc(n, sizeof *buf);
    bool ok = comm_allreduce_sum(c, buf, n, &err);
    CHECK_ERR(ok, err, "gloo allreduce");
    printf("closed peer: writing to it failed cleanly (no SIGPIPE): %s\n", err.msg);
    free(buf);
    comm_free(c);
}

static void test_closed_peer(void) {
    abort_shared sh;
    pthread_barrier_init(&sh.op_done, NULL, 2);
    run_threads(2, 2, "closed/", 5000, &sh, rank_write_to_closed);
    pthread_barrier_destroy(&sh.op_done);
}

/* ---- tests: no stalls as sizes grow ------------------------------------------ */

/* A socket send buffer sized by an earlier, smaller message once made each
 * all-reduce of a few KB wait for TCP's delayed ACK: 40-90 ms instead of
 * well under 1 ms (gloo.cc primes every pair against it). 20 ms leaves a
 * wide margin for a loaded machine. */
enum { STALL_ITERS = 15 };

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void rank_time_growing_sizes(const rank_args *a) {
    const comm_gloo_algorithm *algorithm = a->shared;
    errbuf err = {{0}};
    comm *c = rank_connect(a, &err);
    CHECK(c != NULL, "rank %d: comm_gloo_create: %s", a->rank, err.msg);
    if (!c || !comm_gloo_set_algorithm(c, *algorithm, &err)) {
        comm_free(c);
        return;
    }
    float *buf = calloc(8192, sizeof *buf);
    char line[256];
    int n = snprintf(line, sizeof line, "growing sizes, %s: median", comm_gloo_algorithm_name(*algorithm));
    for (size_t count = 1024; count <= 8192; count *= 2) {
        double t[STALL_ITERS];
        for (int i = 0; i < STALL_ITERS; i++) {
            bool ok = comm_barrier(c, &err);
            double t0 = clock_now_s();
            ok = ok && comm_allreduce_sum(c, buf, count, &err);
            t[i] = clock_now_s() - t0;
            CHECK(ok, "rank %d: all-reduce of %zu floats: %s", a->rank, count, err.msg);
        }
        qsort(t, STALL_ITERS, sizeof t[0], compare_double);
        double median = t[STALL_ITERS / 2];
        CHECK(median < 0.02, "%s: all-reduce of %zu floats took %.1f ms (median): a TCP stall?",
               comm_gloo_algorithm_name(*algorithm), count, median * 1e3);
        n += snprintf(line + n, sizeof line - (size_t)n, " %zu floats %.0f us;", count, median * 1e6);
    }
    if (a->rank == 0) printf("%s\n", line);
    free(buf);
    comm_free(c);
}

static void test_growing_sizes(void) {
    const comm_gloo_algorithm algorithms[] = {COMM_GLOO_AUTO, COMM_GLOO_RING_CHUNKED, COMM_GLOO_HALVING_DOUBLING};
    for (int i = 0; i < 3; i++) {
        comm_gloo_algorithm algorithm = algorithms[i];
        run_threads(2, 2, "growing/", 5000, &algorithm, rank_time_growing_sizes);
    }
}

/* ---- tests: the local store and bad options -------------------------------- */

static void test_store_and_options(void) {
    comm_store *s = comm_store_local_create();
    errbuf err = {{0}};
    void *data = NULL;
    size_t len = 0;
    CHECK(s->get(s->ctx, "k", &data, &len, &err) == 0, "missing key found");
    CHECK(s->set(s->ctx, "k", "abc", 3, &err) && s->set(s->ctx, "k", "xy", 2, &err), "%s", err.msg);
    CHECK(s->get(s->ctx, "k", &data, &len, &err) == 1 && len == 2 && memcmp(data, "xy", 2) == 0,
          "overwritten value not read back");
    free(data);
    comm_options opt = {.rank = 2, .size = 2, .timeout_ms = 100, .max_floats = 16};
    comm *c = comm_gloo_create(&opt, s, &err);
    CHECK_ERR(c != NULL, err, "rank 2 of 2");
    opt = (comm_options){.rank = 0, .size = 1, .timeout_ms = 0, .max_floats = 16};
    c = comm_gloo_create(&opt, s, &err);
    CHECK_ERR(c != NULL, err, "timeout_ms");
    opt.timeout_ms = 1000;
    opt.max_floats = 0;
    c = comm_gloo_create(&opt, s, &err);
    CHECK_ERR(c != NULL, err, "max_floats");
    comm_store_local_free(s);
    printf("local store: missing key, set, overwrite, get; bad rank, timeout and max_floats refused: ok\n");
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_store_and_options();
    /* processes first: fork while this process has no other threads */
    test_collectives_processes();
    test_killed_peer();
    test_collectives_threads();
    test_missing_rank();
    test_abort();
    test_closed_peer();
    test_growing_sizes();
    return CHECK_RESULT();
}
