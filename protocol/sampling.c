#include "protocol/sampling.h"
#include "common/alloc.h"

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
    s->ids = xrealloc(s->ids, (size_t)s->cap * sizeof *s->ids);
    s->counts = xrealloc(s->counts, (size_t)s->cap * sizeof *s->counts);
    free(s->slots);
    s->mask = (uint32_t)(2 * s->cap) - 1;
    s->slots = xcalloc((size_t)s->mask + 1, sizeof *s->slots);
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
