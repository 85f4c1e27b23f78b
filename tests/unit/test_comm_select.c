/* comm/select.h: choosing a group's communicators without a GPU.
 *
 *   modes: every name parses to its mode ("gloo" to host), unknown ones fail.
 *   plans: each topology (one host or several, one GPU per rank or shared,
 *   NCCL present or not, a CPU rank) under each mode gives the expected
 *   communicators, or an error naming the ranks and what to use instead.
 *   records: a record survives format -> parse; malformed ones and one filed
 *   under another rank's key are refused.
 *   exchange: T = 1..4 ranks as threads over the in-process store all gather
 *   the same records, in rank order, and so choose the same plan; a group
 *   under another epoch's prefix is not seen (a stale rank cannot join); a
 *   rank that never publishes fails the others at the timeout, naming it. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "comm/select.h"
#include "common/clock.h"

#define MAX_RANKS 4

/* A GPU rank's record: host h ("A", "B"), gpu g ("0", "1", ...). */
static comm_rank_info gpu_rank(const char *h, const char *g, bool nccl, bool ipc) {
    comm_rank_info r = {.has_nccl = nccl, .has_ipc = ipc};
    snprintf(r.host, sizeof r.host, "host-%s", h);
    snprintf(r.gpu, sizeof r.gpu, "GPU-%s", g);
    return r;
}

static comm_rank_info cpu_rank(const char *h) {
    comm_rank_info r = {0};
    snprintf(r.host, sizeof r.host, "host-%s", h);
    return r;
}

static void test_modes(void) {
    const char *names[] = {"auto", "nccl", "ipc", "host"};
    for (int i = 0; i < 4; i++) {
        comm_mode m;
        CHECK(comm_mode_parse(names[i], &m) && strcmp(comm_mode_name(m), names[i]) == 0, "%s", names[i]);
    }
    comm_mode m = COMM_MODE_AUTO;
    CHECK(comm_mode_parse("gloo", &m) && m == COMM_MODE_HOST, "gloo is the host mode");
    CHECK(!comm_mode_parse("mpi", &m) && !comm_mode_parse("", &m) && !comm_mode_parse(NULL, &m), "unknown modes");
}

/* Expects a plan (host, ipc, nccl, ipc_max_bytes) for mode over ranks. */
static void expect_plan(const char *what, comm_mode mode, const comm_rank_info *ranks, int size, bool host, bool ipc,
                        bool nccl, size_t ipc_max) {
    comm_plan p;
    errbuf err = {{0}};
    bool ok = comm_plan_choose(mode, ranks, size, &p, &err);
    CHECK(ok, "%s: %s", what, err.msg);
    if (!ok) return;
    CHECK(p.host == host && p.ipc == ipc && p.nccl == nccl, "%s: got host %d ipc %d nccl %d (%s)", what, p.host, p.ipc,
          p.nccl, p.why);
    if (ipc && nccl) CHECK(p.ipc_max_bytes == ipc_max, "%s: split at %zu", what, p.ipc_max_bytes);
    if (ipc && !nccl) CHECK(p.ipc_max_bytes == (size_t)-1, "%s: ipc alone carries every size", what);
    CHECK(p.why[0] != '\0', "%s: the plan says why", what);
}

static void expect_refused(const char *what, comm_mode mode, const comm_rank_info *ranks, int size,
                           const char *needle) {
    comm_plan p;
    errbuf err = {{0}};
    bool ok = comm_plan_choose(mode, ranks, size, &p, &err);
    CHECK_ERR(ok, err, needle);
    (void)what;
}

