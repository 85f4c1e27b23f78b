/* comm.c — the public comm_* calls: checks shared by every backend, then
 * dispatch through the backend's comm_ops.
 *
 * Order of checks in every collective: the abort flag first (a rank being
 * torn down must not start new work), then "failed earlier" (the group is
 * out of step after any failure), then the arguments. Argument errors do not
 * poison the communicator: nothing was sent. Any backend failure does. */
#include "comm/comm_impl.h"

#include <stdint.h>
#include <string.h>

/* ---- helpers for backends -------------------------------------------------- */

comm *comm_backend_wrap(const comm_ops *ops, int rank, int size, size_t max_floats, void *state) {
    return comm_base_new(ops, rank, size, max_floats, state);
}

void *comm_backend_state(const comm *c) { return c->state; }

bool comm_backend_aborted(const comm *c) { return atomic_load(&c->aborted); }

bool comm_backend_healthy(const comm *c) { return !c->failed && !atomic_load(&c->aborted); }

/* ---- queries ---------------------------------------------------------------- */

int comm_rank(const comm *c) { return c->rank; }
int comm_size(const comm *c) { return c->size; }
const char *comm_backend_name(const comm *c) { return c->ops->name; }

/* ---- the checks around every collective ----------------------------------- */

/* Fails fast when the communicator must not be used. */
static bool comm_check_usable(comm *c, const char *op, errbuf *err) {
    if (!c) return errbuf_set(err, "%s: no communicator (NULL)", op);
    if (atomic_load(&c->aborted))
        return errbuf_set(err, "%s (%s, rank %d of %d): communicator was aborted; form a new group", op,
                          c->ops->name, c->rank, c->size);
    if (c->failed)
        return errbuf_set(err, "%s (%s, rank %d of %d): communicator failed earlier and cannot be reused: %s", op,
                          c->ops->name, c->rank, c->size, c->failure);
    return true;
}

/* Records a backend failure (the first one is kept for later callers) and
 * hands the message to the caller, saying so when an abort caused it. */
static bool comm_finish_op(comm *c, bool ok, const errbuf *local, errbuf *err) {
    if (ok) return true;
    errbuf msg = *local;
    if (atomic_load(&c->aborted)) errbuf_prefix(&msg, "communicator aborted while the operation was in flight");
    if (!c->failed) {
        c->failed = true;
        memcpy(c->failure, msg.msg, sizeof c->failure);
        c->failure[sizeof c->failure - 1] = '\0';
    }
    if (err) *err = msg;
    return false;
}

/* ---- collectives ------------------------------------------------------------ */

bool comm_allreduce_sum(comm *c, float *buf, size_t n, errbuf *err) {
    if (!comm_check_usable(c, "comm_allreduce_sum", err)) return false;
    if (n > 0 && !buf) return errbuf_set(err, "comm_allreduce_sum: buffer is NULL for %zu floats", n);
    if (c->max_floats && n > c->max_floats)
        return errbuf_set(err, "comm_allreduce_sum: %zu floats exceed this communicator's max_floats (%zu); "
                               "create it with a larger max_floats",
                          n, c->max_floats);
    if (n == 0) return true; /* every rank skips it alike */
    errbuf local = {{0}};
    return comm_finish_op(c, c->ops->allreduce_sum(c, buf, n, &local), &local, err);
}

bool comm_allgather(comm *c, const void *send, void *recv, size_t bytes, errbuf *err) {
    if (!comm_check_usable(c, "comm_allgather", err)) return false;
    if (bytes > 0 && (!send || !recv))
        return errbuf_set(err, "comm_allgather: %s buffer is NULL for %zu bytes", !send ? "send" : "receive", bytes);
    if (bytes > SIZE_MAX / (size_t)c->size)
        return errbuf_set(err, "comm_allgather: %zu bytes times %d ranks overflows", bytes, c->size);
    if (bytes == 0) return true;
    errbuf local = {{0}};
    return comm_finish_op(c, c->ops->allgather(c, send, recv, bytes, &local), &local, err);
}

bool comm_broadcast(comm *c, void *buf, size_t bytes, int root, errbuf *err) {
    if (!comm_check_usable(c, "comm_broadcast", err)) return false;
    if (root < 0 || root >= c->size)
        return errbuf_set(err, "comm_broadcast: root %d is not a rank of this group of %d", root, c->size);
    if (bytes > 0 && !buf) return errbuf_set(err, "comm_broadcast: buffer is NULL for %zu bytes", bytes);
    if (bytes == 0) return true;
    errbuf local = {{0}};
    return comm_finish_op(c, c->ops->broadcast(c, buf, bytes, root, &local), &local, err);
}

bool comm_barrier(comm *c, errbuf *err) {
    if (!comm_check_usable(c, "comm_barrier", err)) return false;
    errbuf local = {{0}};
    return comm_finish_op(c, c->ops->barrier(c, &local), &local, err);
}

bool comm_allreduce_sum_enqueue(comm *c, float *buf, size_t n, void *stream, errbuf *err) {
    if (!comm_check_usable(c, "comm_allreduce_sum_enqueue", err)) return false;
    if (!c->ops->allreduce_enqueue)
        return errbuf_set(err, "comm_allreduce_sum_enqueue: the %s backend reduces host buffers, not device ones",
                          c->ops->name);
    if (n > 0 && !buf) return errbuf_set(err, "comm_allreduce_sum_enqueue: buffer is NULL for %zu floats", n);
    if (c->max_floats && n > c->max_floats)
        return errbuf_set(err, "comm_allreduce_sum_enqueue: %zu floats exceed this communicator's max_floats (%zu)", n,
                          c->max_floats);
    if (n == 0) return true;
    errbuf local = {{0}};
    return comm_finish_op(c, c->ops->allreduce_enqueue(c, buf, n, stream, &local), &local, err);
}

bool comm_stream_wait(comm *c, void *stream, errbuf *err) {
    if (!comm_check_usable(c, "comm_stream_wait", err)) return false;
    if (!c->ops->stream_wait)
        return errbuf_set(err, "comm_stream_wait: the %s backend has no device stream", c->ops->name);
    errbuf local = {{0}};
    return comm_finish_op(c, c->ops->stream_wait(c, stream, &local), &local, err);
}

bool comm_on_device(const comm *c) { return c && c->ops->allreduce_enqueue; }

/* ---- lifetime --------------------------------------------------------------- */

/* The flag stops new collectives; the backend's interrupt ends one already
 * blocked (Gloo: its sockets are shut down; NCCL's wait loop polls the flag
 * and aborts the NCCL communicator). */
void comm_abort(comm *c) {
    if (!c) return;
    atomic_store(&c->aborted, true);
    if (c->ops->interrupt) c->ops->interrupt(c);
}

void comm_free(comm *c) {
    if (!c) return;
    c->ops->destroy(c);
    free(c);
}
