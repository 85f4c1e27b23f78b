/* stream.h — a request as the front ends see it: what to generate
 * (gen_request) and the stream of what came of it (gen_event: a token, the
 * end, or an error with a gRPC status code). The scheduler produces the
 * events; a front end waits on them, cancels when its client goes away, and
 * releases the stream when done. This and scheduler_submit are all a front
 * end knows of the scheduler. */
#ifndef FACET_COORDINATOR_STREAM_H
#define FACET_COORDINATOR_STREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "protocol/sampling.h"

typedef struct gen_request {
    const int32_t *prompt; /* token ids, <bos> included */
    int prompt_len;
    sampling_params sampling;
    int max_tokens;
    bool ignore_eos;
    const int32_t *stop_ids; /* besides <eos> */
    int n_stop_ids;
    bool return_logits;
    int top_logprobs;        /* alternatives per token, 0..20 */
} gen_request;

typedef enum { GEN_EVENT_TOKEN, GEN_EVENT_DONE, GEN_EVENT_ERROR } gen_event_kind;

typedef struct gen_event {
    gen_event_kind kind;
    int32_t token;        /* TOKEN */
    float logprob;
    float *logits;        /* TOKEN with return_logits: (vocab), the caller frees */
    int n_top;            /* top alternatives and their logprobs, best first */
    int32_t top_ids[SAMPLER_MAX_TOP_LOGPROBS];
    float top_logprobs[SAMPLER_MAX_TOP_LOGPROBS];
    const char *finish;   /* DONE: "stop" or "length" */
    int code;             /* ERROR: a gRPC status code (rpc/rpc.h's RPC_*) */
    char message[ERRBUF_LEN];
} gen_event;

typedef struct gen_stream gen_stream;

/* The next event; false if none came within timeout_ms. */
bool gen_stream_next(gen_stream *s, gen_event *ev, int timeout_ms);
/* Stops generating (client gone); its KV blocks are freed by the next step. */
void gen_stream_cancel(gen_stream *s);
void gen_stream_release(gen_stream *s);

#endif
