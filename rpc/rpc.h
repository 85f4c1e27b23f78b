/* rpc.h — gRPC over the gRPC core C API, with protobuf-c messages.
 *
 * gRPC core carries bytes; protobuf-c packs and unpacks them (rpc_pack /
 * RPC_UNPACK below). This is the only place facet touches gRPC.
 *
 * Server: a fixed pool of handler threads, each with its own completion
 * queue, each serving one call at a time from start to finish — blocking
 * code in handlers is fine, and a long server-streaming call (Generate) or
 * a bidirectional one (StepStream) holds one thread for its life. Calls
 * beyond the pool wait in gRPC until a thread is free.
 *
 * Client: blocking unary calls with a deadline, the same call to many
 * servers at once, and persistent bidirectional streams to a set of servers
 * (a step to every rank: one message each way).
 *
 * Security (docs/SECURITY.md): a server and the channels to it share an
 * rpc_security: a cluster token every call carries and a server checks in
 * constant time, and/or mutual TLS, where each side presents a certificate
 * of the cluster's CA and a method may require the caller's certificate to
 * name a role ("facet-coordinator", "facet-worker"). */
#ifndef FACET_RPC_H
#define FACET_RPC_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

/* gRPC status codes facet uses (the numbering is gRPC's). */
enum {
    RPC_OK = 0,
    RPC_CANCELLED = 1,
    RPC_UNKNOWN = 2,
    RPC_INVALID_ARGUMENT = 3,
    RPC_DEADLINE_EXCEEDED = 4,
    RPC_NOT_FOUND = 5,
    RPC_ALREADY_EXISTS = 6,
    RPC_PERMISSION_DENIED = 7,
    RPC_RESOURCE_EXHAUSTED = 8,
    RPC_FAILED_PRECONDITION = 9,
    RPC_ABORTED = 10,
    RPC_UNIMPLEMENTED = 12,
    RPC_INTERNAL = 13,
    RPC_UNAVAILABLE = 14,
    RPC_UNAUTHENTICATED = 16,
};
const char *rpc_code_name(int code);

/* ---- security ---------------------------------------------------------------- */

/* Metadata key of the cluster token. */
#define RPC_TOKEN_METADATA "x-facet-cluster-token"

/* How a server and its callers prove who they are. A NULL rpc_security (or
 * one with nothing set) is plaintext without checks: the public port, or a
 * cluster run with --insecure. */
typedef struct rpc_security {
    const char *token;       /* a shared secret: sent on every call; a server requires it on every method not open */
    const char *ca_pem;      /* mutual TLS: the cluster CA, */
    const char *cert_pem;    /* this side's certificate chain, */
    const char *key_pem;     /* and its private key (all three PEM text, or none) */
    const char *peer_name;   /* TLS, calling side: the name the server's certificate must carry */
} rpc_security;

static inline bool rpc_security_tls(const rpc_security *s) { return s && s->ca_pem && s->cert_pem && s->key_pem; }

/* Process-wide gRPC init/shutdown (reference counted by gRPC itself). */
void rpc_init(void);
void rpc_shutdown(void);

/* ---- server ---------------------------------------------------------------- */

typedef struct rpc_server rpc_server;
typedef struct rpc_call rpc_call;

/* A method handler, given the request already unpacked (a request that is
 * not a valid message of the method's type never reaches it: the server
 * answers INVALID_ARGUMENT "<path>: malformed request"). It may send any
 * number of messages (one for unary), then calls rpc_call_finish once (if it
 * does not, OK is sent). The server frees the request afterwards. */
typedef void (*rpc_handler)(void *ctx, rpc_call *call, const ProtobufCMessage *request);

typedef struct rpc_method {
    const char *path;                          /* "/facet.v1.Worker/Step" */
    const ProtobufCMessageDescriptor *request; /* the request's message type */
    rpc_handler handler;
    void *ctx;
    bool open;             /* answers without the cluster token (health checks) */
    const char *peer_role; /* TLS: the caller's certificate must have this common name (NULL: any of the CA) */
} rpc_method;

/* Listens on addr ("127.0.0.1:0" picks a free port; *port_out tells which).
 * sec (copied; NULL: plaintext, no checks) says what callers must show: a
 * call without the token is UNAUTHENTICATED, one from a certificate of
 * another role PERMISSION_DENIED, each before its handler runs. */
rpc_server *rpc_server_start(const char *addr, const rpc_method *methods, int n_methods, int n_threads,
                             const rpc_security *sec, int *port_out, errbuf *err);
