/* test_gguf_fixture.h — what test_gguf.c and test_gguf_tokenizer.c share:
 * reading tests/fixtures/gguf (tiny.gguf and its tiny.json, written by
 * tests/reference/make_gguf_fixtures.py), hex strings, and a little GGUF
 * writer for files the fixture cannot be patched into. */
#ifndef FACET_TEST_GGUF_FIXTURE_H
#define FACET_TEST_GGUF_FIXTURE_H

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/mapped_file.h"
#include "common/strbuf.h"
#include "model/gguf.h"

/* A whole file in a buffer of exactly its size (ASan sees any read past it). */
typedef struct {
    uint8_t *data;
    size_t size;
} file_bytes;

static inline file_bytes fixture_read(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    errbuf err;
    size_t size = 0;
    char *text = file_read_all(path, &size, 64u << 20, &err);
    CHECK(text != NULL, "%s", err.msg);
    if (!text) exit(1);
    file_bytes f = {malloc(size ? size : 1), size};
    memcpy(f.data, text, size);
    free(text);
    return f;
}

static inline cJSON *fixture_json(const char *dir) {
    file_bytes f = fixture_read(dir, "tiny.json");
    cJSON *j = cJSON_ParseWithLength((const char *)f.data, f.size);
    free(f.data);
    CHECK(j != NULL, "tiny.json is not JSON");
    if (!j) exit(1);
    return j;
}

/* Hex digits into bytes; returns the length (out holds strlen(hex) / 2). */
static inline size_t hex_decode(const char *hex, uint8_t *out) {
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned b;
        sscanf(hex + 2 * i, "%2x", &b);
        out[i] = (uint8_t)b;
    }
    return n;
}

/* ---- a GGUF writer for synthetic files ------------------------------- */

static inline void put_u32(strbuf *o, uint32_t v) {
    uint8_t b[4];
    for (int i = 0; i < 4; i++) b[i] = (uint8_t)(v >> (8 * i));
    strbuf_append(o, b, 4);
}

static inline void put_u64(strbuf *o, uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    strbuf_append(o, b, 8);
}

static inline void put_str(strbuf *o, const char *s) {
    put_u64(o, strlen(s));
    strbuf_append(o, s, strlen(s));
}

static inline void put_header(strbuf *o, uint64_t n_tensors, uint64_t n_kv) {
    strbuf_append(o, "GGUF", 4);
    put_u32(o, 3);
    put_u64(o, n_tensors);
    put_u64(o, n_kv);
}

/* key, then the value's type; the caller writes the value */
static inline void put_key(strbuf *o, const char *key, gguf_value_type type) {
    put_str(o, key);
    put_u32(o, (uint32_t)type);
}

/* Zeros up to the next multiple of align. */
static inline void put_padding(strbuf *o, size_t align) {
    while (o->len % align) strbuf_append_char(o, 0);
}

/* A parse of an exactly sized copy of some bytes (kept alive with it). */
typedef struct {
    gguf_file *g; /* NULL when refused */
    uint8_t *copy;
} parsed;

static inline parsed parse_copy(const void *data, size_t size, errbuf *err) {
    parsed p = {NULL, malloc(size ? size : 1)};
    memcpy(p.copy, data, size);
    p.g = gguf_parse(p.copy, size, err);
    return p;
}

static inline void parsed_free(parsed *p) {
    gguf_close(p->g);
    free(p->copy);
}

/* True when the bytes parse (an exactly sized copy, closed again). */
static inline bool parses(const void *data, size_t size, errbuf *err) {
    parsed p = parse_copy(data, size, err);
    bool ok = p.g != NULL;
    parsed_free(&p);
    return ok;
}

#endif
