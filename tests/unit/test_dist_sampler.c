/* The distributed sampler against the one-rank sampler: T = 2 and 4 ranks
 * (threads, Gloo over loopback), each holding a slice of random logits,
 * must pick the same tokens with the same log-probabilities and the same
 * top alternatives as one rank holding the whole row -- for greedy,
 * temperature, top-k, top-p, min-p and penalties, mixed in one batch.
 * The same from row summaries made apart from the sampler (as a CUDA engine
 * makes them on the device, dist_summarize_row being their reference) and
 * exchanged with dist_sample_from_summaries, for the rows that need no whole
 * raw row, at T = 1, 2 and 4. */
#include <pthread.h>
#include <stdlib.h>

#include "check.h"
#include "common/alloc.h"
#include "comm/comm.h"
#include "worker/dist_sampler.h"

#define V 1003 /* not divisible by 2 or 4: uneven slices */
#define ROWS 9
#define SEQ_LEN 40

static float g_logits[ROWS][V];
static int32_t g_seen_ids[ROWS][SEQ_LEN], g_seen_counts[ROWS][SEQ_LEN];
static sample_request g_reqs[ROWS];

typedef struct rank_arg {
    int rank, size;
    comm_store *store;
    const char *prefix;
    dist_sample_result out[ROWS];
    dist_sample_result from_summaries[ROWS]; /* rows that need no raw row, in row order; the rest untouched */
    bool ok;
    errbuf err;
} rank_arg;

/* The rows of g_reqs a summary serves (not min_p / top_p alone), into reqs and rows; their count. */
static int summary_rows(sample_request *reqs, int *rows) {
    int n = 0;
    for (int r = 0; r < ROWS; r++)
        if (sample_mode_of(&g_reqs[r].params) != SAMPLE_FULL) reqs[n] = g_reqs[r], rows[n++] = r;
    return n;
}

/* This rank's records of those rows, made from its slice apart from the sampler, then exchanged and decided. */
static bool sample_by_summaries(comm *c, const tp_layout *tp, const float *slice, dist_sample_result *out, errbuf *err) {
    sample_request reqs[ROWS];
    int rows[ROWS], n = summary_rows(reqs, rows);
    row_layout L = dist_sample_layout(reqs, n, tp->vocab_size);
    size_t bytes = row_record_bytes(L);
    uint8_t *records = xcalloc((size_t)n, bytes);
    float *work = xmalloc((size_t)tp->vocab_size * sizeof *work);
    candidate *scratch = xmalloc((size_t)tp->vocab_size * sizeof *scratch);
    for (int i = 0; i < n; i++)
        dist_summarize_row(slice + (size_t)rows[i] * tp->vocab_size, tp->vocab_size, tp->vocab_begin, &reqs[i], L,
                           records + (size_t)i * bytes, work, scratch);
    dist_sample_result got[ROWS];
    bool ok = dist_sample_from_summaries(c, records, n, L, reqs, got, err);
    for (int i = 0; ok && i < n; i++) out[rows[i]] = got[i];
    free(records), free(work), free(scratch);
    return ok;
}

static void *rank_main(void *p) {
    rank_arg *a = p;
    comm_options o = {.rank = a->rank, .size = a->size, .prefix = a->prefix, .timeout_ms = 20000, .max_floats = 1 << 16};
    comm *c = comm_gloo_create(&o, a->store, &a->err);
    a->ok = c != NULL;
    if (!c) return NULL;
    gemma_config cfg = {.vocab_size = V, .num_heads = 4, .num_kv_heads = 4, .head_dim = 2, .intermediate_size = 8};
    tp_layout tp = tp_layout_make(&cfg, a->rank, a->size);
    float *slice = malloc((size_t)ROWS * tp.vocab_size * sizeof *slice);
    for (int r = 0; r < ROWS; r++)
        memcpy(slice + (size_t)r * tp.vocab_size, &g_logits[r][tp.vocab_begin], (size_t)tp.vocab_size * sizeof(float));
    a->ok = dist_sample(c, &tp, V, slice, ROWS, g_reqs, a->out, NULL, &a->err) &&
            sample_by_summaries(c, &tp, slice, a->from_summaries, &a->err);
    free(slice);
    comm_free(c);
    return NULL;
}

