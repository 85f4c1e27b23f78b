#include "kernels/cpu/roofline.h"
#include "kernels/cpu/bf16dot.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/clock.h"

#define CHUNK (1u << 20) /* bytes per task */

typedef struct {
    const float *buf;
    size_t floats;
    float sink[256];
} read_job;

__attribute__((target("avx2"))) static void read_task(void *p, int task, int thread) {
    read_job *j = p;
    size_t b = (size_t)task * (CHUNK / sizeof(float)), e = b + CHUNK / sizeof(float);
    if (e > j->floats) e = j->floats;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = b; i + 32 <= e; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_load_ps(j->buf + i));
        a1 = _mm256_add_ps(a1, _mm256_load_ps(j->buf + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_load_ps(j->buf + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_load_ps(j->buf + i + 24));
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
    float out[8];
    _mm256_storeu_ps(out, s);
    j->sink[thread & 255] += out[0]; /* keep the loads alive */
}

double cpu_read_bandwidth_gbs(threadpool *tp, size_t bytes, int reps) {
    bytes = (bytes / CHUNK) * CHUNK;
    float *buf = xaligned_alloc(64, bytes);
    memset(buf, 1, bytes); /* touch every page */
    read_job j = {buf, bytes / sizeof(float), {0}};
    double best = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = clock_now_s();
        threadpool_run(tp, (int)(bytes / CHUNK), read_task, &j);
        double gbs = (double)bytes / (clock_now_s() - t0) / 1e9;
        if (gbs > best) best = gbs;
    }
    free(buf);
    return best;
}

#define FMA_ITERS 20000000

/* Ten independent accumulator chains in named registers hide the FMA
 * latency (an array would go through memory at -O2). */
__attribute__((target("avx2,fma"))) static void fma_task(void *p, int task, int thread) {
    float *sink = p;
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    /* distinct starts: equal ones were merged into one chain by the compiler
     * (one latency-bound FMA per iteration, reported as ten) */
    __m256 a0 = _mm256_set1_ps((float)task), a1 = _mm256_set1_ps(1), a2 = _mm256_set1_ps(2), a3 = _mm256_set1_ps(3),
           a4 = _mm256_set1_ps(4), a5 = _mm256_set1_ps(5), a6 = _mm256_set1_ps(6), a7 = _mm256_set1_ps(7),
           a8 = _mm256_set1_ps(8), a9 = _mm256_set1_ps(9);
    for (int it = 0; it < FMA_ITERS; it++) {
        a0 = _mm256_fmadd_ps(a0, m, c), a1 = _mm256_fmadd_ps(a1, m, c), a2 = _mm256_fmadd_ps(a2, m, c);
        a3 = _mm256_fmadd_ps(a3, m, c), a4 = _mm256_fmadd_ps(a4, m, c), a5 = _mm256_fmadd_ps(a5, m, c);
        a6 = _mm256_fmadd_ps(a6, m, c), a7 = _mm256_fmadd_ps(a7, m, c), a8 = _mm256_fmadd_ps(a8, m, c);
        a9 = _mm256_fmadd_ps(a9, m, c);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(_mm256_add_ps(a6, a7), _mm256_add_ps(a8, a9))));
    float out[8];
    _mm256_storeu_ps(out, s);
    sink[thread & 255] += out[0];
}

double cpu_fma_gflops(threadpool *tp) {
    static float sink[256];
    int n = threadpool_size(tp);
    double t0 = clock_now_s();
    threadpool_run(tp, n, fma_task, sink);
    double s = clock_now_s() - t0;
    return (double)n * FMA_ITERS * 10 * 8 * 2 / s / 1e9;
}

/* The same with vdpbf16ps (32 bf16 products a call, 64 FLOPs), where the CPU
 * has AVX512_BF16 (kernels/cpu/bf16dot.h); 0 elsewhere. */
__attribute__((target("avx512f,avx512bf16"))) static void bf16dot_task(void *p, int task, int thread) {
    float *sink = p;
    const __m512bh m = (__m512bh)_mm512_set1_epi16(0x3f80), c = (__m512bh)_mm512_set1_epi16(0x3380); /* 1, ~6e-8 */
    /* distinct starts, as in fma_task */
    __m512 a0 = _mm512_set1_ps((float)task), a1 = _mm512_set1_ps(1), a2 = _mm512_set1_ps(2), a3 = _mm512_set1_ps(3),
           a4 = _mm512_set1_ps(4), a5 = _mm512_set1_ps(5), a6 = _mm512_set1_ps(6), a7 = _mm512_set1_ps(7),
           a8 = _mm512_set1_ps(8), a9 = _mm512_set1_ps(9), a10 = _mm512_set1_ps(10), a11 = _mm512_set1_ps(11);
    for (int it = 0; it < FMA_ITERS / 2; it++) {
        a0 = _mm512_dpbf16_ps(a0, m, c), a1 = _mm512_dpbf16_ps(a1, m, c), a2 = _mm512_dpbf16_ps(a2, m, c);
        a3 = _mm512_dpbf16_ps(a3, m, c), a4 = _mm512_dpbf16_ps(a4, m, c), a5 = _mm512_dpbf16_ps(a5, m, c);
        a6 = _mm512_dpbf16_ps(a6, m, c), a7 = _mm512_dpbf16_ps(a7, m, c), a8 = _mm512_dpbf16_ps(a8, m, c);
        a9 = _mm512_dpbf16_ps(a9, m, c), a10 = _mm512_dpbf16_ps(a10, m, c), a11 = _mm512_dpbf16_ps(a11, m, c);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    float out[16];
    _mm512_storeu_ps(out, s);
    sink[thread & 255] += out[0];
}

double cpu_bf16dot_gflops(threadpool *tp) {
    if (!cpu_has_avx512bf16()) return 0;
    static float sink[256];
    int n = threadpool_size(tp);
    double t0 = clock_now_s();
    threadpool_run(tp, n, bf16dot_task, sink);
    double s = clock_now_s() - t0;
    return (double)n * (FMA_ITERS / 2) * 12 * 64 / s / 1e9;
}
