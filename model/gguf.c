/* gguf.c — the strict GGUF v3 reader (layout in gguf.h).
 *
 * Parsing runs front to back with a cursor that never moves past the end:
 * header, metadata (the alignment is read from it), tensor infos, then the
 * checks that need everything (data section start, each tensor's bytes
 * inside the file, no overlaps, no duplicate names or keys). */
#include "model/gguf.h"
#include "common/alloc.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/mapped_file.h"
#include "common/numeric.h"

#define GGUF_MAGIC "GGUF"
#define GGUF_VERSION 3
#define HEADER_BYTES 24        /* magic, version, n_tensors, n_kv */
#define MAX_ENTRIES (1u << 20) /* metadata entries, and tensors */
/* The fewest bytes an entry can take, to bound counts by the file size
 * before allocating: a KV is a key length, a 1-byte key, a type and a
 * 1-byte value; a tensor info a name length, a 1-byte name, n_dims, one
 * dim, a type and an offset. */
#define MIN_KV_BYTES (8 + 1 + 4 + 1)
#define MIN_TENSOR_INFO_BYTES (8 + 1 + 4 + 8 + 4 + 8)
#define SHOWN_NAME 200 /* bytes of a name quoted in a message */

struct gguf_file {
    mapped_file file; /* empty when parsed from a caller's buffer */
    const uint8_t *data;
    size_t size;
    uint32_t alignment;
    uint64_t data_offset;
    gguf_kv *kvs; /* (n_kv), file order */
    int n_kv;
    gguf_tensor *tensors; /* (n_tensors), file order */
    int n_tensors;
    const gguf_kv **kv_by_key;           /* (n_kv), sorted by key */
    const gguf_tensor **tensor_by_name; /* (n_tensors), sorted by name */
};

/* ---- ggml types --------------------------------------------------------- */

typedef struct {
    const char *name;
    int block_elems, block_bytes;
} ggml_type_info;

/* ggml.h's ids; block sizes are ggml-common.h's block structs (QK_K = 256).
 * Ids left out were removed from ggml (4, 5, 31-33, 36-38) or are newer
 * than facet knows. */
static const ggml_type_info GGML_TYPES[] = {
    [0] = {"F32", 1, 4},          [1] = {"F16", 1, 2},          [2] = {"Q4_0", 32, 18},
    [3] = {"Q4_1", 32, 20},       [6] = {"Q5_0", 32, 22},       [7] = {"Q5_1", 32, 24},
    [8] = {"Q8_0", 32, 34},       [9] = {"Q8_1", 32, 36},       [10] = {"Q2_K", 256, 84},
    [11] = {"Q3_K", 256, 110},    [12] = {"Q4_K", 256, 144},    [13] = {"Q5_K", 256, 176},
    [14] = {"Q6_K", 256, 210},    [15] = {"Q8_K", 256, 292},    [16] = {"IQ2_XXS", 256, 66},
    [17] = {"IQ2_XS", 256, 74},   [18] = {"IQ3_XXS", 256, 98},  [19] = {"IQ1_S", 256, 50},
    [20] = {"IQ4_NL", 32, 18},    [21] = {"IQ3_S", 256, 110},   [22] = {"IQ2_S", 256, 82},
    [23] = {"IQ4_XS", 256, 136},  [24] = {"I8", 1, 1},          [25] = {"I16", 1, 2},
    [26] = {"I32", 1, 4},         [27] = {"I64", 1, 8},         [28] = {"F64", 1, 8},
    [29] = {"IQ1_M", 256, 56},    [30] = {"BF16", 1, 2},        [34] = {"TQ1_0", 256, 54},
    [35] = {"TQ2_0", 256, 66},    [39] = {"MXFP4", 32, 17},
};
#define N_GGML_TYPES ((int)(sizeof GGML_TYPES / sizeof GGML_TYPES[0]))

const char *gguf_type_name(int type) {
    return type >= 0 && type < N_GGML_TYPES ? GGML_TYPES[type].name : NULL;
}

