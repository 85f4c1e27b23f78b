/* openai.c — OpenAI-compatible requests and responses (see openai.h). */
#include "coordinator/openai.h"
#include "common/alloc.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/utf8.h"

#define MAX_TOKENS_LIMIT (1 << 20)
#define MAX_PROMPT_IDS (1 << 20)

bool api_error_set(api_error *e, int status, const char *param, const char *fmt, ...) {
    e->status = status;
    e->type = status == 401 ? "authentication_error" : status == 404 ? "not_found_error"
            : status == 429 ? "rate_limit_error" : status >= 500 ? "server_error" : "invalid_request_error";
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    e->code[0] = '\0';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return false;
}

char *openai_error_json(const api_error *e) {
    cJSON *root = cJSON_CreateObject();
    cJSON *err = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(err, "message", e->message);
    cJSON_AddStringToObject(err, "type", e->type ? e->type : "invalid_request_error");
    if (e->param[0]) cJSON_AddStringToObject(err, "param", e->param);
    else cJSON_AddNullToObject(err, "param");
    if (e->code[0]) cJSON_AddStringToObject(err, "code", e->code);
    else cJSON_AddNullToObject(err, "code");
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

/* ---- typed fields ------------------------------------------------------------------ */

static const cJSON *field(const cJSON *obj, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return v && !cJSON_IsNull(v) ? v : NULL; /* null means absent, as OpenAI treats it */
}

static bool valid_utf8(const char *s) {
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        int c = utf8_valid_char_len((const uint8_t *)s + i, n - i);
        if (!c) return false;
        i += (size_t)c;
    }
    return true;
}

