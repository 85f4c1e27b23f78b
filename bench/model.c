/* facet bench model — the engine alone, no server: decode tokens/s at
 * several batch sizes and prefill tokens/s at several prompt lengths, each
 * next to its roofline from ceilings measured on this machine:
 *   decode  (memory-bound): a step reads every weight once plus the KV cache
 *           of every sequence, so tok/s <= batch * bandwidth / bytes per step;
 *   prefill (compute-bound): 2 FLOPs per weight per token plus attention,
 *           so tok/s <= tokens * GEMM rate / FLOPs.
 * Works on checkpoints or, with --random-weights --preset 2b|7b, on
 * full-size random weights made in memory (on the GPU for CUDA).
 * Steps are timed whole, the way a worker runs them: the logits copied to
 * the host (the CPU engine; a CUDA engine with --host-logits), or, on a GPU,
 * each row summarized on the device for a greedy pick and only the
 * summaries copied back (protocol/sample_rows.h). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "common/alloc.h"
#include "bench/metrics.h"
#include "common/args.h"
#include "cluster/device_args.h"
#include "common/clock.h"
#include "common/log.h"
#include "kernels/cpu/roofline.h"
#include "kernels/cuda/api.h"
#include "worker/engine.h"

#define BENCH_BLOCK 16
#define MAX_POINTS 16
#define GREEDY_ROWS_MAX 4096 /* the largest decode batch bench model takes */

typedef struct bench_opts {
    const char *model, *preset, *batches, *prefills;
    bool random_weights, json, host_logits;
    int context, steps, threads;
    uint64_t seed;
    device_choice dev;
} bench_opts;

typedef struct bench_point {
    const char *phase; /* "decode" or "prefill" */
    int size;          /* batch (decode) or prompt tokens (prefill) */
    int context;       /* positions already cached per sequence */
    double ms_per_step, tok_s, roofline_tok_s;
} bench_point;

int bench_parse_int_list(const char *s, int *out, int max) {
    int n = 0;
    while (s && *s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > (1 << 20)) return -1;
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return n;
}

/* Sequence s of a batch owns blocks [s * per_seq, (s + 1) * per_seq). */
static void make_tables(int32_t *tables, int n_seqs, int per_seq) {
    for (int i = 0; i < n_seqs * per_seq; i++) tables[i] = i;
}

static int token_of(int seq, int pos, int vocab) { return (int)((1u + (unsigned)seq * 7919u + (unsigned)pos * 104729u) % (unsigned)vocab); }

/* Fills `context` positions of n_seqs sequences, chunked to the step budget. */
static bool prefill_context(engine *e, int n_seqs, int context, const int32_t *tables, int per_seq, float *logits,
                            errbuf *err) {
    int V = engine_weights(e)->cfg.vocab_size, budget = engine_max_batch_tokens(e);
    int32_t *tokens = xmalloc((size_t)budget * sizeof *tokens);
    bool ok = true;
    for (int s = 0; s < n_seqs && ok; s++) {
        for (int p = 0; p < context && ok; p += budget) {
            int n = context - p < budget ? context - p : budget;
            for (int i = 0; i < n; i++) tokens[i] = token_of(s, p + i, V);
            engine_seq q = {p, n, tables + (size_t)s * per_seq, per_seq, 1};
            engine_batch b = {1, &q, tokens};
            ok = engine_forward(e, &b, logits, err);
        }
    }
    free(tokens);
    return ok;
}

/* One decode step as a worker runs it: logits to the host, or greedy row summaries made on the device. */
static bool decode_step(engine *e, const engine_batch *b, bool host_logits, float *logits, errbuf *err) {
    if (host_logits || !engine_summarizes_on_device(e)) return engine_forward(e, b, logits, err);
    sample_request reqs[GREEDY_ROWS_MAX];
    for (int i = 0; i < b->n_seqs; i++) reqs[i] = (sample_request){.params = sampling_params_greedy(), .position = (uint64_t)b->seqs[i].start_pos + 1};
    return engine_forward_summaries(e, b, reqs, (row_layout){0, 0}, logits, err); /* records fit in the logits buffer */
}

