/* metrics.h — the serving benchmark's figures from per-request records,
 * defined as vLLM's `vllm bench serve` defines them (docs/BENCH.md), so the
 * numbers compare across servers:
 *   TTFT  first streamed chunk with content − send time
 *   ITL   gaps between consecutive content chunks, pooled over requests
 *   TPOT  (E2EL − TTFT) / (output tokens − 1), per request with > 1 token
 *   E2EL  last chunk − send time
 *   duration = first send to last completion; throughputs divide by it;
 *   goodput = requests meeting every given SLO / duration.
 * Statistics: mean, median, population std, p90 and p99 with linear
 * interpolation (numpy's default). Pure functions: tests/unit/test_bench_metrics.c
 * checks them on a synthetic trace with known answers. */
#ifndef FACET_BENCH_METRICS_H
#define FACET_BENCH_METRICS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct bench_record {
    bool ok;
    char error[200];  /* why it failed (HTTP status and the server's message, or the transport's) */
    int input_len;    /* prompt tokens, as the dataset counted them */
    int output_len;   /* tokens generated: the server's usage, else counted */
    double send_s;    /* seconds since the benchmark's start */
    double end_s;     /* when the last byte arrived (or the failure) */
    double ttft_s;    /* ok only */
    double *itl_s;    /* (n_itl) gaps between content chunks */
    int n_itl, itl_cap;
    /* with bench_client_opts.keep_output (facet bench failover): what came back */
    char *output;     /* the generated text */
    char *tokens;     /* the tokens' strings (logprobs), each followed by '\x1f' */
    char finish[16];  /* the finish reason */
} bench_record;

typedef struct bench_stats {
    double mean, median, std, p90, p99; /* ms */
} bench_stats;

typedef struct bench_slo {
    double ttft_ms, tpot_ms, e2el_ms; /* 0: not part of the goodput */
} bench_slo;

typedef struct bench_metrics {
    int completed, failed;
    long long total_input, total_output; /* over completed requests */
    double duration_s;
    double request_throughput, request_goodput, output_throughput, total_token_throughput;
    int good; /* requests meeting every SLO (all completed when none is given) */
    bool goodput_asked;
    bench_stats ttft, tpot, itl, e2el;
} bench_metrics;

/* Statistics of x (n values, in seconds; the result in ms); zeros when n == 0. */
bench_stats bench_stats_of(const double *x, size_t n);
/* Linear-interpolated percentile of sorted values (numpy's default). */
double bench_percentile(const double *sorted, size_t n, double p);
/* TPOT of one completed record in seconds; 0 when output_len <= 1. */
double bench_tpot_s(const bench_record *r);
void bench_compute(const bench_record *recs, int n, const bench_slo *slo, bench_metrics *m);

void bench_record_add_itl(bench_record *r, double gap_s);
void bench_record_free(bench_record *r);

#endif
