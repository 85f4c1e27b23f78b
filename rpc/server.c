/* server.c — the handler-thread gRPC server (see rpc.h). */
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
#include "common/secret.h"
#include "rpc/rpc_impl.h"

#define MAX_MESSAGE_BYTES (64 << 20)

struct rpc_call {
    grpc_call *call;
    grpc_completion_queue *cq;
    grpc_metadata_array request_md;
    bool finished;
    bool close_seen;  /* RECV_CLOSE_ON_SERVER completed */
    int cancelled;    /* its result: the client cancelled */
};

typedef struct handler_thread {
    rpc_server *server;
    grpc_completion_queue *cq;
    pthread_t thread;
} handler_thread;

struct rpc_server {
    grpc_server *server;
    rpc_security *sec;
    const rpc_method *methods;
    int n_methods;
    handler_thread *threads;
    int n_threads;
    grpc_completion_queue *shutdown_cq;
};

/* tags: distinct addresses */
static char TAG_NEW_CALL, TAG_RECV, TAG_SEND, TAG_CLOSE, TAG_STATUS;

/* Waits on the call's queue for `tag`; notes the close event on the way. */
static bool wait_tag(rpc_call *c, void *tag) {
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(c->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type != GRPC_OP_COMPLETE) return false;
        if (ev.tag == &TAG_CLOSE) c->close_seen = true;
        if (ev.tag == tag) return ev.success != 0;
    }
}

bool rpc_call_cancelled(rpc_call *c) {
    while (!c->close_seen) {
        grpc_event ev = grpc_completion_queue_next(c->cq, gpr_inf_past(GPR_CLOCK_REALTIME), NULL);
        if (ev.type != GRPC_OP_COMPLETE) break;
        if (ev.tag == &TAG_CLOSE) c->close_seen = true;
    }
    return c->close_seen && c->cancelled;
}

/* Sends bb (and destroys it); false if the client is gone. */
static bool send_buffer(rpc_call *c, grpc_byte_buffer *bb) {
    grpc_op op = {.op = GRPC_OP_SEND_MESSAGE};
    op.data.send_message.send_message = bb;
    bool ok = grpc_call_start_batch(c->call, &op, 1, &TAG_SEND, NULL) == GRPC_CALL_OK && wait_tag(c, &TAG_SEND);
    grpc_byte_buffer_destroy(bb);
    return ok;
}

bool rpc_call_send(rpc_call *c, const uint8_t *msg, size_t len) {
    if (c->finished || rpc_call_cancelled(c)) return false;
    grpc_slice slice = grpc_slice_from_copied_buffer((const char *)msg, len);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    return send_buffer(c, bb);
}

void rpc_call_finish(rpc_call *c, int code, const char *message) {
    if (c->finished) return;
    c->finished = true;
    grpc_slice details = grpc_slice_from_copied_string(message ? message : "");
    grpc_op op = {.op = GRPC_OP_SEND_STATUS_FROM_SERVER};
    op.data.send_status_from_server.status = (grpc_status_code)code;
    op.data.send_status_from_server.status_details = &details;
    if (grpc_call_start_batch(c->call, &op, 1, &TAG_STATUS, NULL) == GRPC_CALL_OK) wait_tag(c, &TAG_STATUS);
    grpc_slice_unref(details);
}

const char *rpc_call_metadata(rpc_call *c, const char *key, char *buf, size_t len) {
    for (size_t i = 0; i < c->request_md.count; i++) {
        const grpc_metadata *m = &c->request_md.metadata[i];
        size_t klen = GRPC_SLICE_LENGTH(m->key);
        if (klen == strlen(key) && memcmp(GRPC_SLICE_START_PTR(m->key), key, klen) == 0) {
            size_t vlen = GRPC_SLICE_LENGTH(m->value);
            if (vlen >= len) vlen = len - 1;
            memcpy(buf, GRPC_SLICE_START_PTR(m->value), vlen);
            buf[vlen] = '\0';
            return buf;
        }
    }
    return NULL;
}

