/* dataset.h — the prompts of a serving benchmark (as vLLM's datasets):
 *   random   input lengths uniform in [I(1−R), I(1+R)], outputs likewise;
 *            text decoded from random vocabulary pieces and re-encoded until
 *            it is exactly that many tokens (the tokenizer's count, no BOS)
 *   sharegpt a ShareGPT-format JSON file: the first human turn is the
 *            prompt, the first reply's token count the output length
 *            (unless --output-len is given); conversations with fewer than
 *            4 tokens on either side, a prompt over 1024 or both over 2048
 *            tokens are left out, as vLLM does
 *   prefix   one random prefix of P tokens shared by every prompt, then a
 *            random part as in `random` (prefix caching's best case)
 * Everything is drawn from --seed, so two servers get the same prompts. */
#ifndef FACET_BENCH_DATASET_H
#define FACET_BENCH_DATASET_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "tokenizer/tokenizer.h"

typedef struct bench_prompt {
    char *text;
    int input_len;  /* tokens of text */
    int output_len; /* max_tokens to ask for */
    bool has_seed;  /* send "seed": seed (reproducible sampling) */
    uint64_t seed;
} bench_prompt;

typedef struct bench_dataset_opts {
    const char *kind; /* "random", "sharegpt", "prefix" */
    const char *path; /* sharegpt: the JSON file */
    int num_prompts, input_len, output_len, prefix_len;
    bool output_len_given; /* sharegpt: use output_len instead of the reply's length */
    double range_ratio;    /* random, prefix: lengths within ±ratio */
    uint64_t seed;
} bench_dataset_opts;

/* (num_prompts) prompts in *out (free with bench_dataset_free). */
bool bench_dataset_make(const bench_dataset_opts *o, const tokenizer *tok, bench_prompt **out, errbuf *err);
void bench_dataset_free(bench_prompt *p, int n);

#endif
