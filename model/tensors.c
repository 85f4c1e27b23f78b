#include "model/tensors.h"

#include <stdio.h>

/* clang-format off */
#define L "model.layers.%d."
const tensor_spec TENSOR_TABLE[TENSOR_KIND_COUNT] = {
    /* kind                 HF name                                    Gemma 1's         GGUF name                         archs      layer  ndim dims              axis              unit          repl */
    {TENSOR_EMBED,          "model.embed_tokens.weight",               NULL,             "token_embd.weight",              ARCHS_ALL, false, 2, {DIM_V, DIM_D},  SHARD_ROWS,       UNIT_ELEMENT, false},
    {TENSOR_FINAL_NORM,     "model.norm.weight",                       NULL,             "output_norm.weight",             ARCHS_ALL, false, 1, {DIM_D},         SHARD_REPLICATED, UNIT_ELEMENT, false},
    {TENSOR_INPUT_NORM,     L "input_layernorm.weight",                NULL,             "blk.%d.attn_norm.weight",        ARCHS_ALL, true,  1, {DIM_D},         SHARD_REPLICATED, UNIT_ELEMENT, false},
    {TENSOR_Q,              L "self_attn.q_proj.weight",               NULL,             "blk.%d.attn_q.weight",           ARCHS_ALL, true,  2, {DIM_Q, DIM_D},  SHARD_ROWS,       UNIT_Q_HEAD,  false},
    {TENSOR_K,              L "self_attn.k_proj.weight",               NULL,             "blk.%d.attn_k.weight",           ARCHS_ALL, true,  2, {DIM_KV, DIM_D}, SHARD_ROWS,       UNIT_KV_HEAD, true},
    {TENSOR_V,              L "self_attn.v_proj.weight",               NULL,             "blk.%d.attn_v.weight",           ARCHS_ALL, true,  2, {DIM_KV, DIM_D}, SHARD_ROWS,       UNIT_KV_HEAD, true},
    {TENSOR_O,              L "self_attn.o_proj.weight",               NULL,             "blk.%d.attn_output.weight",      ARCHS_ALL, true,  2, {DIM_D, DIM_Q},  SHARD_COLS,       UNIT_Q_HEAD,  false},
    {TENSOR_PRE_FFN_NORM,   L "pre_feedforward_layernorm.weight",      L "post_attention_layernorm.weight", "blk.%d.ffn_norm.weight", ARCHS_ALL, true, 1, {DIM_D}, SHARD_REPLICATED, UNIT_ELEMENT, false},
    {TENSOR_GATE,           L "mlp.gate_proj.weight",                  NULL,             "blk.%d.ffn_gate.weight",         ARCHS_ALL, true,  2, {DIM_F, DIM_D},  SHARD_ROWS,       UNIT_ELEMENT, false},
    {TENSOR_UP,             L "mlp.up_proj.weight",                    NULL,             "blk.%d.ffn_up.weight",           ARCHS_ALL, true,  2, {DIM_F, DIM_D},  SHARD_ROWS,       UNIT_ELEMENT, false},
    {TENSOR_DOWN,           L "mlp.down_proj.weight",                  NULL,             "blk.%d.ffn_down.weight",         ARCHS_ALL, true,  2, {DIM_D, DIM_F},  SHARD_COLS,       UNIT_ELEMENT, false},
    {TENSOR_POST_ATTN_NORM, L "post_attention_layernorm.weight",       NULL,             "blk.%d.post_attention_norm.weight", ARCHS_2_3, true, 1, {DIM_D},       SHARD_REPLICATED, UNIT_ELEMENT, false},
    {TENSOR_POST_FFN_NORM,  L "post_feedforward_layernorm.weight",     NULL,             "blk.%d.post_ffw_norm.weight",    ARCHS_2_3, true,  1, {DIM_D},         SHARD_REPLICATED, UNIT_ELEMENT, false},
    {TENSOR_Q_NORM,         L "self_attn.q_norm.weight",               NULL,             "blk.%d.attn_q_norm.weight",      ARCHS_3,   true,  1, {DIM_HD},        SHARD_REPLICATED, UNIT_ELEMENT, false},
    {TENSOR_K_NORM,         L "self_attn.k_norm.weight",               NULL,             "blk.%d.attn_k_norm.weight",      ARCHS_3,   true,  1, {DIM_HD},        SHARD_REPLICATED, UNIT_ELEMENT, false},
};
#undef L
/* clang-format on */

