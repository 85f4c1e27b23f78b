#include <stdio.h>
#include <string.h>

#include "common/args.h"
#include "cli/commands.h"
#include "model/make_model.h"
#include "common/log.h"

int cmd_make_model(int argc, char **argv) {
    const char *preset = "tiny", *out = NULL, *dtype_s = "bf16";
    int layers = 0, shard_mb = 0, kv_heads = 0;
    uint64_t seed = 0;
    bool tokenizer_only = false;
    const arg_spec specs[] = {
        {"preset", ARG_STRING, &preset, "model shape: tiny, 2b or 7b (default tiny)", 0, 0, NULL},
        {"out", ARG_STRING, &out, "output directory (required)", 0, 0, NULL},
        {"layers", ARG_INT, &layers, "number of layers (default: the preset's)", 1, 1024, NULL},
        {"kv-heads", ARG_INT, &kv_heads, "key/value heads (default: the preset's; tiny has 1, MQA)", 1, 1024, NULL},
        {"seed", ARG_U64, &seed, "random seed of the weights (default 0)", 0, 0, NULL},
        {"dtype", ARG_STRING, &dtype_s, "weight dtype: bf16 (default), f16 or f32", 0, 0, NULL},
        {"shard-mb", ARG_INT, &shard_mb, "split weights into safetensors shards of at most N MiB, with an index", 1, 1 << 20, NULL},
        {"tokenizer-only", ARG_FLAG, &tokenizer_only, "write only tokenizer.model", 0, 0, NULL},
    };
    static const arg_command cmd = {"make-model", "facet make-model --preset tiny|2b|7b --out DIR [options]",
                   "Writes an HF-layout Gemma checkpoint with random weights: config.json, safetensors, tokenizer.model."};
    int rc = args_handle(&cmd, specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != ARGS_CONTINUE) return rc;
    errbuf err;
    if (!out) {
        fprintf(stderr, "facet make-model: --out DIR is required\n");
        return 2;
    }
    dtype dt = strcmp(dtype_s, "bf16") == 0 ? DTYPE_BF16 : strcmp(dtype_s, "f32") == 0 ? DTYPE_F32
             : strcmp(dtype_s, "f16") == 0 ? DTYPE_F16 : 0;
    if (!dt) {
        fprintf(stderr, "facet make-model: --dtype: \"%s\" is not bf16, f16 or f32\n", dtype_s);
        return 2;
    }
    make_model_options opt = {.preset = preset, .layers = layers, .kv_heads = kv_heads, .seed = seed, .out_dir = out,
                              .dtype = dt, .shard_mb = shard_mb, .tokenizer_only = tokenizer_only};
    if (!make_model(&opt, &err)) {
        fprintf(stderr, "facet make-model: %s\n", err.msg);
        return 1;
    }
    log_info("wrote %s model to %s", preset, out);
    return 0;
}
