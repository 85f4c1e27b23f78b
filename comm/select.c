/* select.c — choosing a group's communicators (select.h): the host
 * identity, the topology records exchanged through the rendezvous store,
 * and the plan. */
#include "comm/select.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "comm/comm_impl.h"
#include "common/clock.h"

/* ---- modes ------------------------------------------------------------------ */

static const struct {
    comm_mode mode;
    const char *name;
} mode_names[] = {
    {COMM_MODE_AUTO, "auto"}, {COMM_MODE_NCCL, "nccl"}, {COMM_MODE_IPC, "ipc"}, {COMM_MODE_HOST, "host"},
    {COMM_MODE_HOST, "gloo"}, /* what coordinators before --comm send */
};

bool comm_mode_parse(const char *name, comm_mode *out) {
    for (size_t i = 0; name && i < sizeof mode_names / sizeof mode_names[0]; i++)
        if (strcmp(name, mode_names[i].name) == 0) {
            *out = mode_names[i].mode;
            return true;
        }
    return false;
}

const char *comm_mode_name(comm_mode m) {
    for (size_t i = 0; i < sizeof mode_names / sizeof mode_names[0]; i++)
        if (mode_names[i].mode == m) return mode_names[i].name;
    return "?";
}

/* ---- this process's record ---------------------------------------------------- */

/* The first line of a small file, without its newline; "" when unreadable. */
static void read_first_line(const char *path, char *out, size_t len) {
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) return;
    if (!fgets(out, (int)len, f)) out[0] = '\0';
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
}

/* Only characters that keep a record one line of space-separated fields. */
static void keep_printable(char *s) {
    for (; *s; s++)
        if (*s <= ' ' || *s > '~') *s = '_';
}

void comm_rank_info_local(comm_rank_info *out, const char *gpu_uuid, bool has_nccl, bool has_ipc) {
    memset(out, 0, sizeof *out);
    char boot[48], ns[48] = "";
    read_first_line("/proc/sys/kernel/random/boot_id", boot, sizeof boot);
    ssize_t n = readlink("/proc/self/ns/ipc", ns, sizeof ns - 1);
    ns[n > 0 ? n : 0] = '\0';
    snprintf(out->host, sizeof out->host, "%s/%s", boot[0] ? boot : "no-boot-id", ns[0] ? ns : "no-ipc-ns");
    keep_printable(out->host);
    snprintf(out->gpu, sizeof out->gpu, "%s", gpu_uuid ? gpu_uuid : "");
    keep_printable(out->gpu);
    out->has_nccl = has_nccl;
    out->has_ipc = has_ipc;
}

/* ---- the record on the wire ----------------------------------------------------- */

#define RECORD_MAGIC "facet-topo-1"

/* "facet-topo-1 rank=R nccl=0|1 ipc=0|1 gpu=UUID|- host=ID" */
size_t comm_rank_info_format(const comm_rank_info *r, int rank, char *out, size_t len) {
    int n = snprintf(out, len, RECORD_MAGIC " rank=%d nccl=%d ipc=%d gpu=%s host=%s", rank, r->has_nccl ? 1 : 0,
                     r->has_ipc ? 1 : 0, r->gpu[0] ? r->gpu : "-", r->host);
    return n < 0 ? 0 : (size_t)n;
}

