#include "model/make_model.h"
#include "common/alloc.h"
#include "tokenizer/tokenizer.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mapped_file.h"
#include "common/numeric.h"
#include "common/rng.h"
#include "common/strbuf.h"
#include "common/threadpool.h"
#include "tokenizer/vocab_builder.h"
#include "model/checkpoint.h"
#include "model/safetensors.h"
#include "model/tensors.h"

#define CHUNK_ELEMS (1u << 20)
#define INIT_STD 0.02f      /* HF's initializer_range for Gemma */
#define NORM_INIT_STD 0.1f  /* norms get small random w, so (1 + w) is exercised */

bool make_dirs(const char *path, errbuf *err) {
    char buf[CHECKPOINT_PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return errbuf_set(err, "path too long");
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return errbuf_set(err, "mkdir %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return errbuf_set(err, "mkdir %s: %s", buf, strerror(errno));
    return true;
}

/* ---- random numbers: a splitmix64 stream per (seed, tensor, chunk) -------- */

static float uniform01(uint64_t *s) { return ((float)(splitmix64_next(s) >> 40) + 0.5f) * (1.0f / 16777216.0f); }

typedef struct {
    int index;   /* position in write order: keys the random stream */
    char name[160];
    int ndim;
    int64_t shape[2];
    uint64_t numel;
    bool is_norm;
} planned_tensor;

typedef struct {
    const planned_tensor *t;
    uint64_t seed;
    uint64_t first_chunk;
    dtype dtype;
    uint8_t *buf;
    uint64_t n; /* elements in this batch */
} fill_job;

static void fill_chunk(void *p, int task, int thread) {
    (void)thread;
    const fill_job *j = p;
    uint64_t begin = (uint64_t)task * CHUNK_ELEMS, end = begin + CHUNK_ELEMS < j->n ? begin + CHUNK_ELEMS : j->n;
    uint64_t s = j->seed ^ ((uint64_t)j->t->index << 40) ^ (j->first_chunk + (uint64_t)task);
    splitmix64_next(&s);
    float std = j->t->is_norm ? NORM_INIT_STD : INIT_STD;
    for (uint64_t i = begin; i < end; i += 2) {
        float r = sqrtf(-2.0f * logf(uniform01(&s))), a = 6.2831853f * uniform01(&s);
        float v[2] = {std * r * cosf(a), std * r * sinf(a)};
        for (uint64_t k = 0; k < 2 && i + k < end; k++) {
            uint64_t e = i + k;
            if (j->dtype == DTYPE_BF16) ((bf16_t *)j->buf)[e] = f32_to_bf16(v[k]);
            else if (j->dtype == DTYPE_F32) ((float *)j->buf)[e] = v[k];
            else ((f16_t *)j->buf)[e] = f32_to_f16(v[k]);
        }
    }
}

/* Streams one tensor's random values to f in batches generated in parallel. */
static bool write_tensor(FILE *f, threadpool *tp, const planned_tensor *t, uint64_t seed, dtype dt, errbuf *err) {
    const uint64_t batch_chunks = 64;
    size_t esz = dtype_size(dt);
    uint8_t *buf = xmalloc(batch_chunks * CHUNK_ELEMS * esz);
    for (uint64_t done = 0, chunk = 0; done < t->numel; chunk += batch_chunks) {
        uint64_t n = t->numel - done < batch_chunks * CHUNK_ELEMS ? t->numel - done : batch_chunks * CHUNK_ELEMS;
        fill_job j = {t, seed, chunk, dt, buf, n};
        threadpool_run(tp, (int)((n + CHUNK_ELEMS - 1) / CHUNK_ELEMS), fill_chunk, &j);
        if (fwrite(buf, esz, n, f) != n) {
            free(buf);
            return errbuf_set(err, "writing %s: %s", t->name, strerror(errno));
        }
        done += n;
    }
    free(buf);
    return true;
}

static int plan_tensors(const gemma_config *cfg, planned_tensor **out) {
    int n = 0;
    for (int kind = 0; kind < TENSOR_KIND_COUNT; kind++)
        if (tensor_present(&TENSOR_TABLE[kind], cfg)) n += TENSOR_TABLE[kind].per_layer ? cfg->num_layers : 1;
    planned_tensor *ts = xcalloc((size_t)n, sizeof *ts);
    int k = 0;
    for (int kind = 0; kind < TENSOR_KIND_COUNT; kind++) {
        const tensor_spec *spec = &TENSOR_TABLE[kind];
        if (!tensor_present(spec, cfg)) continue;
        int layers = spec->per_layer ? cfg->num_layers : 1;
        for (int l = 0; l < layers; l++) {
            planned_tensor *t = &ts[k];
            t->index = k++;
            tensor_name(spec, cfg, l, t->name, sizeof t->name);
            shard_slice s = tensor_shard(spec, cfg, 0, 1);
            t->ndim = spec->ndim;
            t->shape[0] = s.full[0];
            t->shape[1] = s.full[1];
            t->numel = (uint64_t)s.full[0] * (uint64_t)(spec->ndim > 1 ? s.full[1] : 1);
            t->is_norm = spec->ndim == 1;
        }
    }
    *out = ts;
    return n;
}

static bool write_file(const char *path, const planned_tensor *ts, int first, int last, uint64_t seed, dtype dt,
                       threadpool *tp, errbuf *err) {
    st_writer w;
    st_writer_init(&w);
    for (int i = first; i < last; i++) st_writer_add(&w, ts[i].name, dt, ts[i].ndim, ts[i].shape);
    FILE *f = fopen(path, "wb");
    bool ok = f != NULL;
    if (!ok) errbuf_set(err, "%s: %s", path, strerror(errno));
    ok = ok && st_writer_write_header(&w, f, err);
    for (int i = first; ok && i < last; i++) ok = write_tensor(f, tp, &ts[i], seed, dt, err);
    if (f && fclose(f) != 0 && ok) ok = errbuf_set(err, "%s: %s", path, strerror(errno));
    st_writer_free(&w);
    return ok;
}

/* HF's sharded layout: model-0000i-of-0000n.safetensors + index. */
static bool write_sharded(const char *dir, const planned_tensor *ts, int n, uint64_t limit, uint64_t seed, dtype dt,
                          threadpool *tp, errbuf *err) {
    int *shard_of = xcalloc((size_t)n, sizeof *shard_of);
    int n_shards = 1;
    uint64_t size = 0, total = 0;
    for (int i = 0; i < n; i++) {
        uint64_t b = ts[i].numel * dtype_size(dt);
        if (size > 0 && size + b > limit) n_shards++, size = 0;
        shard_of[i] = n_shards - 1;
        size += b;
        total += b;
    }
    bool ok = true;
    strbuf idx;
    strbuf_init(&idx);
    strbuf_printf(&idx, "{\n  \"metadata\": {\"total_size\": %llu},\n  \"weight_map\": {\n", (unsigned long long)total);
    for (int s = 0, first = 0; ok && s < n_shards; s++) {
        int last = first;
        while (last < n && shard_of[last] == s) last++;
        char name[64], path[CHECKPOINT_PATH_MAX];
        snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", s + 1, n_shards);
        checkpoint_path(dir, name, path, sizeof path);
        ok = write_file(path, ts, first, last, seed, dt, tp, err);
        for (int i = first; i < last; i++)
            strbuf_printf(&idx, "    \"%s\": \"%s\"%s\n", ts[i].name, name, i + 1 < n ? "," : "");
        first = last;
    }
    strbuf_append_str(&idx, "  }\n}\n");
    char path[CHECKPOINT_PATH_MAX];
    checkpoint_path(dir, "model.safetensors.index.json", path, sizeof path);
    ok = ok && file_write_all(path, idx.data, idx.len, err);
    strbuf_free(&idx);
    free(shard_of);
    return ok;
}

/* Gemma's chat template as its HF checkpoints carry it (tokenizer_config.json). */
static const char k_gemma_chat_template[] =
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}";

/* tokenizer_config.json as real Gemma checkpoints have it: the special and
 * user-defined pieces marked special (so other tools, llama.cpp's converter
 * among them, treat <start_of_turn> as one token), BOS added, the template. */
static bool write_tokenizer_config(const char *dir, const tokenizer *tok, errbuf *err) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddBoolToObject(root, "add_bos_token", true);
    cJSON_AddBoolToObject(root, "add_eos_token", false);
    cJSON *added = cJSON_AddObjectToObject(root, "added_tokens_decoder");
    for (int id = 0; id < tokenizer_vocab_size(tok); id++) {
        piece_type t = tokenizer_piece_type(tok, id);
        if (t != PIECE_CONTROL && t != PIECE_UNKNOWN && t != PIECE_USER_DEFINED) continue;
        size_t len;
        const char *piece = tokenizer_piece(tok, id, &len);
        char key[16];
        snprintf(key, sizeof key, "%d", id);
        cJSON *e = cJSON_AddObjectToObject(added, key);
        char *text = xstrndup(piece, len);
        cJSON_AddStringToObject(e, "content", text);
        free(text);
        cJSON_AddBoolToObject(e, "lstrip", false);
        cJSON_AddBoolToObject(e, "normalized", false);
        cJSON_AddBoolToObject(e, "rstrip", false);
        cJSON_AddBoolToObject(e, "single_word", false);
        cJSON_AddBoolToObject(e, "special", true);
    }
    cJSON_AddStringToObject(root, "bos_token", "<bos>");
    cJSON_AddStringToObject(root, "eos_token", "<eos>");
    cJSON_AddStringToObject(root, "pad_token", "<pad>");
    cJSON_AddStringToObject(root, "unk_token", "<unk>");
    cJSON_AddStringToObject(root, "chat_template", k_gemma_chat_template);
    cJSON_AddStringToObject(root, "tokenizer_class", "GemmaTokenizer");
    cJSON_AddNumberToObject(root, "model_max_length", 1000000000000000019884624838656.0);
    char *json = cJSON_Print(root);
    cJSON_Delete(root);
    char path[CHECKPOINT_PATH_MAX];
    checkpoint_path(dir, "tokenizer_config.json", path, sizeof path);
    bool ok = file_write_all(path, json, strlen(json), err);
    free(json);
    return ok;
}

