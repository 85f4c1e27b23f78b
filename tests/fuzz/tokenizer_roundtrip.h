/* tokenizer_roundtrip.h — what the tokenizer fuzz targets do with a
 * vocabulary that loaded (fuzz_tokenizer.c from a tokenizer.model,
 * fuzz_gguf.c from tokenizer.ggml.*): encode up to 64 bytes of the input as
 * text, decode the ids again (ids from encode are in range: decoding them
 * must not fail), and free the tokenizer. */
#ifndef FACET_TESTS_FUZZ_TOKENIZER_ROUNDTRIP_H
#define FACET_TESTS_FUZZ_TOKENIZER_ROUNDTRIP_H

#include <stdint.h>
#include <stdlib.h>

#include "tokenizer/tokenizer.h"

static void tokenizer_roundtrip_and_free(tokenizer *tok, const uint8_t *text_end, size_t available) {
    errbuf err;
    size_t n = available < 64 ? available : 64;
    token_list ids;
    token_list_init(&ids);
    if (tokenizer_encode(tok, (const char *)text_end - n, n, 0, &ids, &err)) {
        strbuf out;
        strbuf_init(&out);
        if (!tokenizer_decode(tok, ids.ids, ids.n, &out, &err)) abort();
        strbuf_free(&out);
    }
    token_list_free(&ids);
    tokenizer_free(tok);
}

#endif
