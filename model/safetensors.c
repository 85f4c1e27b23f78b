#include "model/safetensors.h"
#include "common/alloc.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/numeric.h"

#define MAX_EXACT_JSON_INT 9007199254740992.0 /* 2^53: beyond this a double is not exact */
#define MAX_NAME_LEN 1024

/* A non-negative integer held exactly by a JSON number. */
static bool json_u64(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0) || d > MAX_EXACT_JSON_INT || d != floor(d)) return false;
    *out = (uint64_t)d;
    return true;
}

static bool parse_shape(st_tensor *t, const cJSON *shape, errbuf *err) {
    if (!cJSON_IsArray(shape)) return errbuf_set(err, "\"shape\" is not an array");
    int n = cJSON_GetArraySize(shape);
    if (n > ST_MAX_DIMS) return errbuf_set(err, "%d dimensions (at most %d)", n, ST_MAX_DIMS);
    t->ndim = n;
    uint64_t numel = 1;
    for (int i = 0; i < n; i++) {
        uint64_t dim;
        if (!json_u64(cJSON_GetArrayItem(shape, i), &dim) || dim > INT64_MAX)
            return errbuf_set(err, "shape[%d] is not a non-negative integer", i);
        if (!mul_u64(numel, dim, &numel)) return errbuf_set(err, "shape overflows");
        t->shape[i] = (int64_t)dim;
    }
    t->numel = numel;
    return true;
}

/* One header entry: checks dtype, shape and offsets against the data region. */
static bool parse_entry(st_tensor *t, const cJSON *entry, const uint8_t *data, uint64_t data_size,
                        uint64_t *begin_out, errbuf *err) {
    if (!cJSON_IsObject(entry)) return errbuf_set(err, "entry is not an object");
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
    if (!cJSON_IsString(dt)) return errbuf_set(err, "missing \"dtype\"");
    t->dtype = dtype_from_name(dt->valuestring);
    if (!t->dtype) return errbuf_set(err, "unsupported dtype \"%.32s\"", dt->valuestring);
    if (!parse_shape(t, cJSON_GetObjectItemCaseSensitive(entry, "shape"), err)) return false;

    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
    uint64_t begin, end;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        !json_u64(cJSON_GetArrayItem(offs, 0), &begin) || !json_u64(cJSON_GetArrayItem(offs, 1), &end))
        return errbuf_set(err, "\"data_offsets\" must be two non-negative integers");
    if (begin > end) return errbuf_set(err, "data_offsets [%" PRIu64 ", %" PRIu64 "] are reversed", begin, end);
    if (end > data_size)
        return errbuf_set(err, "data_offsets end %" PRIu64 " lies past the data region (%" PRIu64 " bytes): file truncated?",
                          end, data_size);
    if (!mul_u64(t->numel, dtype_size(t->dtype), &t->nbytes) || t->nbytes != end - begin)
        return errbuf_set(err, "data_offsets span %" PRIu64 " bytes but shape and dtype need %" PRIu64,
                          end - begin, t->nbytes);
    t->data = data + begin;
    *begin_out = begin;
    return true;
}

typedef struct {
    uint64_t begin, end;
    int index;
} span;

static int span_cmp(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : (x->end > y->end);
}

static bool check_no_overlap(const safetensors *st, span *spans, errbuf *err) {
    qsort(spans, (size_t)st->n_tensors, sizeof *spans, span_cmp);
    for (int i = 1; i < st->n_tensors; i++) {
        if (spans[i].begin < spans[i - 1].end)
            return errbuf_set(err, "tensors \"%s\" and \"%s\" overlap in the data region",
                              st->tensors[spans[i - 1].index].name, st->tensors[spans[i].index].name);
    }
    return true;
}

