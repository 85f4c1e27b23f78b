/* facet bench failover — does a running facet cluster survive faults
 * without losing or changing a request? (docs/BENCH.md, docs/FAILOVER.md)
 *
 * 1. A load (the `bench serve` client: streaming completions, seeded
 *    sampling, logprobs for the tokens themselves) runs against the server
 *    in rounds, while a second thread injects K faults at random moments
 *    through the server's admin API (POST /admin/faults, which needs
 *    --allow-fault-injection on the server): a kind from --faults' mix, on a
 *    random rank, each after the previous one has recovered.
 * 2. The same requests (same prompts, same seeds) run again, undisturbed.
 * 3. Every request is compared token by token. Lost (no complete answer),
 *    failed (an error) and mismatched requests are counted -- any of them
 *    makes the exit status 1 -- and the recovery timeline of each fault
 *    (from GET /admin/events: detected, re-formed, first token after) is
 *    reported as p50 / p99 / max, with the throughput dip; as a table, JSON
 *    (--result-json) and an SVG timeline (--plot). */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/client.h"
#include "bench/dataset.h"
#include "common/alloc.h"
#include "common/args.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/rng.h"
#include "common/secret.h"
#include "common/strbuf.h"
#include "model/checkpoint.h"
#include "model/make_model.h"

#define MAX_KINDS 8
#define MAX_ROUNDS 1000
#define BIN_S 0.5 /* throughput timeline resolution */

typedef struct failover_opts {
    const char *url, *faults_mix, *result_json, *plot, *model_dir, *api_key_file;
    int num_prompts, input_len, output_len, max_concurrency, n_faults;
    float temperature_f, gap_min_f, gap_max_f, range_ratio_f;
    uint64_t seed;
    bool no_progress;
} failover_opts;

/* ---- the admin API ------------------------------------------------------------------ */

typedef struct http_reply {
    long status;
    strbuf body;
} http_reply;

static size_t collect(char *p, size_t size, size_t n, void *ud) {
    strbuf_append(&((http_reply *)ud)->body, p, size * n);
    return size * n;
}

/* One HTTP call (GET when body is NULL); false on a transport failure. */
static bool http_call(const char *url, const char *path, const char *api_key, const char *body, http_reply *r) {
    char full[1024], auth[SECRET_MAX + 32];
    snprintf(full, sizeof full, "%s%s", url, path);
    strbuf_init(&r->body);
    r->status = 0;
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    if (api_key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", api_key);
        hdr = curl_slist_append(hdr, auth);
    }
    curl_easy_setopt(h, CURLOPT_URL, full);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (body) curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    bool ok = curl_easy_perform(h) == CURLE_OK;
    if (ok) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    return ok;
}

/* The value of a gauge in /metrics (name followed by a space), or -1. */
static double metric(const char *url, const char *api_key, const char *name) {
    http_reply r;
    double v = -1;
    if (http_call(url, "/metrics", api_key, NULL, &r) && r.status == 200 && r.body.data) {
        size_t n = strlen(name);
        for (const char *p = r.body.data; (p = strstr(p, name)); p += n)
            if ((p == r.body.data || p[-1] == '\n') && p[n] == ' ') {
                v = strtod(p + n + 1, NULL);
                break;
            }
    }
    strbuf_free(&r.body);
    return v;
}

/* The server's failover timeline (GET /admin/events), or NULL. */
static cJSON *failover_events(const char *url, const char *api_key) {
    http_reply r;
    cJSON *j = NULL;
    if (http_call(url, "/admin/events", api_key, NULL, &r) && r.status == 200)
        j = cJSON_ParseWithLength(r.body.data ? r.body.data : "", r.body.len);
    strbuf_free(&r.body);
    return j;
}

/* ---- the injector thread -------------------------------------------------------------- */

typedef struct injection {
    double at;      /* bench time (s) */
    int rank;
    char kind[48];
    char armed[128];
    bool accepted;
} injection;

typedef struct injector {
    const failover_opts *o;
    const char *api_key;
    char kinds[MAX_KINDS][48];
    int n_kinds;
    double t0;              /* the bench's start (clock_now_s) */
    atomic_bool stop;
    injection *done;        /* (o->n_faults) */
    atomic_int n_done;
    uint64_t rng;
    char error[256];
} injector;

static double uniform01(uint64_t *s) { return (double)(splitmix64_next(s) >> 11) * (1.0 / 9007199254740992.0); }

