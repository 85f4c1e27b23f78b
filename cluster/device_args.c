#include "cluster/device_args.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/select.h"

bool comm_arg_check(const char *mode, errbuf *err) {
    comm_mode m;
    if (comm_mode_parse(mode, &m) && strcmp(mode, "gloo") != 0) return true;
    return errbuf_set(err, "--comm %s: choose auto, nccl, ipc or host", mode ? mode : "(none)");
}

void device_args_default(device_choice *a) {
    const char *env = getenv("FACET_DEVICE");
    *a = (device_choice){.device = env && *env ? env : "auto", .cuda_device = -1, .gpu_memory_utilization = 0.9f};
}

int device_args_to_argv(const device_choice *a, char **argv, int argc, char storage[3][32]) {
    snprintf(storage[0], 32, "%s", a->device);
    snprintf(storage[1], 32, "%g", (double)a->gpu_memory_utilization);
    argv[argc++] = "--device";
    argv[argc++] = storage[0];
    argv[argc++] = "--gpu-memory-utilization";
    argv[argc++] = storage[1];
    if (a->cuda_device >= 0) {
        snprintf(storage[2], 32, "%d", a->cuda_device);
        argv[argc++] = "--cuda-device";
        argv[argc++] = storage[2];
    }
    if (a->no_cuda_graphs) argv[argc++] = "--no-cuda-graphs";
    return argc;
}