bool gguf_type_block(int type, int *block_elems, int *block_bytes) {
    if (!gguf_type_name(type)) return false;
    *block_elems = GGML_TYPES[type].block_elems;
    *block_bytes = GGML_TYPES[type].block_bytes;
    return true;
}

/* ---- value types -------------------------------------------------------- */

static const char *const VALUE_TYPE_NAMES[] = {"u8",  "i8",  "u16",    "i16",   "u32", "i32", "f32",
                                               "bool", "string", "array", "u64", "i64", "f64"};
#define N_VALUE_TYPES 13

const char *gguf_value_type_name(gguf_value_type t) {
    return (unsigned)t < N_VALUE_TYPES ? VALUE_TYPE_NAMES[t] : "unknown type";
}

/* Bytes of one scalar in the file; 0 for strings and arrays. */
static size_t scalar_size(gguf_value_type t) {
    switch (t) {
    case GGUF_U8: case GGUF_I8: case GGUF_BOOL: return 1;
    case GGUF_U16: case GGUF_I16: return 2;
    case GGUF_U32: case GGUF_I32: case GGUF_F32: return 4;
    case GGUF_U64: case GGUF_I64: case GGUF_F64: return 8;
    default: return 0;
    }
}

static uint64_t load_le(const uint8_t *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;) v = (v << 8) | p[i];
    return v;
}

/* A scalar of type t stored at p (scalar_size(t) bytes, little-endian). */
static gguf_value scalar_at(gguf_value_type t, const uint8_t *p) {
    gguf_value v = {.type = t};
    uint64_t raw = load_le(p, scalar_size(t));
    switch (t) {
    case GGUF_U8: case GGUF_U16: case GGUF_U32: case GGUF_U64: v.u64 = raw; break;
    case GGUF_I8: v.i64 = (int8_t)raw; break;
    case GGUF_I16: v.i64 = (int16_t)raw; break;
    case GGUF_I32: v.i64 = (int32_t)raw; break;
    case GGUF_I64: v.i64 = (int64_t)raw; break;
    case GGUF_BOOL: v.b = raw != 0; break;
    case GGUF_F32: {
        uint32_t u = (uint32_t)raw;
        float f;
        memcpy(&f, &u, sizeof f);
        v.f64 = f;
        break;
    }
    case GGUF_F64: memcpy(&v.f64, &raw, sizeof v.f64); break;
    default: break;
    }
    return v;
}

gguf_value gguf_array_at(const gguf_array *a, uint64_t i) {
    if (i >= a->n) return (gguf_value){.type = a->type};
    if (a->type == GGUF_STRING) return (gguf_value){.type = GGUF_STRING, .str = a->strings[i]};
    if (a->type == GGUF_ARRAY) return (gguf_value){.type = GGUF_ARRAY, .arr = a->arrays[i]};
    return scalar_at(a->type, a->data + i * scalar_size(a->type));
}

static void free_array(gguf_array *a) {
    if (a->arrays)
        for (uint64_t i = 0; i < a->n; i++) free_array(&a->arrays[i]);
    free(a->arrays);
    free(a->strings);
    memset(a, 0, sizeof *a);
}

/* ---- messages ----------------------------------------------------------- */

/* A name as a message may quote it: printable ASCII kept, every other
 * byte '?', cut at SHOWN_NAME bytes. */
static const char *shown(const char *s, size_t len, char out[SHOWN_NAME + 4]) {
    size_t n = len < SHOWN_NAME ? len : SHOWN_NAME;
    for (size_t i = 0; i < n; i++) out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    strcpy(out + n, len > n ? "..." : "");
    return out;
}

static bool truncated(errbuf *err, const char *what, const char *name) {
    return errbuf_set(err, "the file ends inside %s%s%s%s: truncated?", what, name ? " \"" : "", name ? name : "",
                      name ? "\"" : "");
}

/* ---- cursor ------------------------------------------------------------- */

typedef struct cursor {
    const uint8_t *data;
    size_t size, pos;
} cursor;