/* Sleeps up to seconds, waking early when told to stop. */
static void nap(injector *in, double seconds) {
    for (double t = 0; t < seconds && !atomic_load(&in->stop); t += 0.05) usleep(50 * 1000);
}

/* Waits until the last loss the server recorded has its first token again (or 60 s). */
static void wait_recovered(injector *in, uint64_t events_before) {
    for (int i = 0; i < 1200 && !atomic_load(&in->stop); i++) {
        cJSON *j = failover_events(in->o->url, in->api_key);
        const cJSON *evs = cJSON_GetObjectItemCaseSensitive(j, "events");
        int n = cJSON_GetArraySize(evs);
        const cJSON *last = n ? cJSON_GetArrayItem(evs, n - 1) : NULL;
        bool settled = n > 0 && (uint64_t)n > events_before &&
                       cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(last, "first_token_at"));
        bool ready = metric(in->o->url, in->api_key, "facet_ready") == 1;
        cJSON_Delete(j);
        /* a fault that broke nothing (a slow step) leaves no event: ready is enough after a while */
        if ((settled && ready) || (i >= 40 && ready && (uint64_t)n == events_before)) return;
        usleep(50 * 1000);
    }
}

static void *injector_main(void *p) {
    injector *in = p;
    const failover_opts *o = in->o;
    while (!atomic_load(&in->stop) && atomic_load(&in->n_done) < o->n_faults) {
        nap(in, o->gap_min_f + (o->gap_max_f - o->gap_min_f) * uniform01(&in->rng));
        if (atomic_load(&in->stop)) break;
        if (metric(o->url, in->api_key, "facet_ready") != 1 || metric(o->url, in->api_key, "facet_running_sequences") < 1)
            continue; /* only while requests run on a serving group */
        int size = (int)metric(o->url, in->api_key, "facet_group_size");
        cJSON *j = failover_events(o->url, in->api_key);
        uint64_t before = (uint64_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "events"));
        cJSON_Delete(j);
        injection *f = &in->done[atomic_load(&in->n_done)];
        memset(f, 0, sizeof *f);
        f->rank = size > 0 ? (int)(splitmix64_next(&in->rng) % (uint64_t)size) : 0;
        snprintf(f->kind, sizeof f->kind, "%s", in->kinds[splitmix64_next(&in->rng) % (uint64_t)in->n_kinds]);
        char body[160];
        snprintf(body, sizeof body, "{\"rank\": %d, \"fault\": \"%s\"}", f->rank, f->kind);
        f->at = clock_now_s() - in->t0;
        http_reply r;
        bool sent = http_call(o->url, "/admin/faults", in->api_key, body, &r);
        cJSON *reply = sent ? cJSON_ParseWithLength(r.body.data ? r.body.data : "", r.body.len) : NULL;
        const cJSON *armed = cJSON_GetObjectItemCaseSensitive(reply, "armed");
        f->accepted = sent && r.status == 200 && cJSON_IsString(armed);
        /* the group changed under the call (a rank gone): try again later; anything else is for the operator */
        bool transient = sent && r.status == 400 && r.body.data &&
                         (strstr(r.body.data, "UNAVAILABLE") || strstr(r.body.data, "no rank"));
        if (f->accepted) snprintf(f->armed, sizeof f->armed, "%s", armed->valuestring);
        else if (!transient && !in->error[0])
            snprintf(in->error, sizeof in->error, "POST /admin/faults: %s%.200s", sent ? "" : "no answer",
                     sent && r.body.data ? r.body.data : "");
        cJSON_Delete(reply);
        strbuf_free(&r.body);
        if (!f->accepted && transient) continue;
        if (!f->accepted) {
            atomic_store(&in->stop, true); /* the server does not take faults: say so once */
            break;
        }
        atomic_fetch_add(&in->n_done, 1);
        wait_recovered(in, before);
    }
    return NULL;
}

/* ---- the load ------------------------------------------------------------------------- */

/* Round r's prompts: the dataset, with seeds of their own. */
static void seed_round(bench_prompt *round, const bench_prompt *base, int n, uint64_t seed, int r) {
    for (int i = 0; i < n; i++) {
        round[i] = base[i];
        round[i].has_seed = true;
        round[i].seed = seed * 1000003ull + (uint64_t)r * (uint64_t)n + (uint64_t)i;
    }
}