bool rpc_call_send_message(rpc_call *c, const ProtobufCMessage *msg) {
    if (c->finished || rpc_call_cancelled(c)) return false;
    return send_buffer(c, rpc_pack_message(msg)); /* packed straight into gRPC's slice: no copy */
}

/* The message and the OK status in one batch: one write and one wait on the queue instead of two (a step's
 * reply is on the critical path of every decode step). */
void rpc_call_reply(rpc_call *c, const ProtobufCMessage *msg) {
    if (c->finished) return;
    if (rpc_call_cancelled(c)) { /* the caller is gone: the status is all there is to send */
        rpc_call_finish(c, RPC_CANCELLED, "the caller went away");
        return;
    }
    c->finished = true;
    grpc_byte_buffer *bb = rpc_pack_message(msg);
    grpc_slice details = grpc_slice_from_static_string("");
    grpc_op ops[2] = {{.op = GRPC_OP_SEND_MESSAGE}, {.op = GRPC_OP_SEND_STATUS_FROM_SERVER}};
    ops[0].data.send_message.send_message = bb;
    ops[1].data.send_status_from_server.status = GRPC_STATUS_OK;
    ops[1].data.send_status_from_server.status_details = &details;
    if (grpc_call_start_batch(c->call, ops, 2, &TAG_STATUS, NULL) == GRPC_CALL_OK) wait_tag(c, &TAG_STATUS);
    grpc_byte_buffer_destroy(bb);
}

