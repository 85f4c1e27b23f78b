/* checkpoint.h — an HF checkpoint directory:
 *   config.json
 *   model.safetensors                          (one file), or
 *   model-0000x-of-0000y.safetensors + model.safetensors.index.json
 *   tokenizer.model                            (read by the tokenizer)
 * Files are memory-mapped; nothing is read until a tensor's bytes are. */
#ifndef FACET_MODEL_CHECKPOINT_H
#define FACET_MODEL_CHECKPOINT_H

#include "model/config.h"
#include "model/safetensors.h"

#define CHECKPOINT_PATH_MAX 4096

typedef struct checkpoint {
    char dir[CHECKPOINT_PATH_MAX];
    char root[CHECKPOINT_PATH_MAX]; /* "": anywhere; else every file must resolve (symbolic links followed) under it */
    gemma_config config;
    safetensors *files; /* (n_files) */
    int n_files;
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

/* dir + "/" + name into out; false if it does not fit. */
bool checkpoint_path(const char *dir, const char *name, char *out, size_t out_len);

#endif