static bool get_number(const cJSON *obj, const char *name, double lo, double hi, float *out, api_error *err) {
    const cJSON *v = field(obj, name);
    if (!v) return true;
    if (!cJSON_IsNumber(v)) return api_error_set(err, 400, name, "'%s' must be a number", name);
    if (!isfinite(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi)
        return api_error_set(err, 400, name, "'%s' must be between %g and %g (got %g)", name, lo, hi, v->valuedouble);
    *out = (float)v->valuedouble;
    return true;
}

static bool get_int(const cJSON *obj, const char *name, double lo, double hi, int *out, api_error *err) {
    const cJSON *v = field(obj, name);
    if (!v) return true;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return api_error_set(err, 400, name, "'%s' must be an integer", name);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return api_error_set(err, 400, name, "'%s' must be between %.0f and %.0f (got %.0f)", name, lo, hi, v->valuedouble);
    *out = (int)v->valuedouble;
    return true;
}

static bool get_bool(const cJSON *obj, const char *name, bool *out, api_error *err) {
    const cJSON *v = field(obj, name);
    if (!v) return true;
    if (!cJSON_IsBool(v)) return api_error_set(err, 400, name, "'%s' must be true or false", name);
    *out = cJSON_IsTrue(v);
    return true;
}

/* A string field, copied; checked for valid UTF-8. */
static bool get_string(const cJSON *obj, const char *name, char **out, api_error *err) {
    const cJSON *v = field(obj, name);
    if (!v) return true;
    if (!cJSON_IsString(v)) return api_error_set(err, 400, name, "'%s' must be a string", name);
    if (!valid_utf8(v->valuestring)) return api_error_set(err, 400, name, "'%s' is not valid UTF-8", name);
    *out = xstrdup(v->valuestring);
    return true;
}

/* ---- which fields exist --------------------------------------------------------------------- */

static const char *const k_common_fields[] = {
    "model", "max_tokens", "temperature", "top_p", "n", "stream", "stream_options", "stop", "presence_penalty",
    "frequency_penalty", "seed", "user", "logit_bias", "logprobs",
    /* extensions, as vLLM names them */
    "top_k", "min_p", "repetition_penalty", "ignore_eos", NULL};
static const char *const k_completion_fields[] = {"prompt", "echo", "best_of", "suffix", NULL};
static const char *const k_chat_fields[] = {"messages", "max_completion_tokens", "top_logprobs", "response_format", "tools",
                                            "tool_choice", "functions", "function_call", "parallel_tool_calls", NULL};

static bool in_list(const char *const *list, const char *name) {
    for (; *list; list++)
        if (strcmp(*list, name) == 0) return true;
    return false;
}

static bool check_known_fields(const cJSON *root, openai_kind kind, api_error *err) {
    for (const cJSON *f = root->child; f; f = f->next) {
        if (!f->string || !valid_utf8(f->string)) return api_error_set(err, 400, "", "a field name is not valid UTF-8");
        if (in_list(k_common_fields, f->string)) continue;
        if (in_list(kind == OPENAI_CHAT ? k_chat_fields : k_completion_fields, f->string)) continue;
        return api_error_set(err, 400, f->string, "Unrecognized request argument supplied: %s", f->string);
    }
    return true;
}

/* Fields that exist in OpenAI's API but not here: refused unless at their default. */
static bool check_unsupported(const cJSON *root, openai_kind kind, api_error *err) {
    const cJSON *v;
    if ((v = field(root, "logit_bias")) && !(cJSON_IsObject(v) && !v->child))
        return api_error_set(err, 400, "logit_bias", "'logit_bias' is not supported");
    if (kind == OPENAI_COMPLETIONS) {
        if ((v = field(root, "echo")) && !cJSON_IsFalse(v)) return api_error_set(err, 400, "echo", "'echo' is not supported");
        if ((v = field(root, "suffix"))) return api_error_set(err, 400, "suffix", "'suffix' is not supported");
        if ((v = field(root, "best_of")) && !(cJSON_IsNumber(v) && v->valuedouble == 1))
            return api_error_set(err, 400, "best_of", "'best_of' other than 1 is not supported");
        return true;
    }
    static const char *const tools[] = {"tools", "tool_choice", "functions", "function_call"};
    for (int i = 0; i < 4; i++)
        if (field(root, tools[i])) return api_error_set(err, 400, tools[i], "tool and function calling are not supported");
    if ((v = field(root, "parallel_tool_calls")) && !cJSON_IsBool(v))
        return api_error_set(err, 400, "parallel_tool_calls", "'parallel_tool_calls' must be true or false");
    if ((v = field(root, "response_format"))) {
        const cJSON *t = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, "type") : NULL;
        if (!cJSON_IsString(t) || strcmp(t->valuestring, "text") != 0)
            return api_error_set(err, 400, "response_format", "only response_format {\"type\": \"text\"} is supported");
    }
    return true;
}

/* ---- the pieces ------------------------------------------------------------------------------- */

static bool parse_stop(const cJSON *root, openai_request *r, api_error *err) {
    const cJSON *v = field(root, "stop");
    if (!v) return true;
    if (cJSON_IsString(v)) {
        if (!v->valuestring[0]) return api_error_set(err, 400, "stop", "'stop' must not be an empty string");
        if (!valid_utf8(v->valuestring)) return api_error_set(err, 400, "stop", "'stop' is not valid UTF-8");
        r->stop[r->n_stop++] = xstrdup(v->valuestring);
        return true;
    }
    if (!cJSON_IsArray(v)) return api_error_set(err, 400, "stop", "'stop' must be a string or an array of strings");
    if (cJSON_GetArraySize(v) > SESSION_MAX_STOP)
        return api_error_set(err, 400, "stop", "'stop' has more than %d strings", SESSION_MAX_STOP);
    for (const cJSON *s = v->child; s; s = s->next) {
        if (!cJSON_IsString(s) || !s->valuestring[0])
            return api_error_set(err, 400, "stop", "'stop' must hold non-empty strings");
        if (!valid_utf8(s->valuestring)) return api_error_set(err, 400, "stop", "'stop' is not valid UTF-8");
        r->stop[r->n_stop++] = xstrdup(s->valuestring);
    }
    return true;
}