/* The byte buffer's bytes unpacked as `type`; NULL when they are not one. */
static ProtobufCMessage *unpack_buffer(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *type) {
    grpc_byte_buffer_reader reader;
    grpc_byte_buffer_reader_init(&reader, bb);
    grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    ProtobufCMessage *msg = protobuf_c_message_unpack(type, NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
    grpc_slice_unref(all);
    return msg;
}

ProtobufCMessage *rpc_call_recv_message(rpc_call *c, const ProtobufCMessageDescriptor *type, bool *malformed) {
    *malformed = false;
    if (c->finished) return NULL;
    grpc_byte_buffer *bb = NULL;
    grpc_op op = {.op = GRPC_OP_RECV_MESSAGE};
    op.data.recv_message.recv_message = &bb;
    if (grpc_call_start_batch(c->call, &op, 1, &TAG_RECV, NULL) != GRPC_CALL_OK || !wait_tag(c, &TAG_RECV) || !bb) {
        if (bb) grpc_byte_buffer_destroy(bb);
        return NULL; /* the caller half-closed, cancelled or went away */
    }
    ProtobufCMessage *msg = unpack_buffer(bb, type);
    grpc_byte_buffer_destroy(bb);
    *malformed = msg == NULL;
    return msg;
}

static const rpc_method *find_method(const rpc_server *s, grpc_slice method) {
    size_t len = GRPC_SLICE_LENGTH(method);
    for (int i = 0; i < s->n_methods; i++)
        if (strlen(s->methods[i].path) == len && memcmp(s->methods[i].path, GRPC_SLICE_START_PTR(method), len) == 0)
            return &s->methods[i];
    return NULL;
}

/* The caller's certificate's common name, or "" (no TLS, no certificate). */
static void peer_common_name(grpc_call *call, char *out, size_t len) {
    out[0] = '\0';
    grpc_auth_context *ctx = grpc_call_auth_context(call);
    if (!ctx) return;
    grpc_auth_property_iterator it = grpc_auth_context_find_properties_by_name(ctx, GRPC_X509_CN_PROPERTY_NAME);
    const grpc_auth_property *p = grpc_auth_property_iterator_next(&it);
    if (p) snprintf(out, len, "%.*s", (int)p->value_length, p->value);
    grpc_auth_context_release(ctx);
}

/* Does the caller show what the method needs? If not, finishes the call
 * with the status and a message saying what to fix, and returns false. */
static bool caller_allowed(const rpc_server *s, rpc_call *c, const rpc_method *m) {
    if (!s->sec || m->open) return true;
    char msg[512];
    if (s->sec->token) {
        char given[SECRET_MAX];
        if (!rpc_call_metadata(c, RPC_TOKEN_METADATA, given, sizeof given)) {
            snprintf(msg, sizeof msg, "%s needs the cluster token (metadata %s): start the caller with the cluster's "
                     "--cluster-token-file or $FACET_CLUSTER_TOKEN", m->path, RPC_TOKEN_METADATA);
            rpc_call_finish(c, RPC_UNAUTHENTICATED, msg);
            return false;
        }
        if (!secret_equal(given, s->sec->token)) {
            snprintf(msg, sizeof msg, "%s: the cluster token does not match this server's: give both sides the same "
                     "--cluster-token-file or $FACET_CLUSTER_TOKEN", m->path);
            rpc_call_finish(c, RPC_UNAUTHENTICATED, msg);
            return false;
        }
    }
    if (rpc_security_tls(s->sec) && m->peer_role) {
        char cn[256];
        peer_common_name(c->call, cn, sizeof cn);
        if (strcmp(cn, m->peer_role) != 0) {
            snprintf(msg, sizeof msg, "%s is only for %s; the caller's certificate is for \"%.100s\"", m->path, m->peer_role, cn);
            rpc_call_finish(c, RPC_PERMISSION_DENIED, msg);
            return false;
        }
    }
    return true;
}

/* One call, start to finish: read the request, run the handler, close. */
static void serve_call(rpc_server *s, rpc_call *c, const grpc_call_details *details) {
    grpc_byte_buffer *request = NULL;
    grpc_op ops[2] = {{.op = GRPC_OP_SEND_INITIAL_METADATA}, {.op = GRPC_OP_RECV_MESSAGE}};
    ops[1].data.recv_message.recv_message = &request;
    grpc_op close_op = {.op = GRPC_OP_RECV_CLOSE_ON_SERVER};
    close_op.data.recv_close_on_server.cancelled = &c->cancelled;
    bool ok = grpc_call_start_batch(c->call, ops, 2, &TAG_RECV, NULL) == GRPC_CALL_OK &&
              grpc_call_start_batch(c->call, &close_op, 1, &TAG_CLOSE, NULL) == GRPC_CALL_OK && wait_tag(c, &TAG_RECV);
    const rpc_method *m = find_method(s, details->method);
    if (!ok || !request) {
        rpc_call_finish(c, RPC_INVALID_ARGUMENT, "no request message");
    } else if (!m) {
        char msg[256];
        snprintf(msg, sizeof msg, "unknown method %.*s", (int)GRPC_SLICE_LENGTH(details->method),
                 (const char *)GRPC_SLICE_START_PTR(details->method));
        rpc_call_finish(c, RPC_UNIMPLEMENTED, msg);
    } else if (caller_allowed(s, c, m)) {
        ProtobufCMessage *msg = unpack_buffer(request, m->request);
        if (msg) {
            m->handler(m->ctx, c, msg);
            protobuf_c_message_free_unpacked(msg, NULL);
            rpc_call_finish(c, RPC_OK, NULL);
        } else {
            char text[300];
            snprintf(text, sizeof text, "%s: malformed request", m->path);
            rpc_call_finish(c, RPC_INVALID_ARGUMENT, text);
        }
    }
    if (request) grpc_byte_buffer_destroy(request);
    if (!c->close_seen) wait_tag(c, &TAG_CLOSE);
}

static void *handler_main(void *p) {
    handler_thread *t = p;
    rpc_server *s = t->server;
    for (;;) {
        rpc_call c = {.cq = t->cq};
        grpc_call_details details;
        grpc_call_details_init(&details);
        grpc_metadata_array_init(&c.request_md);
        if (grpc_server_request_call(s->server, &c.call, &details, &c.request_md, t->cq, t->cq, &TAG_NEW_CALL) !=
            GRPC_CALL_OK) {
            grpc_call_details_destroy(&details);
            grpc_metadata_array_destroy(&c.request_md);
            break;
        }
        grpc_event ev;
        do {
            ev = grpc_completion_queue_next(t->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        } while (ev.type == GRPC_OP_COMPLETE && ev.tag != &TAG_NEW_CALL);
        bool got_call = ev.type == GRPC_OP_COMPLETE && ev.success;
        if (got_call) serve_call(s, &c, &details);
        if (c.call) grpc_call_unref(c.call);
        grpc_call_details_destroy(&details);
        grpc_metadata_array_destroy(&c.request_md);
        if (!got_call) break; /* the server is shutting down */
    }
    return NULL;
}

static grpc_server_credentials *server_credentials(const rpc_security *sec) {
    if (!rpc_security_tls(sec)) return grpc_insecure_server_credentials_create();
    grpc_ssl_pem_key_cert_pair pair = {sec->key_pem, sec->cert_pem};
    return grpc_ssl_server_credentials_create_ex(sec->ca_pem, &pair, 1,
                                                 GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY, NULL);
}

rpc_server *rpc_server_start(const char *addr, const rpc_method *methods, int n_methods, int n_threads,
                             const rpc_security *sec, int *port_out, errbuf *err) {
    rpc_init();
    grpc_arg args[2] = {
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, .value.integer = MAX_MESSAGE_BYTES},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, .value.integer = MAX_MESSAGE_BYTES},
    };
    grpc_channel_args chargs = {2, args};
    rpc_server *s = xcalloc(1, sizeof *s);
    s->server = grpc_server_create(&chargs, NULL);
    s->sec = rpc_security_copy(sec);
    s->methods = methods;
    s->n_methods = n_methods;
    s->n_threads = n_threads < 1 ? 1 : n_threads;
    s->threads = xcalloc((size_t)s->n_threads, sizeof *s->threads);
    for (int i = 0; i < s->n_threads; i++) {
        s->threads[i].server = s;
        s->threads[i].cq = grpc_completion_queue_create_for_next(NULL);
        grpc_server_register_completion_queue(s->server, s->threads[i].cq, NULL);
    }
    s->shutdown_cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_server_credentials *creds = server_credentials(s->sec);
    int port = grpc_server_add_http2_port(s->server, addr, creds);
    grpc_server_credentials_release(creds);
    if (port == 0) {
        errbuf_set(err, "cannot listen on %s (address in use or invalid?)", addr);
        for (int i = 0; i < s->n_threads; i++) {
            grpc_completion_queue_shutdown(s->threads[i].cq);
            grpc_completion_queue_destroy(s->threads[i].cq);
        }
        grpc_server_destroy(s->server);
        grpc_completion_queue_destroy(s->shutdown_cq);
        rpc_security_free(s->sec);
        free(s->threads);
        free(s);
        return NULL;
    }
    grpc_server_start(s->server);
    for (int i = 0; i < s->n_threads; i++) facet_thread_start(&s->threads[i].thread, handler_main, &s->threads[i], "gRPC handler");
    if (port_out) *port_out = port;
    return s;
}

void rpc_server_stop(rpc_server *s) {
    if (!s) return;
    static char tag_shutdown;
    grpc_server_shutdown_and_notify(s->server, s->shutdown_cq, &tag_shutdown);
    grpc_server_cancel_all_calls(s->server);
    grpc_completion_queue_pluck(s->shutdown_cq, &tag_shutdown, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    for (int i = 0; i < s->n_threads; i++) pthread_join(s->threads[i].thread, NULL);
    for (int i = 0; i < s->n_threads; i++) {
        grpc_completion_queue_shutdown(s->threads[i].cq);
        while (grpc_completion_queue_next(s->threads[i].cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
               GRPC_QUEUE_SHUTDOWN) {
        }
        grpc_completion_queue_destroy(s->threads[i].cq);
    }
    grpc_server_destroy(s->server);
    grpc_completion_queue_shutdown(s->shutdown_cq);
    grpc_completion_queue_destroy(s->shutdown_cq);
    rpc_security_free(s->sec);
    free(s->threads);
    free(s);
}
