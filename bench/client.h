/* client.h — the serving benchmark's load generator: any OpenAI-compatible
 * server over HTTP (libcurl's multi interface: every request in flight on
 * one thread, so timestamps are taken as bytes arrive, not when a thread
 * gets scheduled). Requests stream (SSE); each chunk with content is
 * timestamped; the server's usage chunk gives the output token count.
 * Arrivals follow vLLM: a gamma process of the given rate and burstiness
 * (burstiness 1 = Poisson; rate inf = all at once), optionally capped by
 * --max-concurrency. */
#ifndef FACET_BENCH_CLIENT_H
#define FACET_BENCH_CLIENT_H

#include "bench/dataset.h"
#include "bench/metrics.h"

typedef struct bench_client_opts {
    const char *url;      /* base URL, e.g. http://127.0.0.1:8000 */
    const char *endpoint; /* /v1/completions or /v1/chat/completions */
    const char *model;    /* the request's "model" field */
    const char *api_key;  /* NULL: no Authorization header */
    double request_rate;  /* requests/s; <= 0 or inf: all at once */
    double burstiness;    /* gamma shape of the gaps (1: Poisson) */
    int max_concurrency;  /* 0: no cap */
    double temperature;
    bool ignore_eos;      /* ask for exactly max_tokens (facet, vLLM and llama.cpp accept it) */
    const char *extra_body; /* a JSON object merged into every request, or NULL */
    double timeout_s;     /* per request */
    uint64_t seed;        /* arrival times */
    bool progress;        /* a progress bar on stderr */
    bool keep_output;     /* record each request's text, token strings and finish reason (completions) */
} bench_client_opts;

/* Sends prompts[0..n), fills recs[0..n) (one per prompt, failures included).
 * tok, when given, counts output tokens where a server reports no usage.
 * False only when the run cannot start. */
bool bench_client_run(const bench_client_opts *o, const bench_prompt *prompts, int n, const tokenizer *tok,
                      bench_record *recs, errbuf *err);

/* GET url/v1/models: the first model's id. */
bool bench_client_model_id(const char *url, const char *api_key, char *out, size_t len, errbuf *err);

/* The arrival times of n requests (seconds from the start), as used by the run. */
void bench_arrivals(double rate, double burstiness, uint64_t seed, int n, double *at);

#endif
