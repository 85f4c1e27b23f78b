/* config.json parsing: Gemma 1 accepted (transformers 4 and 5 spellings),
 * everything else refused with a message that names the problem. */
#include <stdlib.h>

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

    CHECK_ERR(parse("{\"architectures\":[\"Gemma2ForCausalLM\"]," BASE "}", &c, &err), err, "Gemma2ForCausalLM");
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

    /* the HF fixtures' own config.json files (transformers 5 layout) */
    for (int i = 1; i < argc; i++) {
        ok = config_load(&c, argv[i], &err);
        CHECK(ok, "%s: %s", argv[i], err.msg);
    }
    return CHECK_RESULT();
}
