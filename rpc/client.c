/* client.c — blocking unary calls and fan-out (see rpc.h). */
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/rpc.h"
#include "common/alloc.h"
#include "rpc/rpc_impl.h"

#define MAX_MESSAGE_BYTES (64 << 20)

struct rpc_channel {
    grpc_channel *channel;
    char *target;
    rpc_security *sec; /* what calls carry (the token) */
};

static pthread_once_t g_init_once = PTHREAD_ONCE_INIT;
static void init_once(void) { grpc_init(); }

void rpc_init(void) { pthread_once(&g_init_once, init_once); }
void rpc_shutdown(void) { /* gRPC's own threads end with the process; see docs/PROTOCOL.md */ }

const char *rpc_code_name(int code) {
    static const char *names[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
                                  "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
                                  "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
                                  "UNAUTHENTICATED"};
    return code >= 0 && code <= 16 ? names[code] : "?";
}

gpr_timespec rpc_deadline_ms(int timeout_ms) {
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
}

static grpc_channel_credentials *channel_credentials(const rpc_security *sec) {
    if (!rpc_security_tls(sec)) return grpc_insecure_credentials_create();
    grpc_ssl_pem_key_cert_pair pair = {sec->key_pem, sec->cert_pem};
    return grpc_ssl_credentials_create(sec->ca_pem, &pair, NULL, NULL);
}

rpc_channel *rpc_channel_create(const char *target, const rpc_security *sec) {
    rpc_init();
    rpc_channel *ch = xcalloc(1, sizeof *ch);
    ch->sec = rpc_security_copy(sec);
    /* A peer that comes back (a restarted coordinator, a worker after a stall)
     * is reached within a fraction of a second: gRPC's default reconnect
     * backoff grows to 120 s. */
    grpc_arg args[6] = {
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, .value.integer = MAX_MESSAGE_BYTES},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, .value.integer = MAX_MESSAGE_BYTES},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, .value.integer = 100},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, .value.integer = 100},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, .value.integer = 500},
    };
    size_t n_args = 5;
    if (rpc_security_tls(ch->sec) && ch->sec->peer_name) /* the certificate names the role, not the host */
        args[n_args++] = (grpc_arg){.type = GRPC_ARG_STRING, .key = GRPC_SSL_TARGET_NAME_OVERRIDE_ARG,
                                    .value.string = (char *)ch->sec->peer_name};
    grpc_channel_args chargs = {n_args, args};
    grpc_channel_credentials *creds = channel_credentials(ch->sec);
    ch->channel = grpc_channel_create(target, creds, &chargs);
    grpc_channel_credentials_release(creds);
    ch->target = xstrdup(target);
    return ch;
}

void rpc_channel_free(rpc_channel *ch) {
    if (!ch) return;
    grpc_channel_destroy(ch->channel);
    free(ch->target);
    rpc_security_free(ch->sec);
    free(ch);
}

const char *rpc_channel_target(const rpc_channel *ch) { return ch->target; }

/* One call in flight: its buffers and results. */
typedef struct pending_call {
    grpc_call *call;
    grpc_metadata token;
    grpc_byte_buffer *request, *response;
    grpc_metadata_array initial_md, trailing_md;
    grpc_status_code status;
    grpc_slice details;
    grpc_op ops[6];
} pending_call;

grpc_byte_buffer *rpc_pack_message(const ProtobufCMessage *msg) {
    size_t n = protobuf_c_message_get_packed_size(msg);
    grpc_slice slice = grpc_slice_malloc(n);
    protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(slice));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    return bb;
}

uint8_t *rpc_byte_buffer_copy(grpc_byte_buffer *bb, size_t *len) {
    grpc_byte_buffer_reader reader;
    grpc_byte_buffer_reader_init(&reader, bb);
    grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    *len = GRPC_SLICE_LENGTH(all);
    uint8_t *out = xmalloc(*len ? *len : 1);
    memcpy(out, GRPC_SLICE_START_PTR(all), *len);
    grpc_slice_unref(all);
    return out;
}

