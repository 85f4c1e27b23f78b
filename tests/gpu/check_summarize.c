/* check_summarize.c — the device's row summaries (api->test_summarize,
 * kernels/cuda/summarize.cu) against worker/dist_sampler.c
 * dist_summarize_row's, row by row, field by field:
 *   equal:   best_id, n_cand, n_top, pads, every slot's id;
 *   bitwise: max, best_raw, best_value and every slot's logit and raw (copies
 *            of inputs, or the same fp32/double expressions), and the zeros
 *            of unused slots (the device's records start poisoned);
 *   sumexp:  summed in another order: within 1e-12 of the same terms summed
 *            here (sum_exp_f32_ref), and within 1e-6 of the record's
 *            (sum_exp_f32 evaluates exp with a float polynomial,
 *            kernels/cpu/sample.h).
 * Logits are random with deliberate ties (a repeated maximum, a repeated
 * value near the top-k threshold, coarse rows of 256 values, both zeros). */
#include "check_summarize.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/rng.h"
#include "kernels/cpu/sample.h"
#include "kernels/cuda/api.h"
#include "worker/dist_sampler.h"

#define REPS 5
#define SUMEXP_TOL 1e-12
#define SUMEXP_TOL_HOST 1e-6
#define MAX_ROWS 8
#define SEEN_MAX 64

/* One row's sampling parameters, as a request gives them. */
typedef struct row_spec {
    float temperature;
    int top_k;
    float top_p, min_p;
    float presence, frequency, repetition;
    int top_logprobs;
} row_spec;

#define GREEDY(t) {0, 0, 1, 0, 0, 0, 0, t}
#define GREEDY_PEN(t) {0, 0, 1, 0, 0.5f, 0.25f, 1.3f, t}
#define PRESENCE_ONLY(t) {0, 0, 1, 0, 0.75f, 0, 0, t} /* repetition 0 means 1 */
#define GUMBEL(t) {0.8f, 0, 1, 0, 0, 0, 0, t}
#define GUMBEL_PEN(t) {1.1f, 0, 1, 0, 0.4f, 0.3f, 1.2f, t}
#define TOP_K(k, t) {0.7f, k, 1, 0, 0, 0, 0, t}
#define TOP_K_PEN(k, t) {0.6f, k, 0.9f, 0, 0.5f, 0.5f, 1.5f, t} /* top_p with top_k: still top-k mode */

typedef struct summarize_case {
    const char *name;
    int d, vocab_begin, n;
    row_spec rows[MAX_ROWS];
} summarize_case;

/* The rows of one case and what they point to. */
typedef struct case_rows {
    int n, d, vocab_begin;
    float *x;                  /* (n, d) */
    sample_request reqs[MAX_ROWS];
    int32_t seen_ids[MAX_ROWS][SEEN_MAX], seen_counts[MAX_ROWS][SEEN_MAX];
} case_rows;

static uint64_t rng = 0x5eed5a3917e5ull;

static int rand_below(int n) { return (int)(splitmix64_next(&rng) % (uint64_t)n); }

/* Uniform in [-8, 8); coarse rows keep 256 values (ties everywhere, -0 among them). Then ties on purpose: 7.5
 * every 97 columns (around the top-k thresholds), 9 (the maximum) three times, and both zeros side by side. */
static void fill_row(float *x, int d, bool coarse) {
    for (int i = 0; i < d; i++) {
        float v = -8.0f + 16.0f * (float)splitmix64_unit(&rng);
        x[i] = coarse ? nearbyintf(v * 16.0f) / 16.0f : v;
    }
    for (int i = 13; i < d; i += 97) x[i] = 7.5f;
    for (int j = 0; j < 3; j++) x[rand_below(d)] = 9.0f;
    if (d > 8) x[d / 2] = -0.0f, x[d / 2 + 1] = 0.0f;
}

static bool holds(const int32_t *ids, int n, int32_t id) {
    for (int i = 0; i < n; i++)
        if (ids[i] == id) return true;
    return false;
}

/* Distinct seen tokens straddling the slice: the row's maximum, the ids on both sides of each edge, and random
 * ids from a quarter slice before it to a quarter after; counts 0 (prompt only) to 4. */
static int make_seen(int32_t *ids, int32_t *counts, const float *x, int d, int vocab_begin) {
    int want = d / 2 < SEEN_MAX ? d / 2 : SEEN_MAX, n = 0;
    int32_t edges[] = {vocab_begin + argmax_f32(x, d), vocab_begin - 1, vocab_begin, vocab_begin + d - 1,
                       vocab_begin + d};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0] && n < want; i++)
        if (edges[i] >= 0 && !holds(ids, n, edges[i])) ids[n++] = edges[i];
    while (n < want) {
        int32_t id = vocab_begin - d / 4 + rand_below(d + d / 2 + 1);
        if (id >= 0 && !holds(ids, n, id)) ids[n++] = id;
    }
    for (int i = 0; i < n; i++) counts[i] = i % 3 == 0 ? 0 : 1 + rand_below(4);
    return n;
}

