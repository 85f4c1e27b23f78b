/* facet bench serve — the serving benchmark against any OpenAI-compatible
 * server (docs/BENCH.md): a dataset of prompts of known token lengths, sent
 * at a request rate (or a sweep of rates), each run reported as vLLM's
 * `vllm bench serve` reports it, plus a JSON result and an SVG plot. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"
#include "common/alloc.h"
#include "bench/client.h"
#include "bench/dataset.h"
#include "bench/report.h"
#include "common/args.h"
#include "common/log.h"
#include "common/secret.h"
#include "model/checkpoint.h"
#include "model/make_model.h"

#define MAX_RATES 16

typedef struct serve_opts {
    const char *url, *endpoint, *dataset, *dataset_path, *rates, *goodput, *result_json, *plot, *model_dir;
    const char *tokenizer_path, *served_name, *api_key, *api_key_file, *label, *extra_body;
    int num_prompts, input_len, output_len, prefix_len, max_concurrency;
    double range_ratio, burstiness, temperature, timeout_s;
    float range_ratio_f, burstiness_f, temperature_f, timeout_f;
    bool no_ignore_eos, no_progress, output_len_given;
    uint64_t seed;
} serve_opts;

/* "1,2,4,inf" -> rates; inf (or 0) means all at once. */
static int parse_rates(const char *s, double *out, int max) {
    int n = 0;
    while (*s && n < max) {
        char *end;
        if (strncmp(s, "inf", 3) == 0) out[n++] = INFINITY, end = (char *)s + 3;
        else {
            double v = strtod(s, &end);
            if (end == s || !(v >= 0)) return -1;
            out[n++] = v > 0 ? v : INFINITY;
        }
        if (*end == ',') end++;
        else if (*end) return -1;
        s = end;
    }
    return n;
}

/* "ttft:200 tpot:50 e2el:2000" (spaces or commas) into SLOs in ms. */
static bool parse_goodput(const char *s, bench_slo *slo, errbuf *err) {
    memset(slo, 0, sizeof *slo);
    if (!s) return true;
    char *copy = xstrdup(s), *save = NULL;
    bool ok = true;
    for (char *tok = strtok_r(copy, " ,", &save); ok && tok; tok = strtok_r(NULL, " ,", &save)) {
        char *colon = strchr(tok, ':');
        double v = colon ? strtod(colon + 1, NULL) : 0;
        if (!colon || !(v > 0)) ok = errbuf_set(err, "--goodput: \"%s\" is not NAME:MS with MS > 0", tok);
        else if (strncmp(tok, "ttft:", 5) == 0) slo->ttft_ms = v;
        else if (strncmp(tok, "tpot:", 5) == 0) slo->tpot_ms = v;
        else if (strncmp(tok, "e2el:", 5) == 0) slo->e2el_ms = v;
        else ok = errbuf_set(err, "--goodput: unknown metric in \"%s\" (ttft, tpot or e2el)", tok);
    }
    free(copy);
    return ok;
}

static tokenizer *open_tokenizer(const serve_opts *o, errbuf *err) {
    if (o->tokenizer_path) {
        tokenizer *tok = tokenizer_load(o->tokenizer_path, err);
        if (tok) log_info("bench: counting tokens with %s", o->tokenizer_path);
        return tok;
    }
    const char *dir = o->model_dir ? o->model_dir : default_model_dir();
    if (!o->model_dir && !ensure_default_model(dir, err)) return NULL;
    tokenizer *tok = model_open_tokenizer(dir, err);
    if (tok) log_info("bench: counting tokens with %s's tokenizer", dir);
    return tok;
}

/* One run: its object; a sweep: the array of runs. */
static bool write_json(const char *path, const cJSON *runs, int n_runs, errbuf *err) {
    char *s = cJSON_Print(n_runs == 1 ? cJSON_GetArrayItem(runs, 0) : runs);
    FILE *f = fopen(path, "w");
    bool ok = f && fputs(s, f) >= 0;
    if (f && fclose(f) != 0) ok = false;
    free(s);
    return ok ? true : errbuf_set(err, "cannot write %s", path);
}

