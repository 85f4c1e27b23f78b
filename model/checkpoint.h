/* checkpoint.h — a model's files, either an HF checkpoint directory:
 *   config.json
 *   model.safetensors                          (one file), or
 *   model-0000x-of-0000y.safetensors + model.safetensors.index.json
 *   tokenizer.model                            (read by the tokenizer)
 * or one GGUF file (llama.cpp's format: the config and tokenizer in its
 * metadata, tensors under llama.cpp's names, possibly quantized, norms
 * stored as 1 + w). Files are memory-mapped; nothing is read until a
 * tensor's bytes are. */
#ifndef FACET_MODEL_CHECKPOINT_H
#define FACET_MODEL_CHECKPOINT_H

#include "model/config.h"
#include "model/gguf.h"
#include "model/safetensors.h"
#include "model/tensors.h"
#include "tokenizer/tokenizer.h"

#define CHECKPOINT_PATH_MAX 4096

typedef struct checkpoint {
    char dir[CHECKPOINT_PATH_MAX];  /* the directory, or the GGUF file */
    char root[CHECKPOINT_PATH_MAX]; /* "": anywhere; else every file must resolve (symbolic links followed) under it */
    gemma_config config;
    safetensors *files; /* (n_files) */
    int n_files;
    /* a GGUF file: its tensors seen as safetensors' (shape in HF order: rows, then columns) */
    gguf_file *gguf;
    st_tensor *gguf_tensors; /* (n_gguf_tensors) */
    int n_gguf_tensors;
    bool norms_hold_one; /* norm weights are stored as 1 + w (GGUF), not w (HF) */
} checkpoint;

bool checkpoint_open(checkpoint *ck, const char *dir, errbuf *err);
/* The same, but dir and every file read (config.json, the index, shards)
 * must resolve, after following symbolic links, to a path under root: what
 * a worker does with a path it was sent (--model-root). */
bool checkpoint_open_under(checkpoint *ck, const char *dir, const char *root, errbuf *err);

/* realpath(path) into out when it lies under realpath(root) (or is it);
 * else an error naming path and root. */
bool checkpoint_confine(const char *path, const char *root, char *out, size_t len, errbuf *err);
void checkpoint_close(checkpoint *ck);

/* The tensor of that name in whichever file holds it, or NULL. */
const st_tensor *checkpoint_find(const checkpoint *ck, const char *name);
/* The name of a tensor of the table in this checkpoint (HF's or GGUF's). */
void checkpoint_tensor_name(const checkpoint *ck, const tensor_spec *spec, int layer, char *out, int out_len);

/* Is path a GGUF file (rather than a checkpoint directory)? */
bool model_path_is_gguf(const char *path);
/* The configuration of a model (a directory's config.json, or a GGUF
 * file's metadata); errors begin with the path. */
bool model_read_config(const char *path, gemma_config *cfg, errbuf *err);
/* Its tokenizer (a directory's tokenizer.model, or a GGUF file's metadata). */
tokenizer *model_open_tokenizer(const char *path, errbuf *err);

/* dir + "/" + name into out; false if it does not fit. */
bool checkpoint_path(const char *dir, const char *name, char *out, size_t out_len);

#endif
