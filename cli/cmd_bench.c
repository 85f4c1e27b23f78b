/* facet bench — the benchmark family (bench/bench.h, docs/BENCH.md). */
#include <stdio.h>
#include <string.h>

#include "bench/bench.h"
#include "cli/commands.h"
#include "comm/bench_comm.h"

/* bench comm: host buffers over Gloo (comm/), or with --device cuda device buffers (bench/comm_device.c),
 * which takes the rest of the options without --device. */
static int bench_comm(int argc, char **argv) {
    char *rest[256];
    int n = 0;
    bool device = false;
    for (int i = 0; i < argc && n < 256; i++) {
        if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
            if (strcmp(argv[i + 1], "cuda") != 0 && strcmp(argv[i + 1], "cpu") != 0) {
                fprintf(stderr, "facet bench comm: --device %s: choose cpu (host buffers, Gloo) or cuda\n", argv[i + 1]);
                return 2;
            }
            device = strcmp(argv[++i], "cuda") == 0;
            continue;
        }
        rest[n++] = argv[i];
    }
    return device ? bench_comm_device_main(n, rest) : bench_comm_main(n, rest);
}

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} k_benches[] = {
    {"serve", bench_serve_main, "an OpenAI-compatible server under load: TTFT, TPOT, ITL, E2EL, throughput, goodput"},
    {"failover", bench_failover_main, "faults injected into a running cluster under load: lost or changed requests, recovery times"},
    {"plot", bench_plot_main, "overlay saved `bench serve` results in one SVG"},
    {"throughput", bench_throughput_main, "offline: N prompts at once through a local group, tokens/s"},
    {"latency", bench_latency_main, "one batch in process: prefill and decode ms with rooflines"},
    {"model", bench_model_main, "the engine: decode tok/s per batch, prefill tok/s per length, against rooflines"},
    {"matmul", bench_matmul_main, "the CPU matrix kernel alone on a preset's shapes: GFLOP/s and GB/s per batch size"},
    {"comm", bench_comm, "all-reduce in nccl-tests columns: over Gloo; --device cuda: device buffers over IPC, NCCL or the host"},
};

int cmd_bench(int argc, char **argv) {
    size_t n = sizeof k_benches / sizeof k_benches[0];
    for (size_t i = 0; argc >= 2 && i < n; i++)
        if (strcmp(argv[1], k_benches[i].name) == 0) return k_benches[i].run(argc - 1, argv + 1);
    bool help = argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
    FILE *f = help ? stdout : stderr;
    if (!help) fprintf(f, "facet bench: %s%s\n\n", argc >= 2 ? "unknown benchmark " : "which benchmark?", argc >= 2 ? argv[1] : "");
    fprintf(f, "usage: facet bench NAME [options]   (facet bench NAME --help)\n\n");
    for (size_t i = 0; i < n; i++) fprintf(f, "  %-11s %s\n", k_benches[i].name, k_benches[i].summary);
    return help ? 0 : 2;
}
