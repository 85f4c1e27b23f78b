/* step_exec.c — a step, from the wire to the engine and back: the
 * StepRequest's flat arrays become an engine batch, the engine computes this
 * rank's logits, the distributed sampler picks each sampled sequence's token
 * (the same on every rank), and rank 0 writes the StepResponse. */
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "protocol/step.h"
#include "worker/dist_sampler.h"
#include "worker/worker_impl.h"

bool worker_allreduce(void *ctx, float *buf, size_t n, errbuf *err) {
    worker *w = ctx;
    if (!w->comm) return true; /* T = 1 */
    double t0 = clock_now_s();
    bool ok = comm_allreduce_sum(w->comm, buf, n, err);
    w->comm_s += clock_now_s() - t0;
    if (!ok) w->step_comm_failed = true;
    return ok;
}

/* The step's logits buffer, reused across steps: a fresh 64 MB (64 rows × 256k) costs ~40 ms of page faults
 * per step on the 2-core dev VM, against ~1.5 ms to touch a warm one — more than a GPU decode step itself. */
static float *step_logits(worker *w, size_t floats) {
    if (floats + 1 > w->logits_cap) {
        free(w->logits);
        w->logits_cap = floats + 1;
        w->logits = xmalloc(w->logits_cap * sizeof *w->logits);
    }
    return w->logits;
}

/* The engine's view of the step: per sequence its positions and block table. (n) */
static engine_seq *batch_of(const Facet__V1__StepRequest *r, int *n_sampled) {
    int n = (int)r->n_seq_ids;
    engine_seq *seqs = xcalloc((size_t)n + 1, sizeof *seqs);
    *n_sampled = 0;
    for (int i = 0, tb = 0; i < n; i++) {
        seqs[i] = (engine_seq){r->start_pos[i], r->num_tokens[i], (const int32_t *)r->block_ids + tb,
                               r->block_table_len[i], r->sample[i] ? 1 : 0};
        tb += r->block_table_len[i];
        *n_sampled += r->sample[i] ? 1 : 0;
    }
    return seqs;
}

/* What to sample for each sampled sequence: parameters, the position of the
 * new token (the noise key), seen tokens, top alternatives. (m) */
static sample_request *sample_requests_of(const Facet__V1__StepRequest *r, int m) {
    sample_request *reqs = xcalloc((size_t)m + 1, sizeof *reqs);
    for (size_t i = 0, k = 0, seen = 0; i < r->n_seq_ids; i++) {
        if (r->sample[i]) {
            penalty_tokens pen = {NULL, NULL, 0}; /* no arithmetic on the NULL of an empty array */
            if (r->penalty_len[i] > 0) pen = (penalty_tokens){r->penalty_ids + seen, r->penalty_counts + seen, r->penalty_len[i]};
            reqs[k++] = (sample_request){step_request_sampling(r, i), (uint64_t)r->start_pos[i] + (uint64_t)r->num_tokens[i],
                                         pen, r->top_logprobs[i]};
        }
        seen += (size_t)r->penalty_len[i];
    }
    return reqs;
}

/* Rank 0's reply: the sampled tokens in step order. */
static void fill_response(const Facet__V1__StepRequest *r, const dist_sample_result *res, int m,
                          Facet__V1__StepResponse *resp) {
    size_t tops = 0;
    for (int k = 0; k < m; k++) tops += (size_t)res[k].n_top;
    step_response_alloc(resp, (size_t)m, tops);
    resp->n_seq_ids = resp->n_token_ids = resp->n_logprobs = resp->n_n_top = (size_t)m;
    for (size_t i = 0, k = 0; i < r->n_seq_ids; i++) {
        if (!r->sample[i]) continue;
        resp->seq_ids[k] = r->seq_ids[i];
        resp->token_ids[k] = res[k].token;
        resp->logprobs[k] = res[k].logprob;
        resp->n_top[k] = res[k].n_top;
        memcpy(resp->top_ids + resp->n_top_ids, res[k].top_ids, (size_t)res[k].n_top * sizeof *resp->top_ids);
        memcpy(resp->top_logprobs + resp->n_top_logprobs, res[k].top_logprobs, (size_t)res[k].n_top * sizeof(float));
        resp->n_top_ids += (size_t)res[k].n_top;
        resp->n_top_logprobs += (size_t)res[k].n_top;
        k++;
    }
}

