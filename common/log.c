#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>

static int g_quiet;

void log_set_quiet(int quiet) { g_quiet = quiet; }

static void log_line(const char *level, const char *fmt, va_list ap) {
    fprintf(stderr, "facet: %s", level);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void log_info(const char *fmt, ...) {
    if (g_quiet) return;
    va_list ap;
    va_start(ap, fmt);
    log_line("", fmt, ap);
    va_end(ap);
}

void log_warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_line("warning: ", fmt, ap);
    va_end(ap);
}
