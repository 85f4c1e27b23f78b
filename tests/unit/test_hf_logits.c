/* facet's CPU engine against HF transformers (fixtures made by
 * tests/reference/make_fixtures.py): for MQA and MHA models, fp32 and bf16
 * weights, single-file and sharded checkpoints, with the reference and the
 * fast ops:
 *   - logits at every prompt position, prefilled at once and fed token by
 *     token: max |Δ| <= 1e-3 * max |logit|;
 *   - 32 greedy tokens identical;
 * and the same from the fixture's model.gguf where it has one (the same
 * weights in llama.cpp's layout: names, norms stored as 1 + w, metadata),
 * and with the AVX512_BF16 matmul (activations rounded to bf16, emulated
 * over SIMDe here whatever the CPU) on the bf16 checkpoints. */
#include "check.h"
#include "fixture.h"
#include "kernels/cpu/sample.h"

#define LOGIT_TOL 1e-3
#define BLOCK 4

static void check_prompt(engine *e, const fixture *f, const fixture_prompt *p, const char *what) {
    int V = f->vocab, n_blocks = (p->len + p->n_greedy + BLOCK) / BLOCK;
    int32_t *blocks = malloc((size_t)n_blocks * sizeof *blocks);
    for (int i = 0; i < n_blocks; i++) blocks[i] = n_blocks - 1 - i; /* any order works */
    float *logits = malloc((size_t)p->len * V * sizeof *logits);
    errbuf err;

    /* the whole prompt in one step, logits everywhere */
    engine_seq seq = {0, p->len, blocks, n_blocks, p->len};
    engine_batch b = {1, &seq, p->ids};
    bool ok = engine_forward(e, &b, logits, &err);
    CHECK(ok, "%s: %s", what, err.msg);
    double d = rel_max_diff(logits, p->logits, (size_t)p->len * V);
    CHECK(d <= LOGIT_TOL, "%s len %d prefill: max|Δ|/max|logit| = %.3g", what, p->len, d);
    double worst = d;

    /* token by token: the decode path */
    for (int t = 0; ok && t < p->len; t++) {
        engine_seq s1 = {t, 1, blocks, n_blocks, 1};
        engine_batch b1 = {1, &s1, p->ids + t};
        ok = engine_forward(e, &b1, logits, &err);
        d = rel_max_diff(logits, p->logits + (size_t)t * V, (size_t)V);
        worst = d > worst ? d : worst;
        CHECK(ok && d <= LOGIT_TOL, "%s len %d decode at %d: %.3g %s", what, p->len, t, d, ok ? "" : err.msg);
    }

    /* greedy continuation */
    int pos = p->len, mismatch = -1;
    for (int i = 0; ok && i < p->n_greedy; i++) {
        int32_t id = argmax_f32(logits, V);
        if (id != p->greedy[i]) {
            mismatch = i;
            break;
        }
        engine_seq s1 = {pos++, 1, blocks, n_blocks, 1};
        engine_batch b1 = {1, &s1, &id};
        ok = engine_forward(e, &b1, logits, &err);
    }
    CHECK(mismatch < 0, "%s len %d: greedy token %d differs from HF", what, p->len, mismatch);
    printf("  %-32s prompt len %2d: worst rel logit diff %.2e, greedy %s\n", what, p->len, worst,
           mismatch < 0 ? "identical" : "DIFFERS");
    free(blocks);
    free(logits);
}

int main(int argc, char **argv) {
    CHECK(argc > 1, "usage: test_hf_logits FIXTURE_DIR...");
    for (int a = 1; a < argc; a++) {
        fixture f;
        errbuf err;
        bool ok = fixture_open(&f, argv[a], &err);
        CHECK(ok, "%s", err.msg);
        if (!ok) continue;
        /* the safetensors checkpoint with the reference, the fast ops and (bf16
         * weights) the emulated AVX512_BF16 ones; model.gguf, where the fixture has
         * one (tests/reference/make_gguf_from_hf.py), with the fast ops */
        char gguf[CHECKPOINT_PATH_MAX];
        checkpoint_path(argv[a], "model.gguf", gguf, sizeof gguf);
        struct {
            const char *model;
            const cpu_ops *ops;
            bool gguf;
        } runs[4] = {{argv[a], cpu_ops_ref(), false}, {argv[a], cpu_ops_select(), false}};
        int n_runs = 2;
        if (model_path_is_gguf(gguf)) runs[n_runs++] = (typeof(runs[0])){gguf, cpu_ops_select(), true};
        runs[n_runs++] = (typeof(runs[0])){argv[a], cpu_ops_avx512bf16(true), false};
        for (int t = 0; t < n_runs; t++) {
            engine *e = fixture_engine(runs[t].model, runs[t].ops, 64, BLOCK, &err);
            CHECK(e != NULL, "%s: %s", runs[t].model, err.msg);
            if (!e) continue;
            CHECK(engine_weights(e)->cfg.vocab_size == f.vocab, "vocab size");
            const char *base = strrchr(argv[a], '/') ? strrchr(argv[a], '/') + 1 : argv[a];
            if (runs[t].ops->split_bf16_activations && engine_weights(e)->layers[0].q.dtype != DTYPE_BF16) {
                printf("  %-32s not run with %s ops: its weights are not bf16\n", base, runs[t].ops->name);
                engine_free(e);
                continue;
            }
            char what[256];
            snprintf(what, sizeof what, "%s%s (%s ops)", base, runs[t].gguf ? " GGUF" : "", runs[t].ops->name);
            for (int i = 0; i < f.n_prompts; i++) check_prompt(e, &f, &f.prompts[i], what);
            engine_free(e);
        }
        safetensors_close(&f.ref);
    }
    return CHECK_RESULT();
}