/* The step through a CUDA engine that summarizes its rows on the device: only the summaries come back,
 * and the ranks decide from them (the logits stay where they are). */
static int step_on_device(worker *w, const engine_batch *b, const sample_request *reqs, int m, row_layout L,
                          dist_sample_result *res, double *forward_end, errbuf *err) {
    void *records = step_logits(w, ((size_t)m * row_record_bytes(L) + sizeof(float) - 1) / sizeof(float));
    bool ok = engine_forward_summaries(w->engine, b, reqs, L, records, err);
    *forward_end = clock_now_s();
    if (!ok) return w->step_comm_failed ? RPC_ABORTED : RPC_INVALID_ARGUMENT;
    return dist_sample_from_summaries(w->comm, records, m, L, reqs, res, err) ? RPC_OK : RPC_ABORTED;
}

/* Summaries on the device serve every row but those sampled from whole raw rows (min_p, top_p alone), a
 * request for the logits themselves, and candidate lists beyond what the device holds. */
static bool summaries_serve(const worker *w, const Facet__V1__StepRequest *r, const sample_request *reqs, int m,
                            row_layout *L) {
    if (!engine_summarizes_on_device(w->engine) || r->return_logits || !dist_sample_summaries_ok(reqs, m)) return false;
    *L = dist_sample_layout(reqs, m, engine_weights(w->engine)->tp.vocab_size);
    return L->k <= SAMPLE_ROWS_MAX_DEVICE_K;
}

int step_exec(worker *w, const Facet__V1__StepRequest *r, Facet__V1__StepResponse *resp, errbuf *err) {
    const model_weights *mw = engine_weights(w->engine);
    int m;
    engine_seq *seqs = batch_of(r, &m);
    engine_batch b = {(int)r->n_seq_ids, seqs, (const int32_t *)r->token_ids};
    sample_request *reqs = sample_requests_of(r, m);
    dist_sample_result *res = xcalloc((size_t)m + 1, sizeof *res);
    float *full = r->return_logits ? xmalloc(((size_t)m * mw->cfg.vocab_size + 1) * sizeof *full) : NULL;
    w->comm_s = 0;
    w->step_comm_failed = false;
    double t0 = clock_now_s(), t1;
    int code = RPC_OK;
    row_layout L;
    if (summaries_serve(w, r, reqs, m, &L)) {
        code = step_on_device(w, &b, reqs, m, L, res, &t1, err);
    } else {
        float *logits = step_logits(w, (size_t)m * mw->tp.vocab_size);
        if (!engine_forward(w->engine, &b, logits, err)) code = w->step_comm_failed ? RPC_ABORTED : RPC_INVALID_ARGUMENT;
        t1 = clock_now_s();
        if (code == RPC_OK && !dist_sample(w->comm, &mw->tp, mw->cfg.vocab_size, logits, m, reqs, res, full, err))
            code = RPC_ABORTED;
    }
    if (code == RPC_OK && w->rank == 0) {
        fill_response(r, res, m, resp);
        if (full) {
            resp->n_logits = (size_t)m * mw->cfg.vocab_size;
            resp->logits = full;
            full = NULL;
        }
    }
    resp->forward_ms = (t1 - t0 - w->comm_s) * 1e3;
    resp->comm_ms = w->comm_s * 1e3;
    resp->sample_ms = (clock_now_s() - t1) * 1e3;
    free(full);
    free(res), free(reqs), free(seqs);
    return code;
}
