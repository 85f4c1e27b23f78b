/* secret.h — secrets (cluster tokens, API keys): read from a file or an
 * environment variable, never from argv (which `ps` shows to every user);
 * compared in constant time; made from the kernel's random source. */
#ifndef FACET_COMMON_SECRET_H
#define FACET_COMMON_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"

#define SECRET_MAX 512 /* bytes, the terminating NUL included */

/* given == expected, taking a time that depends only on expected's length. */
bool secret_equal(const char *given, const char *expected);

/* The secret in a file (surrounding whitespace trimmed) into out. Refuses an
 * empty file, one longer than SECRET_MAX - 1 bytes, and one with bytes that
 * are not printable ASCII (the message never shows the file's bytes). */
bool secret_read_file(const char *path, char *out, size_t len, errbuf *err);

/* From --NAME-file FILE if given, else the environment variable env (if set
 * and not empty). *found tells whether either gave one. */
bool secret_load(const char *file, const char *env, char *out, size_t len, bool *found, errbuf *err);

/* A fresh random secret: 32 random bytes as 64 hex digits. */
bool secret_random(char *out, size_t len, errbuf *err);

#endif
