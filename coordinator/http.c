/* http.c — the coordinator's HTTP port (libmicrohttpd, a thread per
 * connection, so a handler may block waiting for tokens):
 *   GET  /health                 200 while the process runs (liveness)
 *   GET  /ready                  200 when a group is serving, else 503 and why
 *   GET  /metrics                Prometheus text (coordinator/metrics.c)
 *   GET  /v1/models              the served model
 *   POST /v1/completions         OpenAI completions, streamed as SSE with "stream": true
 *   POST /v1/chat/completions    OpenAI chat completions (Gemma's template)
 * docs/API.md documents every field. A client that disconnects is noticed
 * while its tokens are awaited, and its sequence stops by the next step. */
#define _GNU_SOURCE /* POLLRDHUP */
#include <arpa/inet.h>
#include <errno.h>
#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/rng.h"
#include "common/secret.h"
#include "common/alloc.h"
#include "coordinator/http.h"
#include "coordinator/metrics.h"
#include "coordinator/openai.h"
#include "coordinator/session.h"
#include "rpc/rpc.h"

#define WAIT_SLICE_MS 100

/* ---- small helpers -------------------------------------------------------------------- */

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, const char *type, const char *body) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result respond_json(struct MHD_Connection *conn, unsigned status, const char *body) {
    return respond(conn, status, "application/json", body);
}

static enum MHD_Result respond_error(struct MHD_Connection *conn, const api_error *e) {
    char *body = openai_error_json(e);
    enum MHD_Result ret = respond_json(conn, (unsigned)e->status, body);
    free(body);
    return ret;
}

/* A JSON string literal of s (quotes and control characters escaped). */
static void json_quote(const char *s, char *out, size_t len) {
    size_t k = 0;
    out[k++] = '"';
    for (; *s && k + 8 < len; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') out[k++] = '\\', out[k++] = (char)c;
        else if (c < 0x20) k += (size_t)snprintf(out + k, len - k, "\\u%04x", c);
        else out[k++] = (char)c;
    }
    out[k++] = '"';
    out[k] = '\0';
}

