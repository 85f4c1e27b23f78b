/* vec_math.h — elementwise math on 8 floats at once (AVX2 + FMA), for the
 * fast ops that would otherwise call libm once per element. Each function
 * states its error; the ops using them are tested against the plain
 * versions (tests/unit/test_kernels.c, test_sampling.c). Include only from
 * files whose functions carry target("avx2,fma"). */
#ifndef FACET_KERNELS_CPU_VEC_MATH_H
#define FACET_KERNELS_CPU_VEC_MATH_H

#include <immintrin.h>

#define VEC_MATH __attribute__((target("avx2,fma"), always_inline)) static inline

/* exp(d) for d ≤ 0: d = k·ln2 + r with |r| ≤ ln2/2 (ln2 in two parts, so r
 * is exact), e^r by its Taylor polynomial to degree 6 (under 2e-7
 * relative), times 2^k built in the exponent bits; d < −87 (and −inf)
 * gives 0. */
VEC_MATH __m256 exp_nonpositive_ps(__m256 d) {
    const __m256 lo = _mm256_set1_ps(-87.0f);
    __m256 keep = _mm256_cmp_ps(d, lo, _CMP_GE_OQ);
    d = _mm256_max_ps(d, lo);
    __m256 k = _mm256_round_ps(_mm256_mul_ps(d, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), d);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i scale = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(scale)), keep);
}

/* gelu with the tanh approximation, 0.5·x·(1 + tanh(u)), u = √(2/π)·(x +
 * 0.044715·x³), written without cancellation: with e = exp(−2|u|),
 * 1 + tanh(u) = 2/(1 + e) for u ≥ 0 and 2e/(1 + e) for u < 0. Error a few
 * parts in 10⁷ of |x| (libm's tanhf-based form loses more near u ≪ 0). */
VEC_MATH __m256 gelu_tanh_ps(__m256 x) {
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 x2 = _mm256_mul_ps(x, x);
    __m256 u = _mm256_mul_ps(_mm256_set1_ps(0.7978845608028654f),
                             _mm256_fmadd_ps(_mm256_mul_ps(x2, _mm256_set1_ps(0.044715f)), x, x));
    __m256 abs_u = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), u);
    __m256 e = exp_nonpositive_ps(_mm256_mul_ps(abs_u, _mm256_set1_ps(-2.0f)));
    __m256 num = _mm256_blendv_ps(e, one, _mm256_cmp_ps(u, _mm256_setzero_ps(), _CMP_GE_OQ));
    return _mm256_div_ps(_mm256_mul_ps(x, num), _mm256_add_ps(one, e));
}

#endif
