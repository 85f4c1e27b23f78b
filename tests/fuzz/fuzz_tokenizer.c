/* libFuzzer target: any bytes as a tokenizer.model. Loading must never
 * crash; a model that loads must encode and decode text safely. */
#include <stdint.h>
#include <stdlib.h>

#include "tokenizer/tokenizer.h"
#include "tokenizer_roundtrip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    errbuf err;
    tokenizer *tok = tokenizer_parse(data, size, &err);
    if (tok) tokenizer_roundtrip_and_free(tok, data + size, size); /* the input's tail as text */
    return 0;
}