static bool parse_prompt(const cJSON *root, openai_request *r, api_error *err) {
    const cJSON *v = field(root, "prompt");
    if (!v) return api_error_set(err, 400, "prompt", "'prompt' is required");
    if (cJSON_IsString(v)) {
        if (!v->valuestring[0]) return api_error_set(err, 400, "prompt", "'prompt' is empty");
        return get_string(root, "prompt", &r->prompt, err);
    }
    if (!cJSON_IsArray(v)) return api_error_set(err, 400, "prompt", "'prompt' must be a string or an array of token ids");
    int n = cJSON_GetArraySize(v);
    if (n == 0) return api_error_set(err, 400, "prompt", "'prompt' is empty");
    if (!cJSON_IsNumber(v->child))
        return api_error_set(err, 400, "prompt", "several prompts in one request are not supported: send one per request");
    if (n > MAX_PROMPT_IDS) return api_error_set(err, 400, "prompt", "'prompt' has more than %d token ids", MAX_PROMPT_IDS);
    r->prompt_ids = xmalloc((size_t)n * sizeof *r->prompt_ids);
    for (const cJSON *t = v->child; t; t = t->next) {
        if (!cJSON_IsNumber(t) || t->valuedouble != floor(t->valuedouble) || t->valuedouble < 0 || t->valuedouble > 2147483647.0)
            return api_error_set(err, 400, "prompt", "'prompt' token ids must be non-negative integers");
        r->prompt_ids[r->n_prompt_ids++] = (int32_t)t->valuedouble;
    }
    return true;
}

/* Text content: a string, or an array of {"type": "text", "text": ...} parts. */
static bool message_content(const cJSON *c, int i, chat_message *m, api_error *err) {
    char param[48];
    snprintf(param, sizeof param, "messages[%d].content", i);
    if (cJSON_IsString(c)) {
        if (!valid_utf8(c->valuestring)) return api_error_set(err, 400, param, "'%s' is not valid UTF-8", param);
        m->content = xstrdup(c->valuestring);
    } else if (cJSON_IsArray(c)) {
        strbuf text;
        strbuf_init(&text);
        for (const cJSON *part = c->child; part; part = part->next) {
            const cJSON *type = cJSON_IsObject(part) ? cJSON_GetObjectItemCaseSensitive(part, "type") : NULL;
            const cJSON *t = cJSON_IsObject(part) ? cJSON_GetObjectItemCaseSensitive(part, "text") : NULL;
            if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") != 0 || !cJSON_IsString(t)) {
                strbuf_free(&text);
                return api_error_set(err, 400, param, "only text content parts are supported in '%s'", param);
            }
            if (!valid_utf8(t->valuestring)) {
                strbuf_free(&text);
                return api_error_set(err, 400, param, "'%s' is not valid UTF-8", param);
            }
            strbuf_append_str(&text, t->valuestring);
        }
        m->content = text.data ? text.data : xstrdup("");
    } else {
        return api_error_set(err, 400, param, "'%s' must be a string or an array of text parts", param);
    }
    m->content_len = strlen(m->content);
    return true;
}

static bool parse_messages(const cJSON *root, openai_request *r, api_error *err) {
    const cJSON *v = field(root, "messages");
    if (!v) return api_error_set(err, 400, "messages", "'messages' is required");
    if (!cJSON_IsArray(v)) return api_error_set(err, 400, "messages", "'messages' must be an array");
    int n = cJSON_GetArraySize(v);
    if (n == 0) return api_error_set(err, 400, "messages", "'messages' is empty");
    if (n > 4096) return api_error_set(err, 400, "messages", "'messages' has more than 4096 entries");
    r->messages = xcalloc((size_t)n, sizeof *r->messages);
    int i = 0;
    for (const cJSON *m = v->child; m; m = m->next, i++) {
        char param[48];
        snprintf(param, sizeof param, "messages[%d]", i);
        if (!cJSON_IsObject(m)) return api_error_set(err, 400, param, "'%s' must be an object", param);
        for (const cJSON *f = m->child; f; f = f->next)
            if (strcmp(f->string, "role") != 0 && strcmp(f->string, "content") != 0 && strcmp(f->string, "name") != 0)
                return api_error_set(err, 400, param, "'%s' has an unsupported field '%.40s'", param, f->string);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsString(role) ||
            (strcmp(role->valuestring, "system") != 0 && strcmp(role->valuestring, "user") != 0 &&
             strcmp(role->valuestring, "assistant") != 0 && strcmp(role->valuestring, "developer") != 0))
            return api_error_set(err, 400, param, "'%s.role' must be system, developer, user or assistant", param);
        /* OpenAI's "developer" is the newer name of "system" */
        r->messages[i].role = xstrdup(strcmp(role->valuestring, "developer") == 0 ? "system" : role->valuestring);
        r->n_messages = i + 1;
        if (!message_content(cJSON_GetObjectItemCaseSensitive(m, "content"), i, &r->messages[i], err)) return false;
    }
    return true;
}

