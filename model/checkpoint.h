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
    gemma_config config;
    safetensors *files; /* (n_files) */
    int n_files;
} checkpoint;

bool checkpoint_open(checkpoint *ck, const char *dir, errbuf *err);
void checkpoint_close(checkpoint *ck);

/* The tensor of that name in whichever file holds it, or NULL. */
const st_tensor *checkpoint_find(const checkpoint *ck, const char *name);

/* dir + "/" + name into out; false if it does not fit. */
bool checkpoint_path(const char *dir, const char *name, char *out, size_t out_len);

#endif
