/* facet — one binary, subcommands. The code behind each lives in its folder
 * (docs/ARCHITECTURE.md gives the reading order). */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "kernels/cpu/roofline.h"
#include "kernels/cpu/ops.h"
#include "kernels/cuda/api.h"
#include "worker/backend.h"

#define FACET_VERSION "0.1.0"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

int cmd_info(int argc, char **argv) {
    bool roofline = argc > 1 && strcmp(argv[1], "--roofline") == 0;
    if (argc > 1 && !roofline) {
        fprintf(stderr, "facet info: unknown option %s (only --roofline)\n", argv[1]);
        return 2;
    }
    char note[ERRBUF_LEN] = "";
    engine_device dev = ENGINE_CPU;
    errbuf err;
    backend_choose_device("auto", &dev, note, sizeof note, &err);
    printf("facet %s\n", FACET_VERSION);
    printf("cpu kernels: %s\n", cpu_ops_select()->name);
    printf("device (--device auto): %s\n", note[0] ? note : "cpu");
    if (roofline && dev == ENGINE_CUDA) {
        const cuda_api *api = backend_cuda_api(note, sizeof note);
        double gbs = api->copy_bandwidth_gbs(0, &err), tf = api->gemm_tflops(0, 8192, 8192, 8192, &err);
        if (gbs > 0 && tf > 0)
            printf("GPU 0: device-to-device copy %.0f GB/s (read + write), bf16 GEMM 8192^3 %.0f TFLOP/s (cuBLASLt)\n", gbs, tf);
        else
            printf("GPU 0: cannot measure: %s\n", err.msg);
    }
    if (roofline) {
        threadpool *tp = threadpool_create(0);
        double gbs = cpu_read_bandwidth_gbs(tp, (size_t)1 << 30, 5);
        printf("memory read bandwidth: %.1f GB/s (%d threads, best of 5 passes over 1 GiB)\n", gbs, threadpool_size(tp));
        printf("fp32 FMA rate: %.1f GFLOP/s (%d threads, AVX2, registers only)\n", cpu_fma_gflops(tp), threadpool_size(tp));
        threadpool_free(tp);
    }
    return 0;
}

static const command k_commands[] = {
    {"serve", cmd_serve, "start a coordinator and N local workers, and serve"},
    {"generate", cmd_generate, "generate text for a prompt (in process, or --tp N through local workers)"},
    {"tokenize", cmd_tokenize, "print token ids of stdin lines, like spm_encode"},
    {"make-model", cmd_make_model, "write a random-weight Gemma checkpoint (HF layout)"},
    {"coordinator", cmd_coordinator, "run a coordinator (workers register with it)"},
    {"worker", cmd_worker, "run a worker (registers with a coordinator, holds one rank's shard)"},
    {"bench", cmd_bench, "benchmarks: facet bench comm"},
    {"info", cmd_info, "show the kernels and devices here (--roofline: measure bandwidth and FLOP rate)"},
};

static void usage(FILE *f) {
    fprintf(f, "facet %s — serves Gemma models, tensor-parallel over GPUs and machines\n\n", FACET_VERSION);
    fprintf(f, "usage: facet COMMAND [options]   (facet COMMAND --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof k_commands / sizeof k_commands[0]; i++)
        fprintf(f, "  %-12s %s\n", k_commands[i].name, k_commands[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("facet %s\n", FACET_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof k_commands / sizeof k_commands[0]; i++)
        if (strcmp(argv[1], k_commands[i].name) == 0) return k_commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "facet: unknown command \"%s\" (facet --help lists them)\n", argv[1]);
    return 2;
}