static size_t remaining(const cursor *c) { return c->size - c->pos; }

static bool take(cursor *c, uint64_t n, const uint8_t **out) {
    if (n > remaining(c)) return false;
    *out = c->data + c->pos;
    c->pos += (size_t)n;
    return true;
}

static bool read_u32(cursor *c, uint32_t *out) {
    const uint8_t *p;
    if (!take(c, 4, &p)) return false;
    *out = (uint32_t)load_le(p, 4);
    return true;
}

static bool read_u64(cursor *c, uint64_t *out) {
    const uint8_t *p;
    if (!take(c, 8, &p)) return false;
    *out = load_le(p, 8);
    return true;
}

/* { u64 length, bytes } of at most max_len bytes. False when the file ends
 * first, or (with *too_long set) when the length is over max_len: the
 * caller words each for the string it was reading. */
static bool read_string(cursor *c, uint64_t max_len, gguf_string *out, bool *too_long) {
    uint64_t len;
    const uint8_t *p;
    *too_long = false;
    if (!read_u64(c, &len)) return false;
    if (len > max_len) {
        *too_long = true;
        return false;
    }
    if (!take(c, len, &p)) return false;
    *out = (gguf_string){(const char *)p, len};
    return true;
}

/* ---- metadata values ---------------------------------------------------- */

static bool parse_value(cursor *c, gguf_value_type type, int depth, gguf_value *v, const char *key, errbuf *err);

/* The fewest bytes one element of type t takes in the file. */
static uint64_t min_element_bytes(gguf_value_type t) {
    if (t == GGUF_STRING) return 8;      /* its length */
    if (t == GGUF_ARRAY) return 4 + 8;   /* its type and count */
    return scalar_size(t);
}

/* { u32 element type, u64 count, elements }. */
static bool parse_array(cursor *c, int depth, gguf_array *a, const char *key, errbuf *err) {
    uint32_t type;
    uint64_t n;
    if (depth > GGUF_MAX_ARRAY_DEPTH)
        return errbuf_set(err, "key \"%s\": arrays nested more than %d deep", key, GGUF_MAX_ARRAY_DEPTH);
    if (!read_u32(c, &type) || !read_u64(c, &n)) return truncated(err, "the array of key", key);
    if (type >= N_VALUE_TYPES)
        return errbuf_set(err, "key \"%s\" is an array of unknown value type %" PRIu32, key, type);
    a->type = (gguf_value_type)type;
    if (n > GGUF_MAX_ARRAY) return errbuf_set(err, "key \"%s\": its array has over %u elements", key, GGUF_MAX_ARRAY);
    if (n > remaining(c) / min_element_bytes(a->type)) return truncated(err, "the array of key", key);
    if (scalar_size(a->type)) {
        if (!take(c, n * scalar_size(a->type), &a->data)) return truncated(err, "the array of key", key);
        a->n = n;
        if (a->type == GGUF_BOOL)
            for (uint64_t i = 0; i < n; i++)
                if (a->data[i] > 1) return errbuf_set(err, "key \"%s\": a bool in its array is neither 0 nor 1", key);
        return true;
    }
    /* strings and arrays: one record per element (n is bounded by the file size above) */
    if (a->type == GGUF_STRING)
        a->strings = xcalloc((size_t)n + 1, sizeof *a->strings);
    else
        a->arrays = xcalloc((size_t)n + 1, sizeof *a->arrays);
    a->n = n;
    for (uint64_t i = 0; i < n; i++) {
        gguf_value elem;
        if (!parse_value(c, a->type, depth, &elem, key, err)) {
            if (a->type == GGUF_ARRAY) a->arrays[i] = elem.arr; /* freed with the rest */
            return false;
        }
        if (a->type == GGUF_STRING)
            a->strings[i] = elem.str;
        else
            a->arrays[i] = elem.arr;
    }
    return true;
}

