/* facet bench throughput — offline throughput: N prompts of random token
 * ids submitted at once to a coordinator in this process and T local worker
 * processes (the serving path minus HTTP), generating exactly --output-len
 * tokens each. Reports requests/s, total tokens/s and output tokens/s, as
 * vLLM's `vllm bench throughput` does.
 *
 * --random-weights --preset P writes a random checkpoint once, under
 * $FACET_HOME/models/P-random (workers load checkpoints from disk). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/bench.h"
#include "common/alloc.h"
#include "bench/dataset.h"
#include "common/args.h"
#include "cluster/device_args.h"
#include "cluster/local_cluster.h"
#include "model/make_model.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/rng.h"
#include "model/checkpoint.h"

typedef struct tput_opts {
    const char *model, *preset;
    bool random_weights, json;
    int num_prompts, input_len, output_len, tp, threads, max_seqs, max_batch_tokens, kv_blocks;
    uint64_t seed;
    device_choice dev;
} tput_opts;

/* The checkpoint to run: --model, or the preset's random one (made on first use). */
static bool model_dir(const tput_opts *o, char *out, size_t len, errbuf *err) {
    if (!o->random_weights) {
        snprintf(out, len, "%s", o->model);
        return true;
    }
    const char *home = getenv("FACET_HOME");
    int n = home && *home ? snprintf(out, len, "%s/models/%s-random", home, o->preset)
                          : snprintf(out, len, "%s/.cache/facet/models/%s-random", getenv("HOME") ? getenv("HOME") : ".",
                                     o->preset);
    if (n < 0 || (size_t)n >= len) return errbuf_set(err, "the model directory's path is too long");
    char cfg[CHECKPOINT_PATH_MAX];
    struct stat st;
    if (checkpoint_path(out, "config.json", cfg, sizeof cfg) && stat(cfg, &st) == 0) return true;
    log_info("bench: writing a random-weight %s checkpoint to %s (once)", o->preset, out);
    make_model_options mo = {.preset = o->preset, .seed = o->seed, .out_dir = out, .dtype = DTYPE_BF16};
    return make_model(&mo, err);
}

typedef struct tput_result {
    int completed, failed;
    long long input_tokens, output_tokens;
    double seconds;
    char first_error[ERRBUF_LEN];
} tput_result;

/* Submits every prompt, then drains every stream. */
static bool run_all(coordinator *co, const tput_opts *o, int vocab, int bos, tput_result *r, errbuf *err) {
    int n = o->num_prompts, len = o->input_len + 1;
    int32_t *ids = xmalloc((size_t)n * len * sizeof *ids);
    uint64_t rng = o->seed;
    for (int i = 0; i < n; i++) {
        ids[(size_t)i * len] = bos;
        for (int k = 1; k < len; k++) ids[(size_t)i * len + k] = 3 + (int32_t)(splitmix64_next(&rng) % (uint64_t)(vocab - 3));
    }
    gen_stream **s = xcalloc((size_t)n, sizeof *s);
    bool *done = xcalloc((size_t)n, sizeof *done);
    double t0 = clock_now_s();
    for (int i = 0; i < n; i++) {
        gen_request req = {.prompt = ids + (size_t)i * len, .prompt_len = len, .sampling = sampling_params_greedy(),
                           .max_tokens = o->output_len, .ignore_eos = true};
        int code;
        s[i] = coordinator_submit(co, &req, &code, err);
        if (!s[i]) {
            done[i] = true, r->failed++;
            if (!r->first_error[0]) snprintf(r->first_error, sizeof r->first_error, "%s", err->msg);
        }
    }
    int left = n - r->failed;
    while (left > 0) {
        for (int i = 0; i < n; i++) {
            gen_event ev;
            while (!done[i] && gen_stream_next(s[i], &ev, 0)) {
                free(ev.logits);
                if (ev.kind == GEN_EVENT_TOKEN) r->output_tokens++;
                else if (ev.kind == GEN_EVENT_DONE) {
                    r->output_tokens += ev.token >= 0;
                    r->input_tokens += len;
                    r->completed++, done[i] = true, left--;
                } else {
                    if (!r->first_error[0]) snprintf(r->first_error, sizeof r->first_error, "%s", ev.message);
                    r->failed++, done[i] = true, left--;
                }
            }
        }
        if (left > 0) usleep(500);
    }
    r->seconds = clock_now_s() - t0;
    for (int i = 0; i < n; i++)
        if (s[i]) gen_stream_release(s[i]);
    free(s), free(done), free(ids);
    return true;
}