static bool bench_decode(engine *e, int batch, int context, int steps, bool host_logits, bench_point *pt, errbuf *err) {
    int bs = BENCH_BLOCK, per_seq = (context + steps + 3 + bs - 1) / bs, V = engine_weights(e)->cfg.vocab_size;
    if ((long)batch * per_seq > engine_kv_blocks(e))
        return errbuf_set(err, "decode at batch %d with context %d needs %d KV blocks; the engine has %d", batch, context,
                          batch * per_seq, engine_kv_blocks(e));
    int32_t *tables = xmalloc((size_t)batch * per_seq * sizeof *tables), *tokens = xmalloc((size_t)batch * sizeof *tokens);
    engine_seq *seqs = xmalloc((size_t)batch * sizeof *seqs);
    float *logits = xmalloc((size_t)batch * engine_weights(e)->tp.vocab_size * sizeof *logits);
    make_tables(tables, batch, per_seq);
    bool ok = prefill_context(e, batch, context, tables, per_seq, logits, err);
    double t0 = 0;
    for (int step = -3; step < steps && ok; step++) { /* 3 warm-up steps: graph capture, plans */
        if (step == 0) t0 = clock_now_s();
        int pos = context + step + 3;
        for (int s = 0; s < batch; s++) {
            seqs[s] = (engine_seq){pos, 1, tables + (size_t)s * per_seq, per_seq, 1};
            tokens[s] = token_of(s, pos, V);
        }
        engine_batch b = {batch, seqs, tokens};
        ok = decode_step(e, &b, host_logits, logits, err);
    }
    double dt = clock_now_s() - t0;
    free(tables), free(tokens), free(seqs), free(logits);
    if (!ok) return false;
    *pt = (bench_point){"decode", batch, context, dt / steps * 1e3, (double)batch * steps / dt, 0};
    return true;
}

static bool bench_prefill(engine *e, int tokens_n, int reps, bench_point *pt, errbuf *err) {
    int bs = BENCH_BLOCK, per_seq = (tokens_n + bs - 1) / bs, V = engine_weights(e)->cfg.vocab_size;
    if (tokens_n > engine_max_batch_tokens(e))
        return errbuf_set(err, "prefill of %d tokens exceeds --max-batch-tokens %d", tokens_n, engine_max_batch_tokens(e));
    if (per_seq > engine_kv_blocks(e)) return errbuf_set(err, "prefill of %d tokens needs %d KV blocks", tokens_n, per_seq);
    int32_t *tables = xmalloc((size_t)per_seq * sizeof *tables), *tokens = xmalloc((size_t)tokens_n * sizeof *tokens);
    float *logits = xmalloc((size_t)engine_weights(e)->tp.vocab_size * sizeof *logits);
    make_tables(tables, 1, per_seq);
    for (int i = 0; i < tokens_n; i++) tokens[i] = token_of(0, i, V);
    engine_seq q = {0, tokens_n, tables, per_seq, 1};
    engine_batch b = {1, &q, tokens};
    bool ok = engine_forward(e, &b, logits, err); /* warm-up */
    double t0 = clock_now_s();
    for (int r = 0; r < reps && ok; r++) ok = engine_forward(e, &b, logits, err);
    double dt = (clock_now_s() - t0) / reps;
    free(tables), free(tokens), free(logits);
    if (!ok) return false;
    *pt = (bench_point){"prefill", tokens_n, 0, dt * 1e3, tokens_n / dt, 0};
    return true;
}

/* Multiply-accumulates per token in the weight matrices this rank holds. */
static double matmul_params(const model_weights *w) {
    const gemma_config *c = &w->cfg;
    const tp_layout *t = &w->tp;
    double d = c->hidden_size, hd = c->head_dim;
    double per_layer = d * hd * (2.0 * t->n_heads + 2.0 * t->n_kv_heads) + 3.0 * d * t->ffn_size;
    return per_layer * c->num_layers + d * t->vocab_size / 1.0; /* + LM head (one row per sequence, counted per token) */
}

/* Seconds a decode step of `batch` sequences with `context` cached positions
 * each cannot beat: the weights once plus every sequence's KV cache. */