/* A value of the given type at the cursor. depth: arrays enclosing it. */
static bool parse_value(cursor *c, gguf_value_type type, int depth, gguf_value *v, const char *key, errbuf *err) {
    memset(v, 0, sizeof *v);
    v->type = type;
    if (type == GGUF_ARRAY) return parse_array(c, depth + 1, &v->arr, key, err);
    if (type == GGUF_STRING) {
        bool too_long;
        if (read_string(c, GGUF_MAX_STRING, &v->str, &too_long)) return true;
        if (too_long) return errbuf_set(err, "key \"%s\": a string is over %u bytes", key, GGUF_MAX_STRING);
        return truncated(err, "a string of key", key);
    }
    const uint8_t *p;
    if (!scalar_size(type)) return errbuf_set(err, "key \"%s\" has unknown value type %d", key, (int)type);
    if (!take(c, scalar_size(type), &p)) return truncated(err, "the value of key", key);
    if (type == GGUF_BOOL && *p > 1) return errbuf_set(err, "key \"%s\": a bool is neither 0 nor 1", key);
    *v = scalar_at(type, p);
    return true;
}

static bool printable_ascii(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (s[i] < 0x20 || s[i] >= 0x7f) return false;
    return true;
}

/* One { key, type, value } entry. */
static bool parse_kv(cursor *c, int index, gguf_kv *kv, errbuf *err) {
    gguf_string key;
    bool too_long;
    char name[SHOWN_NAME + 4];
    if (!read_string(c, GGUF_MAX_NAME, &key, &too_long)) {
        if (too_long) return errbuf_set(err, "metadata entry %d: its key is over %d bytes", index, GGUF_MAX_NAME);
        return errbuf_set(err, "the file ends inside the key of metadata entry %d: truncated?", index);
    }
    if (key.len == 0) return errbuf_set(err, "metadata entry %d has an empty key", index);
    if (!printable_ascii(key.data, key.len))
        return errbuf_set(err, "metadata key \"%s\" has a character that is not printable ASCII",
                          shown(key.data, key.len, name));
    kv->key = xstrndup(key.data, key.len);
    uint32_t type;
    if (!read_u32(c, &type)) return truncated(err, "the type of key", kv->key);
    if (type >= N_VALUE_TYPES) return errbuf_set(err, "key \"%s\" has unknown value type %" PRIu32, kv->key, type);
    return parse_value(c, (gguf_value_type)type, 0, &kv->value, kv->key, err);
}

/* ---- tensor infos ------------------------------------------------------- */

/* n_elems and nbytes from ne and the type's blocks, refusing overflow. */
static bool tensor_size(gguf_tensor *t, const char *name, errbuf *err) {
    int block_elems, block_bytes;
    if (!gguf_type_block(t->type, &block_elems, &block_bytes))
        return errbuf_set(err, "tensor \"%s\" has unknown ggml type id %d", name, t->type);
    uint64_t n = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++)
        if (!mul_u64(n, (uint64_t)t->ne[d], &n) || n > INT64_MAX)
            return errbuf_set(err, "tensor \"%s\": the product of its dims overflows", name);
    if (t->ne[0] % block_elems != 0)
        return errbuf_set(err, "tensor \"%s\": ne[0] = %" PRId64 " is not a multiple of %s's block of %d elements",
                          name, t->ne[0], gguf_type_name(t->type), block_elems);
    t->n_elems = n;
    if (!mul_u64(n / (uint64_t)block_elems, (uint64_t)block_bytes, &t->nbytes))
        return errbuf_set(err, "tensor \"%s\": its size in bytes overflows", name);
    return true;
}

