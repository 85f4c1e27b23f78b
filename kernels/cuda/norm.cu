// norm.cu — Gemma's RMSNorm with the (1 + w) weight, fused with the
// residual add that precedes it.
// Reference: kernels/cpu/ops_ref.c ref_add then ref_rmsnorm.
#include "kernels/cuda/kernels.cuh"

// grid (n_out rows), block 256. Two passes over the row: the sum of squares,
// then the scaled output; the second re-reads x + delta from L1/L2 (a row is
// at most 12 KB), which keeps registers free of d-sized arrays.
__global__ void add_rmsnorm_kernel(float *__restrict__ x, const float *__restrict__ delta,
                                   const float *__restrict__ w1p, bf16 *__restrict__ out,
                                   const int32_t *__restrict__ rows, int d, float eps, bool write_x) {
    __shared__ float scratch[32];
    int r = blockIdx.x;
    size_t src = (size_t)(rows ? rows[r] : r) * d;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        float v = x[src + i] + (delta ? delta[src + i] : 0.0f);
        if (write_x) x[src + i] = v;
        ss += v * v;
    }
    float inv = rsqrtf(block_sum(ss, scratch) / (float)d + eps);
    bf16 *o = out + (size_t)r * d;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        // after write_x, x already holds v (this thread wrote it)
        float v = write_x ? x[src + i] : x[src + i] + (delta ? delta[src + i] : 0.0f);
        o[i] = f2bf(v * inv * w1p[i]);
    }
}

bool launch_add_rmsnorm(float *x, const float *delta, const float *w1p, bf16 *out, const int32_t *rows, int n_out,
                        int d, float eps, bool write_x, cudaStream_t s, errbuf *err) {
    if (n_out == 0) return true;
    add_rmsnorm_kernel<<<n_out, 256, 0, s>>>(x, delta, w1p, out, rows, d, eps, write_x);
    LAUNCH_TRY(add_rmsnorm_kernel);
    return true;
}
