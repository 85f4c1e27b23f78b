/* Sampling: the counter-based generator (Philox4x32-10 known answers),
 * greedy ties, top-k / top-p filters, that Gumbel-max samples follow the
 * softmax, that splitting the vocabulary over ranks changes nothing, and
 * that the vectorized argmax and Σexp agree with their plain loops. */
#include <stdlib.h>

#include "check.h"
#include "random_data.h"
#include "common/philox.h"
#include "worker/sampler.h"

static void test_philox_known_answers(void) {
    /* Random123's published test vectors for philox4x32-10 */
    const uint32_t k0[2] = {0, 0}, c0[4] = {0, 0, 0, 0};
    philox_u32x4 r = philox4x32_10(k0, c0);
    CHECK(r.v[0] == 0x6627e8d5u && r.v[1] == 0xe169c58du && r.v[2] == 0xbc57ac4cu && r.v[3] == 0x9b00dbd8u,
          "zero key/counter: %08x %08x %08x %08x", r.v[0], r.v[1], r.v[2], r.v[3]);
    const uint32_t k1[2] = {0xffffffffu, 0xffffffffu}, c1[4] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu};
    r = philox4x32_10(k1, c1);
    CHECK(r.v[0] == 0x408f276du && r.v[1] == 0x41c83b0eu && r.v[2] == 0xa20bc7c6u && r.v[3] == 0x6d5451fdu,
          "all-ones: %08x %08x %08x %08x", r.v[0], r.v[1], r.v[2], r.v[3]);
    const uint32_t k2[2] = {0xa4093822u, 0x299f31d0u}, c2[4] = {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u};
    r = philox4x32_10(k2, c2);
    CHECK(r.v[0] == 0xd16cfe09u && r.v[1] == 0x94fdccebu && r.v[2] == 0x5001e420u && r.v[3] == 0x24126ea1u,
          "pi digits: %08x %08x %08x %08x", r.v[0], r.v[1], r.v[2], r.v[3]);
    double u = philox_uniform(1, 2, 3, 4);
    CHECK(u > 0 && u < 1 && u == philox_uniform(1, 2, 3, 4), "uniform in (0,1), deterministic");
}

static void test_greedy_and_filters(void) {
    float x[6] = {0.5f, 2.0f, -1.0f, 2.0f, 1.0f, 0.0f};
    CHECK(argmax_f32(x, 6) == 1, "argmax ties go to the lowest id");
    sampler s;
    sampler_init(&s, 6);
    sampling_params g = sampling_params_greedy();
    CHECK(sampler_pick(&s, x, &g, 0) == 1, "greedy");
    sampling_params k1 = {.temperature = 1.0f, .top_k = 1, .top_p = 1.0f, .seed = 9};
    for (int pos = 0; pos < 50; pos++) CHECK(sampler_pick(&s, x, &k1, (uint64_t)pos) == 1, "top_k=1 is greedy");
    sampling_params k2 = {.temperature = 1.0f, .top_k = 2, .top_p = 1.0f, .seed = 9};
    int seen[6] = {0};
    for (int pos = 0; pos < 400; pos++) seen[sampler_pick(&s, x, &k2, (uint64_t)pos)]++;
    CHECK(seen[1] > 0 && seen[3] > 0 && seen[1] + seen[3] == 400, "top_k=2 keeps exactly the two best");
    float y[4] = {3.0f, 2.0f, 0.0f, -5.0f}; /* probs ~ .71 .26 .035 .0002 */
    sampler_free(&s);
    sampler_init(&s, 4);
    sampling_params p = {.temperature = 1.0f, .top_k = 0, .top_p = 0.9f, .seed = 1};
    memset(seen, 0, sizeof seen);
    for (int pos = 0; pos < 400; pos++) seen[sampler_pick(&s, y, &p, (uint64_t)pos)]++;
    CHECK(seen[2] == 0 && seen[3] == 0 && seen[0] > seen[1] && seen[1] > 0, "top_p=0.9 keeps the two best");
    sampler_free(&s);
    errbuf err;
    sampling_params bad = {.temperature = -1, .top_p = 1};
    CHECK_ERR(sampling_params_check(&bad, &err), err, "temperature");
    bad = (sampling_params){.temperature = 1, .top_p = 0};
    CHECK_ERR(sampling_params_check(&bad, &err), err, "top_p");
    bad = (sampling_params){.temperature = 1, .top_k = -2, .top_p = 1};
    CHECK_ERR(sampling_params_check(&bad, &err), err, "top_k");
}

