/* strbuf.h — a growable byte string (may hold NULs; always NUL-terminated). */
#ifndef FACET_COMMON_STRBUF_H
#define FACET_COMMON_STRBUF_H

#include <stddef.h>

typedef struct strbuf {
    char *data;
    size_t len, cap;
} strbuf;

void strbuf_init(strbuf *sb);
void strbuf_free(strbuf *sb);
void strbuf_clear(strbuf *sb);
void strbuf_reserve(strbuf *sb, size_t extra);
void strbuf_append(strbuf *sb, const void *data, size_t len);
void strbuf_append_str(strbuf *sb, const char *s);
void strbuf_append_char(strbuf *sb, char c);
void strbuf_printf(strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
