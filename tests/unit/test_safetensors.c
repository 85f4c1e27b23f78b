/* Safetensors parsing: valid files, and every way a header can lie. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "model/safetensors.h"

/* A file image: u64 header length, header, then `data_len` bytes of data. */
static uint8_t *image(const char *header, size_t data_len, size_t *size) {
    size_t h = strlen(header);
    *size = 8 + h + data_len;
    uint8_t *buf = calloc(1, *size);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)h >> (8 * i));
    memcpy(buf + 8, header, h);
    for (size_t i = 0; i < data_len; i++) buf[8 + h + i] = (uint8_t)i;
    return buf;
}

static bool parse(const char *header, size_t data_len, errbuf *err) {
    size_t size;
    uint8_t *buf = image(header, data_len, &size);
    safetensors st;
    bool ok = safetensors_parse(&st, buf, size, err);
    if (ok) safetensors_close(&st);
    free(buf);
    return ok;
}

static void test_valid(void) {
    size_t size;
    uint8_t *buf = image("{\"__metadata__\":{\"format\":\"pt\"},"
                         "\"b\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[8,32]},"
                         "\"a\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,8]},"
                         "\"empty\":{\"dtype\":\"F16\",\"shape\":[0,5],\"data_offsets\":[32,32]}}",
                         32, &size);
    safetensors st;
    errbuf err;
    bool ok = safetensors_parse(&st, buf, size, &err);
    CHECK(ok, "valid file refused: %s", err.msg);
    if (ok) {
        CHECK(st.n_tensors == 3, "%d tensors", st.n_tensors);
        const st_tensor *a = safetensors_find(&st, "a"), *b = safetensors_find(&st, "b");
        CHECK(a && a->dtype == DTYPE_BF16 && a->ndim == 1 && a->shape[0] == 4 && a->nbytes == 8, "tensor a");
        CHECK(b && b->dtype == DTYPE_F32 && b->shape[0] == 2 && b->shape[1] == 3 && b->numel == 6, "tensor b");
        CHECK(b && b->data == buf + size - 32 + 8, "tensor b data pointer");
        CHECK(safetensors_find(&st, "missing") == NULL, "absent tensor found");
        safetensors_close(&st);
    }
    free(buf);
}

static void test_bad_headers(void) {
    errbuf err;
    const char *t = "\"t\":{\"dtype\":\"F32\",\"shape\":[2],";
    char h[512];

    CHECK_ERR(safetensors_parse(&(safetensors){0}, (const uint8_t *)"abc", 3, &err), err, "too short");

    /* header length larger than the file */
    size_t size;
    uint8_t *buf = image("{}", 0, &size);
    buf[0] = 200;
    CHECK_ERR(safetensors_parse(&(safetensors){0}, buf, size, &err), err, "past the end of the file");
    CHECK(!strstr(err.msg, "200"), "the message shows the length the file's bytes spell: %s", err.msg);
    buf[7] = 0x10; /* ~1e18 */
    CHECK_ERR(safetensors_parse(&(safetensors){0}, buf, size, &err), err, "100 MB");
    CHECK(!strstr(err.msg, "1152921504606847176"), "the message shows the length the file's bytes spell: %s", err.msg);
    free(buf);

    CHECK_ERR(parse("{not json", 0, &err), err, "not valid JSON");
    CHECK_ERR(parse("[1,2]", 0, &err), err, "not a JSON object");
    snprintf(h, sizeof h, "{%s\"data_offsets\":[0,16]}}", t);
    CHECK_ERR(parse(h, 8, &err), err, "past the data region"); /* truncated data */
    snprintf(h, sizeof h, "{%s\"data_offsets\":[0,12]}}", t);
    CHECK_ERR(parse(h, 16, &err), err, "need 8"); /* size disagrees with shape */
    snprintf(h, sizeof h, "{%s\"data_offsets\":[8,0]}}", t);
    CHECK_ERR(parse(h, 16, &err), err, "reversed");
    snprintf(h, sizeof h, "{%s\"data_offsets\":[-8,0]}}", t);
    CHECK_ERR(parse(h, 16, &err), err, "non-negative");
    snprintf(h, sizeof h, "{%s\"data_offsets\":[0.5,8.5]}}", t);
    CHECK_ERR(parse(h, 16, &err), err, "non-negative integers");
    snprintf(h, sizeof h, "{%s\"data_offsets\":[0,1e300]}}", t);
    CHECK_ERR(parse(h, 16, &err), err, "data_offsets");
    snprintf(h, sizeof h, "{%s\"data_offsets\":[0,8]}, \"u\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", t);
    CHECK_ERR(parse(h, 16, &err), err, "overlap");
    snprintf(h, sizeof h, "{%s\"data_offsets\":[0,8]}, \"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", t);
    CHECK_ERR(parse(h, 16, &err), err, "appears twice");
    CHECK_ERR(parse("{\"t\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, &err), err, "unsupported dtype");
    CHECK_ERR(parse("{\"t\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, &err), err, "dtype");
    CHECK_ERR(parse("{\"t\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, &err), err, "shape[0]");
    CHECK_ERR(parse("{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, &err), err,
              "dimensions");
    CHECK_ERR(parse("{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,4]}}", 4,
                    &err),
              err, "overflow");
    CHECK_ERR(parse("{\"t\":{\"dtype\":\"F32\",\"shape\":\"x\",\"data_offsets\":[0,4]}}", 4, &err), err, "not an array");
    CHECK_ERR(parse("{\"t\":[1,2]}", 4, &err), err, "not an object");
    CHECK_ERR(parse("{\"__metadata__\":[1]}", 0, &err), err, "__metadata__");
    CHECK_ERR(parse("{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, &err), err, "empty");
    /* the error names the tensor */
    CHECK_ERR(parse("{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8, &err), err,
              "model.norm.weight");
}

static void test_writer_roundtrip(void) {
    st_writer w;
    st_writer_init(&w);
    int64_t s1[2] = {3, 2}, s2[1] = {5};
    st_writer_add(&w, "x.weight", DTYPE_F32, 2, s1);
    st_writer_add(&w, "y", DTYPE_BF16, 1, s2);
    char path[] = "/tmp/facet-test-st-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "wb");
    errbuf err;
    CHECK(st_writer_write_header(&w, f, &err), "header: %s", err.msg);
    float xs[6] = {1, 2, 3, 4, 5, 6};
    uint16_t ys[5] = {1, 2, 3, 4, 5};
    fwrite(xs, 4, 6, f);
    fwrite(ys, 2, 5, f);
    fclose(f);
    st_writer_free(&w);
    safetensors st;
    bool ok = safetensors_open(&st, path, &err);
    CHECK(ok, "written file unreadable: %s", err.msg);
    if (ok) {
        const st_tensor *x = safetensors_find(&st, "x.weight");
        CHECK(x && x->numel == 6 && memcmp(x->data, xs, sizeof xs) == 0, "x round trip");
        const st_tensor *y = safetensors_find(&st, "y");
        CHECK(y && y->numel == 5 && memcmp(y->data, ys, sizeof ys) == 0, "y round trip");
        CHECK(((uintptr_t)x->data & 7) == 0, "data region is 8-byte aligned");
        safetensors_close(&st);
    }
    remove(path);
    CHECK_ERR(safetensors_open(&st, "/nonexistent/file.safetensors", &err), err, "/nonexistent/file.safetensors");
}

int main(void) {
    test_valid();
    test_bad_headers();
    test_writer_roundtrip();
    return CHECK_RESULT();
}