/* Copies the value after "name=" up to the next space (or the end) into out; false when absent or too long. */
static bool record_field(const char *rec, const char *name, char *out, size_t len) {
    char key[16];
    snprintf(key, sizeof key, " %s=", name);
    const char *p = strstr(rec, key);
    if (!p) return false;
    p += strlen(key);
    size_t n = strcspn(p, " ");
    if (n == 0 || n >= len) return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

static bool record_flag(const char *rec, const char *name, bool *out) {
    char v[4];
    if (!record_field(rec, name, v, sizeof v) || (strcmp(v, "0") != 0 && strcmp(v, "1") != 0)) return false;
    *out = v[0] == '1';
    return true;
}

bool comm_rank_info_parse(const char *data, size_t len, int expect_rank, comm_rank_info *out, errbuf *err) {
    char rec[sizeof RECORD_MAGIC + 64 + COMM_HOST_ID_LEN + COMM_GPU_ID_LEN];
    if (len >= sizeof rec || memchr(data, '\0', len))
        return errbuf_set(err, "rank %d's topology record is malformed (%zu bytes)", expect_rank, len);
    memcpy(rec, data, len);
    rec[len] = '\0';
    memset(out, 0, sizeof *out);
    char rank[16];
    bool ok = strncmp(rec, RECORD_MAGIC " ", sizeof RECORD_MAGIC) == 0 && record_field(rec, "rank", rank, sizeof rank) &&
              record_flag(rec, "nccl", &out->has_nccl) && record_flag(rec, "ipc", &out->has_ipc) &&
              record_field(rec, "gpu", out->gpu, sizeof out->gpu) &&
              record_field(rec, "host", out->host, sizeof out->host);
    if (!ok) return errbuf_set(err, "rank %d's topology record is malformed (not \"" RECORD_MAGIC " ...\")", expect_rank);
    char *end;
    long r = strtol(rank, &end, 10);
    if (*end || r != expect_rank)
        return errbuf_set(err, "the topology record under rank %d's key says rank %s", expect_rank, rank);
    if (strcmp(out->gpu, "-") == 0) out->gpu[0] = '\0';
    return true;
}

/* ---- the exchange ------------------------------------------------------------------ */

static bool topo_key(const comm_options *opt, int rank, char *key, size_t len, errbuf *err) {
    int n = snprintf(key, len, "%stopo/%d", opt->prefix ? opt->prefix : "", rank);
    return (n > 0 && (size_t)n < len) || errbuf_set(err, "rendezvous prefix too long (%zu bytes)", strlen(opt->prefix));
}

/* Polls the store for rank r's record until the deadline. */
static bool topo_read(const comm_options *opt, const comm_store *store, int r, double deadline, comm_rank_info *out,
                      errbuf *err) {
    char key[512];
    void *data = NULL;
    size_t len = 0;
    if (!topo_key(opt, r, key, sizeof key, err)) return false;
    int found = comm_store_poll(store, key, deadline, &data, &len, err);
    if (found < 0) return false;
    if (!found)
        return errbuf_set(err, "timed out after %d ms waiting for rank %d's topology record (is it alive?)",
                          opt->timeout_ms, r);
    bool ok = comm_rank_info_parse(data, len, r, out, err);
    free(data);
    return ok;
}

bool comm_topology_publish(const comm_options *opt, const comm_store *store, const comm_rank_info *mine,
                           errbuf *err) {
    char why[200];
    if (!comm_options_valid(opt, store, why, sizeof why)) return errbuf_set(err, "topology exchange: %s", why);
    char key[512], rec[256];
    size_t n = comm_rank_info_format(mine, opt->rank, rec, sizeof rec);
    if (n == 0 || n >= sizeof rec) return errbuf_set(err, "topology record too long");
    return topo_key(opt, opt->rank, key, sizeof key, err) && store->set(store->ctx, key, rec, n, err);
}

bool comm_topology_exchange(const comm_options *opt, const comm_store *store, const comm_rank_info *mine,
                            comm_rank_info *all, errbuf *err) {
    double deadline = clock_now_s() + opt->timeout_ms / 1e3;
    if (!comm_topology_publish(opt, store, mine, err)) return false;
    for (int r = 0; r < opt->size; r++) {
        if (r == opt->rank) {
            all[r] = *mine;
            continue;
        }
        if (!topo_read(opt, store, r, deadline, &all[r], err)) return false;
    }
    return true;
}

/* ---- the plan ------------------------------------------------------------------------- */

/* Facts about the group that the rules below ask. */
typedef struct group_facts {
    int cpu_rank;         /* a rank without a GPU, or -1 */
    int no_nccl, no_ipc;  /* a rank lacking the backend, or -1 */
    int other_host[2];    /* two ranks on different hosts, or -1 */
    int shared_gpu[2];    /* two ranks on one GPU, or -1 */
} group_facts;

static group_facts group_facts_of(const comm_rank_info *ranks, int size) {
    group_facts f = {-1, -1, -1, {-1, -1}, {-1, -1}};
    for (int r = 0; r < size; r++) {
        if (!ranks[r].gpu[0] && f.cpu_rank < 0) f.cpu_rank = r;
        if (!ranks[r].has_nccl && f.no_nccl < 0) f.no_nccl = r;
        if (!ranks[r].has_ipc && f.no_ipc < 0) f.no_ipc = r;
        if (strcmp(ranks[r].host, ranks[0].host) != 0 && f.other_host[0] < 0) f.other_host[0] = 0, f.other_host[1] = r;
        for (int q = 0; q < r && f.shared_gpu[0] < 0; q++)
            if (ranks[r].gpu[0] && strcmp(ranks[r].gpu, ranks[q].gpu) == 0) f.shared_gpu[0] = q, f.shared_gpu[1] = r;
    }
    return f;
}

/* Explicit --comm nccl: one GPU per rank, NCCL everywhere. */
static bool plan_nccl(const group_facts *f, const comm_rank_info *ranks, comm_plan *p, errbuf *err) {
    if (f->no_nccl >= 0)
        return errbuf_set(err, "--comm nccl: rank %d cannot load NCCL (libfacet_nccl.so is absent or does not load); "
                               "use --comm auto, ipc or host", f->no_nccl);
    if (f->shared_gpu[0] >= 0)
        return errbuf_set(err, "--comm nccl: ranks %d and %d share GPU %s, and NCCL refuses two ranks on one GPU; "
                               "use --comm ipc (one host) or host", f->shared_gpu[0], f->shared_gpu[1],
                          ranks[f->shared_gpu[1]].gpu);
    p->nccl = true;
    snprintf(p->why, sizeof p->why, "nccl, as asked");
    return true;
}

/* Explicit --comm ipc: every rank on this host, at most COMM_IPC_MAX_RANKS. */
static bool plan_ipc(const group_facts *f, int size, comm_plan *p, errbuf *err) {
    if (size > COMM_IPC_MAX_RANKS)
        return errbuf_set(err, "--comm ipc: %d ranks, but an IPC group holds at most %d; use --comm nccl or host", size,
                          COMM_IPC_MAX_RANKS);
    if (f->other_host[0] >= 0)
        return errbuf_set(err, "--comm ipc: ranks %d and %d are on different hosts (or IPC namespaces), and CUDA IPC "
                               "works within one; use --comm nccl or host", f->other_host[0], f->other_host[1]);
    if (f->no_ipc >= 0)
        return errbuf_set(err, "--comm ipc: rank %d's CUDA module has no IPC communicator; use --comm host",
                          f->no_ipc);
    p->ipc = true;
    p->ipc_max_bytes = (size_t)-1;
    snprintf(p->why, sizeof p->why, "ipc, as asked");
    return true;
}

/* --comm auto on GPUs: IPC within a host, NCCL for large messages and across hosts, else the host. */
static void plan_auto(const group_facts *f, int size, comm_plan *p) {
    bool one_host = f->other_host[0] < 0, shared = f->shared_gpu[0] >= 0;
    bool ipc = one_host && f->no_ipc < 0 && !shared && size <= COMM_IPC_MAX_RANKS;
    bool nccl = f->no_nccl < 0 && !shared;
    if (shared) {
        p->host = true;
        snprintf(p->why, sizeof p->why, "auto: ranks %d and %d share a GPU (IPC would wait on context switches, NCCL "
                                        "refuses): host; --comm ipc forces IPC", f->shared_gpu[0], f->shared_gpu[1]);
    } else if (ipc && nccl) {
        p->ipc = p->nccl = true;
        p->ipc_max_bytes = COMM_AUTO_IPC_MAX_BYTES;
        snprintf(p->why, sizeof p->why, "auto: one host, one GPU per rank: ipc up to %zu KB, nccl above",
                 COMM_AUTO_IPC_MAX_BYTES >> 10);
    } else if (ipc) {
        p->ipc = true;
        p->ipc_max_bytes = (size_t)-1;
        snprintf(p->why, sizeof p->why, "auto: one host, no NCCL: ipc for every size");
    } else if (nccl) {
        p->nccl = true;
        snprintf(p->why, sizeof p->why, "auto: %s: nccl",
                 !one_host ? "ranks on several hosts" : size > COMM_IPC_MAX_RANKS ? "more ranks than IPC holds" : "no IPC");
    } else {
        p->host = true;
        snprintf(p->why, sizeof p->why, "auto: neither ipc (%s) nor nccl (not loaded) fits: host",
                 !one_host ? "several hosts" : size > COMM_IPC_MAX_RANKS ? "too many ranks" : "no IPC");
    }
}

bool comm_plan_for_cpu_rank(comm_mode mode, int rank, int size, comm_plan *plan, errbuf *err) {
    memset(plan, 0, sizeof *plan);
    if (mode == COMM_MODE_NCCL || mode == COMM_MODE_IPC)
        return errbuf_set(err, "--comm %s reduces GPU buffers, but rank %d runs on the CPU; use --comm auto or host",
                          comm_mode_name(mode), rank);
    plan->host = size > 1;
    snprintf(plan->why, sizeof plan->why, "%s", size > 1 ? "this rank runs on the CPU: host" : "one rank: nothing to reduce");
    return true;
}

bool comm_plan_choose(comm_mode mode, const comm_rank_info *ranks, int size, comm_plan *plan, errbuf *err) {
    memset(plan, 0, sizeof *plan);
    if (size < 1) return errbuf_set(err, "a group needs at least one rank (got %d)", size);
    group_facts f = group_facts_of(ranks, size);
    bool device_mode = mode == COMM_MODE_NCCL || mode == COMM_MODE_IPC;
    if (device_mode && f.cpu_rank >= 0)
        return errbuf_set(err, "--comm %s reduces GPU buffers, but rank %d runs on the CPU; use --comm auto or host",
                          comm_mode_name(mode), f.cpu_rank);
    if (mode == COMM_MODE_NCCL) return plan_nccl(&f, ranks, plan, err);
    if (mode == COMM_MODE_IPC) return plan_ipc(&f, size, plan, err);
    if (size == 1) {
        snprintf(plan->why, sizeof plan->why, "one rank: nothing to reduce");
        return true;
    }
    if (mode == COMM_MODE_HOST || f.cpu_rank >= 0) {
        plan->host = true;
        snprintf(plan->why, sizeof plan->why, "%s",
                 mode == COMM_MODE_HOST ? "host, as asked" : "auto: a rank runs on the CPU: host");
        return true;
    }
    plan_auto(&f, size, plan);
    return true;
}
