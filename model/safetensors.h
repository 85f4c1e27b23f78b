/* safetensors.h — reading and writing the safetensors format.
 *
 * File layout: u64 little-endian N, then N bytes of JSON header
 *   {"name": {"dtype": "BF16", "shape": [r, c], "data_offsets": [b, e]}, ...,
 *    "__metadata__": {"k": "v"}}
 * then the data region; offsets are relative to its start.
 *
 * The reader trusts nothing: every length, shape and offset is checked for
 * range and overflow, tensors must lie inside the data region, must not
 * overlap, and must be exactly numel * dtype_size bytes. */
#ifndef FACET_MODEL_SAFETENSORS_H
#define FACET_MODEL_SAFETENSORS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/error.h"
#include "common/mapped_file.h"
#include "common/dtype.h"

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER (100u << 20) /* the format's own limit: 100 MB */

typedef struct st_tensor {
    char *name;
    dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    uint64_t numel;
    uint64_t nbytes;
    const uint8_t *data; /* (nbytes) inside the mapped file */
} st_tensor;

typedef struct safetensors {
    mapped_file file; /* empty when parsed from a caller's buffer */
    st_tensor *tensors;
    int n_tensors;
} safetensors;

/* Parses a complete file image (header + data). `buf` must outlive `st`.
 * This is the fuzz target's entry point. */
bool safetensors_parse(safetensors *st, const uint8_t *buf, size_t size, errbuf *err);

/* Memory-maps and parses a file; errors name the file. */
bool safetensors_open(safetensors *st, const char *path, errbuf *err);
void safetensors_close(safetensors *st);

const st_tensor *safetensors_find(const safetensors *st, const char *name);

/* ---- writing ------------------------------------------------------------
 * Declare every tensor, write the header, then write each tensor's bytes in
 * declaration order (so multi-GB files stream without being held in memory). */
typedef struct st_writer {
    int n, cap;
    struct st_writer_entry {
        char *name;
        dtype dtype;
        int ndim;
        int64_t shape[ST_MAX_DIMS];
        uint64_t nbytes;
    } *entries;
} st_writer;

void st_writer_init(st_writer *w);
void st_writer_free(st_writer *w);
void st_writer_add(st_writer *w, const char *name, dtype t, int ndim, const int64_t *shape);
bool st_writer_write_header(const st_writer *w, FILE *f, errbuf *err);

#endif