/* Frequencies of Gumbel-max draws over many positions follow softmax(x/T). */
static void test_distribution(void) {
    enum { V = 5, N = 40000 };
    float x[V] = {1.0f, 0.0f, 2.0f, -1.0f, 0.5f};
    const float T = 0.7f;
    double z = 0, prob[V];
    for (int i = 0; i < V; i++) z += exp(x[i] / T);
    for (int i = 0; i < V; i++) prob[i] = exp(x[i] / T) / z;
    sampler s;
    sampler_init(&s, V);
    sampling_params p = {.temperature = T, .top_k = 0, .top_p = 1.0f, .seed = 12345};
    int count[V] = {0};
    for (int pos = 0; pos < N; pos++) count[sampler_pick(&s, x, &p, (uint64_t)pos)]++;
    double chi2 = 0;
    for (int i = 0; i < V; i++) chi2 += pow(count[i] - N * prob[i], 2) / (N * prob[i]);
    /* 4 degrees of freedom: P(chi2 > 18.47) = 0.001 */
    CHECK(chi2 < 18.47, "sample frequencies do not follow the softmax: chi2 = %.2f", chi2);
    printf("  Gumbel-max over %d draws: chi2 = %.2f (4 dof)\n", N, chi2);
    sampler_free(&s);
}

/* What T ranks would do: each takes the Gumbel-max of its vocab slice, the
 * best of those wins. Must equal sampling the whole vocabulary at once. */
static void test_split_invariance(void) {
    enum { V = 1000 };
    float *x = malloc(V * sizeof *x);
    for (int i = 0; i < V; i++) x[i] = (float)sin(i * 0.37) * 3.0f;
    sampler s;
    sampler_init(&s, V);
    candidate *c = malloc(V * sizeof *c);
    int mismatches = 0;
    for (int pos = 0; pos < 200; pos++) {
        sampling_params p = {.temperature = 0.9f, .top_k = 0, .top_p = 1.0f, .seed = 77};
        int32_t whole = sampler_pick(&s, x, &p, (uint64_t)pos);
        for (int tp = 2; tp <= 8; tp *= 2) {
            int32_t best = -1;
            double best_v = -INFINITY;
            for (int r = 0; r < tp; r++) {
                int b = V * r / tp, e = V * (r + 1) / tp, n = 0;
                for (int i = b; i < e; i++) c[n++] = (candidate){i, x[i] / p.temperature};
                int32_t local = candidates_gumbel_pick(c, n, p.seed, (uint64_t)pos);
                double v = x[local] / p.temperature + gumbel_noise(p.seed, (uint64_t)pos, local);
                if (v > best_v) best_v = v, best = local;
            }
            mismatches += best != whole;
        }
    }
    CHECK(mismatches == 0, "%d samples changed when the vocabulary was split over ranks", mismatches);
    free(c);
    free(x);
    sampler_free(&s);
}

