/* log.h — one-line diagnostics on stderr. */
#ifndef FACET_COMMON_LOG_H
#define FACET_COMMON_LOG_H

void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Quiet mode silences log_info (tests, --json). */
void log_set_quiet(int quiet);

#endif
