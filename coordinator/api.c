/* api.c — the public gRPC service facet.v1.Facet and grpc.health.v1.Health
 * (proto/facet/v1/generate.proto, docs/PROTOCOL.md). */
#define _GNU_SOURCE /* strndup */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "common/secret.h"
#include "coordinator/api.h"
#include "coordinator/metrics.h"
#include "coordinator/session.h"
#include "facet/v1/generate.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"
#include "protocol/protocol.h"
#include "tokenizer/chat.h"

#define DEFAULT_MAX_TOKENS 16
#define EVENT_POLL_MS 100

/* The prompt's ids: given, or tokenized (with <bos>, or the chat template). */
static bool prompt_ids(const frontend *fe, const Facet__V1__GenerateRequest *req, token_list *ids, int *code, errbuf *err) {
    *code = RPC_INVALID_ARGUMENT;
    if (req->input_case == FACET__V1__GENERATE_REQUEST__INPUT_TOKEN_IDS) {
        for (size_t i = 0; req->token_ids && i < req->token_ids->n_ids; i++) token_list_push(ids, req->token_ids->ids[i]);
        return true;
    }
    if (req->input_case != FACET__V1__GENERATE_REQUEST__INPUT_PROMPT || !req->prompt[0])
        return errbuf_set(err, "the prompt is empty (give prompt or token_ids)");
    if (!fe->model->tok) {
        *code = RPC_FAILED_PRECONDITION;
        return errbuf_set(err, "this model has no tokenizer.model: give token_ids instead of prompt");
    }
    if (req->chat) {
        chat_message m = {"user", req->prompt, strlen(req->prompt)};
        return chat_encode(fe->model->tok, &m, 1, ids, err);
    }
    if (tokenizer_bos_id(fe->model->tok) >= 0) token_list_push(ids, tokenizer_bos_id(fe->model->tok));
    return tokenizer_encode(fe->model->tok, req->prompt, strlen(req->prompt), 0, ids, err);
}

/* The API key, when one is set, as gRPC metadata "authorization: Bearer KEY"
 * (compared in constant time). False after answering UNAUTHENTICATED. */
static bool authorized(const frontend *fe, rpc_call *call) {
    if (!fe->api_key) return true;
    char value[SECRET_MAX + 8];
    const char *v = rpc_call_metadata(call, "authorization", value, sizeof value);
    if (v && strncmp(v, "Bearer ", 7) == 0 && secret_equal(v + 7, fe->api_key)) return true;
    rpc_call_finish(call, RPC_UNAUTHENTICATED, "a valid API key is required (metadata authorization: Bearer <key>)");
    return false;
}

static gen_request build_request(const frontend *fe, const Facet__V1__GenerateRequest *req, const token_list *ids,
                                 int32_t *stop, int *n_stop) {
    const Facet__V1__SamplingParams *sp = req->sampling;
    *n_stop = 0;
    for (size_t i = 0; i < req->n_stop_token_ids && *n_stop < 63; i++) stop[(*n_stop)++] = req->stop_token_ids[i];
    if (req->chat && fe->model->eot_id >= 0) stop[(*n_stop)++] = fe->model->eot_id;
    gen_request g = {
        .prompt = ids->ids,
        .prompt_len = ids->n,
        .max_tokens = req->max_tokens ? (int)req->max_tokens : DEFAULT_MAX_TOKENS,
        .ignore_eos = req->ignore_eos,
        .stop_ids = stop,
        .n_stop_ids = *n_stop,
        .return_logits = req->return_logits,
        .top_logprobs = req->logprobs ? (int)req->top_logprobs : 0,
    };
    if (sp) {
        g.sampling = (sampling_params){sp->temperature, sp->top_k, sp->top_p > 0 ? sp->top_p : 1.0f, sp->seed, sp->min_p,
                                       sp->presence_penalty, sp->frequency_penalty, sp->repetition_penalty};
    } else {
        g.sampling = sampling_params_greedy();
    }
    return g;
}