/* { name, n_dims, ne[n_dims], type, offset }. */
static bool parse_tensor_info(cursor *c, int index, gguf_tensor *t, errbuf *err) {
    gguf_string name;
    bool too_long;
    char shown_name[SHOWN_NAME + 4];
    if (!read_string(c, GGUF_MAX_NAME, &name, &too_long)) {
        if (too_long) return errbuf_set(err, "tensor %d: its name is over %d bytes", index, GGUF_MAX_NAME);
        return errbuf_set(err, "the file ends inside the name of tensor %d: truncated?", index);
    }
    if (name.len == 0) return errbuf_set(err, "tensor %d has an empty name", index);
    const char *s = shown(name.data, name.len, shown_name);
    if (memchr(name.data, 0, name.len)) return errbuf_set(err, "the name of tensor \"%s\" has a NUL byte", s);
    t->name = xstrndup(name.data, name.len);

    uint32_t n_dims, type;
    if (!read_u32(c, &n_dims)) return truncated(err, "the info of tensor", s);
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return errbuf_set(err, "tensor \"%s\" has %" PRIu32 " dimensions (1 to %d allowed)", s, n_dims, GGUF_MAX_DIMS);
    t->n_dims = (int)n_dims;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) {
        uint64_t ne = 1;
        if (d < t->n_dims && !read_u64(c, &ne)) return truncated(err, "the info of tensor", s);
        if (ne > INT64_MAX) return errbuf_set(err, "tensor \"%s\": the product of its dims overflows", s);
        t->ne[d] = (int64_t)ne;
    }
    if (!read_u32(c, &type) || !read_u64(c, &t->offset)) return truncated(err, "the info of tensor", s);
    t->type = type > INT32_MAX ? -1 : (int)type;
    if (!gguf_type_name(t->type))
        return errbuf_set(err, "tensor \"%s\" has unknown ggml type id %" PRIu32, s, type);
    return tensor_size(t, s, err);
}

/* ---- whole-file checks -------------------------------------------------- */

static int kv_key_cmp(const void *a, const void *b) {
    return strcmp((*(const gguf_kv *const *)a)->key, (*(const gguf_kv *const *)b)->key);
}

static int tensor_name_cmp(const void *a, const void *b) {
    return strcmp((*(const gguf_tensor *const *)a)->name, (*(const gguf_tensor *const *)b)->name);
}

static bool index_keys(gguf_file *g, errbuf *err) {
    g->kv_by_key = xcalloc((size_t)g->n_kv + 1, sizeof *g->kv_by_key);
    for (int i = 0; i < g->n_kv; i++) g->kv_by_key[i] = &g->kvs[i];
    qsort(g->kv_by_key, (size_t)g->n_kv, sizeof *g->kv_by_key, kv_key_cmp);
    for (int i = 1; i < g->n_kv; i++)
        if (strcmp(g->kv_by_key[i - 1]->key, g->kv_by_key[i]->key) == 0)
            return errbuf_set(err, "metadata key \"%s\" appears twice", g->kv_by_key[i]->key);
    return true;
}

static bool index_tensor_names(gguf_file *g, errbuf *err) {
    char s[SHOWN_NAME + 4];
    g->tensor_by_name = xcalloc((size_t)g->n_tensors + 1, sizeof *g->tensor_by_name);
    for (int i = 0; i < g->n_tensors; i++) g->tensor_by_name[i] = &g->tensors[i];
    qsort(g->tensor_by_name, (size_t)g->n_tensors, sizeof *g->tensor_by_name, tensor_name_cmp);
    for (int i = 1; i < g->n_tensors; i++) {
        const char *name = g->tensor_by_name[i]->name;
        if (strcmp(g->tensor_by_name[i - 1]->name, name) == 0)
            return errbuf_set(err, "tensor \"%s\" appears twice", shown(name, strlen(name), s));
    }
    return true;
}

/* general.alignment: a u32 power of two; 32 when absent. */
static bool read_alignment(gguf_file *g, errbuf *err) {
    const gguf_kv *kv = gguf_find_kv(g, "general.alignment");
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    if (!kv) return true;
    if (kv->value.type != GGUF_U32)
        return errbuf_set(err, "general.alignment is a %s, not u32", gguf_value_type_name(kv->value.type));
    uint64_t a = kv->value.u64;
    if (a == 0 || (a & (a - 1)) != 0)
        return errbuf_set(err, "general.alignment is %" PRIu64 ": not a power of two", a);
    g->alignment = (uint32_t)a;
    return true;
}

