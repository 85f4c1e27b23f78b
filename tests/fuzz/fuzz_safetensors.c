/* libFuzzer target: any bytes as a safetensors file. Parsing must never
 * crash or read out of bounds; on success every tensor lies in the buffer. */
#include <stdint.h>
#include <stdlib.h>

#include "model/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    safetensors st;
    errbuf err;
    if (safetensors_parse(&st, data, size, &err)) {
        for (int i = 0; i < st.n_tensors; i++) {
            const st_tensor *t = &st.tensors[i];
            if (t->data < data || t->data + t->nbytes > data + size) abort();
            volatile uint8_t sink = t->nbytes ? t->data[t->nbytes - 1] : 0; /* touch the last byte */
            (void)sink;
        }
        safetensors_close(&st);
    }
    return 0;
}