/* One GenerateResponse per delta; false when the client is gone. */
static bool send_delta(const frontend *fe, rpc_call *call, const Facet__V1__GenerateRequest *req, const session_delta *d,
                       const token_list *prompt, bool first, int completion) {
    Facet__V1__GenerateResponse msg = FACET__V1__GENERATE_RESPONSE__INIT;
    Facet__V1__Usage usage = FACET__V1__USAGE__INIT;
    Facet__V1__TopLogprobs top = FACET__V1__TOP_LOGPROBS__INIT, *tops[1] = {&top};
    int32_t token = d->token;
    float logprob = d->logprob;
    int32_t top_ids[SAMPLER_MAX_TOP_LOGPROBS];
    float top_lps[SAMPLER_MAX_TOP_LOGPROBS];
    if (first) msg.n_prompt_ids = (size_t)prompt->n, msg.prompt_ids = prompt->ids;
    if (d->has_token) {
        msg.n_token_ids = 1, msg.token_ids = &token;
        if (req->logprobs) msg.n_logprobs = 1, msg.logprobs = &logprob;
        if (req->logprobs && req->top_logprobs) {
            memcpy(top_ids, d->top_ids, sizeof top_ids);
            memcpy(top_lps, d->top_logprobs, sizeof top_lps);
            top.n_ids = top.n_logprobs = (size_t)d->n_top, top.ids = top_ids, top.logprobs = top_lps;
            msg.n_top_logprobs = 1, msg.top_logprobs = tops;
        }
        if (d->logits) msg.n_logits = (size_t)fe->model->cfg.vocab_size, msg.logits = d->logits;
    }
    char *text = xstrndup(d->text, d->text_len);
    msg.text = text;
    if (d->finish) {
        msg.finish_reason = strcmp(d->finish, "stop") == 0 ? FACET__V1__FINISH_REASON__FINISH_REASON_STOP
                                                           : FACET__V1__FINISH_REASON__FINISH_REASON_LENGTH;
        usage.prompt_tokens = (uint32_t)prompt->n;
        usage.completion_tokens = (uint32_t)completion;
        msg.usage = &usage;
    }
    bool ok = rpc_call_send_message(call, &msg.base);
    free(text);
    return ok;
}

void api_handle_generate(void *ctx, rpc_call *call, const ProtobufCMessage *request) {
    const frontend *fe = ctx;
    if (!authorized(fe, call)) return;
    const Facet__V1__GenerateRequest *req = (const Facet__V1__GenerateRequest *)request;
    token_list ids;
    token_list_init(&ids);
    errbuf err;
    int code = RPC_OK;
    session *s = NULL;
    if (req->n_stop > SESSION_MAX_STOP) {
        code = RPC_INVALID_ARGUMENT;
        errbuf_set(&err, "at most %d stop strings", SESSION_MAX_STOP);
    } else if (req->top_logprobs > SAMPLER_MAX_TOP_LOGPROBS) {
        code = RPC_INVALID_ARGUMENT;
        errbuf_set(&err, "top_logprobs must be at most %d", SAMPLER_MAX_TOP_LOGPROBS);
    } else if (prompt_ids(fe, req, &ids, &code, &err)) {
        int32_t stop[64];
        int n_stop;
        gen_request g = build_request(fe, req, &ids, stop, &n_stop);
        s = session_start(fe, &g, (const char *const *)req->stop, (int)req->n_stop, &code, &err);
    } else {
        metrics_request_done(fe->metrics, OUTCOME_INVALID, 0, 0, -1, -1);
    }
    if (!s) {
        rpc_call_finish(call, code, err.msg);
        token_list_free(&ids);
        return;
    }
    bool first = true;
    for (;;) {
        session_delta d;
        if (!session_next(s, &d, EVENT_POLL_MS)) {
            if (rpc_call_cancelled(call)) {
                session_cancel(s);
                break;
            }
            continue;
        }
        if (d.error_code) {
            rpc_call_finish(call, d.error_code, d.error);
            break;
        }
        bool sent = send_delta(fe, call, req, &d, &ids, first, session_completion_tokens(s));
        first = false;
        free(d.logits);
        if (!sent) {
            session_cancel(s);
            break;
        }
        if (d.finish) break;
    }
    rpc_call_finish(call, RPC_OK, NULL);
    session_end(s);
    token_list_free(&ids);
}