static void test_plans(void) {
    comm_rank_info one_host_4gpu[4] = {gpu_rank("A", "0", true, true), gpu_rank("A", "1", true, true),
                                       gpu_rank("A", "2", true, true), gpu_rank("A", "3", true, true)};
    comm_rank_info one_gpu_2[2] = {gpu_rank("A", "0", true, true), gpu_rank("A", "0", true, true)};
    comm_rank_info two_hosts[2] = {gpu_rank("A", "0", true, true), gpu_rank("B", "0x", true, true)};
    comm_rank_info no_nccl[2] = {gpu_rank("A", "0", true, true), gpu_rank("A", "1", false, true)};
    comm_rank_info two_hosts_no_nccl[2] = {gpu_rank("A", "0", false, true), gpu_rank("B", "1", false, true)};
    comm_rank_info mixed[2] = {gpu_rank("A", "0", true, true), cpu_rank("A")};
    comm_rank_info cpus[2] = {cpu_rank("A"), cpu_rank("B")};

    /* auto */
    expect_plan("auto, 4 GPUs on one host", COMM_MODE_AUTO, one_host_4gpu, 4, false, true, true, COMM_AUTO_IPC_MAX_BYTES);
    expect_plan("auto, 2 ranks on one GPU", COMM_MODE_AUTO, one_gpu_2, 2, true, false, false, 0);
    expect_plan("auto, two hosts", COMM_MODE_AUTO, two_hosts, 2, false, false, true, 0);
    expect_plan("auto, no NCCL on a rank", COMM_MODE_AUTO, no_nccl, 2, false, true, false, 0);
    expect_plan("auto, two hosts, no NCCL", COMM_MODE_AUTO, two_hosts_no_nccl, 2, true, false, false, 0);
    expect_plan("auto, a CPU rank", COMM_MODE_AUTO, mixed, 2, true, false, false, 0);
    expect_plan("auto, CPUs", COMM_MODE_AUTO, cpus, 2, true, false, false, 0);
    expect_plan("auto, one rank", COMM_MODE_AUTO, one_host_4gpu, 1, false, false, false, 0);
    /* host */
    expect_plan("host, GPUs", COMM_MODE_HOST, one_host_4gpu, 4, true, false, false, 0);
    expect_plan("host, one rank", COMM_MODE_HOST, cpus, 1, false, false, false, 0);
    /* nccl */
    expect_plan("nccl, 4 GPUs", COMM_MODE_NCCL, one_host_4gpu, 4, false, false, true, 0);
    expect_plan("nccl, two hosts", COMM_MODE_NCCL, two_hosts, 2, false, false, true, 0);
    expect_plan("nccl, one rank (the collective path alone)", COMM_MODE_NCCL, one_gpu_2, 1, false, false, true, 0);
    expect_refused("nccl on one GPU", COMM_MODE_NCCL, one_gpu_2, 2, "ranks 0 and 1 share GPU GPU-0");
    expect_refused("nccl missing", COMM_MODE_NCCL, no_nccl, 2, "rank 1 cannot load NCCL");
    expect_refused("nccl on a CPU", COMM_MODE_NCCL, mixed, 2, "rank 1 runs on the CPU");
    expect_refused("nccl on one CPU rank", COMM_MODE_NCCL, cpus, 1, "rank 0 runs on the CPU");
    /* ipc */
    expect_plan("ipc, 2 ranks on one GPU", COMM_MODE_IPC, one_gpu_2, 2, false, true, false, 0);
    expect_plan("ipc, 4 GPUs", COMM_MODE_IPC, one_host_4gpu, 4, false, true, false, 0);
    expect_plan("ipc, one rank", COMM_MODE_IPC, one_host_4gpu, 1, false, true, false, 0);
    expect_refused("ipc across hosts", COMM_MODE_IPC, two_hosts, 2, "ranks 0 and 1 are on different hosts");
    expect_refused("ipc on a CPU", COMM_MODE_IPC, mixed, 2, "rank 1 runs on the CPU");
    comm_rank_info no_ipc[2] = {gpu_rank("A", "0", true, true), gpu_rank("A", "1", true, false)};
    expect_refused("ipc missing", COMM_MODE_IPC, no_ipc, 2, "rank 1's CUDA module has no IPC");
    comm_rank_info nine[9];
    for (int r = 0; r < 9; r++) {
        char g[8];
        snprintf(g, sizeof g, "%d", r);
        nine[r] = gpu_rank("A", g, true, true);
    }
    expect_refused("ipc beyond 8 ranks", COMM_MODE_IPC, nine, 9, "an IPC group holds at most 8");
    expect_plan("auto, 9 GPUs on one host: nccl", COMM_MODE_AUTO, nine, 9, false, false, true, 0);
    expect_plan("auto, 8 GPUs on one host", COMM_MODE_AUTO, nine, 8, false, true, true, COMM_AUTO_IPC_MAX_BYTES);
    comm_plan p;
    errbuf err = {{0}};
    CHECK_ERR(comm_plan_choose(COMM_MODE_AUTO, one_gpu_2, 0, &p, &err), err, "at least one rank");

    /* a CPU rank plans alone, and reaches what the whole group's records give every rank */
    comm_plan alone, whole;
    for (int m = COMM_MODE_AUTO; m <= COMM_MODE_HOST; m++) {
        bool ok_alone = comm_plan_for_cpu_rank((comm_mode)m, 1, 2, &alone, &err);
        bool ok_whole = comm_plan_choose((comm_mode)m, mixed, 2, &whole, &err);
        CHECK(ok_alone == ok_whole, "--comm %s: alone %d, from every record %d", comm_mode_name((comm_mode)m), ok_alone, ok_whole);
        if (ok_alone && ok_whole)
            CHECK(alone.host && whole.host && !alone.ipc && !alone.nccl, "--comm %s: the host", comm_mode_name((comm_mode)m));
    }
    CHECK_ERR(comm_plan_for_cpu_rank(COMM_MODE_NCCL, 1, 2, &alone, &err), err, "but rank 1 runs on the CPU; use --comm auto or host");
    CHECK_ERR(comm_plan_for_cpu_rank(COMM_MODE_IPC, 0, 1, &alone, &err), err, "rank 0 runs on the CPU");
    CHECK(comm_plan_for_cpu_rank(COMM_MODE_AUTO, 0, 1, &alone, &err) && !alone.host, "one CPU rank: nothing to reduce");
}

