#include "model/config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mapped_file.h"

/* ---- presets ------------------------------------------------------------ */

static void preset_common(gemma_config *c) {
    memset(c, 0, sizeof *c);
    c->arch = GEMMA_ARCH_GEMMA1;
    c->head_dim = 256;
    c->vocab_size = 256000;
    c->max_position = 8192;
    c->rms_norm_eps = 1e-6;
    c->rope_theta = 10000.0;
    c->activation = ACT_GELU_TANH;
    c->tie_word_embeddings = true;
    c->bos_id = 2;
    c->eos_id = 1;
    c->pad_id = 0;
    snprintf(c->torch_dtype, sizeof c->torch_dtype, "bfloat16");
}

bool config_preset(gemma_config *c, const char *name) {
    preset_common(c);
    if (strcmp(name, "2b") == 0) {
        c->hidden_size = 2048;
        c->intermediate_size = 16384;
        c->num_layers = 18;
        c->num_heads = 8;
        c->num_kv_heads = 1;
        return true;
    }
    if (strcmp(name, "7b") == 0) {
        c->hidden_size = 3072;
        c->intermediate_size = 24576;
        c->num_layers = 28;
        c->num_heads = 16;
        c->num_kv_heads = 16;
        return true;
    }
    if (strcmp(name, "tiny") == 0) {
        /* 2B's shape in miniature: MQA, q_dim != d, a small trained vocab. */
        c->hidden_size = 256;
        c->intermediate_size = 1024;
        c->num_layers = 4;
        c->num_heads = 4;
        c->num_kv_heads = 1;
        c->head_dim = 64;
        c->vocab_size = 4096;
        c->max_position = 2048;
        return true;
    }
    return false;
}

/* ---- parsing ------------------------------------------------------------ */

/* An integer field: required unless def_ok, range-checked. */
static bool get_int(const cJSON *root, const char *key, int lo, int hi, bool required, int def,
                    int *out, errbuf *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) return errbuf_set(err, "config.json: missing field \"%s\"", key);
        *out = def;
        return true;
    }
    if (!cJSON_IsNumber(v)) return errbuf_set(err, "config.json: \"%s\" must be a number", key);
    double d = v->valuedouble;
    if (!(d == floor(d)) || d < lo || d > hi)
        return errbuf_set(err, "config.json: \"%s\" = %g is not an integer in [%d, %d]", key, d, lo,
                          hi);
    *out = (int)d;
    return true;
}

static bool get_double(const cJSON *root, const char *key, double lo, double hi, double def,
                       double *out, errbuf *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return true;
    }
    if (!cJSON_IsNumber(v)) return errbuf_set(err, "config.json: \"%s\" must be a number", key);
    double d = v->valuedouble;
    if (!isfinite(d) || d < lo || d > hi)
        return errbuf_set(err, "config.json: \"%s\" = %g is out of range [%g, %g]", key, d, lo, hi);
    *out = d;
    return true;
}

static const char *get_string(const cJSON *root, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* eos_token_id may be an int or a list of ints (instruction-tuned models). */
static bool get_token_id(const cJSON *root, const char *key, int vocab, int def, int *out,
                         errbuf *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (cJSON_IsArray(v)) v = cJSON_GetArrayItem(v, 0);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return true;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 ||
        v->valuedouble >= vocab)
        return errbuf_set(err, "config.json: \"%s\" is not a token id below vocab_size %d", key,
                          vocab);
    *out = (int)v->valuedouble;
    return true;
}

static const struct {
    gemma_arch arch;
    const char *class_name, *model_type;
} k_archs[] = {
    {GEMMA_ARCH_GEMMA1, "GemmaForCausalLM", "gemma"},
    {GEMMA_ARCH_GEMMA2, "Gemma2ForCausalLM", "gemma2"},
    {GEMMA_ARCH_GEMMA3, "Gemma3ForCausalLM", "gemma3_text"},
};

const char *config_arch_name(gemma_arch a) {
    for (size_t i = 0; i < sizeof k_archs / sizeof k_archs[0]; i++)
        if (k_archs[i].arch == a) return k_archs[i].class_name;
    return "unknown";
}

float config_attention_scale(const gemma_config *c) {
    float s = c->query_pre_attn_scalar > 0 ? c->query_pre_attn_scalar : (float)c->head_dim;
    return 1.0f / sqrtf(s);
}

