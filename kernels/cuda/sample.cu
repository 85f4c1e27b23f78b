// sample.cu — the sampling pieces on a rank's slice of the vocabulary.
// References: kernels/cpu/sample.c (argmax_f32, candidates_gumbel_pick,
// candidates_top_k, candidates_top_p) as worker/sampler.c uses them: the
// scaled logit is x * (1 / temperature) in fp32, the Gumbel noise and the
// comparison in double, ties to the lower vocab id.
#include <cub/block/block_scan.cuh>
#include <limits.h>

#include "kernels/cuda/kernels.cuh"

#define ARGMAX_THREADS 512
#define TOPK_THREADS 1024

// (value, id) pairs: the better one is larger, then has the lower id.
template <typename T> __device__ __forceinline__ bool better(T v, int i, T bv, int bi) {
    return v > bv || (v == bv && i < bi);
}

template <typename T> __device__ __forceinline__ void warp_best(T &v, int &i) {
    for (int o = 16; o > 0; o >>= 1) {
        T ov = __shfl_xor_sync(0xffffffffu, v, o);
        int oi = __shfl_xor_sync(0xffffffffu, i, o);
        if (better(ov, oi, v, i)) v = ov, i = oi;
    }
}

// The block's best pair; the result is valid in thread 0.
template <typename T> __device__ __forceinline__ void block_best(T &v, int &i, T *sv, int *si) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    warp_best(v, i);
    if (lane == 0) sv[warp] = v, si[warp] = i;
    __syncthreads();
    if (warp == 0) {
        int n_warps = blockDim.x >> 5;
        v = lane < n_warps ? sv[lane] : sv[0];
        i = lane < n_warps ? si[lane] : si[0];
        warp_best(v, i);
    }
}

// grid (n rows), block 512. argmax[r], gumbel[r]: global vocab ids.
__global__ void __launch_bounds__(ARGMAX_THREADS)
    argmax_kernel(int32_t *__restrict__ argmax, int32_t *__restrict__ gumbel, const float *__restrict__ x, int d,
                  int vocab_begin, float inv_t, uint64_t seed, const uint64_t *__restrict__ positions) {
    __shared__ float sv[32];
    __shared__ double sg[32];
    __shared__ int si[32];
    const float *row = x + (size_t)blockIdx.x * d;
    float best = -INFINITY;
    int best_i = INT_MAX;
    double gbest = -INFINITY;
    int gbest_i = INT_MAX;
    uint64_t pos = positions ? positions[blockIdx.x] : (uint64_t)blockIdx.x;
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        float v = row[c];
        if (better(v, c, best, best_i)) best = v, best_i = c;
        if (gumbel) {
            double g = (double)(v * inv_t) + gumbel_noise_dev(seed, pos, vocab_begin + c);
            if (better(g, c, gbest, gbest_i)) gbest = g, gbest_i = c;
        }
    }
    block_best(best, best_i, sv, si);
    if (threadIdx.x == 0) argmax[blockIdx.x] = vocab_begin + (best_i == INT_MAX ? 0 : best_i);
    if (gumbel) {
        __syncthreads();
        block_best(gbest, gbest_i, sg, si);
        if (threadIdx.x == 0) gumbel[blockIdx.x] = vocab_begin + (gbest_i == INT_MAX ? 0 : gbest_i);
    }
}

