/* clock.h — monotonic time for timings. */
#ifndef FACET_COMMON_CLOCK_H
#define FACET_COMMON_CLOCK_H

#include <time.h>

static inline double clock_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The CLOCK_REALTIME instant ms from now: the deadline pthread_cond_timedwait
 * takes on a condition variable with default attributes. */
static inline struct timespec clock_deadline(int ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long ns = ts.tv_nsec + (long)(ms % 1000) * 1000000L;
    ts.tv_sec += ms / 1000 + ns / 1000000000L;
    ts.tv_nsec = ns % 1000000000L;
    return ts;
}

#endif
