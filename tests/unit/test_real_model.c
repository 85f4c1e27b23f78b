/* Gemma 3 270M (the real weights, GGUF, Q8_0/Q5_0/Q4_K/Q6_K blocks) against
 * HF transformers on the same file (tests/reference/make_gemma3_270m_reference.py
 * wrote reference.json: transformers dequantizes every block to fp32 and runs
 * the model in fp32):
 *   - facet's tokenizer (from the GGUF metadata) gives transformers' ids;
 *   - at the last prompt position, the ten best logits agree within
 *     1e-3 · max |logit| — with the fast quantized kernels and with the
 *     reference ones (kernels/cpu/quant.h: dequantize, then fp32 products);
 *   - 32 greedy tokens equal transformers', except where transformers' own
 *     top two logits were within 1e-3 of each other (a near-tie, where fp32
 *     summation order may decide; recorded per step in the reference), after
 *     which the continuation is no longer compared;
 *   - the int8 kernels (8-bit activations, kernels/cpu/quant.h; the table
 *     FACET_CPU_KERNELS=int8 chooses) on every prompt, against the bound
 *     such rounding allows: top-10 logits within 3e-2 · max |logit| (seen:
 *     0.6-1.7e-2), and greedy tokens equal until a step where transformers'
 *     top two were closer than twice the logit error measured on that
 *     prompt (only there can an error of that size swap them).
 * usage: test_real_model MODEL.gguf reference.json [--prompts N] */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/mapped_file.h"
#include "kernels/cpu/sample.h"
#include "model/checkpoint.h"
#include "worker/engine.h"

#define LOGIT_TOL 1e-3
#define NEAR_TIE 1e-3
#define INT8_LOGIT_TOL 3e-2
#define BLOCK 16

typedef struct ref_prompt {
    const char *text;
    int32_t ids[256];
    int n_ids;
    int32_t greedy[64];
    double margins[64];
    int n_greedy;
    int32_t top_ids[10];
    double top_logits[10];
} ref_prompt;

static int read_ints(const cJSON *a, int32_t *out, int cap) {
    int n = 0;
    for (const cJSON *e = a ? a->child : NULL; e && n < cap; e = e->next) out[n++] = (int32_t)e->valuedouble;
    return n;
}

static int read_doubles(const cJSON *a, double *out, int cap) {
    int n = 0;
    for (const cJSON *e = a ? a->child : NULL; e && n < cap; e = e->next) out[n++] = e->valuedouble;
    return n;
}

static bool read_prompt(const cJSON *p, ref_prompt *r) {
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(p, "text");
    const cJSON *top = cJSON_GetObjectItemCaseSensitive(p, "last_top10");
    if (!cJSON_IsString(text) || !cJSON_IsObject(top)) return false;
    r->text = text->valuestring;
    r->n_ids = read_ints(cJSON_GetObjectItemCaseSensitive(p, "ids"), r->ids, 256);
    r->n_greedy = read_ints(cJSON_GetObjectItemCaseSensitive(p, "greedy"), r->greedy, 64);
    int nm = read_doubles(cJSON_GetObjectItemCaseSensitive(p, "margins"), r->margins, 64);
    int nt = read_ints(cJSON_GetObjectItemCaseSensitive(top, "ids"), r->top_ids, 10);
    int nl = read_doubles(cJSON_GetObjectItemCaseSensitive(top, "logits"), r->top_logits, 10);
    return r->n_ids > 0 && r->n_greedy > 0 && nm == r->n_greedy && nt == 10 && nl == 10;
}

/* Prefills the prompt and returns the logits of its last position (V). */
static bool prefill(engine *e, const ref_prompt *r, int32_t *blocks, int n_blocks, float *logits, errbuf *err) {
    engine_seq seq = {0, r->n_ids, blocks, n_blocks, 1};
    engine_batch b = {1, &seq, r->ids};
    return engine_forward(e, &b, logits, err);
}

/* Returns the worst difference of the ten. */
static double check_top10(const ref_prompt *r, const float *logits, int V, const char *what, double tol) {
    double max_abs = 0, worst = 0;
    for (int i = 0; i < V; i++) max_abs = fabs(logits[i]) > max_abs ? fabs(logits[i]) : max_abs;
    for (int k = 0; k < 10; k++) {
        double d = fabs(logits[r->top_ids[k]] - r->top_logits[k]);
        worst = d > worst ? d : worst;
    }
    CHECK(worst <= tol * max_abs, "%s %.24s: top-10 logits differ by %.3g (max |logit| %.3g)", what, r->text,
          worst, max_abs);
    printf("  %-9s %-34.34s top-10 logits within %.2e of transformers' (%.1e relative)\n", what, r->text, worst,
           worst / max_abs);
    return worst;
}

