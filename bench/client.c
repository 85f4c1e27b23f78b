#include "bench/client.h"
#include "common/alloc.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/rng.h"
#include "common/strbuf.h"

#define RAW_KEEP 2048 /* bytes of a response kept for error messages */

/* ---- arrivals -------------------------------------------------------------------- */

static double normal01(uint64_t *rng) {
    double u1 = splitmix64_unit(rng), u2 = splitmix64_unit(rng);
    return sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * M_PI * u2);
}

/* Gamma(shape, 1) by Marsaglia and Tsang; shape < 1 by boosting. */
static double gamma_draw(double shape, uint64_t *rng) {
    if (shape < 1.0) return gamma_draw(shape + 1.0, rng) * pow(1.0 - splitmix64_unit(rng), 1.0 / shape);
    double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x = normal01(rng), v = 1.0 + c * x;
        if (v <= 0) continue;
        v = v * v * v;
        double u = 1.0 - splitmix64_unit(rng);
        if (log(u) < 0.5 * x * x + d - d * v + d * log(v)) return d * v;
    }
}

void bench_arrivals(double rate, double burstiness, uint64_t seed, int n, double *at) {
    uint64_t rng = seed ^ 0xA5A5A5A5ull;
    double t = 0;
    for (int i = 0; i < n; i++) {
        at[i] = t;
        if (rate > 0 && isfinite(rate)) t += gamma_draw(burstiness, &rng) / (rate * burstiness); /* mean 1 / rate */
    }
}

/* ---- one request ------------------------------------------------------------------------ */

typedef struct xfer {
    CURL *h;
    struct curl_slist *headers;
    char *body;
    bench_record *rec;
    bool chat;
    double t0;         /* the run's start (clock_now_s) */
    strbuf pending;    /* bytes not yet split into lines */
    strbuf raw;        /* the first RAW_KEEP bytes, for error messages */
    strbuf text;       /* generated text */
    strbuf tokens;     /* with keep_output: the token strings, '\x1f' after each */
    char finish[16];
    bool got_first, keep_output;
    double last_s;     /* the last content chunk */
    int chunks, usage_tokens;
    char stream_error[160];
} xfer;

static double now_rel(const xfer *x) { return clock_now_s() - x->t0; }

static void take_event(xfer *x, const char *data, double now) {
    if (strcmp(data, "[DONE]") == 0) return;
    cJSON *j = cJSON_Parse(data);
    if (!j) return;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (e) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
        snprintf(x->stream_error, sizeof x->stream_error, "%s", cJSON_IsString(m) ? m->valuestring : "error event");
    }
    const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
    const cJSON *content = x->chat ? cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ch, "delta"), "content")
                                   : cJSON_GetObjectItemCaseSensitive(ch, "text");
    if (cJSON_IsString(content) && content->valuestring[0]) {
        if (!x->got_first) x->rec->ttft_s = now - x->rec->send_s, x->got_first = true;
        else bench_record_add_itl(x->rec, now - x->last_s);
        x->last_s = now;
        x->chunks++;
        strbuf_append_str(&x->text, content->valuestring);
    }
    const cJSON *toks = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ch, "logprobs"), "tokens");
    for (const cJSON *t = cJSON_IsArray(toks) ? toks->child : NULL; t; t = t->next)
        if (cJSON_IsString(t)) strbuf_append_str(&x->tokens, t->valuestring), strbuf_append(&x->tokens, "\x1f", 1);
    const cJSON *fin = cJSON_GetObjectItemCaseSensitive(ch, "finish_reason");
    if (cJSON_IsString(fin)) snprintf(x->finish, sizeof x->finish, "%s", fin->valuestring);
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(j, "usage");
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens");
    if (cJSON_IsNumber(ct)) x->usage_tokens = ct->valueint;
    cJSON_Delete(j);
}

/* SSE: "data: {...}" lines; others (comments, event names, blank) are skipped. */
static size_t on_bytes(char *ptr, size_t size, size_t nmemb, void *ud) {
    xfer *x = ud;
    size_t n = size * nmemb;
    double now = now_rel(x);
    if (x->raw.len < RAW_KEEP) strbuf_append(&x->raw, ptr, n < RAW_KEEP - x->raw.len ? n : RAW_KEEP - x->raw.len);
    strbuf_append(&x->pending, ptr, n);
    size_t start = 0;
    for (size_t i = 0; i < x->pending.len; i++) {
        if (x->pending.data[i] != '\n') continue;
        x->pending.data[i] = '\0';
        char *line = x->pending.data + start;
        size_t len = i - start;
        if (len && line[len - 1] == '\r') line[len - 1] = '\0';
        if (strncmp(line, "data:", 5) == 0) take_event(x, line + 5 + (line[5] == ' '), now);
        start = i + 1;
    }
    if (start > 0) { /* keep the unfinished line */
        memmove(x->pending.data, x->pending.data + start, x->pending.len - start);
        x->pending.len -= start;
    }
    return n;
}

