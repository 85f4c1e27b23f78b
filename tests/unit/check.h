/* check.h — the C tests' assertions, the one header every C test uses.
 *
 * Each failed CHECK prints where and why and is counted; a test's main
 * returns CHECK_RESULT(), non-zero when any failed. The counters are
 * atomic and a report is printed whole, so ranks on several threads may
 * CHECK at once. A test that cannot run says so and fails: never a silent
 * pass (gpu_check alone exits 77, "skipped", when there is no GPU). */
#ifndef FACET_TESTS_CHECK_H
#define FACET_TESTS_CHECK_H

#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static atomic_int g_checks, g_failed;

/* Counts one check decided elsewhere (a table row); returns pass. */
static inline bool check_count(bool pass) {
    atomic_fetch_add(&g_checks, 1);
    if (!pass) atomic_fetch_add(&g_failed, 1);
    return pass;
}

#define CHECK(cond, fmt, ...)                                                                              \
    do {                                                                                                    \
        if (!check_count((cond)))                                                                           \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: " fmt "\n", __FILE__, __LINE__, #cond, ##__VA_ARGS__); \
    } while (0)

/* the error message must mention `needle` (errors must name the problem) */
#define CHECK_ERR(ok, err, needle) \
    CHECK(!(ok) && strstr((err).msg, needle), "expected an error mentioning \"%s\", got %s: \"%s\"", needle, \
          (ok) ? "success" : "error", (err).msg)

/* |got - want| <= tol, printing both */
#define CHECK_NEAR(got, want, tol, what)                                                                   \
    CHECK(fabs((double)(got) - (double)(want)) <= (double)(tol), "%s: got %.6f, want %.6f (±%g)", what,    \
          (double)(got), (double)(want), (double)(tol))

#define CHECK_RESULT()                                                                                     \
    (printf("%s: %d checks, %d failed\n", __FILE__, atomic_load(&g_checks), atomic_load(&g_failed)),      \
     atomic_load(&g_failed) ? 1 : 0)

/* max |a - b| / max |b|, with NaN counted as a failure (returns +inf) */
static inline double rel_max_diff(const float *a, const float *b, size_t n) {
    double max_diff = 0, max_ref = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i])) return INFINITY;
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > max_diff) max_diff = d;
        if (fabs((double)b[i]) > max_ref) max_ref = fabs((double)b[i]);
    }
    return max_ref > 0 ? max_diff / max_ref : max_diff;
}

#endif