typedef struct outcome {
    int completed, failed, lost, mismatched, compared;
    long long tokens;
    double duration_s;
} outcome;

/* lost: no complete answer (the transport broke, no finish); failed: the server answered with an error. */
static bool is_lost(const bench_record *r) { return !r->ok && !strstr(r->error, "HTTP ") && !strstr(r->error, "error in the stream"); }

/* ---- the report ----------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct span {
    double p50, p99, max;
    int n;
} span;

static span span_of(double *v, int n) {
    span s = {0, 0, 0, n};
    if (n == 0) return s;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    s.p50 = bench_percentile(v, (size_t)n, 50);
    s.p99 = bench_percentile(v, (size_t)n, 99);
    s.max = v[n - 1];
    return s;
}

/* Output tokens per BIN_S of bench time, from each request's content chunks. */
static int throughput_bins(const bench_record *recs, const double *round_start, int n_rounds, int n, double **out) {
    double end = 0;
    for (int r = 0; r < n_rounds; r++)
        for (int i = 0; i < n; i++) {
            const bench_record *x = &recs[r * n + i];
            if (x->end_s + round_start[r] > end) end = x->end_s + round_start[r];
        }
    int bins = (int)(end / BIN_S) + 1;
    double *b = xcalloc((size_t)bins, sizeof *b);
    for (int r = 0; r < n_rounds; r++)
        for (int i = 0; i < n; i++) {
            const bench_record *x = &recs[r * n + i];
            if (!x->ok) continue;
            double t = round_start[r] + x->send_s + x->ttft_s;
            b[(int)(t / BIN_S)] += 1;
            for (int k = 0; k < x->n_itl; k++) {
                t += x->itl_s[k];
                int at = (int)(t / BIN_S);
                if (at < bins) b[at] += 1;
            }
        }
    for (int k = 0; k < bins; k++) b[k] /= BIN_S;
    *out = b;
    return bins;
}

static void svg_timeline(const char *path, const double *bins, int n_bins, const injection *inj, int n_inj,
                         const cJSON *events, double wall_offset, errbuf *err) {
    const double W = 900, H = 300, L = 60, T = 40;
    double ymax = 1;
    for (int k = 0; k < n_bins; k++) ymax = bins[k] > ymax ? bins[k] : ymax;
    double xmax = n_bins * BIN_S;
    strbuf sb;
    strbuf_init(&sb);
    strbuf_printf(&sb, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\">\n"
                       "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
                       "<text x=\"%.0f\" y=\"24\" font-size=\"15\">facet bench failover: output tok/s over time, "
                       "faults (red), detected to first token after (shaded)</text>\n",
                  W + L + 30, H + T + 50, L);
    /* recoveries: detected -> first token, from the server's timeline */
    int ne = cJSON_GetArraySize(events);
    for (int i = 0; i < ne; i++) {
        const cJSON *e = cJSON_GetArrayItem(events, i);
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(e, "detected_at"), *f = cJSON_GetObjectItemCaseSensitive(e, "first_token_at");
        if (!cJSON_IsNumber(d) || !cJSON_IsNumber(f)) continue;
        double x0 = d->valuedouble - wall_offset, x1 = f->valuedouble - wall_offset;
        if (x1 < 0 || x0 > xmax) continue;
        strbuf_printf(&sb, "<rect x=\"%.1f\" y=\"%.0f\" width=\"%.1f\" height=\"%.0f\" fill=\"#f4c7c3\"/>\n",
                      L + x0 / xmax * W, T, (x1 - x0) / xmax * W + 1, H);
    }
    strbuf_append_str(&sb, "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"");
    for (int k = 0; k < n_bins; k++)
        strbuf_printf(&sb, "%.1f,%.1f ", L + (k + 0.5) * BIN_S / xmax * W, T + H - bins[k] / ymax * H);
    strbuf_append_str(&sb, "\"/>\n");
    for (int i = 0; i < n_inj; i++)
        strbuf_printf(&sb, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.0f\" y2=\"%.0f\" stroke=\"#d62728\" stroke-width=\"1\"/>\n",
                      L + inj[i].at / xmax * W, L + inj[i].at / xmax * W, T, T + H);
    strbuf_printf(&sb, "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n", L, L + W, T + H, T + H);
    strbuf_printf(&sb, "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n", L, L, T, T + H);
    strbuf_printf(&sb, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"12\">%.0f tok/s</text>\n", 4.0, T + 10, ymax);
    strbuf_printf(&sb, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"12\">%.0f s</text>\n", L + W - 30, T + H + 20, xmax);
    strbuf_printf(&sb, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"12\">0</text>\n</svg>\n", L, T + H + 20);
    FILE *fp = fopen(path, "w");
    if (!fp || fputs(sb.data, fp) < 0) errbuf_set(err, "cannot write %s", path);
    if (fp) fclose(fp);
    strbuf_free(&sb);
}

/* ---- the command ---------------------------------------------------------------------- */

static bool parse_kinds(const char *mix, injector *in, errbuf *err) {
    char *copy = xstrdup(mix), *save = NULL;
    in->n_kinds = 0;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (in->n_kinds == MAX_KINDS || strlen(t) >= sizeof in->kinds[0] || strchr(t, '@') || strchr(t, '"')) {
            free(copy);
            return errbuf_set(err, "--faults: at most %d kinds like kill,hang:3000,freeze:2000 (no triggers)", MAX_KINDS);
        }
        snprintf(in->kinds[in->n_kinds++], sizeof in->kinds[0], "%s", t);
    }
    free(copy);
    return in->n_kinds > 0 ? true : errbuf_set(err, "--faults: give at least one kind");
}

