/* session.h — one request as a client sees it, shared by the HTTP and gRPC
 * front ends: the token stream of coordinator_submit, turned into text
 * (incremental detokenization, never half a character), cut at stop
 * strings (text that could still become a stop string is held back), and
 * timed into the metrics (time to first token, inter-token, end to end,
 * outcome). */
#ifndef FACET_COORDINATOR_SESSION_H
#define FACET_COORDINATOR_SESSION_H

#include "coordinator/frontend.h"
#include "coordinator/metrics.h"
#include "coordinator/stream.h"

#define SESSION_MAX_STOP 16

typedef struct session session;

typedef struct session_delta {
    bool has_token;      /* a token was produced (the stop token too: it has no text) */
    int32_t token;
    float logprob;
    int n_top;
    int32_t top_ids[SAMPLER_MAX_TOP_LOGPROBS];
    float top_logprobs[SAMPLER_MAX_TOP_LOGPROBS];
    float *logits;       /* return_logits: (vocab), the caller frees */
    const char *text;    /* text released now (valid until the next call) */
    size_t text_len;
    const char *finish;  /* NULL while generating; "stop" or "length" at the end */
    int error_code;      /* != 0: the request failed (a gRPC code) ... */
    char error[ERRBUF_LEN]; /* ... and why */
} session_delta;

/* Submits the request. NULL (with *code, err) when refused at once; the
 * refusal is counted in the metrics. */
session *session_start(const frontend *fe, const gen_request *req, const char *const *stop, int n_stop, int *code,
                        errbuf *err);
/* The next delta; false if nothing happened within timeout_ms. After a
 * delta with finish or error_code, there are no more. */
bool session_next(session *s, session_delta *d, int timeout_ms);
/* The client went away: stop generating (the KV blocks free at the next step). */
void session_cancel(session *s);
int session_completion_tokens(const session *s);
/* Records the outcome and frees. */
void session_end(session *s);

/* The outcome for a refusal's code (for the metrics). */
request_outcome session_outcome_of_code(int code);

#endif