/* Ids and default seeds: splitmix64 over time, pid and a counter. */
static uint64_t random64(void) {
    static atomic_uint_fast64_t counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* the counter-th step of the stream seeded by time and pid */
    uint64_t s = ((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ ((uint64_t)getpid() << 48)) +
                 0x9E3779B97F4A7C15ull * atomic_fetch_add(&counter, 1);
    return splitmix64_next(&s);
}

/* Has the client closed its end? (checked while its tokens are awaited) */
static bool client_gone(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return false;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) return true;
    char c;
    ssize_t n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* The HTTP status of a gRPC status code (the scheduler speaks gRPC's codes). */
static unsigned status_of_code(int code) {
    switch (code) {
    case RPC_INVALID_ARGUMENT:
    case RPC_FAILED_PRECONDITION: return 400;
    case RPC_UNAUTHENTICATED: return 401;
    case RPC_RESOURCE_EXHAUSTED: return 429;
    case RPC_CANCELLED: return 499;
    case RPC_UNAVAILABLE: return 503;
    default: return 500;
    }
}

/* ---- a generation request ------------------------------------------------------------------- */

typedef struct generation {
    const frontend *fe;
    struct MHD_Connection *conn;
    openai_request req;
    openai_context ctx;
    char id[48];
    session *sessions[OPENAI_MAX_CHOICES];
    bool finished[OPENAI_MAX_CHOICES], role_sent[OPENAI_MAX_CHOICES];
    int n, n_finished, completion_tokens, next_choice;
    strbuf pending;  /* SSE bytes not yet handed to MHD */
    size_t pending_at;
    bool done_sent, failed;
} generation;

static void generation_free(generation *g) {
    for (int i = 0; i < g->n; i++) session_end(g->sessions[i]);
    openai_request_free(&g->req);
    strbuf_free(&g->pending);
    free(g);
}

/* The prompt's ids: text with <bos>, token ids as given, or the chat template. */
static bool tokenize_request(const frontend *fe, const openai_request *r, token_list *ids, api_error *err) {
    errbuf e;
    if (r->kind == OPENAI_CHAT) {
        if (!fe->model->tok) return api_error_set(err, 400, "messages", "this model has no tokenizer.model, so chat is not available");
        if (!chat_encode(fe->model->tok, r->messages, r->n_messages, ids, &e)) return api_error_set(err, 400, "messages", "%s", e.msg);
        return true;
    }
    if (r->prompt_ids) {
        for (int i = 0; i < r->n_prompt_ids; i++) {
            if (r->prompt_ids[i] >= fe->model->cfg.vocab_size)
                return api_error_set(err, 400, "prompt", "token id %d is out of range [0, %d)", r->prompt_ids[i],
                                     fe->model->cfg.vocab_size);
            token_list_push(ids, r->prompt_ids[i]);
        }
        return true;
    }
    if (!fe->model->tok) return api_error_set(err, 400, "prompt", "this model has no tokenizer.model: give the prompt as token ids");
    if (tokenizer_bos_id(fe->model->tok) >= 0) token_list_push(ids, tokenizer_bos_id(fe->model->tok));
    if (!tokenizer_encode(fe->model->tok, r->prompt, strlen(r->prompt), 0, ids, &e)) return api_error_set(err, 400, "prompt", "%s", e.msg);
    return true;
}

/* Context and max_tokens against the model, as vLLM words it. */
static bool check_lengths(const frontend *fe, const openai_request *r, int prompt_len, int *max_tokens, api_error *err) {
    int ctx = fe->model->cfg.max_position;
    const char *what = r->kind == OPENAI_CHAT ? "messages" : "prompt";
    if (prompt_len >= ctx)
        return api_error_set(err, 400, what, "This model's maximum context length is %d tokens, but the %s has %d tokens",
                             ctx, what, prompt_len);
    *max_tokens = r->max_tokens < 0 ? ctx - prompt_len : r->max_tokens;
    if (prompt_len + *max_tokens > ctx)
        return api_error_set(err, 400, r->kind == OPENAI_CHAT && r->max_tokens >= 0 ? "max_tokens" : "max_tokens",
                             "This model's maximum context length is %d tokens. However, you requested %d tokens (%d in the "
                             "%s, %d in the completion)",
                             ctx, prompt_len + *max_tokens, prompt_len, what, *max_tokens);
    return true;
}

/* Parses, checks and submits; NULL (and *e) when refused. */
static generation *generation_start(const frontend *fe, struct MHD_Connection *conn, openai_kind kind, const char *body,
                                    size_t len, api_error *e) {
    generation *g = xcalloc(1, sizeof *g);
    g->fe = fe;
    g->conn = conn;
    strbuf_init(&g->pending);
    token_list ids;
    token_list_init(&ids);
    int max_tokens = 0;
    bool ok = openai_parse(kind, body, len, &g->req, e);
    if (ok && strcmp(g->req.model, fe->model->name) != 0) {
        ok = api_error_set(e, 404, "model", "The model `%.200s` does not exist (this server serves `%s`)", g->req.model,
                           fe->model->name);
        snprintf(e->code, sizeof e->code, "model_not_found");
    }
    ok = ok && tokenize_request(fe, &g->req, &ids, e) && check_lengths(fe, &g->req, ids.n, &max_tokens, e);
    if (!ok) {
        metrics_request_done(fe->metrics, OUTCOME_INVALID, 0, 0, -1, -1);
        token_list_free(&ids);
        generation_free(g);
        return NULL;
    }
    int32_t stop_ids[1];
    int n_stop_ids = 0;
    if (kind == OPENAI_CHAT && fe->model->eot_id >= 0) stop_ids[n_stop_ids++] = fe->model->eot_id;
    uint64_t base_seed = g->req.seed_given ? g->req.sampling.seed : random64();
    for (int i = 0; i < g->req.n; i++) {
        gen_request gr = {.prompt = ids.ids, .prompt_len = ids.n, .sampling = g->req.sampling, .max_tokens = max_tokens,
                          .ignore_eos = g->req.ignore_eos, .stop_ids = stop_ids, .n_stop_ids = n_stop_ids,
                          .top_logprobs = g->req.logprobs > 0 ? g->req.logprobs : 0};
        gr.sampling.seed = base_seed + (uint64_t)i; /* choices differ; a given seed reproduces all of them */
        int code = 0;
        errbuf err;
        g->sessions[i] = session_start(fe, &gr, (const char *const *)g->req.stop, g->req.n_stop, &code, &err);
        if (!g->sessions[i]) {
            api_error_set(e, (int)status_of_code(code), code == RPC_INVALID_ARGUMENT ? "max_tokens" : "", "%s", err.msg);
            token_list_free(&ids);
            generation_free(g);
            return NULL;
        }
        g->n = i + 1;
    }
    bool chat = kind == OPENAI_CHAT;
    snprintf(g->id, sizeof g->id, "%s-%016llx%08llx", chat ? "chatcmpl" : "cmpl", (unsigned long long)random64(),
             (unsigned long long)(random64() & 0xffffffffull));
    g->ctx = (openai_context){&g->req, g->id, (long)time(NULL), fe->model->name, fe->model->tok, ids.n};
    token_list_free(&ids);
    return g;
}

/* Waits for the next delta of any unfinished choice (round robin). False
 * when the client went away (everything is cancelled then). */
static bool next_delta(generation *g, int *index, session_delta *d) {
    for (;;) {
        for (int k = 0; k < g->n; k++) {
            int i = (g->next_choice + k) % g->n;
            if (g->finished[i]) continue;
            if (session_next(g->sessions[i], d, g->n == 1 ? WAIT_SLICE_MS : 1)) {
                g->next_choice = (i + 1) % g->n;
                *index = i;
                if (d->finish || d->error_code) g->finished[i] = true, g->n_finished++;
                return true;
            }
        }
        if (client_gone(g->conn)) {
            for (int i = 0; i < g->n; i++) session_cancel(g->sessions[i]);
            return false;
        }
        if (g->n > 1) usleep(2000);
    }
}

static enum MHD_Result run_to_completion(generation *g) {
    openai_choice choices[OPENAI_MAX_CHOICES];
    for (int i = 0; i < g->n; i++) openai_choice_init(&choices[i]);
    api_error e = {0};
    bool gone = false;
    while (g->n_finished < g->n && !gone) {
        session_delta d;
        int i;
        if (!next_delta(g, &i, &d)) {
            gone = true;
            break;
        }
        if (d.error_code && !e.status) api_error_set(&e, (int)status_of_code(d.error_code), "", "%s", d.error);
        openai_choice_add(&choices[i], &d);
        free(d.logits);
    }
    enum MHD_Result ret = MHD_NO;
    if (!gone) {
        if (e.status) {
            ret = respond_error(g->conn, &e);
        } else {
            char *body = openai_render_response(&g->ctx, choices, g->n);
            ret = respond_json(g->conn, 200, body);
            free(body);
        }
    }
    for (int i = 0; i < g->n; i++) openai_choice_free(&choices[i]);
    generation_free(g);
    return ret;
}

/* ---- streaming (Server-Sent Events) --------------------------------------------------------- */

static void queue_event(generation *g, char *event) {
    strbuf_append_str(&g->pending, event);
    free(event);
}

/* Produces the next SSE bytes (blocking until there are some). */
static void produce(generation *g) {
    session_delta d;
    int i;
    if (g->n_finished == g->n) {
        if (g->req.include_usage && !g->failed) queue_event(g, openai_render_usage_chunk(&g->ctx, g->completion_tokens));
        strbuf_append_str(&g->pending, "data: [DONE]\n\n");
        g->done_sent = true;
        return;
    }
    if (!next_delta(g, &i, &d)) {
        g->failed = true;
        g->done_sent = true; /* nobody is listening */
        return;
    }
    if (d.error_code) {
        api_error e;
        api_error_set(&e, (int)status_of_code(d.error_code), "", "%s", d.error);
        char *json = openai_error_json(&e);
        strbuf_printf(&g->pending, "data: %s\n\n", json);
        free(json);
        g->failed = true;
        for (int k = 0; k < g->n; k++) /* one choice failed: the request has failed */
            if (!g->finished[k]) session_cancel(g->sessions[k]), g->finished[k] = true, g->n_finished++;
        return;
    }
    if (d.has_token) g->completion_tokens++;
    bool role_first = g->req.kind == OPENAI_CHAT && !g->role_sent[i];
    g->role_sent[i] = true;
    if (d.text_len || d.finish || role_first || (d.has_token && g->req.logprobs >= 0))
        queue_event(g, openai_render_chunk(&g->ctx, i, &d, role_first));
    free(d.logits);
}

static ssize_t sse_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    generation *g = cls;
    (void)pos;
    while (g->pending_at == g->pending.len) {
        if (g->done_sent) return g->failed && g->pending.len == 0 ? MHD_CONTENT_READER_END_WITH_ERROR
                                                                  : MHD_CONTENT_READER_END_OF_STREAM;
        strbuf_clear(&g->pending);
        g->pending_at = 0;
        produce(g);
        if (g->failed && g->done_sent && g->pending.len == 0) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = g->pending.len - g->pending_at < max ? g->pending.len - g->pending_at : max;
    memcpy(buf, g->pending.data + g->pending_at, n);
    g->pending_at += n;
    return (ssize_t)n;
}

/* MHD calls this when the response is done or the client has gone. */
static void sse_free(void *cls) { generation_free(cls); }

static enum MHD_Result stream(generation *g) {
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_reader, g, sse_free);
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    enum MHD_Result ret = MHD_queue_response(g->conn, 200, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- routes --------------------------------------------------------------------------------- */

typedef struct request_state {
    strbuf body;
    bool too_large;
} request_state;

static bool authorized(const frontend *fe, struct MHD_Connection *conn) {
    if (!fe->api_key) return true;
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    return h && strncmp(h, "Bearer ", 7) == 0 && secret_equal(h + 7, fe->api_key);
}

static enum MHD_Result handle_ready(const frontend *fe, struct MHD_Connection *conn) {
    char why[ERRBUF_LEN], quoted[2 * ERRBUF_LEN], body[3 * ERRBUF_LEN];
    bool ready = scheduler_ready(fe->sched, why, sizeof why);
    json_quote(ready ? "" : why, quoted, sizeof quoted);
    snprintf(body, sizeof body, "{\"ready\":%s,\"tp\":%d,\"reason\":%s}", ready ? "true" : "false", fe->tp, quoted);
    return respond_json(conn, ready ? 200 : 503, body);
}

static enum MHD_Result handle_models(const frontend *fe, struct MHD_Connection *conn) {
    char name[600], body[1024];
    json_quote(fe->model->name, name, sizeof name);
    snprintf(body, sizeof body,
             "{\"object\":\"list\",\"data\":[{\"id\":%s,\"object\":\"model\",\"created\":%ld,\"owned_by\":\"facet\","
             "\"max_model_len\":%d}]}",
             name, (long)fe->model->created, fe->model->cfg.max_position);
    return respond_json(conn, 200, body);
}

static enum MHD_Result handle_metrics(const frontend *fe, struct MHD_Connection *conn) {
    coordinator_stats st;
    scheduler_stats(fe->sched, &st);
    char *text = metrics_render(fe->metrics, &st);
    enum MHD_Result ret = respond(conn, 200, "text/plain; version=0.0.4", text);
    free(text);
    return ret;
}

/* POST /admin/faults {"rank": R, "fault": "SPEC"}: arms a fault on a worker
 * of the group (docs/FAILOVER.md); only with --allow-fault-injection. */
static enum MHD_Result handle_inject_fault(const frontend *fe, struct MHD_Connection *conn, const strbuf *body) {
    api_error e;
    if (!fe->admin || !fe->admin->allow_faults) {
        api_error_set(&e, 403, "", "fault injection is off: start the server with --allow-fault-injection");
        return respond_error(conn, &e);
    }
    cJSON *req = cJSON_ParseWithLength(body->data ? body->data : "", body->len);
    const cJSON *rank = req ? cJSON_GetObjectItemCaseSensitive(req, "rank") : NULL;
    const cJSON *fault = req ? cJSON_GetObjectItemCaseSensitive(req, "fault") : NULL;
    enum MHD_Result ret;
    if (!cJSON_IsNumber(rank) || !cJSON_IsString(fault) || rank->valuedouble != (int)rank->valuedouble) {
        api_error_set(&e, 400, "", "expected {\"rank\": N, \"fault\": \"KIND[:MS][@TRIGGER]\"}");
        ret = respond_error(conn, &e);
    } else {
        char armed[128];
        errbuf err;
        if (fe->admin->inject_fault(fe->admin->ctx, (int)rank->valuedouble, fault->valuestring, armed, sizeof armed, &err)) {
            char quoted[300], out[400];
            json_quote(armed, quoted, sizeof quoted);
            snprintf(out, sizeof out, "{\"rank\":%d,\"armed\":%s}", (int)rank->valuedouble, quoted);
            ret = respond_json(conn, 200, out);
        } else {
            api_error_set(&e, 400, "fault", "%s", err.msg);
            ret = respond_error(conn, &e);
        }
    }
    cJSON_Delete(req);
    return ret;
}

static enum MHD_Result handle_failover_events(const frontend *fe, struct MHD_Connection *conn) {
    char *json = fe->admin->failover_json(fe->admin->ctx);
    enum MHD_Result ret = respond_json(conn, 200, json);
    free(json);
    return ret;
}

static enum MHD_Result handle_generate(const frontend *fe, struct MHD_Connection *conn, openai_kind kind, const strbuf *body) {
    api_error e;
    if (scheduler_draining(fe->sched)) {
        api_error_set(&e, 503, "", "the server is shutting down");
        return respond_error(conn, &e);
    }
    generation *g = generation_start(fe, conn, kind, body->data ? body->data : "", body->len, &e);
    if (!g) return respond_error(conn, &e);
    return g->req.stream ? stream(g) : run_to_completion(g);
}

static enum MHD_Result route(const frontend *fe, struct MHD_Connection *conn, const char *url, const char *method,
                             request_state *st) {
    api_error e;
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    if (strcmp(url, "/health") == 0 && get) return respond_json(conn, 200, "{\"status\":\"alive\"}");
    if (strcmp(url, "/ready") == 0 && get) return handle_ready(fe, conn);
    if (strcmp(url, "/metrics") == 0 && get) return handle_metrics(fe, conn);
    bool models = strcmp(url, "/v1/models") == 0, completions = strcmp(url, "/v1/completions") == 0;
    bool chat = strcmp(url, "/v1/chat/completions") == 0;
    bool faults = strcmp(url, "/admin/faults") == 0, events = strcmp(url, "/admin/events") == 0;
    if (!models && !completions && !chat && !faults && !events) {
        api_error_set(&e, 404, "", "no such endpoint: %s %.200s", method, url);
        return respond_error(conn, &e);
    }
    if (!authorized(fe, conn)) {
        api_error_set(&e, 401, "", "a valid API key is required: send the header 'Authorization: Bearer <key>'");
        return respond_error(conn, &e);
    }
    if (models && get) return handle_models(fe, conn);
    if (events && get && fe->admin) return handle_failover_events(fe, conn);
    if (faults && post) return handle_inject_fault(fe, conn, &st->body);
    if ((completions || chat) && post) {
        if (st->too_large) {
            api_error_set(&e, 413, "", "the request body is larger than %d bytes", fe->max_body_bytes);
            metrics_request_done(fe->metrics, OUTCOME_INVALID, 0, 0, -1, -1);
            return respond_error(conn, &e);
        }
        return handle_generate(fe, conn, chat ? OPENAI_CHAT : OPENAI_COMPLETIONS, &st->body);
    }
    api_error_set(&e, 405, "", "%s is not allowed on %.200s", method, url);
    return respond_error(conn, &e);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_len, void **state) {
    const frontend *fe = cls;
    (void)version;
    request_state *st = *state;
    if (!st) { /* first call: headers only */
        st = xcalloc(1, sizeof *st);
        strbuf_init(&st->body);
        *state = st;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > (unsigned long long)fe->max_body_bytes) st->too_large = true;
        return MHD_YES;
    }
    if (*upload_len) { /* a piece of the body */
        if (!st->too_large && st->body.len + *upload_len <= (size_t)fe->max_body_bytes)
            strbuf_append(&st->body, upload, *upload_len);
        else
            st->too_large = true;
        *upload_len = 0;
        return MHD_YES;
    }
    return route(fe, conn, url, method, st);
}

static void request_completed(void *cls, struct MHD_Connection *conn, void **state, enum MHD_RequestTerminationCode code) {
    (void)cls, (void)conn, (void)code;
    request_state *st = *state;
    if (!st) return;
    strbuf_free(&st->body);
    free(st);
    *state = NULL;
}

struct http_server {
    struct MHD_Daemon *daemon;
    int port;
};

http_server *http_start(const frontend *fe, const char *host, int port, errbuf *err) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        errbuf_set(err, "HTTP: --host %s is not an IPv4 address", host);
        return NULL;
    }
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, (uint16_t)port, NULL, NULL,
        handle, (void *)fe, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_NOTIFY_COMPLETED, request_completed,
        NULL, MHD_OPTION_CONNECTION_LIMIT, (unsigned)2048, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600, MHD_OPTION_END);
    if (!d) {
        errbuf_set(err, "cannot listen for HTTP on %s:%d (in use?)", host, port);
        return NULL;
    }
    http_server *h = xcalloc(1, sizeof *h);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    h->daemon = d;
    h->port = info ? info->port : port;
    return h;
}

int http_port(const http_server *h) { return h ? h->port : -1; }

void http_stop(http_server *h) {
    if (!h) return;
    MHD_stop_daemon(h->daemon);
    free(h);
}
