/* facet generate — one prompt, in process, on this machine (T = 1).
 * Tokenize -> prefill in chunks -> decode until a stop token or the limit,
 * printing text as it is produced. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/args.h"
#include "common/alloc.h"
#include "cli/commands.h"
#include "cluster/device_args.h"
#include "cluster/local_cluster.h"
#include "model/make_model.h"
#include "common/clock.h"
#include "common/log.h"
#include "tokenizer/chat.h"
#include "worker/dist_sampler.h"
#include "worker/engine.h"
#include "worker/sampler.h"

#define BLOCK_SIZE 16
#define PREFILL_CHUNK 512

typedef struct gen_options {
    const char *model, *prompt;
    bool chat, json, ignore_eos, logits;
    int max_tokens, threads;
    int tp;      /* 0: in process; N: through a coordinator and N worker processes */
    const char *comm; /* with tp: the workers' all-reduce (auto, nccl, ipc, host) */
    sampling_params sp;
    device_choice dev;
} gen_options;

typedef struct gen_result {
    token_list prompt, output;
    const char *finish_reason;
    double prefill_s, decode_s;
    int decode_steps;
    strbuf text;
    float *logits; /* --logits: (rows, vocab), the logits each output token was sampled from */
    int logit_rows, vocab;
    const char *kernels;
    int threads;
    double weight_bytes;
} gen_result;

static void keep_logits(gen_result *r, const float *row, int vocab) {
    r->vocab = vocab;
    r->logits = xrealloc(r->logits, (size_t)(r->logit_rows + 1) * vocab * sizeof *r->logits);
    memcpy(r->logits + (size_t)r->logit_rows * vocab, row, (size_t)vocab * sizeof *row);
    r->logit_rows++;
}

/* ---- generation ----------------------------------------------------------- */

static bool encode_prompt(const tokenizer *tok, const gen_options *o, token_list *ids, errbuf *err) {
    if (!o->prompt || !*o->prompt) return errbuf_set(err, "the prompt is empty (give --prompt TEXT)");
    if (o->chat) {
        chat_message m = {"user", o->prompt, strlen(o->prompt)};
        return chat_encode(tok, &m, 1, ids, err);
    }
    if (tokenizer_bos_id(tok) >= 0) token_list_push(ids, tokenizer_bos_id(tok));
    return tokenizer_encode(tok, o->prompt, strlen(o->prompt), 0, ids, err);
}

static bool is_stop(const gen_options *o, const tokenizer *tok, const gemma_config *cfg, int32_t id) {
    if (o->ignore_eos) return false;
    if (id == cfg->eos_id || id == tokenizer_eos_id(tok)) return true;
    return o->chat && id == chat_end_of_turn_id(tok);
}

/* Runs the prompt through the model in chunks; logits of its last token. */
static bool prefill(engine *e, const int32_t *blocks, int n_blocks, const token_list *prompt, float *logits,
                    errbuf *err) {
    for (int start = 0; start < prompt->n; start += PREFILL_CHUNK) {
        int n = prompt->n - start < PREFILL_CHUNK ? prompt->n - start : PREFILL_CHUNK;
        bool last = start + n == prompt->n;
        engine_seq seq = {start, n, blocks, n_blocks, last ? 1 : 0};
        engine_batch b = {1, &seq, prompt->ids + start};
        if (!engine_forward(e, &b, logits, err)) return false;
    }
    return true;
}

static void emit_text(const gen_options *o, detokenizer *d, int32_t id, gen_result *r) {
    size_t before = r->text.len;
    detokenizer_push(d, id, &r->text);
    if (!o->json && r->text.len > before) {
        fwrite(r->text.data + before, 1, r->text.len - before, stdout);
        fflush(stdout);
    }
}

