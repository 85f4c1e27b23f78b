/* facet bench — benchmarks. `comm`: all-reduce over Gloo (comm/bench_comm.c);
 * `model`: the engine alone, decode and prefill against their rooflines
 * (cli/bench_model.c). The serving benchmarks come with the bench issue. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "comm/bench_comm.h"

int cmd_bench(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "comm") == 0) return bench_comm_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "model") == 0) return bench_model_main(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: facet bench comm|model [options]   (facet bench comm --help, facet bench model --help)\n\n"
               "comm:  all-reduce time and bandwidth over Gloo on this machine, in nccl-tests columns.\n"
               "model: the engine alone (CPU or CUDA): decode tok/s per batch and prefill tok/s per length,\n"
               "       each next to its roofline; --random-weights --preset 2b|7b needs no checkpoint.\n");
        return 0;
    }
    fprintf(stderr, "facet bench: %s%s (available: comm, model)\n", argc >= 2 ? "unknown benchmark " : "which benchmark?",
            argc >= 2 ? argv[1] : "");
    return 2;
}
