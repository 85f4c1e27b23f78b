// fill.cu — device-side initialisation and conversions: random weights for
// benchmarks without checkpoints (--random-weights), fp32 <-> bf16.
#include "kernels/cuda/kernels.cuh"

#define WEIGHT_STREAM 0x57454947u // "WEIG": not the sampling noise's stream

// w[i] = bf16 of a uniform value in [-scale, scale), keyed by (seed, tensor, i):
// the same weights for every run, rank and device.
__global__ void fill_random_bf16_kernel(bf16 *__restrict__ w, size_t count, float scale, uint64_t seed,
                                        uint32_t tensor) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x) {
        uint32_t c[4] = {(uint32_t)i, (uint32_t)(i >> 32), tensor, WEIGHT_STREAM};
        philox4x32_10_dev((uint32_t)seed, (uint32_t)(seed >> 32), c);
        float u = (float)(c[0] >> 8) * (1.0f / 16777216.0f); // [0, 1), 24 bits
        w[i] = f2bf((2.0f * u - 1.0f) * scale);
    }
}

__global__ void fill_f32_kernel(float *__restrict__ x, size_t count, float value) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x)
        x[i] = value;
}

__global__ void f32_to_bf16_kernel(bf16 *__restrict__ out, const float *__restrict__ in, size_t count) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x)
        out[i] = f2bf(in[i]);
}

__global__ void bf16_to_f32_kernel(float *__restrict__ out, const bf16 *__restrict__ in, size_t count) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x)
        out[i] = bf2f(in[i]);
}

static int fill_blocks(size_t count) {
    size_t b = (count + 255) / 256;
    return (int)(b < 8192 ? (b ? b : 1) : 8192);
}

bool launch_fill_random_bf16(bf16 *w, size_t count, float scale, uint64_t seed, uint32_t tensor, cudaStream_t s,
                             errbuf *err) {
    fill_random_bf16_kernel<<<fill_blocks(count), 256, 0, s>>>(w, count, scale, seed, tensor);
    LAUNCH_TRY(fill_random_bf16_kernel);
    return true;
}

bool launch_fill_f32(float *x, size_t count, float value, cudaStream_t s, errbuf *err) {
    fill_f32_kernel<<<fill_blocks(count), 256, 0, s>>>(x, count, value);
    LAUNCH_TRY(fill_f32_kernel);
    return true;
}

bool launch_f32_to_bf16(bf16 *out, const float *in, size_t count, cudaStream_t s, errbuf *err) {
    f32_to_bf16_kernel<<<fill_blocks(count), 256, 0, s>>>(out, in, count);
    LAUNCH_TRY(f32_to_bf16_kernel);
    return true;
}

bool launch_bf16_to_f32(float *out, const bf16 *in, size_t count, cudaStream_t s, errbuf *err) {
    bf16_to_f32_kernel<<<fill_blocks(count), 256, 0, s>>>(out, in, count);
    LAUNCH_TRY(bf16_to_f32_kernel);
    return true;
}
