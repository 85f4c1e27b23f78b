/* bench.h — the `facet bench` family (docs/BENCH.md):
 *   serve       the serving benchmark against any OpenAI-compatible server (serve.c)
 *   failover    faults injected into a running cluster under load, every output checked (failover.c)
 *   plot        overlay saved `bench serve` results in one SVG (plot.c)
 *   throughput  offline: N prompts at once through a local group (throughput.c)
 *   latency     one batch, prefill and decode timed, with rooflines (model.c)
 *   model       the engine's decode/prefill rates against rooflines (model.c)
 *   matmul      the CPU matrix kernel alone on a preset's shapes (matmul.c)
 *   comm        all-reduce over Gloo (comm/bench_comm.c); --device cuda: on device buffers over
 *               IPC, NCCL or the host (comm_device.c) */
#ifndef FACET_BENCH_BENCH_H
#define FACET_BENCH_BENCH_H

int bench_serve_main(int argc, char **argv);
int bench_plot_main(int argc, char **argv);
int bench_failover_main(int argc, char **argv);
int bench_throughput_main(int argc, char **argv);
int bench_latency_main(int argc, char **argv);
int bench_model_main(int argc, char **argv);
int bench_matmul_main(int argc, char **argv);
/* `bench comm --device cuda` (comm_device.c): argv without the --device option. */
int bench_comm_device_main(int argc, char **argv);

/* "1,8,32" into out (at most max values, each 1 .. 2^20); the count, or -1 when
 * s is not such a list. */
int bench_parse_int_list(const char *s, int *out, int max);

#endif
