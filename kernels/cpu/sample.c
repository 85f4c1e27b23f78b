#include "kernels/cpu/sample.h"

#include <immintrin.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

#include "common/philox.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/vec_math.h"

#define GUMBEL_STREAM 0x53414d50u /* "SAMP": separates sampling noise from other uses */

void softcap_f32(float *x, size_t n, float cap) {
    for (size_t i = 0; i < n; i++) x[i] = cap * tanhf(x[i] / cap);
}

int argmax_f32_ref(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

double sum_exp_f32_ref(const float *x, int n, float max) {
    double s = 0;
    for (int i = 0; i < n; i++) s += exp((double)x[i] - max);
    return s;
}

#define AVX2 __attribute__((target("avx2,fma")))

/* Two passes: the largest non-NaN value m (max_ps(x, m) keeps m when x is
 * NaN), then the first index holding m — the plain loop's answer, since it
 * moves only on a strictly larger value. */
AVX2 static int argmax_avx2(const float *x, int n) {
    if (n < 16 || isnan(x[0])) return argmax_f32_ref(x, n);
    __m256 m0 = _mm256_set1_ps(-INFINITY), m1 = m0;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        m0 = _mm256_max_ps(_mm256_loadu_ps(x + i), m0);
        m1 = _mm256_max_ps(_mm256_loadu_ps(x + i + 8), m1);
    }
    __m256 mv = _mm256_max_ps(m0, m1);
    float lanes[8], m;
    _mm256_storeu_ps(lanes, mv);
    m = lanes[0];
    for (int k = 1; k < 8; k++) m = lanes[k] > m ? lanes[k] : m;
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    __m256 target = _mm256_set1_ps(m);
    for (i = 0; i + 8 <= n; i += 8) {
        int hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), target, _CMP_EQ_OQ));
        if (hit) return i + __builtin_ctz((unsigned)hit);
    }
    for (; i < n; i++)
        if (x[i] == m) return i;
    return 0; /* every value -inf or NaN */
}

AVX2 static double sum_exp_avx2(const float *x, int n, float max) {
    __m256 mx = _mm256_set1_ps(max);
    __m256d a0 = _mm256_setzero_pd(), a1 = a0;
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp_nonpositive_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), mx));
        a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    double lanes[4], s = 0;
    _mm256_storeu_pd(lanes, _mm256_add_pd(a0, a1));
    for (int k = 0; k < 4; k++) s += lanes[k];
    for (; i < n; i++) s += exp((double)x[i] - max);
    return s;
}

int argmax_f32(const float *x, int n) { return cpu_has_avx2_fma() ? argmax_avx2(x, n) : argmax_f32_ref(x, n); }

double sum_exp_f32(const float *x, int n, float max) {
    return cpu_has_avx2_fma() ? sum_exp_avx2(x, n, max) : sum_exp_f32_ref(x, n, max);
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