static bool start_call(pending_call *p, rpc_channel *ch, grpc_completion_queue *cq, const char *method,
                       const ProtobufCMessage *req, int timeout_ms, void *tag) {
    memset(p, 0, sizeof *p);
    grpc_slice m = grpc_slice_from_static_string(method);
    p->call = grpc_channel_create_call(ch->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq, m, NULL,
                                       rpc_deadline_ms(timeout_ms), NULL);
    p->request = rpc_pack_message(req);
    grpc_metadata_array_init(&p->initial_md);
    grpc_metadata_array_init(&p->trailing_md);
    p->ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (ch->sec && ch->sec->token) {
        p->token.key = grpc_slice_from_static_string(RPC_TOKEN_METADATA);
        p->token.value = grpc_slice_from_static_string(ch->sec->token); /* the channel outlives its calls */
        p->ops[0].data.send_initial_metadata.count = 1;
        p->ops[0].data.send_initial_metadata.metadata = &p->token;
    }
    p->ops[1].op = GRPC_OP_SEND_MESSAGE;
    p->ops[1].data.send_message.send_message = p->request;
    p->ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    p->ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    p->ops[3].data.recv_initial_metadata.recv_initial_metadata = &p->initial_md;
    p->ops[4].op = GRPC_OP_RECV_MESSAGE;
    p->ops[4].data.recv_message.recv_message = &p->response;
    p->ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    p->ops[5].data.recv_status_on_client.trailing_metadata = &p->trailing_md;
    p->ops[5].data.recv_status_on_client.status = &p->status;
    p->ops[5].data.recv_status_on_client.status_details = &p->details;
    return grpc_call_start_batch(p->call, p->ops, 6, tag, NULL) == GRPC_CALL_OK;
}

/* Collects a finished call's result; frees its gRPC state. */
static int finish_call(pending_call *p, bool started, const char *method, const char *target, uint8_t **resp,
                       size_t *resp_len, errbuf *err) {
    int code = started ? (int)p->status : RPC_INTERNAL;
    if (code == RPC_OK && p->response) {
        *resp = rpc_byte_buffer_copy(p->response, resp_len);
    } else if (code == RPC_OK) {
        code = RPC_INTERNAL;
        errbuf_set(err, "%s to %s: no response message", method, target);
    } else {
        char *details = started ? grpc_slice_to_c_string(p->details) : NULL;
        errbuf_set(err, "%s to %s: %s: %s", method, target, rpc_code_name(code),
                   details && *details ? details : "the call failed");
        gpr_free(details);
    }
    if (p->response) grpc_byte_buffer_destroy(p->response);
    grpc_byte_buffer_destroy(p->request);
    grpc_metadata_array_destroy(&p->initial_md);
    grpc_metadata_array_destroy(&p->trailing_md);
    grpc_slice_unref(p->details);
    grpc_call_unref(p->call);
    return code;
}

