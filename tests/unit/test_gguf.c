/* GGUF reading: the fixture written by gguf-py reads back exactly (every
 * key's type and value, every tensor's type, shape, place and bytes, as
 * tiny.json says), and every way a file can lie -- made here by patching
 * the fixture's bytes or writing small files -- is refused with a message
 * naming the problem, never a crash.
 *
 * usage: test_gguf tests/fixtures/gguf */
#include "test_gguf_fixture.h"

#include <inttypes.h>

/* ---- the valid file, against tiny.json ---------------------------------- */

static bool same_scalar(gguf_value v, const char *type, const cJSON *j) {
    if (strcmp(type, gguf_value_type_name(v.type)) != 0) return false;
    switch (v.type) {
    case GGUF_U8: case GGUF_U16: case GGUF_U32: return cJSON_IsNumber(j) && (double)v.u64 == j->valuedouble;
    case GGUF_I8: case GGUF_I16: case GGUF_I32: return cJSON_IsNumber(j) && (double)v.i64 == j->valuedouble;
    case GGUF_U64: return cJSON_IsString(j) && strtoull(j->valuestring, NULL, 10) == v.u64;
    case GGUF_I64: return cJSON_IsString(j) && strtoll(j->valuestring, NULL, 10) == v.i64;
    case GGUF_F32: case GGUF_F64: return cJSON_IsNumber(j) && v.f64 == j->valuedouble; /* exact */
    case GGUF_BOOL: return cJSON_IsBool(j) && v.b == cJSON_IsTrue(j);
    case GGUF_STRING: {
        if (!cJSON_IsString(j)) return false;
        uint8_t *want = malloc(strlen(j->valuestring) / 2 + 1);
        size_t n = hex_decode(j->valuestring, want);
        bool same = n == v.str.len && memcmp(want, v.str.data, n) == 0;
        free(want);
        return same;
    }
    default: return false;
    }
}

/* {"elem": type, "values": [...]}, recursively for arrays of arrays */
static bool same_array(const gguf_array *a, const cJSON *j) {
    const cJSON *elem = cJSON_GetObjectItem(j, "elem"), *values = cJSON_GetObjectItem(j, "values");
    if (!cJSON_IsString(elem) || strcmp(elem->valuestring, gguf_value_type_name(a->type)) != 0) return false;
    if ((uint64_t)cJSON_GetArraySize(values) != a->n) return false;
    uint64_t i = 0;
    for (const cJSON *v = values->child; v; v = v->next, i++) {
        gguf_value e = gguf_array_at(a, i);
        if (e.type == GGUF_ARRAY ? !same_array(&e.arr, v) : !same_scalar(e, elem->valuestring, v)) return false;
    }
    return true;
}

static void test_metadata(const gguf_file *g, const cJSON *json) {
    const cJSON *kvs = cJSON_GetObjectItem(json, "kv");
    CHECK(gguf_kv_count(g) == cJSON_GetArraySize(kvs), "%d keys, tiny.json has %d", gguf_kv_count(g),
          cJSON_GetArraySize(kvs));
    int i = 0;
    for (const cJSON *j = kvs->child; j; j = j->next, i++) {
        const char *key = cJSON_GetObjectItem(j, "key")->valuestring;
        const char *type = cJSON_GetObjectItem(j, "type")->valuestring;
        const gguf_kv *kv = gguf_kv_at(g, i);
        CHECK(kv && strcmp(kv->key, key) == 0, "key %d is \"%s\", tiny.json says \"%s\"", i, kv ? kv->key : "-", key);
        CHECK(gguf_find_kv(g, key) == kv, "lookup of \"%s\"", key);
        if (!kv) continue;
        bool same = kv->value.type == GGUF_ARRAY ? strcmp(type, "array") == 0 && same_array(&kv->value.arr, j)
                                                 : same_scalar(kv->value, type, cJSON_GetObjectItem(j, "value"));
        CHECK(same, "key \"%s\" (%s) differs from tiny.json", key, gguf_value_type_name(kv->value.type));
    }
    CHECK(gguf_find_kv(g, "no.such.key") == NULL, "an absent key was found");
    CHECK(gguf_alignment(g) == (uint32_t)cJSON_GetObjectItem(json, "alignment")->valueint, "alignment %u",
          gguf_alignment(g));
}

