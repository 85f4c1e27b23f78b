#include "bench/metrics.h"
#include "common/alloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_percentile(const double *sorted, size_t n, double p) {
    if (n == 0) return 0;
    double rank = p / 100.0 * (double)(n - 1);
    size_t lo = (size_t)floor(rank), hi = lo + 1 < n ? lo + 1 : lo;
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - (double)lo);
}

bench_stats bench_stats_of(const double *x, size_t n) {
    bench_stats s = {0};
    if (n == 0) return s;
    double *v = xmalloc(n * sizeof *v), sum = 0;
    for (size_t i = 0; i < n; i++) sum += v[i] = x[i] * 1e3;
    qsort(v, n, sizeof *v, cmp_double);
    s.mean = sum / (double)n;
    double var = 0;
    for (size_t i = 0; i < n; i++) var += (v[i] - s.mean) * (v[i] - s.mean);
    s.std = sqrt(var / (double)n);
    s.median = bench_percentile(v, n, 50);
    s.p90 = bench_percentile(v, n, 90);
    s.p99 = bench_percentile(v, n, 99);
    free(v);
    return s;
}

double bench_tpot_s(const bench_record *r) {
    if (!r->ok || r->output_len <= 1) return 0;
    return (r->end_s - r->send_s - r->ttft_s) / (double)(r->output_len - 1);
}

static bool meets_slo(const bench_record *r, const bench_slo *slo) {
    if (slo->ttft_ms > 0 && r->ttft_s * 1e3 > slo->ttft_ms) return false;
    if (slo->tpot_ms > 0 && bench_tpot_s(r) * 1e3 > slo->tpot_ms) return false;
    if (slo->e2el_ms > 0 && (r->end_s - r->send_s) * 1e3 > slo->e2el_ms) return false;
    return true;
}

void bench_compute(const bench_record *recs, int n, const bench_slo *slo, bench_metrics *m) {
    memset(m, 0, sizeof *m);
    bench_slo none = {0};
    if (!slo) slo = &none;
    m->goodput_asked = slo->ttft_ms > 0 || slo->tpot_ms > 0 || slo->e2el_ms > 0;
    double first = INFINITY, last = -INFINITY;
    size_t n_itl = 0;
    for (int i = 0; i < n; i++) {
        if (recs[i].send_s < first) first = recs[i].send_s;
        if (recs[i].end_s > last) last = recs[i].end_s;
        if (recs[i].ok) n_itl += (size_t)recs[i].n_itl;
    }
    double *ttft = xmalloc(((size_t)n + 1) * sizeof *ttft), *tpot = xmalloc(((size_t)n + 1) * sizeof *tpot);
    double *e2el = xmalloc(((size_t)n + 1) * sizeof *e2el), *itl = xmalloc((n_itl + 1) * sizeof *itl);
    size_t nt = 0, np = 0, ni = 0;
    for (int i = 0; i < n; i++) {
        const bench_record *r = &recs[i];
        if (!r->ok) {
            m->failed++;
            continue;
        }
        m->completed++;
        m->total_input += r->input_len;
        m->total_output += r->output_len;
        ttft[nt] = r->ttft_s;
        e2el[nt++] = r->end_s - r->send_s;
        if (r->output_len > 1) tpot[np++] = bench_tpot_s(r);
        for (int k = 0; k < r->n_itl; k++) itl[ni++] = r->itl_s[k];
        if (meets_slo(r, slo)) m->good++;
    }
    m->duration_s = n > 0 && last > first ? last - first : 0;
    if (m->duration_s > 0) {
        m->request_throughput = m->completed / m->duration_s;
        m->request_goodput = m->good / m->duration_s;
        m->output_throughput = (double)m->total_output / m->duration_s;
        m->total_token_throughput = (double)(m->total_input + m->total_output) / m->duration_s;
    }
    m->ttft = bench_stats_of(ttft, nt);
    m->tpot = bench_stats_of(tpot, np);
    m->itl = bench_stats_of(itl, ni);
    m->e2el = bench_stats_of(e2el, nt);
    free(ttft), free(tpot), free(e2el), free(itl);
}

void bench_record_add_itl(bench_record *r, double gap_s) {
    if (r->n_itl == r->itl_cap) {
        r->itl_cap = r->itl_cap ? 2 * r->itl_cap : 64;
        r->itl_s = xrealloc(r->itl_s, (size_t)r->itl_cap * sizeof *r->itl_s);
    }
    r->itl_s[r->n_itl++] = gap_s;
}

void bench_record_free(bench_record *r) {
    free(r->itl_s);
    r->itl_s = NULL;
    r->n_itl = r->itl_cap = 0;
    free(r->output), free(r->tokens);
    r->output = r->tokens = NULL;
}