static double decode_floor_s(const engine *e, int batch, double context, double gbs) {
    const model_weights *w = engine_weights(e);
    const gemma_config *c = &w->cfg;
    double elem = engine_device_kind(e) == ENGINE_CUDA ? 2.0 : 4.0; /* KV cache: bf16 on GPUs, fp32 on CPUs */
    double kv_per_pos = 2.0 * c->num_layers * w->tp.n_kv_heads * c->head_dim * elem;
    return ((double)engine_weight_bytes(e) + batch * (context + 1.0) * kv_per_pos) / (gbs * 1e9);
}

/* Seconds a prefill of `seqs` prompts of `tokens` each cannot beat: 2 FLOPs
 * per matrix weight per token, causal attention, one row of logits each. */
static double prefill_floor_s(const engine *e, int seqs, double tokens, double tflops) {
    const model_weights *w = engine_weights(e);
    const gemma_config *c = &w->cfg;
    double lm = (double)c->hidden_size * w->tp.vocab_size;
    double flops = seqs * (2.0 * (matmul_params(w) - lm) * tokens + 2.0 * lm +
                           4.0 * c->num_layers * w->tp.n_heads * c->head_dim * (tokens * (tokens + 1) / 2));
    return flops / (tflops * 1e12);
}

/* Roofline tok/s: decode from bytes per step, prefill from FLOPs. */
static void rooflines(const engine *e, bench_point *pts, int n, double gbs, double tflops) {
    for (int i = 0; i < n; i++) {
        bench_point *p = &pts[i];
        if (strcmp(p->phase, "decode") == 0) p->roofline_tok_s = p->size / decode_floor_s(e, p->size, p->context, gbs);
        else p->roofline_tok_s = p->size / prefill_floor_s(e, 1, p->size, tflops);
    }
}

/* The CPU kernels' arithmetic ceiling: the AVX512_BF16 kernel's dot
 * products (two per product: hi and lo, kernels/cpu/bf16dot.h), or AVX2 FMAs */
static bool cpu_ceiling_is_bf16dot(const engine *e) { return strcmp(engine_ops_name(e), "avx512bf16") == 0; }

/* What the two ceilings measure (which 0: bytes, 1: FLOPs) */
static const char *ceiling_names(const engine *e, int which) {
    if (engine_device_kind(e) == ENGINE_CUDA) return which ? "bf16 GEMM (cuBLASLt)" : "device copy";
    return which ? cpu_ceiling_is_bf16dot(e) ? "bf16 dot products (vdpbf16ps, hi + lo)" : "fp32 FMA" : "CPU read";
}

/* The two ceilings: device copy bandwidth and GEMM rate (CUDA), or the CPU's
 * read bandwidth and FMA (or bf16 dot-product) rate. */
static bool measure_ceilings(const engine *e, const engine_options *eo, double *gbs, double *tflops, errbuf *err) {
    if (engine_device_kind(e) == ENGINE_CUDA) {
        char why[ERRBUF_LEN];
        const cuda_api *api = backend_cuda_api(why, sizeof why);
        if (!api) return errbuf_set(err, "%s", why);
        const gemma_config *c = &engine_weights(e)->cfg;
        *gbs = api->copy_bandwidth_gbs(eo->cuda_device, err);
        *tflops = api->gemm_tflops(eo->cuda_device, 2048, c->intermediate_size, c->hidden_size, err);
        return *gbs > 0 && *tflops > 0;
    }
    threadpool *tp = threadpool_create(engine_threads(e));
    *gbs = cpu_read_bandwidth_gbs(tp, (size_t)512 << 20, 5);
    *tflops = (cpu_ceiling_is_bf16dot(e) ? cpu_bf16dot_gflops(tp) / 2 : cpu_fma_gflops(tp)) / 1e3;
    threadpool_free(tp);
    return true;
}

static void print_table(const bench_opts *o, const engine *e, const char *what, const bench_point *pts, int n,
                        double gbs, double tflops) {
    printf("facet bench model: %s, %s, T=1\n", what, engine_ops_name(e));
    printf("ceilings (measured): %.0f GB/s %s, %.3g TFLOP/s %s; weights %.2f GB\n", gbs, ceiling_names(e, 0), tflops,
           ceiling_names(e, 1), engine_weight_bytes(e) / 1e9);
    printf("%-8s %8s %8s %10s %11s %14s %9s\n", "phase", "size", "context", "ms/step", "tok/s", "roofline tok/s",
           "% roof");
    for (int i = 0; i < n; i++)
        printf("%-8s %8d %8d %10.3f %11.1f %14.1f %8.1f%%\n", pts[i].phase, pts[i].size, pts[i].context,
               pts[i].ms_per_step, pts[i].tok_s, pts[i].roofline_tok_s, 100.0 * pts[i].tok_s / pts[i].roofline_tok_s);
    (void)o;
}

