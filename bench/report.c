#include "bench/report.h"
#include "common/alloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/strbuf.h"

/* ---- the terminal table ------------------------------------------------------------- */

static void line(FILE *f, const char *name, double v, int decimals) { fprintf(f, "%-40s %.*f\n", name, decimals, v); }

static void section(FILE *f, const char *title) {
    int pad = 50 - (int)strlen(title), left = pad / 2;
    fprintf(f, "%.*s%s%.*s\n", left, "--------------------------------------------------", title, pad - left,
            "--------------------------------------------------");
}

static void stats_lines(FILE *f, const char *name, const bench_stats *s) {
    char k[64];
    snprintf(k, sizeof k, "Mean %s (ms):", name), line(f, k, s->mean, 2);
    snprintf(k, sizeof k, "Median %s (ms):", name), line(f, k, s->median, 2);
    snprintf(k, sizeof k, "Std %s (ms):", name), line(f, k, s->std, 2);
    snprintf(k, sizeof k, "P90 %s (ms):", name), line(f, k, s->p90, 2);
    snprintf(k, sizeof k, "P99 %s (ms):", name), line(f, k, s->p99, 2);
}

void bench_print_table(FILE *f, const bench_run_info *info, const bench_metrics *m) {
    fprintf(f, "============ Serving Benchmark Result ============\n");
    fprintf(f, "%-40s %s\n", "Server:", info->url);
    if (isfinite(info->request_rate)) line(f, "Request rate (req/s):", info->request_rate, 2);
    else fprintf(f, "%-40s %s\n", "Request rate (req/s):", "inf");
    if (info->max_concurrency > 0) fprintf(f, "%-40s %d\n", "Maximum request concurrency:", info->max_concurrency);
    fprintf(f, "%-40s %d\n", "Successful requests:", m->completed);
    fprintf(f, "%-40s %d\n", "Failed requests:", m->failed);
    line(f, "Benchmark duration (s):", m->duration_s, 2);
    fprintf(f, "%-40s %lld\n", "Total input tokens:", m->total_input);
    fprintf(f, "%-40s %lld\n", "Total generated tokens:", m->total_output);
    line(f, "Request throughput (req/s):", m->request_throughput, 2);
    if (m->goodput_asked) line(f, "Request goodput (req/s):", m->request_goodput, 2);
    line(f, "Output token throughput (tok/s):", m->output_throughput, 2);
    line(f, "Total Token throughput (tok/s):", m->total_token_throughput, 2);
    section(f, "Time to First Token");
    stats_lines(f, "TTFT", &m->ttft);
    section(f, "Time per Output Token (excl. 1st token)");
    stats_lines(f, "TPOT", &m->tpot);
    section(f, "Inter-token Latency");
    stats_lines(f, "ITL", &m->itl);
    section(f, "End-to-end Latency");
    stats_lines(f, "E2EL", &m->e2el);
    fprintf(f, "==================================================\n");
}

/* ---- JSON ------------------------------------------------------------------------------- */

static const struct {
    const char *name;
    size_t offset;
} k_stats[] = {
    {"ttft", offsetof(bench_metrics, ttft)},
    {"tpot", offsetof(bench_metrics, tpot)},
    {"itl", offsetof(bench_metrics, itl)},
    {"e2el", offsetof(bench_metrics, e2el)},
};

static void add_rate(cJSON *o, const char *key, double rate) {
    if (isfinite(rate)) cJSON_AddNumberToObject(o, key, rate);
    else cJSON_AddStringToObject(o, key, "inf");
}