static bool parse_sampling(const cJSON *root, openai_request *r, api_error *err) {
    sampling_params *p = &r->sampling;
    *p = sampling_params_greedy();
    p->temperature = 1.0f; /* OpenAI's default */
    p->repetition_penalty = 1.0f;
    int top_k = 0;
    double seed = 0;
    const cJSON *s = field(root, "seed");
    if (s) {
        if (!cJSON_IsNumber(s) || s->valuedouble != floor(s->valuedouble) || fabs(s->valuedouble) > 9007199254740992.0)
            return api_error_set(err, 400, "seed", "'seed' must be an integer");
        seed = s->valuedouble;
        r->seed_given = true;
    }
    p->seed = (uint64_t)(int64_t)seed;
    if (!get_number(root, "temperature", 0, 2, &p->temperature, err) || !get_number(root, "top_p", 0, 1, &p->top_p, err) ||
        !get_int(root, "top_k", -1, 1 << 24, &top_k, err) || !get_number(root, "min_p", 0, 1, &p->min_p, err) ||
        !get_number(root, "presence_penalty", -2, 2, &p->presence_penalty, err) ||
        !get_number(root, "frequency_penalty", -2, 2, &p->frequency_penalty, err) ||
        !get_number(root, "repetition_penalty", 0, 10, &p->repetition_penalty, err))
        return false;
    if (p->top_p == 0) return api_error_set(err, 400, "top_p", "'top_p' must be greater than 0");
    if (p->repetition_penalty == 0) return api_error_set(err, 400, "repetition_penalty", "'repetition_penalty' must be greater than 0");
    p->top_k = top_k < 0 ? 0 : top_k; /* -1 (vLLM) and 0 both mean off */
    return true;
}

