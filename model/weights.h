/* weights.h — one tensor-parallel rank's weights, loaded from a checkpoint.
 *
 * Only this rank's slices are read (model/tensors.h decides which). Weights
 * keep their checkpoint precision: bf16 stays bf16, f32 stays f32, f16 is
 * widened to f32 (exactly). Norm weights are stored as (1 + w) in fp32,
 * which is what Gemma's RMSNorm multiplies by. Shapes are per rank:
 * H_r = H/T query heads, K_r = K/T kv heads (K when replicated), F_r and
 * V_r this rank's slices of F and V. */
#ifndef FACET_MODEL_WEIGHTS_H
#define FACET_MODEL_WEIGHTS_H

#include "kernels/cpu/ops.h"
#include "model/checkpoint.h"
#include "model/tensors.h"

typedef struct layer_weights {
    float *input_norm;     /* (d)            1 + w */
    weight_matrix q;       /* (H_r * hd, d)  column parallel */
    weight_matrix k;       /* (K_r * hd, d) */
    weight_matrix v;       /* (K_r * hd, d) */
    float *q_norm;         /* (hd)           1 + w, Gemma 3 (else NULL): each query head */
    float *k_norm;         /* (hd)           1 + w, Gemma 3 (else NULL): each key head */
    weight_matrix o;       /* (d, H_r * hd)  row parallel: all-reduce after */
    float *post_attn_norm; /* (d)            1 + w, Gemma 2/3 (else NULL): the attention's output */
    float *pre_ffn_norm;   /* (d)            1 + w: before the MLP */
    weight_matrix gate;    /* (F_r, d) */
    weight_matrix up;      /* (F_r, d) */
    weight_matrix down;    /* (d, F_r)       row parallel: all-reduce after */
    float *post_ffn_norm;  /* (d)            1 + w, Gemma 2/3 (else NULL): the MLP's output */
} layer_weights;

typedef struct model_weights {
    gemma_config cfg;
    tp_layout tp;
    weight_matrix embed; /* (V_r, d): the embedding and the tied LM head */
    float *final_norm;   /* (d) 1 + w */
    layer_weights *layers; /* (L) */
    size_t bytes;          /* what this rank holds */
    dtype model_dtype;     /* the checkpoint's dtype (of the embedding) */
} model_weights;

bool weights_load(model_weights *w, const checkpoint *ck, int tp_rank, int tp_size, errbuf *err);
/* Seeded random bf16 weights of a config's full shape, no checkpoint needed
 * (benchmarks): matrices uniform in [-0.02, 0.02), norm weights 0 (so 1 + w = 1). */
bool weights_random(model_weights *w, const gemma_config *cfg, int tp_rank, int tp_size, uint64_t seed, errbuf *err);
void weights_free(model_weights *w);
/* The bf16 matrices in the layout a CPU kernel table reads fastest
 * (cpu_ops.bf16_layout; kernels/cpu/panels.h), each converted in place;
 * matrices the layout does not fit stay as they are. *bytes / w->bytes grow
 * by any padding. Packs over tp's threads (NULL: this one). */
bool weights_set_layout(model_weights *w, weight_layout layout, threadpool *tp, errbuf *err);
bool weight_matrix_set_layout(weight_matrix *m, weight_layout layout, threadpool *tp, size_t *bytes, errbuf *err);
/* One random bf16 matrix as weights_random makes them, on huge pages like
 * every weight buffer (benchmarks of the matrix kernel); free() its data. */
bool weights_random_matrix(weight_matrix *m, int rows, int cols, uint64_t seed, errbuf *err);

#endif