static char *request_body(const bench_client_opts *o, const bench_prompt *p, bool chat) {
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "model", o->model);
    if (chat) {
        cJSON *msgs = cJSON_AddArrayToObject(b, "messages");
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "user");
        cJSON_AddStringToObject(m, "content", p->text);
        cJSON_AddItemToArray(msgs, m);
    } else {
        cJSON_AddStringToObject(b, "prompt", p->text);
    }
    cJSON_AddNumberToObject(b, "max_tokens", p->output_len); /* chat too: every server still takes it */
    cJSON_AddNumberToObject(b, "temperature", o->temperature);
    if (p->has_seed) cJSON_AddNumberToObject(b, "seed", (double)p->seed);
    if (o->keep_output && !chat) cJSON_AddNumberToObject(b, "logprobs", 0); /* the tokens themselves, to compare */
    cJSON_AddBoolToObject(b, "stream", true);
    cJSON_AddBoolToObject(cJSON_AddObjectToObject(b, "stream_options"), "include_usage", true);
    if (o->ignore_eos) cJSON_AddBoolToObject(b, "ignore_eos", true);
    cJSON *extra = o->extra_body ? cJSON_Parse(o->extra_body) : NULL; /* checked by the caller */
    for (cJSON *f = extra ? extra->child : NULL; f; f = f->next) {
        cJSON_DeleteItemFromObjectCaseSensitive(b, f->string);
        cJSON_AddItemToObject(b, f->string, cJSON_Duplicate(f, true));
    }
    cJSON_Delete(extra);
    char *s = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    return s;
}

static xfer *xfer_start(const bench_client_opts *o, const bench_prompt *p, bench_record *rec, double t0, CURLM *m) {
    xfer *x = xcalloc(1, sizeof *x);
    x->rec = rec;
    x->t0 = t0;
    x->chat = strstr(o->endpoint, "chat") != NULL;
    x->usage_tokens = -1;
    x->keep_output = o->keep_output;
    strbuf_init(&x->pending), strbuf_init(&x->raw), strbuf_init(&x->text), strbuf_init(&x->tokens);
    x->body = request_body(o, p, x->chat);
    char url[2048], auth[600];
    snprintf(url, sizeof url, "%s%s", o->url, o->endpoint);
    x->headers = curl_slist_append(NULL, "Content-Type: application/json");
    x->headers = curl_slist_append(x->headers, "Accept: text/event-stream");
    if (o->api_key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", o->api_key);
        x->headers = curl_slist_append(x->headers, auth);
    }
    x->h = curl_easy_init();
    curl_easy_setopt(x->h, CURLOPT_URL, url);
    curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, x->body);
    curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, on_bytes);
    curl_easy_setopt(x->h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(x->h, CURLOPT_PRIVATE, x);
    curl_easy_setopt(x->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(x->h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(x->h, CURLOPT_TIMEOUT_MS, (long)(o->timeout_s * 1e3));
    rec->input_len = p->input_len;
    rec->send_s = now_rel(x);
    curl_multi_add_handle(m, x->h);
    return x;
}

/* The server's message from an error body ({"error": {"message": ...}}), else its first bytes. */
static void error_text(const xfer *x, long status, char *out, size_t len) {
    cJSON *j = cJSON_ParseWithLength(x->raw.data ? x->raw.data : "", x->raw.len);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "error"), "message");
    if (!cJSON_IsString(m)) m = cJSON_GetObjectItemCaseSensitive(j, "error"); /* some servers: {"error": "..."} */
    if (cJSON_IsString(m)) snprintf(out, len, "HTTP %ld: %.150s", status, m->valuestring);
    else snprintf(out, len, "HTTP %ld: %.150s", status, x->raw.data ? x->raw.data : "(empty body)");
    cJSON_Delete(j);
    for (char *c = out; *c; c++)
        if (*c == '\n' || *c == '\r') *c = ' ';
}

static int count_output(const xfer *x, const tokenizer *tok) {
    if (x->usage_tokens >= 0) return x->usage_tokens;
    if (tok && x->text.len) {
        token_list ids;
        token_list_init(&ids);
        errbuf err;
        int n = tokenizer_encode(tok, x->text.data, x->text.len, ENCODE_PLAIN_TEXT, &ids, &err) ? ids.n : x->chunks;
        token_list_free(&ids);
        return n;
    }
    return x->chunks;
}