static void make_rows(case_rows *c, const row_spec *spec, int n, int d, int vocab_begin) {
    c->n = n, c->d = d, c->vocab_begin = vocab_begin;
    c->x = xmalloc((size_t)n * d * sizeof *c->x);
    for (int r = 0; r < n; r++) {
        const row_spec *s = &spec[r];
        float *x = c->x + (size_t)r * d;
        fill_row(x, d, r % 2 == 1);
        sample_request *q = &c->reqs[r];
        memset(q, 0, sizeof *q);
        q->params = (sampling_params){.temperature = s->temperature, .top_k = s->top_k, .top_p = s->top_p,
                                      .seed = splitmix64_next(&rng), .min_p = s->min_p,
                                      .presence_penalty = s->presence, .frequency_penalty = s->frequency,
                                      .repetition_penalty = s->repetition};
        q->position = splitmix64_next(&rng) >> 20; /* above 2^32: both words of the noise key */
        q->top_logprobs = s->top_logprobs;
        q->seen.ids = c->seen_ids[r];
        q->seen.counts = c->seen_counts[r];
        q->seen.n = make_seen(c->seen_ids[r], c->seen_counts[r], x, d, vocab_begin);
    }
}

static const char *mode_name(sample_mode m) {
    static const char *names[] = {"greedy", "gumbel", "top-k", "full"};
    return names[m];
}

static bool same_bits(const void *a, const void *b, size_t n) { return memcmp(a, b, n) == 0; }

/* How far apart two doubles of one sign are, in units of the last place: 1 says a rounding step (of the Gumbel
 * noise's log, say: CUDA's and libm's may round differently), more a different expression. */
static long long ulps(double a, double b) {
    int64_t x, y;
    memcpy(&x, &a, sizeof x), memcpy(&y, &b, sizeof y);
    return (long long)(x > y ? x - y : y - x);
}

/* The first difference between the device's record of a row and the host's, into why; false if there is one. */
static bool same_record(const row_summary *dev, const row_summary *ref, const float *raw, int d, row_layout L,
                        char *why, size_t len) {
    if (dev->best_id != ref->best_id) return snprintf(why, len, "best_id %d, host %d", dev->best_id, ref->best_id), false;
    if (dev->n_cand != ref->n_cand) return snprintf(why, len, "n_cand %d, host %d", dev->n_cand, ref->n_cand), false;
    if (dev->n_top != ref->n_top) return snprintf(why, len, "n_top %d, host %d", dev->n_top, ref->n_top), false;
    if (dev->pad != ref->pad) return snprintf(why, len, "head pad %d, host %d", dev->pad, ref->pad), false;
    if (!same_bits(&dev->max, &ref->max, sizeof dev->max))
        return snprintf(why, len, "max %.9g, host %.9g", dev->max, ref->max), false;
    if (!same_bits(&dev->best_raw, &ref->best_raw, sizeof dev->best_raw))
        return snprintf(why, len, "best_raw %.9g, host %.9g", dev->best_raw, ref->best_raw), false;
    if (!same_bits(&dev->best_value, &ref->best_value, sizeof dev->best_value))
        return snprintf(why, len, "best_value %.17g, host %.17g (%lld ulp)", dev->best_value, ref->best_value,
                        ulps(dev->best_value, ref->best_value)),
               false;
    double exact = sum_exp_f32_ref(raw, d, ref->max);
    if (!(fabs(dev->sumexp - exact) <= SUMEXP_TOL * exact))
        return snprintf(why, len, "sumexp %.17g, host (exp per term) %.17g", dev->sumexp, exact), false;
    if (!(fabs(dev->sumexp - ref->sumexp) <= SUMEXP_TOL_HOST * ref->sumexp))
        return snprintf(why, len, "sumexp %.17g, host record %.17g", dev->sumexp, ref->sumexp), false;
    const cand_rec *a = (const cand_rec *)(dev + 1), *b = (const cand_rec *)(ref + 1);
    for (int i = 0; i < L.k + L.t; i++)
        if (!same_bits(&a[i], &b[i], sizeof a[i]))
            return snprintf(why, len, "%s slot %d: {%d, %.9g, %.9g, %d}, host {%d, %.9g, %.9g, %d}",
                            i < L.k ? "candidate" : "top logit", i < L.k ? i : i - L.k, a[i].id, a[i].logit, a[i].raw,
                            a[i].pad, b[i].id, b[i].logit, b[i].raw, b[i].pad),
                   false;
    return true;
}

