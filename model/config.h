/* config.h — a Gemma model's configuration (HF config.json fields).
 *
 * Gemma 1, 2 and 3 (text) are configurations of one engine: Gemma 2 adds
 * norms after attention and after the MLP ("sandwich" norms), a sliding
 * window on every other layer, soft-capped attention and final logits and
 * a separate attention scale; Gemma 3 drops the soft-capping, adds RMSNorm
 * on each query and key head (QK-norm), slides on five layers of six, and
 * gives sliding layers their own RoPE base (docs/GEMMA.md). */
#ifndef FACET_MODEL_CONFIG_H
#define FACET_MODEL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

typedef enum {
    GEMMA_ARCH_GEMMA1 = 1, /* GemmaForCausalLM, model_type "gemma" */
    GEMMA_ARCH_GEMMA2 = 2, /* Gemma2ForCausalLM, model_type "gemma2" */
    GEMMA_ARCH_GEMMA3 = 3, /* Gemma3ForCausalLM, model_type "gemma3_text" */
} gemma_arch;

/* Layers a model may have when some slide (sliding_layers is a bit mask). */
#define GEMMA_MAX_SLIDING_LAYERS 64

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

    /* Gemma 2/3 (Gemma 1: all 0) */
    float attn_logit_softcap;    /* scores -> cap * tanh(scores / cap); 0: none (Gemma 2: 50) */
    float final_logit_softcap;   /* logits -> cap * tanh(logits / cap); 0: none (Gemma 2: 30) */
    int sliding_window;          /* a sliding layer's query at p sees keys in (p - window, p]; 0: none */
    uint64_t sliding_layers;     /* bit l set: layer l slides (otherwise it attends to the whole context) */
    float query_pre_attn_scalar; /* scores are scaled by scalar^-1/2; 0: head_dim (Gemma 1) */
    double rope_local_theta;     /* RoPE base of sliding layers; 0: rope_theta (Gemma 3: 10 000) */
    double rope_global_scale;    /* linear RoPE scaling of full-attention layers (positions / factor); 0 or 1: none */
} gemma_config;

/* Where the architectures differ, asked by name rather than by version. */
static inline bool config_sandwich_norms(const gemma_config *c) { return c->arch >= GEMMA_ARCH_GEMMA2; }
static inline bool config_qk_norm(const gemma_config *c) { return c->arch == GEMMA_ARCH_GEMMA3; }
static inline bool config_layer_slides(const gemma_config *c, int layer) {
    return c->sliding_window > 0 && layer < GEMMA_MAX_SLIDING_LAYERS && ((c->sliding_layers >> layer) & 1u);
}
/* The attention scale: query_pre_attn_scalar^-1/2, or head_dim^-1/2. */
float config_attention_scale(const gemma_config *c);
/* "GemmaForCausalLM", "Gemma2ForCausalLM", "Gemma3ForCausalLM". */
const char *config_arch_name(gemma_arch a);

/* Parses the text of a config.json (transformers 4 or 5 spellings). Refuses
 * architectures other than Gemma 1/2/3 (text) with a message naming what it
 * found, and checks every size for range and divisibility (H % K == 0). */
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
