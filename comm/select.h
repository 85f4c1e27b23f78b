/* select.h — which communicators a tensor-parallel group reduces over
 * (--comm auto|nccl|ipc|host).
 *
 * Each rank describes itself (comm_rank_info: which machine, which GPU,
 * which device backends it can load), publishes that under the group's
 * rendezvous prefix, and reads every other rank's. comm_plan_choose is a
 * pure function of the mode and those T records, so every rank reaches the
 * same plan without another round trip, and a rank of an older group never
 * sees this group's records (the prefix is the epoch's).
 *
 *   host  Gloo over TCP on host buffers: a CUDA engine copies each partial
 *         activation down and back up. Works everywhere; the CPU engine's.
 *   ipc   CUDA IPC (comm/comm_ipc.h): ranks on one host read each other's
 *         device buffers; one kernel per all-reduce, no library latency,
 *         several ranks may share one GPU.
 *   nccl  NCCL (comm/comm_nccl.h): any topology, one GPU per rank.
 *   auto  one GPU per rank: ipc for messages up to COMM_AUTO_IPC_MAX_BYTES
 *         when every rank is on this host (every message without NCCL),
 *         nccl above it or across hosts; host when a rank has no GPU, when
 *         ranks share a GPU (processes time-slice it unless MPS runs, so an
 *         IPC exchange would wait for context switches: --comm ipc still
 *         forces it), or when neither device backend fits. */
#ifndef FACET_COMM_SELECT_H
#define FACET_COMM_SELECT_H

#include <stdbool.h>
#include <stddef.h>

#include "comm/comm.h"

typedef enum comm_mode { COMM_MODE_AUTO, COMM_MODE_NCCL, COMM_MODE_IPC, COMM_MODE_HOST } comm_mode;

/* "auto", "nccl", "ipc", "host"; also "gloo", the wire name older
 * coordinators send, for host. */
bool comm_mode_parse(const char *name, comm_mode *out);
const char *comm_mode_name(comm_mode m);

/* Where auto splits IPC from NCCL when both can serve: a 7b decode step at
 * batch 64 all-reduces 64 x 3072 floats (768 KB), so every decode message
 * stays on IPC and long prefill chunks go to NCCL's ring. A default to be
 * tuned from `facet bench comm` on a machine with several GPUs. */
#define COMM_AUTO_IPC_MAX_BYTES ((size_t)1 << 20)

/* The most ranks one IPC group holds (comm/ipc_kernels.h's IPC_MAX_RANKS). */
#define COMM_IPC_MAX_RANKS 8

#define COMM_HOST_ID_LEN 96
#define COMM_GPU_ID_LEN 64

typedef struct comm_rank_info {
    /* The machine and IPC namespace: the kernel's boot id and the inode of
     * /proc/self/ns/ipc. Equal only for processes that CUDA IPC can join
     * (containers in one pod, or with hostIPC). */
    char host[COMM_HOST_ID_LEN];
    char gpu[COMM_GPU_ID_LEN]; /* the GPU's UUID; "" for a CPU engine */
    bool has_nccl;             /* libfacet_nccl.so loads */
    bool has_ipc;              /* the CUDA module offers the IPC communicator */
} comm_rank_info;

/* This process's record: its host identity plus what the caller knows. */
void comm_rank_info_local(comm_rank_info *out, const char *gpu_uuid, bool has_nccl, bool has_ipc);

/* Publishes `mine` under opt->prefix + "topo/<rank>" (one store call). */
bool comm_topology_publish(const comm_options *opt, const comm_store *store, const comm_rank_info *mine,
                           errbuf *err);
/* Publishes `mine` under opt->prefix + "topo/<rank>" and reads every rank's
 * into all (opt->size records, rank order), polling until opt->timeout_ms.
 * A record that does not parse, or a missing rank at the deadline, is an
 * error naming the rank. */
bool comm_topology_exchange(const comm_options *opt, const comm_store *store, const comm_rank_info *mine,
                            comm_rank_info *all, errbuf *err);

typedef struct comm_plan {
    bool host;            /* the all-reduce goes through the host communicator (Gloo) */
    bool ipc, nccl;       /* device communicators to create (both: split by size) */
    size_t ipc_max_bytes; /* with both: messages up to this size go over IPC, larger ones over NCCL */
    char why[200];        /* what was chosen and why, one line for the log */
} comm_plan;

/* The plan for a group of `size` ranks described by ranks[]; an explicit
 * mode that cannot work (nccl with two ranks on one GPU, ipc across hosts,
 * a device mode with a rank on the CPU) is an error saying why and what to
 * use instead. At size 1 auto and host need no communicator (all false);
 * nccl and ipc make one of size 1, which runs the collective path alone. */
bool comm_plan_choose(comm_mode mode, const comm_rank_info *ranks, int size, comm_plan *plan, errbuf *err);

/* The plan of a rank that runs on the CPU, without the others' records: any
 * group with a CPU rank reduces on the host (what comm_plan_choose gives
 * every rank of it), and a device mode is refused. Such a rank only
 * publishes its record, for its GPU peers to read, and waits for nobody:
 * forming a CPU group costs one store call more than Gloo's rendezvous. */
bool comm_plan_for_cpu_rank(comm_mode mode, int rank, int size, comm_plan *plan, errbuf *err);

/* Serialized record (text, for the store); parse returns false on anything malformed. */
size_t comm_rank_info_format(const comm_rank_info *r, int rank, char *out, size_t len);
bool comm_rank_info_parse(const char *data, size_t len, int expect_rank, comm_rank_info *out, errbuf *err);

#endif
