/* gguf_config.c — a Gemma configuration from a GGUF file's metadata.
 *
 * llama.cpp's converter writes the shapes under the architecture's prefix
 * ("gemma3.embedding_length", ...). What it leaves out, llama.cpp's loader
 * supplies per architecture, and so does this file, with the same values:
 * Gemma 2 slides on layers 0, 2, 4, ...; Gemma 3 on all but every 6th, with
 * RoPE base 10 000 there; query_pre_attn_scalar is head_dim, except for the
 * 27B models (46 layers for Gemma 2, 62 for Gemma 3), where it is d / H —
 * unless the file says {arch}.attention.scale (the scores' multiplier). */
#include "model/gguf_config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    gemma_arch arch;
} k_gguf_archs[] = {
    {"gemma", GEMMA_ARCH_GEMMA1},
    {"gemma2", GEMMA_ARCH_GEMMA2},
    {"gemma3", GEMMA_ARCH_GEMMA3},
};

static bool read_arch(const gguf_file *g, gemma_config *cfg, char *prefix, size_t len, errbuf *err) {
    gguf_string s;
    if (!gguf_get_string(g, "general.architecture", &s, err)) return false;
    for (size_t i = 0; i < sizeof k_gguf_archs / sizeof k_gguf_archs[0]; i++) {
        if (s.len == strlen(k_gguf_archs[i].name) && memcmp(s.data, k_gguf_archs[i].name, s.len) == 0) {
            cfg->arch = k_gguf_archs[i].arch;
            snprintf(prefix, len, "%s", k_gguf_archs[i].name);
            return true;
        }
    }
    char shown[48];
    size_t n = s.len < sizeof shown - 1 ? s.len : sizeof shown - 1;
    for (size_t i = 0; i < n; i++) shown[i] = s.data[i] >= 0x20 && s.data[i] < 0x7f ? s.data[i] : '?';
    shown[n] = '\0';
    return errbuf_set(err, "general.architecture \"%s\" is not supported (supported: gemma, gemma2, gemma3)", shown);
}

/* {prefix}.{key} as an integer in [lo, hi]; def when absent and not required. */
static bool arch_int(const gguf_file *g, const char *prefix, const char *key, int lo, int hi, bool required, int def,
                     int *out, errbuf *err) {
    char full[160];
    snprintf(full, sizeof full, "%s.%s", prefix, key);
    if (!gguf_find_kv(g, full)) {
        if (required) return errbuf_set(err, "the GGUF metadata has no %s", full);
        *out = def;
        return true;
    }
    uint32_t v;
    if (!gguf_get_u32(g, full, &v, err)) return false;
    if ((int64_t)v < lo || (int64_t)v > hi) return errbuf_set(err, "%s = %u is out of range [%d, %d]", full, v, lo, hi);
    *out = (int)v;
    return true;
}

static bool arch_float(const gguf_file *g, const char *prefix, const char *key, double def, double *out, errbuf *err) {
    char full[160];
    snprintf(full, sizeof full, "%s.%s", prefix, key);
    if (!gguf_find_kv(g, full)) {
        *out = def;
        return true;
    }
    float v;
    if (!gguf_get_f32(g, full, &v, err)) return false;
    *out = v;
    return true;
}

static bool read_shapes(const gguf_file *g, const char *p, gemma_config *c, errbuf *err) {
    return arch_int(g, p, "embedding_length", 1, 65536, true, 0, &c->hidden_size, err) &&
           arch_int(g, p, "feed_forward_length", 1, 1 << 20, true, 0, &c->intermediate_size, err) &&
           arch_int(g, p, "block_count", 1, 1024, true, 0, &c->num_layers, err) &&
           arch_int(g, p, "attention.head_count", 1, 1024, true, 0, &c->num_heads, err) &&
           arch_int(g, p, "attention.head_count_kv", 1, 1024, false, c->num_heads, &c->num_kv_heads, err) &&
           arch_int(g, p, "attention.key_length", 2, 1024, false, c->hidden_size / c->num_heads, &c->head_dim, err) &&
           arch_int(g, p, "context_length", 1, 1 << 24, false, 8192, &c->max_position, err) &&
           arch_float(g, p, "attention.layer_norm_rms_epsilon", 1e-6, &c->rms_norm_eps, err);
}

