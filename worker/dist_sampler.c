#include "worker/dist_sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* What one rank says about one row. */
typedef struct row_summary {
    double best_value; /* greedy: the logit; Gumbel: logit/T + noise */
    double sumexp;     /* sum of exp(l - max) over the slice */
    float max;         /* raw logit max over the slice */
    float best_logit;  /* raw logit of the best token */
    int32_t best_id;   /* global id */
    int32_t n_cand;    /* candidates that follow (top-k rows) */
} row_summary;

typedef struct cand_raw {
    int32_t id;
    float logit; /* raw */
} cand_raw;

typedef enum { MODE_GREEDY, MODE_GUMBEL, MODE_TOP_K, MODE_FULL } sample_mode;

static sample_mode mode_of(const sampling_params *p) {
    if (p->temperature == 0.0f) return MODE_GREEDY;
    if (p->top_k > 0) return MODE_TOP_K;
    if (p->top_p < 1.0f) return MODE_FULL;
    return MODE_GUMBEL;
}

/* ---- one rank: the whole vocabulary ----------------------------------------- */

static float log_softmax_at(const float *row, int n, int id) {
    float max = row[argmax_f32(row, n)];
    double s = 0;
    for (int i = 0; i < n; i++) s += exp((double)row[i] - max);
    return (float)((double)row[id] - max - log(s));
}

static bool sample_single(int vocab, const float *logits, int m, const sampling_params *params,
                          const uint64_t *positions, dist_sample_result *out, float *full_logits) {
    sampler s;
    sampler_init(&s, vocab);
    for (int i = 0; i < m; i++) {
        const float *row = logits + (size_t)i * vocab;
        out[i].token = sampler_pick(&s, row, &params[i], positions[i]);
        out[i].logprob = out[i].token >= 0 ? log_softmax_at(row, vocab, out[i].token) : NAN;
        if (full_logits) memcpy(full_logits + (size_t)i * vocab, row, (size_t)vocab * sizeof(float));
    }
    sampler_free(&s);
    return true;
}

/* ---- several ranks ------------------------------------------------------------ */

/* This rank's summary of a row (and, for top-k, its best k candidates). */
static void summarize_row(const float *row, int n, int vocab_begin, const sampling_params *p, uint64_t position,
                          int k, row_summary *sum, cand_raw *cands, candidate *scratch) {
    int amax = argmax_f32(row, n);
    sum->max = row[amax];
    sum->sumexp = 0;
    for (int i = 0; i < n; i++) sum->sumexp += exp((double)row[i] - sum->max);
    sum->best_id = vocab_begin + amax;
    sum->best_logit = row[amax];
    sum->best_value = row[amax];
    sum->n_cand = 0;
    sample_mode mode = mode_of(p);
    if (mode == MODE_GUMBEL) {
        float inv_t = 1.0f / p->temperature;
        double best = -INFINITY;
        for (int i = 0; i < n; i++) { /* the same expression as sampler.c + sample.c */
            float scaled = row[i] * inv_t;
            double v = (double)scaled + gumbel_noise(p->seed, position, vocab_begin + i);
            if (v > best) best = v, sum->best_id = vocab_begin + i, sum->best_logit = row[i];
        }
        sum->best_value = best;
    } else if (mode == MODE_TOP_K) { /* ordered by the scaled logit, exactly as one rank orders */
        float inv_t = 1.0f / p->temperature;
        for (int i = 0; i < n; i++) scratch[i] = (candidate){vocab_begin + i, row[i] * inv_t};
        int kept = candidates_top_k(scratch, n, p->top_k < n ? p->top_k : n);
        if (kept > k) kept = k;
        for (int i = 0; i < kept; i++) cands[i] = (cand_raw){scratch[i].id, row[scratch[i].id - vocab_begin]};
        sum->n_cand = kept;
    }
}

static size_t record_bytes(int k) { return sizeof(row_summary) + (size_t)k * sizeof(cand_raw); }