/* Greedy continuation: returns the steps compared before a near-tie (or all). */
static int check_greedy(engine *e, const ref_prompt *r, int32_t *blocks, int n_blocks, float *logits, int V,
                        int max_steps, const char *what, double near_tie) {
    errbuf err;
    int pos = r->n_ids, n = r->n_greedy < max_steps ? r->n_greedy : max_steps, compared = 0;
    bool ok = true;
    for (int i = 0; ok && i < n; i++) {
        int32_t id = argmax_f32(logits, V);
        if (id != r->greedy[i]) {
            CHECK(r->margins[i] < near_tie, "%s %.24s: greedy token %d is %d, transformers' %d (its top-2 margin %.3g)",
                  what, r->text, i, id, r->greedy[i], r->margins[i]);
            printf("  %-9s %-34.34s greedy differs at %d, a near-tie (margin %.2g): not compared further\n", what,
                   r->text, i, r->margins[i]);
            return compared;
        }
        compared++;
        engine_seq s1 = {pos++, 1, blocks, n_blocks, 1};
        engine_batch b1 = {1, &s1, &id};
        ok = engine_forward(e, &b1, logits, &err);
        CHECK(ok, "%s: %s", what, err.msg);
    }
    printf("  %-9s %-34.34s %d greedy tokens identical\n", what, r->text, compared);
    return compared;
}

static engine *open_engine(const char *model, const cpu_ops *ops, errbuf *err) {
    engine_options eo = {.n_threads = 2, .max_batch_tokens = 512, .block_size = BLOCK, .n_blocks = 64, .ops = ops};
    return engine_load(model, 0, 1, &eo, err);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: test_real_model MODEL.gguf reference.json\n");
        return 2;
    }
    const char *model = argv[1];
    errbuf err;
    char *json = file_read_all(argv[2], NULL, 16u << 20, &err);
    CHECK(json, "%s", err.msg);
    cJSON *root = json ? cJSON_Parse(json) : NULL;
    const cJSON *prompts = cJSON_GetObjectItemCaseSensitive(root, "prompts");
    CHECK(cJSON_IsArray(prompts) && cJSON_GetArraySize(prompts) > 0, "%s: no prompts", argv[2]);
    int n = cJSON_GetArraySize(prompts);
    ref_prompt *refs = calloc((size_t)n, sizeof *refs);
    for (int i = 0; i < n; i++) CHECK(read_prompt(cJSON_GetArrayItem(prompts, i), &refs[i]), "prompt %d is malformed", i);

    /* the tokenizer: transformers' ids, <bos> first */
    tokenizer *tok = model_open_tokenizer(model, &err);
    CHECK(tok, "%s", err.msg);
    for (int i = 0; tok && i < n; i++) {
        token_list ids;
        token_list_init(&ids);
        token_list_push(&ids, tokenizer_bos_id(tok));
        bool ok = tokenizer_encode(tok, refs[i].text, strlen(refs[i].text), 0, &ids, &err);
        CHECK(ok && ids.n == refs[i].n_ids && memcmp(ids.ids, refs[i].ids, (size_t)ids.n * sizeof *ids.ids) == 0,
              "tokens of %.30s: facet's differ from transformers' (%d vs %d ids)", refs[i].text, ids.n, refs[i].n_ids);
        token_list_free(&ids);
    }
    printf("tokenizer: %d prompts, ids identical to transformers'\n", n);
    tokenizer_free(tok);

    /* the fast kernels on every prompt; the reference kernels on the first three, 8 tokens */
    const struct {
        const char *what;
        const cpu_ops *ops;
        int prompts, steps;
        bool int8;
    } runs[] = {{"fast", NULL, n, 64, false},
                {"reference", cpu_ops_ref(), n < 3 ? n : 3, 8, false},
                {"int8", cpu_ops_int8(quant_int8_best_isa()), n, 64, true}};
    for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
        engine *e = open_engine(model, runs[k].ops, &err);
        CHECK(e, "%s", err.msg);
        if (!e) break;
        int V = engine_weights(e)->cfg.vocab_size, n_blocks = 64;
        float *logits = malloc((size_t)V * sizeof *logits);
        int32_t blocks[64];
        for (int b = 0; b < n_blocks; b++) blocks[b] = n_blocks - 1 - b;
        int total = 0;
        for (int i = 0; i < runs[k].prompts; i++) {
            bool ok = prefill(e, &refs[i], blocks, n_blocks, logits, &err);
            CHECK(ok, "%s: %s", runs[k].what, err.msg);
            if (!ok) continue;
            double err_top = check_top10(&refs[i], logits, V, runs[k].what, runs[k].int8 ? INT8_LOGIT_TOL : LOGIT_TOL);
            total += check_greedy(e, &refs[i], blocks, n_blocks, logits, V, runs[k].steps, runs[k].what,
                                  runs[k].int8 ? 2 * err_top : NEAR_TIE);
        }
        printf("%s kernels (%s): %d greedy tokens compared over %d prompts\n", runs[k].what, engine_ops_name(e), total,
               runs[k].prompts);
        free(logits);
        engine_free(e);
    }
    free(refs);
    cJSON_Delete(root);
    free(json);
    return CHECK_RESULT();
}