static bool generate(engine *e, const tokenizer *tok, const gen_options *o, gen_result *r, errbuf *err) {
    const gemma_config *cfg = &engine_weights(e)->cfg;
    int max_tokens = o->max_tokens;
    if (r->prompt.n + max_tokens > cfg->max_position) max_tokens = cfg->max_position - r->prompt.n;
    int n_blocks = (r->prompt.n + max_tokens + BLOCK_SIZE - 1) / BLOCK_SIZE;
    int32_t *blocks = xmalloc((size_t)n_blocks * sizeof *blocks);
    for (int i = 0; i < n_blocks; i++) blocks[i] = i;
    float *logits = xmalloc((size_t)cfg->vocab_size * sizeof *logits);
    tp_layout whole = tp_layout_make(cfg, 0, 1);
    seen_tokens seen; /* for penalties: the same sampler as a worker's */
    seen_tokens_init(&seen);
    for (int i = 0; i < r->prompt.n; i++) seen_tokens_add(&seen, r->prompt.ids[i], false);
    detokenizer detok;
    detokenizer_init(&detok, tok);
    r->finish_reason = "length";

    double t0 = clock_now_s();
    bool ok = prefill(e, blocks, n_blocks, &r->prompt, logits, err);
    int pos = r->prompt.n; /* where the next token goes */
    for (int i = 0; ok && i < max_tokens; i++) {
        if (o->logits) keep_logits(r, logits, cfg->vocab_size);
        sample_request q = {o->sp, (uint64_t)pos, seen_tokens_view(&seen), 0};
        dist_sample_result res;
        dist_sample(NULL, &whole, cfg->vocab_size, logits, 1, &q, &res, NULL, err);
        int32_t id = res.token;
        seen_tokens_add(&seen, id, true);
        if (id < 0) {
            ok = errbuf_set(err, "the model produced a NaN or infinite logit at position %d (are the weights corrupt?)", pos);
            break;
        }
        if (i == 0) r->prefill_s = clock_now_s() - t0, t0 = clock_now_s();
        token_list_push(&r->output, id);
        if (is_stop(o, tok, cfg, id)) {
            r->finish_reason = "stop";
            break;
        }
        emit_text(o, &detok, id, r);
        if (i + 1 == max_tokens) break;
        engine_seq seq = {pos, 1, blocks, n_blocks, 1};
        engine_batch b = {1, &seq, &id};
        ok = engine_forward(e, &b, logits, err);
        r->decode_steps++;
        pos++;
    }
    if (ok && r->output.n == 0) r->prefill_s = clock_now_s() - t0, t0 = clock_now_s();
    r->decode_s = clock_now_s() - t0;
    size_t before = r->text.len;
    detokenizer_flush(&detok, &r->text);
    if (!o->json && r->text.len > before) fwrite(r->text.data + before, 1, r->text.len - before, stdout);
    seen_tokens_free(&seen);
    free(logits);
    free(blocks);
    return ok;
}

static cJSON *int_array(const token_list *l) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < l->n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(l->ids[i]));
    return a;
}

static void print_json(const gen_result *r) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "prompt_ids", int_array(&r->prompt));
    cJSON_AddItemToObject(root, "output_ids", int_array(&r->output));
    cJSON_AddStringToObject(root, "text", r->text.data ? r->text.data : "");
    cJSON_AddStringToObject(root, "finish_reason", r->finish_reason);
    cJSON *t = cJSON_AddObjectToObject(root, "timings");
    cJSON_AddNumberToObject(t, "prefill_tokens", r->prompt.n);
    cJSON_AddNumberToObject(t, "prefill_ms", r->prefill_s * 1e3);
    cJSON_AddNumberToObject(t, "prefill_tokens_per_s", r->prefill_s > 0 ? r->prompt.n / r->prefill_s : 0);
    cJSON_AddNumberToObject(t, "decode_tokens", r->decode_steps);
    cJSON_AddNumberToObject(t, "decode_ms", r->decode_s * 1e3);
    cJSON_AddNumberToObject(t, "decode_tokens_per_s", r->decode_s > 0 ? r->decode_steps / r->decode_s : 0);
    if (r->weight_bytes > 0) cJSON_AddNumberToObject(t, "weight_bytes", r->weight_bytes); /* read once per decode step */
    cJSON_AddNumberToObject(t, "threads", r->threads);
    cJSON_AddStringToObject(t, "kernels", r->kernels);
    if (r->logits) {
        cJSON *rows = cJSON_AddArrayToObject(root, "logits");
        for (int i = 0; i < r->logit_rows; i++)
            cJSON_AddItemToArray(rows, cJSON_CreateFloatArray(r->logits + (size_t)i * r->vocab, r->vocab));
    }
    char *s = cJSON_PrintUnformatted(root);
    printf("%s\n", s);
    free(s);
    cJSON_Delete(root);
}