int64_t config_dim(const gemma_config *cfg, dim_sym d) {
    switch (d) {
    case DIM_D: return cfg->hidden_size;
    case DIM_Q: return (int64_t)cfg->num_heads * cfg->head_dim;
    case DIM_KV: return (int64_t)cfg->num_kv_heads * cfg->head_dim;
    case DIM_F: return cfg->intermediate_size;
    case DIM_V: return cfg->vocab_size;
    case DIM_HD: return cfg->head_dim;
    case DIM_NONE: break;
    }
    return 1;
}

bool tensor_present(const tensor_spec *spec, const gemma_config *cfg) { return (spec->archs >> cfg->arch) & 1u; }

static void format_name(const char *fmt, bool per_layer, int layer, char *out, int out_len) {
    if (per_layer)
        snprintf(out, (size_t)out_len, fmt, layer);
    else
        snprintf(out, (size_t)out_len, "%s", fmt);
}

void tensor_name(const tensor_spec *spec, const gemma_config *cfg, int layer, char *out, int out_len) {
    const char *fmt = cfg->arch == GEMMA_ARCH_GEMMA1 && spec->hf_name_1 ? spec->hf_name_1 : spec->hf_name;
    format_name(fmt, spec->per_layer, layer, out, out_len);
}

void tensor_gguf_name(const tensor_spec *spec, int layer, char *out, int out_len) {
    format_name(spec->gguf_name, spec->per_layer, layer, out, out_len);
}

bool tp_check(const gemma_config *cfg, int tp, errbuf *err) {
    if (tp < 1 || tp > 256) return errbuf_set(err, "tensor-parallel size %d is out of range [1, 256]", tp);
    if (cfg->num_heads % tp != 0)
        return errbuf_set(err, "num_attention_heads %d is not divisible by the tensor-parallel size %d",
                          cfg->num_heads, tp);
    if (cfg->num_kv_heads >= tp && cfg->num_kv_heads % tp != 0)
        return errbuf_set(err, "num_key_value_heads %d is not divisible by the tensor-parallel size %d",
                          cfg->num_kv_heads, tp);
    if (cfg->intermediate_size < tp || cfg->vocab_size < tp)
        return errbuf_set(err, "the model is too small to split over %d ranks", tp);
    return true;
}

void tp_split(int64_t n, int rank, int tp, int64_t *begin, int64_t *end) {
    *begin = n * rank / tp;
    *end = n * (rank + 1) / tp;
}

shard_slice tensor_shard(const tensor_spec *spec, const gemma_config *cfg, int rank, int tp) {
    shard_slice s = {.axis = spec->axis};
    s.full[0] = config_dim(cfg, spec->dims[0]);
    s.full[1] = spec->ndim > 1 ? config_dim(cfg, spec->dims[1]) : 1;
    s.local[0] = s.full[0];
    s.local[1] = s.full[1];
    int dim = spec->axis == SHARD_COLS ? 1 : 0;
    bool replicate = spec->axis == SHARD_REPLICATED ||
                     (spec->replicate_when_kv_lt_tp && cfg->num_kv_heads < tp);
    if (replicate) {
        s.replicated = true;
        s.begin = 0;
        s.end = s.full[dim];
        return s;
    }
    int64_t units = s.full[dim], unit_len = 1;
    if (spec->unit == UNIT_Q_HEAD) {
        units = cfg->num_heads;
        unit_len = cfg->head_dim;
    } else if (spec->unit == UNIT_KV_HEAD) {
        units = cfg->num_kv_heads;
        unit_len = cfg->head_dim;
    }
    int64_t ub, ue;
    tp_split(units, rank, tp, &ub, &ue);
    s.begin = ub * unit_len;
    s.end = ue * unit_len;
    s.local[dim] = s.end - s.begin;
    return s;
}

tp_layout tp_layout_make(const gemma_config *cfg, int rank, int tp) {
    tp_layout l = {.tp_rank = rank, .tp_size = tp};
    l.n_heads = cfg->num_heads / tp;
    l.head_begin = rank * l.n_heads;
    if (cfg->num_kv_heads < tp) {
        l.n_kv_heads = cfg->num_kv_heads;
        l.kv_head_begin = 0;
    } else {
        l.n_kv_heads = cfg->num_kv_heads / tp;
        l.kv_head_begin = rank * l.n_kv_heads;
    }
    shard_slice f = tensor_shard(&TENSOR_TABLE[TENSOR_GATE], cfg, rank, tp);
    l.ffn_begin = (int)f.begin;
    l.ffn_size = (int)(f.end - f.begin);
    shard_slice v = tensor_shard(&TENSOR_TABLE[TENSOR_EMBED], cfg, rank, tp);
    l.vocab_begin = (int)v.begin;
    l.vocab_size = (int)(v.end - v.begin);
    return l;
}
