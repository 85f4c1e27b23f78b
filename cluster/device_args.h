/* device_args.h — the options that choose a worker's compute device, shared
 * by generate, worker, serve and bench, and handed on to local workers
 * (the struct itself is worker/backend.h's device_choice). */
#ifndef FACET_CLUSTER_DEVICE_ARGS_H
#define FACET_CLUSTER_DEVICE_ARGS_H

#include "common/args.h"
#include "worker/backend.h"

#define DEVICE_ARG_SPECS(a)                                                                                            \
    {"device", ARG_STRING, &(a).device, "cpu, cuda or auto (default: auto, CUDA when a GPU answers; $FACET_DEVICE)", 0, 0, NULL}, \
    {"cuda-device", ARG_INT, &(a).cuda_device, "GPU ordinal (default: rank modulo the GPU count, one GPU per rank)", 0, 1023, NULL}, \
    {"gpu", ARG_INT, &(a).cuda_device, "the same as --cuda-device", 0, 1023, NULL},                                   \
    {"gpu-memory-utilization", ARG_FLOAT, &(a).gpu_memory_utilization,                                                \
     "share of the GPU's memory for weights, KV cache and buffers (default 0.9; lower it when ranks share a GPU)", 0.05, 1, NULL}, \
    {"no-cuda-graphs", ARG_FLAG, &(a).no_cuda_graphs, "run decode steps without CUDA graphs", 0, 0, NULL}

/* --comm: one of auto, nccl, ipc, host (comm/select.h); else an error naming them. */
bool comm_arg_check(const char *mode, errbuf *err);

/* auto, or $FACET_DEVICE when set (the test suite sets cpu). */
void device_args_default(device_choice *a);

/* Appends "--device ..." etc. to argv (for a local worker process); strings
 * live in storage. Returns the new argc. */
int device_args_to_argv(const device_choice *a, char **argv, int argc, char storage[3][32]);

#endif