cJSON *bench_result_json(const bench_run_info *info, const bench_metrics *m, const bench_record *recs, int n) {
    cJSON *j = cJSON_CreateObject();
    char date[32];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y%m%d-%H%M%S", gmtime(&now));
    cJSON_AddStringToObject(j, "date", date);
    cJSON_AddStringToObject(j, "backend", "openai");
    cJSON_AddStringToObject(j, "label", info->label ? info->label : info->model);
    cJSON_AddStringToObject(j, "url", info->url);
    cJSON_AddStringToObject(j, "endpoint", info->endpoint);
    cJSON_AddStringToObject(j, "model_id", info->model);
    cJSON_AddStringToObject(j, "dataset", info->dataset);
    cJSON_AddNumberToObject(j, "num_prompts", info->num_prompts);
    add_rate(j, "request_rate", info->request_rate);
    cJSON_AddNumberToObject(j, "burstiness", info->burstiness);
    if (info->max_concurrency > 0) cJSON_AddNumberToObject(j, "max_concurrency", info->max_concurrency);
    else cJSON_AddNullToObject(j, "max_concurrency");
    cJSON *slo = cJSON_AddObjectToObject(j, "goodput_slo_ms");
    if (info->slo.ttft_ms > 0) cJSON_AddNumberToObject(slo, "ttft", info->slo.ttft_ms);
    if (info->slo.tpot_ms > 0) cJSON_AddNumberToObject(slo, "tpot", info->slo.tpot_ms);
    if (info->slo.e2el_ms > 0) cJSON_AddNumberToObject(slo, "e2el", info->slo.e2el_ms);
    cJSON_AddNumberToObject(j, "duration", m->duration_s);
    cJSON_AddNumberToObject(j, "completed", m->completed);
    cJSON_AddNumberToObject(j, "failed", m->failed);
    cJSON_AddNumberToObject(j, "total_input_tokens", (double)m->total_input);
    cJSON_AddNumberToObject(j, "total_output_tokens", (double)m->total_output);
    cJSON_AddNumberToObject(j, "request_throughput", m->request_throughput);
    if (m->goodput_asked) cJSON_AddNumberToObject(j, "request_goodput", m->request_goodput);
    else cJSON_AddNullToObject(j, "request_goodput");
    cJSON_AddNumberToObject(j, "output_throughput", m->output_throughput);
    cJSON_AddNumberToObject(j, "total_token_throughput", m->total_token_throughput);
    for (size_t k = 0; k < sizeof k_stats / sizeof k_stats[0]; k++) {
        const bench_stats *s = (const bench_stats *)((const char *)m + k_stats[k].offset);
        char key[32];
        snprintf(key, sizeof key, "mean_%s_ms", k_stats[k].name), cJSON_AddNumberToObject(j, key, s->mean);
        snprintf(key, sizeof key, "median_%s_ms", k_stats[k].name), cJSON_AddNumberToObject(j, key, s->median);
        snprintf(key, sizeof key, "std_%s_ms", k_stats[k].name), cJSON_AddNumberToObject(j, key, s->std);
        snprintf(key, sizeof key, "p90_%s_ms", k_stats[k].name), cJSON_AddNumberToObject(j, key, s->p90);
        snprintf(key, sizeof key, "p99_%s_ms", k_stats[k].name), cJSON_AddNumberToObject(j, key, s->p99);
    }
    /* per request, in prompt order (seconds, as vLLM writes them) */
    cJSON *in = cJSON_AddArrayToObject(j, "input_lens"), *out = cJSON_AddArrayToObject(j, "output_lens");
    cJSON *st = cJSON_AddArrayToObject(j, "start_times"), *tt = cJSON_AddArrayToObject(j, "ttfts");
    cJSON *e2 = cJSON_AddArrayToObject(j, "e2els"), *itls = cJSON_AddArrayToObject(j, "itls");
    cJSON *errs = cJSON_AddArrayToObject(j, "errors");
    for (int i = 0; i < n; i++) {
        const bench_record *r = &recs[i];
        cJSON_AddItemToArray(in, cJSON_CreateNumber(r->input_len));
        cJSON_AddItemToArray(out, cJSON_CreateNumber(r->ok ? r->output_len : 0));
        cJSON_AddItemToArray(st, cJSON_CreateNumber(r->send_s));
        cJSON_AddItemToArray(tt, cJSON_CreateNumber(r->ok ? r->ttft_s : 0));
        cJSON_AddItemToArray(e2, cJSON_CreateNumber(r->ok ? r->end_s - r->send_s : 0));
        cJSON *g = cJSON_CreateArray();
        for (int k = 0; r->ok && k < r->n_itl; k++) cJSON_AddItemToArray(g, cJSON_CreateNumber(r->itl_s[k]));
        cJSON_AddItemToArray(itls, g);
        cJSON_AddItemToArray(errs, cJSON_CreateString(r->ok ? "" : r->error));
    }
    return j;
}

