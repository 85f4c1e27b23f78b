/* tensors.h — the one table of Gemma's tensors and the tensor-parallel
 * shard math (Megatron layout, ARCHITECTURE.md).
 *
 * Read by the loader (which slices a checkpoint for one rank), by
 * make-model (which writes a checkpoint) and by the tests (which check that
 * the slices of all ranks tile every tensor exactly once). */
#ifndef FACET_MODEL_TENSORS_H
#define FACET_MODEL_TENSORS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "model/config.h"

typedef enum {
    TENSOR_EMBED,          /* model.embed_tokens.weight          (V, d), also the LM head */
    TENSOR_FINAL_NORM,     /* model.norm.weight                  (d) */
    TENSOR_INPUT_NORM,     /* model.layers.N.input_layernorm     (d): before attention */
    TENSOR_Q,              /* self_attn.q_proj                   (H*hd, d) */
    TENSOR_K,              /* self_attn.k_proj                   (K*hd, d) */
    TENSOR_V,              /* self_attn.v_proj                   (K*hd, d) */
    TENSOR_O,              /* self_attn.o_proj                   (d, H*hd) */
    TENSOR_PRE_FFN_NORM,   /* before the MLP: Gemma 1 names it post_attention_layernorm (d) */
    TENSOR_GATE,           /* mlp.gate_proj                      (F, d) */
    TENSOR_UP,             /* mlp.up_proj                        (F, d) */
    TENSOR_DOWN,           /* mlp.down_proj                      (d, F) */
    TENSOR_POST_ATTN_NORM, /* Gemma 2/3: on the attention's output (d) */
    TENSOR_POST_FFN_NORM,  /* Gemma 2/3: on the MLP's output     (d) */
    TENSOR_Q_NORM,         /* Gemma 3: on each query head        (hd) */
    TENSOR_K_NORM,         /* Gemma 3: on each key head          (hd) */
    TENSOR_KIND_COUNT
} tensor_kind;

/* A symbolic dimension, resolved against a config. */
typedef enum { DIM_NONE = 0, DIM_D, DIM_Q, DIM_KV, DIM_F, DIM_V, DIM_HD } dim_sym;

typedef enum {
    SHARD_REPLICATED, /* every rank holds all of it (norms) */
    SHARD_ROWS,       /* split dim 0: column parallel (Q, K, V, gate, up, embedding) */
    SHARD_COLS,       /* split dim 1: row parallel (O, down) -> all-reduce after */
} shard_axis;

typedef enum {
    UNIT_ELEMENT, /* split anywhere; uneven splits allowed (F, V) */
    UNIT_Q_HEAD,  /* split on query-head boundaries (H % tp == 0 required) */
    UNIT_KV_HEAD, /* split on kv-head boundaries, or replicate when K < tp */
} shard_unit;

/* Which architectures have a tensor (bits of 1 << gemma_arch). */
#define ARCHS_ALL ((1u << GEMMA_ARCH_GEMMA1) | (1u << GEMMA_ARCH_GEMMA2) | (1u << GEMMA_ARCH_GEMMA3))
#define ARCHS_2_3 ((1u << GEMMA_ARCH_GEMMA2) | (1u << GEMMA_ARCH_GEMMA3))
#define ARCHS_3 (1u << GEMMA_ARCH_GEMMA3)

typedef struct tensor_spec {
    tensor_kind kind;
    const char *hf_name;   /* printf format; "%d" is the layer for per-layer tensors */
    const char *hf_name_1; /* Gemma 1's name where it differs, else NULL */
    const char *gguf_name; /* the name in GGUF files (llama.cpp's convention) */
    unsigned archs;        /* ARCHS_*: which architectures have it */
    bool per_layer;
    int ndim;
    dim_sym dims[2];
    shard_axis axis;
    shard_unit unit;
    bool replicate_when_kv_lt_tp; /* MQA: K/V heads are copied to every rank */
} tensor_spec;

extern const tensor_spec TENSOR_TABLE[TENSOR_KIND_COUNT];

/* A rank's part of one tensor: [begin, end) along `axis` (in elements). */
typedef struct shard_slice {
    shard_axis axis;
    bool replicated;
    int64_t full[2];  /* the whole tensor's shape (dim 1 is 1 for vectors) */
    int64_t begin, end;
    int64_t local[2]; /* the shape this rank holds */
} shard_slice;

int64_t config_dim(const gemma_config *cfg, dim_sym d);
/* Does a model of this configuration have the tensor? */
bool tensor_present(const tensor_spec *spec, const gemma_config *cfg);
/* The tensor's HF name in this architecture, or its GGUF name. */
void tensor_name(const tensor_spec *spec, const gemma_config *cfg, int layer, char *out, int out_len);
void tensor_gguf_name(const tensor_spec *spec, int layer, char *out, int out_len);

/* [begin, end) of part `rank` when n units are split over tp parts (parts
 * differ by at most one unit). */
void tp_split(int64_t n, int rank, int tp, int64_t *begin, int64_t *end);

/* Can this config be split over tp ranks? (H % tp, K % tp unless K < tp) */
bool tp_check(const gemma_config *cfg, int tp_size, errbuf *err);

/* The slice of `spec` that rank `tp_rank` of `tp_size` holds. */
shard_slice tensor_shard(const tensor_spec *spec, const gemma_config *cfg, int tp_rank, int tp_size);

/* The per-rank sizes the engine works with. */
typedef struct tp_layout {
    int tp_rank, tp_size;
    int n_heads;      /* H / tp: query heads on this rank */
    int head_begin;   /* first global query head of this rank */
    int n_kv_heads;   /* K / tp, or K when replicated */
    int kv_head_begin;/* first global kv head held (0 when replicated) */
    int ffn_begin, ffn_size;    /* slice of F */
    int vocab_begin, vocab_size;/* slice of V */
} tp_layout;

tp_layout tp_layout_make(const gemma_config *cfg, int tp_rank, int tp_size);

#endif