static bool check_architecture(const cJSON *root, gemma_config *cfg, errbuf *err) {
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const char *model_type = get_string(root, "model_type");
    const char *arch = NULL;
    if (cJSON_IsArray(archs) && cJSON_GetArraySize(archs) > 0) {
        const cJSON *a0 = cJSON_GetArrayItem(archs, 0);
        if (!cJSON_IsString(a0)) return errbuf_set(err, "config.json: \"architectures\" must hold strings");
        arch = a0->valuestring;
    }
    if (!arch && !model_type)
        return errbuf_set(err, "config.json: neither \"architectures\" nor \"model_type\" is given");
    if (model_type && strcmp(model_type, "gemma3") == 0)
        return errbuf_set(err, "config.json: model_type \"gemma3\" is Gemma 3 with its vision tower "
                               "(Gemma3ForConditionalGeneration), which is not supported: use a text-only checkpoint "
                               "(model_type gemma3_text)");
    for (size_t i = 0; i < sizeof k_archs / sizeof k_archs[0]; i++) {
        bool class_ok = !arch || strcmp(arch, k_archs[i].class_name) == 0;
        bool type_ok = !model_type || strcmp(model_type, k_archs[i].model_type) == 0;
        if (class_ok && type_ok && (arch || model_type)) {
            cfg->arch = k_archs[i].arch;
            return true;
        }
    }
    if (arch)
        return errbuf_set(err, "config.json: architecture \"%s\"%s%s%s is not supported (supported: GemmaForCausalLM, "
                               "Gemma2ForCausalLM, Gemma3ForCausalLM)", arch, model_type ? " with model_type \"" : "",
                          model_type ? model_type : "", model_type ? "\"" : "");
    return errbuf_set(err, "config.json: model_type \"%s\" is not supported (supported: gemma, gemma2, gemma3_text)",
                      model_type);
}

/* Gemma's MLP is the tanh-approximated GELU. Newer configs name it in
 * hidden_activation; the released Gemma 1 configs say hidden_act "gelu" and
 * mean the same (HF applies the tanh form for Gemma 1). */
static bool check_activation(const cJSON *root, gemma_config *cfg, errbuf *err) {
    const char *act = get_string(root, "hidden_activation");
    const char *key = "hidden_activation";
    if (!act) {
        act = get_string(root, "hidden_act");
        key = "hidden_act";
    }
    if (!act || strcmp(act, "gelu_pytorch_tanh") == 0 || strcmp(act, "gelu_tanh") == 0 ||
        strcmp(act, "gelu") == 0) {
        cfg->activation = ACT_GELU_TANH;
        return true;
    }
    return errbuf_set(err, "config.json: %s \"%s\" is not supported (supported: gelu_pytorch_tanh)", key, act);
}

/* One RoPE description: {"rope_type": "default" | "linear", "rope_theta": ...,
 * "factor": ...}. theta stays as it was when absent; factor is 1 unless linear. */
static bool parse_rope_object(const cJSON *o, const char *where, bool linear_ok, double *theta, double *factor,
                              errbuf *err) {
    if (!cJSON_IsObject(o)) return errbuf_set(err, "config.json: \"%s\" must be an object", where);
    const char *type = get_string(o, "rope_type");
    if (!type) type = get_string(o, "type");
    *factor = 1.0;
    if (type && strcmp(type, "linear") == 0 && linear_ok) {
        if (!get_double(o, "factor", 1e-3, 1e6, 1.0, factor, err)) return false;
    } else if (type && strcmp(type, "default") != 0) {
        return errbuf_set(err, "config.json: %s rope_type \"%s\" is not supported (supported: default%s)", where, type,
                          linear_ok ? ", linear" : "");
    }
    if (cJSON_GetObjectItemCaseSensitive(o, "rope_theta")) return get_double(o, "rope_theta", 1, 1e12, *theta, theta, err);
    return true;
}

/* RoPE. transformers 4: rope_theta at the top level, Gemma 3's
 * rope_local_base_freq for sliding layers and rope_scaling (linear) for the
 * others. transformers 5: rope_parameters, either one object or one per
 * layer type ({"full_attention": {...}, "sliding_attention": {...}}). Only
 * Gemma 3 scales (its 4B and larger models, by 8, on full-attention layers). */
