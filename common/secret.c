#include "common/secret.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "common/log.h"

bool secret_equal(const char *given, const char *expected) {
    size_t n = strlen(expected), m = strlen(given);
    unsigned diff = (unsigned)(n != m);
    for (size_t i = 0; i < n; i++) {
        unsigned char g = i < m ? (unsigned char)given[i] : 0;
        diff |= (unsigned)(g ^ (unsigned char)expected[i]);
    }
    return diff == 0;
}

static bool printable(const char *s) {
    for (; *s; s++)
        if (*s < 0x21 || *s > 0x7e) return false;
    return true;
}

bool secret_read_file(const char *path, char *out, size_t len, errbuf *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return errbuf_set(err, "cannot read %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 0077))
        log_warn("%s can be read by other users (mode %03o): chmod 600 it", path, (unsigned)(st.st_mode & 0777));
    size_t n = fread(out, 1, len - 1, f);
    bool too_long = n == len - 1 && fgetc(f) != EOF;
    fclose(f);
    if (too_long) return errbuf_set(err, "%s: longer than %zu bytes: not a secret", path, len - 1);
    out[n] = '\0';
    while (n > 0 && isspace((unsigned char)out[n - 1])) out[--n] = '\0';
    size_t lead = 0;
    while (out[lead] && isspace((unsigned char)out[lead])) lead++;
    memmove(out, out + lead, n - lead + 1);
    if (!out[0]) return errbuf_set(err, "%s is empty", path);
    if (!printable(out)) {
        out[0] = '\0';
        return errbuf_set(err, "%s: a secret must be printable ASCII without spaces", path);
    }
    return true;
}

bool secret_load(const char *file, const char *env, char *out, size_t len, bool *found, errbuf *err) {
    *found = false;
    out[0] = '\0';
    if (file) {
        if (!secret_read_file(file, out, len, err)) return false;
        *found = true;
        return true;
    }
    const char *v = env ? getenv(env) : NULL;
    if (!v || !*v) return true;
    if (strlen(v) >= len) return errbuf_set(err, "$%s is longer than %zu bytes", env, len - 1);
    if (!printable(v)) return errbuf_set(err, "$%s: a secret must be printable ASCII without spaces", env);
    snprintf(out, len, "%s", v);
    *found = true;
    return true;
}

bool secret_random(char *out, size_t len, errbuf *err) {
    unsigned char bytes[32];
    if (len < 2 * sizeof bytes + 1) return errbuf_set(err, "secret buffer too small");
    size_t got = 0;
    while (got < sizeof bytes) {
        ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errbuf_set(err, "getrandom: %s", strerror(errno));
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof bytes; i++) snprintf(out + 2 * i, 3, "%02x", bytes[i]);
    return true;
}