static void print_json(const engine *e, const char *what, const bench_point *pts, int n, double gbs, double tflops) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", what);
    cJSON_AddStringToObject(root, "device", engine_ops_name(e));
    cJSON_AddNumberToObject(root, "bandwidth_gbs", gbs);
    cJSON_AddNumberToObject(root, "tflops", tflops);
    cJSON_AddNumberToObject(root, "weight_bytes", (double)engine_weight_bytes(e));
    cJSON *a = cJSON_AddArrayToObject(root, "points");
    for (int i = 0; i < n; i++) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "phase", pts[i].phase);
        cJSON_AddNumberToObject(p, "size", pts[i].size);
        cJSON_AddNumberToObject(p, "context", pts[i].context);
        cJSON_AddNumberToObject(p, "ms_per_step", pts[i].ms_per_step);
        cJSON_AddNumberToObject(p, "tok_s", pts[i].tok_s);
        cJSON_AddNumberToObject(p, "roofline_tok_s", pts[i].roofline_tok_s);
        cJSON_AddItemToArray(a, p);
    }
    char *s = cJSON_PrintUnformatted(root);
    printf("%s\n", s);
    free(s);
    cJSON_Delete(root);
}

/* --model DIR or --random-weights with a known --preset; else a usage error. */
static bool weights_given(const bench_opts *o, const char *cmd) {
    gemma_config preset;
    if (!o->model && !o->random_weights)
        fprintf(stderr, "facet bench %s: give --model DIR or --random-weights --preset NAME\n", cmd);
    else if (o->random_weights && !config_preset(&preset, o->preset))
        fprintf(stderr, "facet bench %s: unknown preset \"%s\" (choose tiny, 2b or 7b)\n", cmd, o->preset);
    else
        return true;
    return false;
}

static engine *open_engine(const bench_opts *o, int max_tokens, int blocks, engine_options *eo, char *what,
                           size_t what_len, errbuf *err) {
    *eo = (engine_options){.n_threads = o->threads, .max_batch_tokens = max_tokens, .block_size = BENCH_BLOCK,
                           .n_blocks = blocks};
    char note[ERRBUF_LEN];
    if (!backend_apply_device(&o->dev, 0, eo, note, sizeof note, err)) return NULL;
    if (!o->json && note[0]) log_info("%s", note);
    if (o->random_weights) { /* the preset was checked by weights_given */
        gemma_config cfg;
        config_preset(&cfg, o->preset);
        snprintf(what, what_len, "%s (random weights, bf16)", o->preset);
        return engine_create_random(&cfg, 0, 1, o->seed, eo, err);
    }
    snprintf(what, what_len, "%s", o->model);
    return engine_load(o->model, 0, 1, eo, err);
}

