#include "coordinator/metrics.h"
#include "common/alloc.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/strbuf.h"

#define MAX_BUCKETS 20

typedef struct histogram {
    const char *name, *help;
    double bounds[MAX_BUCKETS];
    int n_bounds;
    uint64_t counts[MAX_BUCKETS + 1]; /* the last is +Inf */
    double sum;
    uint64_t count;
} histogram;

struct metrics {
    pthread_mutex_t mu;
    uint64_t requests[OUTCOME_COUNT];
    uint64_t prompt_tokens, generated_tokens;
    histogram ttft, itl, e2e, step, step_overhead, batch_tokens, batch_seqs, recovery;
};

static const char *k_outcomes[OUTCOME_COUNT] = {"stop", "length", "cancelled", "invalid", "refused", "failed"};

static void histogram_init(histogram *h, const char *name, const char *help, const double *bounds, int n) {
    memset(h, 0, sizeof *h);
    h->name = name;
    h->help = help;
    h->n_bounds = n;
    memcpy(h->bounds, bounds, (size_t)n * sizeof *bounds);
}

static void histogram_observe(histogram *h, double v) {
    int i = 0;
    while (i < h->n_bounds && v > h->bounds[i]) i++;
    h->counts[i]++;
    h->sum += v;
    h->count++;
}