// An unsigned key with the order of the float (+0 and -0 equal).
__device__ __forceinline__ uint32_t float_key(float f) {
    uint32_t u = __float_as_uint(f + 0.0f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// grid (n rows), block 1024: radix select of the k-th largest key (four 8-bit
// passes over the row), then the k candidates: all above it, and of those
// equal to it the lowest ids (in index order, by a block scan); then the
// candidates sorted by rank and the top_p prefix.
__global__ void __launch_bounds__(TOPK_THREADS)
    topk_kernel(int32_t *__restrict__ ids, float *__restrict__ vals, int32_t *__restrict__ n_kept,
                const float *__restrict__ x, int d, int vocab_begin, int k, float inv_t, float top_p) {
    typedef cub::BlockScan<int, TOPK_THREADS> scan_t;
    __shared__ typename scan_t::TempStorage scan_tmp;
    __shared__ uint32_t hist[256];
    __shared__ uint32_t s_prefix, s_mask;
    __shared__ int s_remaining, s_above;
    __shared__ float cv[TOPK_MAX];
    __shared__ int ci[TOPK_MAX];
    const float *row = x + (size_t)blockIdx.x * d;

    if (threadIdx.x == 0) s_prefix = 0, s_mask = 0, s_remaining = k, s_above = 0;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int b = threadIdx.x; b < 256; b += blockDim.x) hist[b] = 0;
        __syncthreads();
        uint32_t prefix = s_prefix, mask = s_mask;
        for (int c = threadIdx.x; c < d; c += blockDim.x) {
            uint32_t key = float_key(row[c] * inv_t);
            if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255u], 1u);
        }
        __syncthreads();
        if (threadIdx.x == 0) { // the bin holding the remaining-th largest
            int above = 0, b = 255;
            for (; b > 0 && above + (int)hist[b] < s_remaining; b--) above += (int)hist[b];
            s_remaining -= above;
            s_prefix |= (uint32_t)b << shift;
            s_mask |= 255u << shift;
        }
        __syncthreads();
    }
    const uint32_t thr = s_prefix;
    const int take_equal = s_remaining, n_above = k - take_equal;

    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        float v = row[c] * inv_t;
        if (float_key(v) > thr) {
            int slot = atomicAdd(&s_above, 1);
            cv[slot] = v, ci[slot] = c;
        }
    }
    for (int base = 0, c0 = 0; base < take_equal && c0 < d; c0 += blockDim.x) { // uniform loop
        int c = c0 + threadIdx.x;
        float v = c < d ? row[c] * inv_t : 0.0f;
        int flag = c < d && float_key(v) == thr, before, total;
        scan_t(scan_tmp).ExclusiveSum(flag, before, total);
        if (flag && base + before < take_equal) cv[n_above + base + before] = v, ci[n_above + base + before] = c;
        base += total;
        __syncthreads(); // scan_tmp is reused
    }
    __syncthreads();
    // rank sort: candidate i goes where the number of better candidates says
    float *out_v = vals + (size_t)blockIdx.x * k;
    int32_t *out_i = ids + (size_t)blockIdx.x * k;
    for (int i = threadIdx.x; i < k; i += blockDim.x) {
        int rank = 0;
        for (int j = 0; j < k; j++) rank += better(cv[j], ci[j], cv[i], ci[i]);
        out_v[rank] = cv[i];
        out_i[rank] = vocab_begin + ci[i];
    }
    __syncthreads();
    if (threadIdx.x == 0) { // candidates_top_p over the sorted list, in double
        int kept = k;
        if (top_p < 1.0f) {
            double max = out_v[0], total = 0.0, mass = 0.0;
            for (int i = 0; i < k; i++) total += exp((double)out_v[i] - max);
            for (int i = 0; i < k; i++) {
                mass += exp((double)out_v[i] - max) / total;
                if (mass >= (double)top_p) {
                    kept = i + 1;
                    break;
                }
            }
        }
        n_kept[blockIdx.x] = kept;
    }
}

bool launch_argmax(int32_t *argmax, int32_t *gumbel, const float *x, int n, int d, int vocab_begin, float temperature,
                   uint64_t seed, const uint64_t *positions, cudaStream_t s, errbuf *err) {
    if (n == 0) return true;
    if (gumbel && !(temperature > 0.0f)) return errbuf_set(err, "Gumbel-max sampling needs a temperature above 0");
    argmax_kernel<<<n, ARGMAX_THREADS, 0, s>>>(argmax, gumbel, x, d, vocab_begin, gumbel ? 1.0f / temperature : 1.0f,
                                               seed, positions);
    LAUNCH_TRY(argmax_kernel);
    return true;
}

bool launch_topk(int32_t *ids, float *vals, int32_t *n_kept, const float *x, int n, int d, int vocab_begin, int k,
                 float temperature, float top_p, cudaStream_t s, errbuf *err) {
    if (n == 0) return true;
    if (k < 1 || k > TOPK_MAX || k > d) return errbuf_set(err, "top-k: k = %d is not within [1, min(%d, %d)]", k, TOPK_MAX, d);
    if (!(temperature > 0.0f)) return errbuf_set(err, "top-k: the temperature must be above 0");
    topk_kernel<<<n, TOPK_THREADS, 0, s>>>(ids, vals, n_kept, x, d, vocab_begin, k, 1.0f / temperature, top_p);
    LAUNCH_TRY(topk_kernel);
    return true;
}