static void test_records(void) {
    comm_rank_info mine, back;
    comm_rank_info_local(&mine, "GPU-1234", true, false);
    CHECK(mine.host[0] && !strchr(mine.host, ' '), "a host id without spaces: \"%s\"", mine.host);
    comm_rank_info again;
    comm_rank_info_local(&again, NULL, false, false);
    CHECK(strcmp(mine.host, again.host) == 0 && again.gpu[0] == '\0', "the same process, the same host id");
    char rec[256];
    size_t n = comm_rank_info_format(&mine, 3, rec, sizeof rec);
    errbuf err = {{0}};
    CHECK(comm_rank_info_parse(rec, n, 3, &back, &err), "%s", err.msg);
    CHECK(memcmp(&mine, &back, sizeof mine) == 0, "round trip of \"%s\"", rec);
    n = comm_rank_info_format(&again, 0, rec, sizeof rec);
    CHECK(comm_rank_info_parse(rec, n, 0, &back, &err) && back.gpu[0] == '\0', "a CPU rank round-trips: %s", rec);

    CHECK_ERR(comm_rank_info_parse(rec, n, 1, &back, &err), err, "under rank 1's key says rank 0");
    const char *bad[] = {"", "facet-topo-2 rank=0 nccl=1 ipc=1 gpu=- host=x", "facet-topo-1 rank=0 nccl=2 ipc=1 gpu=- host=x",
                         "facet-topo-1 rank=0 nccl=1 ipc=1 gpu=-", "facet-topo-1 rank=x nccl=1 ipc=1 gpu=- host=h"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bool ok = comm_rank_info_parse(bad[i], strlen(bad[i]), 0, &back, &err);
        CHECK(!ok && strstr(err.msg, "rank 0"), "\"%s\" refused, naming the rank: %s", bad[i], err.msg);
    }
    char with_nul[] = "facet-topo-1 rank=0\0 nccl=1";
    CHECK_ERR(comm_rank_info_parse(with_nul, sizeof with_nul - 1, 0, &back, &err), err, "malformed");
}

/* ---- the exchange, ranks as threads ------------------------------------------------ */

typedef struct exchange_rank {
    comm_store *store;
    const char *prefix;
    int rank, size, timeout_ms;
    bool skip;               /* never publishes (a dead rank) */
    comm_rank_info all[MAX_RANKS];
    comm_plan plan;
    bool ok;
    errbuf err;
} exchange_rank;