static bool load_engine(const char *dir, const gen_options *o, int ctx_tokens, int prompt_tokens, engine **out,
                        errbuf *err) {
    engine_options eo = {
        .n_threads = o->threads,
        .max_batch_tokens = prompt_tokens < PREFILL_CHUNK ? (prompt_tokens > 0 ? prompt_tokens : 1) : PREFILL_CHUNK,
        .block_size = BLOCK_SIZE,
        .n_blocks = (ctx_tokens + BLOCK_SIZE - 1) / BLOCK_SIZE,
    };
    char note[ERRBUF_LEN];
    if (!backend_apply_device(&o->dev, 0, &eo, note, sizeof note, err)) return false;
    if (note[0]) log_info("%s", note);
    *out = engine_load(dir, 0, 1, &eo, err);
    return *out != NULL;
}

/* ---- through a coordinator and N local worker processes (--tp N) ------------- */

static void cluster_options(const gen_options *o, const char *dir, int prompt_len, coordinator_options *co) {
    coordinator_options_default(co);
    co->model_dir = dir;
    co->tp = o->tp;
    co->comm = o->comm;
    co->grpc_port = 0;
    co->http_port = -1;
    co->kv_blocks = (prompt_len + o->max_tokens + BLOCK_SIZE - 1) / BLOCK_SIZE + 1; /* just this request */
    co->block_size = BLOCK_SIZE;
    co->max_batch_tokens = PREFILL_CHUNK;
}

/* One event of the stream into the result (text printed as it comes). */
static bool take_event(const gen_options *o, detokenizer *d, const gen_event *ev, gen_result *r, errbuf *err) {
    if (ev->kind == GEN_EVENT_ERROR) return errbuf_set(err, "%s", ev->message);
    if (ev->kind == GEN_EVENT_TOKEN) {
        if (ev->logits) keep_logits(r, ev->logits, r->vocab);
        token_list_push(&r->output, ev->token);
        emit_text(o, d, ev->token, r);
    } else { /* DONE */
        if (ev->token >= 0) token_list_push(&r->output, ev->token);
        if (ev->logits) keep_logits(r, ev->logits, r->vocab);
        r->finish_reason = ev->finish;
    }
    return true;
}

static bool generate_via_cluster(const gen_options *o, const char *dir, const tokenizer *tok, const gemma_config *cfg,
                                 gen_result *r, errbuf *err) {
    coordinator_options co;
    cluster_options(o, dir, r->prompt.n, &co);
    local_cluster lc;
    local_cluster_options lo = {.worker_threads = o->threads, .dev = &o->dev, .quiet = true};
    if (!local_cluster_start(&lc, &co, &lo, err)) return false;
    bool ok = local_cluster_wait_ready(&lc, 600000, err);
    int32_t stop[2];
    int n_stop = 0;
    if (o->chat && chat_end_of_turn_id(tok) >= 0) stop[n_stop++] = chat_end_of_turn_id(tok);
    if (tokenizer_eos_id(tok) >= 0 && tokenizer_eos_id(tok) != cfg->eos_id) stop[n_stop++] = tokenizer_eos_id(tok);
    gen_request req = {.prompt = r->prompt.ids, .prompt_len = r->prompt.n, .sampling = o->sp, .max_tokens = o->max_tokens,
                       .ignore_eos = o->ignore_eos, .stop_ids = stop, .n_stop_ids = n_stop, .return_logits = o->logits};
    r->vocab = cfg->vocab_size;
    r->threads = lc.worker_threads;
    r->kernels = "workers";
    r->finish_reason = "length";
    gen_stream *s = NULL;
    int code = 0;
    double t0 = clock_now_s();
    if (ok) ok = (s = coordinator_submit(lc.co, &req, &code, err)) != NULL;
    detokenizer d;
    detokenizer_init(&d, tok);
    bool done = false;
    while (ok && !done) {
        gen_event ev;
        if (!gen_stream_next(s, &ev, 1000)) continue;
        ok = take_event(o, &d, &ev, r, err);
        if (r->output.n == 1 && r->prefill_s == 0) r->prefill_s = clock_now_s() - t0, t0 = clock_now_s();
        done = ev.kind != GEN_EVENT_TOKEN;
        free(ev.logits);
    }
    r->decode_s = clock_now_s() - t0;
    r->decode_steps = r->output.n > 1 ? r->output.n - 1 : 0;
    size_t before = r->text.len;
    detokenizer_flush(&d, &r->text);
    if (!o->json && r->text.len > before) fwrite(r->text.data + before, 1, r->text.len - before, stdout);
    gen_stream_release(s);
    local_cluster_stop(&lc);
    return ok;
}