int bench_throughput_main(int argc, char **argv) {
    tput_opts o = {.preset = "tiny", .num_prompts = 64, .input_len = 128, .output_len = 128, .tp = 1, .seed = 0};
    device_args_default(&o.dev);
    const arg_spec specs[] = {
        {"model", ARG_STRING, &o.model, "checkpoint directory or GGUF file", 0, 0, NULL},
        {"random-weights", ARG_FLAG, &o.random_weights, "a random checkpoint of --preset's shape (written once)", 0, 0, NULL},
        {"preset", ARG_STRING, &o.preset, "with --random-weights: tiny (default), 2b or 7b", 0, 0, NULL},
        {"num-prompts", ARG_INT, &o.num_prompts, "prompts submitted at once (default 64)", 1, 1 << 20, NULL},
        {"input-len", ARG_INT, &o.input_len, "prompt tokens after <bos> (default 128)", 1, 1 << 20, NULL},
        {"output-len", ARG_INT, &o.output_len, "tokens generated per prompt (default 128)", 1, 1 << 20, NULL},
        {"tp", ARG_INT, &o.tp, "worker processes (tensor-parallel size, default 1)", 1, 64, NULL},
        {"threads", ARG_INT, &o.threads, "CPU threads per worker (default: CPUs / tp)", 1, 1024, NULL},
        {"max-num-seqs", ARG_INT, &o.max_seqs, "sequences per step (default: the coordinator's)", 1, 1024, NULL},
        {"max-num-batched-tokens", ARG_INT, &o.max_batch_tokens, "tokens per step (default: the coordinator's)", 1, 1 << 20, NULL},
        {"kv-blocks", ARG_INT, &o.kv_blocks, "KV blocks per worker (default: the worker's choice)", 1, 1 << 24, NULL},
        {"seed", ARG_U64, &o.seed, "prompt (and random-weight) seed (default 0)", 0, 0, NULL},
        {"json", ARG_FLAG, &o.json, "print one JSON object", 0, 0, NULL},
        DEVICE_ARG_SPECS(o.dev),
    };
    static const arg_command cmd = {"bench throughput",
                                    "facet bench throughput (--model DIR | --random-weights --preset P) [options]",
                                    "Offline throughput: N prompts at once through a coordinator and --tp local workers."};
    int rc = args_handle(&cmd, specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != ARGS_CONTINUE) return rc;
    if (!o.model && !o.random_weights) {
        fprintf(stderr, "facet bench throughput: give --model DIR or --random-weights --preset NAME\n");
        return 2;
    }
    if (o.json) log_set_quiet(1);
    errbuf err;
    char dir[CHECKPOINT_PATH_MAX];
    gemma_config cfg;
    if (!model_dir(&o, dir, sizeof dir, &err) || !model_read_config(dir, &cfg, &err)) {
        fprintf(stderr, "facet bench throughput: %s\n", err.msg);
        return 1;
    }
    if (o.input_len + 1 + o.output_len > cfg.max_position) {
        fprintf(stderr, "facet bench throughput: %d + 1 + %d tokens exceed the model's context of %d\n", o.input_len,
                o.output_len, cfg.max_position);
        return 2;
    }
    coordinator_options co;
    coordinator_options_default(&co);
    co.model_dir = dir, co.tp = o.tp, co.grpc_port = 0, co.http_port = -1;
    co.max_queue = o.num_prompts > co.max_queue ? o.num_prompts : co.max_queue;
    if (o.max_seqs) co.max_seqs = o.max_seqs;
    if (o.max_batch_tokens) co.max_batch_tokens = o.max_batch_tokens;
    if (o.kv_blocks) co.kv_blocks = o.kv_blocks;
    local_cluster lc;
    tput_result r = {0};
    local_cluster_options lo = {.worker_threads = o.threads, .dev = &o.dev, .quiet = true};
    bool ok = local_cluster_start(&lc, &co, &lo, &err);
    if (ok) {
        ok = local_cluster_wait_ready(&lc, 600000, &err) && run_all(lc.co, &o, cfg.vocab_size, cfg.bos_id, &r, &err);
        local_cluster_stop(&lc);
    }
    if (!ok) {
        fprintf(stderr, "facet bench throughput: %s\n", err.msg);
        return 1;
    }
    double rps = r.completed / r.seconds, tps = (double)(r.input_tokens + r.output_tokens) / r.seconds;
    double ops = (double)r.output_tokens / r.seconds;
    if (o.json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "model", dir);
        cJSON_AddNumberToObject(j, "tp", o.tp);
        cJSON_AddNumberToObject(j, "num_prompts", o.num_prompts);
        cJSON_AddNumberToObject(j, "input_len", o.input_len + 1);
        cJSON_AddNumberToObject(j, "output_len", o.output_len);
        cJSON_AddNumberToObject(j, "completed", r.completed);
        cJSON_AddNumberToObject(j, "failed", r.failed);
        cJSON_AddNumberToObject(j, "elapsed_time", r.seconds);
        cJSON_AddNumberToObject(j, "requests_per_second", rps);
        cJSON_AddNumberToObject(j, "tokens_per_second", tps);
        cJSON_AddNumberToObject(j, "output_tokens_per_second", ops);
        char *s = cJSON_PrintUnformatted(j);
        printf("%s\n", s);
        free(s);
        cJSON_Delete(j);
    } else {
        printf("facet bench throughput: %s, tp=%d, %d prompts of %d tokens, %d generated each\n", dir, o.tp,
               o.num_prompts, o.input_len + 1, o.output_len);
        printf("Throughput: %.2f requests/s, %.2f total tokens/s, %.2f output tokens/s (%d completed, %d failed, %.2f s)\n",
               rps, tps, ops, r.completed, r.failed, r.seconds);
    }
    if (r.failed) fprintf(stderr, "facet bench throughput: %d requests failed; the first: %s\n", r.failed, r.first_error);
    return r.failed ? 1 : 0;
}