int rpc_unary(rpc_channel *ch, const char *method, const ProtobufCMessage *req, uint8_t **resp, size_t *resp_len,
              int timeout_ms, errbuf *err) {
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    pending_call p;
    static char tag;
    bool started = start_call(&p, ch, cq, method, req, timeout_ms, &tag);
    if (started) grpc_completion_queue_pluck(cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    int code = finish_call(&p, started, method, ch->target, resp, resp_len, err);
    grpc_completion_queue_shutdown(cq);
    grpc_completion_queue_destroy(cq);
    return code;
}

struct rpc_cancel {
    pthread_mutex_t mu;
    bool fired;
    grpc_call **calls; /* in flight under it */
    int n, cap;
};

rpc_cancel *rpc_cancel_create(void) {
    rpc_cancel *c = xcalloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

void rpc_cancel_free(rpc_cancel *c) {
    if (!c) return;
    pthread_mutex_destroy(&c->mu);
    free(c->calls);
    free(c);
}

void rpc_cancel_fire(rpc_cancel *c) {
    pthread_mutex_lock(&c->mu);
    c->fired = true;
    for (int i = 0; i < c->n; i++) grpc_call_cancel(c->calls[i], NULL);
    pthread_mutex_unlock(&c->mu);
}

void rpc_cancel_reset(rpc_cancel *c) {
    pthread_mutex_lock(&c->mu);
    c->fired = false;
    pthread_mutex_unlock(&c->mu);
}

/* Puts calls (NULL entries skipped) under cancel, cancelling them at once if it has fired. */
static void cancel_watch_calls(rpc_cancel *c, grpc_call *const *calls, int n) {
    pthread_mutex_lock(&c->mu);
    if (c->cap < c->n + n) {
        c->cap = c->n + n;
        c->calls = xrealloc(c->calls, (size_t)c->cap * sizeof *c->calls);
    }
    for (int i = 0; i < n; i++) {
        if (!calls[i]) continue;
        c->calls[c->n++] = calls[i];
        if (c->fired) grpc_call_cancel(calls[i], NULL);
    }
    pthread_mutex_unlock(&c->mu);
}

/* Takes them off again, before they are released. */
static void cancel_unwatch_calls(rpc_cancel *c, grpc_call *const *calls, int n) {
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < n; i++) {
        if (!calls[i]) continue;
        for (int k = 0; k < c->n; k++)
            if (c->calls[k] == calls[i]) {
                c->calls[k] = c->calls[--c->n];
                break;
            }
    }
    pthread_mutex_unlock(&c->mu);
}

void rpc_unary_fanout_cancellable(rpc_fanout *calls, int n, const char *method, int timeout_ms, rpc_cancel *cancel) {
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    pending_call *p = xcalloc((size_t)n, sizeof *p);
    bool *started = xcalloc((size_t)n, sizeof *started);
    int waiting = 0;
    for (int i = 0; i < n; i++) {
        started[i] = start_call(&p[i], calls[i].channel, cq, method, calls[i].request, timeout_ms, &p[i]);
        waiting += started[i];
    }
    grpc_call **watched = xcalloc((size_t)n + 1, sizeof *watched);
    for (int i = 0; i < n; i++) watched[i] = started[i] ? p[i].call : NULL;
    if (cancel) cancel_watch_calls(cancel, watched, n);
    while (waiting > 0) {
        grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type != GRPC_OP_COMPLETE) break;
        waiting--;
    }
    if (cancel) cancel_unwatch_calls(cancel, watched, n);
    free(watched);
    for (int i = 0; i < n; i++) {
        calls[i].response = NULL;
        calls[i].response_len = 0;
        calls[i].code = finish_call(&p[i], started[i], method, rpc_channel_target(calls[i].channel),
                                    &calls[i].response, &calls[i].response_len, &calls[i].err);
    }
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
    free(p);
    free(started);
}

void rpc_unary_fanout(rpc_fanout *calls, int n, const char *method, int timeout_ms) {
    rpc_unary_fanout_cancellable(calls, n, method, timeout_ms, NULL);
}

/* ---- persistent bidirectional streams ------------------------------------------------- */

typedef struct rpc_stream rpc_stream;

/* A completion's tag: which stream, and which of its two batches. */
typedef struct stream_tag {
    rpc_stream *stream;
    bool status; /* RECV_STATUS_ON_CLIENT (else the exchange: send one message, receive one) */
} stream_tag;

struct rpc_stream {
    rpc_channel *channel;
    grpc_call *call;       /* NULL: closed (opens at the next exchange) */
    bool fresh;            /* opened for this exchange: its batch also sends and receives the metadata */
    bool exchanging;       /* the exchange batch has not completed */
    bool status_pending;   /* the status batch has not completed */
    bool exchange_ok;      /* the exchange completed with a message */
    bool timed_out;        /* cancelled at the deadline */
    grpc_metadata token;
    grpc_metadata_array initial_md, trailing_md;
    grpc_status_code status;
    grpc_slice details;
    grpc_byte_buffer *request, *response;
    stream_tag tag_exchange, tag_status;
};

struct rpc_stream_set {
    grpc_completion_queue *cq;
    const char *method;
    int n;
    rpc_stream *streams;
};

rpc_stream_set *rpc_stream_set_create(rpc_channel *const *channels, int n, const char *method) {
    rpc_stream_set *s = xcalloc(1, sizeof *s);
    s->cq = grpc_completion_queue_create_for_next(NULL);
    s->method = method;
    s->n = n;
    s->streams = xcalloc((size_t)n, sizeof *s->streams);
    for (int i = 0; i < n; i++) {
        rpc_stream *st = &s->streams[i];
        st->channel = channels[i];
        st->tag_exchange = (stream_tag){st, false};
        st->tag_status = (stream_tag){st, true};
    }
    return s;
}