/* Each tensor aligned and inside the file; data pointers set. */
static bool place_tensors(gguf_file *g, size_t infos_end, errbuf *err) {
    char s[SHOWN_NAME + 4];
    uint64_t start = ((uint64_t)infos_end + g->alignment - 1) / g->alignment * g->alignment;
    g->data_offset = start;
    if (g->n_tensors == 0) return true; /* nothing needs the padding */
    if (start > g->size)
        return errbuf_set(err, "the data section would start at byte %" PRIu64 ", past the end of the file "
                               "(%zu bytes): truncated?", start, g->size);
    uint64_t data_size = g->size - start;
    for (int i = 0; i < g->n_tensors; i++) {
        gguf_tensor *t = &g->tensors[i];
        const char *name = shown(t->name, strlen(t->name), s);
        if (t->offset % g->alignment != 0)
            return errbuf_set(err, "tensor \"%s\": offset %" PRIu64 " is not a multiple of the alignment %" PRIu32,
                              name, t->offset, g->alignment);
        uint64_t end;
        if (!add_u64(t->offset, t->nbytes, &end) || end > data_size)
            return errbuf_set(err, "tensor \"%s\": its %" PRIu64 " bytes at offset %" PRIu64 " lie past the end of the "
                                   "file (data section of %" PRIu64 " bytes): truncated?",
                              name, t->nbytes, t->offset, data_size);
        t->data = g->data + start + t->offset;
    }
    return true;
}