metrics *metrics_create(void) {
    metrics *m = xcalloc(1, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    static const double latency[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
    static const double tokens[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
    int nl = (int)(sizeof latency / sizeof *latency), nt = (int)(sizeof tokens / sizeof *tokens);
    histogram_init(&m->ttft, "facet_time_to_first_token_seconds", "Time from arrival to the first generated token.", latency, nl);
    histogram_init(&m->itl, "facet_inter_token_latency_seconds", "Time between consecutive tokens of a request.", latency, nl);
    histogram_init(&m->e2e, "facet_e2e_request_latency_seconds", "Time from arrival to the last token.", latency, nl);
    histogram_init(&m->step, "facet_step_seconds", "Duration of a step on the group (all ranks, round trip).", latency, nl);
    static const double overhead[] = {0.00005, 0.0001, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.002, 0.005, 0.01, 0.1};
    histogram_init(&m->step_overhead, "facet_step_overhead_seconds",
                   "A step's round trip less rank 0's own time in it (forward, collectives, sampling): packing, "
                   "RPC, hand-offs.",
                   overhead, (int)(sizeof overhead / sizeof *overhead));
    histogram_init(&m->batch_tokens, "facet_step_tokens", "Tokens computed per step.", tokens, nt);
    histogram_init(&m->batch_seqs, "facet_step_sequences", "Sequences per step.", tokens, 11);
    histogram_init(&m->recovery, "facet_recovery_seconds",
                   "From a lost group to the first token of the group that replaced it.", latency, nl);
    return m;
}

void metrics_free(metrics *m) {
    if (!m) return;
    pthread_mutex_destroy(&m->mu);
    free(m);
}

void metrics_observe_step(metrics *m, double seconds, double worker_seconds, int tokens, int seqs) {
    pthread_mutex_lock(&m->mu);
    histogram_observe(&m->step, seconds);
    if (worker_seconds >= 0) histogram_observe(&m->step_overhead, seconds > worker_seconds ? seconds - worker_seconds : 0);
    histogram_observe(&m->batch_tokens, tokens);
    histogram_observe(&m->batch_seqs, seqs);
    pthread_mutex_unlock(&m->mu);
}

void metrics_observe_recovery(metrics *m, double seconds) {
    pthread_mutex_lock(&m->mu);
    histogram_observe(&m->recovery, seconds);
    pthread_mutex_unlock(&m->mu);
}

void metrics_observe_itl(metrics *m, double seconds) {
    pthread_mutex_lock(&m->mu);
    histogram_observe(&m->itl, seconds);
    pthread_mutex_unlock(&m->mu);
}

void metrics_request_done(metrics *m, request_outcome outcome, int prompt_tokens, int generated_tokens, double ttft,
                          double e2e) {
    pthread_mutex_lock(&m->mu);
    m->requests[outcome]++;
    m->prompt_tokens += (uint64_t)(prompt_tokens > 0 ? prompt_tokens : 0);
    m->generated_tokens += (uint64_t)(generated_tokens > 0 ? generated_tokens : 0);
    if (ttft >= 0) histogram_observe(&m->ttft, ttft);
    if (e2e >= 0) histogram_observe(&m->e2e, e2e);
    pthread_mutex_unlock(&m->mu);
}

static void render_histogram(strbuf *out, const histogram *h) {
    strbuf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", h->name, h->help, h->name);
    uint64_t cum = 0;
    for (int i = 0; i < h->n_bounds; i++) {
        cum += h->counts[i];
        strbuf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", h->name, h->bounds[i], (unsigned long long)cum);
    }
    cum += h->counts[h->n_bounds];
    strbuf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9g\n%s_count %llu\n", h->name, (unsigned long long)cum, h->name,
                  h->sum, h->name, (unsigned long long)h->count);
}

static void render_gauge(strbuf *out, const char *name, const char *help, double v) {
    strbuf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %.9g\n", name, help, name, name, v);
}

static void render_counter(strbuf *out, const char *name, const char *help, unsigned long long v) {
    strbuf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name, v);
}

char *metrics_render(metrics *m, const coordinator_stats *st) {
    strbuf out;
    strbuf_init(&out);
    pthread_mutex_lock(&m->mu);
    strbuf_printf(&out, "# HELP facet_requests_total Requests by how they ended.\n# TYPE facet_requests_total counter\n");
    for (int i = 0; i < OUTCOME_COUNT; i++)
        strbuf_printf(&out, "facet_requests_total{outcome=\"%s\"} %llu\n", k_outcomes[i], (unsigned long long)m->requests[i]);
    render_counter(&out, "facet_prompt_tokens_total", "Prompt tokens of requests.", m->prompt_tokens);
    render_counter(&out, "facet_generation_tokens_total", "Tokens generated.", m->generated_tokens);
    render_histogram(&out, &m->ttft);
    render_histogram(&out, &m->itl);
    render_histogram(&out, &m->e2e);
    render_histogram(&out, &m->step);
    render_histogram(&out, &m->step_overhead);
    render_histogram(&out, &m->batch_tokens);
    render_histogram(&out, &m->batch_seqs);
    render_histogram(&out, &m->recovery);
    pthread_mutex_unlock(&m->mu);
    render_gauge(&out, "facet_ready", "1 when a group is formed and serving.", st->ready);
    render_gauge(&out, "facet_group_epoch", "Epoch of the current (or last) group.", (double)st->epoch);
    render_gauge(&out, "facet_queue_length", "Requests waiting to be admitted.", st->waiting);
    render_gauge(&out, "facet_running_sequences", "Sequences admitted and generating.", st->running);
    render_gauge(&out, "facet_kv_blocks_total", "KV cache blocks of the group.", st->kv_blocks_total);
    render_gauge(&out, "facet_kv_blocks_used", "KV cache blocks in use.", st->kv_blocks_total - st->kv_blocks_free);
    render_gauge(&out, "facet_kv_usage_ratio", "Fraction of KV blocks in use.",
                 st->kv_blocks_total ? (double)(st->kv_blocks_total - st->kv_blocks_free) / st->kv_blocks_total : 0);
    render_gauge(&out, "facet_prefill_budget_tokens",
                 "New prompts' tokens a step may carry while other requests decode (--max-prefill-tokens; -1, auto: from step times).",
                 st->prefill_budget);
    render_gauge(&out, "facet_kv_blocks_cached", "KV blocks no request holds that keep a prefix for reuse.",
                 st->kv_blocks_cached);
    render_counter(&out, "facet_prefix_cache_hit_tokens_total",
                   "Tokens whose KV a request found in the prefix cache instead of computing them.", st->prefix_hit_tokens);
    render_counter(&out, "facet_preemptions_total", "Sequences preempted for KV blocks (recomputed later).", st->preemptions);
    render_counter(&out, "facet_steps_total", "Steps run on the group.", st->steps);
    render_counter(&out, "facet_failovers_total", "Groups lost while serving (each followed by a replay on a new one).",
                   st->failovers);
    render_counter(&out, "facet_replays_total", "Sequences recomputed on a new group after theirs was lost.", st->replays);
    render_gauge(&out, "facet_group_size", "Tensor-parallel size of the serving group (below the configured after a shrink).",
                 st->group_size);
    strbuf_printf(&out, "# HELP facet_workers Registered workers by state.\n# TYPE facet_workers gauge\n");
    strbuf_printf(&out, "facet_workers{state=\"live\"} %d\nfacet_workers{state=\"in_group\"} %d\nfacet_workers{state=\"standby\"} %d\n"
                        "facet_workers{state=\"failed\"} %d\n",
                  st->workers_live, st->workers_in_group, st->workers_live - st->workers_in_group - st->workers_failed,
                  st->workers_failed);
    return out.data;
}
