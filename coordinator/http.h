/* http.h — the coordinator's HTTP port: the OpenAI-compatible API, /health,
 * /ready, /metrics (docs/API.md). A front end: it sees the scheduler only
 * through scheduler_submit and its streams. */
#ifndef FACET_COORDINATOR_HTTP_H
#define FACET_COORDINATOR_HTTP_H

#include "common/error.h"
#include "coordinator/frontend.h"

typedef struct http_server http_server;

/* Listens on host:port (0: a free port; http_port says which). fe must outlive the server. */
http_server *http_start(const frontend *fe, const char *host, int port, errbuf *err);
int http_port(const http_server *h);
void http_stop(http_server *h);

#endif
