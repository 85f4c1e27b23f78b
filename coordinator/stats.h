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
    int kv_blocks_total, kv_blocks_free; /* free: not held by a request (cached prefixes count as free) */
    int kv_blocks_cached;                /* of the free ones, those holding a cached prefix */
    uint64_t prefix_hit_tokens;          /* known tokens found in the prefix cache at admission */
    int workers_live, workers_in_group, workers_failed;
    uint64_t preemptions, steps;
    uint64_t failovers, replays;
    int group_size;
    int prefill_budget; /* prompt tokens a step may carry while others decode (batching.h) */
} coordinator_stats;

#endif