/* A new call on the stream's channel, and its status batch (completes when the stream ends). */
static bool stream_open(rpc_stream_set *s, rpc_stream *st) {
    grpc_slice m = grpc_slice_from_static_string(s->method);
    st->call = grpc_channel_create_call(st->channel->channel, NULL, GRPC_PROPAGATE_DEFAULTS, s->cq, m, NULL,
                                        gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (!st->call) return false;
    grpc_metadata_array_init(&st->initial_md);
    grpc_metadata_array_init(&st->trailing_md);
    st->details = grpc_empty_slice();
    st->status = GRPC_STATUS_UNKNOWN;
    grpc_op op = {.op = GRPC_OP_RECV_STATUS_ON_CLIENT};
    op.data.recv_status_on_client.trailing_metadata = &st->trailing_md;
    op.data.recv_status_on_client.status = &st->status;
    op.data.recv_status_on_client.status_details = &st->details;
    st->status_pending = grpc_call_start_batch(st->call, &op, 1, &st->tag_status, NULL) == GRPC_CALL_OK;
    st->fresh = true;
    return st->status_pending;
}

/* Frees a stream whose batches have all completed; it opens again at the next exchange. */
static void stream_close(rpc_stream *st) {
    if (!st->call) return;
    grpc_call_unref(st->call);
    st->call = NULL;
    grpc_metadata_array_destroy(&st->initial_md);
    grpc_metadata_array_destroy(&st->trailing_md);
    grpc_slice_unref(st->details);
}

/* Sends the request and asks for one reply (and, on a new stream, the metadata both ways). */
static bool stream_start_exchange(rpc_stream_set *s, rpc_stream *st, const ProtobufCMessage *req) {
    if (!st->call && !stream_open(s, st)) return false;
    grpc_op ops[4];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    if (st->fresh) {
        ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
        if (st->channel->sec && st->channel->sec->token) {
            st->token.key = grpc_slice_from_static_string(RPC_TOKEN_METADATA);
            st->token.value = grpc_slice_from_static_string(st->channel->sec->token); /* the channel outlives it */
            ops[n].data.send_initial_metadata.count = 1;
            ops[n].data.send_initial_metadata.metadata = &st->token;
        }
        n++;
        ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[n++].data.recv_initial_metadata.recv_initial_metadata = &st->initial_md;
    }
    st->request = rpc_pack_message(req);
    st->response = NULL;
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = st->request;
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n++].data.recv_message.recv_message = &st->response;
    st->exchanging = grpc_call_start_batch(st->call, ops, n, &st->tag_exchange, NULL) == GRPC_CALL_OK;
    st->fresh = false;
    if (!st->exchanging) {
        grpc_byte_buffer_destroy(st->request);
        st->request = NULL;
    }
    return st->exchanging;
}

/* Takes completions until every stream of the exchange has its answer: a reply, or (after a failure) its
 * status. At the deadline the streams still waiting are cancelled, and their batches then complete. */
static void stream_collect(rpc_stream_set *s, const bool *active, int timeout_ms) {
    gpr_timespec deadline = rpc_deadline_ms(timeout_ms);
    for (;;) {
        bool waiting = false;
        for (int i = 0; i < s->n; i++) {
            const rpc_stream *st = &s->streams[i];
            if (active[i] && (st->exchanging || (!st->exchange_ok && st->status_pending))) waiting = true;
        }
        if (!waiting) return;
        grpc_event ev = grpc_completion_queue_next(s->cq, deadline, NULL);
        if (ev.type == GRPC_QUEUE_TIMEOUT) {
            for (int i = 0; i < s->n; i++) {
                rpc_stream *st = &s->streams[i];
                if (active[i] && st->exchanging && !st->timed_out) {
                    st->timed_out = true;
                    grpc_call_cancel(st->call, NULL);
                }
            }
            deadline = gpr_inf_future(GPR_CLOCK_REALTIME); /* the cancelled batches complete promptly */
            continue;
        }
        if (ev.type != GRPC_OP_COMPLETE) return;
        stream_tag *tag = ev.tag;
        rpc_stream *st = tag->stream;
        if (tag->status) {
            st->status_pending = false;
        } else {
            st->exchanging = false;
            st->exchange_ok = ev.success && st->response != NULL;
            if (!st->exchange_ok && st->call) grpc_call_cancel(st->call, NULL); /* ends it: its status follows */
        }
    }
}