static bool get_rope(const cJSON *root, gemma_config *cfg, errbuf *err) {
    bool gemma3 = cfg->arch == GEMMA_ARCH_GEMMA3;
    double def_theta = gemma3 ? 1000000.0 : 10000.0, factor = 1.0;
    if (!get_double(root, "rope_theta", 1, 1e12, def_theta, &cfg->rope_theta, err)) return false;
    cfg->rope_local_theta = 0;
    if (gemma3 && !get_double(root, "rope_local_base_freq", 1, 1e12, 10000.0, &cfg->rope_local_theta, err)) return false;
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (rs && !cJSON_IsNull(rs)) {
        if (!gemma3) return errbuf_set(err, "config.json: rope_scaling is not supported for %s", config_arch_name(cfg->arch));
        double unused = cfg->rope_theta;
        if (!parse_rope_object(rs, "rope_scaling", true, &unused, &factor, err)) return false;
    }
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    if (rp && !cJSON_IsNull(rp)) {
        const cJSON *full = cJSON_GetObjectItemCaseSensitive(rp, "full_attention");
        const cJSON *sliding = cJSON_GetObjectItemCaseSensitive(rp, "sliding_attention");
        if (full || sliding) {
            if (full && !parse_rope_object(full, "rope_parameters.full_attention", gemma3, &cfg->rope_theta, &factor, err))
                return false;
            double f_local = 1.0;
            if (sliding) {
                if (!cfg->rope_local_theta) cfg->rope_local_theta = cfg->rope_theta;
                if (!parse_rope_object(sliding, "rope_parameters.sliding_attention", false, &cfg->rope_local_theta,
                                       &f_local, err))
                    return false;
            }
        } else if (!parse_rope_object(rp, "rope_parameters", gemma3, &cfg->rope_theta, &factor, err)) {
            return false;
        }
    }
    cfg->rope_global_scale = factor == 1.0 ? 0 : factor;
    return true;
}

/* A float that may be null (disabled: 0) or absent (the architecture's default). */
static bool get_optional_float(const cJSON *root, const char *key, double def, float *out, errbuf *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (v && cJSON_IsNull(v)) {
        *out = 0;
        return true;
    }
    double d;
    if (!get_double(root, key, 0, 1e6, def, &d, err)) return false;
    *out = (float)d;
    return true;
}

/* Which layers slide: transformers 5's layer_types list, else the pattern
 * (Gemma 2: layers 0, 2, 4, ...; Gemma 3: all but every sliding_window_pattern-th). */
static bool get_sliding_layers(const cJSON *root, gemma_config *cfg, errbuf *err) {
    cfg->sliding_layers = 0;
    if (cfg->arch == GEMMA_ARCH_GEMMA1) return true;
    int def_window = 4096;
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(root, "sliding_window");
    if (w && cJSON_IsNull(w)) {
        cfg->sliding_window = 0;
        return true;
    }
    if (!get_int(root, "sliding_window", 1, 1 << 24, false, def_window, &cfg->sliding_window, err)) return false;
    if (cfg->num_layers > GEMMA_MAX_SLIDING_LAYERS)
        return errbuf_set(err, "config.json: %d layers with sliding windows: at most %d are supported", cfg->num_layers,
                          GEMMA_MAX_SLIDING_LAYERS);
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(root, "layer_types");
    if (types && !cJSON_IsNull(types)) {
        if (!cJSON_IsArray(types) || cJSON_GetArraySize(types) != cfg->num_layers)
            return errbuf_set(err, "config.json: \"layer_types\" must list one type per layer (%d)", cfg->num_layers);
        for (int l = 0; l < cfg->num_layers; l++) {
            const cJSON *t = cJSON_GetArrayItem(types, l);
            if (!cJSON_IsString(t))
                return errbuf_set(err, "config.json: \"layer_types\"[%d] must be a string", l);
            if (strcmp(t->valuestring, "sliding_attention") == 0) cfg->sliding_layers |= 1ull << l;
            else if (strcmp(t->valuestring, "full_attention") != 0)
                return errbuf_set(err, "config.json: \"layer_types\"[%d] \"%.40s\" is not supported "
                                       "(supported: sliding_attention, full_attention)", l, t->valuestring);
        }
        return true;
    }
    int pattern = 2;
    if (cfg->arch == GEMMA_ARCH_GEMMA3 &&
        !get_int(root, "sliding_window_pattern", 1, 1024, false, 6, &pattern, err))
        return false;
    for (int l = 0; l < cfg->num_layers; l++)
        if ((l + 1) % pattern != 0) cfg->sliding_layers |= 1ull << l;
    return true;
}

