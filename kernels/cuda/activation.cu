// activation.cu — the elementwise ops: GeGLU and logit soft-capping.
// References: kernels/cpu/ops_ref.c ref_geglu, kernels/cpu/sample.c softcap_f32.
#include "kernels/cuda/kernels.cuh"

// torch gelu(approximate="tanh"), as kernels/cpu/ops_common.h gelu_tanh (precise tanhf).
__device__ __forceinline__ float gelu_tanh_dev(float x) {
    const float k = 0.7978845608028654f; // sqrt(2 / pi)
    return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}

// grid-stride over (n, f): out[t][i] (bf16) = gelu(gu[t][i]) * gu[t][f + i].
__global__ void geglu_kernel(bf16 *__restrict__ out, const float *__restrict__ gu, int n, int f) {
    size_t total = (size_t)n * f;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total; e += (size_t)gridDim.x * blockDim.x) {
        size_t t = e / f, i = e % f;
        const float *row = gu + t * 2 * f;
        out[e] = f2bf(gelu_tanh_dev(row[i]) * row[f + i]);
    }
}

__global__ void softcap_kernel(float *__restrict__ x, size_t count, float cap) {
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < count; e += (size_t)gridDim.x * blockDim.x)
        x[e] = cap * tanhf(x[e] / cap);
}

// Enough blocks to fill any current GPU; the loops stride over the rest.
static int elementwise_blocks(size_t count) {
    size_t b = (count + 255) / 256;
    return (int)(b < 4096 ? (b ? b : 1) : 4096);
}

bool launch_geglu(bf16 *out, const float *gu, int n, int f, cudaStream_t s, errbuf *err) {
    if (n == 0) return true;
    geglu_kernel<<<elementwise_blocks((size_t)n * f), 256, 0, s>>>(out, gu, n, f);
    LAUNCH_TRY(geglu_kernel);
    return true;
}

bool launch_softcap(float *x, size_t count, float cap, cudaStream_t s, errbuf *err) {
    if (count == 0) return true;
    softcap_kernel<<<elementwise_blocks(count), 256, 0, s>>>(x, count, cap);
    LAUNCH_TRY(softcap_kernel);
    return true;
}