/* The decision every rank reaches from all ranks' summaries of one row. */
static dist_sample_result decide_row(const uint8_t *gathered, size_t rank_stride, int row, int size, int k,
                                     const sampling_params *p, uint64_t position, candidate *merged) {
    dist_sample_result r = {-1, NAN};
    double M = -INFINITY, Z = 0;
    const row_summary *sums[256] = {0}; /* comm sizes are at most 256 (tp_check) */
    for (int q = 0; q < size; q++) {
        sums[q] = (const row_summary *)(gathered + q * rank_stride + (size_t)row * record_bytes(k));
        if (!isfinite(sums[q]->max) || !isfinite(sums[q]->sumexp)) return r;
        if (sums[q]->max > M) M = sums[q]->max;
    }
    for (int q = 0; q < size; q++) Z += sums[q]->sumexp * exp((double)sums[q]->max - M);
    double lse = M + log(Z);
    float chosen_logit = NAN;
    sample_mode mode = mode_of(p);
    if (mode == MODE_GREEDY || mode == MODE_GUMBEL) {
        int best = 0;
        for (int q = 1; q < size; q++) /* ranks hold increasing ids: ties keep the lower rank, the lower id */
            if (sums[q]->best_value > sums[best]->best_value) best = q;
        r.token = sums[best]->best_id;
        chosen_logit = sums[best]->best_logit;
    } else { /* MODE_TOP_K: the union of local top-ks holds the global top-k */
        int n = 0;
        float inv_t = 1.0f / p->temperature;
        for (int q = 0; q < size; q++) {
            const cand_raw *c = (const cand_raw *)(sums[q] + 1);
            for (int i = 0; i < sums[q]->n_cand; i++) merged[n++] = (candidate){c[i].id, c[i].logit * inv_t};
        }
        n = candidates_top_k(merged, n, p->top_k);
        n = candidates_top_p(merged, n, p->top_p);
        r.token = candidates_gumbel_pick(merged, n, p->seed, position);
        for (int q = 0; q < size; q++) { /* the raw logit, for the logprob */
            const cand_raw *c = (const cand_raw *)(sums[q] + 1);
            for (int i = 0; i < sums[q]->n_cand; i++)
                if (c[i].id == r.token) chosen_logit = c[i].logit;
        }
    }
    r.logprob = (float)((double)chosen_logit - lse);
    return r;
}

/* Whole rows to every rank (top-p without top-k, and return_logits). */
static bool gather_rows(comm *c, const tp_layout *tp, int vocab, const float *logits, int m, float *rows, errbuf *err) {
    int size = comm_size(c), pad = (vocab + size - 1) / size;
    float *send = calloc((size_t)m * pad, sizeof *send);
    float *recv = malloc((size_t)m * pad * size * sizeof *recv);
    for (int i = 0; i < m; i++) memcpy(send + (size_t)i * pad, logits + (size_t)i * tp->vocab_size, (size_t)tp->vocab_size * sizeof(float));
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

bool dist_sample(comm *c, const tp_layout *tp, int vocab, const float *logits, int m, const sampling_params *params,
                 const uint64_t *positions, dist_sample_result *out, float *full_logits, errbuf *err) {
    if (m == 0) return true;
    if (!c || comm_size(c) == 1) return sample_single(vocab, logits, m, params, positions, out, full_logits);
    int size = comm_size(c), k = 0;
    bool any_full = full_logits != NULL;
    for (int i = 0; i < m; i++) {
        if (mode_of(&params[i]) == MODE_TOP_K && params[i].top_k > k) k = params[i].top_k;
        any_full |= mode_of(&params[i]) == MODE_FULL;
    }
    if (k > tp->vocab_size) k = tp->vocab_size;
    size_t stride = (size_t)m * record_bytes(k);
    uint8_t *mine = calloc(1, stride), *all = malloc(stride * size);
    candidate *scratch = malloc((size_t)(tp->vocab_size > k * size ? tp->vocab_size : k * size) * sizeof *scratch);
    for (int i = 0; i < m; i++) {
        row_summary *sum = (row_summary *)(mine + (size_t)i * record_bytes(k));
        summarize_row(logits + (size_t)i * tp->vocab_size, tp->vocab_size, tp->vocab_begin, &params[i], positions[i], k,
                      sum, (cand_raw *)(sum + 1), scratch);
    }
    bool ok = comm_allgather(c, mine, all, stride, err);
    float *rows = NULL;
    if (ok && any_full) {
        rows = full_logits ? full_logits : malloc((size_t)m * vocab * sizeof *rows);
        ok = gather_rows(c, tp, vocab, logits, m, rows, err);
    }
    for (int i = 0; ok && i < m; i++) {
        if (mode_of(&params[i]) == MODE_FULL) {
            sample_single(vocab, rows + (size_t)i * vocab, 1, &params[i], &positions[i], &out[i], NULL);
        } else {
            out[i] = decide_row(all, stride, i, size, k, &params[i], positions[i], scratch);
        }
    }
    if (rows && rows != full_logits) free(rows);
    free(mine);
    free(all);
    free(scratch);
    return ok;
}