int bench_model_main(int argc, char **argv) {
    bench_opts o = {.preset = "2b", .batches = "1,8,32,64", .prefills = "512,2048", .context = 512, .steps = 32,
                    .seed = 1};
    device_args_default(&o.dev);
    const arg_spec specs[] = {
        {"model", ARG_STRING, &o.model, "checkpoint directory or GGUF file", 0, 0, NULL},
        {"random-weights", ARG_FLAG, &o.random_weights, "random weights of --preset's shape, made in memory", 0, 0, NULL},
        {"preset", ARG_STRING, &o.preset, "with --random-weights: tiny, 2b (default) or 7b", 0, 0, NULL},
        {"batch", ARG_STRING, &o.batches, "decode batch sizes, comma-separated (default 1,8,32,64)", 0, 0, NULL},
        {"prefill", ARG_STRING, &o.prefills, "prefill lengths in tokens (default 512,2048)", 0, 0, NULL},
        {"context", ARG_INT, &o.context, "cached positions per sequence while decoding (default 512)", 1, 1 << 20, NULL},
        {"steps", ARG_INT, &o.steps, "timed decode steps per batch size (default 32)", 1, 1 << 20, NULL},
        {"threads", ARG_INT, &o.threads, "CPU threads (default: one per CPU)", 1, 1024, NULL},
        {"seed", ARG_U64, &o.seed, "random-weight seed (default 1)", 0, 0, NULL},
        {"json", ARG_FLAG, &o.json, "print one JSON object instead of the table", 0, 0, NULL},
        {"host-logits", ARG_FLAG, &o.host_logits, "CUDA: copy every decode row's logits to the host, as before device-side sampling", 0, 0, NULL},
        DEVICE_ARG_SPECS(o.dev),
    };
    static const arg_command cmd = {"bench model",
                                    "facet bench model (--model DIR | --random-weights --preset 2b|7b) [options]",
                                    "Times the engine alone: decode tok/s per batch size and prefill tok/s per prompt\n"
                                    "length, each with its roofline from measured ceilings."};
    int rc = args_handle(&cmd, specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != ARGS_CONTINUE) return rc;
    int batches[MAX_POINTS], prefills[MAX_POINTS];
    int nb = bench_parse_int_list(o.batches, batches, MAX_POINTS), np = bench_parse_int_list(o.prefills, prefills, MAX_POINTS);
    if (nb < 0 || np < 0) {
        fprintf(stderr, "facet bench model: --batch and --prefill take comma-separated positive integers\n");
        return 2;
    }
    if (!weights_given(&o, "model")) return 2;
    if (o.json) log_set_quiet(1);
    int max_tokens = 1, max_batch = 1;
    for (int i = 0; i < np; i++) max_tokens = prefills[i] > max_tokens ? prefills[i] : max_tokens;
    for (int i = 0; i < nb; i++) max_batch = batches[i] > max_batch ? batches[i] : max_batch;
    if (max_batch > GREEDY_ROWS_MAX) {
        fprintf(stderr, "facet bench model: --batch sizes go up to %d (got %d)\n", GREEDY_ROWS_MAX, max_batch);
        return 2;
    }
    if (max_batch > max_tokens) max_tokens = max_batch;
    int per_seq = (o.context + o.steps + 3 + BENCH_BLOCK - 1) / BENCH_BLOCK;
    int blocks = max_batch * per_seq;
    for (int i = 0; i < np; i++) blocks = (prefills[i] + BENCH_BLOCK - 1) / BENCH_BLOCK > blocks ? (prefills[i] + BENCH_BLOCK - 1) / BENCH_BLOCK : blocks;

    errbuf err;
    engine_options eo;
    char what[256];
    engine *e = open_engine(&o, max_tokens, blocks, &eo, what, sizeof what, &err);
    bench_point pts[2 * MAX_POINTS];
    int n = 0;
    bool ok = e != NULL;
    for (int i = 0; ok && i < nb; i++) ok = bench_decode(e, batches[i], o.context, o.steps, o.host_logits, &pts[n++], &err);
    for (int i = 0; ok && i < np; i++) ok = bench_prefill(e, prefills[i], 3, &pts[n++], &err);
    double gbs = 0, tflops = 0;
    if (ok) ok = measure_ceilings(e, &eo, &gbs, &tflops, &err);
    if (ok) {
        rooflines(e, pts, n, gbs, tflops);
        if (o.json) print_json(e, what, pts, n, gbs, tflops);
        else print_table(&o, e, what, pts, n, gbs, tflops);
    }
    engine_free(e);
    if (ok) return 0;
    fprintf(stderr, "facet bench model: %s\n", err.msg);
    return 1;
}

/* ---- facet bench latency ------------------------------------------------------------ */

/* One iteration: prefill `batch` prompts of `in` tokens (chunked to the step
 * budget), then `out` decode steps; each timed. */
