/* openai.h — the OpenAI-compatible request format: parsing and checking a
 * request body (every field typed and range-checked, unknown fields refused
 * as OpenAI itself does), and rendering responses and stream chunks.
 * docs/API.md lists every field. openai_parse is a fuzz target. */
#ifndef FACET_COORDINATOR_OPENAI_H
#define FACET_COORDINATOR_OPENAI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coordinator/session.h"
#include "tokenizer/chat.h"
#include "protocol/sampling.h"

typedef enum { OPENAI_COMPLETIONS, OPENAI_CHAT } openai_kind;

/* An error for the client: HTTP status, message, and the offending field. */
typedef struct api_error {
    int status;
    const char *type;   /* "invalid_request_error", ... */
    char param[64];     /* the field, or "" */
    char code[32];      /* e.g. "model_not_found", or "" */
    char message[ERRBUF_LEN];
} api_error;

bool api_error_set(api_error *e, int status, const char *param, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define OPENAI_MAX_CHOICES 16

typedef struct openai_request {
    openai_kind kind;
    char *model;
    /* completions: text, or token ids */
    char *prompt;
    int32_t *prompt_ids;
    int n_prompt_ids;
    /* chat */
    chat_message *messages; /* role and content owned */
    int n_messages;
    int max_tokens;         /* -1: until the context is full (chat's default) */
    sampling_params sampling;
    bool seed_given;
    char *stop[SESSION_MAX_STOP];
    int n_stop;
    int n;                  /* choices */
    bool stream, include_usage, ignore_eos;
    int logprobs;           /* -1: none; else top alternatives per token (completions: 0..20; chat: top_logprobs) */
} openai_request;

bool openai_parse(openai_kind kind, const char *body, size_t len, openai_request *out, api_error *err);
void openai_request_free(openai_request *r);

/* The JSON body of an error (malloc'd). */
char *openai_error_json(const api_error *e);

/* ---- responses ---------------------------------------------------------------- */

/* What one choice produced (for a whole response). */
typedef struct openai_choice {
    strbuf text;
    const char *finish;
    int32_t *tokens;    /* for logprobs */
    float *logprobs;
    int32_t (*top_ids)[SAMPLER_MAX_TOP_LOGPROBS];
    float (*top_lps)[SAMPLER_MAX_TOP_LOGPROBS];
    int *n_top;
    int n_tokens, cap;
    int completion_tokens;
} openai_choice;

void openai_choice_init(openai_choice *c);
void openai_choice_free(openai_choice *c);
void openai_choice_add(openai_choice *c, const session_delta *d);

typedef struct openai_context {
    const openai_request *req;
    const char *id;       /* "cmpl-…" or "chatcmpl-…" */
    long created;
    const char *model;
    const tokenizer *tok; /* for token texts in logprobs; may be NULL */
    int prompt_tokens;
} openai_context;

char *openai_render_response(const openai_context *ctx, openai_choice *choices, int n);
/* One SSE event ("data: {…}\n\n"), for a delta of choice `index`. role_first: chat's first chunk. */
char *openai_render_chunk(const openai_context *ctx, int index, const session_delta *d, bool role_first);
/* The usage chunk (stream_options.include_usage). */
char *openai_render_usage_chunk(const openai_context *ctx, int completion_tokens);

#endif
