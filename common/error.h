/* error.h — caller-owned error buffers (redis style).
 *
 * A function that can fail returns bool (true = ok) and, on failure, writes
 * one human-readable line into the caller's `errbuf`. Nothing below the CLI
 * calls exit(): a server must survive bad input. */
#ifndef FACET_COMMON_ERROR_H
#define FACET_COMMON_ERROR_H

#include <stdarg.h>
#include <stdbool.h>

#define ERRBUF_LEN 512

typedef struct errbuf {
    char msg[ERRBUF_LEN];
} errbuf;

/* Writes the message (printf format). Accepts err == NULL. Returns false so
 * that `return errbuf_set(err, ...);` reads naturally. */
bool errbuf_set(errbuf *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends "context: " to the message already in err (to name the file or
 * tensor a lower layer did not know about). Returns false. */
bool errbuf_prefix(errbuf *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