static bool write_tokenizer(const char *dir, int vocab, errbuf *err) {
    uint8_t *buf = NULL;
    size_t len = 0;
    if (!vocab_build_gemma_like(vocab, &buf, &len, err)) return false;
    char path[CHECKPOINT_PATH_MAX];
    checkpoint_path(dir, "tokenizer.model", path, sizeof path);
    bool ok = file_write_all(path, buf, len, err);
    tokenizer *tok = ok ? tokenizer_parse(buf, len, err) : NULL;
    ok = tok && write_tokenizer_config(dir, tok, err);
    tokenizer_free(tok);
    free(buf);
    return ok;
}

bool make_model(const make_model_options *opt, errbuf *err) {
    gemma_config cfg;
    if (!config_preset(&cfg, opt->preset))
        return errbuf_set(err, "unknown preset \"%s\" (choose tiny, 2b or 7b)", opt->preset);
    if (opt->layers > 0) cfg.num_layers = opt->layers;
    if (opt->kv_heads > 0) {
        if (cfg.num_heads % opt->kv_heads != 0)
            return errbuf_set(err, "--kv-heads %d does not divide the %d attention heads of %s", opt->kv_heads, cfg.num_heads,
                              opt->preset);
        cfg.num_kv_heads = opt->kv_heads;
    }
    snprintf(cfg.torch_dtype, sizeof cfg.torch_dtype, "%s",
             opt->dtype == DTYPE_F32 ? "float32" : opt->dtype == DTYPE_F16 ? "float16" : "bfloat16");
    if (!make_dirs(opt->out_dir, err)) return false;
    if (!write_tokenizer(opt->out_dir, cfg.vocab_size, err)) return false;
    if (opt->tokenizer_only) return true;

    char path[CHECKPOINT_PATH_MAX];
    char *json = config_to_json(&cfg);
    checkpoint_path(opt->out_dir, "config.json", path, sizeof path);
    bool ok = file_write_all(path, json, strlen(json), err);
    free(json);
    if (!ok) return false;

    planned_tensor *ts;
    int n = plan_tensors(&cfg, &ts);
    threadpool *tp = threadpool_create(0);
    if (opt->shard_mb > 0) {
        ok = write_sharded(opt->out_dir, ts, n, (uint64_t)opt->shard_mb << 20, opt->seed, opt->dtype, tp, err);
    } else {
        checkpoint_path(opt->out_dir, "model.safetensors", path, sizeof path);
        ok = write_file(path, ts, 0, n, opt->seed, opt->dtype, tp, err);
    }
    threadpool_free(tp);
    free(ts);
    return ok;
}