void api_handle_tokenize(void *ctx, rpc_call *call, const ProtobufCMessage *request) {
    const frontend *fe = ctx;
    const Facet__V1__TokenizeRequest *req = (const Facet__V1__TokenizeRequest *)request;
    if (!authorized(fe, call)) return;
    if (!fe->model->tok) return rpc_call_finish(call, RPC_FAILED_PRECONDITION, "this model has no tokenizer.model");
    token_list ids;
    token_list_init(&ids);
    errbuf err;
    bool ok;
    if (req->chat) {
        chat_message m = {"user", req->text, strlen(req->text)};
        ok = chat_encode(fe->model->tok, &m, 1, &ids, &err);
    } else {
        if (req->add_bos && tokenizer_bos_id(fe->model->tok) >= 0) token_list_push(&ids, tokenizer_bos_id(fe->model->tok));
        ok = tokenizer_encode(fe->model->tok, req->text, strlen(req->text), 0, &ids, &err);
    }
    if (ok) {
        Facet__V1__TokenizeResponse resp = FACET__V1__TOKENIZE_RESPONSE__INIT;
        resp.n_ids = (size_t)ids.n;
        resp.ids = ids.ids;
        rpc_call_reply(call, &resp.base);
    } else {
        rpc_call_finish(call, RPC_INVALID_ARGUMENT, err.msg);
    }
    token_list_free(&ids);
}

void api_handle_model_info(void *ctx, rpc_call *call, const ProtobufCMessage *request) {
    const frontend *fe = ctx;
    (void)request;
    if (!authorized(fe, call)) return;
    Facet__V1__ModelInfoResponse resp = FACET__V1__MODEL_INFO_RESPONSE__INIT;
    resp.model = (char *)fe->model->name; /* the name clients use: never a path on the server */
    resp.architecture = "GemmaForCausalLM";
    resp.vocab_size = (uint32_t)fe->model->cfg.vocab_size;
    resp.context_length = (uint32_t)fe->model->cfg.max_position;
    resp.num_layers = (uint32_t)fe->model->cfg.num_layers;
    resp.hidden_size = (uint32_t)fe->model->cfg.hidden_size;
    resp.num_heads = (uint32_t)fe->model->cfg.num_heads;
    resp.num_kv_heads = (uint32_t)fe->model->cfg.num_kv_heads;
    resp.tp_size = (uint32_t)fe->tp;
    resp.protocol_version = FACET_PROTOCOL_VERSION;
    coordinator_stats st;
    scheduler_stats(fe->sched, &st);
    resp.ready = st.ready;
    resp.epoch = st.epoch;
    rpc_call_reply(call, &resp.base);
}

void api_handle_health_check(void *ctx, rpc_call *call, const ProtobufCMessage *request) {
    const frontend *fe = ctx;
    const char *service = ((const Grpc__Health__V1__HealthCheckRequest *)request)->service;
    Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    if (service[0] && strcmp(service, "facet.v1.Facet") != 0) {
        resp.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
    } else {
        resp.status = scheduler_ready(fe->sched, NULL, 0) ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                                                     : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
    }
    rpc_call_reply(call, &resp.base);
}

void api_handle_health_watch(void *ctx, rpc_call *call, const ProtobufCMessage *request) {
    (void)ctx, (void)request;
    rpc_call_finish(call, RPC_UNIMPLEMENTED, "Watch is not implemented: poll Check");
}
