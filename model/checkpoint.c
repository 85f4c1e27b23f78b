#include "model/checkpoint.h"
#include "common/alloc.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/mapped_file.h"
#include "model/gguf_config.h"
#include "model/gguf_tokenizer.h"

bool checkpoint_path(const char *dir, const char *name, char *out, size_t out_len) {
    int n = snprintf(out, out_len, "%s/%s", dir, name);
    return n >= 0 && (size_t)n < out_len;
}

bool checkpoint_confine(const char *path, const char *root, char *out, size_t len, errbuf *err) {
    char real_root[PATH_MAX], real[PATH_MAX];
    if (!realpath(root, real_root)) return errbuf_set(err, "model root %s: %s", root, strerror(errno));
    if (!realpath(path, real)) return errbuf_set(err, "%s: %s", path, strerror(errno));
    size_t n = strlen(real_root);
    bool under = strcmp(real_root, "/") == 0 || (strncmp(real, real_root, n) == 0 && (real[n] == '\0' || real[n] == '/'));
    if (!under) return errbuf_set(err, "%s is outside the model root %s (after following links): refused", path, root);
    if (strlen(real) >= len) return errbuf_set(err, "%s: path too long", path);
    snprintf(out, len, "%s", real);
    return true;
}

/* A file the checkpoint is about to read: under the root, when there is one. */
static bool confined(const checkpoint *ck, const char *path, errbuf *err) {
    char real[CHECKPOINT_PATH_MAX];
    return !ck->root[0] || checkpoint_confine(path, ck->root, real, sizeof real, err);
}

