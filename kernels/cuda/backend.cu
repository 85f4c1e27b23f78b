// backend.cu — entry points of the CUDA backend module (libfacet_cuda.so).
// The kernels themselves arrive with the CUDA backend issue; for now the
// module proves that the CUDA build, packaging and loading work, and says
// plainly what the machine has.
#include <cuda_runtime.h>
#include <stdio.h>

extern "C" __attribute__((visibility("default"))) int facet_cuda_probe(char *msg, size_t msg_len) {
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
    cudaGetDeviceProperties(&prop, 0);
    snprintf(msg, msg_len, "%d CUDA device(s); device 0: %s, %.1f GiB", count, prop.name,
             (double)prop.totalGlobalMem / (1 << 30));
    return count;
}