static void test_typed_getters(const gguf_file *g) {
    errbuf err;
    uint32_t u;
    int32_t i;
    float f;
    bool b;
    gguf_string s;
    const gguf_array *a;
    CHECK(gguf_get_u32(g, "test.u32", &u, &err) && u == 4000000000u, "u32: %s", err.msg);
    CHECK(gguf_get_u32(g, "test.u8", &u, &err) && u == 200, "u8 as u32: %s", err.msg);
    CHECK(gguf_get_i32(g, "test.i16", &i, &err) && i == -30000, "i16 as i32: %s", err.msg);
    CHECK(gguf_get_f32(g, "test.f32", &f, &err) && f == 0.1f, "f32: %s", err.msg);
    CHECK(gguf_get_bool(g, "test.bool", &b, &err) && b, "bool: %s", err.msg);
    CHECK(gguf_get_string(g, "test.string", &s, &err) && s.len == strlen("héllo, GGUF ✓") &&
              memcmp(s.data, "héllo, GGUF ✓", s.len) == 0, "string: %s", err.msg);
    CHECK(gguf_get_array(g, "test.array.strings", GGUF_STRING, &a, &err) && a->n == 3, "array: %s", err.msg);
    CHECK(gguf_get_array(g, "test.array.nested", -1, &a, &err) && a->type == GGUF_ARRAY, "any array: %s", err.msg);
    /* wrong types and missing keys name the key and both types */
    CHECK_ERR(gguf_get_u32(g, "test.string", &u, &err), err, "key \"test.string\" is a string, not u32");
    CHECK_ERR(gguf_get_u32(g, "test.i8", &u, &err), err, "-100 does not fit in u32");
    CHECK_ERR(gguf_get_i32(g, "test.u32", &i, &err), err, "4000000000 does not fit in i32");
    CHECK_ERR(gguf_get_i32(g, "test.f32", &i, &err), err, "is a f32, not i32");
    CHECK_ERR(gguf_get_f32(g, "test.f64", &f, &err), err, "\"test.f64\" is a f64, not f32");
    CHECK_ERR(gguf_get_bool(g, "test.u8", &b, &err), err, "\"test.u8\" is a u8, not bool");
    CHECK_ERR(gguf_get_string(g, "test.array.strings", &s, &err), err, "is a array, not string");
    CHECK_ERR(gguf_get_array(g, "test.array.u8", GGUF_STRING, &a, &err), err, "is an array of u8, not of string");
    CHECK_ERR(gguf_get_u32(g, "general.nothing", &u, &err), err, "\"general.nothing\" is missing");
}