static bool parse_logprobs(const cJSON *root, openai_request *r, api_error *err) {
    r->logprobs = -1;
    if (r->kind == OPENAI_COMPLETIONS) {
        int n = -1;
        if (!get_int(root, "logprobs", 0, SAMPLER_MAX_TOP_LOGPROBS, &n, err)) return false;
        r->logprobs = n;
        return true;
    }
    bool want = false;
    int top = 0;
    if (!get_bool(root, "logprobs", &want, err) || !get_int(root, "top_logprobs", 0, SAMPLER_MAX_TOP_LOGPROBS, &top, err))
        return false;
    if (field(root, "top_logprobs") && !want)
        return api_error_set(err, 400, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
    r->logprobs = want ? top : -1;
    return true;
}

static bool parse_stream(const cJSON *root, openai_request *r, api_error *err) {
    if (!get_bool(root, "stream", &r->stream, err)) return false;
    const cJSON *so = field(root, "stream_options");
    if (!so) return true;
    if (!r->stream) return api_error_set(err, 400, "stream_options", "'stream_options' is only allowed with 'stream': true");
    if (!cJSON_IsObject(so)) return api_error_set(err, 400, "stream_options", "'stream_options' must be an object");
    for (const cJSON *f = so->child; f; f = f->next)
        if (strcmp(f->string, "include_usage") != 0 && strcmp(f->string, "continuous_usage_stats") != 0)
            return api_error_set(err, 400, "stream_options", "'stream_options' has an unknown field '%.40s'", f->string);
    return get_bool(so, "include_usage", &r->include_usage, err);
}

bool openai_parse(openai_kind kind, const char *body, size_t len, openai_request *r, api_error *err) {
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->n = 1;
    r->max_tokens = kind == OPENAI_COMPLETIONS ? 16 : -1; /* OpenAI's defaults */
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root) return api_error_set(err, 400, "", "the request body is not valid JSON");
    bool ok = false;
    if (!cJSON_IsObject(root)) {
        api_error_set(err, 400, "", "the request body must be a JSON object");
        goto out;
    }
    const cJSON *model = field(root, "model");
    if (!check_known_fields(root, kind, err) || !check_unsupported(root, kind, err)) goto out;
    if (!model) {
        api_error_set(err, 400, "model", "'model' is required");
        goto out;
    }
    const char *max_name = kind == OPENAI_CHAT && field(root, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    ok = get_string(root, "model", &r->model, err) &&
         (kind == OPENAI_COMPLETIONS ? parse_prompt(root, r, err) : parse_messages(root, r, err)) &&
         get_int(root, max_name, 1, MAX_TOKENS_LIMIT, &r->max_tokens, err) && parse_sampling(root, r, err) &&
         parse_stop(root, r, err) && get_int(root, "n", 1, OPENAI_MAX_CHOICES, &r->n, err) && parse_stream(root, r, err) &&
         parse_logprobs(root, r, err) && get_bool(root, "ignore_eos", &r->ignore_eos, err);
    if (ok && field(root, "user") && !cJSON_IsString(field(root, "user")))
        ok = api_error_set(err, 400, "user", "'user' must be a string");
out:
    cJSON_Delete(root);
    if (!ok) openai_request_free(r);
    return ok;
}

void openai_request_free(openai_request *r) {
    free(r->model);
    free(r->prompt);
    free(r->prompt_ids);
    for (int i = 0; i < r->n_messages; i++) {
        free((char *)r->messages[i].role);
        free((char *)r->messages[i].content);
    }
    free(r->messages);
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    memset(r, 0, sizeof *r);
}

/* ---- choices ------------------------------------------------------------------------------ */

void openai_choice_init(openai_choice *c) {
    memset(c, 0, sizeof *c);
    strbuf_init(&c->text);
}

void openai_choice_free(openai_choice *c) {
    strbuf_free(&c->text);
    free(c->tokens), free(c->logprobs), free(c->top_ids), free(c->top_lps), free(c->n_top);
}

void openai_choice_add(openai_choice *c, const session_delta *d) {
    strbuf_append(&c->text, d->text, d->text_len);
    if (d->finish) c->finish = d->finish;
    if (!d->has_token) return;
    c->completion_tokens++;
    if (c->n_tokens == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 32;
        c->tokens = xrealloc(c->tokens, (size_t)c->cap * sizeof *c->tokens);
        c->logprobs = xrealloc(c->logprobs, (size_t)c->cap * sizeof *c->logprobs);
        c->top_ids = xrealloc(c->top_ids, (size_t)c->cap * sizeof *c->top_ids);
        c->top_lps = xrealloc(c->top_lps, (size_t)c->cap * sizeof *c->top_lps);
        c->n_top = xrealloc(c->n_top, (size_t)c->cap * sizeof *c->n_top);
    }
    c->tokens[c->n_tokens] = d->token;
    c->logprobs[c->n_tokens] = d->logprob;
    c->n_top[c->n_tokens] = d->n_top;
    memcpy(c->top_ids[c->n_tokens], d->top_ids, sizeof d->top_ids);
    memcpy(c->top_lps[c->n_tokens], d->top_logprobs, sizeof d->top_logprobs);
    c->n_tokens++;
}

/* ---- rendering ------------------------------------------------------------------------------ */

/* A token's own text (valid UTF-8: a lone byte piece shows as U+FFFD). */
static char *token_text(const tokenizer *tok, int32_t id, strbuf *bytes) {
    strbuf t;
    strbuf_init(&t);
    if (tok) {
        errbuf err;
        tokenizer_decode(tok, &id, 1, &t, &err);
        size_t len;
        const char *piece = tokenizer_piece(tok, id, &len);
        if (bytes && piece && tokenizer_piece_type(tok, id) == PIECE_BYTE) {
            char b = (char)strtol(piece + 3, NULL, 16);
            strbuf_append(bytes, &b, 1);
        } else if (bytes) {
            strbuf_append(bytes, t.data ? t.data : "", t.len);
        }
    }
    if (!t.data) strbuf_append_str(&t, "");
    return t.data;
}

static cJSON *bytes_array(const strbuf *b) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < b->len; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((unsigned char)b->data[i]));
    return a;
}

