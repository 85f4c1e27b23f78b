/* http.c — the coordinator's HTTP port (libmicrohttpd). For now:
 *   GET /health  200 while the process runs (liveness)
 *   GET /ready   200 when a group is formed and serving, else 503 and why
 * The OpenAI-compatible API comes with the serving issue. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "coordinator/coordinator_impl.h"

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, const char *body) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
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

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_len, void **state) {
    coordinator *co = cls;
    (void)version, (void)upload, (void)state;
    if (*upload_len) {
        *upload_len = 0;
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0) return respond(conn, 405, "{\"error\":\"only GET is served here for now\"}");
    if (strcmp(url, "/health") == 0) return respond(conn, 200, "{\"status\":\"alive\"}");
    if (strcmp(url, "/ready") == 0) {
        char why[ERRBUF_LEN], quoted[2 * ERRBUF_LEN], body[3 * ERRBUF_LEN];
        bool ready = coordinator_ready(co, why, sizeof why);
        json_quote(ready ? "" : why, quoted, sizeof quoted);
        snprintf(body, sizeof body, "{\"ready\":%s,\"tp\":%d,\"reason\":%s}", ready ? "true" : "false", co->opt.tp, quoted);
        return respond(conn, ready ? 200 : 503, body);
    }
    return respond(conn, 404, "{\"error\":\"not found: the HTTP API serves /health and /ready for now\"}");
}

bool http_start(coordinator *co, errbuf *err) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)co->opt.http_port)};
    if (inet_pton(AF_INET, co->opt.host, &addr.sin_addr) != 1)
        return errbuf_set(err, "HTTP: --host %s is not an IPv4 address", co->opt.host);
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, (uint16_t)co->opt.http_port,
                                            NULL, NULL, handle, co, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                                            MHD_OPTION_END);
    if (!d) return errbuf_set(err, "cannot listen for HTTP on port %d (in use?)", co->opt.http_port);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    co->http_port = info ? info->port : co->opt.http_port;
    co->http = d;
    return true;
}

void http_stop(coordinator *co) {
    if (co->http) MHD_stop_daemon(co->http);
    co->http = NULL;
}
