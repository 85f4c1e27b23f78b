/* fixture.h — the HF reference fixtures (tests/reference/make_fixtures.py):
 * a checkpoint directory holding reference.safetensors with, per prompt N,
 * prompt.N.ids (I32 [len]), prompt.N.logits (F32 [len, V]) and
 * prompt.N.greedy (I32 [32]). */
#ifndef FACET_TESTS_FIXTURE_H
#define FACET_TESTS_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include "model/checkpoint.h"
#include "worker/engine.h"

#define MAX_PROMPTS 16

typedef struct fixture_prompt {
    const int32_t *ids;
    int len;
    const float *logits; /* (len, vocab) */
    const int32_t *greedy;
    int n_greedy;
} fixture_prompt;

typedef struct fixture {
    safetensors ref;
    fixture_prompt prompts[MAX_PROMPTS];
    int n_prompts;
    int vocab;
} fixture;

static inline bool fixture_open(fixture *f, const char *dir, errbuf *err) {
    char path[CHECKPOINT_PATH_MAX];
    checkpoint_path(dir, "reference.safetensors", path, sizeof path);
    if (!safetensors_open(&f->ref, path, err)) return false;
    f->n_prompts = 0;
    for (int i = 0; i < MAX_PROMPTS; i++) {
        char name[64];
        snprintf(name, sizeof name, "prompt.%d.ids", i);
        const st_tensor *ids = safetensors_find(&f->ref, name);
        if (!ids) break;
        snprintf(name, sizeof name, "prompt.%d.logits", i);
        const st_tensor *lg = safetensors_find(&f->ref, name);
        snprintf(name, sizeof name, "prompt.%d.greedy", i);
        const st_tensor *gr = safetensors_find(&f->ref, name);
        if (!lg || !gr || ids->dtype != DTYPE_I32 || lg->dtype != DTYPE_F32 || gr->dtype != DTYPE_I32 ||
            lg->ndim != 2 || lg->shape[0] != ids->shape[0])
            return errbuf_set(err, "%s: prompt %d is malformed", path, i);
        f->prompts[i] = (fixture_prompt){(const int32_t *)ids->data, (int)ids->shape[0], (const float *)lg->data,
                                         (const int32_t *)gr->data, (int)gr->shape[0]};
        f->vocab = (int)lg->shape[1];
        f->n_prompts++;
    }
    if (f->n_prompts == 0) return errbuf_set(err, "%s: no prompts", path);
    return true;
}

/* An engine over the fixture's checkpoint (T = 1). */
static inline engine *fixture_engine(const char *dir, const cpu_ops *ops, int n_blocks, int block_size, errbuf *err) {
    engine_options eo = {.n_threads = 2, .max_batch_tokens = 256, .block_size = block_size, .n_blocks = n_blocks, .ops = ops};
    return engine_load(dir, 0, 1, &eo, err);
}

#endif