static bool latency_iteration(engine *e, int batch, int in, int out, double *prefill_s, double *decode_s,
                              errbuf *err) {
    int bs = BENCH_BLOCK, per_seq = (in + out + bs - 1) / bs, V = engine_weights(e)->cfg.vocab_size;
    int budget = engine_max_batch_tokens(e);
    int32_t *tables = xmalloc((size_t)batch * per_seq * sizeof *tables), *tokens = xmalloc((size_t)budget * sizeof *tokens);
    engine_seq *seqs = xmalloc((size_t)batch * sizeof *seqs);
    float *logits = xmalloc((size_t)batch * engine_weights(e)->tp.vocab_size * sizeof *logits);
    make_tables(tables, batch, per_seq);
    bool ok = true;
    double t0 = clock_now_s();
    /* prefill: prompts packed into steps of at most `budget` tokens, split where a step is full */
    for (int s = 0, p = 0; ok && s < batch;) {
        int n_seqs = 0, n_tok = 0;
        while (s < batch && n_tok < budget) {
            int take = in - p < budget - n_tok ? in - p : budget - n_tok;
            for (int i = 0; i < take; i++) tokens[n_tok + i] = token_of(s, p + i, V);
            seqs[n_seqs++] = (engine_seq){p, take, tables + (size_t)s * per_seq, per_seq, p + take == in ? 1 : 0};
            n_tok += take;
            p += take;
            if (p == in) s++, p = 0;
        }
        engine_batch b = {n_seqs, seqs, tokens};
        ok = engine_forward(e, &b, logits, err);
    }
    *prefill_s = clock_now_s() - t0;
    for (int step = 0; ok && step < out; step++) {
        for (int s = 0; s < batch; s++) {
            seqs[s] = (engine_seq){in + step, 1, tables + (size_t)s * per_seq, per_seq, 1};
            tokens[s] = token_of(s, in + step, V);
        }
        engine_batch b = {batch, seqs, tokens};
        double t = clock_now_s();
        ok = engine_forward(e, &b, logits, err);
        decode_s[step] = clock_now_s() - t;
    }
    free(tables), free(tokens), free(seqs), free(logits);
    return ok;
}