/* Which layers slide: a per-layer bool array where the file has one, else
 * the architecture's pattern (llama.cpp's). */
static bool read_sliding(const gguf_file *g, const char *p, gemma_config *c, errbuf *err) {
    c->sliding_layers = 0;
    if (c->arch == GEMMA_ARCH_GEMMA1) return true;
    if (!arch_int(g, p, "attention.sliding_window", 1, 1 << 24, false, 4096, &c->sliding_window, err)) return false;
    if (c->num_layers > GEMMA_MAX_SLIDING_LAYERS)
        return errbuf_set(err, "%d layers with sliding windows: at most %d are supported", c->num_layers,
                          GEMMA_MAX_SLIDING_LAYERS);
    char key[160];
    snprintf(key, sizeof key, "%s.attention.sliding_window_pattern", p);
    const gguf_kv *kv = gguf_find_kv(g, key);
    if (kv && kv->value.type == GGUF_ARRAY) {
        const gguf_array *a;
        if (!gguf_get_array(g, key, GGUF_BOOL, &a, err)) return false;
        if (a->n != (uint64_t)c->num_layers)
            return errbuf_set(err, "%s has %llu entries for %d layers", key, (unsigned long long)a->n, c->num_layers);
        for (int l = 0; l < c->num_layers; l++)
            if (gguf_array_at(a, (uint64_t)l).b) c->sliding_layers |= 1ull << l;
        return true;
    }
    int pattern = c->arch == GEMMA_ARCH_GEMMA2 ? 2 : 6;
    if (kv && !arch_int(g, p, "attention.sliding_window_pattern", 1, 1024, false, pattern, &pattern, err)) return false;
    for (int l = 0; l < c->num_layers; l++)
        if ((l + 1) % pattern != 0) c->sliding_layers |= 1ull << l;
    return true;
}

static bool read_rope(const gguf_file *g, const char *p, gemma_config *c, errbuf *err) {
    bool g3 = c->arch == GEMMA_ARCH_GEMMA3;
    if (!arch_float(g, p, "rope.freq_base", g3 ? 1e6 : 1e4, &c->rope_theta, err)) return false;
    c->rope_local_theta = 0;
    if (g3 && !arch_float(g, p, "rope.freq_base_swa", 1e4, &c->rope_local_theta, err)) return false;
    char key[160];
    snprintf(key, sizeof key, "%s.rope.scaling.type", p);
    c->rope_global_scale = 0;
    if (!gguf_find_kv(g, key)) return true;
    gguf_string type;
    if (!gguf_get_string(g, key, &type, err)) return false;
    if (type.len == 4 && memcmp(type.data, "none", 4) == 0) return true;
    if (!(type.len == 6 && memcmp(type.data, "linear", 6) == 0) || !g3)
        return errbuf_set(err, "%s: only linear RoPE scaling (Gemma 3) is supported", key);
    return arch_float(g, p, "rope.scaling.factor", 0, &c->rope_global_scale, err);
}