/* Cancels calls in flight, waits for the handler threads, frees. */
void rpc_server_stop(rpc_server *s);

bool rpc_call_send(rpc_call *call, const uint8_t *msg, size_t len);
void rpc_call_finish(rpc_call *call, int code, const char *message);
/* Has the client cancelled or gone away? (non-blocking) */
bool rpc_call_cancelled(rpc_call *call);
/* Value of a request metadata key, or NULL (copied into buf). */
const char *rpc_call_metadata(rpc_call *call, const char *key, char *buf, size_t len);

/* Packs a protobuf-c message and sends it; false if the client is gone. */
bool rpc_call_send_message(rpc_call *call, const ProtobufCMessage *msg);
/* Bidirectional streams: the handler got the first request as its argument;
 * it answers each with rpc_call_send_message and reads the next with this,
 * which blocks until one arrives. NULL: the caller closed its side or went
 * away; a message that is not of `type` also ends the stream (*malformed).
 * Free what it returns with protobuf_c_message_free_unpacked. */
ProtobufCMessage *rpc_call_recv_message(rpc_call *call, const ProtobufCMessageDescriptor *type, bool *malformed);
/* Packs msg as the response and finishes with OK. */
void rpc_call_reply(rpc_call *call, const ProtobufCMessage *msg);

/* ---- client ---------------------------------------------------------------- */

typedef struct rpc_channel rpc_channel;

/* A channel to target; sec (copied; NULL: plaintext) is what it shows and checks. */
rpc_channel *rpc_channel_create(const char *target, const rpc_security *sec);
void rpc_channel_free(rpc_channel *ch);
const char *rpc_channel_target(const rpc_channel *ch);

/* A blocking unary call. Returns the status code; on RPC_OK *resp (malloc'd)
 * holds the response. On failure err says "<method> to <target>: <CODE>: msg". */
int rpc_unary(rpc_channel *ch, const char *method, const ProtobufCMessage *req, uint8_t **resp, size_t *resp_len,
              int timeout_ms, errbuf *err);

/* The same method to several servers at once, each with its own request;
 * waits for all (each bounded by timeout_ms). */
typedef struct rpc_fanout {
    rpc_channel *channel;
    const ProtobufCMessage *request;
    /* results */
    int code;
    uint8_t *response; /* malloc'd on RPC_OK */
    size_t response_len;
    errbuf err;
} rpc_fanout;
void rpc_unary_fanout(rpc_fanout *calls, int n, const char *method, int timeout_ms);

/* A way to end calls in flight from another thread (a step of a group that
 * has just been declared lost). rpc_cancel_fire cancels every call running
 * under it -- they finish at once as CANCELLED -- and every call started
 * under it afterwards, until rpc_cancel_reset. */
typedef struct rpc_cancel rpc_cancel;
rpc_cancel *rpc_cancel_create(void);
void rpc_cancel_free(rpc_cancel *c);
void rpc_cancel_fire(rpc_cancel *c);
void rpc_cancel_reset(rpc_cancel *c);
/* rpc_unary_fanout whose calls cancel can end early (cancel may be NULL). */
void rpc_unary_fanout_cancellable(rpc_fanout *calls, int n, const char *method, int timeout_ms, rpc_cancel *cancel);

/* ---- client: persistent bidirectional streams ---------------------------------- */

/* One stream per server of a fixed set (the ranks of a group), each carrying
 * one request and then one reply at a time: a step costs a message each way
 * instead of a whole call (its set-up, metadata and credential check, the
 * server matching a new call to a thread). A stream opens at its first
 * exchange; one that fails -- a server gone, a timeout, a cancel -- is
 * closed and opens again at the next. Not thread-safe: one caller. */
typedef struct rpc_stream_set rpc_stream_set;
rpc_stream_set *rpc_stream_set_create(rpc_channel *const *channels, int n, const char *method);
/* Sends calls[i].request on stream i and waits for its reply, each bounded
 * by timeout_ms and ended early when cancel fires, as
 * rpc_unary_fanout_cancellable (calls[i].channel is ignored: the set's).
 * A reply lands in calls[i].response with RPC_OK; a stream that ended gives
 * its status, a stream past the deadline DEADLINE_EXCEEDED. */
void rpc_stream_set_exchange(rpc_stream_set *s, rpc_fanout *calls, int timeout_ms, rpc_cancel *cancel);
/* Closes every stream (cancelling one mid-exchange) and frees. */
void rpc_stream_set_free(rpc_stream_set *s);

#endif
