/* worker_state.c — the worker's state line (what Health and Register
 * report), used by every part of the worker. */
#include <stdarg.h>
#include <stdio.h>

#include "worker/worker_impl.h"

void worker_set_state(worker *w, const char *fmt, ...) {
    pthread_mutex_lock(&w->state_mu);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->state, sizeof w->state, fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&w->state_mu);
}

void worker_get_state(worker *w, char *out, size_t len) {
    pthread_mutex_lock(&w->state_mu);
    snprintf(out, len, "%s", w->state);
    pthread_mutex_unlock(&w->state_mu);
}
