// rope.cu — rotary position embedding of q and k, fused with writing the
// new tokens' keys and values into the paged bf16 KV cache.
// Reference: kernels/cpu/ops_ref.c ref_rope (q and k) then ref_kv_write.
#include "kernels/cuda/kernels.cuh"

// Offset of (cache slot, kv head) in a (n_blocks, K_r, block_size, hd) cache layer.
__device__ __forceinline__ size_t cache_offset(int32_t slot, int h, int n_kv_heads, int block_size, int hd) {
    size_t block = (size_t)(slot / block_size), in_block = (size_t)(slot % block_size);
    return ((block * n_kv_heads + (size_t)h) * block_size + in_block) * hd;
}

// grid (n tokens), block 256. Row t of qkv (fp32): [q (H_r, hd) | k (K_r, hd) | v (K_r, hd)].
// Rotate-half layout: (a, b) = (x[i], x[i + hd/2]) -> (a cos - b sin, b cos + a sin)
// at angle pos * inv_freq[i], the angle computed in fp32 as the CPU does.
__global__ void rope_kv_kernel(float *__restrict__ qkv, int stride, int n_heads, int n_kv_heads, int hd,
                               const int32_t *__restrict__ pos, const int32_t *__restrict__ cache_slot,
                               const float *__restrict__ inv_freq, bf16 *__restrict__ k_cache,
                               bf16 *__restrict__ v_cache, int block_size) {
    int t = blockIdx.x, half = hd / 2;
    float *row = qkv + (size_t)t * stride;
    float p = (float)pos[t];
    int32_t slot = cache_slot[t];
    int pairs = (n_heads + n_kv_heads) * half;
    for (int e = threadIdx.x; e < pairs; e += blockDim.x) {
        int head = e / half, i = e % half; // heads [0, H_r) are q, then K_r k heads
        float *x = row + (size_t)head * hd;
        float s, c;
        sincosf(p * inv_freq[i], &s, &c);
        float a = x[i], b = x[i + half];
        float ra = a * c - b * s, rb = b * c + a * s;
        x[i] = ra, x[i + half] = rb;
        if (head >= n_heads) {
            size_t off = cache_offset(slot, head - n_heads, n_kv_heads, block_size, hd);
            k_cache[off + i] = f2bf(ra);
            k_cache[off + i + half] = f2bf(rb);
        }
    }
    const float *v = row + (size_t)(n_heads + n_kv_heads) * hd;
    for (int e = threadIdx.x; e < n_kv_heads * hd; e += blockDim.x) {
        int h = e / hd, i = e % hd;
        v_cache[cache_offset(slot, h, n_kv_heads, block_size, hd) + i] = f2bf(v[e]);
    }
}

bool launch_rope_kv(float *qkv, int n, int stride, int n_heads, int n_kv_heads, int hd, const int32_t *pos,
                    const int32_t *cache_slot, const float *inv_freq, bf16 *k_cache, bf16 *v_cache, int block_size,
                    cudaStream_t s, errbuf *err) {
    if (n == 0) return true;
    rope_kv_kernel<<<n, 256, 0, s>>>(qkv, stride, n_heads, n_kv_heads, hd, pos, cache_slot, inv_freq, k_cache,
                                     v_cache, block_size);
    LAUNCH_TRY(rope_kv_kernel);
    return true;
}