int bench_serve_main(int argc, char **argv) {
    serve_opts o = {.url = "http://127.0.0.1:8000", .endpoint = "/v1/completions", .dataset = "random", .rates = "inf",
                    .num_prompts = 100, .input_len = 128, .output_len = 128, .burstiness_f = 1.0f,
                    .timeout_f = 3600.0f};
    const arg_spec specs[] = {
        {"url", ARG_STRING, &o.url, "the server (default http://127.0.0.1:8000)", 0, 0, NULL},
        {"endpoint", ARG_STRING, &o.endpoint, "/v1/completions (default) or /v1/chat/completions", 0, 0, NULL},
        {"dataset", ARG_STRING, &o.dataset, "random (default), sharegpt or prefix", 0, 0, NULL},
        {"dataset-path", ARG_STRING, &o.dataset_path, "the ShareGPT JSON file", 0, 0, NULL},
        {"num-prompts", ARG_INT, &o.num_prompts, "requests to send (default 100)", 1, 1 << 20, NULL},
        {"input-len", ARG_INT, &o.input_len, "prompt tokens (random, prefix; default 128)", 1, 1 << 20, NULL},
        {"output-len", ARG_INT, &o.output_len, "tokens to generate (default 128; sharegpt: the reply's length unless given)", 1, 1 << 20, &o.output_len_given},
        {"range-ratio", ARG_FLOAT, &o.range_ratio_f, "lengths uniform within ±ratio (default 0)", 0, 1, NULL},
        {"prefix-len", ARG_INT, &o.prefix_len, "prefix dataset: shared prefix tokens", 0, 1 << 20, NULL},
        {"request-rate", ARG_STRING, &o.rates, "requests/s, or inf (default), or a sweep: 1,2,4,inf", 0, 0, NULL},
        {"burstiness", ARG_FLOAT, &o.burstiness_f, "gamma shape of arrival gaps (1 = Poisson, default)", 0.01, 100, NULL},
        {"max-concurrency", ARG_INT, &o.max_concurrency, "requests in flight at most (default: no cap)", 1, 1 << 20, NULL},
        {"goodput", ARG_STRING, &o.goodput, "SLOs for goodput, e.g. \"ttft:500 tpot:50 e2el:5000\" (ms)", 0, 0, NULL},
        {"seed", ARG_U64, &o.seed, "dataset and arrival seed (default 0)", 0, 0, NULL},
        {"result-json", ARG_STRING, &o.result_json, "write the results here (one object, or an array for a sweep)", 0, 0, NULL},
        {"plot", ARG_STRING, &o.plot, "write an SVG plot here", 0, 0, NULL},
        {"model", ARG_STRING, &o.model_dir, "count tokens with this model's tokenizer: a checkpoint directory or GGUF file (default: the built-in tiny model's)", 0, 0, NULL},
        {"tokenizer", ARG_STRING, &o.tokenizer_path, "count tokens with this tokenizer.model", 0, 0, NULL},
        {"served-model-name", ARG_STRING, &o.served_name, "the requests' \"model\" (default: the server's first in /v1/models)", 0, 0, NULL},
        {"api-key-file", ARG_STRING, &o.api_key_file, "send 'Authorization: Bearer KEY' with the key in this file (or $OPENAI_API_KEY)", 0, 0, NULL},
        {"label", ARG_STRING, &o.label, "this server's name in the JSON and plot", 0, 0, NULL},
        {"temperature", ARG_FLOAT, &o.temperature_f, "sampling temperature (default 0)", 0, 100, NULL},
        {"no-ignore-eos", ARG_FLAG, &o.no_ignore_eos, "do not send ignore_eos (for servers that refuse it)", 0, 0, NULL},
        {"extra-body", ARG_STRING, &o.extra_body, "a JSON object merged into every request, e.g. '{\"cache_prompt\": false}'", 0, 0, NULL},
        {"request-timeout", ARG_FLOAT, &o.timeout_f, "seconds a request may take (default 3600)", 1, 1e6, NULL},
        {"no-progress", ARG_FLAG, &o.no_progress, "no progress bar", 0, 0, NULL},
    };
    static const arg_command cmd = {"bench serve", "facet bench serve --url URL [options]",
                                    "Benchmarks an OpenAI-compatible server (facet, vLLM, TGI, llama.cpp) as vLLM's\n"
                                    "`vllm bench serve` does: TTFT, TPOT, ITL, E2EL, throughput, goodput."};
    int rc = args_handle(&cmd, specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != ARGS_CONTINUE) return rc;
    o.range_ratio = o.range_ratio_f, o.burstiness = o.burstiness_f, o.temperature = o.temperature_f,
    o.timeout_s = o.timeout_f;
    double rates[MAX_RATES];
    int n_rates = parse_rates(o.rates, rates, MAX_RATES);
    errbuf err;
    char api_key[SECRET_MAX];
    bool have_key;
    if (!secret_load(o.api_key_file, "OPENAI_API_KEY", api_key, sizeof api_key, &have_key, &err)) {
        fprintf(stderr, "facet bench serve: API key: %s\n", err.msg);
        return 2;
    }
    o.api_key = have_key ? api_key : NULL;
    bench_slo slo;
    if (n_rates < 1) {
        fprintf(stderr, "facet bench serve: --request-rate: \"%s\" is not a list of rates (numbers or inf)\n", o.rates);
        return 2;
    }
    if (!parse_goodput(o.goodput, &slo, &err)) {
        fprintf(stderr, "facet bench serve: %s\n", err.msg);
        return 2;
    }
    cJSON *extra = o.extra_body ? cJSON_Parse(o.extra_body) : NULL;
    bool extra_ok = !o.extra_body || cJSON_IsObject(extra);
    cJSON_Delete(extra);
    if (!extra_ok) {
        fprintf(stderr, "facet bench serve: --extra-body: not a JSON object\n");
        return 2;
    }
    if (strcmp(o.dataset, "sharegpt") == 0 && !o.dataset_path) {
        fprintf(stderr, "facet bench serve: --dataset sharegpt needs --dataset-path FILE\n");
        return 2;
    }
    if (strcmp(o.dataset, "random") != 0 && strcmp(o.dataset, "sharegpt") != 0 && strcmp(o.dataset, "prefix") != 0) {
        fprintf(stderr, "facet bench serve: --dataset %s: choose random, sharegpt or prefix\n", o.dataset);
        return 2;
    }
    tokenizer *tok = open_tokenizer(&o, &err);
    bench_dataset_opts d = {.kind = o.dataset, .path = o.dataset_path, .num_prompts = o.num_prompts,
                            .input_len = o.input_len, .output_len = o.output_len, .prefix_len = o.prefix_len,
                            .output_len_given = o.output_len_given, .range_ratio = o.range_ratio, .seed = o.seed};
    bench_prompt *prompts = NULL;
    if (!tok || !bench_dataset_make(&d, tok, &prompts, &err)) {
        fprintf(stderr, "facet bench serve: %s\n", err.msg);
        tokenizer_free(tok);
        return 1;
    }
    char model[256] = "default";
    if (o.served_name) snprintf(model, sizeof model, "%s", o.served_name);
    else if (!bench_client_model_id(o.url, o.api_key, model, sizeof model, &err))
        log_warn("bench: cannot list the server's models (%s); sending \"model\": \"default\"", err.msg);

    bench_client_opts co = {.url = o.url, .endpoint = o.endpoint, .model = model, .api_key = o.api_key,
                            .burstiness = o.burstiness, .max_concurrency = o.max_concurrency,
                            .temperature = o.temperature, .ignore_eos = !o.no_ignore_eos, .extra_body = o.extra_body,
                            .timeout_s = o.timeout_s,
                            .seed = o.seed, .progress = !o.no_progress && isatty(STDERR_FILENO)};
    bench_record *recs = xcalloc((size_t)o.num_prompts, sizeof *recs);
    bench_metrics *ms = xcalloc((size_t)n_rates, sizeof *ms);
    cJSON *runs = cJSON_CreateArray();
    int total_failed = 0;
    char first_error[256] = "";
    for (int r = 0; r < n_rates; r++) {
        co.request_rate = rates[r];
        bench_run_info info = {o.label, o.url, o.endpoint, model, o.dataset, o.num_prompts, o.max_concurrency,
                               rates[r], o.burstiness, slo};
        if (!bench_client_run(&co, prompts, o.num_prompts, tok, recs, &err)) {
            fprintf(stderr, "facet bench serve: %s\n", err.msg);
            break;
        }
        bench_compute(recs, o.num_prompts, &slo, &ms[r]);
        bench_print_table(stdout, &info, &ms[r]);
        fflush(stdout);
        cJSON_AddItemToArray(runs, bench_result_json(&info, &ms[r], recs, o.num_prompts));
        total_failed += ms[r].failed;
        for (int i = 0; i < o.num_prompts; i++) {
            if (!recs[i].ok && !first_error[0]) snprintf(first_error, sizeof first_error, "%s", recs[i].error);
            bench_record_free(&recs[i]);
        }
    }
    bool ok = cJSON_GetArraySize(runs) == n_rates;
    err.msg[0] = '\0';
    if (ok && o.result_json) ok = write_json(o.result_json, runs, n_rates, &err);
    cJSON_Delete(runs);
    if (ok && o.plot) {
        bench_series s = {o.label ? o.label : model, n_rates, rates, ms};
        char title[512];
        snprintf(title, sizeof title, "facet bench serve: %s%s, %s dataset, %d prompts (in %d, out %d)", o.url,
                 o.endpoint, o.dataset, o.num_prompts, o.input_len, o.output_len);
        ok = bench_plot_svg(o.plot, title, &s, 1, &err);
    }
    if (!ok && err.msg[0]) fprintf(stderr, "facet bench serve: %s\n", err.msg);
    if (ok && total_failed)
        fprintf(stderr, "facet bench serve: %d of %d requests to %s%s failed; the first: %s\n", total_failed,
                o.num_prompts * n_rates, o.url, o.endpoint, first_error);
    free(recs), free(ms);
    bench_dataset_free(prompts, o.num_prompts);
    tokenizer_free(tok);
    return ok && !total_failed ? 0 : 1;
}
