#include "worker/sampler.h"

#include <math.h>
#include <stdlib.h>

sampling_params sampling_params_greedy(void) {
    sampling_params p = {.temperature = 0.0f, .top_k = 0, .top_p = 1.0f, .seed = 0};
    return p;
}

bool sampling_params_check(const sampling_params *p, errbuf *err) {
    if (!(p->temperature >= 0.0f) || !isfinite(p->temperature) || p->temperature > 100.0f)
        return errbuf_set(err, "temperature must be in [0, 100]");
    if (p->top_k < 0) return errbuf_set(err, "top_k must be >= 0 (0 disables it)");
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f)) return errbuf_set(err, "top_p must be in (0, 1]");
    return true;
}

void sampler_init(sampler *s, int vocab) {
    s->vocab = vocab;
    s->cand = malloc((size_t)vocab * sizeof *s->cand);
}

void sampler_free(sampler *s) {
    free(s->cand);
    s->cand = NULL;
}

int32_t sampler_pick(sampler *s, const float *logits, const sampling_params *p, uint64_t position) {
    for (int i = 0; i < s->vocab; i++)
        if (!isfinite(logits[i])) return -1;
    if (p->temperature == 0.0f) return argmax_f32(logits, s->vocab);
    float inv_t = 1.0f / p->temperature;
    for (int i = 0; i < s->vocab; i++) s->cand[i] = (candidate){i, logits[i] * inv_t};
    int n = s->vocab;
    if (p->top_k > 0 || p->top_p < 1.0f) {
        n = candidates_top_k(s->cand, n, p->top_k);
        n = candidates_top_p(s->cand, n, p->top_p);
    }
    return candidates_gumbel_pick(s->cand, n, p->seed, position);
}
