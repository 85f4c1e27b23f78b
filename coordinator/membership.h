/* membership.h — workers, leases, and the group (docs/PROTOCOL.md).
 *
 * Membership owns the worker table and the group. A worker registers and
 * renews its lease with Register; the membership thread expires silent
 * workers and, whenever there is no group and enough live workers, forms one:
 * a new epoch, ranks assigned (a worker asking for a rank gets it; the rest
 * in order of registration), Load on every rank, then InitComm on every
 * rank. A lost member breaks the group: survivors get Abort, and the next
 * formation takes a standby or a newcomer.
 *
 * Membership knows nothing of requests. It *publishes* group events --
 * formed (epoch, KV blocks), lost (epoch, why) -- to one listener (the
 * scheduler), which reacts. The listener is called from the membership
 * thread only, never with membership's lock held and never from inside a
 * membership_* call, so a caller may hold its own lock while calling in. */
#ifndef FACET_COORDINATOR_MEMBERSHIP_H
#define FACET_COORDINATOR_MEMBERSHIP_H

#include <stdbool.h>
#include <stdint.h>

#include "coordinator/kv_store.h"
#include "protocol/protocol.h"
#include "rpc/rpc.h"

typedef struct membership_options {
    const char *model_dir;  /* what Load tells workers to load */
    int tp;
    int heartbeat_ms;       /* how often workers renew their lease */
    int lease_ms;           /* a worker silent this long is dead */
    int load_timeout_ms;    /* Load of a shard */
    int comm_timeout_ms;    /* rendezvous and each collective on the workers */
    const char *comm;       /* InitComm's backend: auto, nccl, ipc, host (NULL: auto) */
    int block_size;         /* KV positions per block */
    int kv_blocks;          /* 0: each worker sizes its cache; the group uses the smallest */
    int max_batch_tokens;   /* tokens per step, for the workers' buffers */
    const rpc_security *security; /* what channels to workers show and check (NULL: plaintext) */
    /* elastic tensor parallelism (docs/FAILOVER.md) */
    const int *smaller_tp;  /* group sizes below tp the model allows, largest first */
    int n_smaller_tp;
    int replace_timeout_ms; /* after losing a group: how long to wait for a replacement before forming a smaller one */
    int grow_delay_ms;      /* a smaller group grows back when the scheduler is idle, or after this long */
    uint64_t initial_epoch; /* the epoch to count on from (a restarted coordinator also adopts its workers') */
} membership_options;

typedef enum { GROUP_FORMED, GROUP_LOST } group_event_kind;

typedef struct group_event {
    group_event_kind kind;
    uint64_t epoch;
    int size;                /* FORMED: the group's TP size (below the configured one after a shrink) */
    int kv_blocks;           /* FORMED: KV blocks every rank has */
    char reason[ERRBUF_LEN]; /* LOST: why, in words a client may read (no worker ids or addresses: those go to the log) */
} group_event;

typedef void (*group_listener)(void *ctx, const group_event *ev);

typedef struct membership membership;

membership *membership_create(const membership_options *opt, kv_store *store, group_listener on_event, void *ctx);
void membership_start(membership *m); /* the thread: leases, aborts, formation */
void membership_stop(membership *m);  /* joins the thread */
void membership_free(membership *m);

/* facet.v1.Coordinator/Register (ctx: the membership). */
void membership_handle_register(void *ctx, rpc_call *call, const ProtobufCMessage *request);

/* The serving group of `epoch`, for one step: a channel per rank, kept
 * valid until membership_release. False when that group is not serving. */
typedef struct group_view {
    uint64_t epoch;
    int size;
    rpc_channel *channels[FACET_MAX_TP];
} group_view;
bool membership_acquire(membership *m, uint64_t epoch, group_view *g);
void membership_release(membership *m, group_view *g);

/* A step on g failed with these per-rank results: the workers that could not
 * be reached are lost (and suspect until heard from again); the others only
 * saw a collective fail (ABORTED). Breaks the group if it still serves, logs
 * the details (which worker, where) and writes into reason what a client may
 * read; a LOST event follows. */
void membership_report_step_failure(membership *m, const group_view *g, const rpc_fanout *calls, char *reason,
                                    size_t len);

/* The scheduler's hint: requests are running (a smaller group then waits
 * up to grow_delay_ms before it grows back, which replays them). */
void membership_set_busy(membership *m, bool busy);

/* Arms a fault on the worker holding `rank` in the current group
 * (facet.v1.Worker/InjectFault); armed gets the worker's reading of it. */
bool membership_inject_fault(membership *m, int rank, const char *spec, char *armed, size_t armed_len, errbuf *err);

/* Is a group serving? If not, why (into why, fit for clients: no worker ids or addresses). */
bool membership_ready(membership *m, char *why, size_t why_len);
void membership_counts(membership *m, int *live, int *in_group, int *failed);

#endif
