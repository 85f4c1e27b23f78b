#include "kernels/cpu/sample.h"

#include <math.h>
#include <stdlib.h>

#include "common/philox.h"

#define GUMBEL_STREAM 0x53414d50u /* "SAMP": separates sampling noise from other uses */

void softcap_f32(float *x, size_t n, float cap) {
    for (size_t i = 0; i < n; i++) x[i] = cap * tanhf(x[i] / cap);
}

int argmax_f32(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

double gumbel_noise(uint64_t seed, uint64_t position, int32_t id) {
    double u = philox_uniform(seed, GUMBEL_STREAM, position, (uint32_t)id);
    return -log(-log(u));
}

int candidate_cmp(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

int candidates_top_k(candidate *c, int n, int k) {
    qsort(c, (size_t)n, sizeof *c, candidate_cmp);
    return k > 0 && k < n ? k : n;
}

int candidates_top_p(candidate *c, int n, float top_p) {
    if (n == 0 || top_p >= 1.0f) return n;
    double max = c[0].logit, total = 0.0;
    for (int i = 0; i < n; i++) total += exp((double)c[i].logit - max);
    double mass = 0.0;
    for (int i = 0; i < n; i++) {
        mass += exp((double)c[i].logit - max) / total;
        if (mass >= (double)top_p) return i + 1;
    }
    return n;
}

int32_t candidates_gumbel_pick(const candidate *c, int n, uint64_t seed, uint64_t position) {
    int32_t best = c[0].id;
    double best_v = -INFINITY;
    for (int i = 0; i < n; i++) {
        double v = (double)c[i].logit + gumbel_noise(seed, position, c[i].id);
        if (v > best_v || (v == best_v && c[i].id < best)) {
            best_v = v;
            best = c[i].id;
        }
    }
    return best;
}
