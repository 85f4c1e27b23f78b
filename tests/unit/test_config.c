/* config.json parsing: Gemma 1, 2 and 3 (text) accepted, in transformers 4
 * and 5 spellings, with their defaults; everything else refused with a
 * message that names the problem. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "model/config.h"

#define BASE "\"hidden_size\":48,\"intermediate_size\":96,\"num_hidden_layers\":2,\"num_attention_heads\":4," \
             "\"num_key_value_heads\":1,\"head_dim\":16,\"vocab_size\":256"

static bool parse(const char *json, gemma_config *c, errbuf *err) { return config_parse_json(c, json, err); }

int main(int argc, char **argv) {
    gemma_config c;
    errbuf err;
    bool ok = parse("{\"architectures\":[\"GemmaForCausalLM\"],\"model_type\":\"gemma\"," BASE
                    ",\"rope_theta\":500.0,\"eos_token_id\":[1,107],\"hidden_act\":\"gelu\"}",
                    &c, &err);
    CHECK(ok, "%s", err.msg);
    CHECK(c.hidden_size == 48 && c.num_kv_heads == 1 && c.head_dim == 16 && c.rope_theta == 500.0 && c.eos_id == 1,
          "fields");
    CHECK(c.max_position == 8192 && c.rms_norm_eps == 1e-6, "defaults");
    ok = parse("{\"model_type\":\"gemma\"," BASE ",\"rope_parameters\":{\"rope_type\":\"default\",\"rope_theta\":20.0}}",
               &c, &err);
    CHECK(ok && c.rope_theta == 20.0, "rope_parameters: %s", err.msg);

    /* Gemma 2: its defaults, then explicit values; layers 0, 2, ... slide */
    ok = parse("{\"architectures\":[\"Gemma2ForCausalLM\"],\"model_type\":\"gemma2\"," BASE "}", &c, &err);
    CHECK(ok && c.arch == GEMMA_ARCH_GEMMA2 && c.attn_logit_softcap == 50.0f && c.final_logit_softcap == 30.0f &&
              c.query_pre_attn_scalar == 256.0f && c.sliding_window == 4096 && c.sliding_layers == 0x1 &&
              c.rope_theta == 10000.0 && config_sandwich_norms(&c) && !config_qk_norm(&c),
          "Gemma 2 defaults: %s", err.msg);
    ok = parse("{\"model_type\":\"gemma2\"," BASE ",\"attn_logit_softcapping\":null,\"final_logit_softcapping\":2.5,"
               "\"query_pre_attn_scalar\":24,\"sliding_window\":6}", &c, &err);
    CHECK(ok && c.attn_logit_softcap == 0 && c.final_logit_softcap == 2.5f && c.sliding_window == 6 &&
              config_layer_slides(&c, 0) && !config_layer_slides(&c, 1),
          "Gemma 2 values (null disables a cap): %s", err.msg);
    CHECK(c.query_pre_attn_scalar == 24.0f && config_attention_scale(&c) == 1.0f / sqrtf(24.0f), "attention scale");
    /* Gemma 3, transformers 4: sliding_window_pattern, rope_local_base_freq, rope_scaling */