static double num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

bool bench_metrics_from_json(const cJSON *run, bench_metrics *m, double *rate, errbuf *err) {
    memset(m, 0, sizeof *m);
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(run, "request_rate");
    *rate = cJSON_IsNumber(r) ? r->valuedouble : INFINITY;
    m->completed = (int)num(run, "completed");
    m->failed = (int)num(run, "failed");
    m->duration_s = num(run, "duration");
    m->request_throughput = num(run, "request_throughput");
    m->output_throughput = num(run, "output_throughput");
    m->total_token_throughput = num(run, "total_token_throughput");
    for (size_t k = 0; k < sizeof k_stats / sizeof k_stats[0]; k++) {
        bench_stats *s = (bench_stats *)((char *)m + k_stats[k].offset);
        char key[32];
        snprintf(key, sizeof key, "mean_%s_ms", k_stats[k].name), s->mean = num(run, key);
        snprintf(key, sizeof key, "median_%s_ms", k_stats[k].name), s->median = num(run, key);
        snprintf(key, sizeof key, "std_%s_ms", k_stats[k].name), s->std = num(run, key);
        snprintf(key, sizeof key, "p90_%s_ms", k_stats[k].name), s->p90 = num(run, key);
        snprintf(key, sizeof key, "p99_%s_ms", k_stats[k].name), s->p99 = num(run, key);
    }
    if (isnan(m->output_throughput) || isnan(m->ttft.p99))
        return errbuf_set(err, "not a facet bench serve result (output_throughput or p99_ttft_ms is missing)");
    return true;
}

/* ---- SVG ------------------------------------------------------------------------------------- */

static const char *const k_colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};
#define PANEL_W 300
#define PANEL_H 220
#define MARGIN 50

/* A "nice" axis maximum: 1, 2 or 5 times a power of ten, at least v. */
static double nice_max(double v) {
    if (!(v > 0)) return 1;
    double p = pow(10, floor(log10(v)));
    return v <= p ? p : v <= 2 * p ? 2 * p : v <= 5 * p ? 5 * p : 10 * p;
}

static void panel_frame(strbuf *sb, double x0, double y0, const char *title, double ymax, const char *unit) {
    strbuf_printf(sb, "<g transform=\"translate(%.0f,%.0f)\">\n", x0, y0);
    strbuf_printf(sb, "<text x=\"%d\" y=\"-18\" font-size=\"13\" text-anchor=\"middle\" font-weight=\"bold\">%s</text>\n",
                  PANEL_W / 2, title);
    strbuf_printf(sb, "<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"%d\" stroke=\"#333\"/><line x1=\"0\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n",
                  PANEL_H, PANEL_H, PANEL_W, PANEL_H);
    for (int t = 0; t <= 4; t++) {
        double v = ymax * t / 4, y = PANEL_H - PANEL_H * t / 4.0;
        strbuf_printf(sb, "<line x1=\"0\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                          "<text x=\"-4\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">%g</text>\n",
                      y, PANEL_W, y, y + 3, v);
    }
    strbuf_printf(sb, "<text x=\"-38\" y=\"%d\" font-size=\"10\" transform=\"rotate(-90 -38 %d)\" text-anchor=\"middle\">%s</text>\n",
                  PANEL_H / 2, PANEL_H / 2, unit);
}

