/* libFuzzer target: any bytes as a tokenizer.model. Loading must never
 * crash; a model that loads must encode and decode text safely. */
#include <stdint.h>
#include <stdlib.h>

#include "tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    errbuf err;
    tokenizer *tok = tokenizer_parse(data, size, &err);
    if (!tok) return 0;
    /* the tail of the input doubles as text to encode */
    size_t n = size < 64 ? size : 64;
    token_list ids;
    token_list_init(&ids);
    if (tokenizer_encode(tok, (const char *)data + size - n, n, 0, &ids, &err)) {
        strbuf out;
        strbuf_init(&out);
        if (!tokenizer_decode(tok, ids.ids, ids.n, &out, &err)) abort(); /* ids from encode are in range */
        strbuf_free(&out);
    }
    token_list_free(&ids);
    tokenizer_free(tok);
    return 0;
}