static float finite_or(float v, float fallback) { return isfinite(v) ? v : fallback; }

/* Chat: {"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}]} */
static cJSON *chat_logprobs(const openai_context *ctx, const openai_choice *c, int from, int to) {
    cJSON *lp = cJSON_CreateObject();
    cJSON *content = cJSON_AddArrayToObject(lp, "content");
    for (int i = from; i < to; i++) {
        cJSON *e = cJSON_CreateObject();
        strbuf b;
        strbuf_init(&b);
        char *t = token_text(ctx->tok, c->tokens[i], &b);
        cJSON_AddStringToObject(e, "token", t);
        cJSON_AddNumberToObject(e, "logprob", finite_or(c->logprobs[i], -9999.0f));
        cJSON_AddItemToObject(e, "bytes", bytes_array(&b));
        free(t), strbuf_free(&b);
        cJSON *tops = cJSON_AddArrayToObject(e, "top_logprobs");
        for (int k = 0; k < c->n_top[i]; k++) {
            cJSON *o = cJSON_CreateObject();
            strbuf_init(&b);
            t = token_text(ctx->tok, c->top_ids[i][k], &b);
            cJSON_AddStringToObject(o, "token", t);
            cJSON_AddNumberToObject(o, "logprob", finite_or(c->top_lps[i][k], -9999.0f));
            cJSON_AddItemToObject(o, "bytes", bytes_array(&b));
            free(t), strbuf_free(&b);
            cJSON_AddItemToArray(tops, o);
        }
        cJSON_AddItemToArray(content, e);
    }
    return lp;
}

/* Completions: {"tokens", "token_logprobs", "top_logprobs", "text_offset"} */
static cJSON *completion_logprobs(const openai_context *ctx, const openai_choice *c, int from, int to, size_t offset) {
    cJSON *lp = cJSON_CreateObject();
    cJSON *tokens = cJSON_AddArrayToObject(lp, "tokens"), *lps = cJSON_AddArrayToObject(lp, "token_logprobs");
    cJSON *tops = cJSON_AddArrayToObject(lp, "top_logprobs"), *offs = cJSON_AddArrayToObject(lp, "text_offset");
    for (int i = from; i < to; i++) {
        char *t = token_text(ctx->tok, c->tokens[i], NULL);
        cJSON_AddItemToArray(tokens, cJSON_CreateString(t));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)offset));
        offset += strlen(t);
        free(t);
        cJSON_AddItemToArray(lps, cJSON_CreateNumber(finite_or(c->logprobs[i], -9999.0f)));
        cJSON *o = cJSON_CreateObject();
        for (int k = 0; k < c->n_top[i]; k++) {
            t = token_text(ctx->tok, c->top_ids[i][k], NULL);
            if (!cJSON_GetObjectItemCaseSensitive(o, t)) cJSON_AddNumberToObject(o, t, finite_or(c->top_lps[i][k], -9999.0f));
            free(t);
        }
        cJSON_AddItemToArray(tops, o);
    }
    return lp;
}

static cJSON *usage_object(int prompt, int completion) {
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", completion);
    cJSON_AddNumberToObject(u, "total_tokens", prompt + completion);
    return u;
}

