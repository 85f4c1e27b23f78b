/* config.h — a Gemma model's configuration (HF config.json fields).
 *
 * Gemma 1 is what runs today. The Gemma 2/3 fields are parsed and kept so
 * the struct does not change shape when they arrive; a checkpoint that
 * needs them is refused for now (config_check_supported). */
#ifndef FACET_MODEL_CONFIG_H
#define FACET_MODEL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

typedef enum {
    GEMMA_ARCH_GEMMA1 = 1, /* GemmaForCausalLM, model_type "gemma" */
} gemma_arch;

typedef enum {
    ACT_GELU_TANH = 1, /* gelu_pytorch_tanh: what Gemma uses */
} activation_kind;

typedef struct gemma_config {
    gemma_arch arch;
    int hidden_size;        /* d */
    int intermediate_size;  /* F, per GeGLU branch */
    int num_layers;         /* L */
    int num_heads;          /* H (query heads) */
    int num_kv_heads;       /* K: 1 = MQA (2B), H = MHA (7B) */
    int head_dim;           /* hd: 256 for every Gemma 1 model */
    int vocab_size;         /* V */
    int max_position;       /* max_position_embeddings: the context length */
    double rms_norm_eps;   /* applied in fp32, as HF does */
    double rope_theta;
    activation_kind activation;
    bool tie_word_embeddings; /* Gemma 1: always true */
    int bos_id, eos_id, pad_id;
    char torch_dtype[16];     /* "bfloat16", "float32", "float16" */

    /* Gemma 2/3 (not supported yet; 0 = absent) */
    float attn_logit_softcap;
    float final_logit_softcap;
    int sliding_window;
    float query_pre_attn_scalar;
} gemma_config;

/* Parses the text of a config.json. Refuses architectures other than
 * GemmaForCausalLM with a message naming what it found, and checks every
 * size for range and divisibility (H % K == 0). */
bool config_parse_json(gemma_config *cfg, const char *json, errbuf *err);
bool config_load(gemma_config *cfg, const char *path, errbuf *err);

/* config.json text for a config (heap string, caller frees). */
char *config_to_json(const gemma_config *cfg);

/* Built-in shapes: "tiny", "2b", "7b". False for an unknown name. */
bool config_preset(gemma_config *cfg, const char *name);

/* Handy derived sizes. */
static inline int config_q_dim(const gemma_config *c) { return c->num_heads * c->head_dim; }
static inline int config_kv_dim(const gemma_config *c) { return c->num_kv_heads * c->head_dim; }

#endif
