#include "coordinator/step_timing.h"

static int bucket_of(int tokens) {
    int b = 0;
    for (unsigned v = tokens > 1 ? (unsigned)tokens : 1u; v > 1 && b < STEP_TIMING_BUCKETS - 1; v >>= 1) b++;
    return b;
}

/* the smallest token count of a bucket */
static double bucket_tokens(int b) { return (double)(1u << b); }

void step_timing_note(step_timing *t, int tokens, double seconds) {
    const double a = 0.2;
    int b = bucket_of(tokens);
    if (t->samples[b]++ == 0)
        t->ema_s[b] = seconds;
    else
        t->ema_s[b] += a * (seconds - t->ema_s[b]);
    t->total++;
    if (t->backoff > 1) t->backoff /= 2;
    const double keep = 0.98, n = tokens;
    step_line *l = &t->line;
    l->w = keep * l->w + 1, l->n = keep * l->n + n, l->nn = keep * l->nn + n * n;
    l->t = keep * l->t + seconds, l->nt = keep * l->nt + n * seconds;
}

bool step_timing_line(const step_timing *t, double *fixed_s, double *per_token_s) {
    const step_line *l = &t->line;
    double det = l->w * l->nn - l->n * l->n; /* w² × the variance of the sizes */
    if (t->total < 3 || det <= 1e-9 * l->w * l->w) return false;
    double slope = (l->w * l->nt - l->n * l->t) / det;
    if (!(slope > 0)) return false;
    double fixed = (l->t - slope * l->n) / l->w;
    *fixed_s = fixed > 0 ? fixed : 0;
    *per_token_s = slope;
    return true;
}

void step_timing_missed(step_timing *t) {
    if (t->backoff < 1) t->backoff = 1;
    if (t->backoff < 64) t->backoff *= 2;
}

double step_timing_estimate(const step_timing *t, int tokens) {
    if (t->total < 3) return -1;
    int b = bucket_of(tokens);
    if (t->samples[b]) return t->ema_s[b];
    for (int lo = b - 1; lo >= 0; lo--)
        if (t->samples[lo]) return t->ema_s[lo] * ((double)tokens / bucket_tokens(lo));
    for (int hi = b + 1; hi < STEP_TIMING_BUCKETS; hi++)
        if (t->samples[hi]) return t->ema_s[hi];
    return -1;
}

int step_timing_deadline_ms(const step_timing *t, int tokens, int floor_ms, int cap_ms) {
    double est = step_timing_estimate(t, tokens);
    if (est < 0) return cap_ms;
    double ms = (4.0 * est * 1e3 + floor_ms) * (t->backoff > 1 ? t->backoff : 1);
    return ms > cap_ms ? cap_ms : (int)ms;
}