static bool read_gemma23(const gguf_file *g, const char *p, gemma_config *c, errbuf *err) {
    c->attn_logit_softcap = c->final_logit_softcap = 0;
    c->query_pre_attn_scalar = 0;
    if (c->arch == GEMMA_ARCH_GEMMA1) return true;
    double attn_cap = 0, final_cap = 0;
    if (c->arch == GEMMA_ARCH_GEMMA2 && (!arch_float(g, p, "attn_logit_softcapping", 50.0, &attn_cap, err) ||
                                         !arch_float(g, p, "final_logit_softcapping", 30.0, &final_cap, err)))
        return false;
    c->attn_logit_softcap = (float)attn_cap;
    c->final_logit_softcap = (float)final_cap;
    bool is_27b = (c->arch == GEMMA_ARCH_GEMMA2 && c->num_layers == 46) ||
                  (c->arch == GEMMA_ARCH_GEMMA3 && c->num_layers == 62);
    c->query_pre_attn_scalar = is_27b ? (float)c->hidden_size / (float)c->num_heads : (float)c->head_dim;
    double scale; /* {arch}.attention.scale, where a file gives it: the scores' multiplier, scalar^-1/2 */
    if (!arch_float(g, p, "attention.scale", 0, &scale, err)) return false;
    if (scale < 0 || !isfinite(scale)) return errbuf_set(err, "%s.attention.scale must be positive", p);
    if (scale > 0) c->query_pre_attn_scalar = (float)(1.0 / (scale * scale));
    return read_sliding(g, p, c, err);
}

static bool read_tokens(const gguf_file *g, gemma_config *c, errbuf *err) {
    const gguf_array *tokens;
    if (!gguf_get_array(g, "tokenizer.ggml.tokens", GGUF_STRING, &tokens, err)) return false;
    if (tokens->n < 4 || tokens->n > (1u << 22))
        return errbuf_set(err, "tokenizer.ggml.tokens has %llu pieces", (unsigned long long)tokens->n);
    c->vocab_size = (int)tokens->n;
    const struct {
        const char *key;
        int *out, def;
    } ids[] = {
        {"tokenizer.ggml.bos_token_id", &c->bos_id, 2},
        {"tokenizer.ggml.eos_token_id", &c->eos_id, 1},
        {"tokenizer.ggml.padding_token_id", &c->pad_id, 0},
    };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        uint32_t v = (uint32_t)ids[i].def;
        if (gguf_find_kv(g, ids[i].key) && !gguf_get_u32(g, ids[i].key, &v, err)) return false;
        if (v >= (uint32_t)c->vocab_size)
            return errbuf_set(err, "%s = %u is not below the vocabulary size %d", ids[i].key, v, c->vocab_size);
        *ids[i].out = (int)v;
    }
    return true;
}

bool gguf_gemma_config(const gguf_file *g, gemma_config *cfg, errbuf *err) {
    memset(cfg, 0, sizeof *cfg);
    char prefix[32];
    if (!read_arch(g, cfg, prefix, sizeof prefix, err) || !read_shapes(g, prefix, cfg, err) ||
        !read_rope(g, prefix, cfg, err) || !read_gemma23(g, prefix, cfg, err) || !read_tokens(g, cfg, err))
        return false;
    int value_length;
    if (!arch_int(g, prefix, "attention.value_length", 2, 1024, false, cfg->head_dim, &value_length, err)) return false;
    if (value_length != cfg->head_dim)
        return errbuf_set(err, "%s.attention.value_length %d differs from key_length %d", prefix, value_length,
                          cfg->head_dim);
    if (cfg->num_kv_heads > cfg->num_heads || cfg->num_heads % cfg->num_kv_heads != 0)
        return errbuf_set(err, "%s.attention.head_count %d is not a multiple of head_count_kv %d", prefix,
                          cfg->num_heads, cfg->num_kv_heads);
    if (cfg->head_dim % 2 != 0) return errbuf_set(err, "%s.attention.key_length %d must be even (RoPE)", prefix, cfg->head_dim);
    if (gguf_find_tensor(g, "output.weight"))
        return errbuf_set(err, "the GGUF file has an untied LM head (output.weight): Gemma ties it to the embedding, "
                               "and facet supports only that");
    cfg->activation = ACT_GELU_TANH;
    cfg->tie_word_embeddings = true;
    snprintf(cfg->torch_dtype, sizeof cfg->torch_dtype, "float32"); /* computed in fp32, whatever the blocks hold */
    return true;
}