static void *exchange_thread(void *arg) {
    exchange_rank *r = arg;
    if (r->skip) return NULL;
    char gpu[32];
    snprintf(gpu, sizeof gpu, "GPU-%d", r->rank % 2); /* ranks 0 and 2 share a GPU when size > 2 */
    comm_rank_info mine;
    comm_rank_info_local(&mine, gpu, true, true);
    comm_options opt = {.rank = r->rank, .size = r->size, .prefix = r->prefix, .timeout_ms = r->timeout_ms};
    r->ok = comm_topology_exchange(&opt, r->store, &mine, r->all, &r->err) &&
            comm_plan_choose(COMM_MODE_AUTO, r->all, r->size, &r->plan, &r->err);
    return NULL;
}

/* Runs size ranks (the one numbered skip, if any, never shows up); returns the ranks. */
static void run_exchange(comm_store *store, const char *prefix, int size, int skip, int timeout_ms,
                         exchange_rank *ranks) {
    pthread_t th[MAX_RANKS];
    for (int r = 0; r < size; r++) {
        ranks[r] = (exchange_rank){.store = store, .prefix = prefix, .rank = r, .size = size,
                                   .timeout_ms = timeout_ms, .skip = r == skip};
        pthread_create(&th[r], NULL, exchange_thread, &ranks[r]);
    }
    for (int r = 0; r < size; r++) pthread_join(th[r], NULL);
}

static void test_exchange(void) {
    comm_store *store = comm_store_local_create();
    for (int size = 1; size <= MAX_RANKS; size++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "epoch-%d/", size);
        exchange_rank ranks[MAX_RANKS];
        run_exchange(store, prefix, size, -1, 5000, ranks);
        for (int r = 0; r < size; r++) {
            CHECK(ranks[r].ok, "T=%d rank %d: %s", size, r, ranks[r].err.msg);
            CHECK(memcmp(ranks[r].all, ranks[0].all, sizeof(comm_rank_info) * (size_t)size) == 0,
                  "T=%d: rank %d gathered what rank 0 did", size, r);
            CHECK(memcmp(&ranks[r].plan, &ranks[0].plan, sizeof ranks[0].plan) == 0, "T=%d: rank %d's plan is rank 0's",
                  size, r);
            for (int q = 0; q < size; q++) {
                char gpu[32];
                snprintf(gpu, sizeof gpu, "GPU-%d", q % 2);
                CHECK(strcmp(ranks[r].all[q].gpu, gpu) == 0, "T=%d rank %d: record %d in rank order", size, r, q);
            }
        }
        /* one host; ranks 0 and 2 share a GPU from T = 3 on, so the host carries it */
        bool shared = size > 2;
        CHECK(size == 1 || (shared ? ranks[0].plan.host && !ranks[0].plan.ipc : ranks[0].plan.ipc && ranks[0].plan.nccl),
              "T=%d: %s", size, ranks[0].plan.why);
    }

    /* a stale rank of epoch 9 finds nobody of its epoch: epoch 10's records are not its */
    exchange_rank fresh[2];
    run_exchange(store, "epoch-10/", 2, -1, 5000, fresh);
    CHECK(fresh[0].ok && fresh[1].ok, "epoch 10 formed");
    exchange_rank stale[2];
    run_exchange(store, "epoch-9/", 2, 1, 300, stale); /* rank 1 of epoch 9 never comes */
    CHECK_ERR(stale[0].ok, stale[0].err, "waiting for rank 1's topology record");

    /* a missing rank fails the others at the timeout, not later */
    exchange_rank partial[3];
    double t0 = clock_now_s();
    run_exchange(store, "epoch-11/", 3, 2, 300, partial);
    double took = clock_now_s() - t0;
    CHECK_ERR(partial[0].ok, partial[0].err, "timed out after 300 ms waiting for rank 2");
    CHECK_ERR(partial[1].ok, partial[1].err, "rank 2");
    CHECK(took < 2.0, "the timeout bounds the wait: %.2f s", took);
    comm_store_local_free(store);
}

int main(void) {
    test_modes();
    test_plans();
    test_records();
    test_exchange();
    return CHECK_RESULT();
}
