#include "coordinator/step_rpc.h"

#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "protocol/step.h"

void step_rpc_build(scheduler *s, const step_plan *plan, uint64_t epoch, Facet__V1__StepRequest *r) {
    size_t tokens = 0, blocks = 0, seen = 0;
    for (int i = 0; i < plan->n; i++) {
        const sequence *q = plan->seq[i];
        tokens += (size_t)plan->chunk[i];
        blocks += (size_t)q->n_blocks;
        if (plan->sample[i] && q->has_penalties) seen += (size_t)q->seen.n;
    }
    step_request_alloc(r, (size_t)plan->n, tokens, blocks, seen);
    r->epoch = epoch;
    r->step_id = ++s->next_step_id;
    size_t t = 0, b = 0, p = 0;
    for (int i = 0; i < plan->n; i++) {
        const sequence *q = plan->seq[i];
        r->seq_ids[i] = q->id;
        r->start_pos[i] = q->n_computed;
        r->num_tokens[i] = plan->chunk[i];
        r->block_table_len[i] = q->n_blocks;
        r->sample[i] = plan->sample[i];
        step_request_set_sampling(r, (size_t)i, &q->sampling);
        r->top_logprobs[i] = plan->sample[i] ? q->top_logprobs : 0;
        r->return_logits |= q->return_logits && plan->sample[i];
        memcpy(r->token_ids + t, q->tokens + q->n_computed, (size_t)plan->chunk[i] * sizeof *r->token_ids);
        memcpy(r->block_ids + b, q->blocks, (size_t)q->n_blocks * sizeof *r->block_ids);
        t += (size_t)plan->chunk[i];
        b += (size_t)q->n_blocks;
        r->penalty_len[i] = plan->sample[i] && q->has_penalties ? q->seen.n : 0;
        if (r->penalty_len[i] > 0) {
            memcpy(r->penalty_ids + p, q->seen.ids, (size_t)r->penalty_len[i] * sizeof *r->penalty_ids);
            memcpy(r->penalty_counts + p, q->seen.counts, (size_t)r->penalty_len[i] * sizeof *r->penalty_counts);
        }
        p += (size_t)r->penalty_len[i];
    }
}

void step_streams_close(step_streams *ss) {
    rpc_stream_set_free(ss->set);
    ss->set = NULL;
    ss->epoch = 0;
}

/* The streams of g's group: the ones kept, or new ones (the old group's closed: their workers' handlers end). */
static rpc_stream_set *streams_of(step_streams *ss, const group_view *g) {
    if (ss->set && ss->epoch == g->epoch) return ss->set;
    step_streams_close(ss);
    ss->set = rpc_stream_set_create(g->channels, g->size, RPC_WORKER_STEP_STREAM);
    ss->epoch = g->epoch;
    return ss->set;
}

/* A worker's StepStreamReply as a unary Step's outcome: its status and message in call. The reply, unpacked
 * once, is returned (NULL when there is none); its StepResponse is the step's result on rank 0. */
static Facet__V1__StepStreamReply *unwrap_reply(rpc_fanout *call, const group_view *g, int rank) {
    if (call->code != RPC_OK) return NULL;
    Facet__V1__StepStreamReply *reply = facet__v1__step_stream_reply__unpack(NULL, call->response_len, call->response);
    const char *target = rpc_channel_target(g->channels[rank]);
    if (!reply) {
        call->code = RPC_INTERNAL;
        errbuf_set(&call->err, "%s to %s: a reply that is not a StepStreamReply", RPC_WORKER_STEP_STREAM, target);
    } else if (reply->code != RPC_OK) {
        call->code = reply->code;
        errbuf_set(&call->err, "%s to %s: %s: %s", RPC_WORKER_STEP_STREAM, target, rpc_code_name(reply->code),
                   reply->message);
    } else if (!reply->response) {
        call->code = RPC_INTERNAL;
        errbuf_set(&call->err, "%s to %s: OK without a StepResponse", RPC_WORKER_STEP_STREAM, target);
    }
    return reply;
}

void step_rpc_send(step_streams *ss, const group_view *g, const Facet__V1__StepRequest *req, int timeout_ms,
                   rpc_cancel *cancel, step_result *out) {
    memset(out, 0, sizeof *out);
    for (int r = 0; r < g->size; r++) out->calls[r] = (rpc_fanout){.channel = g->channels[r], .request = &req->base};
    double t0 = clock_now_s();
    rpc_stream_set_exchange(streams_of(ss, g), out->calls, timeout_ms, cancel);
    out->ok = true;
    for (int r = 0; r < g->size; r++) {
        Facet__V1__StepStreamReply *reply = unwrap_reply(&out->calls[r], g, r);
        out->ok &= out->calls[r].code == RPC_OK;
        if (r == 0) out->reply0 = reply; /* rank 0's carries the tokens */
        else if (reply) facet__v1__step_stream_reply__free_unpacked(reply, NULL);
    }
    out->seconds = clock_now_s() - t0;
    out->resp = out->ok ? out->reply0->response : NULL;
}

void step_result_free(step_result *r, int size) {
    if (r->reply0) facet__v1__step_stream_reply__free_unpacked(r->reply0, NULL); /* and resp, inside it */
    for (int i = 0; i < size; i++) free(r->calls[i].response);
    r->reply0 = NULL;
    r->resp = NULL;
}