static void rate_label(char *out, size_t len, double rate) {
    if (isfinite(rate)) snprintf(out, len, "%g", rate);
    else snprintf(out, len, "inf");
}

/* Bars: categories along x, one bar per series in each. */
static void bar_panel(strbuf *sb, double x0, double y0, const char *title, const char *unit, const char *const *cats,
                      int n_cats, const double *vals /* (n_series, n_cats) */, int n_series) {
    double vmax = 0;
    for (int i = 0; i < n_series * n_cats; i++) vmax = isfinite(vals[i]) && vals[i] > vmax ? vals[i] : vmax;
    double ymax = nice_max(vmax), slot = (double)PANEL_W / n_cats, bw = slot * 0.8 / n_series;
    panel_frame(sb, x0, y0, title, ymax, unit);
    for (int c = 0; c < n_cats; c++) {
        for (int s = 0; s < n_series; s++) {
            double v = vals[s * n_cats + c], h = isfinite(v) ? PANEL_H * v / ymax : 0;
            double x = c * slot + slot * 0.1 + s * bw;
            strbuf_printf(sb, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>%s %.3g</title></rect>\n",
                          x, PANEL_H - h, bw, h, k_colors[s % 6], cats[c], v);
        }
        strbuf_printf(sb, "<text x=\"%.1f\" y=\"%d\" font-size=\"10\" text-anchor=\"middle\">%s</text>\n",
                      c * slot + slot / 2, PANEL_H + 14, cats[c]);
    }
    strbuf_append_str(sb, "</g>\n");
}

