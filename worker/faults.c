#include "worker/faults.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/rng.h"

static const struct {
    const char *name;
    fault_kind kind;
    int default_ms; /* -1: takes no duration; 0: needs one */
} k_kinds[] = {
    {"kill", FAULT_KILL, -1}, {"freeze", FAULT_FREEZE, 3000}, {"hang", FAULT_HANG, 30000},
    {"slow", FAULT_SLOW, 0},  {"drop", FAULT_DROP, -1},       {"delay", FAULT_DELAY, 0},
};

bool fault_parse(const char *spec, fault *out, errbuf *err) {
    char kind[32] = "", trig[64] = "";
    const char *at = strchr(spec, '@');
    size_t klen = at ? (size_t)(at - spec) : strlen(spec);
    if (klen == 0 || klen >= sizeof kind || (at && strlen(at + 1) >= sizeof trig))
        return errbuf_set(err, "fault \"%.64s\": expected KIND[:MS][@TRIGGER]", spec);
    memcpy(kind, spec, klen);
    if (at) snprintf(trig, sizeof trig, "%s", at + 1);
    char *colon = strchr(kind, ':');
    long ms = -1;
    if (colon) {
        char *end;
        ms = strtol(colon + 1, &end, 10);
        if (*end || ms < 0 || ms > 3600000) return errbuf_set(err, "fault \"%.64s\": the duration must be 0..3600000 ms", spec);
        *colon = '\0';
    }
    int k = -1;
    for (int i = 0; i < (int)(sizeof k_kinds / sizeof k_kinds[0]); i++)
        if (strcmp(kind, k_kinds[i].name) == 0) k = i;
    if (k < 0) return errbuf_set(err, "fault \"%.64s\": unknown kind (kill, freeze, hang, slow, drop, delay)", spec);
    if (k_kinds[k].default_ms < 0 && ms >= 0) return errbuf_set(err, "fault \"%.64s\": %s takes no duration", spec, kind);
    if (k_kinds[k].default_ms == 0 && ms < 0) return errbuf_set(err, "fault \"%.64s\": %s needs a duration (%s:MS)", spec, kind, kind);
    *out = (fault){.kind = k_kinds[k].kind, .ms = ms >= 0 ? (int)ms : k_kinds[k].default_ms, .trigger = FAULT_AT_STEP,
                   .value = 1};
    if (!trig[0]) return true;
    char *eq = strchr(trig, '=');
    char *end = NULL;
    double v = eq ? strtod(eq + 1, &end) : 0;
    if (!eq || !end || *end || end == eq + 1) return errbuf_set(err, "fault \"%.64s\": the trigger is step=N, after=S or p=P", spec);
    *eq = '\0';
    if (strcmp(trig, "step") == 0 && v >= 1 && v == (double)(long)v) out->trigger = FAULT_AT_STEP, out->value = v;
    else if (strcmp(trig, "after") == 0 && v >= 0) out->trigger = FAULT_AFTER, out->value = clock_now_s() + v;
    else if (strcmp(trig, "p") == 0 && v > 0 && v <= 1) out->trigger = FAULT_WITH_P, out->value = v;
    else return errbuf_set(err, "fault \"%.64s\": the trigger is step=N (N >= 1), after=S (S >= 0) or p=P (0 < P <= 1)", spec);
    return true;
}

void fault_describe(const fault *f, char *out, size_t len) {
    const char *name = "?";
    for (size_t i = 0; i < sizeof k_kinds / sizeof k_kinds[0]; i++)
        if (k_kinds[i].kind == f->kind) name = k_kinds[i].name;
    char ms[24] = "";
    if (f->kind != FAULT_KILL && f->kind != FAULT_DROP) snprintf(ms, sizeof ms, ":%d", f->ms);
    if (f->trigger == FAULT_AT_STEP) snprintf(out, len, "%s%s@step=%.0f", name, ms, f->value);
    else if (f->trigger == FAULT_AFTER) snprintf(out, len, "%s%s@after=%.2f", name, ms, f->value - clock_now_s());
    else snprintf(out, len, "%s%s@p=%g", name, ms, f->value);
}

void faults_init(fault_set *s) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
}

void faults_destroy(fault_set *s) { pthread_mutex_destroy(&s->mu); }

bool faults_add(fault_set *s, const fault *f, errbuf *err) {
    pthread_mutex_lock(&s->mu);
    bool ok = s->n < FAULTS_MAX;
    if (ok) s->armed[s->n++] = *f;
    pthread_mutex_unlock(&s->mu);
    return ok ? true : errbuf_set(err, "at most %d faults armed at once", FAULTS_MAX);
}

int faults_armed(fault_set *s) {
    pthread_mutex_lock(&s->mu);
    int n = s->n;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void remove_at(fault_set *s, int i) { s->armed[i] = s->armed[--s->n]; }

bool faults_on_step(fault_set *s, fault *out) {
    bool due = false;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->n && !due; i++) {
        fault *f = &s->armed[i];
        if (f->trigger == FAULT_AT_STEP && --f->value <= 0) {
            *out = *f;
            remove_at(s, i);
            due = true;
        } else if (f->trigger == FAULT_WITH_P) {
            double u = (double)(splitmix64_next(&s->rng) >> 11) * (1.0 / 9007199254740992.0);
            if (u < f->value) *out = *f, due = true;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return due;
}

void faults_on_tick(fault_set *s) {
    fault act;
    bool now = false;
    double t = clock_now_s();
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->n; i++) {
        fault *f = &s->armed[i];
        if (f->trigger != FAULT_AFTER || t < f->value) continue;
        if (f->kind == FAULT_KILL || f->kind == FAULT_FREEZE) {
            act = *f;
            remove_at(s, i);
            now = true;
            break;
        }
        f->trigger = FAULT_AT_STEP, f->value = 1; /* a step fault: the next step */
    }
    pthread_mutex_unlock(&s->mu);
    if (!now) return;
    if (act.kind == FAULT_KILL) fault_kill_now();
    else fault_freeze_now(act.ms);
}

void fault_kill_now(void) {
    log_warn("fault injected: kill");
    kill(getpid(), SIGKILL);
    _exit(137); /* not reached */
}

/* SIGSTOP stops every thread; a process outside the stop wakes us: a
 * grandchild, so that nobody has a child to reap (only async-signal-safe
 * calls after fork: this process has threads). */
void fault_freeze_now(int ms) {
    log_warn("fault injected: freeze for %d ms", ms);
    pid_t me = getpid();
    pid_t child = fork();
    if (child == 0) {
        if (fork() == 0) {
            struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
            kill(me, SIGCONT);
        }
        _exit(0);
    }
    if (child < 0) return;
    waitpid(child, NULL, 0);
    raise(SIGSTOP);
}