static int name_cmp(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

bool safetensors_parse(safetensors *st, const uint8_t *buf, size_t size, errbuf *err) {
    memset(st, 0, sizeof *st);
    if (size < 8) return errbuf_set(err, "file is %zu bytes, too short for a safetensors header", size);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--) header_len = (header_len << 8) | buf[i];
    /* the length field is the file's first 8 bytes: say what is wrong with it, never its value */
    if (header_len > ST_MAX_HEADER)
        return errbuf_set(err, "its header length field is over the 100 MB limit: not a safetensors file?");
    if (header_len > size - 8)
        return errbuf_set(err, "its header length field points past the end of the file (%zu bytes): truncated, or not a "
                               "safetensors file?",
                          size);
    const uint8_t *data = buf + 8 + header_len;
    uint64_t data_size = size - 8 - header_len;

    cJSON *root = cJSON_ParseWithLength((const char *)buf + 8, (size_t)header_len);
    if (!root) return errbuf_set(err, "header is not valid JSON");
    bool ok = false;
    span *spans = NULL;
    if (!cJSON_IsObject(root)) {
        errbuf_set(err, "header is not a JSON object");
        goto out;
    }
    int n = 0;
    for (const cJSON *e = root->child; e; e = e->next) n++;
    st->tensors = xcalloc((size_t)n + 1, sizeof *st->tensors);
    spans = xcalloc((size_t)n + 1, sizeof *spans);
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!e->string || !*e->string || strlen(e->string) > MAX_NAME_LEN) {
            errbuf_set(err, "header has an empty or over-long tensor name");
            goto out;
        }
        if (strcmp(e->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(e)) {
                errbuf_set(err, "\"__metadata__\" is not an object");
                goto out;
            }
            continue;
        }
        st_tensor *t = &st->tensors[st->n_tensors];
        t->name = xstrdup(e->string);
        st->n_tensors++;
        uint64_t begin = 0;
        if (!parse_entry(t, e, data, data_size, &begin, err)) {
            errbuf_prefix(err, "tensor \"%.200s\"", t->name);
            goto out;
        }
        spans[st->n_tensors - 1] = (span){begin, begin + t->nbytes, st->n_tensors - 1};
    }
    if (!check_no_overlap(st, spans, err)) goto out;
    qsort(st->tensors, (size_t)st->n_tensors, sizeof *st->tensors, name_cmp);
    for (int i = 1; i < st->n_tensors; i++) {
        if (strcmp(st->tensors[i - 1].name, st->tensors[i].name) == 0) {
            errbuf_set(err, "tensor \"%.200s\" appears twice in the header", st->tensors[i].name);
            goto out;
        }
    }
    ok = true;
out:
    free(spans);
    cJSON_Delete(root);
    if (!ok) safetensors_close(st);
    return ok;
}

bool safetensors_open(safetensors *st, const char *path, errbuf *err) {
    mapped_file mf;
    if (!mapped_file_open(&mf, path, err)) return false;
    if (!safetensors_parse(st, mf.data, mf.size, err)) {
        mapped_file_close(&mf);
        return errbuf_prefix(err, "%s", path);
    }
    st->file = mf;
    return true;
}

void safetensors_close(safetensors *st) {
    for (int i = 0; i < st->n_tensors; i++) free(st->tensors[i].name);
    free(st->tensors);
    mapped_file_close(&st->file);
    memset(st, 0, sizeof *st);
}

const st_tensor *safetensors_find(const safetensors *st, const char *name) {
    st_tensor key = {.name = (char *)name};
    return bsearch(&key, st->tensors, (size_t)st->n_tensors, sizeof *st->tensors, name_cmp);
}

/* ---- writer ------------------------------------------------------------- */

void st_writer_init(st_writer *w) { memset(w, 0, sizeof *w); }

void st_writer_free(st_writer *w) {
    for (int i = 0; i < w->n; i++) free(w->entries[i].name);
    free(w->entries);
    memset(w, 0, sizeof *w);
}

void st_writer_add(st_writer *w, const char *name, dtype t, int ndim, const int64_t *shape) {
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 64;
        w->entries = xrealloc(w->entries, (size_t)w->cap * sizeof *w->entries);
    }
    struct st_writer_entry *e = &w->entries[w->n++];
    memset(e, 0, sizeof *e);
    e->name = xstrdup(name);
    e->dtype = t;
    e->ndim = ndim;
    e->nbytes = dtype_size(t);
    for (int i = 0; i < ndim; i++) {
        e->shape[i] = shape[i];
        e->nbytes *= (uint64_t)shape[i];
    }
}

bool st_writer_write_header(const st_writer *w, FILE *f, errbuf *err) {
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
    cJSON_AddStringToObject(meta, "format", "pt");
    uint64_t offset = 0;
    for (int i = 0; i < w->n; i++) {
        const struct st_writer_entry *e = &w->entries[i];
        cJSON *t = cJSON_AddObjectToObject(root, e->name);
        cJSON_AddStringToObject(t, "dtype", dtype_name(e->dtype));
        cJSON *shape = cJSON_AddArrayToObject(t, "shape");
        for (int d = 0; d < e->ndim; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)e->shape[d]));
        cJSON *offs = cJSON_AddArrayToObject(t, "data_offsets");
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)offset));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(offset + e->nbytes)));
        offset += e->nbytes;
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    size_t len = strlen(json);
    size_t padded = (len + 7) & ~(size_t)7; /* keep the data region 8-byte aligned */
    uint8_t lenbuf[8];
    for (int i = 0; i < 8; i++) lenbuf[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    bool ok = fwrite(lenbuf, 1, 8, f) == 8 && fwrite(json, 1, len, f) == len;
    for (size_t i = len; ok && i < padded; i++) ok = fputc(' ', f) != EOF;
    free(json);
    if (!ok) return errbuf_set(err, "writing safetensors header failed");
    return true;
}