/* The fields Gemma 2 and 3 add, with transformers' defaults when absent. */
static bool get_gemma23_fields(const cJSON *root, gemma_config *cfg, errbuf *err) {
    cfg->attn_logit_softcap = cfg->final_logit_softcap = 0;
    cfg->query_pre_attn_scalar = 0;
    cfg->sliding_window = 0;
    if (cfg->arch == GEMMA_ARCH_GEMMA1) return true;
    bool g2 = cfg->arch == GEMMA_ARCH_GEMMA2;
    return get_optional_float(root, "attn_logit_softcapping", g2 ? 50.0 : 0, &cfg->attn_logit_softcap, err) &&
           get_optional_float(root, "final_logit_softcapping", g2 ? 30.0 : 0, &cfg->final_logit_softcap, err) &&
           get_optional_float(root, "query_pre_attn_scalar", 256.0, &cfg->query_pre_attn_scalar, err) &&
           get_sliding_layers(root, cfg, err);
}

static bool check_unsupported_features(const cJSON *root, errbuf *err) {
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "use_bidirectional_attention")))
        return errbuf_set(err, "config.json: use_bidirectional_attention=true is not supported");
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(root, "attention_bias");
    if (cJSON_IsTrue(ab)) return errbuf_set(err, "config.json: attention_bias=true is not supported");
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
    if (cJSON_IsFalse(tie))
        return errbuf_set(err, "config.json: tie_word_embeddings=false is not supported (Gemma ties the LM head to the embedding)");
    return true;
}

static bool check_shapes(gemma_config *c, errbuf *err) {
    if (c->num_kv_heads > c->num_heads || c->num_heads % c->num_kv_heads != 0)
        return errbuf_set(err, "config.json: num_attention_heads %d is not a multiple of num_key_value_heads %d",
                          c->num_heads, c->num_kv_heads);
    if (c->head_dim % 2 != 0) return errbuf_set(err, "config.json: head_dim %d must be even (RoPE)", c->head_dim);
    if (c->bos_id >= c->vocab_size || c->eos_id >= c->vocab_size || c->pad_id >= c->vocab_size)
        return errbuf_set(err, "config.json: special token ids must be below vocab_size %d", c->vocab_size);
    return true;
}

bool config_parse_json(gemma_config *cfg, const char *json, errbuf *err) {
    memset(cfg, 0, sizeof *cfg);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(json, &end, 0);
    if (!root) {
        /* where, never what: the file may not be JSON at all (a link to something else) */
        if (!end || !*end) return errbuf_set(err, "config.json: not valid JSON (it ends too soon)");
        int line = 1, col = 1;
        for (const char *p = json; p < end; p++) p[0] == '\n' ? (line++, col = 1) : col++;
        return errbuf_set(err, "config.json: not valid JSON (line %d, column %d)", line, col);
    }
    bool ok = false;
    if (!cJSON_IsObject(root)) {
        errbuf_set(err, "config.json: the top level must be an object");
        goto out;
    }
    if (!check_architecture(root, cfg, err) || !check_activation(root, cfg, err) ||
        !check_unsupported_features(root, err))
        goto out;
    if (!get_int(root, "hidden_size", 1, 65536, true, 0, &cfg->hidden_size, err) ||
        !get_int(root, "intermediate_size", 1, 1 << 20, true, 0, &cfg->intermediate_size, err) ||
        !get_int(root, "num_hidden_layers", 1, 1024, true, 0, &cfg->num_layers, err) ||
        !get_int(root, "num_attention_heads", 1, 1024, true, 0, &cfg->num_heads, err) ||
        !get_int(root, "num_key_value_heads", 1, 1024, false, cfg->num_heads, &cfg->num_kv_heads, err) ||
        !get_int(root, "head_dim", 2, 1024, false, 256, &cfg->head_dim, err) ||
        !get_int(root, "vocab_size", 4, 1 << 22, true, 0, &cfg->vocab_size, err) ||
        !get_int(root, "max_position_embeddings", 1, 1 << 20, false, 8192, &cfg->max_position, err) ||
        !get_double(root, "rms_norm_eps", 0, 1, 1e-6, &cfg->rms_norm_eps, err) ||
        !get_rope(root, cfg, err) || !get_gemma23_fields(root, cfg, err) ||
        !get_token_id(root, "bos_token_id", cfg->vocab_size, 2, &cfg->bos_id, err) ||
        !get_token_id(root, "eos_token_id", cfg->vocab_size, 1, &cfg->eos_id, err) ||
        !get_token_id(root, "pad_token_id", cfg->vocab_size, 0, &cfg->pad_id, err))
        goto out;
    if (cfg->rms_norm_eps <= 0) {
        errbuf_set(err, "config.json: rms_norm_eps must be positive");
        goto out;
    }
    cfg->tie_word_embeddings = true;
    const char *dt = get_string(root, "torch_dtype");
    if (!dt) dt = get_string(root, "dtype");
    snprintf(cfg->torch_dtype, sizeof cfg->torch_dtype, "%s", dt ? dt : "bfloat16");
    ok = check_shapes(cfg, err);
out:
    cJSON_Delete(root);
    return ok;
}

