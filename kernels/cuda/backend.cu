// backend.cu — the CUDA module's one entry point (libfacet_cuda.so): the
// table of everything it offers (api.h), the device probe first. worker/backend.c dlopen()s the
// module, so the facet binary never needs a CUDA library to start.
#include <stdio.h>

#include "kernels/cuda/common.cuh"

extern "C" {
#include "comm/comm_ipc.h"
#include "kernels/cuda/api.h"
}

void cuda_api_fill_engine(cuda_api *api); // engine.cu
void cuda_api_fill_tests(cuda_api *api);  // op_tests.cu

// "GPU-" and the 16 bytes of the device's UUID in 8-4-4-4-12 hex groups, as nvidia-smi -L prints it.
static bool cuda_device_uuid(int device, char *out, size_t len, errbuf *err) {
    cudaDeviceProp prop;
    cudaError_t rc = cudaGetDeviceProperties(&prop, device);
    if (rc != cudaSuccess)
        return errbuf_set(err, "CUDA device %d cannot be queried: %s", device, cudaGetErrorString(rc));
    const unsigned char *u = (const unsigned char *)prop.uuid.bytes;
    char hex[33];
    for (int i = 0; i < 16; i++) snprintf(hex + 2 * i, 3, "%02x", u[i]);
    snprintf(out, len, "GPU-%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
    return true;
}

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

// ---- device buffers and streams for the collectives' benchmarks -----------------------------

static void *cuda_dev_alloc(int device, size_t bytes, errbuf *err) {
    void *p = NULL;
    cudaError_t rc = cudaSetDevice(device);
    if (rc == cudaSuccess) rc = cudaMalloc(&p, bytes ? bytes : 16);
    if (rc == cudaSuccess) return p;
    errbuf_set(err, "cannot allocate %zu bytes on CUDA device %d: %s", bytes, device, cudaGetErrorString(rc));
    return NULL;
}

static void cuda_dev_free(void *p) { cudaFree(p); }

static bool cuda_dev_copy(void *dst, const void *src, size_t bytes, bool to_device, errbuf *err) {
    cudaError_t rc = cudaMemcpy(dst, src, bytes, to_device ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost);
    return rc == cudaSuccess || errbuf_set(err, "copying %zu bytes %s the device: %s", bytes, to_device ? "to" : "from",
                                           cudaGetErrorString(rc));
}

static void *cuda_stream_create(int device, errbuf *err) {
    cudaStream_t s = NULL;
    cudaError_t rc = cudaSetDevice(device);
    if (rc == cudaSuccess) rc = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    if (rc == cudaSuccess) return (void *)s;
    errbuf_set(err, "cannot create a stream on CUDA device %d: %s", device, cudaGetErrorString(rc));
    return NULL;
}

static void cuda_stream_destroy(void *s) {
    if (s) cudaStreamDestroy((cudaStream_t)s);
}

extern "C" __attribute__((visibility("default"))) const cuda_api *facet_cuda_api(void) {
    static cuda_api api;
    if (api.version == 0) {
        api.probe = cuda_probe;
        cuda_api_fill_engine(&api);
        cuda_api_fill_tests(&api);
        api.comm_ipc_create = comm_ipc_create; // comm/ipc.c, compiled into this module
        api.device_uuid = cuda_device_uuid;
        api.dev_alloc = cuda_dev_alloc;
        api.dev_free = cuda_dev_free;
        api.dev_copy = cuda_dev_copy;
        api.stream_create = cuda_stream_create;
        api.stream_destroy = cuda_stream_destroy;
        api.version = FACET_CUDA_API_VERSION;
    }
    return &api;
}
