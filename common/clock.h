/* clock.h — monotonic time for timings. */
#ifndef FACET_COMMON_CLOCK_H
#define FACET_COMMON_CLOCK_H

#include <time.h>

static inline double clock_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
