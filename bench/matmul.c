/* facet bench matmul — the CPU matrix kernel alone: the `matmul` of the op
 * table the engine uses (kernels/cpu/ops.h, cpu_ops_select), on the bf16
 * weight shapes of one layer of a preset (q, k, v, o, gate, up, down) and
 * its LM head, at several batch sizes (activation rows).
 *
 * Each shape is timed over copies of its matrix that together exceed the L3
 * (COPIES_BYTES), one copy per pass, made as the engine's random weights are
 * (weights_random_matrix: on huge pages, in the layout the table's matmul
 * reads, cpu_ops.bf16_layout), so weights come from memory as they
 * do in a model; the figure is the median pass. GFLOP/s counts 2 per weight per
 * row; GB/s is weight bytes read per second (what bounds small batches).
 * "layer" is the seven layer shapes together, as one layer of the model runs
 * them (the LM head apart). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "common/alloc.h"
#include "common/args.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/numeric.h"
#include "common/rng.h"
#include "kernels/cpu/ops.h"
#include "model/config.h"
#include "model/weights.h"

#define MAX_BATCHES 16
#define COPIES_BYTES (96u << 20) /* more than this VM's 32 MB L3, three times over */
#define LM_HEAD_MAX_BATCH 64      /* prefill computes logits for the last row only */

typedef struct shape {
    const char *name;
    int rows, cols;
} shape;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median seconds of `reps` passes of y (n, rows) = x (n, cols) · wᵀ; -1 when
 * the weights do not fit in memory. */
static double time_shape(const cpu_ops *ops, threadpool *tp, const shape *s, int n, int reps, uint64_t *state) {
    size_t bytes = (size_t)s->rows * s->cols * sizeof(bf16_t);
    int copies = (int)((COPIES_BYTES + bytes - 1) / bytes);
    if (copies > reps) copies = reps;
    weight_matrix *w = xcalloc((size_t)copies, sizeof *w);
    bool fit = true;
    errbuf err;
    size_t padding = 0;
    for (int c = 0; c < copies && fit; c++) /* in the layout the engine would give them */
        fit = weights_random_matrix(&w[c], s->rows, s->cols, splitmix64_next(state), &err) &&
              weight_matrix_set_layout(&w[c], ops->bf16_layout, tp, &padding, &err);
    if (!fit) {
        for (int c = 0; c < copies; c++) free((void *)w[c].data);
        free(w);
        return -1;
    }
    float *x = xmalloc((size_t)n * s->cols * sizeof *x), *y = xmalloc((size_t)n * s->rows * sizeof *y);
    for (size_t i = 0; i < (size_t)n * s->cols; i++) x[i] = (float)(splitmix64_unit(state) - 0.5);
    double *t = xmalloc((size_t)reps * sizeof *t);
    ops->matmul(tp, y, x, n, &w[0]); /* warm the pool and the code */
    for (int r = 0; r < reps; r++) {
        double t0 = clock_now_s();
        ops->matmul(tp, y, x, n, &w[r % copies]);
        t[r] = clock_now_s() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    double median = t[reps / 2];
    for (int c = 0; c < copies; c++) free((void *)w[c].data);
    free(w), free(x), free(y), free(t);
    return median;
}

int bench_matmul_main(int argc, char **argv) {
    const char *preset = "2b", *batches_s = "1,4,16,64,512";
    int reps = 9, threads = 0;
    uint64_t seed = 1;
    const arg_spec specs[] = {
        {"preset", ARG_STRING, &preset, "the model whose shapes to time: tiny, 2b (default) or 7b", 0, 0, NULL},
        {"batch", ARG_STRING, &batches_s, "activation rows, comma-separated (default 1,4,16,64,512)", 0, 0, NULL},
        {"reps", ARG_INT, &reps, "timed passes per shape and batch; the median is reported (default 9)", 1, 1000, NULL},
        {"threads", ARG_INT, &threads, "CPU threads (default: one per CPU)", 1, 1024, NULL},
        {"seed", ARG_U64, &seed, "seed of the random weights (default 1)", 0, 0, NULL},
    };
    static const arg_command cmd = {"bench matmul", "facet bench matmul [--preset 2b] [--batch 1,4,16,64,512] [options]",
                                    "Times the CPU matrix kernel alone on a preset's bf16 weight shapes: GFLOP/s and\n"
                                    "GB/s of weights per shape and batch size."};
    int rc = args_handle(&cmd, specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != ARGS_CONTINUE) return rc;
    int batches[MAX_BATCHES];
    int nb = bench_parse_int_list(batches_s, batches, MAX_BATCHES);
    gemma_config c;
    if (nb <= 0) {
        fprintf(stderr, "facet bench matmul: --batch takes comma-separated positive integers\n");
        return 2;
    }
    if (!config_preset(&c, preset)) {
        fprintf(stderr, "facet bench matmul: unknown --preset %s (tiny, 2b or 7b)\n", preset);
        return 2;
    }
    const shape shapes[] = {
        {"q", c.num_heads * c.head_dim, c.hidden_size},       {"k", c.num_kv_heads * c.head_dim, c.hidden_size},
        {"v", c.num_kv_heads * c.head_dim, c.hidden_size},    {"o", c.hidden_size, c.num_heads * c.head_dim},
        {"gate", c.intermediate_size, c.hidden_size},         {"up", c.intermediate_size, c.hidden_size},
        {"down", c.hidden_size, c.intermediate_size},         {"lm_head", c.vocab_size, c.hidden_size},
    };
    const int n_layer_shapes = 7, n_shapes = (int)(sizeof shapes / sizeof shapes[0]);
    const cpu_ops *ops = cpu_ops_select();
    threadpool *tp = threadpool_create(threads);
    printf("facet bench matmul: %s shapes, bf16 weights (%s), %s kernels, %d threads, median of %d passes\n", preset,
           ops->bf16_layout == WEIGHT_PANELS ? "in panels" : "row-major",
           ops->name, threadpool_size(tp), reps);
    printf("%6s  %-8s %7s x %-6s %10s %10s %8s\n", "batch", "shape", "rows", "cols", "ms", "GFLOP/s", "GB/s");
    uint64_t state = seed;
    for (int b = 0; b < nb; b++) {
        int n = batches[b];
        double layer_flops = 0, layer_bytes = 0, layer_s = 0;
        for (int i = 0; i < n_shapes; i++) {
            const shape *s = &shapes[i];
            if (i >= n_layer_shapes && n > LM_HEAD_MAX_BATCH) continue;
            double sec = time_shape(ops, tp, s, n, reps, &state);
            if (sec < 0) {
                fprintf(stderr, "facet bench matmul: out of memory for copies of the %s weights (%d x %d)\n", s->name,
                        s->rows, s->cols);
                threadpool_free(tp);
                return 1;
            }
            double flops = 2.0 * n * s->rows * s->cols, bytes = (double)s->rows * s->cols * sizeof(bf16_t);
            if (i < n_layer_shapes) layer_flops += flops, layer_bytes += bytes, layer_s += sec;
            printf("%6d  %-8s %7d x %-6d %10.3f %10.1f %8.1f\n", n, s->name, s->rows, s->cols, sec * 1e3,
                   flops / sec / 1e9, bytes / sec / 1e9);
        }
        printf("%6d  %-8s %18s %10.3f %10.1f %8.1f\n", n, "layer", "", layer_s * 1e3, layer_flops / layer_s / 1e9,
               layer_bytes / layer_s / 1e9);
    }
    threadpool_free(tp);
    return 0;
}
