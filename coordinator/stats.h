/* stats.h — the coordinator's state in numbers, for /metrics and /ready:
 * filled by the scheduler (requests, blocks, steps) and membership
 * (workers), rendered by metrics.c. Types only. */
#ifndef FACET_COORDINATOR_STATS_H
#define FACET_COORDINATOR_STATS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct coordinator_stats {
    bool ready;
    uint64_t epoch;
    int waiting, running;
    int kv_blocks_total, kv_blocks_free;
    int workers_live, workers_in_group, workers_failed;
    uint64_t preemptions, steps;
    uint64_t failovers, replays;
    int group_size;
} coordinator_stats;

#endif
