#include "coordinator/accept.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "rpc/rpc.h"

static bool is_stop_token(const scheduler *s, const sequence *q, int32_t id) {
    if (q->ignore_eos) return false;
    if (id == s->model->eos_id) return true;
    for (int i = 0; i < q->n_stop_ids; i++)
        if (q->stop_ids[i] == id) return true;
    return false;
}

/* The sampled token of one sequence, from rank 0's reply. */
typedef struct sampled {
    int32_t token;
    float logprob;
    const float *logits; /* or NULL */
    int n_top;
    const int32_t *top_ids;
    const float *top_logprobs;
} sampled;

static void fail_sequence(sequence *q, int code, const char *message) {
    gen_event ev = {.kind = GEN_EVENT_ERROR, .code = code};
    snprintf(ev.message, sizeof ev.message, "%s", message);
    sequence_push_event(q, &ev);
    q->finished = true;
}

/* One sampled token for q; marks q finished when it is. */
static void accept_token(scheduler *s, sequence *q, const sampled *t) {
    if (t->token < 0) {
        fail_sequence(q, RPC_INTERNAL, "the model produced a NaN or infinite logit (are the weights corrupt?)");
        return;
    }
    q->n_generated++;
    bool stop = is_stop_token(s, q, t->token);
    bool length = q->n_generated >= q->max_tokens;
    if (!stop) sequence_append(q, t->token);
    if (q->has_penalties) seen_tokens_add(&q->seen, t->token, true);
    gen_event ev = {.kind = stop ? GEN_EVENT_DONE : GEN_EVENT_TOKEN, .token = t->token, .logprob = t->logprob};
    if (t->logits) {
        size_t bytes = (size_t)s->model->cfg.vocab_size * sizeof(float);
        ev.logits = xmalloc(bytes);
        memcpy(ev.logits, t->logits, bytes);
    }
    ev.n_top = t->n_top < SAMPLER_MAX_TOP_LOGPROBS ? t->n_top : SAMPLER_MAX_TOP_LOGPROBS;
    if (ev.n_top > 0) {
        memcpy(ev.top_ids, t->top_ids, (size_t)ev.n_top * sizeof *ev.top_ids);
        memcpy(ev.top_logprobs, t->top_logprobs, (size_t)ev.n_top * sizeof *ev.top_logprobs);
    }
    if (stop) ev.finish = "stop";
    sequence_push_event(q, &ev);
    if (!stop && length) {
        gen_event done = {.kind = GEN_EVENT_DONE, .token = -1, .finish = "length"};
        sequence_push_event(q, &done);
    }
    q->finished = stop || length;
}

/* Blocks that the step filled with computed K/V become findable by their
 * tokens (prefix caching, blocks.h). */
static void register_full_blocks(scheduler *s, const sequence *q, int computed_before) {
    int B = s->opt.block_size;
    for (int b = computed_before / B; b < q->n_computed / B && b < q->n_blocks; b++)
        block_pool_register(&s->blocks, q->blocks[b], b > 0 ? q->blocks[b - 1] : -1, q->tokens + (size_t)b * B);
}

void accept_step_results(scheduler *s, const step_plan *plan, const Facet__V1__StepResponse *resp) {
    size_t k = 0, top = 0;
    size_t V = (size_t)s->model->cfg.vocab_size;
    bool logits = resp->n_logits > 0 && resp->n_logits == resp->n_token_ids * V;
    for (int i = 0; i < plan->n; i++) {
        sequence *q = plan->seq[i];
        int before = q->n_computed;
        q->n_computed += plan->chunk[i];
        register_full_blocks(s, q, before);
        if (!plan->sample[i]) continue;
        if (k >= resp->n_token_ids || resp->seq_ids[k] != q->id) {
            char msg[128];
            snprintf(msg, sizeof msg, "rank 0 returned no token for sequence %" PRIu64, q->id);
            fail_sequence(q, RPC_INTERNAL, msg);
            continue;
        }
        int n_top = k < resp->n_n_top ? resp->n_top[k] : 0;
        if (n_top < 0 || top + (size_t)n_top > resp->n_top_ids || top + (size_t)n_top > resp->n_top_logprobs) n_top = 0;
        sampled t = {resp->token_ids[k], k < resp->n_logprobs ? resp->logprobs[k] : 0.0f,
                     logits ? resp->logits + k * V : NULL, n_top, n_top ? resp->top_ids + top : NULL,
                     n_top ? resp->top_logprobs + top : NULL};
        if (!atomic_load(&q->cancelled)) accept_token(s, q, &t);
        top += (size_t)n_top;
        k++;
    }
}
