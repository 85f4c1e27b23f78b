/* mapped_file.h — read-only memory maps of checkpoint files. */
#ifndef FACET_COMMON_MAPPED_FILE_H
#define FACET_COMMON_MAPPED_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

typedef struct mapped_file {
    const uint8_t *data; /* (size) bytes, NULL when size == 0 */
    size_t size;
} mapped_file;

bool mapped_file_open(mapped_file *mf, const char *path, errbuf *err);
void mapped_file_close(mapped_file *mf);

/* Reads a whole (small) file into a NUL-terminated heap buffer. */
char *file_read_all(const char *path, size_t *size_out, size_t max_size, errbuf *err);

/* Writes a buffer to a file; creates or truncates it. */
bool file_write_all(const char *path, const void *data, size_t size, errbuf *err);

#endif
