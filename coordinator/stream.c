/* stream.c — a sequence's life outside the scheduler's lists: its creation,
 * the event queue a front end waits on, cancellation, references. */
#include "coordinator/sequence.h"

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/clock.h"

sequence *sequence_create(const gen_request *req, int max_position, void (*wake)(void *), void *wake_ctx) {
    sequence *s = xcalloc(1, sizeof *s);
    s->prompt_len = s->n_tokens = req->prompt_len;
    s->max_tokens = req->max_tokens;
    if (s->prompt_len + s->max_tokens > max_position) s->max_tokens = max_position - s->prompt_len;
    s->cap_tokens = s->prompt_len + s->max_tokens + 1;
    s->tokens = xmalloc((size_t)s->cap_tokens * sizeof *s->tokens);
    memcpy(s->tokens, req->prompt, (size_t)req->prompt_len * sizeof *s->tokens);
    s->sampling = req->sampling;
    if (s->sampling.top_p <= 0) s->sampling.top_p = 1.0f;
    s->ignore_eos = req->ignore_eos;
    s->return_logits = req->return_logits;
    s->top_logprobs = req->top_logprobs;
    s->has_penalties = sampling_params_has_penalties(&s->sampling);
    seen_tokens_init(&s->seen);
    if (s->has_penalties)
        for (int i = 0; i < req->prompt_len; i++) seen_tokens_add(&s->seen, req->prompt[i], false);
    s->n_stop_ids = req->n_stop_ids;
    s->stop_ids = xmalloc((size_t)(req->n_stop_ids + 1) * sizeof *s->stop_ids);
    if (req->n_stop_ids) memcpy(s->stop_ids, req->stop_ids, (size_t)req->n_stop_ids * sizeof *s->stop_ids);
    s->wake = wake;
    s->wake_ctx = wake_ctx;
    atomic_init(&s->cancelled, false);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    atomic_init(&s->refs, 2);
    return s;
}

void sequence_append(sequence *s, int32_t id) {
    if (s->n_tokens == s->cap_tokens) {
        s->cap_tokens *= 2;
        s->tokens = xrealloc(s->tokens, (size_t)s->cap_tokens * sizeof *s->tokens);
    }
    s->tokens[s->n_tokens++] = id;
}

void sequence_push_event(sequence *s, const gen_event *ev) {
    pthread_mutex_lock(&s->mu);
    if (s->head > 0 && s->head == s->n_events) s->head = s->n_events = 0;
    if (s->n_events == s->cap_events) {
        s->cap_events = s->cap_events ? 2 * s->cap_events : 16;
        s->events = xrealloc(s->events, (size_t)s->cap_events * sizeof *s->events);
    }
    s->events[s->n_events++] = *ev;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

bool gen_stream_next(gen_stream *s, gen_event *ev, int timeout_ms) {
    struct timespec ts = clock_deadline(timeout_ms);
    pthread_mutex_lock(&s->mu);
    while (s->head == s->n_events)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) != 0) break;
    bool got = s->head < s->n_events;
    if (got) *ev = s->events[s->head++];
    pthread_mutex_unlock(&s->mu);
    return got;
}

void sequence_unref(sequence *s) {
    if (atomic_fetch_sub(&s->refs, 1) != 1) return;
    for (int i = s->head; i < s->n_events; i++) free(s->events[i].logits);
    free(s->events);
    free(s->tokens);
    free(s->stop_ids);
    free(s->blocks);
    seen_tokens_free(&s->seen);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

void gen_stream_cancel(gen_stream *s) {
    atomic_store(&s->cancelled, true);
    if (s->wake) s->wake(s->wake_ctx);
}

void gen_stream_release(gen_stream *s) {
    if (s) sequence_unref(s);
}