/* The host's records of every row against the device's; the first mismatch into why. */
static bool same_records(const case_rows *c, row_layout L, const unsigned char *dev, char *why, size_t len) {
    size_t bytes = row_record_bytes(L);
    unsigned char *ref = xmalloc(bytes);
    float *work = xmalloc((size_t)c->d * sizeof *work);
    candidate *scratch = xmalloc((size_t)c->d * sizeof *scratch);
    bool same = true;
    for (int r = 0; r < c->n && same; r++) {
        const float *raw = c->x + (size_t)r * c->d;
        const sample_request *q = &c->reqs[r];
        dist_summarize_row(raw, c->d, c->vocab_begin, q, L, ref, work, scratch);
        char what[256];
        if (!same_record((const row_summary *)(dev + (size_t)r * bytes), (const row_summary *)ref, raw, c->d, L, what,
                         sizeof what)) {
            snprintf(why, len, "row %d (%s, top_k %d, %s, %d logprobs): %s", r, mode_name(sample_mode_of(&q->params)),
                     q->params.top_k, q->params.presence_penalty != 0 ? "penalties" : "no penalties", q->top_logprobs,
                     what);
            same = false;
        }
    }
    free(ref), free(work), free(scratch);
    return same;
}

static bool check_case(const struct cuda_api *api, const summarize_case *k) {
    char label[96];
    snprintf(label, sizeof label, "n=%d d=%d %s", k->n, k->d, k->name);
    case_rows c;
    make_rows(&c, k->rows, k->n, k->d, k->vocab_begin);
    row_layout L = dist_sample_layout(c.reqs, c.n, c.d);
    unsigned char *dev = xmalloc((size_t)c.n * row_record_bytes(L));
    cuda_op_shape s = {.n = c.n, .d = c.d, .vocab_begin = c.vocab_begin};
    errbuf err;
    double ms = 0;
    char why[512];
    bool ok = api->test_summarize(&s, c.x, c.reqs, L, dev, REPS, &ms, &err);
    if (!ok) printf("summarize  %-44s FAIL: %s\n", label, err.msg);
    else if (!(ok = same_records(&c, L, dev, why, sizeof why))) printf("summarize  %-44s FAIL %s\n", label, why);
    else printf("summarize  %-44s ok  %.3f ms\n", label, ms);
    fflush(stdout);
    free(c.x), free(dev);
    return ok;
}

/* Rows the device must refuse, saying why, with nothing launched. */
static bool check_refusal(const struct cuda_api *api, const char *name, row_spec spec, int d) {
    char label[96];
    snprintf(label, sizeof label, "n=2 d=%d refuses %s", d, name);
    row_spec rows[2] = {GREEDY(0), spec};
    case_rows c;
    make_rows(&c, rows, 2, d, 0);
    row_layout L = dist_sample_layout(c.reqs, c.n, c.d);
    unsigned char *dev = xmalloc((size_t)c.n * row_record_bytes(L));
    cuda_op_shape s = {.n = c.n, .d = c.d};
    errbuf err = {{0}};
    double ms = 0;
    bool refused = !api->test_summarize(&s, c.x, c.reqs, L, dev, 0, &ms, &err) && err.msg[0];
    if (refused) printf("summarize  %-44s ok  (%s)\n", label, err.msg);
    else printf("summarize  %-44s FAIL: accepted\n", label);
    fflush(stdout);
    free(c.x), free(dev);
    return refused;
}

int check_summarize(const struct cuda_api *api) {
    static const summarize_case cases[] = {
        {"greedy, logprobs 0..20", 1000, 0, 4, {GREEDY(0), GREEDY(1), GREEDY_PEN(5), GREEDY(20)}},
        {"mixed modes", 32000, 64000, 8,
         {GREEDY(0), GUMBEL(3), GUMBEL_PEN(0), TOP_K(1, 20), TOP_K(5, 0), TOP_K_PEN(40, 7), GREEDY_PEN(2),
          PRESENCE_ONLY(11)}},
        {"odd slice, all modes", 4099, 12345, 6,
         {GUMBEL(1), GUMBEL_PEN(20), TOP_K(5, 4), TOP_K_PEN(40, 0), GREEDY_PEN(13), PRESENCE_ONLY(0)}},
        {"top-k 1024 (and 1)", 32000, 0, 4, {TOP_K(1024, 0), TOP_K_PEN(1024, 20), TOP_K(1, 1), GREEDY(6)}},
        {"top-k above the slice", 700, 7, 3, {TOP_K(1024, 20), TOP_K_PEN(40, 3), GUMBEL(0)}},
        {"tiny slice", 20, 100, 3, {TOP_K_PEN(40, 20), GREEDY(20), GUMBEL_PEN(9)}},
        {"2b vocab, T=1", 256000, 0, 4, {GREEDY(20), GUMBEL(5), TOP_K_PEN(40, 0), TOP_K(1024, 1)}},
        {"2b slice, T=2 rank 1", 128000, 128000, 4, {GUMBEL_PEN(0), GREEDY_PEN(20), TOP_K_PEN(40, 2), GUMBEL(8)}},
    };
    int failed = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) failed += !check_case(api, &cases[i]);
    failed += !check_refusal(api, "top_p alone", (row_spec){1.0f, 0, 0.9f, 0, 0, 0, 0, 0}, 1000);
    failed += !check_refusal(api, "min_p", (row_spec){0.7f, 40, 1, 0.1f, 0, 0, 0, 0}, 1000);
    failed += !check_refusal(api, "top_k 2000 > 1024", (row_spec)TOP_K(2000, 0), 4000);
    return failed;
}
