/* failover_log.h — the recovery timeline of each lost group, kept by the
 * scheduler (lock held) and served at GET /admin/events for
 * `facet bench failover`: when a fault was injected (if it was, through
 * the admin API), when the loss was detected, when a new group served, and
 * when its first token came -- wall-clock seconds, so a client on another
 * machine can line them up with its own observations. */
#ifndef FACET_COORDINATOR_FAILOVER_LOG_H
#define FACET_COORDINATOR_FAILOVER_LOG_H

#include <stdint.h>

#define FAILOVER_LOG_MAX 1024

typedef struct failover_event {
    uint64_t id;
    double injected_at;    /* 0: not injected through the admin API (or long before) */
    char fault[96];        /* the injected fault, "rank R: SPEC" */
    double detected_at;    /* the group was declared lost */
    double reformed_at;    /* 0: not yet */
    double first_token_at; /* 0: not yet */
    uint64_t lost_epoch, new_epoch;
    int new_size;          /* TP size of the new group */
    int replayed;          /* sequences put back to be recomputed */
    int failed;            /* sequences that ended in an error instead (--max-replays) */
    char reason[160];
} failover_event;

typedef struct failover_log {
    failover_event events[FAILOVER_LOG_MAX]; /* a ring */
    uint64_t n;                              /* events ever recorded */
    double pending_injected_at;              /* the last injection not yet followed by a loss */
    char pending_fault[96];
} failover_log;

double failover_log_now(void); /* wall-clock seconds */
void failover_log_injected(failover_log *l, int rank, const char *spec);
failover_event *failover_log_lost(failover_log *l, uint64_t epoch, const char *reason);
/* The latest event, if it still waits for a new group (or its first token). */
failover_event *failover_log_open(failover_log *l);
/* JSON {"now": t, "events": [...]} (malloc'd), oldest first. */
char *failover_log_json(const failover_log *l);

#endif
