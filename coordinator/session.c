#define _GNU_SOURCE /* memmem */
#include "coordinator/session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/alloc.h"
#include "rpc/rpc.h"
#include "tokenizer/tokenizer.h"

struct session {
    const frontend *fe;
    gen_stream *stream;
    detokenizer detok;
    bool has_tokenizer;
    char *stop[SESSION_MAX_STOP];
    size_t stop_len[SESSION_MAX_STOP], max_stop_len;
    int n_stop;
    strbuf text;      /* all text so far */
    size_t released;  /* of it, given to the client */
    int prompt_tokens, completion_tokens;
    double start, first_token, last_token;
    bool done, cancelled;
    request_outcome outcome;
};

request_outcome session_outcome_of_code(int code) {
    switch (code) {
    case RPC_INVALID_ARGUMENT: return OUTCOME_INVALID;
    case RPC_RESOURCE_EXHAUSTED:
    case RPC_UNAVAILABLE:
    case RPC_FAILED_PRECONDITION: return OUTCOME_REFUSED;
    case RPC_CANCELLED: return OUTCOME_CANCELLED;
    default: return OUTCOME_FAILED;
    }
}

session *session_start(const frontend *fe, const gen_request *req, const char *const *stop, int n_stop, int *code,
                       errbuf *err) {
    double start = clock_now_s();
    gen_stream *g = scheduler_submit(fe->sched, req, code, err);
    if (!g) {
        metrics_request_done(fe->metrics, session_outcome_of_code(*code), 0, 0, -1, -1);
        return NULL;
    }
    session *s = xcalloc(1, sizeof *s);
    s->fe = fe;
    s->stream = g;
    s->start = start;
    s->prompt_tokens = req->prompt_len;
    s->has_tokenizer = fe->model->tok != NULL;
    if (s->has_tokenizer) detokenizer_init(&s->detok, fe->model->tok);
    strbuf_init(&s->text);
    for (int i = 0; i < n_stop && i < SESSION_MAX_STOP; i++) {
        if (!stop[i] || !stop[i][0]) continue;
        s->stop[s->n_stop] = xstrdup(stop[i]);
        s->stop_len[s->n_stop] = strlen(stop[i]);
        if (s->stop_len[s->n_stop] > s->max_stop_len) s->max_stop_len = s->stop_len[s->n_stop];
        s->n_stop++;
    }
    return s;
}

/* The earliest occurrence of a stop string in text[from:], or -1. */
static long find_stop(const session *s, size_t from) {
    long best = -1;
    for (int i = 0; i < s->n_stop; i++) {
        const char *hit = memmem(s->text.data + from, s->text.len - from, s->stop[i], s->stop_len[i]);
        if (hit && (best < 0 || hit - s->text.data < best)) best = hit - s->text.data;
    }
    return best;
}

/* Length of the longest tail of the unreleased text that begins a stop string. */
static size_t held_back(const session *s) {
    size_t pending = s->text.len - s->released, best = 0;
    for (int i = 0; i < s->n_stop; i++) {
        size_t max = s->stop_len[i] - 1 < pending ? s->stop_len[i] - 1 : pending;
        for (size_t k = max; k > best; k--)
            if (memcmp(s->text.data + s->text.len - k, s->stop[i], k) == 0) {
                best = k;
                break;
            }
    }
    return best;
}

/* Releases what is final: all of it at the end, else all but a possible stop prefix. */
static void release_text(session *s, session_delta *d, bool at_end) {
    size_t from = s->released > s->max_stop_len ? s->released - s->max_stop_len : 0;
    long hit = s->n_stop ? find_stop(s, from) : -1;
    size_t upto = s->text.len;
    if (hit >= 0) {
        upto = (size_t)hit;
        d->finish = "stop";
    } else if (!at_end) {
        upto -= held_back(s);
    }
    if (upto < s->released) upto = s->released;
    d->text = s->text.data ? s->text.data + s->released : "";
    d->text_len = upto - s->released;
    s->released = upto;
}

static void finish(session *s, request_outcome outcome) {
    s->done = true;
    s->outcome = outcome;
}

bool session_next(session *s, session_delta *d, int timeout_ms) {
    memset(d, 0, sizeof *d);
    d->text = "";
    if (s->done) return false;
    gen_event ev;
    if (!gen_stream_next(s->stream, &ev, timeout_ms)) return false;
    double now = clock_now_s();
    if (ev.kind == GEN_EVENT_ERROR) {
        d->error_code = ev.code;
        snprintf(d->error, sizeof d->error, "%s", ev.message);
        finish(s, s->cancelled || ev.code == RPC_CANCELLED ? OUTCOME_CANCELLED : OUTCOME_FAILED);
        return true;
    }
    if (ev.token >= 0) {
        d->has_token = true;
        d->token = ev.token;
        d->logprob = ev.logprob;
        d->n_top = ev.n_top;
        memcpy(d->top_ids, ev.top_ids, sizeof d->top_ids);
        memcpy(d->top_logprobs, ev.top_logprobs, sizeof d->top_logprobs);
        d->logits = ev.logits;
        s->completion_tokens++;
        if (s->first_token == 0) s->first_token = now;
        else metrics_observe_itl(s->fe->metrics, now - s->last_token);
        s->last_token = now;
        if (ev.kind == GEN_EVENT_TOKEN && s->has_tokenizer) detokenizer_push(&s->detok, ev.token, &s->text);
    }
    bool at_end = ev.kind == GEN_EVENT_DONE;
    if (at_end && s->has_tokenizer) detokenizer_flush(&s->detok, &s->text);
    release_text(s, d, at_end);
    if (d->finish) { /* a stop string: the rest of the generation is not wanted */
        gen_stream_cancel(s->stream);
        finish(s, OUTCOME_STOP);
    } else if (at_end) {
        d->finish = ev.finish;
        finish(s, strcmp(ev.finish, "stop") == 0 ? OUTCOME_STOP : OUTCOME_LENGTH);
    }
    return true;
}

void session_cancel(session *s) {
    s->cancelled = true;
    gen_stream_cancel(s->stream);
}

int session_completion_tokens(const session *s) { return s->completion_tokens; }

void session_end(session *s) {
    if (!s) return;
    if (!s->done) {
        gen_stream_cancel(s->stream);
        s->outcome = OUTCOME_CANCELLED;
    }
    double end = s->last_token > 0 ? s->last_token : clock_now_s();
    metrics_request_done(s->fe->metrics, s->outcome, s->prompt_tokens, s->completion_tokens,
                         s->first_token > 0 ? s->first_token - s->start : -1, end - s->start);
    gen_stream_release(s->stream);
    for (int i = 0; i < s->n_stop; i++) free(s->stop[i]);
    strbuf_free(&s->text);
    free(s);
}