/* ---- the default model ---------------------------------------------------- */

/* rm -r of a directory make_model wrote (files only, one level) */
static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[CHECKPOINT_PATH_MAX];
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.' && snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < (int)sizeof path) unlink(path);
    closedir(d);
    rmdir(dir);
}

const char *default_model_dir(void) {
    static char dir[CHECKPOINT_PATH_MAX];
    const char *home = getenv("FACET_HOME");
    if (home && *home) snprintf(dir, sizeof dir, "%s/models/tiny", home);
    else snprintf(dir, sizeof dir, "%s/.cache/facet/models/tiny", getenv("HOME") ? getenv("HOME") : ".");
    return dir;
}

bool ensure_default_model(const char *dir, errbuf *err) {
    char cfg[CHECKPOINT_PATH_MAX];
    struct stat st;
    if (checkpoint_path(dir, "config.json", cfg, sizeof cfg) && stat(cfg, &st) == 0) return true;
    /* made in a directory of its own, then renamed into place, so that processes starting
     * together (a test suite, serve's workers) never read a half-written model */
    char tmp[CHECKPOINT_PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp-%d", dir, (int)getpid()) >= (int)sizeof tmp)
        return errbuf_set(err, "%s: path too long", dir);
    log_info("making the built-in tiny model (random weights) at %s", dir);
    make_model_options opt = {.preset = "tiny", .seed = 0, .out_dir = tmp, .dtype = DTYPE_BF16};
    if (!make_model(&opt, err)) return false;
    if (rename(tmp, dir) == 0) return true;
    int e = errno;
    remove_tree(tmp);
    if (stat(cfg, &st) == 0) return true; /* another process finished first */
    return errbuf_set(err, "cannot move the tiny model into %s: %s", dir, strerror(e));
}
