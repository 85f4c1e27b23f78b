/* Batching invariance: several sequences of different lengths in one step
 * (prompts whole, in chunks, or mixed with decode tokens, over scattered KV
 * blocks) give the logits each gives alone -- bitwise: every kernel sums
 * each output in the same order whatever the batch (kernels/cpu/ops_fast.c, panel_matmul.c,
 * and bf16dot.c, which tests/CMakeLists.txt runs this with), so batching can
 * never change a sampled token. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fixture.h"
#include "kernels/cpu/panels.h"

#define TOL 0.0 /* bitwise */
#define BLOCK 4
#define BLOCKS_PER_SEQ 24

int main(int argc, char **argv) {
    CHECK(argc == 2, "usage: test_batch FIXTURE_DIR");
    if (argc != 2) return CHECK_RESULT();
    fixture f;
    errbuf err;
    bool ok = fixture_open(&f, argv[1], &err);
    CHECK(ok, "%s", err.msg);
    if (!ok) return CHECK_RESULT();
    int n = f.n_prompts, V = f.vocab, total = 0;
    engine *e = fixture_engine(argv[1], NULL, n * BLOCKS_PER_SEQ, BLOCK, &err);
    CHECK(e != NULL, "%s", err.msg);
    if (!e) return CHECK_RESULT();
    /* the table cpu_ops_select chose; CMake runs this again with FACET_CPU_KERNELS set */
    const char *want = getenv("FACET_CPU_KERNELS");
    printf("cpu kernels: %s\n", engine_ops_name(e));
    if (want && *want)
        CHECK(strcmp(engine_ops_name(e), want) == 0, "FACET_CPU_KERNELS=%s, but the engine runs %s", want, engine_ops_name(e));
    /* and holds its bf16 matrices in the layout that table reads (panels for avx2) */
    const model_weights *mw = engine_weights(e);
    weight_layout layout = cpu_ops_select()->bf16_layout;
    int checked = 0, wrong = 0;
    for (int l = 0; l < mw->cfg.num_layers; l++) {
        const weight_matrix *m[] = {&mw->layers[l].q, &mw->layers[l].o, &mw->layers[l].gate, &mw->layers[l].down};
        for (int i = 0; i < 4; i++)
            if (panels_fit(m[i]->dtype, m[i]->cols)) checked++, wrong += m[i]->layout != layout;
    }
    printf("bf16 matrices in the table's layout: %d of %d\n", checked - wrong, checked);
    CHECK(wrong == 0, "%d of %d bf16 matrices are not in the layout of %s", wrong, checked, engine_ops_name(e));

    /* each sequence gets every n-th block, interleaved with the others' */
    int32_t tables[MAX_PROMPTS][BLOCKS_PER_SEQ];
    for (int s = 0; s < n; s++)
        for (int b = 0; b < BLOCKS_PER_SEQ; b++) tables[s][b] = b * n + (n - 1 - s);
    float *alone[MAX_PROMPTS];
    int32_t tokens[1024];
    engine_seq seqs[MAX_PROMPTS];

    /* 1. each alone, all positions */
    for (int s = 0; s < n; s++) {
        const fixture_prompt *p = &f.prompts[s];
        alone[s] = malloc((size_t)p->len * V * sizeof(float));
        engine_seq q = {0, p->len, tables[s], BLOCKS_PER_SEQ, p->len};
        engine_batch b = {1, &q, p->ids};
        CHECK(engine_forward(e, &b, alone[s], &err), "alone: %s", err.msg);
        total += p->len;
    }
    float *out = malloc((size_t)total * V * sizeof(float));

    /* 2. all prompts in one step */
    int k = 0;
    for (int s = 0; s < n; s++) {
        seqs[s] = (engine_seq){0, f.prompts[s].len, tables[s], BLOCKS_PER_SEQ, f.prompts[s].len};
        memcpy(tokens + k, f.prompts[s].ids, (size_t)f.prompts[s].len * sizeof *tokens);
        k += f.prompts[s].len;
    }
    engine_batch all = {n, seqs, tokens};
    CHECK(engine_forward(e, &all, out, &err), "batched: %s", err.msg);
    for (int s = 0, row = 0; s < n; s++) {
        double d = rel_max_diff(out + (size_t)row * V, alone[s], (size_t)f.prompts[s].len * V);
        CHECK(d <= TOL, "one step: sequence %d differs from alone by %.3g", s, d);
        row += f.prompts[s].len;
    }

    /* 3. two chunks per prompt, in reverse sequence order; then 4. the last
     * token of every prompt as a decode step mixed with nothing else */
    for (int pass = 0; pass < 2; pass++) {
        k = 0;
        int m = 0, rows = 0;
        for (int i = 0; i < n; i++) {
            int s = n - 1 - i;
            const fixture_prompt *p = &f.prompts[s];
            int cut = p->len / 2, start = pass == 0 ? 0 : cut, len = pass == 0 ? cut : p->len - cut;
            if (len == 0) continue;
            seqs[m++] = (engine_seq){start, len, tables[s], BLOCKS_PER_SEQ, len};
            memcpy(tokens + k, p->ids + start, (size_t)len * sizeof *tokens);
            k += len;
        }
        engine_batch b = {m, seqs, tokens};
        CHECK(engine_forward(e, &b, out, &err), "chunked: %s", err.msg);
        for (int i = 0, j = 0; i < n; i++) {
            int s = n - 1 - i;
            const fixture_prompt *p = &f.prompts[s];
            int cut = p->len / 2, start = pass == 0 ? 0 : cut, len = pass == 0 ? cut : p->len - cut;
            if (len == 0) continue;
            double d = rel_max_diff(out + (size_t)rows * V, alone[s] + (size_t)start * V, (size_t)len * V);
            CHECK(d <= TOL, "chunk %d: sequence %d differs from alone by %.3g", pass, s, d);
            rows += len;
            j++;
        }
    }
    k = 0;
    for (int s = 0; s < n; s++) { /* everyone decodes its last prompt token again */
        const fixture_prompt *p = &f.prompts[s];
        seqs[s] = (engine_seq){p->len - 1, 1, tables[s], BLOCKS_PER_SEQ, 1};
        tokens[k++] = p->ids[p->len - 1];
    }
    engine_batch dec = {n, seqs, tokens};
    CHECK(engine_forward(e, &dec, out, &err), "decode: %s", err.msg);
    for (int s = 0; s < n; s++) {
        const fixture_prompt *p = &f.prompts[s];
        double d = rel_max_diff(out + (size_t)s * V, alone[s] + (size_t)(p->len - 1) * V, (size_t)V);
        CHECK(d <= TOL, "decode batch: sequence %d differs from alone by %.3g", s, d);
    }
    printf("  %d sequences (lengths", n);
    for (int s = 0; s < n; s++) printf(" %d", f.prompts[s].len);
    printf(") batched, chunked and decoded: same logits as alone\n");

    for (int s = 0; s < n; s++) free(alone[s]);
    free(out);
    engine_free(e);
    safetensors_close(&f.ref);
    return CHECK_RESULT();
}
