#include "common/utf8.h"

static inline bool is_trail(uint8_t b) { return (b & 0xC0) == 0x80; }

static inline bool valid_codepoint(uint32_t c) { return c < 0xD800 || (c >= 0xE000 && c <= 0x10FFFF); }

int utf8_valid_char_len(const uint8_t *s, size_t len) {
    uint8_t b0 = s[0];
    if (b0 < 0x80) return 1;
    if (len >= 2 && (b0 & 0xE0) == 0xC0) {
        uint32_t cp = ((uint32_t)(b0 & 0x1F) << 6) | (s[1] & 0x3F);
        if (is_trail(s[1]) && cp >= 0x80) return 2;
    } else if (len >= 3 && (b0 & 0xF0) == 0xE0) {
        uint32_t cp = ((uint32_t)(b0 & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        if (is_trail(s[1]) && is_trail(s[2]) && cp >= 0x800 && valid_codepoint(cp)) return 3;
    } else if (len >= 4 && (b0 & 0xF8) == 0xF0) {
        uint32_t cp = ((uint32_t)(b0 & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
                      ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        if (is_trail(s[1]) && is_trail(s[2]) && is_trail(s[3]) && cp >= 0x10000 && valid_codepoint(cp))
            return 4;
    }
    return 0;
}

bool utf8_is_incomplete_prefix(const uint8_t *s, size_t len) {
    if (len == 0) return false;
    int need = utf8_lead_len(s[0]);
    if (need == 1 || (int)len >= need) return false;
    for (size_t i = 1; i < len; i++)
        if (!is_trail(s[i])) return false;
    /* Validity (overlong, surrogate, > U+10FFFF) depends only on the lead
     * byte and the first continuation byte; later ones are free. So complete
     * with 0x80 bytes, trying every first continuation byte if it is missing. */
    uint8_t buf[4];
    for (int i = 0; i < need; i++) buf[i] = i < (int)len ? s[i] : 0x80;
    if (len >= 2) return utf8_valid_char_len(buf, (size_t)need) == need;
    for (int b1 = 0x80; b1 <= 0xBF; b1++) {
        buf[1] = (uint8_t)b1;
        if (utf8_valid_char_len(buf, (size_t)need) == need) return true;
    }
    return false;
}
