#include "worker/sampler.h"
#include "common/alloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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


/* ---- the sampler -------------------------------------------------------------- */

void sampler_init(sampler *s, int vocab) {
    s->vocab = vocab;
    s->cand = xmalloc((size_t)vocab * sizeof *s->cand);
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