static void xfer_finish(xfer *x, CURLcode rc, const tokenizer *tok) {
    bench_record *r = x->rec;
    long status = 0;
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
    double now = now_rel(x);
    if (rc != CURLE_OK) {
        snprintf(r->error, sizeof r->error, "%s", curl_easy_strerror(rc));
    } else if (status != 200) {
        error_text(x, status, r->error, sizeof r->error);
    } else if (x->stream_error[0]) {
        snprintf(r->error, sizeof r->error, "error in the stream: %s", x->stream_error);
    } else if (!x->got_first) {
        snprintf(r->error, sizeof r->error, "the stream ended without content");
    } else {
        r->ok = true;
        r->output_len = count_output(x, tok);
    }
    r->end_s = r->ok ? x->last_s : now; /* E2EL ends at the last content chunk (vLLM) */
    if (!r->ok) bench_record_free(r);
    if (x->keep_output) {
        r->output = xstrndup(x->text.data ? x->text.data : "", x->text.len);
        r->tokens = xstrndup(x->tokens.data ? x->tokens.data : "", x->tokens.len);
        snprintf(r->finish, sizeof r->finish, "%s", x->finish);
    }
}

static void xfer_free(xfer *x, CURLM *m) {
    curl_multi_remove_handle(m, x->h);
    curl_easy_cleanup(x->h);
    curl_slist_free_all(x->headers);
    free(x->body);
    strbuf_free(&x->pending), strbuf_free(&x->raw), strbuf_free(&x->text), strbuf_free(&x->tokens);
    free(x);
}

static void progress(int done, int n, int failed) {
    int width = 40, filled = n ? done * width / n : width;
    fprintf(stderr, "\r[%.*s%*s] %d/%d requests%s", filled, "########################################", width - filled,
            "", done, n, failed ? "" : "");
    if (failed) fprintf(stderr, " (%d failed)", failed);
    if (done == n) fprintf(stderr, "\n");
    fflush(stderr);
}

bool bench_client_run(const bench_client_opts *o, const bench_prompt *prompts, int n, const tokenizer *tok,
                      bench_record *recs, errbuf *err) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) return errbuf_set(err, "libcurl cannot initialise");
    CURLM *m = curl_multi_init();
    if (!m) return errbuf_set(err, "libcurl: no multi handle");
    double *at = xmalloc((size_t)n * sizeof *at);
    bench_arrivals(o->request_rate, o->burstiness > 0 ? o->burstiness : 1.0, o->seed, n, at);
    memset(recs, 0, (size_t)n * sizeof *recs);
    double t0 = clock_now_s();
    int next = 0, active = 0, done = 0, failed = 0;
    if (o->progress) progress(0, n, 0);
    while (done < n) {
        double now = clock_now_s() - t0;
        while (next < n && at[next] <= now && (o->max_concurrency <= 0 || active < o->max_concurrency)) {
            xfer_start(o, &prompts[next], &recs[next], t0, m);
            next++, active++;
        }
        int running;
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            xfer *x;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            xfer_finish(x, msg->data.result, tok);
            failed += !x->rec->ok;
            xfer_free(x, m);
            active--, done++;
            if (o->progress) progress(done, n, failed);
        }
        int wait_ms = 50;
        if (next < n && (o->max_concurrency <= 0 || active < o->max_concurrency)) {
            double until = (at[next] - (clock_now_s() - t0)) * 1e3;
            wait_ms = until < 0 ? 0 : until < wait_ms ? (int)until : wait_ms;
        }
        if (done < n) curl_multi_poll(m, NULL, 0, wait_ms, NULL);
    }
    curl_multi_cleanup(m);
    free(at);
    return true;
}

static size_t into_strbuf(char *ptr, size_t size, size_t nmemb, void *ud) {
    strbuf_append(ud, ptr, size * nmemb);
    return size * nmemb;
}

bool bench_client_model_id(const char *url, const char *api_key, char *out, size_t len, errbuf *err) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) return errbuf_set(err, "libcurl cannot initialise");
    char full[2048], auth[600];
    snprintf(full, sizeof full, "%s/v1/models", url);
    struct curl_slist *headers = NULL;
    if (api_key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", api_key);
        headers = curl_slist_append(headers, auth);
    }
    strbuf body;
    strbuf_init(&body);
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, full);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, into_strbuf);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    curl_slist_free_all(headers);
    bool ok = false;
    if (rc != CURLE_OK) {
        errbuf_set(err, "%s: %s", full, curl_easy_strerror(rc));
    } else if (status != 200) {
        errbuf_set(err, "%s: HTTP %ld", full, status);
    } else {
        cJSON *j = cJSON_ParseWithLength(body.data ? body.data : "", body.len);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "data"), 0), "id");
        if (cJSON_IsString(id)) snprintf(out, len, "%s", id->valuestring), ok = true;
        else errbuf_set(err, "%s: no model listed", full);
        cJSON_Delete(j);
    }
    strbuf_free(&body);
    return ok;
}