static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* A shard name from the index must be a plain file name in the directory. */
static bool safe_shard_name(const char *name) {
    return *name && !strchr(name, '/') && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

static bool open_file(checkpoint *ck, const char *name, errbuf *err) {
    char path[CHECKPOINT_PATH_MAX];
    if (!checkpoint_path(ck->dir, name, path, sizeof path)) return errbuf_set(err, "path too long");
    if (!confined(ck, path, err)) return false;
    ck->files = xrealloc(ck->files, (size_t)(ck->n_files + 1) * sizeof *ck->files);
    if (!safetensors_open(&ck->files[ck->n_files], path, err)) return false;
    ck->n_files++;
    return true;
}

/* Sharded checkpoints: open every file the index's weight_map names, and
 * check that each listed tensor is where the index says. */
static bool open_sharded(checkpoint *ck, const char *index_path, errbuf *err) {
    if (!confined(ck, index_path, err)) return false;
    char *text = file_read_all(index_path, NULL, 64u << 20, err);
    if (!text) return false;
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *map = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    bool ok = false;
    if (!cJSON_IsObject(map)) {
        errbuf_set(err, "%s: not valid JSON with a \"weight_map\" object", index_path);
        goto out;
    }
    /* distinct file names, in order of first appearance */
    const char **names = NULL;
    int n_names = 0;
    for (const cJSON *e = map->child; e; e = e->next) {
        if (!cJSON_IsString(e) || !safe_shard_name(e->valuestring)) {
            errbuf_set(err, "%s: weight_map entry \"%.100s\" does not name a file in the directory", index_path,
                       e->string ? e->string : "");
            free(names);
            goto out;
        }
        int k = 0;
        while (k < n_names && strcmp(names[k], e->valuestring) != 0) k++;
        if (k == n_names) {
            names = xrealloc(names, (size_t)(n_names + 1) * sizeof *names);
            names[n_names++] = e->valuestring;
        }
    }
    for (int k = 0; k < n_names; k++) {
        if (!open_file(ck, names[k], err)) {
            free(names);
            goto out;
        }
    }
    for (const cJSON *e = map->child; e; e = e->next) {
        int k = 0;
        while (strcmp(names[k], e->valuestring) != 0) k++;
        if (!safetensors_find(&ck->files[k], e->string)) {
            errbuf_set(err, "%s: the index puts tensor \"%.200s\" in %s, which does not contain it", index_path,
                       e->string, e->valuestring);
            free(names);
            goto out;
        }
    }
    free(names);
    ok = true;
out:
    cJSON_Delete(root);
    return ok;
}

bool model_path_is_gguf(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* A GGUF tensor as the loader sees every tensor: shape in HF order (rows,
 * columns), a facet dtype (0 for a ggml type facet cannot compute with). */
static st_tensor tensor_of_gguf(const gguf_tensor *t) {
    st_tensor s = {.name = (char *)t->name, .dtype = dtype_from_ggml(t->type), .ndim = t->n_dims,
                   .numel = t->n_elems, .nbytes = t->nbytes, .data = t->data};
    for (int i = 0; i < t->n_dims; i++) s.shape[i] = t->ne[t->n_dims - 1 - i];
    return s;
}

static bool open_gguf(checkpoint *ck, const char *path, errbuf *err) {
    ck->gguf = gguf_open(path, err);
    if (!ck->gguf) return false;
    if (!gguf_gemma_config(ck->gguf, &ck->config, err)) {
        errbuf_prefix(err, "%s", path);
        checkpoint_close(ck);
        return false;
    }
    ck->n_gguf_tensors = gguf_tensor_count(ck->gguf);
    ck->gguf_tensors = xcalloc((size_t)(ck->n_gguf_tensors ? ck->n_gguf_tensors : 1), sizeof *ck->gguf_tensors);
    for (int i = 0; i < ck->n_gguf_tensors; i++) ck->gguf_tensors[i] = tensor_of_gguf(gguf_tensor_at(ck->gguf, i));
    ck->norms_hold_one = true; /* llama.cpp's converter adds Gemma's 1 to every norm weight */
    return true;
}

static bool open_checkpoint(checkpoint *ck, const char *dir, const char *root, errbuf *err) {
    memset(ck, 0, sizeof *ck);
    if (strlen(dir) >= sizeof ck->dir) return errbuf_set(err, "checkpoint path too long");
    snprintf(ck->dir, sizeof ck->dir, "%s", dir);
    if (root) {
        if (strlen(root) >= sizeof ck->root) return errbuf_set(err, "model root path too long");
        snprintf(ck->root, sizeof ck->root, "%s", root);
        if (!confined(ck, dir, err)) return false;
    }
    if (model_path_is_gguf(dir)) return open_gguf(ck, dir, err);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return errbuf_set(err, "%s: neither a checkpoint directory nor a GGUF file", dir);

    char path[CHECKPOINT_PATH_MAX];
    if (!checkpoint_path(dir, "config.json", path, sizeof path)) return errbuf_set(err, "path too long");
    if (file_exists(path) && !confined(ck, path, err)) return false;
    if (!config_load(&ck->config, path, err)) {
        if (!file_exists(path)) errbuf_set(err, "%s: no config.json", dir);
        else errbuf_prefix(err, "%s", dir);
        return false;
    }
    char index[CHECKPOINT_PATH_MAX];
    checkpoint_path(dir, "model.safetensors.index.json", index, sizeof index);
    bool ok;
    if (file_exists(index)) {
        ok = open_sharded(ck, index, err);
    } else {
        checkpoint_path(dir, "model.safetensors", path, sizeof path);
        if (!file_exists(path)) {
            checkpoint_close(ck);
            return errbuf_set(err, "%s: neither model.safetensors nor model.safetensors.index.json is present", dir);
        }
        ok = open_file(ck, "model.safetensors", err);
    }
    if (!ok) checkpoint_close(ck);
    return ok;
}

bool checkpoint_open(checkpoint *ck, const char *dir, errbuf *err) { return open_checkpoint(ck, dir, NULL, err); }

bool checkpoint_open_under(checkpoint *ck, const char *dir, const char *root, errbuf *err) {
    return open_checkpoint(ck, dir, root, err);
}

void checkpoint_close(checkpoint *ck) {
    for (int i = 0; i < ck->n_files; i++) safetensors_close(&ck->files[i]);
    free(ck->files);
    ck->files = NULL;
    ck->n_files = 0;
    free(ck->gguf_tensors);
    ck->gguf_tensors = NULL;
    ck->n_gguf_tensors = 0;
    gguf_close(ck->gguf);
    ck->gguf = NULL;
}

const st_tensor *checkpoint_find(const checkpoint *ck, const char *name) {
    for (int i = 0; i < ck->n_files; i++) {
        const st_tensor *t = safetensors_find(&ck->files[i], name);
        if (t) return t;
    }
    for (int i = 0; i < ck->n_gguf_tensors; i++)
        if (strcmp(ck->gguf_tensors[i].name, name) == 0) return &ck->gguf_tensors[i];
    return NULL;
}

void checkpoint_tensor_name(const checkpoint *ck, const tensor_spec *spec, int layer, char *out, int out_len) {
    if (ck->gguf)
        tensor_gguf_name(spec, layer, out, out_len);
    else
        tensor_name(spec, &ck->config, layer, out, out_len);
}

bool model_read_config(const char *path, gemma_config *cfg, errbuf *err) {
    if (model_path_is_gguf(path)) {
        gguf_file *g = gguf_open(path, err); /* its errors name the file */
        if (!g) return false;
        bool ok = gguf_gemma_config(g, cfg, err);
        if (!ok) errbuf_prefix(err, "%s", path);
        gguf_close(g);
        return ok;
    }
    char file[CHECKPOINT_PATH_MAX];
    if (!checkpoint_path(path, "config.json", file, sizeof file)) return errbuf_set(err, "%s: path too long", path);
    return config_load(cfg, file, err) || errbuf_prefix(err, "%s", path);
}

tokenizer *model_open_tokenizer(const char *path, errbuf *err) {
    if (model_path_is_gguf(path)) {
        gguf_file *g = gguf_open(path, err);
        if (!g) return NULL;
        tokenizer *tok = tokenizer_from_gguf(g, err);
        if (!tok) errbuf_prefix(err, "%s", path);
        gguf_close(g); /* the tokenizer keeps copies */
        return tok;
    }
    char file[CHECKPOINT_PATH_MAX];
    if (!checkpoint_path(path, "tokenizer.model", file, sizeof file)) {
        errbuf_set(err, "%s: path too long", path);
        return NULL;
    }
    return tokenizer_load(file, err);
}
