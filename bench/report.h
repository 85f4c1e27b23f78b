/* report.h — the serving benchmark's outputs: the terminal table (vLLM's
 * layout, plus failures, std and p90), the result JSON (vLLM's keys plus
 * ours; docs/BENCH.md lists them) and an SVG picture: latency percentiles
 * and throughput for one load, or throughput and p99 latencies against
 * load for a sweep; several series (servers) overlay. */
#ifndef FACET_BENCH_REPORT_H
#define FACET_BENCH_REPORT_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "bench/metrics.h"
#include "common/error.h"

typedef struct bench_run_info {
    const char *label;    /* the series' name in plots (default: the server's model id) */
    const char *url, *endpoint, *model, *dataset;
    int num_prompts, max_concurrency;
    double request_rate;  /* inf: all at once */
    double burstiness;
    bench_slo slo;
} bench_run_info;

void bench_print_table(FILE *f, const bench_run_info *info, const bench_metrics *m);
/* One run as JSON: the run, the aggregate figures, the per-request arrays. */
cJSON *bench_result_json(const bench_run_info *info, const bench_metrics *m, const bench_record *recs, int n);
/* The aggregate figures back from such JSON (for `facet bench plot`). */
bool bench_metrics_from_json(const cJSON *run, bench_metrics *m, double *rate, errbuf *err);

typedef struct bench_series {
    const char *label;
    int n;                  /* points: one per request rate */
    const double *rates;    /* (n) requests/s, inf for all at once */
    const bench_metrics *m; /* (n) */
} bench_series;

bool bench_plot_svg(const char *path, const char *title, const bench_series *s, int n_series, errbuf *err);

#endif
