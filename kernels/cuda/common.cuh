// common.cuh — what every kernel file of the CUDA backend shares: checked
// calls (file:line and the library's own error string, into the caller's
// errbuf), bf16 conversions, the device copy of the Philox generator, and
// small reductions.
//
// Conventions of kernels/cuda/: activations that feed a GEMM are bf16, the
// residual stream, GEMM outputs, softmax and norms are fp32. Each kernel's
// comment names the kernels/cpu op it must match; tests/gpu checks it.
#ifndef FACET_KERNELS_CUDA_COMMON_CUH
#define FACET_KERNELS_CUDA_COMMON_CUH

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <string.h>

extern "C" {
#include "common/error.h"
}

static inline const char *cuda_basename(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static inline bool cuda_check_at(cudaError_t rc, const char *stmt, const char *file, int line, errbuf *err) {
    if (rc == cudaSuccess) return true;
    return errbuf_set(err, "%s failed (%s:%d): %s (%s)", stmt, cuda_basename(file), line, cudaGetErrorName(rc),
                      cudaGetErrorString(rc));
}

static inline bool cublas_check_at(cublasStatus_t rc, const char *stmt, const char *file, int line, errbuf *err) {
    if (rc == CUBLAS_STATUS_SUCCESS) return true;
    return errbuf_set(err, "%s failed (%s:%d): %s", stmt, cuda_basename(file), line, cublasLtGetStatusString(rc));
}

// Each returns false from the enclosing function (which has an `errbuf *err`).
#define CUDA_TRY(call)                                                                                                 \
    do {                                                                                                               \
        if (!cuda_check_at((call), #call, __FILE__, __LINE__, err)) return false;                                    \
    } while (0)
#define CUBLAS_TRY(call)                                                                                               \
    do {                                                                                                               \
        if (!cublas_check_at((call), #call, __FILE__, __LINE__, err)) return false;                                  \
    } while (0)
// After a kernel launch: the launch error (bad configuration, too much shared memory).
#define LAUNCH_TRY(kernel)                                                                                             \
    do {                                                                                                               \
        if (!cuda_check_at(cudaGetLastError(), "launch of " #kernel, __FILE__, __LINE__, err)) return false;          \
    } while (0)

__host__ __device__ inline int ceil_div(int a, int b) { return (a + b - 1) / b; }

// ---- bf16 ---------------------------------------------------------------------

typedef __nv_bfloat16 bf16;

__device__ __forceinline__ float bf2f(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ bf16 f2bf(float x) { return __float2bfloat16_rn(x); } // round to nearest even, as common/numeric.h

// ---- reductions ---------------------------------------------------------------

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the block; every thread gets it. scratch: 32 floats of shared memory.
__device__ __forceinline__ float block_sum(float v, float *scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = (blockDim.x + 31) >> 5;
    v = warp_sum(v);
    __syncthreads(); // scratch may still be read by a previous call
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < n_warps ? scratch[lane] : 0.0f;
    return warp_sum(v);
}

// ---- Philox4x32-10: the same bits as common/philox.c --------------------------

#define GUMBEL_STREAM 0x53414d50u // kernels/cpu/sample.c: "SAMP"

__device__ __forceinline__ void philox4x32_10_dev(uint32_t k0, uint32_t k1, uint32_t c[4]) {
    const uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
    for (int round = 0; round < 10; round++) {
        uint32_t hi0 = __umulhi(M0, c[0]), lo0 = M0 * c[0];
        uint32_t hi1 = __umulhi(M1, c[2]), lo1 = M1 * c[2];
        uint32_t n0 = hi1 ^ c[1] ^ k0, n2 = hi0 ^ c[3] ^ k1;
        c[0] = n0, c[1] = lo1, c[2] = n2, c[3] = lo0;
        k0 += W0, k1 += W1;
    }
}

// common/philox.c philox_uniform: a double in (0, 1) from 53 bits.
__device__ __forceinline__ double philox_uniform_dev(uint64_t seed, uint32_t stream, uint64_t position, uint32_t index) {
    uint32_t c[4] = {index, (uint32_t)position, (uint32_t)(position >> 32), stream};
    philox4x32_10_dev((uint32_t)seed, (uint32_t)(seed >> 32), c);
    uint64_t bits = (((uint64_t)c[0] << 21) ^ (uint64_t)c[1]) & ((1ull << 53) - 1);
    return ((double)bits + 0.5) * (1.0 / 9007199254740992.0);
}

// kernels/cpu/sample.c gumbel_noise, in double as there.
__device__ __forceinline__ double gumbel_noise_dev(uint64_t seed, uint64_t position, int32_t id) {
    return -log(-log(philox_uniform_dev(seed, GUMBEL_STREAM, position, (uint32_t)id)));
}

#endif