/* Penalties and min_p, against values worked out by hand. */
static void test_penalties_and_min_p(void) {
    float x[5] = {2.0f, -1.0f, 0.5f, 3.0f, 1.0f};
    int32_t ids[3] = {0, 1, 3}, counts[3] = {2, 0, 1}; /* 0 and 3 in the output; 1 only in the prompt */
    penalty_tokens seen = {ids, counts, 3};
    sampling_params p = {.temperature = 1, .top_p = 1, .repetition_penalty = 2.0f, .presence_penalty = 0.5f,
                         .frequency_penalty = 0.25f};
    float y[5];
    memcpy(y, x, sizeof y);
    sampler_apply_penalties(y, 5, 0, &p, &seen);
    /* 0: 2/2 - 0.25*2 - 0.5 = 0; 1: -1*2 = -2 (prompt only: no presence/frequency); 2: untouched;
     * 3: 3/2 - 0.25 - 0.5 = 0.75; 4: untouched */
    const float want[5] = {0.0f, -2.0f, 0.5f, 0.75f, 1.0f};
    bool same = true;
    for (int i = 0; i < 5; i++) same = same && fabsf(y[i] - want[i]) < 1e-6f;
    CHECK(same, "penalties: %g %g %g %g %g", y[0], y[1], y[2], y[3], y[4]);
    float z[3] = {10.0f, 20.0f, 30.0f}; /* a slice holding ids [3, 6): only id 3 is seen */
    sampler_apply_penalties(z, 3, 3, &p, &seen);
    CHECK(fabsf(z[0] - 4.25f) < 1e-6f && z[1] == 20.0f && z[2] == 30.0f, "penalties on a slice: %g %g %g", z[0], z[1], z[2]);

    /* min_p 0.2 at T = 1 keeps tokens with p >= 0.2 * p_max: logits within log(0.2) = -1.609 of the best */
    float w[4] = {0.0f, -1.5f, -1.7f, -5.0f};
    sampler s;
    sampler_init(&s, 4);
    sampling_params mp = {.temperature = 1, .top_p = 1, .min_p = 0.2f, .seed = 3};
    int seen_tok[4] = {0};
    for (int pos = 0; pos < 500; pos++) seen_tok[sampler_pick(&s, w, &mp, (uint64_t)pos)]++;
    CHECK(seen_tok[0] > 0 && seen_tok[1] > 0 && seen_tok[2] == 0 && seen_tok[3] == 0, "min_p keeps exactly 0 and 1: %d %d %d %d",
          seen_tok[0], seen_tok[1], seen_tok[2], seen_tok[3]);
    sampler_free(&s);
    int32_t top[3];
    CHECK(sampler_top_ids(x, 5, 3, top) == 3 && top[0] == 3 && top[1] == 0 && top[2] == 4, "top ids");
    seen_tokens st;
    seen_tokens_init(&st);
    for (int i = 0; i < 200; i++) seen_tokens_add(&st, i % 70, i >= 100);
    penalty_tokens v = seen_tokens_view(&st);
    /* id 30 is at i = 30 (prompt), 100 and 170 (output); id 0 at 0, 70 (prompt) and 140 */
    CHECK(v.n == 70 && v.ids[30] == 30 && v.counts[30] == 2 && v.counts[0] == 1 && v.counts[69] == 1, "seen tokens: %d", v.n);
    seen_tokens_free(&st);
    errbuf err;
    sampling_params bad = {.temperature = 1, .top_p = 1, .min_p = 2};
    CHECK_ERR(sampling_params_check(&bad, &err), err, "min_p");
    bad = (sampling_params){.temperature = 1, .top_p = 1, .presence_penalty = 3};
    CHECK_ERR(sampling_params_check(&bad, &err), err, "presence_penalty");
}

/* argmax_f32 = argmax_f32_ref exactly, over lengths around the vector
 * widths, with ties (values from a small set), -inf and NaNs mixed in. */
static void test_argmax_matches_reference(void) {
    const int lengths[] = {1, 7, 15, 16, 17, 31, 33, 100, 1000, 4099, 262144};
    for (size_t li = 0; li < sizeof lengths / sizeof *lengths; li++) {
        int n = lengths[li];
        for (int variant = 0; variant < 5; variant++) {
            float *x = randv((size_t)n);
            for (int i = 0; i < n; i++) {
                if (variant == 1) x[i] = (float)(rand32() % 7); /* many ties */
                if (variant == 2 && rand32() % 5 == 0) x[i] = NAN;
                if (variant == 3 && rand32() % 3 == 0) x[i] = -INFINITY;
            }
            if (variant == 4) x[0] = NAN; /* the plain loop never leaves index 0 */
            int got = argmax_f32(x, n), want = argmax_f32_ref(x, n);
            CHECK(got == want, "argmax n=%d variant %d: %d, reference %d", n, variant, got, want);
            free(x);
        }
    }
    float all_inf[40];
    for (int i = 0; i < 40; i++) all_inf[i] = -INFINITY;
    CHECK(argmax_f32(all_inf, 40) == 0, "argmax of all -inf is 0");
}

/* sum_exp_f32 within 1e-6 relative of Σ exp() in double, on logit-like rows
 * (spread ±30 around the max) and on rows with -inf entries. */
static void test_sum_exp_matches_reference(void) {
    const int lengths[] = {1, 9, 64, 1001, 262144};
    for (size_t li = 0; li < sizeof lengths / sizeof *lengths; li++) {
        int n = lengths[li];
        for (int variant = 0; variant < 3; variant++) {
            float *x = randv((size_t)n);
            for (int i = 0; i < n; i++) {
                x[i] *= variant == 0 ? 3.0f : 30.0f;
                if (variant == 2 && i % 4 == 1) x[i] = -INFINITY;
            }
            float max = x[argmax_f32_ref(x, n)];
            double got = sum_exp_f32(x, n, max), want = sum_exp_f32_ref(x, n, max);
            CHECK(fabs(got - want) <= 1e-6 * want, "sum_exp n=%d variant %d: %.9g, reference %.9g", n, variant, got,
                  want);
            free(x);
        }
    }
}

int main(void) {
    test_penalties_and_min_p();
    test_philox_known_answers();
    test_greedy_and_filters();
    test_distribution();
    test_split_invariance();
    test_argmax_matches_reference();
    test_sum_exp_matches_reference();
    return CHECK_RESULT();
}