#define G3 "\"hidden_size\":48,\"intermediate_size\":96,\"num_hidden_layers\":6,\"num_attention_heads\":4," \
           "\"num_key_value_heads\":1,\"head_dim\":16,\"vocab_size\":256"
    ok = parse("{\"architectures\":[\"Gemma3ForCausalLM\"],\"model_type\":\"gemma3_text\"," G3
               ",\"sliding_window\":6,\"sliding_window_pattern\":3,\"rope_theta\":1000000.0,"
               "\"rope_local_base_freq\":10000.0,\"rope_scaling\":{\"rope_type\":\"linear\",\"factor\":8.0},"
               "\"final_logit_softcapping\":null,\"attn_logit_softcapping\":null}",
               &c, &err);
    CHECK(ok && c.arch == GEMMA_ARCH_GEMMA3 && config_qk_norm(&c) && c.sliding_layers == 0x1b /* 0,1,3,4 */ &&
              c.rope_theta == 1e6 && c.rope_local_theta == 1e4 && c.rope_global_scale == 8.0 &&
              c.attn_logit_softcap == 0 && c.final_logit_softcap == 0 && c.query_pre_attn_scalar == 256.0f,
          "Gemma 3, transformers 4 spelling: %s", err.msg);
    /* Gemma 3, transformers 5: layer_types and rope_parameters per layer type */
    ok = parse("{\"model_type\":\"gemma3_text\"," G3 ",\"sliding_window\":6,\"layer_types\":[\"sliding_attention\","
               "\"full_attention\",\"sliding_attention\",\"sliding_attention\",\"full_attention\",\"full_attention\"],"
               "\"rope_parameters\":{\"full_attention\":{\"rope_type\":\"linear\",\"factor\":2.0,\"rope_theta\":500000.0},"
               "\"sliding_attention\":{\"rope_type\":\"default\",\"rope_theta\":2000.0}}}",
               &c, &err);
    CHECK(ok && c.sliding_layers == 0xd && c.rope_theta == 5e5 && c.rope_local_theta == 2000.0 &&
              c.rope_global_scale == 2.0,
          "Gemma 3, transformers 5 spelling: %s", err.msg);
    CHECK_ERR(parse("{\"model_type\":\"gemma3_text\"," G3 ",\"layer_types\":[\"full_attention\"]}", &c, &err), err,
              "layer_types");
    CHECK_ERR(parse("{\"model_type\":\"gemma3_text\"," G3 ",\"rope_scaling\":{\"rope_type\":\"yarn\"}}", &c, &err),
              err, "yarn");
    CHECK_ERR(parse("{\"model_type\":\"gemma2\"," BASE ",\"rope_scaling\":{\"rope_type\":\"linear\",\"factor\":2}}",
                    &c, &err),
              err, "rope_scaling");
    CHECK_ERR(parse("{\"architectures\":[\"Gemma2ForCausalLM\"],\"model_type\":\"gemma\"," BASE "}", &c, &err), err,
              "Gemma2ForCausalLM");
    /* the JSON round trip of a Gemma 3 config */
    ok = parse("{\"model_type\":\"gemma3_text\"," G3 ",\"sliding_window\":6,\"sliding_window_pattern\":3,"
               "\"rope_scaling\":{\"rope_type\":\"linear\",\"factor\":8.0}}", &c, &err);
    char *json3 = config_to_json(&c);
    gemma_config c3;
    CHECK(ok && config_parse_json(&c3, json3, &err) && c3.arch == c.arch && c3.sliding_layers == c.sliding_layers &&
              c3.sliding_window == c.sliding_window && c3.rope_global_scale == c.rope_global_scale &&
              c3.rope_local_theta == c.rope_local_theta && c3.query_pre_attn_scalar == c.query_pre_attn_scalar,
          "a Gemma 3 config survives its JSON: %s", err.msg);
    free(json3);
    CHECK_ERR(parse("{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\"," BASE "}", &c, &err), err,
              "LlamaForCausalLM");
    CHECK_ERR(parse("{\"model_type\":\"gemma3\"," BASE "}", &c, &err), err, "gemma3");
    CHECK_ERR(parse("{" BASE "}", &c, &err), err, "architectures");
    CHECK_ERR(parse("{\"model_type\":\"gemma\",\"hidden_size\":48}", &c, &err), err, "intermediate_size");
