// backend.cu — the CUDA module's one entry point (libfacet_cuda.so): the
// table of everything it offers (api.h), the device probe first. worker/backend.c dlopen()s the
// module, so the facet binary never needs a CUDA library to start.
#include <stdio.h>

#include "kernels/cuda/common.cuh"

extern "C" {
#include "kernels/cuda/api.h"
}

void cuda_api_fill_engine(cuda_api *api); // engine.cu
void cuda_api_fill_tests(cuda_api *api);  // op_tests.cu

static int cuda_probe(char *msg, size_t msg_len) {
    int count = 0;
    cudaError_t rc = cudaGetDeviceCount(&count);
    if (rc != cudaSuccess) {
        // With no GPU or no driver this is e.g. cudaErrorInsufficientDriver.
        snprintf(msg, msg_len, "no usable GPU: %s (%s)", cudaGetErrorName(rc), cudaGetErrorString(rc));
        return 0;
    }
    if (count == 0) {
        snprintf(msg, msg_len, "no CUDA device present");
        return 0;
    }
    cudaDeviceProp prop;
    rc = cudaGetDeviceProperties(&prop, 0);
    if (rc != cudaSuccess) {
        snprintf(msg, msg_len, "%d CUDA device(s), but device 0 cannot be queried: %s", count, cudaGetErrorString(rc));
        return 0;
    }
    snprintf(msg, msg_len, "%d CUDA device(s); device 0: %s, compute capability %d.%d, %.1f GiB", count, prop.name,
             prop.major, prop.minor, (double)prop.totalGlobalMem / (1 << 30));
    return count;
}

extern "C" __attribute__((visibility("default"))) const cuda_api *facet_cuda_api(void) {
    static cuda_api api;
    if (api.version == 0) {
        api.probe = cuda_probe;
        cuda_api_fill_engine(&api);
        cuda_api_fill_tests(&api);
        api.version = FACET_CUDA_API_VERSION;
    }
    return &api;
}
