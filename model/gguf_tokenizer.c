/* gguf_tokenizer.c — tokenizer.ggml.* keys into tokenizer_from_vocab. */
#include "model/gguf_tokenizer.h"
#include "common/alloc.h"

#include <stdlib.h>
#include <string.h>

#define KEY_MODEL "tokenizer.ggml.model"
#define KEY_TOKENS "tokenizer.ggml.tokens"
#define KEY_SCORES "tokenizer.ggml.scores"
#define KEY_TYPES "tokenizer.ggml.token_type"
#define KEY_ADD_SPACE_PREFIX "tokenizer.ggml.add_space_prefix"

/* tokenizer.ggml.model must be "llama": SentencePiece, what facet encodes. */
static bool check_model(const gguf_file *g, errbuf *err) {
    gguf_string model;
    if (!gguf_get_string(g, KEY_MODEL, &model, err)) return false;
    if (model.len == 5 && memcmp(model.data, "llama", 5) == 0) return true;
    char shown[41];
    size_t n = model.len < 40 ? (size_t)model.len : 40;
    for (size_t i = 0; i < n; i++) shown[i] = model.data[i] >= 0x20 && model.data[i] < 0x7f ? model.data[i] : '?';
    shown[n] = '\0';
    return errbuf_set(err, "%s is \"%s%s\": facet reads SentencePiece vocabularies (\"llama\") only", KEY_MODEL, shown,
                      model.len > n ? "..." : "");
}

/* An optional token id below n: -1 when the key is absent. */
static bool optional_id(const gguf_file *g, const char *key, uint64_t n, int *out, errbuf *err) {
    *out = -1;
    if (!gguf_find_kv(g, key)) return true;
    int32_t id;
    if (!gguf_get_i32(g, key, &id, err)) return false;
    if (id < 0 || (uint64_t)id >= n)
        return errbuf_set(err, "%s = %d is out of range for %llu tokens", key, (int)id, (unsigned long long)n);
    *out = id;
    return true;
}

/* The three arrays, checked to be of one length. */
static bool vocab_arrays(const gguf_file *g, const gguf_array **tokens, const gguf_array **scores,
                         const gguf_array **types, errbuf *err) {
    if (!gguf_get_array(g, KEY_TOKENS, GGUF_STRING, tokens, err) ||
        !gguf_get_array(g, KEY_SCORES, GGUF_F32, scores, err) || !gguf_get_array(g, KEY_TYPES, GGUF_I32, types, err))
        return false;
    uint64_t n = (*tokens)->n;
    if ((*scores)->n != n)
        return errbuf_set(err, "%s has %llu entries but %s has %llu", KEY_SCORES, (unsigned long long)(*scores)->n,
                          KEY_TOKENS, (unsigned long long)n);
    if ((*types)->n != n)
        return errbuf_set(err, "%s has %llu entries but %s has %llu", KEY_TYPES, (unsigned long long)(*types)->n,
                          KEY_TOKENS, (unsigned long long)n);
    if (n == 0) return errbuf_set(err, "%s is empty", KEY_TOKENS);
    return true; /* n <= GGUF_MAX_ARRAY, which fits an int */
}

/* llama.cpp's converter marks every token tokenizer_config.json calls
 * special as CONTROL, <unk> among them: Gemma 3's file has no UNKNOWN piece
 * at all. Its unknown_token_id names the piece, so when no piece is UNKNOWN
 * and that one is CONTROL, it gets back the type the tokenizer.model gives
 * it. (An encode never produces it with byte fallback; decoding shows it as
 * " ⁇ " instead of nothing, as spm does.) */
static void restore_unknown_type(const tokenizer_vocab *v, int32_t *types) {
    if (v->unk_id < 0 || types[v->unk_id] != PIECE_CONTROL) return;
    for (int i = 0; i < v->n; i++)
        if (types[i] == PIECE_UNKNOWN) return;
    types[v->unk_id] = PIECE_UNKNOWN;
}

tokenizer *tokenizer_from_gguf(const gguf_file *g, errbuf *err) {
    const gguf_array *tokens, *scores, *types;
    tokenizer_vocab v = {.add_dummy_prefix = true, .user_defined_raw = true}; /* as llama.cpp and HF match them */
    if (!check_model(g, err) || !vocab_arrays(g, &tokens, &scores, &types, err) ||
        !optional_id(g, "tokenizer.ggml.bos_token_id", tokens->n, &v.bos_id, err) ||
        !optional_id(g, "tokenizer.ggml.eos_token_id", tokens->n, &v.eos_id, err) ||
        !optional_id(g, "tokenizer.ggml.unknown_token_id", tokens->n, &v.unk_id, err) ||
        !optional_id(g, "tokenizer.ggml.padding_token_id", tokens->n, &v.pad_id, err))
        return NULL;
    if (gguf_find_kv(g, KEY_ADD_SPACE_PREFIX) && !gguf_get_bool(g, KEY_ADD_SPACE_PREFIX, &v.add_dummy_prefix, err))
        return NULL;

    v.n = (int)tokens->n;
    const char **pieces = xcalloc((size_t)v.n, sizeof *pieces);
    size_t *lens = xcalloc((size_t)v.n, sizeof *lens);
    float *score = xcalloc((size_t)v.n, sizeof *score);
    int32_t *type = xcalloc((size_t)v.n, sizeof *type);
    for (int i = 0; i < v.n; i++) {
        pieces[i] = tokens->strings[i].data;
        lens[i] = (size_t)tokens->strings[i].len;
        score[i] = (float)gguf_array_at(scores, (uint64_t)i).f64;
        type[i] = (int32_t)gguf_array_at(types, (uint64_t)i).i64;
    }
    v.pieces = pieces;
    v.piece_lens = lens;
    v.scores = score;
    v.types = type;
    restore_unknown_type(&v, type);
    tokenizer *tok = tokenizer_from_vocab(&v, err);
    if (!tok) errbuf_prefix(err, "the GGUF vocabulary (%s)", KEY_TOKENS);
    free(pieces);
    free(lens);
    free(score);
    free(type);
    return tok;
}