bool config_load(gemma_config *cfg, const char *path, errbuf *err) {
    char *text = file_read_all(path, NULL, 1 << 20, err);
    if (!text) return false;
    bool ok = config_parse_json(cfg, text, err);
    free(text);
    return ok;
}

/* In transformers 4's spelling, which transformers 5 reads too. */
static void add_gemma23_fields(cJSON *root, const gemma_config *c) {
    if (c->attn_logit_softcap > 0) cJSON_AddNumberToObject(root, "attn_logit_softcapping", c->attn_logit_softcap);
    else cJSON_AddNullToObject(root, "attn_logit_softcapping");
    if (c->final_logit_softcap > 0) cJSON_AddNumberToObject(root, "final_logit_softcapping", c->final_logit_softcap);
    else cJSON_AddNullToObject(root, "final_logit_softcapping");
    cJSON_AddNumberToObject(root, "query_pre_attn_scalar", c->query_pre_attn_scalar);
    if (c->sliding_window > 0) {
        cJSON_AddNumberToObject(root, "sliding_window", c->sliding_window);
        cJSON *types = cJSON_AddArrayToObject(root, "layer_types");
        for (int l = 0; l < c->num_layers; l++)
            cJSON_AddItemToArray(types, cJSON_CreateString(config_layer_slides(c, l) ? "sliding_attention" : "full_attention"));
    } else {
        cJSON_AddNullToObject(root, "sliding_window");
    }
    if (c->arch == GEMMA_ARCH_GEMMA3) {
        cJSON_AddNumberToObject(root, "rope_local_base_freq", c->rope_local_theta);
        if (c->rope_global_scale > 0 && c->rope_global_scale != 1) {
            cJSON *rs = cJSON_AddObjectToObject(root, "rope_scaling");
            cJSON_AddStringToObject(rs, "rope_type", "linear");
            cJSON_AddNumberToObject(rs, "factor", c->rope_global_scale);
        }
    }
}

char *config_to_json(const gemma_config *c) {
    cJSON *root = cJSON_CreateObject();
    cJSON *archs = cJSON_AddArrayToObject(root, "architectures");
    cJSON_AddItemToArray(archs, cJSON_CreateString(config_arch_name(c->arch)));
    for (size_t i = 0; i < sizeof k_archs / sizeof k_archs[0]; i++)
        if (k_archs[i].arch == c->arch) cJSON_AddStringToObject(root, "model_type", k_archs[i].model_type);
    cJSON_AddNumberToObject(root, "hidden_size", c->hidden_size);
    cJSON_AddNumberToObject(root, "intermediate_size", c->intermediate_size);
    cJSON_AddNumberToObject(root, "num_hidden_layers", c->num_layers);
    cJSON_AddNumberToObject(root, "num_attention_heads", c->num_heads);
    cJSON_AddNumberToObject(root, "num_key_value_heads", c->num_kv_heads);
    cJSON_AddNumberToObject(root, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(root, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(root, "max_position_embeddings", c->max_position);
    cJSON_AddNumberToObject(root, "rms_norm_eps", c->rms_norm_eps);
    cJSON_AddNumberToObject(root, "rope_theta", c->rope_theta);
    cJSON_AddStringToObject(root, "hidden_act", "gelu_pytorch_tanh");
    cJSON_AddStringToObject(root, "hidden_activation", "gelu_pytorch_tanh");
    cJSON_AddBoolToObject(root, "attention_bias", 0);
    cJSON_AddBoolToObject(root, "tie_word_embeddings", 1);
    cJSON_AddNumberToObject(root, "bos_token_id", c->bos_id);
    cJSON_AddNumberToObject(root, "eos_token_id", c->eos_id);
    cJSON_AddNumberToObject(root, "pad_token_id", c->pad_id);
    cJSON_AddStringToObject(root, "torch_dtype", c->torch_dtype);
    if (c->arch != GEMMA_ARCH_GEMMA1) add_gemma23_fields(root, c);
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    return s;
}
