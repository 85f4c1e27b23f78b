#include "worker/dist_sampler.h"
#include "common/alloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Row records (row_summary, then L.k + L.t cand_rec) are protocol/sample_rows.h's: the CUDA engine makes
 * the same ones on the device. */

/* ---- one rank: the whole vocabulary ---------------------------------------------- */

static double log_sum_exp(const float *row, int n) {
    float max = row[argmax_f32(row, n)];
    return max + log(sum_exp_f32(row, n, max));
}

static void top_logprobs_of(const float *raw, int vocab, double lse, int n, dist_sample_result *r) {
    r->n_top = sampler_top_ids(raw, vocab, n, r->top_ids);
    for (int i = 0; i < r->n_top; i++) r->top_logprobs[i] = (float)((double)raw[r->top_ids[i]] - lse);
}

/* The whole row is here: penalize a copy, pick, and read logprobs off the raw row. */
static void sample_whole_row(sampler *s, const float *raw, float *work, int vocab, const sample_request *q,
                             dist_sample_result *r) {
    memcpy(work, raw, (size_t)vocab * sizeof *work);
    sampler_apply_penalties(work, vocab, 0, &q->params, &q->seen);
    r->token = sampler_pick(s, work, &q->params, q->position);
    double lse = log_sum_exp(raw, vocab);
    r->logprob = r->token >= 0 ? (float)((double)raw[r->token] - lse) : NAN;
    top_logprobs_of(raw, vocab, lse, q->top_logprobs, r);
}

static bool sample_single(int vocab, const float *raw, int m, const sample_request *reqs, dist_sample_result *out,
                          float *full_logits) {
    sampler s;
    sampler_init(&s, vocab);
    float *work = xmalloc((size_t)vocab * sizeof *work);
    for (int i = 0; i < m; i++) {
        sample_whole_row(&s, raw + (size_t)i * vocab, work, vocab, &reqs[i], &out[i]);
        if (full_logits) memcpy(full_logits + (size_t)i * vocab, raw + (size_t)i * vocab, (size_t)vocab * sizeof(float));
    }
    free(work);
    sampler_free(&s);
    return true;
}

/* ---- several ranks -------------------------------------------------------------------- */

static size_t record_bytes(row_layout L) { return row_record_bytes(L); }

/* This rank's summary of a row: its best token, (max, sum exp), and the
 * candidates the decision or the top logprobs may need. */
static void summarize_row(const float *raw, float *work, int n, int vocab_begin, const sample_request *q, row_layout L,
                          row_summary *sum, cand_rec *cands, candidate *scratch) {
    const sampling_params *p = &q->params;
    memcpy(work, raw, (size_t)n * sizeof *work);
    sampler_apply_penalties(work, n, vocab_begin, p, &q->seen);
    int amax = argmax_f32(raw, n);
    sum->max = raw[amax];
    sum->sumexp = sum_exp_f32(raw, n, sum->max);
    int best = argmax_f32(work, n);
    sum->best_value = work[best];
    sum->n_cand = sum->n_top = 0;
    sample_mode mode = sample_mode_of(p);
    if (mode == SAMPLE_GUMBEL) {
        float inv_t = 1.0f / p->temperature;
        double top = -INFINITY;
        for (int i = 0; i < n; i++) { /* the same expression as sampler.c + sample.c */
            float scaled = work[i] * inv_t;
            double v = (double)scaled + gumbel_noise(p->seed, q->position, vocab_begin + i);
            if (v > top) top = v, best = i;
        }
        sum->best_value = top;
    } else if (mode == SAMPLE_TOP_K) { /* ordered by the scaled logit, exactly as one rank orders */
        float inv_t = 1.0f / p->temperature;
        for (int i = 0; i < n; i++) scratch[i] = (candidate){vocab_begin + i, work[i] * inv_t};
        int kept = candidates_top_k(scratch, n, p->top_k < n ? p->top_k : n);
        if (kept > L.k) kept = L.k;
        for (int i = 0; i < kept; i++) {
            int local = scratch[i].id - vocab_begin;
            cands[i] = (cand_rec){scratch[i].id, work[local], raw[local], 0};
        }
        sum->n_cand = kept;
    }
    sum->best_id = vocab_begin + best;
    sum->best_raw = raw[best];
    int32_t ids[SAMPLER_MAX_TOP_LOGPROBS];
    int t = sampler_top_ids(raw, n, q->top_logprobs < L.t ? q->top_logprobs : L.t, ids);
    for (int i = 0; i < t; i++) cands[L.k + i] = (cand_rec){vocab_begin + ids[i], raw[ids[i]], raw[ids[i]], 0};
    sum->n_top = t;
}