/* ---- the command ------------------------------------------------------------------ */

static tokenizer *load_model_tokenizer(const char *dir, gemma_config *cfg, errbuf *err) {
    if (!model_read_config(dir, cfg, err)) return NULL;
    tokenizer *tok = model_open_tokenizer(dir, err);
    if (tok && tokenizer_vocab_size(tok) > cfg->vocab_size) {
        errbuf_set(err, "%s: the tokenizer has %d pieces but the model's vocab_size is %d", dir, tokenizer_vocab_size(tok),
                   cfg->vocab_size);
        tokenizer_free(tok);
        tok = NULL;
    }
    return tok;
}

static bool generate_in_process(const gen_options *o, const char *dir, const tokenizer *tok, const gemma_config *cfg,
                                gen_result *r, errbuf *err) {
    engine *e = NULL;
    int budget = r->prompt.n + o->max_tokens < cfg->max_position ? r->prompt.n + o->max_tokens : cfg->max_position;
    bool ok = load_engine(dir, o, budget, r->prompt.n, &e, err) && generate(e, tok, o, r, err);
    if (e) {
        r->threads = engine_threads(e);
        r->kernels = engine_ops_name(e);
        r->weight_bytes = (double)engine_weights(e)->bytes;
    }
    engine_free(e);
    return ok;
}

static int run(const gen_options *o) {
    errbuf err;
    engine_device kind;
    char note[ERRBUF_LEN];
    /* a device that cannot start is the first thing to say, before any model is made or loaded */
    if (!comm_arg_check(o->comm, &err) || !backend_choose_device(o->dev.device, &kind, note, sizeof note, &err)) {
        fprintf(stderr, "facet generate: %s\n", err.msg);
        return 1;
    }
    const char *dir = o->model ? o->model : default_model_dir();
    if (!o->model && !ensure_default_model(dir, &err)) {
        fprintf(stderr, "facet generate: %s\n", err.msg);
        return 1;
    }
    gemma_config cfg;
    tokenizer *tok = load_model_tokenizer(dir, &cfg, &err);
    gen_result r = {0};
    strbuf_init(&r.text);
    bool ok = tok && encode_prompt(tok, o, &r.prompt, &err);
    if (ok && r.prompt.n >= cfg.max_position)
        ok = errbuf_set(&err, "the prompt is %d tokens long; the model's context is %d tokens, which leaves no room to generate",
                        r.prompt.n, cfg.max_position);
    if (ok && o->tp > 0 && !tp_check(&cfg, o->tp, &err)) ok = false;
    if (ok) ok = o->tp > 0 ? generate_via_cluster(o, dir, tok, &cfg, &r, &err) : generate_in_process(o, dir, tok, &cfg, &r, &err);
    if (ok && o->json) print_json(&r);
    if (ok && !o->json) {
        printf("\n");
        fflush(stdout);
        log_info("%d prompt tokens in %.3f s (%.1f tok/s); %d decode steps in %.3f s (%.2f tok/s); %d threads, %s kernels",
                 r.prompt.n, r.prefill_s, r.prefill_s > 0 ? r.prompt.n / r.prefill_s : 0.0, r.decode_steps, r.decode_s,
                 r.decode_s > 0 ? r.decode_steps / r.decode_s : 0.0, r.threads, r.kernels);
    }
    tokenizer_free(tok);
    token_list_free(&r.prompt);
    token_list_free(&r.output);
    strbuf_free(&r.text);
    free(r.logits);
    if (ok) return 0;
    fprintf(stderr, "facet generate: %s\n", err.msg);
    return 1;
}

