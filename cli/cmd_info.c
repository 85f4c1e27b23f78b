/* facet info: the kernels and devices here, and (--roofline) the measured
 * bandwidth and FLOP rate the benchmarks compare against. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "common/threadpool.h"
#include "kernels/cpu/bf16dot.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/roofline.h"
#include "kernels/cuda/api.h"
#include "worker/backend.h"

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
    printf("cpu kernels: %s (this CPU: avx2+fma %s, avx512bf16 %s, int8 dot products %s; $FACET_CPU_KERNELS chooses)\n",
           cpu_ops_select()->name, cpu_has_avx2_fma() ? "yes" : "no", cpu_has_avx512bf16() ? "yes" : "no",
           cpu_has_avx2_fma() ? quant_int8_isa_name(quant_int8_best_isa()) : "none");
    printf("device (--device auto): %s\n", note[0] ? note : "cpu");
    char why[ERRBUF_LEN];
    bool nccl = backend_nccl_create(why, sizeof why) != NULL;
    printf("all-reduce (--comm): host (Gloo) on any device; ipc %s; nccl %s\n",
           dev == ENGINE_CUDA ? "(CUDA IPC) for ranks on one host" : "needs CUDA", nccl ? "loaded" : why);
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
        if (cpu_has_avx512bf16())
            printf("bf16 dot-product rate: %.1f GFLOP/s (%d threads, vdpbf16ps, registers only; the avx512bf16 kernels take two per product)\n",
                   cpu_bf16dot_gflops(tp), threadpool_size(tp));
        threadpool_free(tp);
    }
    return 0;
}

