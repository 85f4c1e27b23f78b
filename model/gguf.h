/* gguf.h — reading GGUF version 3 files (llama.cpp's model format).
 *
 * File layout, all little-endian:
 *   "GGUF"  u32 version (3)  u64 n_tensors  u64 n_kv
 *   n_kv × { string key, u32 value type, value }
 *   n_tensors × { string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset }
 *   padding to general.alignment (default 32)
 *   data section: each tensor at data start + offset (a multiple of the alignment)
 * where a string is { u64 length, bytes } (no terminator) and an array value
 * is { u32 element type, u64 count, elements } (elements may be arrays).
 *
 * The reader trusts nothing: every count and length is checked against the
 * bytes that remain before anything is allocated, dims products and sizes
 * against overflow, every tensor against its type's block size, the
 * alignment and the end of the file; overlapping tensors, duplicate names
 * and duplicate keys are refused. Errors are one line naming the problem
 * and the key or tensor (non-printable characters shown as '?'), never
 * other bytes of the file. Nothing is copied: values and tensor data point
 * into the file, which lives as long as the gguf_file. */
#ifndef FACET_MODEL_GGUF_H
#define FACET_MODEL_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_STRING (1u << 20)      /* bytes in one metadata string */
#define GGUF_MAX_ARRAY (1u << 24)       /* elements in one array (a 262 144-piece vocabulary fits) */
#define GGUF_MAX_NAME 1024              /* bytes in a key or tensor name */
#define GGUF_MAX_ARRAY_DEPTH 3          /* arrays of arrays of ... */

/* Metadata value types, numbered as in the file. */
typedef enum gguf_value_type {
    GGUF_U8 = 0,
    GGUF_I8 = 1,
    GGUF_U16 = 2,
    GGUF_I16 = 3,
    GGUF_U32 = 4,
    GGUF_I32 = 5,
    GGUF_F32 = 6,
    GGUF_BOOL = 7,
    GGUF_STRING = 8,
    GGUF_ARRAY = 9,
    GGUF_U64 = 10,
    GGUF_I64 = 11,
    GGUF_F64 = 12,
} gguf_value_type;

/* ggml tensor types (ggml.h's ids; the ones facet names in tests and docs). */
enum {
    GGML_TYPE_F32 = 0,
    GGML_TYPE_F16 = 1,
    GGML_TYPE_Q4_0 = 2,
    GGML_TYPE_Q4_1 = 3,
    GGML_TYPE_Q5_0 = 6,
    GGML_TYPE_Q5_1 = 7,
    GGML_TYPE_Q8_0 = 8,
    GGML_TYPE_Q2_K = 10,
    GGML_TYPE_Q3_K = 11,
    GGML_TYPE_Q4_K = 12,
    GGML_TYPE_Q5_K = 13,
    GGML_TYPE_Q6_K = 14,
    GGML_TYPE_Q8_K = 15,
    GGML_TYPE_BF16 = 30,
};

typedef struct gguf_string {
    const char *data; /* (len) bytes in the file, not NUL-terminated */
    uint64_t len;
} gguf_string;

typedef struct gguf_array {
    gguf_value_type type; /* of the elements */
    uint64_t n;
    const uint8_t *data;       /* numbers and bools: (n × element size) bytes, little-endian, in the file */
    gguf_string *strings;      /* GGUF_STRING elements: (n), else NULL */
    struct gguf_array *arrays; /* GGUF_ARRAY elements: (n), else NULL */
} gguf_array;

/* One value. Integers are widened to u64 (unsigned types) or i64 (signed
 * ones), floats to f64 (exactly: f32 -> f64 loses nothing). */
typedef struct gguf_value {
    gguf_value_type type;
    union {
        uint64_t u64; /* U8, U16, U32, U64 */
        int64_t i64;  /* I8, I16, I32, I64 */
        double f64;   /* F32, F64 */
        bool b;       /* BOOL */
        gguf_string str;
        gguf_array arr;
    };
} gguf_value;

typedef struct gguf_kv {
    const char *key; /* NUL-terminated, printable ASCII */
    gguf_value value;
} gguf_kv;

typedef struct gguf_tensor {
    const char *name; /* NUL-terminated */
    int type;         /* ggml type id (gguf_type_name) */
    int n_dims;       /* 1..4 */
    /* ne[0] is the innermost, contiguous dimension: a weight matrix of
     * (rows, in_features) has ne[0] = in_features, ne[1] = rows. Dims past
     * n_dims are 1. */
    int64_t ne[GGUF_MAX_DIMS];
    uint64_t n_elems;
    uint64_t offset; /* from the start of the data section */
    uint64_t nbytes; /* (n_elems / block elements) × block bytes */
    const uint8_t *data; /* (nbytes) inside the file */
} gguf_tensor;

typedef struct gguf_file gguf_file;

/* Memory-maps (read-only) and parses a file; errors name the file. */
gguf_file *gguf_open(const char *path, errbuf *err);
/* Parses a complete file image without copying it: `data` must outlive the
 * result. The fuzz target's entry point. */
gguf_file *gguf_parse(const uint8_t *data, size_t len, errbuf *err);
void gguf_close(gguf_file *g);

uint32_t gguf_alignment(const gguf_file *g);
uint64_t gguf_data_offset(const gguf_file *g); /* where the data section starts in the file */

/* ---- metadata ---- */
int gguf_kv_count(const gguf_file *g);
const gguf_kv *gguf_kv_at(const gguf_file *g, int i); /* file order */
const gguf_kv *gguf_find_kv(const gguf_file *g, const char *key); /* NULL when absent */
const char *gguf_value_type_name(gguf_value_type t); /* "u32", "string", ... */

/* Typed lookups: false, with a message naming the key, when it is missing
 * or has another type. The integer ones take any integer type whose value
 * fits (converters differ on widths); the others want exactly their type. */
bool gguf_get_u32(const gguf_file *g, const char *key, uint32_t *out, errbuf *err);
bool gguf_get_i32(const gguf_file *g, const char *key, int32_t *out, errbuf *err);
bool gguf_get_f32(const gguf_file *g, const char *key, float *out, errbuf *err);
bool gguf_get_bool(const gguf_file *g, const char *key, bool *out, errbuf *err);
bool gguf_get_string(const gguf_file *g, const char *key, gguf_string *out, errbuf *err);
/* elem_type: the element type wanted, or -1 for any. */
bool gguf_get_array(const gguf_file *g, const char *key, int elem_type, const gguf_array **out, errbuf *err);

/* Element i of an array as a value (i < a->n). */
gguf_value gguf_array_at(const gguf_array *a, uint64_t i);

/* ---- tensors ---- */
int gguf_tensor_count(const gguf_file *g);
const gguf_tensor *gguf_tensor_at(const gguf_file *g, int i); /* file order */
const gguf_tensor *gguf_find_tensor(const gguf_file *g, const char *name); /* NULL when absent */

/* "Q4_K", or NULL for an id facet does not know. */
const char *gguf_type_name(int type);
/* Elements per block and bytes per block (1 and 4 for F32); false for an
 * unknown id. */
bool gguf_type_block(int type, int *block_elems, int *block_bytes);

#endif
