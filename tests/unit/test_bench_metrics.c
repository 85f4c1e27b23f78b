/* test_bench_metrics — the serving benchmark's figures (bench/metrics.c) on
 * a synthetic trace whose answers were worked out by hand (numpy's
 * conventions: linear-interpolated percentiles, population std), and the
 * arrival process (bench/client.c): rate inf sends everything at once, a
 * Poisson process has mean gap 1/rate and a coefficient of variation of 1,
 * burstiness k gives 1/sqrt(k). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/client.h"
#include "bench/metrics.h"
#include "check.h"

/* near: CHECK_NEAR with the arguments in this file's order */
#define near(what, got, want, tol) CHECK_NEAR(got, want, tol, what)

static bench_record ok_record(int in, int out, double send, double ttft, const double *itl, int n_itl) {
    bench_record r = {.ok = true, .input_len = in, .output_len = out, .send_s = send, .ttft_s = ttft};
    double t = send + ttft;
    for (int i = 0; i < n_itl; i++) bench_record_add_itl(&r, itl[i]), t += itl[i];
    r.end_s = t;
    return r;
}

static void check_trace(void) {
    const double itl0[] = {0.02, 0.02, 0.03, 0.03}, itl1[] = {0.05, 0.05};
    bench_record recs[4] = {
        ok_record(10, 5, 0.0, 0.1, itl0, 4), /* e2el 0.2, tpot 0.025 */
        ok_record(20, 3, 0.5, 0.2, itl1, 2), /* e2el 0.3, tpot 0.05 */
        ok_record(30, 1, 1.0, 0.4, NULL, 0), /* e2el 0.4, no tpot */
        {.ok = false, .input_len = 40, .send_s = 1.2, .end_s = 1.5},
    };
    snprintf(recs[3].error, sizeof recs[3].error, "HTTP 500: boom");
    bench_slo slo = {.ttft_ms = 250, .tpot_ms = 40};
    bench_metrics m;
    bench_compute(recs, 4, &slo, &m);
    near("completed", m.completed, 3, 0);
    near("failed", m.failed, 1, 0);
    near("total input (completed only)", (double)m.total_input, 60, 0);
    near("total output", (double)m.total_output, 9, 0);
    near("duration: first send to last end", m.duration_s, 1.5, 1e-12);
    near("request throughput", m.request_throughput, 2.0, 1e-9);
    near("output throughput", m.output_throughput, 6.0, 1e-9);
    near("total token throughput", m.total_token_throughput, 46.0, 1e-9);
    near("goodput: only the first meets ttft 250 and tpot 40", m.request_goodput, 1 / 1.5, 1e-9);
    near("ttft mean", m.ttft.mean, 700.0 / 3, 1e-9);
    near("ttft median", m.ttft.median, 200, 1e-9);
    near("ttft std", m.ttft.std, sqrt(((100 - 700.0 / 3) * (100 - 700.0 / 3) + (200 - 700.0 / 3) * (200 - 700.0 / 3) +
                                       (400 - 700.0 / 3) * (400 - 700.0 / 3)) / 3), 1e-9);
    near("ttft p90", m.ttft.p90, 360, 1e-9);
    near("ttft p99", m.ttft.p99, 396, 1e-9);
    near("tpot mean", m.tpot.mean, 37.5, 1e-9);
    near("tpot p90", m.tpot.p90, 47.5, 1e-9);
    near("tpot p99", m.tpot.p99, 49.75, 1e-9);
    near("tpot std", m.tpot.std, 12.5, 1e-9);
    near("itl pooled mean", m.itl.mean, 200.0 / 6, 1e-9);
    near("itl median", m.itl.median, 30, 1e-9);
    near("itl p90", m.itl.p90, 50, 1e-9);
    near("e2el mean", m.e2el.mean, 300, 1e-9);
    near("e2el p90", m.e2el.p90, 380, 1e-9);
    near("e2el p99", m.e2el.p99, 398, 1e-9);
    /* no SLO: every completed request counts */
    bench_compute(recs, 4, NULL, &m);
    near("goodput without SLOs = throughput", m.request_goodput, m.request_throughput, 1e-12);
    /* nothing completed: zeros, not NaN */
    bench_compute(&recs[3], 1, NULL, &m);
    near("all failed: ttft mean", m.ttft.mean, 0, 0);
    near("all failed: throughput", m.output_throughput, 0, 0);
    for (int i = 0; i < 4; i++) bench_record_free(&recs[i]);
}

static void check_arrivals(void) {
    enum { N = 40000 };
    double *at = malloc(N * sizeof *at);
    bench_arrivals(INFINITY, 1, 7, N, at);
    double worst = 0;
    for (int i = 0; i < N; i++) worst = fmax(worst, at[i]);
    near("rate inf: everything at 0", worst, 0, 0);
    const double shapes[] = {1, 4, 0.5};
    for (int k = 0; k < 3; k++) {
        bench_arrivals(10, shapes[k], 7, N, at);
        double mean = at[N - 1] / (N - 1), var = 0;
        for (int i = 1; i < N; i++) var += (at[i] - at[i - 1] - mean) * (at[i] - at[i - 1] - mean);
        double cv = sqrt(var / (N - 1)) / mean;
        char what[64];
        snprintf(what, sizeof what, "burstiness %g: mean gap", shapes[k]);
        near(what, mean, 0.1, 0.003);
        snprintf(what, sizeof what, "burstiness %g: coefficient of variation", shapes[k]);
        near(what, cv, 1 / sqrt(shapes[k]), 0.03 / sqrt(shapes[k]));
        printf("burstiness %g: mean gap %.4f s (want 0.1), CV %.3f (want %.3f)\n", shapes[k], mean, cv, 1 / sqrt(shapes[k]));
    }
    free(at);
}

int main(void) {
    check_trace();
    check_arrivals();
    return CHECK_RESULT();
}
