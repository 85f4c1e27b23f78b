#include "common/error.h"

#include <stdio.h>
#include <string.h>

bool errbuf_set(errbuf *err, const char *fmt, ...) {
    if (!err) return false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return false;
}

bool errbuf_prefix(errbuf *err, const char *fmt, ...) {
    if (!err) return false;
    char prefix[ERRBUF_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* prefix + ": " + old message, truncated to the buffer */
    char joined[2 * ERRBUF_LEN + 2];
    size_t np = strlen(prefix), no = strnlen(err->msg, ERRBUF_LEN - 1);
    memcpy(joined, prefix, np);
    memcpy(joined + np, ": ", 2);
    memcpy(joined + np + 2, err->msg, no);
    size_t n = np + 2 + no < ERRBUF_LEN - 1 ? np + 2 + no : ERRBUF_LEN - 1;
    memcpy(err->msg, joined, n);
    err->msg[n] = '\0';
    return false;
}
