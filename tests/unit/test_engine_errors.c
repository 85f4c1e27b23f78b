/* A malformed step is refused with an error naming the problem, and the
 * engine keeps working afterwards. */
#include "check.h"
#include "fixture.h"

int main(int argc, char **argv) {
    CHECK(argc == 2, "usage: test_engine_errors FIXTURE_DIR");
    if (argc != 2) return CHECK_RESULT();
    errbuf err;
    engine *e = fixture_engine(argv[1], NULL, 8, 4, &err);
    CHECK(e != NULL, "%s", err.msg);
    if (!e) return CHECK_RESULT();
    int V = engine_weights(e)->cfg.vocab_size, ctx = engine_weights(e)->cfg.max_position;
    float *logits = malloc((size_t)V * 4 * sizeof *logits);
    int32_t blocks[4] = {0, 1, 2, 3}, bad_blocks[2] = {0, 99}, toks[4] = {2, 5, 6, 7}, bad_tok[1] = {V};
    engine_seq s;
    engine_batch b = {1, &s, toks};

    s = (engine_seq){0, 4, blocks, 4, 1};
    CHECK(engine_forward(e, &b, logits, &err), "a good step fails: %s", err.msg);
    s = (engine_seq){0, 4, blocks, 0, 1};
    CHECK_ERR(engine_forward(e, &b, logits, &err), err, "block table");
    s = (engine_seq){4, 4, bad_blocks, 2, 1};
    CHECK_ERR(engine_forward(e, &b, logits, &err), err, "block id 99");
    s = (engine_seq){ctx - 2, 4, blocks, 4, 1};
    CHECK_ERR(engine_forward(e, &b, logits, &err), err, "context length");
    s = (engine_seq){0, 0, blocks, 4, 0};
    CHECK_ERR(engine_forward(e, &b, logits, &err), err, "at least one new token");
    s = (engine_seq){0, 2, blocks, 4, 3};
    CHECK_ERR(engine_forward(e, &b, logits, &err), err, "n_logits");
    s = (engine_seq){-1, 1, blocks, 4, 1};
    CHECK_ERR(engine_forward(e, &b, logits, &err), err, "start position");
    s = (engine_seq){0, 1, blocks, 4, 1};
    engine_batch bt = {1, &s, bad_tok};
    CHECK_ERR(engine_forward(e, &bt, logits, &err), err, "token id");
    /* more tokens than the engine's scratch holds (max_batch_tokens 256) */
    engine *roomy = fixture_engine(argv[1], NULL, 128, 4, &err);
    CHECK(roomy != NULL, "%s", err.msg);
    int32_t tables[3][32];
    for (int i = 0; i < 96; i++) tables[i / 32][i % 32] = i;
    engine_seq many[3] = {{0, 100, tables[0], 32, 1}, {0, 100, tables[1], 32, 1}, {0, 100, tables[2], 32, 1}};
    int32_t *lots = calloc(300, sizeof *lots);
    engine_batch big = {3, many, lots};
    if (roomy) CHECK_ERR(engine_forward(roomy, &big, logits, &err), err, "more than 256 tokens");
    big.n_seqs = 2;
    if (roomy) CHECK(engine_forward(roomy, &big, logits, &err), "200 tokens in two sequences: %s", err.msg);
    free(lots);
    engine_free(roomy);
    s = (engine_seq){0, 4, blocks, 4, 1};
    CHECK(engine_forward(e, &b, logits, &err), "the engine broke after refusing bad steps: %s", err.msg);
    free(logits);
    engine_free(e);
    return CHECK_RESULT();
}
