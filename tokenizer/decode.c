/* decode.c — ids back to text, whole or incrementally for streaming. */
#include <string.h>

#include "common/utf8.h"
#include "tokenizer/tokenizer_impl.h"

/* The text of a non-byte piece: "▁" -> ' ', control -> "", unknown -> surface. */
static void append_piece_text(const tokenizer *tok, int id, strbuf *out) {
    const piece_rec *p = &tok->pieces[id];
    if (p->type == PIECE_CONTROL) return;
    if (p->type == PIECE_UNKNOWN) {
        strbuf_append_str(out, tok->unk_surface);
        return;
    }
    for (uint32_t i = 0; i < p->len;) {
        if (p->len - i >= 3 && memcmp(p->text + i, "\xE2\x96\x81", 3) == 0) {
            strbuf_append_char(out, ' ');
            i += 3;
        } else {
            strbuf_append_char(out, p->text[i]);
            i++;
        }
    }
}

static int byte_value(const tokenizer *tok, int id) {
    const piece_rec *p = &tok->pieces[id];
    if (p->type != PIECE_BYTE) return -1;
    static const char hex[] = "0123456789ABCDEF";
    return (int)((strchr(hex, p->text[3]) - hex) * 16 + (strchr(hex, p->text[4]) - hex));
}

/* Emits every character of pending bytes that is final. With `at_end`, the
 * run of bytes is over and an unfinished character becomes U+FFFD. */
static void release_pending(detokenizer *d, bool at_end, strbuf *out) {
    int i = 0;
    while (i < d->n_pending) {
        const uint8_t *s = d->pending + i;
        size_t n = (size_t)(d->n_pending - i);
        if (!at_end && utf8_is_incomplete_prefix(s, n)) break; /* wait for more bytes */
        int c = utf8_valid_char_len(s, n);
        if (c > 0) {
            strbuf_append(out, s, (size_t)c);
            i += c;
        } else {
            strbuf_append_str(out, UTF8_REPLACEMENT);
            i += 1;
        }
    }
    memmove(d->pending, d->pending + i, (size_t)(d->n_pending - i));
    d->n_pending -= i;
}

void detokenizer_init(detokenizer *d, const tokenizer *tok) {
    memset(d, 0, sizeof *d);
    d->tok = tok;
}

bool detokenizer_push(detokenizer *d, int32_t id, strbuf *out) {
    if (id < 0 || id >= d->tok->n) return false;
    int b = byte_value(d->tok, id);
    if (b >= 0) {
        d->pending[d->n_pending++] = (uint8_t)b;
        release_pending(d, false, out);
        return true;
    }
    release_pending(d, true, out);
    append_piece_text(d->tok, id, out);
    return true;
}

void detokenizer_flush(detokenizer *d, strbuf *out) { release_pending(d, true, out); }

bool tokenizer_decode(const tokenizer *tok, const int32_t *ids, int n, strbuf *out, errbuf *err) {
    detokenizer d;
    detokenizer_init(&d, tok);
    for (int i = 0; i < n; i++)
        if (!detokenizer_push(&d, ids[i], out))
            return errbuf_set(err, "token id %d is out of range [0, %d)", ids[i], tok->n);
    detokenizer_flush(&d, out);
    return true;
}
