#include "worker/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

sampling_params sampling_params_greedy(void) {
    sampling_params p = {.temperature = 0.0f, .top_k = 0, .top_p = 1.0f, .seed = 0};
    return p;
}

bool sampling_params_check(const sampling_params *p, errbuf *err) {
    if (!(p->temperature >= 0.0f) || !isfinite(p->temperature) || p->temperature > 100.0f)
        return errbuf_set(err, "temperature must be in [0, 100]");
    if (p->top_k < 0) return errbuf_set(err, "top_k must be >= 0 (0 disables it)");
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f)) return errbuf_set(err, "top_p must be in (0, 1]");
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f)) return errbuf_set(err, "min_p must be in [0, 1]");
    if (!(p->presence_penalty >= -2.0f && p->presence_penalty <= 2.0f))
        return errbuf_set(err, "presence_penalty must be in [-2, 2]");
    if (!(p->frequency_penalty >= -2.0f && p->frequency_penalty <= 2.0f))
        return errbuf_set(err, "frequency_penalty must be in [-2, 2]");
    if (!(p->repetition_penalty >= 0.0f && p->repetition_penalty <= 10.0f))
        return errbuf_set(err, "repetition_penalty must be in (0, 10] (1 disables it)");
    return true;
}

bool sampling_params_has_penalties(const sampling_params *p) {
    return p->presence_penalty != 0.0f || p->frequency_penalty != 0.0f ||
           (p->repetition_penalty != 0.0f && p->repetition_penalty != 1.0f);
}

void sampler_apply_penalties(float *logits, int n, int vocab_begin, const sampling_params *p, const penalty_tokens *seen) {
    if (!seen || !sampling_params_has_penalties(p)) return;
    float rep = p->repetition_penalty == 0.0f ? 1.0f : p->repetition_penalty;
    for (int i = 0; i < seen->n; i++) {
        int k = seen->ids[i] - vocab_begin;
        if (k < 0 || k >= n) continue; /* another rank's token */
        float l = logits[k];
        if (rep != 1.0f) l = l > 0 ? l / rep : l * rep;
        if (seen->counts[i] > 0) l -= p->frequency_penalty * (float)seen->counts[i] + p->presence_penalty;
        logits[k] = l;
    }
}

/* ---- seen tokens ------------------------------------------------------------ */

void seen_tokens_init(seen_tokens *s) { memset(s, 0, sizeof *s); }

void seen_tokens_free(seen_tokens *s) {
    free(s->ids), free(s->counts), free(s->slots);
    memset(s, 0, sizeof *s);
}

static uint32_t slot_of(const seen_tokens *s, int32_t id) {
    uint32_t i = ((uint32_t)id * 2654435761u) & s->mask;
    while (s->slots[i] && s->ids[s->slots[i] - 1] != id) i = (i + 1) & s->mask;
    return i;
}

static void grow(seen_tokens *s) {
    s->cap = s->cap ? 2 * s->cap : 64;
    s->ids = realloc(s->ids, (size_t)s->cap * sizeof *s->ids);
    s->counts = realloc(s->counts, (size_t)s->cap * sizeof *s->counts);
    free(s->slots);
    s->mask = (uint32_t)(2 * s->cap) - 1;
    s->slots = calloc((size_t)s->mask + 1, sizeof *s->slots);
    for (int k = 0; k < s->n; k++) s->slots[slot_of(s, s->ids[k])] = k + 1;
}

void seen_tokens_add(seen_tokens *s, int32_t id, bool output) {
    if (s->n == s->cap) grow(s);
    uint32_t i = slot_of(s, id);
    if (!s->slots[i]) {
        s->ids[s->n] = id;
        s->counts[s->n] = 0;
        s->slots[i] = ++s->n;
    }
    if (output) s->counts[s->slots[i] - 1]++;
}

penalty_tokens seen_tokens_view(const seen_tokens *s) {
    penalty_tokens v = {s->ids, s->counts, s->n};
    return v;
}

/* ---- the sampler -------------------------------------------------------------- */

void sampler_init(sampler *s, int vocab) {
    s->vocab = vocab;
    s->cand = malloc((size_t)vocab * sizeof *s->cand);
}

void sampler_free(sampler *s) {
    free(s->cand);
    s->cand = NULL;
}

/* Keeps candidates whose scaled logit is within log(min_p) of the best. */
static int candidates_min_p(candidate *c, int n, float min_p) {
    if (min_p <= 0.0f || n == 0) return n;
    float max = c[0].logit;
    for (int i = 1; i < n; i++)
        if (c[i].logit > max) max = c[i].logit;
    double threshold = (double)max + log((double)min_p);
    int k = 0;
    for (int i = 0; i < n; i++)
        if ((double)c[i].logit >= threshold) c[k++] = c[i];
    return k;
}

int32_t sampler_pick(sampler *s, const float *logits, const sampling_params *p, uint64_t position) {
    for (int i = 0; i < s->vocab; i++)
        if (!isfinite(logits[i])) return -1;
    if (p->temperature == 0.0f) return argmax_f32(logits, s->vocab);
    float inv_t = 1.0f / p->temperature;
    for (int i = 0; i < s->vocab; i++) s->cand[i] = (candidate){i, logits[i] * inv_t};
    int n = candidates_min_p(s->cand, s->vocab, p->min_p);
    if (p->top_k > 0 || p->top_p < 1.0f) {
        n = candidates_top_k(s->cand, n, p->top_k);
        n = candidates_top_p(s->cand, n, p->top_p);
    }
    return candidates_gumbel_pick(s->cand, n, p->seed, position);
}

int sampler_top_ids(const float *logits, int vocab, int n, int32_t *ids) {
    if (n > vocab) n = vocab;
    if (n <= 0) return 0;
    int k = 0;
    for (int i = 0; i < vocab; i++) { /* insertion into a short sorted list */
        if (k == n && !(logits[i] > logits[ids[k - 1]])) continue;
        int j = k < n ? k++ : n - 1;
        while (j > 0 && logits[i] > logits[ids[j - 1]]) {
            ids[j] = ids[j - 1];
            j--;
        }
        ids[j] = i;
    }
    return k;
}