/* The outcome of stream i into call (the reply's bytes, or why not); a failed stream is closed. */
static void stream_result(rpc_stream_set *s, rpc_stream *st, bool started, int timeout_ms, rpc_fanout *call) {
    const char *target = st->channel->target;
    call->response = NULL;
    call->response_len = 0;
    if (started && st->exchange_ok && !st->timed_out) {
        call->response = rpc_byte_buffer_copy(st->response, &call->response_len);
        call->code = RPC_OK;
    } else if (!started) {
        call->code = RPC_INTERNAL;
        errbuf_set(&call->err, "%s to %s: the stream could not start", s->method, target);
    } else if (st->timed_out) {
        call->code = RPC_DEADLINE_EXCEEDED;
        errbuf_set(&call->err, "%s to %s: DEADLINE_EXCEEDED: no reply within %d ms", s->method, target, timeout_ms);
    } else {
        call->code = st->status == GRPC_STATUS_OK ? RPC_UNAVAILABLE : (int)st->status;
        char *details = grpc_slice_to_c_string(st->details);
        errbuf_set(&call->err, "%s to %s: %s: %s", s->method, target, rpc_code_name(call->code),
                   *details ? details : "the stream ended");
        gpr_free(details);
    }
    if (st->response) grpc_byte_buffer_destroy(st->response);
    if (st->request) grpc_byte_buffer_destroy(st->request);
    st->response = st->request = NULL;
    /* a failure, or a server that ended the stream after its reply: open a new one next time */
    bool failed = !started || !st->exchange_ok || st->timed_out || (st->call && !st->status_pending);
    if (failed && st->call) {
        if (st->status_pending) { /* cancelled at the deadline: its status batch completes after the cancel */
            grpc_call_cancel(st->call, NULL);
            while (st->status_pending) {
                grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
                if (ev.type != GRPC_OP_COMPLETE) break;
                stream_tag *tag = ev.tag;
                if (tag->status) tag->stream->status_pending = false;
            }
        }
        stream_close(st);
    }
    st->exchange_ok = st->timed_out = false;
}

void rpc_stream_set_exchange(rpc_stream_set *s, rpc_fanout *calls, int timeout_ms, rpc_cancel *cancel) {
    bool *started = xcalloc((size_t)s->n, sizeof *started);
    grpc_call **watched = xcalloc((size_t)s->n, sizeof *watched);
    for (int i = 0; i < s->n; i++) {
        started[i] = stream_start_exchange(s, &s->streams[i], calls[i].request);
        watched[i] = started[i] ? s->streams[i].call : NULL;
    }
    if (cancel) cancel_watch_calls(cancel, watched, s->n);
    stream_collect(s, started, timeout_ms);
    if (cancel) cancel_unwatch_calls(cancel, watched, s->n);
    for (int i = 0; i < s->n; i++) stream_result(s, &s->streams[i], started[i], timeout_ms, &calls[i]);
    free(started);
    free(watched);
}

void rpc_stream_set_free(rpc_stream_set *s) {
    if (!s) return;
    for (int i = 0; i < s->n; i++) {
        rpc_stream *st = &s->streams[i];
        if (!st->call) continue;
        grpc_call_cancel(st->call, NULL); /* the server's handler sees the stream end */
        while (st->status_pending || st->exchanging) {
            grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
            if (ev.type != GRPC_OP_COMPLETE) break;
            stream_tag *tag = ev.tag;
            if (tag->status) tag->stream->status_pending = false;
            else tag->stream->exchanging = false;
        }
        if (st->response) grpc_byte_buffer_destroy(st->response);
        if (st->request) grpc_byte_buffer_destroy(st->request);
        stream_close(st);
    }
    grpc_completion_queue_shutdown(s->cq);
    while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(s->cq);
    free(s->streams);
    free(s);
}
