/* facet — one binary, subcommands. The code behind each lives in its folder
 * (docs/ARCHITECTURE.md gives the reading order). */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command k_commands[] = {
    {"serve", cmd_serve, "start a coordinator and N local workers, and serve"},
    {"generate", cmd_generate, "generate text for a prompt (in process, or --tp N through local workers)"},
    {"tokenize", cmd_tokenize, "print token ids of stdin lines, like spm_encode"},
    {"make-model", cmd_make_model, "write a random-weight Gemma checkpoint (HF layout)"},
    {"coordinator", cmd_coordinator, "run a coordinator (workers register with it)"},
    {"worker", cmd_worker, "run a worker (registers with a coordinator, holds one rank's shard)"},
    {"certs", cmd_certs, "make a CA and certificates for a cluster's mutual TLS"},
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