static void make_inputs(unsigned seed) {
    srand(seed);
    for (int r = 0; r < ROWS; r++) {
        for (int v = 0; v < V; v++) g_logits[r][v] = (float)(rand() % 20001 - 10000) / 2500.0f;
        g_logits[r][rand() % V] = g_logits[r][rand() % V]; /* a tie somewhere */
        for (int k = 0; k < SEQ_LEN; k++) g_seen_ids[r][k] = (k * 37 + r * 11) % V, g_seen_counts[r][k] = k % 3;
    }
    const sampling_params kinds[ROWS] = {
        {.temperature = 0, .top_p = 1},                                     /* greedy */
        {.temperature = 0.8f, .top_p = 1, .seed = 5},                       /* Gumbel over all */
        {.temperature = 1.3f, .top_k = 17, .top_p = 1, .seed = 6},          /* top-k */
        {.temperature = 1.0f, .top_k = 40, .top_p = 0.7f, .seed = 7},       /* top-k + top-p */
        {.temperature = 0.9f, .top_p = 0.5f, .seed = 8},                    /* top-p alone: whole rows */
        {.temperature = 1.1f, .top_p = 1, .min_p = 0.05f, .seed = 9},       /* min-p */
        {.temperature = 0.7f, .top_p = 1, .seed = 10, .presence_penalty = 0.6f, .frequency_penalty = 0.4f},
        {.temperature = 0, .top_p = 1, .repetition_penalty = 1.3f},         /* greedy + repetition penalty */
        {.temperature = 1.0f, .top_k = 5, .top_p = 1, .seed = 11, .repetition_penalty = 0.8f, .frequency_penalty = -0.5f},
    };
    for (int r = 0; r < ROWS; r++) {
        penalty_tokens seen = {g_seen_ids[r], g_seen_counts[r], SEQ_LEN};
        g_reqs[r] = (sample_request){kinds[r], (uint64_t)(100 + r), seen, r % 6};
    }
}

/* d equals the one-rank sampler's o: token, logprob (1e-5) and alternatives. */
static bool same_result(const dist_sample_result *d, const dist_sample_result *o) {
    bool tops = d->n_top == o->n_top;
    for (int k = 0; tops && k < o->n_top; k++)
        tops = d->top_ids[k] == o->top_ids[k] && fabsf(d->top_logprobs[k] - o->top_logprobs[k]) <= 1e-5f;
    return d->token == o->token && fabsf(d->logprob - o->logprob) <= 1e-5f && tops;
}

/* The summary rows of each rank's from_summaries against one rank's sampler. */
static void compare_summaries(const dist_sample_result *one, const dist_sample_result *got, int size, int rank,
                              unsigned seed) {
    sample_request reqs[ROWS];
    int rows[ROWS], n = summary_rows(reqs, rows);
    for (int i = 0; i < n; i++) {
        const dist_sample_result *d = &got[rows[i]], *o = &one[rows[i]];
        CHECK(same_result(d, o), "seed %u T=%d rank %d row %d from summaries: token %d vs %d, logprob %g vs %g", seed,
              size, rank, rows[i], d->token, o->token, d->logprob, o->logprob);
    }
}

static void compare(int size, unsigned seed) {
    dist_sample_result one[ROWS];
    tp_layout whole = {.tp_size = 1, .vocab_size = V};
    CHECK(dist_sample(NULL, &whole, V, &g_logits[0][0], ROWS, g_reqs, one, NULL, NULL), "one rank");
    if (size == 2) { /* once per seed: one rank's own summaries (T = 1, no communicator) */
        dist_sample_result own[ROWS];
        errbuf err = {{0}};
        CHECK(sample_by_summaries(NULL, &whole, &g_logits[0][0], own, &err), "T=1 from summaries: %s", err.msg);
        compare_summaries(one, own, 1, 0, seed);
    }
    comm_store *store = comm_store_local_create();
    rank_arg args[4];
    pthread_t th[4];
    for (int r = 0; r < size; r++) {
        args[r] = (rank_arg){.rank = r, .size = size, .store = store, .prefix = "t/"};
        facet_thread_start(&th[r], rank_main, &args[r], "test rank");
    }
    for (int r = 0; r < size; r++) pthread_join(th[r], NULL);
    for (int r = 0; r < size; r++) CHECK(args[r].ok, "T=%d rank %d: %s", size, r, args[r].err.msg);
    for (int r = 0; r < size; r++) compare_summaries(one, args[r].from_summaries, size, r, seed);
    int same = 0;
    for (int row = 0; row < ROWS; row++) {
        for (int r = 0; r < size; r++) {
            const dist_sample_result *d = &args[r].out[row], *o = &one[row];
            bool ok = same_result(d, o);
            CHECK(ok, "seed %u T=%d rank %d row %d: token %d vs %d, logprob %g vs %g, %d vs %d tops", seed, size, r,
                  row, d->token, o->token, d->logprob, o->logprob, d->n_top, o->n_top);
            same += ok;
        }
    }
    printf("  seed %u, T=%d: %d of %d rows (all ranks) equal one rank's choice, logprob and alternatives\n", seed, size, same,
           ROWS * size);
    comm_store_local_free(store);
}

int main(void) {
    for (unsigned seed = 1; seed <= 3; seed++) {
        make_inputs(seed);
        compare(2, seed);
        compare(4, seed);
    }
    return CHECK_RESULT();
}