int bench_failover_main(int argc, char **argv) {
    failover_opts o = {.url = "http://127.0.0.1:8000", .faults_mix = "kill,hang:3000,freeze:2000", .num_prompts = 32,
                       .input_len = 32, .output_len = 64, .max_concurrency = 16, .n_faults = 10, .temperature_f = 0.8f,
                       .gap_min_f = 0.3f, .gap_max_f = 1.5f};
    const arg_spec specs[] = {
        {"url", ARG_STRING, &o.url, "the facet server, started with --allow-fault-injection (default http://127.0.0.1:8000)", 0, 0, NULL},
        {"faults", ARG_STRING, &o.faults_mix, "kinds to inject, chosen at random (default kill,hang:3000,freeze:2000)", 0, 0, NULL},
        {"num-faults", ARG_INT, &o.n_faults, "faults to inject (default 10)", 1, 100000, NULL},
        {"gap-min", ARG_FLOAT, &o.gap_min_f, "seconds after a recovery before the next fault, at least (default 0.3)", 0, 3600, NULL},
        {"gap-max", ARG_FLOAT, &o.gap_max_f, "and at most (default 1.5)", 0, 3600, NULL},
        {"num-prompts", ARG_INT, &o.num_prompts, "requests per round; rounds repeat until every fault is injected (default 32)", 1, 1 << 20, NULL},
        {"input-len", ARG_INT, &o.input_len, "prompt tokens (default 32)", 1, 1 << 20, NULL},
        {"output-len", ARG_INT, &o.output_len, "tokens to generate (default 64)", 1, 1 << 20, NULL},
        {"range-ratio", ARG_FLOAT, &o.range_ratio_f, "lengths uniform within ±ratio (default 0)", 0, 1, NULL},
        {"max-concurrency", ARG_INT, &o.max_concurrency, "requests in flight at most (default 16)", 1, 1 << 20, NULL},
        {"temperature", ARG_FLOAT, &o.temperature_f, "sampling temperature; each request has its own seed (default 0.8)", 0, 100, NULL},
        {"seed", ARG_U64, &o.seed, "prompts, seeds and fault choices (default 0)", 0, 0, NULL},
        {"model", ARG_STRING, &o.model_dir, "count tokens with this model's tokenizer: a checkpoint directory or GGUF file (default: the built-in tiny model's)", 0, 0, NULL},
        {"api-key-file", ARG_STRING, &o.api_key_file, "the server's API key (or $OPENAI_API_KEY)", 0, 0, NULL},
        {"result-json", ARG_STRING, &o.result_json, "write the results here", 0, 0, NULL},
        {"plot", ARG_STRING, &o.plot, "write an SVG timeline here", 0, 0, NULL},
        {"no-progress", ARG_FLAG, &o.no_progress, "no progress bar", 0, 0, NULL},
    };
    static const arg_command cmd = {"bench failover", "facet bench failover --url URL [options]",
                                    "Injects faults into a running facet cluster under load, replays the same requests\n"
                                    "undisturbed, and checks every output token by token."};
    int rc = args_handle(&cmd, specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != ARGS_CONTINUE) return rc;
    errbuf err;
    injector in = {.o = &o, .rng = o.seed ^ 0xFA17ull};
    char api_key[SECRET_MAX];
    bool have_key;
    if (!parse_kinds(o.faults_mix, &in, &err) ||
        !secret_load(o.api_key_file, "OPENAI_API_KEY", api_key, sizeof api_key, &have_key, &err)) {
        fprintf(stderr, "facet bench failover: %s\n", err.msg);
        return 2;
    }
    if (o.gap_max_f < o.gap_min_f) o.gap_max_f = o.gap_min_f;
    in.api_key = have_key ? api_key : NULL;
    curl_global_init(CURL_GLOBAL_DEFAULT);

    /* the prompts */
    const char *dir = o.model_dir ? o.model_dir : default_model_dir();
    tokenizer *tok = NULL;
    if (o.model_dir || ensure_default_model(dir, &err)) tok = model_open_tokenizer(dir, &err);
    bench_dataset_opts d = {.kind = "random", .num_prompts = o.num_prompts, .input_len = o.input_len,
                            .output_len = o.output_len, .range_ratio = o.range_ratio_f, .seed = o.seed};
    bench_prompt *base = NULL;
    if (!tok || !bench_dataset_make(&d, tok, &base, &err)) {
        fprintf(stderr, "facet bench failover: %s\n", err.msg);
        tokenizer_free(tok);
        return 1;
    }
    char model[256] = "default";
    if (!bench_client_model_id(o.url, in.api_key, model, sizeof model, &err)) {
        fprintf(stderr, "facet bench failover: %s\n", err.msg);
        return 1;
    }
    int n = o.num_prompts;
    bench_client_opts co = {.url = o.url, .endpoint = "/v1/completions", .model = model, .api_key = in.api_key,
                            .max_concurrency = o.max_concurrency, .temperature = o.temperature_f, .ignore_eos = true,
                            .timeout_s = 600, .seed = o.seed, .progress = !o.no_progress && isatty(STDERR_FILENO),
                            .keep_output = true};

    /* 1. under faults, round after round until every fault is in */
    in.done = xcalloc((size_t)o.n_faults, sizeof *in.done);
    bench_record *faulted = xcalloc((size_t)n * MAX_ROUNDS, sizeof *faulted);
    bench_prompt *round = xcalloc((size_t)n, sizeof *round);
    double *round_start = xcalloc(MAX_ROUNDS, sizeof *round_start);
    in.t0 = clock_now_s();
    double wall_t0 = 0;
    {
        cJSON *j = failover_events(o.url, in.api_key);
        const cJSON *now = cJSON_GetObjectItemCaseSensitive(j, "now");
        if (!cJSON_IsNumber(now)) {
            fprintf(stderr, "facet bench failover: GET %s/admin/events did not answer: is this a facet server (with the API key)?\n",
                    o.url);
            return 1;
        }
        wall_t0 = now->valuedouble; /* the server's clock at our start */
        cJSON_Delete(j);
    }
    pthread_t th;
    facet_thread_start(&th, injector_main, &in, "fault injector");
    int rounds = 0;
    while (rounds < MAX_ROUNDS && (atomic_load(&in.n_done) < o.n_faults) && !in.error[0]) {
        seed_round(round, base, n, o.seed, rounds);
        round_start[rounds] = clock_now_s() - in.t0;
        if (!bench_client_run(&co, round, n, tok, faulted + (size_t)rounds * n, &err)) break;
        rounds++;
        log_info("bench failover: round %d done, %d of %d faults injected", rounds, atomic_load(&in.n_done), o.n_faults);
    }
    atomic_store(&in.stop, true);
    pthread_join(th, NULL);
    double faulted_s = clock_now_s() - in.t0;
    if (in.error[0]) fprintf(stderr, "facet bench failover: %s\n", in.error);

    /* 2. the same requests, undisturbed */
    log_info("bench failover: replaying %d requests undisturbed", rounds * n);
    bench_record *clean = xcalloc((size_t)n * (size_t)(rounds ? rounds : 1), sizeof *clean);
    double t_clean = clock_now_s();
    for (int r = 0; r < rounds; r++) {
        seed_round(round, base, n, o.seed, r);
        bench_client_run(&co, round, n, tok, clean + (size_t)r * n, &err);
    }
    double clean_s = clock_now_s() - t_clean;

    /* 3. token by token */
    outcome f = {0}, c = {0};
    char first_problem[400] = "";
    for (int i = 0; i < rounds * n; i++) {
        const bench_record *a = &faulted[i], *b = &clean[i];
        if (a->ok) f.completed++, f.tokens += a->output_len;
        else if (is_lost(a)) f.lost++;
        else f.failed++;
        if (b->ok) c.completed++, c.tokens += b->output_len;
        if (!a->ok && !first_problem[0]) snprintf(first_problem, sizeof first_problem, "request %d: %s", i, a->error);
        if (!a->ok || !b->ok) continue;
        c.compared++;
        bool same = strcmp(a->output, b->output) == 0 && strcmp(a->tokens, b->tokens) == 0 && strcmp(a->finish, b->finish) == 0;
        if (!same) {
            f.mismatched++;
            if (!first_problem[0]) snprintf(first_problem, sizeof first_problem, "request %d: its tokens differ from the undisturbed run's", i);
        }
    }
    /* the recovery of each fault, from the server's timeline */
    cJSON *events_doc = failover_events(o.url, in.api_key);
    const cJSON *events = cJSON_GetObjectItemCaseSensitive(events_doc, "events");
    int n_inj = atomic_load(&in.n_done), ne = cJSON_GetArraySize(events);
    double *detect = xcalloc((size_t)ne + 1, sizeof *detect), *reform = xcalloc((size_t)ne + 1, sizeof *reform);
    double *first = xcalloc((size_t)ne + 1, sizeof *first);
    int nd = 0, broke = 0;
    for (int i = 0; i < ne; i++) {
        const cJSON *e = cJSON_GetArrayItem(events, i);
        const cJSON *inj = cJSON_GetObjectItemCaseSensitive(e, "injected_at");
        const cJSON *det = cJSON_GetObjectItemCaseSensitive(e, "detected_at");
        const cJSON *ref = cJSON_GetObjectItemCaseSensitive(e, "reformed_at");
        const cJSON *ft = cJSON_GetObjectItemCaseSensitive(e, "first_token_at");
        if (!cJSON_IsNumber(inj) || inj->valuedouble < wall_t0) continue; /* not one of ours */
        broke++;
        if (!cJSON_IsNumber(det) || !cJSON_IsNumber(ref) || !cJSON_IsNumber(ft)) continue;
        detect[nd] = det->valuedouble - inj->valuedouble;
        reform[nd] = ref->valuedouble - inj->valuedouble;
        first[nd] = ft->valuedouble - inj->valuedouble;
        nd++;
    }
    span sd = span_of(detect, nd), sr = span_of(reform, nd), sf = span_of(first, nd);
    double *bins;
    int n_bins = throughput_bins(faulted, round_start, rounds, n, &bins);
    double *sorted = xmalloc((size_t)n_bins * sizeof *sorted);
    memcpy(sorted, bins, (size_t)n_bins * sizeof *sorted);
    qsort(sorted, (size_t)n_bins, sizeof *sorted, cmp_double);
    double typical = n_bins ? sorted[n_bins / 2] : 0, dip_sum = 0;
    int dips = 0;
    for (int i = 0; i < n_inj; i++) { /* the lowest 1 s around each fault, against the median */
        int lo = (int)(in.done[i].at / BIN_S), hi = lo + (int)(3.0 / BIN_S);
        double m = INFINITY;
        for (int k = lo; k <= hi && k < n_bins; k++) m = bins[k] < m ? bins[k] : m;
        if (isfinite(m) && typical > 0) dip_sum += 1 - m / typical, dips++;
    }
    double f_tps = f.tokens / faulted_s, c_tps = c.tokens / clean_s;

    printf("============ facet bench failover ============\n");
    printf("%-44s %s\n", "Server:", o.url);
    printf("%-44s %d (%s)\n", "Faults injected:", n_inj, o.faults_mix);
    printf("%-44s %d\n", "  of which broke the group:", broke);
    printf("%-44s %d (%d rounds of %d)\n", "Requests:", rounds * n, rounds, n);
    printf("%-44s %d\n", "  completed:", f.completed);
    printf("%-44s %d\n", "  failed (an error):", f.failed);
    printf("%-44s %d\n", "  lost (no complete answer):", f.lost);
    printf("%-44s %d of %d compared\n", "  mismatched (vs undisturbed):", f.mismatched, c.compared);
    printf("%-44s %.0f\n", "Replays (the server's count):", metric(o.url, in.api_key, "facet_replays_total"));
    printf("---------------- Recovery (s after the fault) ----------------\n");
    printf("%-28s %8s %8s %8s\n", "", "p50", "p99", "max");
    printf("%-28s %8.3f %8.3f %8.3f\n", "detected", sd.p50, sd.p99, sd.max);
    printf("%-28s %8.3f %8.3f %8.3f\n", "re-formed", sr.p50, sr.p99, sr.max);
    printf("%-28s %8.3f %8.3f %8.3f\n", "first token after", sf.p50, sf.p99, sf.max);
    printf("---------------- Throughput ----------------\n");
    printf("%-44s %.1f\n", "Output tok/s, with faults:", f_tps);
    printf("%-44s %.1f\n", "Output tok/s, undisturbed:", c_tps);
    printf("%-44s %.0f %%\n", "Mean dip in the 3 s after a fault:", dips ? 100 * dip_sum / dips : 0);
    printf("==============================================\n");
    if (first_problem[0]) printf("first problem: %s\n", first_problem);

    if (o.result_json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "url", o.url);
        cJSON_AddStringToObject(j, "faults", o.faults_mix);
        cJSON_AddNumberToObject(j, "faults_injected", n_inj);
        cJSON_AddNumberToObject(j, "faults_that_broke_the_group", broke);
        cJSON_AddNumberToObject(j, "requests", rounds * n);
        cJSON_AddNumberToObject(j, "completed", f.completed);
        cJSON_AddNumberToObject(j, "failed", f.failed);
        cJSON_AddNumberToObject(j, "lost", f.lost);
        cJSON_AddNumberToObject(j, "mismatched", f.mismatched);
        cJSON_AddNumberToObject(j, "compared", c.compared);
        cJSON_AddNumberToObject(j, "replays", metric(o.url, in.api_key, "facet_replays_total"));
        const char *names[] = {"detected_s", "reformed_s", "first_token_s"};
        const span *spans[] = {&sd, &sr, &sf};
        for (int k = 0; k < 3; k++) {
            cJSON *s = cJSON_AddObjectToObject(j, names[k]);
            cJSON_AddNumberToObject(s, "p50", spans[k]->p50);
            cJSON_AddNumberToObject(s, "p99", spans[k]->p99);
            cJSON_AddNumberToObject(s, "max", spans[k]->max);
            cJSON_AddNumberToObject(s, "n", spans[k]->n);
        }
        cJSON_AddNumberToObject(j, "output_tok_s_faulted", f_tps);
        cJSON_AddNumberToObject(j, "output_tok_s_undisturbed", c_tps);
        cJSON_AddNumberToObject(j, "mean_dip", dips ? dip_sum / dips : 0);
        cJSON *arr = cJSON_AddArrayToObject(j, "injections");
        for (int i = 0; i < n_inj; i++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddNumberToObject(x, "at_s", in.done[i].at);
            cJSON_AddNumberToObject(x, "rank", in.done[i].rank);
            cJSON_AddStringToObject(x, "fault", in.done[i].armed);
            cJSON_AddItemToArray(arr, x);
        }
        cJSON_AddItemToObject(j, "server_events", cJSON_Duplicate(events, true));
        char *text = cJSON_Print(j);
        FILE *fp = fopen(o.result_json, "w");
        if (!fp || fputs(text, fp) < 0) fprintf(stderr, "facet bench failover: cannot write %s\n", o.result_json);
        if (fp) fclose(fp);
        free(text);
        cJSON_Delete(j);
    }
    if (o.plot) {
        err.msg[0] = '\0';
        svg_timeline(o.plot, bins, n_bins, in.done, n_inj, events, wall_t0, &err);
        if (err.msg[0]) fprintf(stderr, "facet bench failover: %s\n", err.msg);
    }
    bool bad = f.lost || f.failed || f.mismatched || n_inj < o.n_faults;
    if (n_inj < o.n_faults) fprintf(stderr, "facet bench failover: only %d of %d faults were injected\n", n_inj, o.n_faults);
    for (int i = 0; i < rounds * n; i++) bench_record_free(&faulted[i]), bench_record_free(&clean[i]);
    free(faulted), free(clean), free(round), free(round_start), free(in.done);
    free(detect), free(reform), free(first), free(bins), free(sorted);
    cJSON_Delete(events_doc);
    bench_dataset_free(base, n);
    tokenizer_free(tok);
    return bad ? 1 : 0;
}
