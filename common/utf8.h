/* utf8.h — UTF-8 decoding with SentencePiece's notion of validity.
 *
 * A sequence is valid when its lead byte announces n bytes, the next n-1 are
 * continuation bytes (10xxxxxx), it is not overlong, not a surrogate
 * (U+D800..DFFF) and not above U+10FFFF. */
#ifndef FACET_COMMON_UTF8_H
#define FACET_COMMON_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UTF8_REPLACEMENT "\xEF\xBF\xBD" /* U+FFFD */

/* Decodes the character at s[0..len). Returns its length (1..4) when valid;
 * returns 0 when invalid (the caller then consumes one byte). len >= 1. */
int utf8_valid_char_len(const uint8_t *s, size_t len);

/* Length announced by a lead byte alone (1 for ASCII, continuation and
 * invalid lead bytes; 2, 3 or 4 otherwise). */
static inline int utf8_lead_len(uint8_t b) {
    static const uint8_t k[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return k[b >> 4];
}

/* Could s[0..len) still become a valid character if more bytes followed?
 * (len smaller than the announced length and every byte so far fits.) */
bool utf8_is_incomplete_prefix(const uint8_t *s, size_t len);

#endif
