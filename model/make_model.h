/* make_model.h — writes a random-weight Gemma checkpoint in the HF layout
 * (config.json, safetensors, tokenizer.model). The real weights are gated
 * downloads; these have the real shapes and names, so every code path that
 * reads a checkpoint runs on them. */
#ifndef FACET_MODEL_MAKE_MODEL_H
#define FACET_MODEL_MAKE_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "common/dtype.h"

typedef struct make_model_options {
    const char *preset;  /* "tiny", "2b", "7b" */
    int layers;          /* 0: the preset's */
    int kv_heads;        /* 0: the preset's (tiny: 1, MQA); num_attention_heads gives MHA */
    uint64_t seed;
    const char *out_dir;
    dtype dtype;         /* weights: BF16 (default), F16 or F32 */
    int shard_mb;        /* 0: one model.safetensors; else shards of at most this size + index */
    bool tokenizer_only; /* write only tokenizer.model */
} make_model_options;

bool make_model(const make_model_options *opt, errbuf *err);

/* Where the built-in tiny model lives ($FACET_HOME/models/tiny, else
 * ~/.cache/facet/models/tiny); made on first use. */
const char *default_model_dir(void);
bool ensure_default_model(const char *dir, errbuf *err);

/* mkdir -p */
bool make_dirs(const char *path, errbuf *err);

#endif