#define REST "\"num_attention_heads\":4,\"head_dim\":16"
    CHECK_ERR(parse("{\"model_type\":\"gemma\",\"hidden_size\":-3,\"intermediate_size\":96,\"num_hidden_layers\":2,"
                    "\"vocab_size\":256," REST "}", &c, &err), err, "hidden_size");
    CHECK_ERR(parse("{\"model_type\":\"gemma\",\"hidden_size\":48,\"intermediate_size\":96,\"num_hidden_layers\":2.5,"
                    "\"vocab_size\":256," REST "}", &c, &err), err, "num_hidden_layers");
    CHECK_ERR(parse("{\"model_type\":\"gemma\",\"hidden_size\":48,\"intermediate_size\":96,\"num_hidden_layers\":2,"
                    "\"vocab_size\":\"many\"," REST "}", &c, &err), err, "vocab_size");
    CHECK_ERR(parse("{\"model_type\":\"gemma\",\"hidden_size\":48,\"intermediate_size\":96,\"num_hidden_layers\":2,"
                    "\"num_attention_heads\":6,\"num_key_value_heads\":4,\"vocab_size\":256}",
                    &c, &err),
              err, "num_key_value_heads");
    CHECK_ERR(parse("{\"model_type\":\"gemma\"," BASE ",\"rope_scaling\":{\"type\":\"linear\"}}", &c, &err), err,
              "rope_scaling");
    CHECK_ERR(parse("{\"model_type\":\"gemma\"," BASE ",\"rope_parameters\":{\"rope_type\":\"yarn\"}}", &c, &err), err,
              "yarn");
    CHECK_ERR(parse("{\"model_type\":\"gemma\"," BASE ",\"hidden_act\":\"relu\"}", &c, &err), err, "relu");
    CHECK_ERR(parse("{\"model_type\":\"gemma\"," BASE ",\"tie_word_embeddings\":false}", &c, &err), err,
              "tie_word_embeddings");
    CHECK_ERR(parse("{\"model_type\":\"gemma\"," BASE ",\"bos_token_id\":999}", &c, &err), err, "bos_token_id");
    CHECK_ERR(parse("{\"model_type\":\"gemma\"," BASE ",\"rms_norm_eps\":0}", &c, &err), err, "rms_norm_eps");
    CHECK_ERR(parse("{\"model_type\":\"gemma\",", &c, &err), err, "not valid JSON");
    /* where the JSON breaks, never what the file holds (it may be a link to something else) */
    CHECK_ERR(parse("{\n  \"a\": 1,\n  root:x:0:0:root:/root\n}", &c, &err), err, "not valid JSON (line 3, column");
    CHECK(!strstr(err.msg, "root"), "the message shows the file's bytes: %s", err.msg);
    CHECK_ERR(parse("[]", &c, &err), err, "object");
    CHECK_ERR(config_load(&c, "/nonexistent/config.json", &err), err, "/nonexistent/config.json");

    /* presets and their JSON round trip */
    const char *presets[] = {"tiny", "2b", "7b"};
    for (int i = 0; i < 3; i++) {
        gemma_config p, q;
        CHECK(config_preset(&p, presets[i]), "preset %s", presets[i]);
        char *json = config_to_json(&p);
        ok = config_parse_json(&q, json, &err);
        CHECK(ok, "preset %s JSON does not parse back: %s", presets[i], err.msg);
        CHECK(ok && q.hidden_size == p.hidden_size && q.num_layers == p.num_layers && q.num_heads == p.num_heads &&
                  q.num_kv_heads == p.num_kv_heads && q.intermediate_size == p.intermediate_size &&
                  q.vocab_size == p.vocab_size && q.head_dim == p.head_dim && q.rms_norm_eps == p.rms_norm_eps,
              "preset %s round trip", presets[i]);
        free(json);
    }
    gemma_config p;
    config_preset(&p, "2b");
    CHECK(p.num_kv_heads == 1 && p.num_heads == 8 && p.hidden_size == 2048 && p.vocab_size == 256000, "2b shape");
    config_preset(&p, "7b");
    CHECK(p.num_kv_heads == 16 && p.num_layers == 28 && p.intermediate_size == 24576, "7b shape");
    CHECK(!config_preset(&p, "13b"), "unknown preset accepted");

    /* the HF fixtures' own config.json files (transformers 5 layout); a
     * config.v4.json beside one (transformers 4's spelling of the same model)
     * must give the same configuration */
    for (int i = 1; i < argc; i++) {
        ok = config_load(&c, argv[i], &err);
        CHECK(ok, "%s: %s", argv[i], err.msg);
        char v4[4096];
        snprintf(v4, sizeof v4, "%s", argv[i]);
        char *slash = strrchr(v4, '/');
        if (!ok || !slash) continue;
        snprintf(slash + 1, sizeof v4 - (size_t)(slash + 1 - v4), "config.v4.json");
        FILE *f = fopen(v4, "r");
        if (!f) continue;
        fclose(f);
        gemma_config o;
        ok = config_load(&o, v4, &err);
        CHECK(ok, "%s: %s", v4, err.msg);
        CHECK(ok && o.arch == c.arch && o.sliding_layers == c.sliding_layers && o.sliding_window == c.sliding_window &&
                  o.rope_theta == c.rope_theta && o.rope_local_theta == c.rope_local_theta &&
                  o.rope_global_scale == c.rope_global_scale && o.query_pre_attn_scalar == c.query_pre_attn_scalar &&
                  o.attn_logit_softcap == c.attn_logit_softcap && o.final_logit_softcap == c.final_logit_softcap &&
                  o.hidden_size == c.hidden_size && o.num_layers == c.num_layers,
              "%s: transformers 4's spelling gives the configuration transformers 5's does", v4);
    }
    return CHECK_RESULT();
}