static cJSON *envelope(const openai_context *ctx, bool chunk) {
    bool chat = ctx->req->kind == OPENAI_CHAT;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", ctx->id);
    cJSON_AddStringToObject(root, "object", chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion");
    cJSON_AddNumberToObject(root, "created", (double)ctx->created);
    cJSON_AddStringToObject(root, "model", ctx->model);
    return root;
}

static void add_finish(cJSON *choice, const char *finish) {
    if (finish) cJSON_AddStringToObject(choice, "finish_reason", finish);
    else cJSON_AddNullToObject(choice, "finish_reason");
}

char *openai_render_response(const openai_context *ctx, openai_choice *choices, int n) {
    bool chat = ctx->req->kind == OPENAI_CHAT;
    cJSON *root = envelope(ctx, false);
    cJSON *arr = cJSON_AddArrayToObject(root, "choices");
    int completion = 0;
    for (int i = 0; i < n; i++) {
        openai_choice *c = &choices[i];
        cJSON *ch = cJSON_CreateObject();
        cJSON_AddNumberToObject(ch, "index", i);
        const char *text = c->text.data ? c->text.data : "";
        if (chat) {
            cJSON *msg = cJSON_AddObjectToObject(ch, "message");
            cJSON_AddStringToObject(msg, "role", "assistant");
            cJSON_AddStringToObject(msg, "content", text);
        } else {
            cJSON_AddStringToObject(ch, "text", text);
        }
        if (ctx->req->logprobs >= 0)
            cJSON_AddItemToObject(ch, "logprobs", chat ? chat_logprobs(ctx, c, 0, c->n_tokens)
                                                       : completion_logprobs(ctx, c, 0, c->n_tokens, 0));
        else
            cJSON_AddNullToObject(ch, "logprobs");
        add_finish(ch, c->finish);
        cJSON_AddItemToArray(arr, ch);
        completion += c->completion_tokens;
    }
    cJSON_AddItemToObject(root, "usage", usage_object(ctx->prompt_tokens, completion));
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

static char *as_event(cJSON *root) {
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    size_t n = strlen(json);
    char *ev = xmalloc(n + 9);
    memcpy(ev, "data: ", 6);
    memcpy(ev + 6, json, n);
    memcpy(ev + 6 + n, "\n\n", 3);
    free(json);
    return ev;
}

char *openai_render_chunk(const openai_context *ctx, int index, const session_delta *d, bool role_first) {
    bool chat = ctx->req->kind == OPENAI_CHAT;
    cJSON *root = envelope(ctx, true);
    cJSON *arr = cJSON_AddArrayToObject(root, "choices");
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddNumberToObject(ch, "index", index);
    char *text = xstrndup(d->text ? d->text : "", d->text_len);
    if (chat) {
        cJSON *delta = cJSON_AddObjectToObject(ch, "delta");
        if (role_first) cJSON_AddStringToObject(delta, "role", "assistant");
        if (d->text_len || role_first) cJSON_AddStringToObject(delta, "content", text);
    } else {
        cJSON_AddStringToObject(ch, "text", text);
    }
    free(text);
    if (ctx->req->logprobs >= 0 && d->has_token) {
        openai_choice one;
        openai_choice_init(&one);
        openai_choice_add(&one, d);
        cJSON_AddItemToObject(ch, "logprobs", chat ? chat_logprobs(ctx, &one, 0, 1) : completion_logprobs(ctx, &one, 0, 1, 0));
        openai_choice_free(&one);
    } else {
        cJSON_AddNullToObject(ch, "logprobs");
    }
    add_finish(ch, d->finish);
    cJSON_AddItemToArray(arr, ch);
    if (ctx->req->include_usage) cJSON_AddNullToObject(root, "usage");
    return as_event(root);
}

char *openai_render_usage_chunk(const openai_context *ctx, int completion_tokens) {
    cJSON *root = envelope(ctx, true);
    cJSON_AddArrayToObject(root, "choices");
    cJSON_AddItemToObject(root, "usage", usage_object(ctx->prompt_tokens, completion_tokens));
    return as_event(root);
}