int bench_latency_main(int argc, char **argv) {
    bench_opts o = {.preset = "tiny", .seed = 1};
    int batch = 8, in = 32, out = 128, iters = 5, warmup = 1;
    device_args_default(&o.dev);
    const arg_spec specs[] = {
        {"model", ARG_STRING, &o.model, "checkpoint directory or GGUF file", 0, 0, NULL},
        {"random-weights", ARG_FLAG, &o.random_weights, "random weights of --preset's shape, made in memory", 0, 0, NULL},
        {"preset", ARG_STRING, &o.preset, "with --random-weights: tiny (default), 2b or 7b", 0, 0, NULL},
        {"batch-size", ARG_INT, &batch, "sequences (default 8)", 1, 4096, NULL},
        {"input-len", ARG_INT, &in, "prompt tokens per sequence (default 32)", 1, 1 << 20, NULL},
        {"output-len", ARG_INT, &out, "decode steps (default 128)", 1, 1 << 20, NULL},
        {"num-iters", ARG_INT, &iters, "timed iterations (default 5)", 1, 100000, NULL},
        {"num-iters-warmup", ARG_INT, &warmup, "untimed iterations first (default 1)", 0, 100000, NULL},
        {"threads", ARG_INT, &o.threads, "CPU threads (default: one per CPU)", 1, 1024, NULL},
        {"seed", ARG_U64, &o.seed, "random-weight seed (default 1)", 0, 0, NULL},
        {"json", ARG_FLAG, &o.json, "print one JSON object", 0, 0, NULL},
        DEVICE_ARG_SPECS(o.dev),
    };
    static const arg_command cmd = {"bench latency",
                                    "facet bench latency (--model DIR | --random-weights --preset P) [options]",
                                    "Single-batch latency in process: prefill ms and decode ms per token (median, p90,\n"
                                    "p99 over iterations), each beside the roofline of this machine."};
    int rc = args_handle(&cmd, specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != ARGS_CONTINUE) return rc;
    if (!weights_given(&o, "latency")) return 2;
    if (o.json) log_set_quiet(1);
    int budget = batch * in < 2048 ? batch * in : 2048;
    if (budget < batch) budget = batch;
    errbuf err;
    engine_options eo;
    char what[256];
    engine *e = open_engine(&o, budget, batch * ((in + out + BENCH_BLOCK - 1) / BENCH_BLOCK), &eo, what, sizeof what, &err);
    bool ok = e != NULL;
    if (ok && in + out > engine_weights(e)->cfg.max_position)
        ok = errbuf_set(&err, "%d + %d tokens exceed the model's context of %d", in, out, engine_weights(e)->cfg.max_position);
    double *prefill = xmalloc((size_t)iters * sizeof *prefill), *decode = xmalloc((size_t)iters * out * sizeof *decode);
    double *scratch = xmalloc((size_t)out * sizeof *scratch), *iter_total = xmalloc((size_t)iters * sizeof *iter_total);
    for (int i = 0; ok && i < warmup + iters; i++) {
        double p;
        ok = latency_iteration(e, batch, in, out, &p, i < warmup ? scratch : decode + (size_t)(i - warmup) * out, &err);
        if (ok && i >= warmup) {
            prefill[i - warmup] = p;
            double t = p;
            for (int k = 0; k < out; k++) t += decode[(size_t)(i - warmup) * out + k];
            iter_total[i - warmup] = t;
        }
    }
    double gbs = 0, tflops = 0;
    if (ok) ok = measure_ceilings(e, &eo, &gbs, &tflops, &err);
    if (ok) {
        bench_stats ps = bench_stats_of(prefill, (size_t)iters), ds = bench_stats_of(decode, (size_t)iters * out);
        bench_stats ts = bench_stats_of(iter_total, (size_t)iters);
        double p_floor = prefill_floor_s(e, batch, in, tflops) * 1e3;
        double d_floor = decode_floor_s(e, batch, in + out / 2.0, gbs) * 1e3; /* at the mean context */
        if (o.json) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "model", what);
            cJSON_AddStringToObject(j, "device", engine_ops_name(e));
            cJSON_AddNumberToObject(j, "batch_size", batch);
            cJSON_AddNumberToObject(j, "input_len", in);
            cJSON_AddNumberToObject(j, "output_len", out);
            cJSON_AddNumberToObject(j, "num_iters", iters);
            cJSON_AddNumberToObject(j, "bandwidth_gbs", gbs);
            cJSON_AddNumberToObject(j, "tflops", tflops);
            const struct { const char *k; const bench_stats *s; double floor; } rows[] = {
                {"prefill", &ps, p_floor}, {"decode_step", &ds, d_floor}, {"iteration", &ts, 0}};
            for (size_t r = 0; r < 3; r++) {
                cJSON *x = cJSON_AddObjectToObject(j, rows[r].k);
                cJSON_AddNumberToObject(x, "median_ms", rows[r].s->median);
                cJSON_AddNumberToObject(x, "p90_ms", rows[r].s->p90);
                cJSON_AddNumberToObject(x, "p99_ms", rows[r].s->p99);
                cJSON_AddNumberToObject(x, "mean_ms", rows[r].s->mean);
                if (rows[r].floor > 0) cJSON_AddNumberToObject(x, "roofline_ms", rows[r].floor);
            }
            char *s = cJSON_PrintUnformatted(j);
            printf("%s\n", s);
            free(s);
            cJSON_Delete(j);
        } else {
            printf("facet bench latency: %s, %s; batch %d, %d prompt tokens, %d decode steps, %d iterations\n", what,
                   engine_ops_name(e), batch, in, out, iters);
            printf("ceilings (measured): %.0f GB/s %s, %.3g TFLOP/s %s\n", gbs, ceiling_names(e, 0), tflops,
                   ceiling_names(e, 1));
            printf("%-22s %10s %10s %10s %14s %8s\n", "", "median ms", "p90 ms", "p99 ms", "roofline ms", "% roof");
            printf("%-22s %10.3f %10.3f %10.3f %14.3f %7.1f%%\n", "prefill (whole batch)", ps.median, ps.p90, ps.p99,
                   p_floor, 100 * p_floor / ps.median);
            printf("%-22s %10.3f %10.3f %10.3f %14.3f %7.1f%%\n", "decode step", ds.median, ds.p90, ds.p99, d_floor,
                   100 * d_floor / ds.median);
            printf("%-22s %10.3f %10.3f %10.3f\n", "whole iteration", ts.median, ts.p90, ts.p99);
        }
    }
    free(prefill), free(decode), free(scratch), free(iter_total);
    engine_free(e);
    if (ok) return 0;
    fprintf(stderr, "facet bench latency: %s\n", err.msg);
    return 1;
}
