/* Tensor parallelism in one process: T engines, one per rank, each loading
 * only its slices of the checkpoint, joined by an in-memory all-reduce.
 * Their logits, put side by side by vocab slice, must match the T = 1
 * engine's. This checks the shard math of model/tensors.c end to end:
 * column- and row-parallel splits, the vocab-parallel embedding and LM head,
 * and K/V replicated when kv_heads < T (MQA). The real transports (Gloo,
 * NCCL) arrive with the tensor-parallel issue and plug into the same hook. */
#include <pthread.h>

#include "check.h"
#include "common/alloc.h"
#include "fixture.h"
#include "kernels/cpu/sample.h"

#define TOL 1e-5

typedef struct group {
    int size;
    pthread_barrier_t barrier;
    float *bufs[8];
} group;

typedef struct rank_ctx {
    group *g;
    int rank;
    engine *e;
    const engine_batch *batch;
    float *logits;
    bool ok;
    errbuf err;
    float *scratch;
    size_t scratch_len;
} rank_ctx;

/* Every rank sums all ranks' buffers in rank order, so all get identical bits. */
static bool loopback_allreduce(void *ctx, float *buf, size_t n, errbuf *err) {
    rank_ctx *r = ctx;
    group *g = r->g;
    if (r->scratch_len < n) {
        r->scratch = realloc(r->scratch, n * sizeof *r->scratch);
        r->scratch_len = n;
    }
    g->bufs[r->rank] = buf;
    pthread_barrier_wait(&g->barrier);
    for (size_t i = 0; i < n; i++) {
        float s = 0;
        for (int k = 0; k < g->size; k++) s += g->bufs[k][i];
        r->scratch[i] = s;
    }
    pthread_barrier_wait(&g->barrier); /* everyone has read every buffer */
    memcpy(buf, r->scratch, n * sizeof *buf);
    (void)err;
    return true;
}

static void *rank_main(void *p) {
    rank_ctx *r = p;
    r->ok = engine_forward(r->e, r->batch, r->logits, &r->err);
    return NULL;
}

static void check_tp(const char *dir, const fixture *f, int tp) {
    errbuf err;
    engine_options base = {.n_threads = 1, .max_batch_tokens = 256, .block_size = 4, .n_blocks = 64};
    engine *whole = engine_load(dir, 0, 1, &base, &err);
    CHECK(whole != NULL, "%s", err.msg);
    if (!whole) return;
    int V = f->vocab;

    group g = {.size = tp};
    pthread_barrier_init(&g.barrier, NULL, (unsigned)tp);
    rank_ctx ranks[8];
    for (int r = 0; r < tp; r++) {
        ranks[r] = (rank_ctx){.g = &g, .rank = r};
        engine_options o = base;
        o.allreduce = loopback_allreduce;
        o.allreduce_ctx = &ranks[r];
        ranks[r].e = engine_load(dir, r, tp, &o, &err);
        CHECK(ranks[r].e != NULL, "rank %d of %d: %s", r, tp, err.msg);
        if (!ranks[r].e) return;
    }
    int32_t blocks[16];
    for (int i = 0; i < 16; i++) blocks[i] = i;
    double worst = 0;
    for (int i = 0; i < f->n_prompts; i++) {
        const fixture_prompt *p = &f->prompts[i];
        engine_seq seq = {0, p->len, blocks, 16, p->len};
        engine_batch b = {1, &seq, p->ids};
        float *ref = malloc((size_t)p->len * V * sizeof *ref), *joined = malloc((size_t)p->len * V * sizeof *joined);
        CHECK(engine_forward(whole, &b, ref, &err), "%s", err.msg);
        pthread_t th[8];
        for (int r = 0; r < tp; r++) {
            const tp_layout *l = &engine_weights(ranks[r].e)->tp;
            ranks[r].batch = &b;
            ranks[r].logits = malloc((size_t)p->len * l->vocab_size * sizeof(float));
            facet_thread_start(&th[r], rank_main, &ranks[r], "test rank");
        }
        for (int r = 0; r < tp; r++) pthread_join(th[r], NULL);
        for (int r = 0; r < tp; r++) {
            CHECK(ranks[r].ok, "rank %d: %s", r, ranks[r].err.msg);
            const tp_layout *l = &engine_weights(ranks[r].e)->tp;
            for (int t = 0; t < p->len; t++)
                memcpy(joined + (size_t)t * V + l->vocab_begin, ranks[r].logits + (size_t)t * l->vocab_size,
                       (size_t)l->vocab_size * sizeof(float));
            free(ranks[r].logits);
        }
        double d = rel_max_diff(joined, ref, (size_t)p->len * V);
        worst = d > worst ? d : worst;
        CHECK(d <= TOL, "%s T=%d prompt %d: rel diff %.3g from T=1", dir, tp, i, d);
        for (int t = 0; t < p->len; t++)
            CHECK(argmax_f32(joined + (size_t)t * V, V) == argmax_f32(ref + (size_t)t * V, V), "%s T=%d: argmax at %d", dir, tp, t);
        free(ref);
        free(joined);
    }
    const tp_layout *l0 = &engine_weights(ranks[0].e)->tp;
    printf("  %s T=%d: %d query heads, %d kv heads%s, F/T = %d, V/T = %d per rank; worst rel diff from T=1 %.2e\n",
           strrchr(dir, '/') + 1, tp, l0->n_heads, l0->n_kv_heads,
           engine_weights(whole)->cfg.num_kv_heads < tp ? " (replicated)" : "", l0->ffn_size, l0->vocab_size, worst);
    for (int r = 0; r < tp; r++) {
        engine_free(ranks[r].e);
        free(ranks[r].scratch);
    }
    pthread_barrier_destroy(&g.barrier);
    engine_free(whole);
}

int main(int argc, char **argv) {
    CHECK(argc > 1, "usage: test_tp_loopback FIXTURE_DIR...");
    for (int a = 1; a < argc; a++) {
        fixture f;
        errbuf err;
        bool ok = fixture_open(&f, argv[a], &err);
        CHECK(ok, "%s", err.msg);
        if (!ok) continue;
        check_tp(argv[a], &f, 2);
        check_tp(argv[a], &f, 4);
        safetensors_close(&f.ref);
    }
    return CHECK_RESULT();
}
