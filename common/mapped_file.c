#include "common/mapped_file.h"
#include "common/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

bool mapped_file_open(mapped_file *mf, const char *path, errbuf *err) {
    memset(mf, 0, sizeof *mf);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errbuf_set(err, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        errbuf_set(err, "%s: %s", path, strerror(errno));
        close(fd);
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return errbuf_set(err, "%s: not a regular file", path);
    }
    mf->size = (size_t)st.st_size;
    if (mf->size > 0) {
        void *p = mmap(NULL, mf->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            errbuf_set(err, "%s: mmap: %s", path, strerror(errno));
            close(fd);
            return false;
        }
        mf->data = p;
    }
    close(fd);
    return true;
}

void mapped_file_close(mapped_file *mf) {
    if (mf->data) munmap((void *)mf->data, mf->size);
    memset(mf, 0, sizeof *mf);
}

char *file_read_all(const char *path, size_t *size_out, size_t max_size, errbuf *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        errbuf_set(err, "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = xmalloc(cap + 1);
    for (;;) {
        if (len == cap) {
            if (cap >= max_size) {
                errbuf_set(err, "%s: larger than %zu bytes", path, max_size);
                free(buf);
                fclose(f);
                return NULL;
            }
            cap *= 2;
            buf = xrealloc(buf, cap + 1);
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) break;
    }
    if (ferror(f)) {
        errbuf_set(err, "%s: read error", path);
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    if (len > max_size) {
        errbuf_set(err, "%s: larger than %zu bytes", path, max_size);
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    if (size_out) *size_out = len;
    return buf;
}

bool file_write_all(const char *path, const void *data, size_t size, errbuf *err) {
    FILE *f = fopen(path, "wb");
    if (!f) return errbuf_set(err, "%s: %s", path, strerror(errno));
    bool ok = fwrite(data, 1, size, f) == size;
    ok = (fclose(f) == 0) && ok;
    if (!ok) return errbuf_set(err, "%s: write failed: %s", path, strerror(errno));
    return true;
}
