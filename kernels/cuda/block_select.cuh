// block_select.cuh — block-wide selection, shared by the sampling kernels
// (sample.cu, summarize.cu): the best (value, index) pair of a block, and the
// k best values of a row by radix select. The order is kernels/cpu/sample.c's
// everywhere: the larger value, then the lower index (argmax_f32,
// candidate_cmp). better() never prefers a NaN: every comparison with one is
// false.
#ifndef FACET_KERNELS_CUDA_BLOCK_SELECT_CUH
#define FACET_KERNELS_CUDA_BLOCK_SELECT_CUH

#include <cub/block/block_scan.cuh>
#include <stdint.h>

#include "kernels/cuda/kernels.cuh"

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

// The block's best pair; the result is valid in thread 0. sv, si: 32 entries of shared memory each, not in use
// by another reduction running at the same time.
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

// An unsigned key with the order of the float (+0 and -0 equal).
__device__ __forceinline__ uint32_t float_key(float f) {
    uint32_t u = __float_as_uint(f + 0.0f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// The values block_top_k selects by, column c of a row that no thread writes while it runs (read through the
// read-only cache): the logit scaled by 1 / temperature (fp32, as worker/sampler.c scales; __fmul_rn: never fused
// into a neighbouring add), or the logit itself.
struct scaled_logit {
    const float *x;
    float inv_t;
    __device__ __forceinline__ float operator()(int c) const { return __fmul_rn(__ldg(x + c), inv_t); }
};
struct plain_logit {
    const float *x;
    __device__ __forceinline__ float operator()(int c) const { return __ldg(x + c); }
};

// Shared memory of block_top_k for a block of THREADS threads (about 9 KB).
template <int THREADS> struct top_k_shared {
    typename cub::BlockScan<int, THREADS>::TempStorage scan;
    uint32_t hist[256];
    uint32_t prefix, mask;
    int remaining, above;
    float v[TOPK_MAX]; // the k best values, in no order
    int i[TOPK_MAX];   // their columns
};

// The k best (1 <= k <= min(TOPK_MAX, d)) of value(c) over the columns c of [0, d), into sh.v / sh.i in no
// order: a radix select of the k-th largest key (four 8-bit passes over the row), then every value above that
// key and, of those equal to it, the lowest columns (in column order, by a block scan). Every thread of the block
// (blockDim.x == THREADS) calls it with the same d and k; on return the result is visible to all of them, and
// calling it again is safe (it waits for the readers of the previous result first).
template <int THREADS, typename Value>
__device__ void block_top_k(const Value &value, int d, int k, top_k_shared<THREADS> &sh) {
    typedef cub::BlockScan<int, THREADS> scan_t;
    __syncthreads(); // sh may still be read from a previous call
    if (threadIdx.x == 0) sh.prefix = 0, sh.mask = 0, sh.remaining = k, sh.above = 0;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int b = threadIdx.x; b < 256; b += THREADS) sh.hist[b] = 0;
        __syncthreads();
        uint32_t prefix = sh.prefix, mask = sh.mask;
        for (int c = threadIdx.x; c < d; c += THREADS) {
            uint32_t key = float_key(value(c));
            if ((key & mask) == prefix) atomicAdd(&sh.hist[(key >> shift) & 255u], 1u);
        }
        __syncthreads();
        if (threadIdx.x == 0) { // the bin holding the remaining-th largest
            int above = 0, b = 255;
            for (; b > 0 && above + (int)sh.hist[b] < sh.remaining; b--) above += (int)sh.hist[b];
            sh.remaining -= above;
            sh.prefix |= (uint32_t)b << shift;
            sh.mask |= 255u << shift;
        }
        __syncthreads();
    }
    const uint32_t thr = sh.prefix;
    const int take_equal = sh.remaining, n_above = k - take_equal;

    for (int c = threadIdx.x; c < d; c += THREADS) {
        float v = value(c);
        if (float_key(v) > thr) {
            int slot = atomicAdd(&sh.above, 1);
            sh.v[slot] = v, sh.i[slot] = c;
        }
    }
    for (int base = 0, c0 = 0; base < take_equal && c0 < d; c0 += THREADS) { // uniform loop: base, total are the block's
        int c = c0 + threadIdx.x;
        float v = c < d ? value(c) : 0.0f;
        int flag = c < d && float_key(v) == thr, before, total;
        scan_t(sh.scan).ExclusiveSum(flag, before, total);
        if (flag && base + before < take_equal) sh.v[n_above + base + before] = v, sh.i[n_above + base + before] = c;
        base += total;
        __syncthreads(); // sh.scan is reused
    }
    __syncthreads();
}

// Where candidate j of block_top_k's k goes in best-first order: the number of better ones.
template <int THREADS> __device__ __forceinline__ int top_k_rank(const top_k_shared<THREADS> &sh, int k, int j) {
    int rank = 0;
    for (int o = 0; o < k; o++) rank += better(sh.v[o], sh.i[o], sh.v[j], sh.i[j]);
    return rank;
}

#endif