int cmd_generate(int argc, char **argv) {
    gen_options o = {.max_tokens = 32, .sp = sampling_params_greedy(), .comm = "auto"};
    device_args_default(&o.dev);
    const arg_spec specs[] = {
        {"model", ARG_STRING, &o.model, "checkpoint directory or GGUF file (default: the built-in tiny model)", 0, 0, NULL},
        {"prompt", ARG_STRING, &o.prompt, "the prompt text", 0, 0, NULL},
        {"chat", ARG_FLAG, &o.chat, "wrap the prompt in Gemma's chat template; stop at <end_of_turn>", 0, 0, NULL},
        {"max-tokens", ARG_INT, &o.max_tokens, "tokens to generate at most (default 32)", 1, 1 << 20, NULL},
        {"temperature", ARG_FLOAT, &o.sp.temperature, "0 = greedy (default); > 0 samples", 0, 100, NULL},
        {"top-k", ARG_INT, &o.sp.top_k, "sample among the k most likely tokens (0 = all)", 0, 1 << 24, NULL},
        {"top-p", ARG_FLOAT, &o.sp.top_p, "sample within this probability mass (default 1)", 1e-6, 1, NULL},
        {"seed", ARG_U64, &o.sp.seed, "sampling seed (default 0)", 0, 0, NULL},
        {"min-p", ARG_FLOAT, &o.sp.min_p, "keep tokens at least this fraction as likely as the best (0 = off)", 0, 1, NULL},
        {"presence-penalty", ARG_FLOAT, &o.sp.presence_penalty, "subtract from logits of tokens already generated", -2, 2, NULL},
        {"frequency-penalty", ARG_FLOAT, &o.sp.frequency_penalty, "subtract, times their count, from generated tokens' logits", -2, 2, NULL},
        {"repetition-penalty", ARG_FLOAT, &o.sp.repetition_penalty, "divide (or multiply) logits of tokens seen (1 = off)", 0.01, 10, NULL},
        {"ignore-eos", ARG_FLAG, &o.ignore_eos, "do not stop at end-of-sequence (benchmarks)", 0, 0, NULL},
        {"threads", ARG_INT, &o.threads, "CPU threads (default: one per CPU)", 1, 1024, NULL},
        {"json", ARG_FLAG, &o.json, "print one JSON object: ids, text, finish reason, timings", 0, 0, NULL},
        {"tp", ARG_INT, &o.tp, "run through a coordinator and N local worker processes (tensor parallel)", 1, 64, NULL},
        {"comm", ARG_STRING, &o.comm, "with --tp: the workers' all-reduce, auto (default), nccl, ipc or host", 0, 0, NULL},
        {"logits", ARG_FLAG, &o.logits, "with --json: the logits each output token was sampled from", 0, 0, NULL},
        DEVICE_ARG_SPECS(o.dev),
    };
    static const arg_command cmd = {"generate", "facet generate [--model DIR] --prompt TEXT [options]",
                   "Generates text for one prompt, printing it as it is produced: in this process, or with --tp N\n"
                   "through a coordinator and N worker processes on this machine."};
    int rc = args_handle(&cmd, specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != ARGS_CONTINUE) return rc;
    if (o.json) log_set_quiet(1);
    return run(&o);
}
