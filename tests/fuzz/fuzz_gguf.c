/* libFuzzer target: any bytes as a GGUF file. Parsing must never crash or
 * read out of bounds; on success every value and tensor lies in the buffer,
 * and a vocabulary that builds must encode and decode text safely. */
#include <stdint.h>
#include <stdlib.h>

#include "model/gguf.h"
#include "model/gguf_tokenizer.h"
#include "tokenizer_roundtrip.h"

static const uint8_t *g_begin, *g_end;

static void check_inside(const void *p, uint64_t n) {
    const uint8_t *b = p;
    if (n == 0) return;
    if (b < g_begin || b > g_end || n > (uint64_t)(g_end - b)) abort();
    volatile uint8_t sink = b[n - 1]; /* touch the last byte */
    (void)sink;
}

static void walk_value(gguf_value v) {
    if (v.type == GGUF_STRING) check_inside(v.str.data, v.str.len);
    if (v.type != GGUF_ARRAY) return;
    for (uint64_t i = 0; i < v.arr.n; i++) walk_value(gguf_array_at(&v.arr, i));
}

static void try_tokenizer(const gguf_file *g) {
    errbuf err;
    tokenizer *tok = tokenizer_from_gguf(g, &err);
    if (tok) tokenizer_roundtrip_and_free(tok, g_end, (size_t)(g_end - g_begin)); /* the input's end as text */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    errbuf err;
    gguf_file *g = gguf_parse(data, size, &err);
    if (!g) return 0;
    g_begin = data, g_end = data + size;
    for (int i = 0; i < gguf_kv_count(g); i++) walk_value(gguf_kv_at(g, i)->value);
    for (int i = 0; i < gguf_tensor_count(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        check_inside(t->data, t->nbytes);
        if (gguf_find_tensor(g, t->name) == NULL) abort();
    }
    try_tokenizer(g);
    gguf_close(g);
    return 0;
}