static int cand_cmp_raw(const void *a, const void *b) {
    const cand_rec *x = a, *y = b;
    if (x->raw != y->raw) return x->raw > y->raw ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Top alternatives over all ranks' best raw logits (ties: the lower id). */
static void merge_top(const row_summary **sums, int size, row_layout L, int want, double lse, dist_sample_result *r) {
    cand_rec all[256 * SAMPLER_MAX_TOP_LOGPROBS];
    int n = 0;
    for (int k = 0; k < size; k++) {
        const cand_rec *c = (const cand_rec *)(sums[k] + 1) + L.k;
        for (int i = 0; i < sums[k]->n_top; i++) all[n++] = c[i];
    }
    qsort(all, (size_t)n, sizeof *all, cand_cmp_raw);
    r->n_top = n < want ? n : want;
    for (int i = 0; i < r->n_top; i++) {
        r->top_ids[i] = all[i].id;
        r->top_logprobs[i] = (float)((double)all[i].raw - lse);
    }
}

/* The decision every rank reaches from all ranks' summaries of one row. */
static dist_sample_result decide_row(const uint8_t *gathered, size_t rank_stride, int row, int size, row_layout L,
                                     const sample_request *q, candidate *merged) {
    dist_sample_result r = {.token = -1, .logprob = NAN};
    const sampling_params *p = &q->params;
    double M = -INFINITY, Z = 0;
    const row_summary *sums[256] = {0}; /* comm sizes are at most 256 (tp_check) */
    for (int k = 0; k < size; k++) {
        sums[k] = (const row_summary *)(gathered + k * rank_stride + (size_t)row * record_bytes(L));
        if (!isfinite(sums[k]->max) || !isfinite(sums[k]->sumexp) || !isfinite(sums[k]->best_value)) return r;
        if (sums[k]->max > M) M = sums[k]->max;
    }
    for (int k = 0; k < size; k++) Z += sums[k]->sumexp * exp((double)sums[k]->max - M);
    double lse = M + log(Z);
    float chosen_raw = NAN;
    if (sample_mode_of(p) != SAMPLE_TOP_K) { /* greedy or Gumbel */
        int best = 0;
        for (int k = 1; k < size; k++) /* ranks hold increasing ids: ties keep the lower rank, the lower id */
            if (sums[k]->best_value > sums[best]->best_value) best = k;
        r.token = sums[best]->best_id;
        chosen_raw = sums[best]->best_raw;
    } else { /* the union of local top-ks holds the global top-k */
        int n = 0;
        float inv_t = 1.0f / p->temperature;
        for (int k = 0; k < size; k++) {
            const cand_rec *c = (const cand_rec *)(sums[k] + 1);
            for (int i = 0; i < sums[k]->n_cand; i++) merged[n++] = (candidate){c[i].id, c[i].logit * inv_t};
        }
        n = candidates_top_k(merged, n, p->top_k);
        n = candidates_top_p(merged, n, p->top_p);
        r.token = candidates_gumbel_pick(merged, n, p->seed, q->position);
        for (int k = 0; k < size; k++) {
            const cand_rec *c = (const cand_rec *)(sums[k] + 1);
            for (int i = 0; i < sums[k]->n_cand; i++)
                if (c[i].id == r.token) chosen_raw = c[i].raw;
        }
    }
    r.logprob = (float)((double)chosen_raw - lse);
    merge_top(sums, size, L, q->top_logprobs, lse, &r);
    return r;
}

/* Whole raw rows to every rank (top-p without top-k, min_p, return_logits). */
static bool gather_rows(comm *c, const tp_layout *tp, int vocab, const float *raw, int m, float *rows, errbuf *err) {
    int size = comm_size(c), pad = (vocab + size - 1) / size;
    float *send = xcalloc((size_t)m * pad, sizeof *send);
    float *recv = xmalloc((size_t)m * pad * size * sizeof *recv);
    for (int i = 0; i < m; i++) memcpy(send + (size_t)i * pad, raw + (size_t)i * tp->vocab_size, (size_t)tp->vocab_size * sizeof(float));
    bool ok = comm_allgather(c, send, recv, (size_t)m * pad * sizeof(float), err);
    for (int q = 0; ok && q < size; q++) {
        int64_t b, e;
        tp_split(vocab, q, size, &b, &e);
        for (int i = 0; i < m; i++)
            memcpy(rows + (size_t)i * vocab + b, recv + ((size_t)q * m + i) * pad, (size_t)(e - b) * sizeof(float));
    }
    free(send);
    free(recv);
    return ok;
}

row_layout dist_sample_layout(const sample_request *reqs, int m, int slice) {
    row_layout L = {0, 0};
    for (int i = 0; i < m; i++) {
        if (sample_mode_of(&reqs[i].params) == SAMPLE_TOP_K && reqs[i].params.top_k > L.k) L.k = reqs[i].params.top_k;
        if (reqs[i].top_logprobs > L.t) L.t = reqs[i].top_logprobs;
    }
    if (L.k > slice) L.k = slice;
    if (L.t > SAMPLER_MAX_TOP_LOGPROBS) L.t = SAMPLER_MAX_TOP_LOGPROBS;
    return L;
}

void dist_summarize_row(const float *raw, int n, int vocab_begin, const sample_request *q, row_layout L, void *record,
                        float *work, candidate *scratch) {
    row_summary *sum = record;
    memset(record, 0, record_bytes(L));
    summarize_row(raw, work, n, vocab_begin, q, L, sum, (cand_rec *)(sum + 1), scratch);
}

bool dist_sample_summaries_ok(const sample_request *reqs, int m) {
    for (int i = 0; i < m; i++)
        if (sample_mode_of(&reqs[i].params) == SAMPLE_FULL) return false;
    return true;
}

/* Every rank's records of the step (allgather; T = 1: this rank's), then each row's decision. */
static bool decide_from_records(comm *c, const uint8_t *mine, int m, row_layout L, const sample_request *reqs,
                                dist_sample_result *out, candidate *scratch, errbuf *err) {
    int size = c ? comm_size(c) : 1;
    size_t stride = (size_t)m * record_bytes(L);
    uint8_t *all = size > 1 ? xmalloc(stride * size) : NULL;
    bool ok = size == 1 || comm_allgather(c, mine, all, stride, err);
    for (int i = 0; ok && i < m; i++)
        if (sample_mode_of(&reqs[i].params) != SAMPLE_FULL)
            out[i] = decide_row(all ? all : mine, stride, i, size, L, &reqs[i], scratch);
    free(all);
    return ok;
}

bool dist_sample_from_summaries(comm *c, const void *records, int m, row_layout L, const sample_request *reqs,
                                dist_sample_result *out, errbuf *err) {
    if (m == 0) return true;
    if (!dist_sample_summaries_ok(reqs, m))
        return errbuf_set(err, "a row samples with min_p or top_p alone: its raw row is needed, not a summary");
    int size = c ? comm_size(c) : 1;
    candidate *scratch = xmalloc(((size_t)L.k * size + 1) * sizeof *scratch);
    bool ok = decide_from_records(c, records, m, L, reqs, out, scratch, err);
    free(scratch);
    return ok;
}

bool dist_sample(comm *c, const tp_layout *tp, int vocab, const float *raw, int m, const sample_request *reqs,
                 dist_sample_result *out, float *full_logits, errbuf *err) {
    if (m == 0) return true;
    if (!c || comm_size(c) == 1) return sample_single(vocab, raw, m, reqs, out, full_logits);
    int size = comm_size(c);
    row_layout L = dist_sample_layout(reqs, m, tp->vocab_size);
    bool any_full = full_logits != NULL || !dist_sample_summaries_ok(reqs, m);
    uint8_t *mine = xcalloc(1, (size_t)m * record_bytes(L));
    int scratch_n = tp->vocab_size > L.k * size ? tp->vocab_size : L.k * size;
    candidate *scratch = xmalloc((size_t)scratch_n * sizeof *scratch);
    float *work = xmalloc((size_t)(tp->vocab_size > vocab ? tp->vocab_size : vocab) * sizeof *work);
    for (int i = 0; i < m; i++) {
        row_summary *sum = (row_summary *)(mine + (size_t)i * record_bytes(L));
        summarize_row(raw + (size_t)i * tp->vocab_size, work, tp->vocab_size, tp->vocab_begin, &reqs[i], L, sum,
                      (cand_rec *)(sum + 1), scratch);
    }
    bool ok = decide_from_records(c, mine, m, L, reqs, out, scratch, err);
    float *rows = NULL;
    if (ok && any_full) {
        rows = full_logits ? full_logits : xmalloc((size_t)m * vocab * sizeof *rows);
        ok = gather_rows(c, tp, vocab, raw, m, rows, err);
    }
    sampler s = {0};
    for (int i = 0; ok && i < m; i++) {
        if (sample_mode_of(&reqs[i].params) != SAMPLE_FULL) continue;
        if (!s.cand) sampler_init(&s, vocab);
        sample_whole_row(&s, rows + (size_t)i * vocab, work, vocab, &reqs[i], &out[i]);
    }
    sampler_free(&s);
    if (rows && rows != full_logits) free(rows);
    free(mine), free(scratch), free(work);
    return ok;
}