/* Lines against load: the points of each series at categorical x (its rates). */
static void line_panel(strbuf *sb, double x0, double y0, const char *title, const char *unit, const bench_series *s,
                       int n_series, double (*get)(const bench_metrics *)) {
    double vmax = 0;
    int n_x = 0;
    for (int i = 0; i < n_series; i++) {
        n_x = s[i].n > n_x ? s[i].n : n_x;
        for (int k = 0; k < s[i].n; k++) vmax = fmax(vmax, isfinite(get(&s[i].m[k])) ? get(&s[i].m[k]) : 0);
    }
    double ymax = nice_max(vmax), dx = n_x > 1 ? (double)PANEL_W / (n_x - 1) : 0;
    panel_frame(sb, x0, y0, title, ymax, unit);
    for (int i = 0; i < n_series; i++) {
        strbuf_printf(sb, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", k_colors[i % 6]);
        for (int k = 0; k < s[i].n; k++)
            strbuf_printf(sb, "%.1f,%.1f ", k * dx, PANEL_H - PANEL_H * get(&s[i].m[k]) / ymax);
        strbuf_append_str(sb, "\"/>\n");
        for (int k = 0; k < s[i].n; k++)
            strbuf_printf(sb, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"><title>%.3g</title></circle>\n", k * dx,
                          PANEL_H - PANEL_H * get(&s[i].m[k]) / ymax, k_colors[i % 6], get(&s[i].m[k]));
    }
    for (int k = 0; k < s[0].n; k++) {
        char lab[32];
        rate_label(lab, sizeof lab, s[0].rates[k]);
        strbuf_printf(sb, "<text x=\"%.1f\" y=\"%d\" font-size=\"10\" text-anchor=\"middle\">%s</text>\n", k * dx,
                      PANEL_H + 14, lab);
    }
    strbuf_printf(sb, "<text x=\"%d\" y=\"%d\" font-size=\"10\" text-anchor=\"middle\">request rate (req/s)</text>\n",
                  PANEL_W / 2, PANEL_H + 30);
    strbuf_append_str(sb, "</g>\n");
}

static double get_out_tps(const bench_metrics *m) { return m->output_throughput; }
static double get_ttft99(const bench_metrics *m) { return m->ttft.p99; }
static double get_tpot99(const bench_metrics *m) { return m->tpot.p99; }
static double get_e2el99(const bench_metrics *m) { return m->e2el.p99; }

static void xml_escape_into(strbuf *sb, const char *s) {
    for (; *s; s++) {
        if (*s == '<') strbuf_append_str(sb, "&lt;");
        else if (*s == '>') strbuf_append_str(sb, "&gt;");
        else if (*s == '&') strbuf_append_str(sb, "&amp;");
        else strbuf_append_char(sb, *s);
    }
}

static void legend(strbuf *sb, const bench_series *s, int n_series, double y) {
    for (int i = 0; i < n_series; i++) {
        strbuf_printf(sb, "<rect x=\"%d\" y=\"%.0f\" width=\"12\" height=\"12\" fill=\"%s\"/>"
                          "<text x=\"%d\" y=\"%.0f\" font-size=\"12\">",
                      MARGIN + i * 260, y, k_colors[i % 6], MARGIN + i * 260 + 18, y + 11);
        xml_escape_into(sb, s[i].label);
        strbuf_append_str(sb, "</text>\n");
    }
}

bool bench_plot_svg(const char *path, const char *title, const bench_series *s, int n_series, errbuf *err) {
    if (n_series < 1) return errbuf_set(err, "nothing to plot");
    bool sweep = false;
    for (int i = 0; i < n_series; i++) sweep |= s[i].n > 1;
    int cols = sweep ? 4 : 5, width = MARGIN + cols * (PANEL_W + 70), height = 110 + PANEL_H + 60;
    strbuf sb;
    strbuf_init(&sb);
    strbuf_printf(&sb, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\">\n"
                       "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n<text x=\"%d\" y=\"24\" font-size=\"16\">",
                  width, height, MARGIN);
    xml_escape_into(&sb, title);
    strbuf_append_str(&sb, "</text>\n");
    legend(&sb, s, n_series, 36);
    double y0 = 90;
    if (sweep) {
        line_panel(&sb, MARGIN, y0, "Output throughput", "tok/s", s, n_series, get_out_tps);
        line_panel(&sb, MARGIN + (PANEL_W + 70), y0, "P99 TTFT", "ms", s, n_series, get_ttft99);
        line_panel(&sb, MARGIN + 2 * (PANEL_W + 70), y0, "P99 TPOT", "ms", s, n_series, get_tpot99);
        line_panel(&sb, MARGIN + 3 * (PANEL_W + 70), y0, "P99 E2E latency", "ms", s, n_series, get_e2el99);
    } else {
        static const char *const stats[] = {"mean", "p50", "p90", "p99"};
        static const char *const tput[] = {"output tok/s", "total tok/s"};
        double *v = xmalloc((size_t)n_series * 4 * sizeof *v);
        for (size_t k = 0; k < sizeof k_stats / sizeof k_stats[0]; k++) {
            for (int i = 0; i < n_series; i++) {
                const bench_stats *st = (const bench_stats *)((const char *)&s[i].m[0] + k_stats[k].offset);
                v[i * 4 + 0] = st->mean, v[i * 4 + 1] = st->median, v[i * 4 + 2] = st->p90, v[i * 4 + 3] = st->p99;
            }
            static const char *const names[] = {"TTFT", "TPOT", "ITL", "E2E latency"};
            bar_panel(&sb, MARGIN + (double)k * (PANEL_W + 70), y0, names[k], "ms", stats, 4, v, n_series);
        }
        for (int i = 0; i < n_series; i++) v[i * 2] = s[i].m[0].output_throughput, v[i * 2 + 1] = s[i].m[0].total_token_throughput;
        bar_panel(&sb, MARGIN + 4.0 * (PANEL_W + 70), y0, "Throughput", "tok/s", tput, 2, v, n_series);
        free(v);
    }
    strbuf_append_str(&sb, "</svg>\n");
    FILE *f = fopen(path, "w");
    bool ok = f && fwrite(sb.data, 1, sb.len, f) == sb.len;
    if (f && fclose(f) != 0) ok = false;
    strbuf_free(&sb);
    if (!ok) return errbuf_set(err, "cannot write %s", path);
    return true;
}