static uint64_t fnv1a64(const uint8_t *p, uint64_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint64_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static void test_tensors(const gguf_file *g, const uint8_t *base, const cJSON *json) {
    const cJSON *tensors = cJSON_GetObjectItem(json, "tensors");
    CHECK(gguf_tensor_count(g) == cJSON_GetArraySize(tensors), "%d tensors", gguf_tensor_count(g));
    CHECK(gguf_data_offset(g) % gguf_alignment(g) == 0, "data section at %" PRIu64, gguf_data_offset(g));
    int i = 0;
    for (const cJSON *j = tensors->child; j; j = j->next, i++) {
        const char *name = cJSON_GetObjectItem(j, "name")->valuestring;
        const gguf_tensor *t = gguf_tensor_at(g, i);
        CHECK(t && strcmp(t->name, name) == 0, "tensor %d is \"%s\", tiny.json says \"%s\"", i, t ? t->name : "-", name);
        if (!t) continue;
        CHECK(gguf_find_tensor(g, name) == t, "lookup of \"%s\"", name);
        CHECK(t->type == cJSON_GetObjectItem(j, "type")->valueint && gguf_type_name(t->type), "%s: type %d", name,
              t->type);
        const cJSON *ne = cJSON_GetObjectItem(j, "ne");
        CHECK(t->n_dims == cJSON_GetArraySize(ne), "%s: %d dims", name, t->n_dims);
        uint64_t n_elems = 1;
        for (int d = 0; d < GGUF_MAX_DIMS; d++) {
            int64_t want = d < cJSON_GetArraySize(ne) ? (int64_t)cJSON_GetArrayItem(ne, d)->valuedouble : 1;
            CHECK(t->ne[d] == want, "%s: ne[%d] = %" PRId64 ", want %" PRId64, name, d, t->ne[d], want);
            n_elems *= (uint64_t)want;
        }
        CHECK(t->n_elems == n_elems, "%s: %" PRIu64 " elements", name, t->n_elems);
        CHECK(t->nbytes == (uint64_t)cJSON_GetObjectItem(j, "nbytes")->valuedouble, "%s: %" PRIu64 " bytes", name,
              t->nbytes);
        CHECK(t->data - base == (ptrdiff_t)cJSON_GetObjectItem(j, "file_offset")->valuedouble, "%s: at byte %td", name,
              t->data - base);
        CHECK(t->data - base == (ptrdiff_t)(gguf_data_offset(g) + t->offset), "%s: offset", name);
        char hash[17];
        snprintf(hash, sizeof hash, "%016" PRIx64, fnv1a64(t->data, t->nbytes));
        CHECK(strcmp(hash, cJSON_GetObjectItem(j, "fnv1a64")->valuestring) == 0, "%s: bytes differ", name);
    }
    CHECK(gguf_find_tensor(g, "tensor.none") == NULL, "an absent tensor was found");
}

static void test_types(void) {
    static const struct { int id; const char *name; int elems, bytes; } want[] = {
        {0, "F32", 1, 4},       {1, "F16", 1, 2},       {2, "Q4_0", 32, 18},    {3, "Q4_1", 32, 20},
        {6, "Q5_0", 32, 22},    {7, "Q5_1", 32, 24},    {8, "Q8_0", 32, 34},    {10, "Q2_K", 256, 84},
        {11, "Q3_K", 256, 110}, {12, "Q4_K", 256, 144}, {13, "Q5_K", 256, 176}, {14, "Q6_K", 256, 210},
        {15, "Q8_K", 256, 292}, {30, "BF16", 1, 2},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        int e = 0, b = 0;
        CHECK(gguf_type_block(want[i].id, &e, &b) && e == want[i].elems && b == want[i].bytes, "type %d blocks %d/%d",
              want[i].id, e, b);
        CHECK(gguf_type_name(want[i].id) && strcmp(gguf_type_name(want[i].id), want[i].name) == 0, "type %d name",
              want[i].id);
    }
    int e, b;
    CHECK(!gguf_type_block(4, &e, &b) && !gguf_type_name(-1) && !gguf_type_name(1000), "removed or unknown ids");
}

/* ---- corrupted copies of the fixture ------------------------------------ */

static void set_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void set_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Where the bytes after a key or tensor name start: the string
 * { u64 len, name } appears once in the header. */
static size_t after_name(const file_bytes *f, const char *name) {
    size_t n = strlen(name);
    for (size_t i = 0; i + 8 + n <= f->size; i++)
        if (get_u64(f->data + i) == n && memcmp(f->data + i + 8, name, n) == 0) return i + 8 + n;
    fprintf(stderr, "fixture has no \"%s\"\n", name);
    exit(1);
}

/* A tensor info's fields, after its name: n_dims, ne[n_dims], type, offset. */
typedef struct {
    size_t n_dims, ne0, type, offset;
} info_at;

static info_at tensor_info(const file_bytes *f, const char *name) {
    size_t at = after_name(f, name);
    uint32_t n_dims = f->data[at];
    return (info_at){at, at + 4, at + 4 + 8 * n_dims, at + 4 + 8 * n_dims + 4};
}

typedef struct {
    const char *what;
    const char *needle; /* the message must contain it */
    size_t at;          /* where to write */
    int width;          /* 1, 4 or 8 bytes of value, or 0 to write `bytes` */
    uint64_t value;
    const char *bytes;
    size_t at2; /* where to write byte2 as well (0: nowhere) */
    uint8_t byte2;
} patch;

/* a little-endian number of `width` bytes, or a string's bytes, written at `at` */
#define WRITE(where, w, v) .at = (where), .width = (w), .value = (v)
#define BYTES(where, s) .at = (where), .width = 0, .bytes = (s)

static void check_patch(const file_bytes *f, const patch *p) {
    uint8_t *copy = malloc(f->size);
    memcpy(copy, f->data, f->size);
    if (p->width == 1) copy[p->at] = (uint8_t)p->value;
    if (p->width == 4) set_u32(copy + p->at, (uint32_t)p->value);
    if (p->width == 8) set_u64(copy + p->at, p->value);
    if (p->width == 0) memcpy(copy + p->at, p->bytes, strlen(p->bytes));
    if (p->at2) copy[p->at2] = p->byte2;
    errbuf err;
    gguf_file *g = gguf_parse(copy, f->size, &err);
    CHECK(!g && strstr(err.msg, p->needle), "%s: expected an error mentioning \"%s\", got %s: \"%s\"", p->what,
          p->needle, g ? "success" : "error", g ? "" : err.msg);
    CHECK(!g && !strchr(err.msg, '\n'), "%s: the message is more than one line", p->what);
    if (!g) printf("  %-36s -> %s\n", p->what, err.msg);
    gguf_close(g);
    free(copy);
}

static void test_truncations(const file_bytes *f) {
    int n = 0, bad = 0;
    errbuf err;
    for (size_t len = 0; len < f->size; len += len < 20000 ? 1 : 97) {
        uint8_t *prefix = malloc(len ? len : 1); /* exactly sized: ASan sees reads past it */
        memcpy(prefix, f->data, len);
        gguf_file *g = gguf_parse(prefix, len, &err);
        if (g || !strstr(err.msg, "truncated")) {
            if (bad++ < 5) CHECK(false, "truncated to %zu bytes: %s", len, g ? "accepted" : err.msg);
        }
        gguf_close(g);
        free(prefix);
        n++;
    }
    CHECK(bad == 0, "%d of %d truncations not refused as truncated", bad, n);
    printf("truncations: %d prefixes refused as truncated\n", n);
}

static void test_corruptions(const file_bytes *f) {
    info_at f32v = tensor_info(f, "tensor.f32_vec"), f16 = tensor_info(f, "tensor.f16_mat"),
            bf16 = tensor_info(f, "tensor.bf16mat"), q8 = tensor_info(f, "tensor.q8_0mat"),
            q4k = tensor_info(f, "tensor.q4_kmat"), q6k = tensor_info(f, "tensor.q6_kmat");
    size_t str = after_name(f, "test.string") + 4, tokens = after_name(f, "tokenizer.ggml.tokens") + 4;
    size_t scores = after_name(f, "tokenizer.ggml.scores") + 4, align = after_name(f, "general.alignment");
    size_t u8 = after_name(f, "test.u8"), i8 = after_name(f, "test.i8");
    uint64_t f16_offset = get_u64(f->data + f16.offset);
    const patch patches[] = {
        {"bad magic", "no \"GGUF\" magic", BYTES(0, "GGUB")},
        {"version 1", "GGUF version 1 is not supported", WRITE(4, 4, 1)},
        {"version 2", "GGUF version 2 is not supported", WRITE(4, 4, 2)},
        {"version 4", "unknown GGUF version 4", WRITE(4, 4, 4)},
        {"big-endian", "big-endian", WRITE(4, 4, 0x03000000u)},
        {"huge tensor count", "tensor count", WRITE(8, 8, 1ull << 60)},
        {"tensor count just past the file", "tensor count", WRITE(8, 8, 20000)},
        {"huge metadata count", "metadata count", WRITE(16, 8, UINT64_MAX)},
        {"string length past the end", "inside a string of key \"test.string\": truncated", WRITE(str, 8, 100000)},
        {"string over 1 MiB", "key \"test.string\": a string is over 1048576 bytes", WRITE(str, 8, 1ull << 40)},
        {"array count over the cap", "\"tokenizer.ggml.tokens\": its array has over 16777216",
         WRITE(tokens + 4, 8, 1ull << 62)},
        {"array count that overflows", "\"tokenizer.ggml.scores\": its array has over",
         WRITE(scores + 4, 8, UINT64_MAX)},
        {"array count past the end", "the array of key \"tokenizer.ggml.scores\": truncated",
         WRITE(scores + 4, 8, 1u << 24)},
        {"unknown value type", "key \"test.u8\" has unknown value type 13", WRITE(u8, 4, 13)},
        {"unknown array element type", "array of unknown value type 99", WRITE(tokens, 4, 99)},
        {"bool neither 0 nor 1", "\"test.bool\": a bool is neither 0 nor 1",
         BYTES(after_name(f, "test.bool") + 4, "\x02")},
        {"duplicate key", "metadata key \"test.u8\" appears twice", BYTES(i8 - 7, "test.u8")},
        {"non-printable key", "metadata key \"test?u8\" has a character", BYTES(u8 - 3, "\x01")},
        {"empty key", "has an empty key", WRITE(u8 - 7 - 8, 8, 0)},
        {"key over 1024 bytes", "its key is over 1024 bytes", WRITE(u8 - 7 - 8, 8, 5000)},
        {"alignment 0", "general.alignment is 0: not a power of two", WRITE(align + 4, 4, 0)},
        {"alignment 3", "general.alignment is 3: not a power of two", WRITE(align + 4, 4, 3)},
        {"alignment not u32", "general.alignment is a i32, not u32", WRITE(align, 4, GGUF_I32)},
        {"unknown tensor type", "tensor \"tensor.q4_kmat\" has unknown ggml type id 99", WRITE(q4k.type, 4, 99)},
        {"removed tensor type Q4_2", "tensor \"tensor.q4_kmat\" has unknown ggml type id 4", WRITE(q4k.type, 4, 4)},
        {"n_dims 5", "tensor \"tensor.f32_vec\" has 5 dimensions (1 to 4 allowed)", WRITE(f32v.n_dims, 4, 5)},
        {"n_dims 0", "tensor \"tensor.f32_vec\" has 0 dimensions", WRITE(f32v.n_dims, 4, 0)},
        {"dims product overflow", "tensor \"tensor.f16_mat\": the product of its dims overflows",
         WRITE(f16.ne0 + 8, 8, 1ull << 62)},
        {"dim past int64", "tensor \"tensor.f16_mat\": the product of its dims overflows",
         WRITE(f16.ne0, 8, 1ull << 63)},
        {"ne[0] not a multiple of the block", "\"tensor.q8_0mat\": ne[0] = 48 is not a multiple of Q8_0's block of 32",
         WRITE(q8.ne0, 8, 48)},
        {"ne[0] not a multiple of a K block",
         "\"tensor.q6_kmat\": ne[0] = 128 is not a multiple of Q6_K's block of 256",
         WRITE(q6k.ne0, 8, 128)},
        {"offset misaligned", "\"tensor.f16_mat\": offset", WRITE(f16.offset, 8, f16_offset + 1)},
        {"offset past the end", "\"tensor.f16_mat\": its 512 bytes at offset 1048576 lie past the end",
         WRITE(f16.offset, 8, 1u << 20)},
        {"offset + size overflows", "\"tensor.f16_mat\": its 512 bytes", WRITE(f16.offset, 8, UINT64_MAX - 31)},
        {"tensor too big for the file", "\"tensor.f16_mat\": its", WRITE(f16.ne0 + 8, 8, 1u << 20)},
        {"overlapping tensors", "tensors \"tensor.f16_mat\" and \"tensor.bf16mat\" overlap",
         WRITE(bf16.offset, 8, f16_offset + 256)},
        {"duplicate tensor name", "tensor \"tensor.q4_kmat\" appears twice", BYTES(q6k.n_dims - 14, "tensor.q4_kmat")},
        {"NUL in a tensor name", "the name of tensor \"tensor?f16_mat\" has a NUL byte", WRITE(f16.n_dims - 8, 1, 0)},
        {"non-printable tensor name", "tensor \"tensor.f?6_mat\" has 9 dimensions",
         WRITE(f16.n_dims, 4, 9), .at2 = f16.n_dims - 6, .byte2 = 0x1b},
        {"tensor name over 1024 bytes", "tensor 0: its name is over 1024 bytes", WRITE(f32v.n_dims - 14 - 8, 8, 4096)},
    };
    for (size_t i = 0; i < sizeof patches / sizeof patches[0]; i++) check_patch(f, &patches[i]);
    printf("corruptions: %zu patched copies refused by name\n", sizeof patches / sizeof patches[0]);
}

/* ---- small files written here ------------------------------------------- */

static void test_synthetic(void) {
    errbuf err;
    strbuf o;

    /* no tensors, no padding needed; an empty array and arrays of arrays of arrays of strings */
    strbuf_init(&o);
    put_header(&o, 0, 2);
    put_key(&o, "a.empty", GGUF_ARRAY);
    put_u32(&o, GGUF_U32);
    put_u64(&o, 0);
    put_key(&o, "a.nested", GGUF_ARRAY);
    put_u32(&o, GGUF_ARRAY);
    put_u64(&o, 1);
    put_u32(&o, GGUF_ARRAY);
    put_u64(&o, 1);
    put_u32(&o, GGUF_STRING);
    put_u64(&o, 1);
    put_str(&o, "deep");
    parsed p = parse_copy(o.data, o.len, &err);
    CHECK(p.g != NULL, "a file without tensors: %s", err.msg);
    if (p.g) {
        const gguf_kv *kv = gguf_find_kv(p.g, "a.nested");
        gguf_value outer = gguf_array_at(&kv->value.arr, 0); /* three arrays deep: the most allowed */
        gguf_value middle = gguf_array_at(&outer.arr, 0);
        gguf_value inner = gguf_array_at(&middle.arr, 0);
        CHECK(inner.type == GGUF_STRING && inner.str.len == 4 && memcmp(inner.str.data, "deep", 4) == 0, "nested");
        CHECK(gguf_find_kv(p.g, "a.empty")->value.arr.n == 0 && gguf_tensor_count(p.g) == 0, "empty");
    }
    parsed_free(&p);
    strbuf_free(&o);

    /* arrays nested four deep */
    strbuf_init(&o);
    put_header(&o, 0, 1);
    put_key(&o, "a.deep", GGUF_ARRAY);
    for (int d = 0; d < 4; d++) {
        put_u32(&o, GGUF_ARRAY);
        put_u64(&o, 1);
    }
    put_u32(&o, GGUF_U8);
    put_u64(&o, 0);
    CHECK_ERR(parses(o.data, o.len, &err), err, "\"a.deep\": arrays nested more than 3 deep");
    strbuf_free(&o);

    /* one tensor whose data lies in the padding's place: data start past the end */
    strbuf_init(&o);
    put_header(&o, 1, 0);
    put_str(&o, "t");
    put_u32(&o, 1);
    put_u64(&o, 8);
    put_u32(&o, 0);
    put_u64(&o, 0);
    CHECK_ERR(parses(o.data, o.len, &err), err, "data section would start");
    put_padding(&o, 32);
    for (int i = 0; i < 32; i++) strbuf_append_char(&o, (char)i);
    p = parse_copy(o.data, o.len, &err);
    CHECK(p.g && gguf_tensor_at(p.g, 0)->nbytes == 32 && gguf_tensor_at(p.g, 0)->data[31] == 31, "one tensor: %s",
          p.g ? "" : err.msg);
    parsed_free(&p);
    strbuf_free(&o);

    CHECK_ERR(parses("GG", 2, &err), err, "truncated");
    CHECK_ERR(gguf_open("/nonexistent/model.gguf", &err) != NULL, err, "/nonexistent/model.gguf");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_gguf FIXTURE_DIR (tests/fixtures/gguf)\n");
        return 2;
    }
    cJSON *json = fixture_json(argv[1]);
    file_bytes f = fixture_read(argv[1], cJSON_GetObjectItem(json, "file")->valuestring);
    errbuf err;
    gguf_file *g = gguf_parse(f.data, f.size, &err);
    CHECK(g != NULL, "the fixture is refused: %s", err.msg);
    if (!g) return CHECK_RESULT();
    test_metadata(g, json);
    test_typed_getters(g);
    test_tensors(g, f.data, json);
    gguf_close(g);

    /* the same through gguf_open (a memory map) */
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", argv[1], cJSON_GetObjectItem(json, "file")->valuestring);
    g = gguf_open(path, &err);
    CHECK(g && gguf_kv_count(g) == cJSON_GetArraySize(cJSON_GetObjectItem(json, "kv")) && gguf_tensor_count(g) == 8,
          "gguf_open: %s", g ? "" : err.msg);
    if (g) {
        const gguf_tensor *t = gguf_find_tensor(g, "tensor.q8_0mat");
        CHECK(t && memcmp(t->data, f.data + gguf_data_offset(g) + t->offset, t->nbytes) == 0, "mapped bytes");
        CHECK(t && ((uintptr_t)t->data % gguf_alignment(g)) == 0, "mapped tensors are aligned");
    }
    gguf_close(g);

    test_types();
    test_truncations(&f);
    test_corruptions(&f);
    test_synthetic();
    free(f.data);
    cJSON_Delete(json);
    return CHECK_RESULT();
}
