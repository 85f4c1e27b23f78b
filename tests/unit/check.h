/* check.h — the unit tests' assertions. Each failed CHECK prints where and
 * why and is counted; the test's main returns CHECK_RESULT(), non-zero when
 * any failed. A test that cannot run says so and fails: never a silent pass. */
#ifndef FACET_TESTS_CHECK_H
#define FACET_TESTS_CHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int g_checks, g_failed;

#define CHECK(cond, ...)                                                              \
    do {                                                                              \
        g_checks++;                                                                   \
        if (!(cond)) {                                                                \
            g_failed++;                                                               \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                             \
            fputc('\n', stderr);                                                      \
        }                                                                             \
    } while (0)

/* the error message must mention `needle` (errors must name the problem) */
#define CHECK_ERR(ok, err, needle) \
    CHECK(!(ok) && strstr((err).msg, needle), "expected an error mentioning \"%s\", got %s: \"%s\"", needle, \
          (ok) ? "success" : "error", (err).msg)

#define CHECK_RESULT()                                                               \
    (printf("%s: %d checks, %d failed\n", __FILE__, g_checks, g_failed), g_failed ? 1 : 0)

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