static int tensor_offset_cmp(const void *a, const void *b) {
    const gguf_tensor *x = *(const gguf_tensor *const *)a, *y = *(const gguf_tensor *const *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

static bool check_no_overlap(const gguf_file *g, errbuf *err) {
    char a[SHOWN_NAME + 4], b[SHOWN_NAME + 4];
    const gguf_tensor **order = xcalloc((size_t)g->n_tensors + 1, sizeof *order);
    for (int i = 0; i < g->n_tensors; i++) order[i] = &g->tensors[i];
    qsort(order, (size_t)g->n_tensors, sizeof *order, tensor_offset_cmp);
    bool ok = true;
    for (int i = 1; ok && i < g->n_tensors; i++) {
        const gguf_tensor *prev = order[i - 1], *t = order[i];
        if (t->offset < prev->offset + prev->nbytes)
            ok = errbuf_set(err, "tensors \"%s\" and \"%s\" overlap in the data section",
                            shown(prev->name, strlen(prev->name), a), shown(t->name, strlen(t->name), b));
    }
    free(order);
    return ok;
}

/* ---- parse, open, close ------------------------------------------------- */

/* magic, version (3, little-endian), and counts the file can hold. */
static bool parse_header(cursor *c, uint64_t *n_tensors, uint64_t *n_kv, errbuf *err) {
    if (c->size < HEADER_BYTES)
        return errbuf_set(err, "the file is %zu bytes, shorter than a GGUF header (%d): truncated?", c->size,
                          HEADER_BYTES);
    if (memcmp(c->data, GGUF_MAGIC, 4) != 0) return errbuf_set(err, "not a GGUF file (no \"GGUF\" magic)");
    /* the size check above covers these three reads */
    c->pos = 4;
    uint32_t version = 0;
    read_u32(c, &version);
    uint32_t swapped = __builtin_bswap32(version);
    if (version != GGUF_VERSION && swapped >= 1 && swapped <= GGUF_VERSION)
        return errbuf_set(err, "a big-endian GGUF file: facet reads little-endian files only");
    if (version == 1 || version == 2)
        return errbuf_set(err, "GGUF version %" PRIu32 " is not supported (facet reads version 3)", version);
    if (version != GGUF_VERSION)
        return errbuf_set(err, "unknown GGUF version %" PRIu32 " (facet reads version 3)", version);
    read_u64(c, n_tensors);
    read_u64(c, n_kv);
    /* never say the number: it is whatever 8 bytes of the file spell */
    if (*n_tensors > MAX_ENTRIES || *n_tensors > remaining(c) / MIN_TENSOR_INFO_BYTES)
        return errbuf_set(err, "the header's tensor count is over %u or more than the file could hold: truncated, "
                               "or not a GGUF file?", MAX_ENTRIES);
    if (*n_kv > MAX_ENTRIES || *n_kv > remaining(c) / MIN_KV_BYTES)
        return errbuf_set(err, "the header's metadata count is over %u or more than the file could hold: truncated, "
                               "or not a GGUF file?", MAX_ENTRIES);
    if (*n_tensors * MIN_TENSOR_INFO_BYTES + *n_kv * MIN_KV_BYTES > remaining(c))
        return errbuf_set(err, "the header's tensor and metadata counts are more than the file could hold: "
                               "truncated, or not a GGUF file?");
    return true;
}

static bool parse_all(gguf_file *g, errbuf *err) {
    cursor c = {g->data, g->size, 0};
    uint64_t n_tensors = 0, n_kv = 0;
    if (!parse_header(&c, &n_tensors, &n_kv, err)) return false;
    g->kvs = xcalloc((size_t)n_kv + 1, sizeof *g->kvs);
    g->n_kv = (int)n_kv;
    for (int i = 0; i < g->n_kv; i++)
        if (!parse_kv(&c, i, &g->kvs[i], err)) return false;
    if (!index_keys(g, err) || !read_alignment(g, err)) return false;
    g->tensors = xcalloc((size_t)n_tensors + 1, sizeof *g->tensors);
    g->n_tensors = (int)n_tensors;
    for (int i = 0; i < g->n_tensors; i++)
        if (!parse_tensor_info(&c, i, &g->tensors[i], err)) return false;
    return index_tensor_names(g, err) && place_tensors(g, c.pos, err) && check_no_overlap(g, err);
}

gguf_file *gguf_parse(const uint8_t *data, size_t len, errbuf *err) {
    gguf_file *g = xcalloc(1, sizeof *g);
    g->data = data;
    g->size = len;
    if (!parse_all(g, err)) {
        gguf_close(g);
        return NULL;
    }
    return g;
}

gguf_file *gguf_open(const char *path, errbuf *err) {
    mapped_file mf;
    if (!mapped_file_open(&mf, path, err)) return NULL;
    gguf_file *g = gguf_parse(mf.data, mf.size, err);
    if (!g) {
        mapped_file_close(&mf);
        errbuf_prefix(err, "%s", path);
        return NULL;
    }
    g->file = mf;
    return g;
}

void gguf_close(gguf_file *g) {
    if (!g) return;
    for (int i = 0; i < g->n_kv; i++) {
        free((char *)g->kvs[i].key);
        if (g->kvs[i].value.type == GGUF_ARRAY) free_array(&g->kvs[i].value.arr);
    }
    for (int i = 0; i < g->n_tensors; i++) free((char *)g->tensors[i].name);
    free(g->kvs);
    free(g->tensors);
    free(g->kv_by_key);
    free(g->tensor_by_name);
    mapped_file_close(&g->file);
    free(g);
}

/* ---- lookups ------------------------------------------------------------ */

uint32_t gguf_alignment(const gguf_file *g) { return g->alignment; }
uint64_t gguf_data_offset(const gguf_file *g) { return g->data_offset; }
int gguf_kv_count(const gguf_file *g) { return g->n_kv; }
int gguf_tensor_count(const gguf_file *g) { return g->n_tensors; }

const gguf_kv *gguf_kv_at(const gguf_file *g, int i) { return i >= 0 && i < g->n_kv ? &g->kvs[i] : NULL; }

const gguf_tensor *gguf_tensor_at(const gguf_file *g, int i) {
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const gguf_kv *gguf_find_kv(const gguf_file *g, const char *key) {
    gguf_kv probe = {.key = key};
    const gguf_kv *p = &probe;
    const gguf_kv **hit = bsearch(&p, g->kv_by_key, (size_t)g->n_kv, sizeof *g->kv_by_key, kv_key_cmp);
    return hit ? *hit : NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *g, const char *name) {
    gguf_tensor probe = {.name = name};
    const gguf_tensor *p = &probe;
    const gguf_tensor **hit =
        bsearch(&p, g->tensor_by_name, (size_t)g->n_tensors, sizeof *g->tensor_by_name, tensor_name_cmp);
    return hit ? *hit : NULL;
}

/* The key's value when it has type `want`; else a message naming both types. */
static const gguf_value *typed_value(const gguf_file *g, const char *key, gguf_value_type want, errbuf *err) {
    const gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv) {
        errbuf_set(err, "key \"%s\" is missing", key);
        return NULL;
    }
    if (kv->value.type != want) {
        errbuf_set(err, "key \"%s\" is a %s, not %s", key, gguf_value_type_name(kv->value.type),
                   gguf_value_type_name(want));
        return NULL;
    }
    return &kv->value;
}

static bool is_unsigned(gguf_value_type t) { return t == GGUF_U8 || t == GGUF_U16 || t == GGUF_U32 || t == GGUF_U64; }
static bool is_signed(gguf_value_type t) { return t == GGUF_I8 || t == GGUF_I16 || t == GGUF_I32 || t == GGUF_I64; }

/* An integer of any width in [lo, hi]; `want` names the C type for messages. */
static bool get_integer(const gguf_file *g, const char *key, int64_t lo, int64_t hi, const char *want, int64_t *out,
                        errbuf *err) {
    const gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv) return errbuf_set(err, "key \"%s\" is missing", key);
    const gguf_value *v = &kv->value;
    if (is_unsigned(v->type)) {
        if (v->u64 > (uint64_t)hi)
            return errbuf_set(err, "key \"%s\" = %" PRIu64 " does not fit in %s", key, v->u64, want);
        *out = (int64_t)v->u64;
        return true;
    }
    if (is_signed(v->type)) {
        if (v->i64 < lo || v->i64 > hi)
            return errbuf_set(err, "key \"%s\" = %" PRId64 " does not fit in %s", key, v->i64, want);
        *out = v->i64;
        return true;
    }
    return errbuf_set(err, "key \"%s\" is a %s, not %s", key, gguf_value_type_name(v->type), want);
}

bool gguf_get_u32(const gguf_file *g, const char *key, uint32_t *out, errbuf *err) {
    int64_t v;
    if (!get_integer(g, key, 0, UINT32_MAX, "u32", &v, err)) return false;
    *out = (uint32_t)v;
    return true;
}

bool gguf_get_i32(const gguf_file *g, const char *key, int32_t *out, errbuf *err) {
    int64_t v;
    if (!get_integer(g, key, INT32_MIN, INT32_MAX, "i32", &v, err)) return false;
    *out = (int32_t)v;
    return true;
}

bool gguf_get_f32(const gguf_file *g, const char *key, float *out, errbuf *err) {
    const gguf_value *v = typed_value(g, key, GGUF_F32, err);
    if (v) *out = (float)v->f64;
    return v != NULL;
}

bool gguf_get_bool(const gguf_file *g, const char *key, bool *out, errbuf *err) {
    const gguf_value *v = typed_value(g, key, GGUF_BOOL, err);
    if (v) *out = v->b;
    return v != NULL;
}

bool gguf_get_string(const gguf_file *g, const char *key, gguf_string *out, errbuf *err) {
    const gguf_value *v = typed_value(g, key, GGUF_STRING, err);
    if (v) *out = v->str;
    return v != NULL;
}

bool gguf_get_array(const gguf_file *g, const char *key, int elem_type, const gguf_array **out, errbuf *err) {
    const gguf_value *v = typed_value(g, key, GGUF_ARRAY, err);
    if (!v) return false;
    if (elem_type >= 0 && v->arr.type != (gguf_value_type)elem_type)
        return errbuf_set(err, "key \"%s\" is an array of %s, not of %s", key, gguf_value_type_name(v->arr.type),
                          gguf_value_type_name((gguf_value_type)elem_type));
    *out = &v->arr;
    return true;
}
