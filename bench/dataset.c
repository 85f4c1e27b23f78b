#include "bench/dataset.h"
#include "common/alloc.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/mapped_file.h"
#include "common/rng.h"

/* Ids of the tokenizer's ordinary pieces: what random text is made of. */
typedef struct piece_pool {
    int32_t *ids;
    int n;
} piece_pool;

static bool pool_make(piece_pool *p, const tokenizer *tok, errbuf *err) {
    int V = tokenizer_vocab_size(tok);
    p->ids = xmalloc((size_t)V * sizeof *p->ids);
    p->n = 0;
    for (int i = 0; i < V; i++)
        if (tokenizer_piece_type(tok, i) == PIECE_NORMAL) p->ids[p->n++] = i;
    if (p->n == 0) return errbuf_set(err, "the tokenizer has no ordinary pieces to make random text from");
    return true;
}

static bool decode_ids(const tokenizer *tok, const token_list *ids, strbuf *out, errbuf *err) {
    strbuf_clear(out);
    return tokenizer_decode(tok, ids->ids, ids->n, out, err);
}

/* Text of exactly len tokens (or as near as 8 rounds of re-encoding get:
 * merges across the boundaries of random pieces change the count). The
 * count reached goes to *actual. */
static bool random_text(const tokenizer *tok, const piece_pool *pool, uint64_t *rng, int len, char **text, int *actual,
                        errbuf *err) {
    token_list ids;
    token_list_init(&ids);
    strbuf sb;
    strbuf_init(&sb);
    for (int i = 0; i < len; i++) token_list_push(&ids, pool->ids[splitmix64_next(rng) % (uint64_t)pool->n]);
    bool ok = true;
    for (int round = 0; ok && round < 8; round++) {
        ok = decode_ids(tok, &ids, &sb, err);
        token_list again;
        token_list_init(&again);
        ok = ok && tokenizer_encode(tok, sb.data ? sb.data : "", sb.len, ENCODE_PLAIN_TEXT, &again, err);
        token_list_free(&ids);
        ids = again;
        if (!ok || ids.n == len) break;
        if (ids.n > len) ids.n = len;
        while (ids.n < len) token_list_push(&ids, pool->ids[splitmix64_next(rng) % (uint64_t)pool->n]);
    }
    if (ok && ids.n != len) ok = decode_ids(tok, &ids, &sb, err); /* the last adjusted ids, as text */
    if (ok) {
        token_list count;
        token_list_init(&count);
        ok = tokenizer_encode(tok, sb.data ? sb.data : "", sb.len, ENCODE_PLAIN_TEXT, &count, err);
        *actual = count.n;
        token_list_free(&count);
        *text = xstrdup(sb.data ? sb.data : "");
    }
    token_list_free(&ids);
    strbuf_free(&sb);
    return ok;
}

static int length_in_range(uint64_t *rng, int len, double ratio) {
    int lo = (int)floor(len * (1.0 - ratio)), hi = (int)ceil(len * (1.0 + ratio));
    if (lo < 1) lo = 1;
    if (hi < lo) hi = lo;
    return lo + (int)(splitmix64_next(rng) % (uint64_t)(hi - lo + 1));
}

static int count_tokens(const tokenizer *tok, const char *text, errbuf *err) {
    token_list ids;
    token_list_init(&ids);
    int n = tokenizer_encode(tok, text, strlen(text), ENCODE_PLAIN_TEXT, &ids, err) ? ids.n : -1;
    token_list_free(&ids);
    return n;
}

static bool make_random(const bench_dataset_opts *o, const tokenizer *tok, bench_prompt *p, errbuf *err) {
    piece_pool pool;
    if (!pool_make(&pool, tok, err)) return false;
    uint64_t rng = o->seed;
    char *prefix = NULL;
    int prefix_len = 0;
    bool ok = true;
    if (strcmp(o->kind, "prefix") == 0 && o->prefix_len > 0)
        ok = random_text(tok, &pool, &rng, o->prefix_len, &prefix, &prefix_len, err);
    for (int i = 0; ok && i < o->num_prompts; i++) {
        int in = length_in_range(&rng, o->input_len, o->range_ratio);
        p[i].output_len = length_in_range(&rng, o->output_len, o->range_ratio);
        char *text;
        int got;
        ok = random_text(tok, &pool, &rng, in, &text, &got, err);
        if (!ok) break;
        if (prefix) { /* prefix + its own part, counted whole */
            size_t a = strlen(prefix), b = strlen(text);
            char *joined = xmalloc(a + b + 1);
            memcpy(joined, prefix, a);
            memcpy(joined + a, text, b + 1);
            free(text);
            text = joined;
            got = count_tokens(tok, text, err);
            ok = got >= 0;
        }
        p[i].text = text;
        p[i].input_len = got;
    }
    free(prefix);
    free(pool.ids);
    return ok;
}

