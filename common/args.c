#include "common/args.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const arg_spec *find_spec(const arg_spec *specs, int n, const char *name, size_t len) {
    for (int i = 0; i < n; i++)
        if (strlen(specs[i].name) == len && strncmp(specs[i].name, name, len) == 0) return &specs[i];
    return NULL;
}

static bool in_range(const arg_spec *s, double v) { return (s->min == 0 && s->max == 0) || (v >= s->min && v <= s->max); }

static bool store_value(const arg_spec *s, const char *v, errbuf *err) {
    char *end = NULL;
    errno = 0;
    switch (s->kind) {
    case ARG_STRING: *(const char **)s->out = v; return true;
    case ARG_INT: {
        long x = strtol(v, &end, 10);
        if (errno || end == v || *end || x < -2147483647L || x > 2147483647L || !in_range(s, (double)x))
            break;
        *(int *)s->out = (int)x;
        return true;
    }
    case ARG_U64: {
        if (*v == '-') break;
        unsigned long long x = strtoull(v, &end, 10);
        if (errno || end == v || *end) break;
        *(uint64_t *)s->out = x;
        return true;
    }
    case ARG_FLOAT: {
        float x = strtof(v, &end);
        if (errno || end == v || *end || !isfinite(x) || !in_range(s, x)) break;
        *(float *)s->out = x;
        return true;
    }
    case ARG_FLAG: break;
    }
    if ((s->min != 0 || s->max != 0) && s->kind == ARG_INT)
        return errbuf_set(err, "--%s: \"%s\" is not an integer in [%.0f, %.0f]", s->name, v, s->min, s->max);
    if (s->min != 0 || s->max != 0)
        return errbuf_set(err, "--%s: \"%s\" is not a number in [%g, %g]", s->name, v, s->min, s->max);
    return errbuf_set(err, "--%s: \"%s\" is not a valid %s", s->name, v, s->kind == ARG_FLOAT ? "number" : "integer");
}

bool args_parse(int argc, char **argv, const arg_spec *specs, int n_specs, bool *help, errbuf *err) {
    *help = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            *help = true;
            return true;
        }
        if (strncmp(a, "--", 2) != 0) return errbuf_set(err, "unexpected argument \"%s\"", a);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const arg_spec *s = find_spec(specs, n_specs, name, len);
        if (!s) return errbuf_set(err, "unknown option --%.*s (see --help)", (int)len, name);
        if (s->seen) *s->seen = true;
        if (s->kind == ARG_FLAG) {
            if (eq) return errbuf_set(err, "--%s takes no value", s->name);
            *(bool *)s->out = true;
            continue;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (!v) {
            if (i + 1 >= argc) return errbuf_set(err, "--%s needs a value", s->name);
            v = argv[++i];
        }
        if (!store_value(s, v, err)) return false;
    }
    return true;
}

void args_usage(FILE *f, const char *usage, const char *summary, const arg_spec *specs, int n_specs) {
    fprintf(f, "usage: %s\n\n%s\n\noptions:\n", usage, summary);
    for (int i = 0; i < n_specs; i++) {
        const char *meta = specs[i].kind == ARG_FLAG ? "" : specs[i].kind == ARG_STRING ? " S" : " N";
        fprintf(f, "  --%s%s\n      %s\n", specs[i].name, meta, specs[i].help);
    }
}

int args_handle(const arg_command *cmd, const arg_spec *specs, int n_specs, int argc, char **argv) {
    bool help = false;
    errbuf err;
    if (!args_parse(argc, argv, specs, n_specs, &help, &err)) {
        fprintf(stderr, "facet %s: %s\n", cmd->name, err.msg);
        return 2;
    }
    if (help) {
        args_usage(stdout, cmd->usage, cmd->summary, specs, n_specs);
        return 0;
    }
    return ARGS_CONTINUE;
}
