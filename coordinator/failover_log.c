#include "coordinator/failover_log.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define INJECTION_WINDOW_S 60.0 /* a loss this long after an injection is not its doing */

double failover_log_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void failover_log_injected(failover_log *l, int rank, const char *spec) {
    l->pending_injected_at = failover_log_now();
    snprintf(l->pending_fault, sizeof l->pending_fault, "rank %d: %.80s", rank, spec);
}

failover_event *failover_log_lost(failover_log *l, uint64_t epoch, const char *reason) {
    failover_event *e = &l->events[l->n % FAILOVER_LOG_MAX];
    memset(e, 0, sizeof *e);
    e->id = ++l->n;
    e->detected_at = failover_log_now();
    e->lost_epoch = epoch;
    snprintf(e->reason, sizeof e->reason, "%s", reason);
    if (l->pending_injected_at > 0 && e->detected_at - l->pending_injected_at < INJECTION_WINDOW_S) {
        e->injected_at = l->pending_injected_at;
        snprintf(e->fault, sizeof e->fault, "%s", l->pending_fault);
    }
    l->pending_injected_at = 0;
    return e;
}

failover_event *failover_log_open(failover_log *l) {
    if (l->n == 0) return NULL;
    failover_event *e = &l->events[(l->n - 1) % FAILOVER_LOG_MAX];
    return e->first_token_at == 0 ? e : NULL;
}

static void add_time(cJSON *o, const char *key, double t) {
    if (t > 0) cJSON_AddNumberToObject(o, key, t);
    else cJSON_AddNullToObject(o, key);
}

char *failover_log_json(const failover_log *l) {
    cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "events");
    cJSON_AddNumberToObject(root, "now", failover_log_now());
    uint64_t first = l->n > FAILOVER_LOG_MAX ? l->n - FAILOVER_LOG_MAX : 0;
    for (uint64_t i = first; i < l->n; i++) {
        const failover_event *e = &l->events[i % FAILOVER_LOG_MAX];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", (double)e->id);
        add_time(o, "injected_at", e->injected_at);
        cJSON_AddStringToObject(o, "fault", e->fault);
        add_time(o, "detected_at", e->detected_at);
        add_time(o, "reformed_at", e->reformed_at);
        add_time(o, "first_token_at", e->first_token_at);
        cJSON_AddNumberToObject(o, "lost_epoch", (double)e->lost_epoch);
        cJSON_AddNumberToObject(o, "new_epoch", (double)e->new_epoch);
        cJSON_AddNumberToObject(o, "new_size", e->new_size);
        cJSON_AddNumberToObject(o, "replayed", e->replayed);
        cJSON_AddNumberToObject(o, "failed", e->failed);
        cJSON_AddStringToObject(o, "reason", e->reason);
        cJSON_AddItemToArray(arr, o);
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}
