/* comm_impl.h — what a communication backend plugs into (private to comm/).
 *
 * A backend fills a comm_ops table and wraps its own state in a `comm`.
 * comm.c owns everything backends share: argument checks, the abort flag,
 * and the rule that a communicator that failed once is never used again
 * (after a timeout or a dead peer the ranks no longer agree on where each
 * collective stands, so only a new group with a new epoch is safe).
 *
 * The NCCL backend lives in the CUDA module, which links no facet library,
 * so everything it needs from here is a static inline function. The Gloo
 * backend is C++, which cannot see C11 atomics, so it gets extern accessor
 * functions (comm_backend_*) instead of the struct. */
#ifndef FACET_COMM_IMPL_H
#define FACET_COMM_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" { /* comm.h and error.h have no guards of their own */
#endif

#include "comm/comm.h"
#include "common/error.h"

/* The backend's half of each collective. comm.c has already checked the
 * arguments and the abort/failed flags; a backend returns false only when
 * the group itself is in trouble (timeout, dead peer, library error). */
typedef struct comm_ops {
    const char *name; /* "gloo", "nccl", "ipc" */
    bool (*allreduce_sum)(comm *c, float *buf, size_t n, errbuf *err);
    bool (*allgather)(comm *c, const void *send, void *recv, size_t bytes, errbuf *err);
    bool (*broadcast)(comm *c, void *buf, size_t bytes, int root, errbuf *err);
    bool (*barrier)(comm *c, errbuf *err);
    /* Frees the backend's state (not the comm itself). Never fails. */
    void (*destroy)(comm *c);
    /* Makes a collective blocked in another thread fail now (comm_abort, any
     * thread, after the abort flag is set); NULL: the backend's own wait loop
     * watches the flag. */
    void (*interrupt)(comm *c);
    /* Device backends: enqueue an all-reduce on a CUDA stream without
     * waiting (comm_allreduce_sum_enqueue), and wait for that stream with
     * the backend's error checks (comm_stream_wait). NULL: a host backend. */
    bool (*allreduce_enqueue)(comm *c, float *buf, size_t n, void *stream, errbuf *err);
    bool (*stream_wait)(comm *c, void *stream, errbuf *err);
} comm_ops;

/* Checks what every backend needs from its options; on a problem writes one
 * line into why (snprintf only: the CUDA module links no facet library). */
static inline bool comm_options_valid(const comm_options *opt, const comm_store *store, char *why, size_t why_len) {
    if (!opt || !store || !store->set || !store->get) {
        snprintf(why, why_len, "missing %s", !opt ? "options" : "rendezvous store (or its set/get)");
        return false;
    }
    if (opt->size < 1 || opt->rank < 0 || opt->rank >= opt->size) {
        snprintf(why, why_len, "rank %d of %d is not a valid rank", opt->rank, opt->size);
        return false;
    }
    if (opt->timeout_ms <= 0) {
        snprintf(why, why_len, "timeout_ms must be positive (got %d): every collective needs a bound",
                 opt->timeout_ms);
        return false;
    }
    return true;
}

/* For the C++ backend (defined in comm.c). */
comm *comm_backend_wrap(const comm_ops *ops, int rank, int size, size_t max_floats, void *state);
void *comm_backend_state(const comm *c);
bool comm_backend_aborted(const comm *c);
/* Neither aborted nor failed: every rank is expected to be in step. */
bool comm_backend_healthy(const comm *c);

/* Gloo all-reduce algorithms, selectable for benchmarks that compare them.
 * AUTO (the default) picks per size from measurements (see gloo.cc). Every
 * rank must select the same algorithm before its first all-reduce. */
typedef enum comm_gloo_algorithm {
    COMM_GLOO_AUTO,
    COMM_GLOO_RING,             /* whole buffer passed around: T-1 full sends; bit-identical only for T <= 2 */
    COMM_GLOO_RING_CHUNKED,     /* reduce-scatter + all-gather around the ring */
    COMM_GLOO_HALVING_DOUBLING, /* recursive halving, then doubling */
    COMM_GLOO_BCUBE,
} comm_gloo_algorithm;

/* Parses "auto", "ring", "ring-chunked", "halving-doubling", "bcube". */
bool comm_gloo_algorithm_parse(const char *name, comm_gloo_algorithm *out);
const char *comm_gloo_algorithm_name(comm_gloo_algorithm a);
/* What AUTO runs for a group of `size` ranks. */
comm_gloo_algorithm comm_gloo_auto_algorithm(int size);
/* Fails on a comm that is not Gloo's. */
bool comm_gloo_set_algorithm(comm *c, comm_gloo_algorithm a, errbuf *err);

#ifdef __cplusplus
}
#else

#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "common/clock.h"

struct comm {
    const comm_ops *ops;
    int rank, size;
    size_t max_floats;  /* largest all-reduce the backend accepts; 0: no limit */
    atomic_bool aborted; /* comm_abort() was called (from any thread) */
    bool failed;         /* a collective failed: the group is unusable */
    char failure[ERRBUF_LEN]; /* the first failure, repeated by later calls */
    void *state;         /* the backend's */
};

/* Between two polls of a device backend's wait: spins briefly (a small
 * collective finishes in microseconds), then naps (50 µs, 1 ms after 0.1 s)
 * so that a long wait does not burn a core. */
static inline void comm_wait_backoff(double waited_s) {
    if (waited_s < 1e-3) {
        sched_yield();
        return;
    }
    struct timespec nap = {0, waited_s < 0.1 ? 50 * 1000 : 1000 * 1000};
    nanosleep(&nap, NULL);
}

/* Polls the store for key until it is there or the deadline (clock_now_s
 * time), napping 2 ms, growing to 20 ms, in between: what every rendezvous
 * of a rank with its peers does. 1: found (*data malloc'd, *len its size);
 * 0: not there by the deadline; -1: the store failed (err says why). */
static inline int comm_store_poll(const comm_store *store, const char *key, double deadline, void **data, size_t *len,
                                  errbuf *err) {
    for (double nap = 2e-3;; nap = nap * 2 < 20e-3 ? nap * 2 : 20e-3) {
        *data = NULL;
        *len = 0;
        int found = store->get(store->ctx, key, data, len, err);
        if (found != 0) return found < 0 ? -1 : 1;
        double left = deadline - clock_now_s();
        if (left <= 0) return 0;
        double s = nap < left ? nap : left;
        struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

/* A new comm around a backend's state; NULL when out of memory. */
static inline comm *comm_base_new(const comm_ops *ops, int rank, int size, size_t max_floats, void *state) {
    comm *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->ops = ops;
    c->rank = rank;
    c->size = size;
    c->max_floats = max_floats;
    atomic_init(&c->aborted, false);
    c->state = state;
    return c;
}

#endif

#endif
