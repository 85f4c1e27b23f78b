/* Tensor-parallel shard math: for T = 1, 2, 4, 8 the slices of all ranks
 * tile every tensor exactly once, MQA K/V are replicated, and the per-rank
 * layout agrees with the slices. */
#include <stdlib.h>

#include "check.h"
#include "model/tensors.h"

static void check_tiling(const gemma_config *cfg, const char *what, int tp) {
    for (int kind = 0; kind < TENSOR_KIND_COUNT; kind++) {
        const tensor_spec *spec = &TENSOR_TABLE[kind];
        shard_slice whole = tensor_shard(spec, cfg, 0, 1);
        int dim = spec->axis == SHARD_COLS ? 1 : 0;
        int64_t len = whole.full[dim];
        int *covered = calloc((size_t)len, sizeof *covered);
        bool replicated_all = true;
        for (int r = 0; r < tp; r++) {
            shard_slice s = tensor_shard(spec, cfg, r, tp);
            CHECK(s.full[0] == whole.full[0] && s.full[1] == whole.full[1], "%s T=%d %s: full shape", what, tp,
                  spec->hf_name);
            CHECK(s.begin >= 0 && s.end <= len && s.begin <= s.end, "%s T=%d %s rank %d: range", what, tp, spec->hf_name, r);
            CHECK(s.local[dim] == s.end - s.begin && s.local[1 - dim] == s.full[1 - dim], "%s T=%d %s: local shape",
                  what, tp, spec->hf_name);
            if (spec->unit != UNIT_ELEMENT && !s.replicated)
                CHECK((s.end - s.begin) % cfg->head_dim == 0, "%s T=%d %s: splits a head", what, tp, spec->hf_name);
            replicated_all = replicated_all && s.replicated;
            for (int64_t i = s.begin; i < s.end; i++) covered[i]++;
        }
        bool expect_replicated = spec->axis == SHARD_REPLICATED ||
                                 (spec->replicate_when_kv_lt_tp && cfg->num_kv_heads < tp);
        for (int64_t i = 0; i < len; i++) {
            int want = expect_replicated ? tp : 1;
            if (covered[i] != want) {
                CHECK(covered[i] == want, "%s T=%d %s: element %lld covered %d times (want %d)", what, tp,
                      spec->hf_name, (long long)i, covered[i], want);
                break;
            }
        }
        CHECK(replicated_all == expect_replicated || tp == 1, "%s T=%d %s: replication", what, tp, spec->hf_name);
        free(covered);
    }
}

static void check_layout(const gemma_config *cfg, const char *what, int tp) {
    int heads = 0, ffn = 0, vocab = 0;
    for (int r = 0; r < tp; r++) {
        tp_layout l = tp_layout_make(cfg, r, tp);
        shard_slice q = tensor_shard(&TENSOR_TABLE[TENSOR_Q], cfg, r, tp);
        shard_slice k = tensor_shard(&TENSOR_TABLE[TENSOR_K], cfg, r, tp);
        CHECK(l.n_heads * cfg->head_dim == q.local[0] && l.head_begin * cfg->head_dim == q.begin, "%s T=%d: q heads", what, tp);
        CHECK(l.n_kv_heads * cfg->head_dim == k.local[0] && l.kv_head_begin * cfg->head_dim == k.begin, "%s T=%d: kv heads",
              what, tp);
        /* every local query head's kv head is held locally */
        int group = cfg->num_heads / cfg->num_kv_heads;
        for (int h = 0; h < l.n_heads; h++) {
            int kv = (l.head_begin + h) / group - l.kv_head_begin;
            CHECK(kv >= 0 && kv < l.n_kv_heads, "%s T=%d rank %d: head %d's kv head %d not local", what, tp, r, h, kv);
        }
        CHECK(l.vocab_begin == vocab, "%s T=%d: vocab slices contiguous", what, tp);
        heads += l.n_heads, ffn += l.ffn_size, vocab += l.vocab_size;
    }
    CHECK(heads == cfg->num_heads && ffn == cfg->intermediate_size && vocab == cfg->vocab_size, "%s T=%d: sums", what, tp);
}

int main(void) {
    const char *presets[] = {"tiny", "2b", "7b"};
    const int tps[] = {1, 2, 4, 8};
    for (int p = 0; p < 3; p++) {
        gemma_config cfg;
        config_preset(&cfg, presets[p]);
        for (int i = 0; i < 4; i++) {
            errbuf err;
            bool ok = tp_check(&cfg, tps[i], &err);
            if (strcmp(presets[p], "tiny") == 0 && tps[i] == 8) { /* 4 heads cannot split 8 ways */
                CHECK_ERR(ok, err, "num_attention_heads 4");
                continue;
            }
            CHECK(ok, "%s T=%d: %s", presets[p], tps[i], err.msg);
            check_tiling(&cfg, presets[p], tps[i]);
            check_layout(&cfg, presets[p], tps[i]);
        }
    }
    gemma_config cfg;
    config_preset(&cfg, "2b");
    shard_slice k = tensor_shard(&TENSOR_TABLE[TENSOR_K], &cfg, 3, 4);
    CHECK(k.replicated && k.local[0] == 256 && k.local[1] == 2048, "2b K is replicated whole at T=4");
    config_preset(&cfg, "7b");
    shard_slice o = tensor_shard(&TENSOR_TABLE[TENSOR_O], &cfg, 1, 4);
    CHECK(o.axis == SHARD_COLS && o.begin == 1024 && o.end == 2048 && o.local[0] == 3072, "7b o_proj rank 1 of 4");
    shard_slice e = tensor_shard(&TENSOR_TABLE[TENSOR_EMBED], &cfg, 7, 8);
    CHECK(e.begin == 224000 && e.end == 256000, "7b embedding rank 7 of 8");
    errbuf err;
    CHECK_ERR(tp_check(&cfg, 3, &err), err, "not divisible");
    CHECK_ERR(tp_check(&cfg, 0, &err), err, "out of range");
    return CHECK_RESULT();
}