/* ---- ShareGPT ---------------------------------------------------------------------- */

static const char *turn_text(const cJSON *turn) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(turn, "value");
    if (!cJSON_IsString(v)) v = cJSON_GetObjectItemCaseSensitive(turn, "content"); /* the OpenAI-style variant */
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool make_sharegpt(const bench_dataset_opts *o, const tokenizer *tok, bench_prompt *p, errbuf *err) {
    if (!o->path) return errbuf_set(err, "--dataset sharegpt needs --dataset-path FILE");
    mapped_file f;
    if (!mapped_file_open(&f, o->path, err)) return false;
    cJSON *root = cJSON_ParseWithLength((const char *)f.data, f.size);
    mapped_file_close(&f);
    if (!cJSON_IsArray(root)) {
        cJSON_Delete(root);
        return errbuf_set(err, "%s: not a ShareGPT file (a JSON array of {\"conversations\": [...]})", o->path);
    }
    int n_entries = cJSON_GetArraySize(root);
    int *order = xmalloc(((size_t)n_entries + 1) * sizeof *order);
    for (int i = 0; i < n_entries; i++) order[i] = i;
    uint64_t rng = o->seed;
    for (int i = n_entries - 1; i > 0; i--) { /* shuffle, then take the first that qualify */
        int j = (int)(splitmix64_next(&rng) % (uint64_t)(i + 1)), t = order[i];
        order[i] = order[j], order[j] = t;
    }
    int taken = 0;
    bool ok = true;
    for (int k = 0; ok && k < n_entries && taken < o->num_prompts; k++) {
        const cJSON *conv = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(root, order[k]), "conversations");
        if (!conv) conv = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(root, order[k]), "conversation");
        if (!cJSON_IsArray(conv) || cJSON_GetArraySize(conv) < 2) continue;
        const char *prompt = turn_text(cJSON_GetArrayItem(conv, 0)), *reply = turn_text(cJSON_GetArrayItem(conv, 1));
        if (!prompt || !reply) continue;
        int in = count_tokens(tok, prompt, err), out = o->output_len_given ? o->output_len : count_tokens(tok, reply, err);
        if (in < 0 || out < 0) {
            ok = false;
            break;
        }
        if (in < 4 || out < 4 || in > 1024 || in + out > 2048) continue;
        p[taken++] = (bench_prompt){xstrdup(prompt), in, out, false, 0};
    }
    free(order);
    cJSON_Delete(root);
    if (ok && taken < o->num_prompts)
        ok = errbuf_set(err, "%s: only %d conversations qualify (%d asked for)", o->path, taken, o->num_prompts);
    if (!ok) bench_dataset_free(p, taken), memset(p, 0, (size_t)o->num_prompts * sizeof *p);
    return ok;
}

bool bench_dataset_make(const bench_dataset_opts *o, const tokenizer *tok, bench_prompt **out, errbuf *err) {
    if (o->num_prompts < 1) return errbuf_set(err, "--num-prompts must be at least 1");
    bench_prompt *p = xcalloc((size_t)o->num_prompts, sizeof *p);
    bool ok;
    if (strcmp(o->kind, "random") == 0 || strcmp(o->kind, "prefix") == 0) ok = make_random(o, tok, p, err);
    else if (strcmp(o->kind, "sharegpt") == 0) ok = make_sharegpt(o, tok, p, err);
    else ok = errbuf_set(err, "--dataset %s: choose random, sharegpt or prefix", o->kind);
    if (!ok) {
        bench_dataset_free(p, o->num_prompts);
        return false;
    }
    *out = p;
    return true;
}

void bench_dataset_free(bench_prompt *p, int n) {
    if (!p) return;
    for (int i = 0; i < n; i++) free(p[i].text);
    free(p);
}
