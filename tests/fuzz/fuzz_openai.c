/* libFuzzer target: any bytes as an OpenAI request body. The first byte
 * picks completions or chat; parsing must never crash, and a request that
 * parses must be internally consistent. Seeds: tests/fuzz/seeds/openai. */
#include <stdint.h>
#include <stdlib.h>

#include "coordinator/openai.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    openai_kind kind = (data[0] & 1) ? OPENAI_CHAT : OPENAI_COMPLETIONS;
    openai_request r;
    api_error err;
    if (openai_parse(kind, (const char *)data + 1, size - 1, &r, &err)) {
        if (!r.model || r.n < 1 || r.n > OPENAI_MAX_CHOICES || r.n_stop > SESSION_MAX_STOP) abort();
        if (kind == OPENAI_CHAT && r.n_messages < 1) abort();
        if (kind == OPENAI_COMPLETIONS && !r.prompt && r.n_prompt_ids < 1) abort();
        openai_request_free(&r);
    } else if (err.status < 400 || err.status > 499 || !err.message[0]) {
        abort(); /* a refusal is always a 4xx with a message */
    }
    return 0;
}
