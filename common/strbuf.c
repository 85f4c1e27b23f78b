#include "common/strbuf.h"
#include "common/alloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void strbuf_init(strbuf *sb) {
    sb->data = NULL;
    sb->len = sb->cap = 0;
}

void strbuf_free(strbuf *sb) {
    free(sb->data);
    strbuf_init(sb);
}

void strbuf_clear(strbuf *sb) {
    sb->len = 0;
    if (sb->data) sb->data[0] = '\0';
}

void strbuf_reserve(strbuf *sb, size_t extra) {
    if (sb->len + extra + 1 <= sb->cap) return;
    size_t cap = sb->cap ? sb->cap : 64;
    while (cap < sb->len + extra + 1) cap *= 2;
    sb->data = xrealloc(sb->data, cap);
    sb->cap = cap;
}

void strbuf_append(strbuf *sb, const void *data, size_t len) {
    strbuf_reserve(sb, len);
    if (len) memcpy(sb->data + sb->len, data, len);
    sb->len += len;
    sb->data[sb->len] = '\0';
}

void strbuf_append_str(strbuf *sb, const char *s) { strbuf_append(sb, s, strlen(s)); }

void strbuf_append_char(strbuf *sb, char c) { strbuf_append(sb, &c, 1); }

void strbuf_printf(strbuf *sb, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    strbuf_reserve(sb, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
}
